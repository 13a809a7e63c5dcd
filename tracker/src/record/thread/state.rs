//! A thread's recording state: its place in the capture (the staging area), its column writer,
//! compressor and caches. One lives in the registry for each thread that records, and is
//! reused by a later thread when its own exits. Only the owner writes its fields, except the
//! flags the finisher and an exec set (`closed`, `paused`) and the owner's `busy` word.

use crate::compress::Compressor;
use memtrace_format::columns::ColumnWriter;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

/// Slots of the native call-site cache (a power of two).
pub(super) const SITES: usize = 1024;

/// Values of `busy`.
pub(super) const IDLE: u32 = 0;
pub(super) const WRITING: u32 = 1;

/// A cached native call site: its return address and stack id, valid in one stack epoch.
#[derive(Clone, Copy)]
pub(super) struct Site {
    pub(super) ret: u64,
    pub(super) stack: u64,
    pub(super) epoch: u64,
}

/// One thread's recording state (see the module's doc).
pub struct ThreadState {
    pub(super) next: *mut ThreadState,
    pub(super) in_use: AtomicBool,
    /// The owner is writing (plain stores: see `acquire` and `flush_all_and_close`).
    pub(super) busy: AtomicU32,
    /// The finisher took over: the owner writes no more.
    pub(super) closed: AtomicBool,
    pub(super) exit_rounds: u32,
    /// A flush failed (the capture takes no more): the staging area keeps its records, complete,
    /// and must be neither flushed again nor reused.
    pub(super) stuck: bool,
    /// The process that set `stuck` because it was not the capture's (a vfork or CLONE_VM child
    /// recording into its parent's state); 0 when the capture itself could take no more.
    pub(super) stuck_by: u32,
    pub(super) serial: u32,
    pub(super) tid: u32,
    pub(super) seq: u32,
    /// The staging chunk header in the capture mapping (null until reserved).
    pub(super) slot: *mut u8,
    /// The size of the staging area (see `staging`), and its payload's bytes.
    pub(super) class: u8,
    pub(super) cap: usize,
    /// Event records in the staging area (table records are not counted).
    pub(super) record_count: u32,
    pub(super) first_tick: u64,
    pub(super) last_tick: u64,
    pub(super) writer: ColumnWriter,
    pub(super) sites: [Site; SITES],
    pub(super) compressor: Compressor,
    pub(super) name: [u8; 16],
    pub(super) name_len: usize,
    /// The name came from Python's threading (kept over the OS name).
    pub(super) python_named: bool,
    /// The capture the state was attached in (see `GENERATION`).
    pub(super) generation: u64,
    /// Events of this thread the capture could not take (written by the owner only, so no
    /// cache line is shared between threads; summed into the trailer's count at the end).
    pub(super) dropped: AtomicU64,
    /// Closed by `pause_others` for an exec, to be opened again if the exec fails.
    pub(super) paused: AtomicBool,
    /// Bytes this thread recorded as allocated in the capture (see `allocated`; owner-written).
    pub(super) allocated: AtomicU64,
}

/// Starts loading the cache line at `p` (the model's lookups miss the cache on most events;
/// the clock read and the stack lookup hide the miss).
#[inline(always)]
pub(super) fn prefetch(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is only a hint: it never faults, whatever the address.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p.cast())
    };
}

/// Adds one to a counter only its owner writes (no locked instruction).
#[inline]
pub(super) fn count_in(c: &AtomicU64) {
    c.store(c.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::count_in;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[test]
    fn an_owner_counter_adds_one_each_time() {
        let c = AtomicU64::new(41);
        count_in(&c);
        count_in(&c);
        assert_eq!(c.load(Ordering::Relaxed), 43);
    }
}
