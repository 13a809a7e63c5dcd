//! Around an exec: the calling thread's events are flushed and the other threads are paused
//! (their states closed, their writers waited for), so that no chunk is left half written if
//! the exec succeeds; if it fails, everything resumes as if nothing had happened.

use super::owner::{acquire, release};
use super::registry::{generation, states, wait_idle};
use super::state::{ThreadState, IDLE, WRITING};
use crate::capture::CAPTURE;
use crate::tls;
use memtrace_format::CHUNK_HEADER_LEN;
use std::sync::atomic::{compiler_fence, Ordering};

/// Compresses the calling thread's buffered events into a chunk now (before an exec); the
/// thread goes on recording. Returns the file range of its emptied staging area.
pub fn flush_current(t: &mut tls::Tls) -> Option<(u64, u64)> {
    if t.state.is_null() {
        return None;
    }
    let s = acquire(t)?;
    let flushed = s.flush();
    let off = CAPTURE.offset_of(s.slot) + CHUNK_HEADER_LEN as u64;
    let len = s.cap as u64;
    release(s);
    flushed.then_some((off, len))
}

/// After `flush_current` whose staging area was then released to the disk (an exec that
/// failed): the area's header and directory are written again, and the thread records on.
pub fn restart_current(t: &mut tls::Tls) {
    if t.state.is_null() {
        return;
    }
    if let Some(s) = acquire(t) {
        s.start_chunk();
        release(s);
    }
}

/// Another thread prepares an exec: how long a thread waits for the exec to fail (if it
/// succeeds, the thread ends with the image).
const EXEC_PAUSE_MS: u32 = 2000;

/// The thread's state was closed for an exec (see `pause_others`): waits until the exec
/// failed and the state is open again, then writes its event as if nothing had happened.
#[cold]
pub(super) fn wait_for_exec(s: &mut ThreadState) -> Option<&'static mut ThreadState> {
    let mut waited = 0;
    while s.paused.load(Ordering::Acquire) && waited < EXEC_PAUSE_MS * 10 {
        crate::sys::sleep_us(100);
        waited += 1;
    }
    s.busy.store(WRITING, Ordering::Relaxed);
    compiler_fence(Ordering::SeqCst);
    if s.closed.load(Ordering::Relaxed) {
        s.busy.store(IDLE, Ordering::Relaxed);
        return None;
    }
    // SAFETY: states live forever and only this thread claims its own.
    Some(unsafe { &mut *(s as *mut ThreadState) })
}

/// Before an exec: every other thread's state is closed and the threads writing are waited for
/// (at most about `limit_ms`), so that no chunk is left half written when the exec ends them.
/// A thread with an event to write meanwhile waits in `wait_for_exec`.
pub fn pause_others(limit_ms: u32) {
    let me = tls::get().state as *mut ThreadState;
    for p in states() {
        // SAFETY: registry entries are never freed.
        let s = unsafe { &*p };
        if p != me
            && s.in_use.load(Ordering::Acquire)
            && s.generation == generation()
            && !s.closed.load(Ordering::Acquire)
        {
            s.paused.store(true, Ordering::SeqCst);
            s.closed.store(true, Ordering::SeqCst);
        }
    }
    wait_idle(limit_ms);
}

/// The exec failed: the states `pause_others` closed are open again.
pub fn resume_others() {
    for p in states() {
        // SAFETY: registry entries are never freed.
        let s = unsafe { &*p };
        if s.paused.load(Ordering::Acquire) {
            s.closed.store(false, Ordering::SeqCst);
            s.paused.store(false, Ordering::Release);
        }
    }
}
