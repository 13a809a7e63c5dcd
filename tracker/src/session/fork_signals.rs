//! Signals wait while a fork holds the tracker's locks. A signal handler that allocates (a
//! SIGCHLD handler that mallocs, as some programs have) delivered to the forking thread between
//! the tracker's fork handlers would come into a hook and wait for a lock that thread itself
//! holds, for ever; glibc takes no lock of its own around a single-threaded process's fork, so
//! such a program runs alone. The signals are blocked before the first lock is taken and
//! unblocked after the last is let go, in the parent and in the child: a signal that came
//! meanwhile is delivered then (a child starts with none pending, as always).

use crate::sys;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// The forking thread's mask before `block` (the kernel's 64-bit set), kept while the fork
/// holds the tracker's locks (which let one fork at a time through).
static SAVED: AtomicU64 = AtomicU64::new(0);
/// `SAVED` holds a mask to put back.
static HELD: AtomicBool = AtomicBool::new(false);

/// Blocks the signals on this thread, before the fork handlers take their first lock: the
/// mask before, for [`keep`] (None when nothing was changed: sandboxed, or the call failed).
pub fn block() -> Option<u64> {
    if sys::sandboxed() {
        return None;
    }
    sys::block_signals()
}

/// Keeps the mask `block` returned, once the fork's locks are held.
pub fn keep(old: Option<u64>) {
    if let Some(m) = old {
        SAVED.store(m, Ordering::Relaxed);
    }
    HELD.store(old.is_some(), Ordering::Relaxed);
}

/// The kept mask, read while the fork's locks are still held (for [`restore`] once they are
/// let go).
pub fn taken() -> Option<u64> {
    HELD.swap(false, Ordering::Relaxed)
        .then(|| SAVED.load(Ordering::Relaxed))
}

/// Puts back the mask `taken` gave, after the last lock was let go.
pub fn restore(mask: Option<u64>) {
    if let Some(m) = mask {
        sys::set_signal_mask(m);
    }
}
