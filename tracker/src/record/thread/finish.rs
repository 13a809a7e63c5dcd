//! The end of a capture: every thread's state is closed and what it holds compressed into the
//! capture; emptied staging areas become holes in the file (in a capture of some size: see
//! [`PUNCH_FROM`]).

use super::registry::{claim, generation, states};
use super::state::{ThreadState, IDLE};
use crate::capture::CAPTURE;
use crate::{staging, sys, tls};
use std::sync::atomic::Ordering;

/// A capture shorter than this keeps the disk space of its emptied staging areas at its end (at
/// most its own length): punching the holes costs milliseconds of the program's exit on ext4,
/// which a short run (a followed child's start-up) would pay for a few KiB.
pub const PUNCH_FROM: u64 = 8 << 20;

/// At the end of the capture: closes every thread's state and compresses what it holds. A
/// thread still running later records nothing more.
pub fn flush_all_and_close() {
    let punch: fn(*mut u8, usize) = if CAPTURE.reserved_len() >= PUNCH_FROM {
        staging::punch
    } else {
        |_, _| {}
    };
    for p in states() {
        // SAFETY: registry entries are never freed.
        unsafe { (*p).closed.store(true, Ordering::SeqCst) };
    }
    crate::barrier::all_threads();
    let me = tls::get().state as *mut ThreadState;
    for p in states() {
        // SAFETY: registry entries are never freed.
        let s = unsafe { &mut *p };
        // The owner may be finishing one event: give it time, but never hang the exit. (The
        // calling thread's own state is idle: the finisher runs outside the hooks.)
        let mut spins = 0u32;
        while p != me && s.busy.load(Ordering::Acquire) != IDLE && spins < 20_000 {
            spins += 1;
            sys::sched_yield();
        }
        let idle = s.busy.load(Ordering::Acquire) == IDLE || p == me;
        let lost = s.dropped.swap(0, Ordering::AcqRel);
        CAPTURE.records_dropped.fetch_add(lost, Ordering::Relaxed);
        // A state of an earlier in-process capture points into that capture's file, gone.
        let current = s.generation == generation();
        if idle && current && s.in_use.load(Ordering::Acquire) && !s.slot.is_null() && s.flush() {
            // An emptied staging area is only a hole in the file.
            punch(s.slot, s.cap);
        } else if current && !s.slot.is_null() && claim(s) {
            // The area of an exited thread: empty (a stuck one stays claimed, never reused).
            punch(s.slot, staging::capacity(s.class));
            s.in_use.store(false, Ordering::Release);
        }
    }
    staging::drain(generation(), punch);
}
