//! The compact event the replay consumes: 32 bytes, copied out of decoded records.

use memtrace_format::{Allocator, Marker};

/// Kind codes kept in the top byte of `Event::meta`. Allocation kinds are the allocator values.
pub mod code {
    /// Codes below this are allocations (`Allocator as u8`).
    pub const ALLOC_END: u8 = 12;
    pub const FREE: u8 = 16;
    pub const PY_FREE: u8 = 17;
    pub const MUNMAP: u8 = 20;
    /// First half of an mremap: `addr`/`size` are the old range.
    pub const MREMAP_OLD: u8 = 21;
    /// Second half of an mremap (always right after the first): the new range and its stack.
    pub const MREMAP_NEW: u8 = 22;
    /// A marker; `size` holds the marker code.
    pub const MARKER: u8 = 30;
    /// A sample of the process's resident size; `size` holds the bytes.
    pub const RESIDENT: u8 = 32;
}

const STACK_BITS: u32 = 56;
const STACK_MASK: u64 = (1 << STACK_BITS) - 1;

/// One timed event of one thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    pub tick: u64,
    pub addr: u64,
    /// Allocation size, unmapped length, or marker code.
    pub size: u64,
    /// Kind code (top 8 bits) and stack id (low 56 bits).
    meta: u64,
}

/// What an event means, decoded from its kind code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Alloc(Allocator),
    Free {
        python: bool,
    },
    Munmap,
    MremapOld,
    MremapNew,
    Marker(Marker),
    /// The process's resident size (bytes in `size`).
    Resident,
}

impl Event {
    #[inline]
    pub fn new(code: u8, tick: u64, addr: u64, size: u64, stack: u64) -> Event {
        Event {
            tick,
            addr,
            size,
            meta: (u64::from(code) << STACK_BITS) | Event::stack_id(stack),
        }
    }

    /// The stack id an event keeps: ids beyond 56 bits cannot come from a real tracker; they
    /// are kept as "unknown" (0).
    #[inline(always)]
    pub fn stack_id(stack: u64) -> u64 {
        if stack > STACK_MASK {
            0
        } else {
            stack
        }
    }

    #[inline]
    pub fn code(&self) -> u8 {
        (self.meta >> STACK_BITS) as u8
    }

    #[inline]
    pub fn stack(&self) -> u64 {
        self.meta & STACK_MASK
    }

    pub fn kind(&self) -> EventKind {
        let c = self.code();
        match c {
            code::FREE => EventKind::Free { python: false },
            code::PY_FREE => EventKind::Free { python: true },
            code::MUNMAP => EventKind::Munmap,
            code::MREMAP_OLD => EventKind::MremapOld,
            code::MREMAP_NEW => EventKind::MremapNew,
            code::MARKER => EventKind::Marker(Marker::from_code(self.size)),
            code::RESIDENT => EventKind::Resident,
            _ => match Allocator::from_u8(c) {
                Some(a) => EventKind::Alloc(a),
                None => EventKind::Marker(Marker::Other(0)),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_kind_and_stack() {
        let e = Event::new(Allocator::Mmap as u8, 5, 6, 7, 123);
        assert_eq!(e.kind(), EventKind::Alloc(Allocator::Mmap));
        assert_eq!(e.stack(), 123);
        assert_eq!(std::mem::size_of::<Event>(), 32);
        assert_eq!(Event::new(code::FREE, 0, 0, 0, u64::MAX).stack(), 0);
        let m = Event::new(code::MARKER, 1, 0, 1, 0);
        assert_eq!(m.kind(), EventKind::Marker(Marker::ExitSnapshot));
    }
}
