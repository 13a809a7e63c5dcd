//! A thread's exit: a pthread key destructor flushes its state and gives it back to the
//! registry (with its staging area, for the next new thread), after the thread's other exit
//! destructors, whose frees still belong to it.

use super::model::RELEASE_CLASS;
use super::owner::{acquire, release};
use super::state::ThreadState;
use crate::capture::CAPTURE;
use crate::tls;
use std::sync::atomic::{AtomicU32, Ordering};

static KEY: AtomicU32 = AtomicU32::new(u32::MAX);

/// Creates the key whose destructor flushes a thread's buffer when the thread exits.
pub fn init_key() {
    let mut key: libc::pthread_key_t = 0;
    // SAFETY: key is a valid out-pointer; thread_exit has the destructor signature.
    if unsafe { libc::pthread_key_create(&mut key, Some(thread_exit)) } == 0 {
        KEY.store(key, Ordering::Relaxed);
    }
}

/// Registers the calling thread's state `p` for the destructor (when the key exists).
pub(super) fn arm(p: *mut ThreadState) {
    let key = KEY.load(Ordering::Relaxed);
    if key != u32::MAX {
        // SAFETY: a valid key; the value is the state pointer handed back to thread_exit.
        unsafe { libc::pthread_setspecific(key, p as *const libc::c_void) };
    }
}

/// The pthread key destructor: runs at thread exit. It re-arms itself for the later rounds of
/// destructors (whose frees still belong to this thread) and flushes on the last one.
unsafe extern "C" fn thread_exit(arg: *mut libc::c_void) {
    // A sandboxed process: recording has ended, and the flush would make system calls.
    if crate::sys::sandboxed() {
        return;
    }
    let t = tls::get();
    let was = t.in_tracker;
    t.in_tracker = 1;
    let p = arg as *mut ThreadState;
    // SAFETY: the value set by attach(): this thread's registry entry.
    let s = unsafe { &mut *p };
    if s.exit_rounds < 2 {
        s.exit_rounds += 1;
        let key = KEY.load(Ordering::Relaxed);
        // SAFETY: re-registering the same value for another destructor round.
        unsafe { libc::pthread_setspecific(key, arg) };
    } else if let Some(s) = acquire(t) {
        let flushed = s.flush();
        // Still claimed for writing: the finisher leaves the state alone meanwhile.
        if flushed && s.class >= RELEASE_CLASS {
            s.release_memory();
        }
        t.next_seq = s.seq;
        t.serial = s.serial;
        t.state = core::ptr::null_mut();
        t.exited = 1;
        crate::python::thread_exited(t);
        crate::unwind::thread_exited(t);
        release(s);
        // A stuck state keeps its unwritten records in its staging area: never reuse it.
        if flushed {
            // The next thread to take the state starts its own count.
            let lost = s.dropped.swap(0, Ordering::AcqRel);
            if lost > 0 {
                CAPTURE.records_dropped.fetch_add(lost, Ordering::Relaxed);
            }
            s.in_use.store(false, Ordering::Release);
        }
    } else if t.state.is_null() {
        // The state of an earlier in-process capture was let go (see `reattach`): only the
        // thread's own caches go.
        crate::python::thread_exited(t);
        crate::unwind::thread_exited(t);
    }
    t.in_tracker = was;
}
