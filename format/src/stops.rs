//! Where a native stack stops short of the thread's first frame, and why: a native frame whose
//! "address" lies in the first page (where no code is ever mapped) is such a mark, placed just
//! outside the outermost frame the unwinder reached (docs/FORMAT.md, "Native stacks"). Readers
//! that do not know it show an unresolved address; reports name it and count what lies under it.

/// Addresses below this are marks, not code.
pub const FIRST_CODE_ADDRESS: u64 = 4096;

/// Why a stack stops short.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StopsShort {
    /// Deeper than the tracker keeps: the outermost frames are left out.
    TooDeep,
    /// Unwinding reached code no loaded module covers (JIT code): no unwind tables to follow.
    UnknownCode,
    /// Unwinding could not follow a frame (no unwind information, a stack it could not read).
    Unwinding,
    /// The allocation ran on a stack the walk may not use: one whose bounds the tracker does not
    /// know (a coroutine's, a fiber's) or with too little room left below (a thread stack of
    /// PTHREAD_STACK_MIN): only the call site is kept.
    NoRoom,
    /// A mark of a later version.
    Other(u64),
}

impl StopsShort {
    /// The frame address that stands for this mark.
    pub fn address(self) -> u64 {
        match self {
            StopsShort::TooDeep => 1,
            StopsShort::UnknownCode => 2,
            StopsShort::Unwinding => 3,
            StopsShort::NoRoom => 4,
            StopsShort::Other(a) => a,
        }
    }

    /// The mark a native frame's address stands for, if it is one.
    pub fn from_address(a: u64) -> Option<StopsShort> {
        match a {
            1 => Some(StopsShort::TooDeep),
            2 => Some(StopsShort::UnknownCode),
            3 => Some(StopsShort::Unwinding),
            4 => Some(StopsShort::NoRoom),
            0 => None,
            a if a < FIRST_CODE_ADDRESS => Some(StopsShort::Other(a)),
            _ => None,
        }
    }

    /// What reports show for the mark.
    pub fn label(self) -> &'static str {
        match self {
            StopsShort::TooDeep => "<stack stops short: deeper than kept, outer frames left out>",
            StopsShort::UnknownCode => {
                "<stack stops short: unwinding ended at code no module covers>"
            }
            StopsShort::Unwinding => {
                "<stack stops short: unwinding ended at a frame it could not follow>"
            }
            StopsShort::NoRoom => {
                "<stack stops short: on a stack too small to walk or of unknown bounds (a coroutine's)>"
            }
            StopsShort::Other(_) => "<stack stops short>",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_round_trip_and_code_is_never_a_mark() {
        for s in [
            StopsShort::TooDeep,
            StopsShort::UnknownCode,
            StopsShort::Unwinding,
            StopsShort::NoRoom,
        ] {
            assert_eq!(StopsShort::from_address(s.address()), Some(s));
        }
        assert_eq!(StopsShort::from_address(77), Some(StopsShort::Other(77)));
        assert_eq!(StopsShort::from_address(0), None);
        assert_eq!(StopsShort::from_address(4096), None);
        assert_eq!(StopsShort::from_address(0x5555_5555_1234), None);
    }
}
