//! The owner's side of a state: a thread finds its state through its TLS block (attaching to a
//! free one at its first event) and claims it for each event with a plain store, which the
//! finisher and an exec see through the asymmetric barrier (`barrier::all_threads`). No locked
//! instruction on the allocation path.

use super::allocated;
use super::exec_pause::wait_for_exec;
use super::model::model_bits;
use super::registry::{claim_state, generation, NEXT_SERIAL, THREADS_SEEN};
use super::state::{ThreadState, IDLE, WRITING};
use crate::capture::CAPTURE;
use crate::{staging, sys, tls};
use std::sync::atomic::{compiler_fence, Ordering};

/// The calling thread's state, claimed for writing; None when recording is not possible (the
/// capture is finished, or the thread's state could not be set up).
#[inline]
pub(super) fn acquire(t: &mut tls::Tls) -> Option<&'static mut ThreadState> {
    let mut p = t.state as *mut ThreadState;
    if p.is_null() {
        p = attach(t)?;
    }
    // SAFETY: states live forever and only this thread claims its own.
    let s = unsafe { &mut *p };
    // Dekker-style with an asymmetric barrier: the owner announces itself with a plain store and
    // then looks for the finisher's flag; the finisher sets the flag, runs membarrier() (a full
    // barrier on every thread) and then looks at `busy`. One of the two sees the other, and the
    // allocation path pays no locked instruction.
    s.busy.store(WRITING, Ordering::Relaxed);
    compiler_fence(Ordering::SeqCst);
    if s.closed.load(Ordering::Relaxed) {
        s.busy.store(IDLE, Ordering::Relaxed);
        return reattach(t, s);
    }
    Some(s)
}

/// The thread's state is closed: if it belongs to an earlier in-process capture while another
/// one is open, the thread lets it go (its place in the old file is gone) and attaches anew.
#[cold]
fn reattach(t: &mut tls::Tls, old: &mut ThreadState) -> Option<&'static mut ThreadState> {
    if old.paused.load(Ordering::Acquire) {
        return wait_for_exec(old);
    }
    if old.generation == generation() {
        return None;
    }
    // The earlier capture is finished: the state is free to go, its place in that file gone.
    old.slot = core::ptr::null_mut();
    old.stuck = false;
    old.stuck_by = 0;
    t.state = core::ptr::null_mut();
    t.serial = 0;
    old.in_use.store(false, Ordering::Release);
    if !CAPTURE.is_open() {
        return None;
    }
    let p = attach(t)?;
    // SAFETY: states live forever and only this thread claims its own.
    let s = unsafe { &mut *p };
    s.busy.store(WRITING, Ordering::Relaxed);
    compiler_fence(Ordering::SeqCst);
    if s.closed.load(Ordering::Relaxed) {
        s.busy.store(IDLE, Ordering::Relaxed);
        return None;
    }
    Some(s)
}

#[inline]
pub(super) fn release(s: &mut ThreadState) {
    compiler_fence(Ordering::SeqCst);
    s.busy.store(IDLE, Ordering::Release);
}

#[cold]
fn attach(t: &mut tls::Tls) -> Option<*mut ThreadState> {
    // A sandboxed process (recording has ended): a new state would ask the kernel its thread id.
    if t.exited != 0 || !CAPTURE.is_open() || crate::sys::sandboxed() {
        return None;
    }
    let p = claim_state()?;
    // SAFETY: the state was just claimed by this thread.
    let s = unsafe { &mut *p };
    allocated::attached(s, s.generation, generation());
    s.generation = generation();
    if s.slot.is_null() {
        let Some(area) = staging::take(0, s.generation) else {
            s.in_use.store(false, Ordering::Release);
            return None;
        };
        s.slot = area;
        s.class = 0;
        s.writer.set_buffer_len(staging::capacity(0));
    }
    s.cap = staging::capacity(s.class);
    s.serial = NEXT_SERIAL.fetch_add(1, Ordering::Relaxed);
    s.tid = sys::gettid();
    s.seq = 0;
    s.exit_rounds = 0;
    s.name_len = usize::MAX;
    s.python_named = false;
    s.dropped.store(0, Ordering::Relaxed);
    s.busy.store(IDLE, Ordering::Relaxed);
    s.closed.store(false, Ordering::Relaxed);
    s.writer.set_model_bits(model_bits(s.class));
    s.start_chunk();
    t.state = p as *mut libc::c_void;
    t.serial = s.serial;
    THREADS_SEEN.fetch_add(1, Ordering::Relaxed);
    super::exit::arm(p);
    Some(p)
}
