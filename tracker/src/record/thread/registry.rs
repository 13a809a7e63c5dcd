//! The process-wide registry of thread states: a lock-free list that only grows (entries are
//! mapped once and never freed, so a pointer to one stays valid in a signal handler, a fork
//! child or a thread's exit destructor). A thread claims a free entry or pushes a new one; the
//! finisher, fork and exec walk the list. Also the numbering of the capture in progress.

use super::state::{ThreadState, IDLE};
use crate::compress::Compressor;
use crate::{staging, sys, tls};
use memtrace_format::columns::{ColumnWriter, Layout};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, Ordering};

static REGISTRY: AtomicPtr<ThreadState> = AtomicPtr::new(core::ptr::null_mut());
/// The serial the next thread to attach gets (1, 2, ... in each capture).
pub(super) static NEXT_SERIAL: AtomicU32 = AtomicU32::new(1);
/// Threads that recorded anything (for the trailer).
pub(super) static THREADS_SEEN: AtomicU32 = AtomicU32::new(0);
/// Bumped when an in-process capture starts: a state attached in an earlier one is closed, and
/// its thread, which still holds it, attaches afresh at its next event (`reattach`).
pub(super) static GENERATION: AtomicU64 = AtomicU64::new(1);

/// Every state ever created, newest first.
pub(super) fn states() -> impl Iterator<Item = *mut ThreadState> {
    let mut p = REGISTRY.load(Ordering::Acquire);
    core::iter::from_fn(move || {
        if p.is_null() {
            return None;
        }
        let current = p;
        // SAFETY: registry entries are never freed, and `next` is written before an entry is
        // published (the release in `claim_state`).
        p = unsafe { (*p).next };
        Some(current)
    })
}

/// The generation of the capture in progress (see `GENERATION`).
pub(super) fn generation() -> u64 {
    GENERATION.load(Ordering::Acquire)
}

/// Takes the state `s` if it is free.
pub(super) fn claim(s: &ThreadState) -> bool {
    !s.in_use.load(Ordering::Relaxed)
        && s.in_use
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
}

/// A free registry entry, or a new one; claimed for the caller.
pub(super) fn claim_state() -> Option<*mut ThreadState> {
    for p in states() {
        // SAFETY: registry entries are never freed.
        if claim(unsafe { &*p }) {
            return Some(p);
        }
    }
    let p = sys::map_anon(core::mem::size_of::<ThreadState>())? as *mut ThreadState;
    // SAFETY: fresh zeroed memory of the right size; every field is valid when zeroed except
    // the compressor and the writer, written explicitly.
    unsafe {
        core::ptr::addr_of_mut!((*p).compressor).write(Compressor::new());
        core::ptr::addr_of_mut!((*p).writer)
            .write(ColumnWriter::new(Layout::for_buffer(staging::capacity(0))));
        (*p).in_use = AtomicBool::new(true);
        let mut head = REGISTRY.load(Ordering::Acquire);
        loop {
            (*p).next = head;
            match REGISTRY.compare_exchange_weak(head, p, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => break,
                Err(h) => head = h,
            }
        }
    }
    Some(p)
}

pub fn threads_seen() -> u64 {
    u64::from(THREADS_SEEN.load(Ordering::Relaxed))
}

/// In a fork child that is not followed: the parent's capture is gone (unmapped), so no state
/// may write to its staging area again, whatever path reaches it (hooks, Python's
/// allocators, thread exit).
pub fn close_all() {
    for p in states() {
        // SAFETY: registry entries are never freed.
        unsafe { (*p).closed.store(true, Ordering::Release) };
    }
}

