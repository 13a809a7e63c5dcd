//! The bytes the capture in progress recorded as allocated (allocations, and the new lengths of
//! remapped mappings): at least its peak of live bytes (in a capture that is not sampled,
//! whose reader scales sizes up), so the pytest plugin can tell, without reading a test's
//! capture, that its peak is below the largest ones it lists. Counted at the same point in a
//! full and an aggregated capture (record::thread::events), so both give the same sum: without
//! sampling, an aggregated capture's bytes allocated in all; with byte sampling, in either mode,
//! the requested sizes of the allocations sampled (not the estimate the reader scales them to).
//!
//! Each thread adds to its own state (no cache line shared between threads); a state taken by
//! another thread in the same capture carries its sum into [`CARRIED`] first, so nothing of the
//! capture is lost; a thread that already gave its state back adds to [`CARRIED`] directly.

use super::registry::{generation, states};
use super::state::ThreadState;
use std::sync::atomic::{AtomicU64, Ordering};

/// Bytes of this capture's states given to other threads, and of threads without a state.
static CARRIED: AtomicU64 = AtomicU64::new(0);

/// A capture starts (nothing records yet): its sum starts from 0.
pub(super) fn reset() {
    CARRIED.store(0, Ordering::Release);
}

/// Adds `bytes` to the sum of the state's owner (which alone writes it: no locked instruction).
#[inline]
pub(super) fn add(s: &ThreadState, bytes: u64) {
    let c = &s.allocated;
    c.store(
        c.load(Ordering::Relaxed).wrapping_add(bytes),
        Ordering::Relaxed,
    );
}

/// Adds the bytes of an event written without a state (a thread past its exit destructors).
pub(super) fn add_stateless(bytes: u64) {
    CARRIED.fetch_add(bytes, Ordering::AcqRel);
}

/// A state is attached to the capture of generation `now`: what it counted in that capture
/// under another thread is kept, and it counts from 0.
pub(super) fn attached(s: &ThreadState, previous: u64, now: u64) {
    let sum = s.allocated.swap(0, Ordering::Relaxed);
    if previous == now {
        CARRIED.fetch_add(sum, Ordering::AcqRel);
    }
}

/// The bytes recorded as allocated in the capture in progress (or the last one, once finished).
pub fn allocated_bytes() -> u64 {
    let now = generation();
    states()
        // SAFETY: registry entries are never freed.
        .map(|p| unsafe { &*p })
        .filter(|s| s.generation == now)
        .fold(CARRIED.load(Ordering::Acquire), |sum, s| {
            sum.wrapping_add(s.allocated.load(Ordering::Relaxed))
        })
}
