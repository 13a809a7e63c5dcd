//! Where the interpreter's start-up ends and the script begins: when the import of `site` (the
//! outermost frame running when the tracker is imported, from sitecustomize) returns. Python
//! runs the script right after. Up to 3.11 a profile function watches for that one return,
//! marks the point (Marker::ScriptStart) and removes itself: it runs only for the rest of
//! `site`. On 3.12+ setting a profile function turns on the monitoring instrumentation, which
//! leaves a block in every function run afterwards: there the allocation path finds the start
//! (the main thread's first allocation without a Python frame: python::script::watching).

use super::api::{Api, Object};
use crate::python::frames::Interpreter;
use crate::{thread, tls};
use libc::c_int;
use memtrace_format::Marker;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Py_tracefunc's `what` for a return.
const TRACE_RETURN: c_int = 3;

/// The outermost frame at the tracker's import (an interpreter frame, or a frame object on
/// 3.10); 0 when not watching.
static OUTERMOST: AtomicUsize = AtomicUsize::new(0);

/// Starts watching on the calling thread (the GIL is held; the tracker's import runs). False
/// when the frames cannot be followed: the caller marks the start at once.
pub fn watch(api: &Api, py: &Interpreter) -> bool {
    // SAFETY: the GIL is held: the calling thread's state is current and its frames alive.
    let outermost = unsafe {
        let tstate = (api.thread_state_get)() as usize;
        let mut frame = py.layout.current_frame(tstate);
        let mut outer = 0;
        let mut steps = 0;
        while frame != 0 && steps < 10_000 {
            // Shims (3.12+) mark C calling Python: not frames that return to the profiler.
            if !py.layout.is_shim(frame) {
                outer = frame;
            }
            frame = py.layout.previous(frame);
            steps += 1;
        }
        outer
    };
    if outermost == 0 {
        return false;
    }
    OUTERMOST.store(outermost, Ordering::Release);
    // SAFETY: the GIL is held; the function has Py_tracefunc's signature.
    unsafe { (api.eval_set_profile)(Some(on_event), core::ptr::null_mut()) };
    true
}

/// Marks the script's start now.
pub fn mark() {
    let t = tls::get();
    let was = t.in_tracker;
    t.in_tracker = 1;
    thread::record_marker(t, Marker::ScriptStart);
    crate::python::script::started();
    tls::get().in_tracker = was;
}

unsafe extern "C" fn on_event(
    _: *mut Object,
    frame: *mut Object,
    what: c_int,
    _: *mut Object,
) -> c_int {
    if what != TRACE_RETURN {
        return 0;
    }
    let (Some(api), Some(py)) = (super::api::get(), super::INTERPRETER.get()) else {
        return 0;
    };
    let outermost = OUTERMOST.load(Ordering::Acquire);
    if outermost != 0 && py.layout.frame_of_object(frame as usize) == outermost {
        OUTERMOST.store(0, Ordering::Release);
        mark();
        // SAFETY: the GIL is held (a profile event); removes this thread's profile function.
        unsafe { (api.eval_set_profile)(None, core::ptr::null_mut()) };
    }
    0
}