/// Restarts numbering for a new capture (a followed fork child, where the calling thread is
/// the only one).
pub fn reset_for_new_capture() {
    staging::clear();
    super::allocated::reset();
    NEXT_SERIAL.store(1, Ordering::Relaxed);
    THREADS_SEEN.store(0, Ordering::Relaxed);
    for p in states() {
        // SAFETY: registry entries are never freed; the child has no other thread to touch one.
        let s = unsafe { &mut *p };
        s.slot = core::ptr::null_mut();
        s.busy.store(IDLE, Ordering::Relaxed);
        s.closed.store(false, Ordering::Relaxed);
        // An exec under way in another thread of the parent paused it: that thread is gone.
        s.paused.store(false, Ordering::Relaxed);
        s.in_use.store(false, Ordering::Relaxed);
        s.dropped.store(0, Ordering::Relaxed);
        s.allocated.store(0, Ordering::Relaxed);
    }
    let t = tls::get();
    t.state = core::ptr::null_mut();
    t.exited = 0;
    t.serial = 0;
}

/// Starts the numbering of an in-process capture (the capture is not open yet). States of
/// earlier captures stay with their threads until they let them go (see `reattach`); the free
/// ones forget their place in the old file.
pub fn begin_capture() {
    GENERATION.fetch_add(1, Ordering::AcqRel);
    super::allocated::reset();
    NEXT_SERIAL.store(1, Ordering::Relaxed);
    THREADS_SEEN.store(0, Ordering::Relaxed);
    for p in states() {
        // SAFETY: registry entries are never freed; a free one is touched by no thread.
        let s = unsafe { &mut *p };
        if !s.in_use.load(Ordering::Acquire) {
            s.slot = core::ptr::null_mut();
            s.stuck = false;
            s.stuck_by = 0;
        }
    }
}

/// After the end of a capture: waits (at most about `limit_ms`) until no thread is writing to
/// its state. True when none is, so the capture's mapping may go.
pub fn wait_idle(limit_ms: u32) -> bool {
    crate::barrier::all_threads();
    let me = tls::get().state as *mut ThreadState;
    let mut waited = 0u32;
    for p in states().filter(|&p| p != me) {
        // SAFETY: registry entries are never freed.
        let s = unsafe { &*p };
        while s.busy.load(Ordering::Acquire) != IDLE {
            if waited >= limit_ms {
                return false;
            }
            waited += 1;
            crate::sys::sleep_us(1000);
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::sync::{Arc, Mutex};

    /// The registry is process-wide: its tests take turns.
    static TURN: Mutex<()> = Mutex::new(());

    fn release(p: *mut ThreadState) {
        // SAFETY: a registry entry, claimed by the test.
        unsafe { (*p).in_use.store(false, Ordering::Release) };
    }

    #[test]
    fn a_claimed_state_is_taken_once_and_reused_once_released() {
        let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
        let a = claim_state().expect("a state");
        let b = claim_state().expect("a second state");
        assert_ne!(a, b, "a claimed state was handed out again");
        assert!(states().any(|p| p == a) && states().any(|p| p == b));
        release(a);
        let before = states().count();
        assert_eq!(claim_state(), Some(a), "the free state is reused");
        assert_eq!(states().count(), before, "no new entry while one is free");
        release(a);
        release(b);
    }

    #[test]
    fn threads_claiming_at_once_never_share_a_state() {
        let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
        let held = Arc::new(Mutex::new(HashSet::new()));
        let workers: Vec<_> = (0..8)
            .map(|_| {
                let held = Arc::clone(&held);
                std::thread::spawn(move || {
                    for _ in 0..200 {
                        let p = claim_state().expect("a state");
                        assert!(held.lock().unwrap().insert(p as usize), "shared state");
                        std::thread::yield_now();
                        held.lock().unwrap().remove(&(p as usize));
                        release(p);
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().expect("a worker");
        }
        // At most one entry per thread that ever held one at once (plus earlier tests').
        let free = states()
            // SAFETY: registry entries are never freed.
            .filter(|&p| !unsafe { &*p }.in_use.load(Ordering::Acquire))
            .count();
        assert!(states().count() <= 8 + 2, "{} entries", states().count());
        assert_eq!(free, states().count(), "every state was given back");
    }
}
