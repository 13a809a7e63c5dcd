//! `_memtrace_tracker.start(path, native, python_allocators, follow_fork)` and `stop()`:
//! tracking started and stopped from Python inside a running interpreter that `memtrace run`
//! did not start (see crate::inprocess for the hooks). Both run with the GIL held.
//!
//! The capture is a Python run's: its script starts (Marker::ScriptStart) when tracking does,
//! so the reports count exactly what happened between start and stop. Threads already running
//! are named from `threading` at start and at stop; threads started meanwhile name themselves
//! in a wrapped `threading.Thread._set_native_id`, as in a run of `memtrace run` (thread_names).

use super::api::{self, Api, Object};
use super::objects::text;
use super::session_api;
use super::{allocators, startup, thread_names, INTERPRETER, TRACKING};
use crate::inprocess::{self, Request};
use crate::{names, thread};
use std::sync::atomic::Ordering;

/// `start(path: str, native: bool, python_allocators: bool, follow_fork: bool[, labels: str[,
/// attached: bool[, aggregate: bool]]]) -> None`; `labels` holds `key=value` lines (checked by
/// the Python package); `aggregate`: an aggregated capture (crate::aggregate).
pub unsafe extern "C" fn start(
    _module: *mut Object,
    args: *const *mut Object,
    nargs: isize,
) -> *mut Object {
    let (Some(api), Some(s)) = (api::get(), session_api::get()) else {
        return core::ptr::null_mut();
    };
    if !(4..=7).contains(&nargs) || args.is_null() {
        return raise(
            s.type_error,
            b"start() takes 4 to 7 arguments: path, native, python_allocators, follow_fork[, labels[, attached[, aggregate]]]",
        );
    }
    // SAFETY: Python passes `nargs` argument references, alive during the call.
    let a = unsafe { core::slice::from_raw_parts(args, nargs as usize) };
    let labels = match a.get(4) {
        // SAFETY: a live argument object; the GIL is held.
        Some(&o) => match unsafe { text(api, o) } {
            Some(l) => l.iter().map(|&b| if b == b'\n' { 0 } else { b }).collect(),
            None => return core::ptr::null_mut(),
        },
        None => Vec::new(),
    };
    // SAFETY: live argument objects; the GIL is held.
    let Some(path) = (unsafe { text(api, a[0]) }) else {
        return core::ptr::null_mut();
    };
    // `memtrace attach` passes `attached`: the capture starts in a process already running.
    // `aggregate` (memtrace.Tracker(aggregate=True)): sums instead of events.
    let mut optional = [false; 2];
    for (flag, &arg) in optional.iter_mut().zip(a.get(5..).unwrap_or(&[])) {
        // SAFETY: a live argument object; the GIL is held.
        match unsafe { (s.object_is_true)(arg) } {
            r if r < 0 => return core::ptr::null_mut(),
            r => *flag = r == 1,
        }
    }
    let [attached, aggregate] = optional;
    let mut flags = [false; 3];
    for (flag, &arg) in flags.iter_mut().zip(&a[1..4]) {
        // SAFETY: a live argument object; the GIL is held.
        match unsafe { (s.object_is_true)(arg) } {
            r if r < 0 => return core::ptr::null_mut(),
            r => *flag = r == 1,
        }
    }
    if path.is_empty() || path.contains(&0) {
        return raise(s.type_error, b"start() needs the capture's path");
    }
    let req = Request {
        path,
        native: flags[0],
        python_allocators: flags[1],
        follow_fork: flags[2],
        labels,
        attached,
        aggregate,
    };
    let starting = match inprocess::claim() {
        Ok(starting) => starting,
        Err(msg) => return raise(s.runtime_error, msg.as_bytes()),
    };
    crate::family::forget_child_records();
    // Learnt before the capture opens: the calls' own allocations are not recorded.
    names::clear();
    // SAFETY: the GIL is held.
    unsafe { thread_names::learn_all(api, s) };
    if let Err(msg) = starting.open(&req) {
        return raise(s.runtime_error, &msg);
    }
    startup::mark();
    if INTERPRETER.get().is_none() {
        super::learn_interpreter(api);
    }
    if INTERPRETER.get().is_some() && req.native {
        crate::unwind::learn_eval_loop();
    }
    TRACKING.store(true, Ordering::Release);
    // SAFETY: the GIL is held.
    unsafe { thread_names::install(api, s) };
    if req.python_allocators {
        allocators::install(api);
    }
    starting.run();
    none(api)
}

/// `stop([keep_hooks: bool]) -> None`: the capture is finished (complete) and every hook taken
/// out; with `keep_hooks`, the slots patched stay patched (passing through while nothing
/// records) for the next start, until `release_hooks()`.
pub unsafe extern "C" fn stop(
    _module: *mut Object,
    args: *const *mut Object,
    nargs: isize,
) -> *mut Object {
    let (Some(api), Some(s)) = (api::get(), session_api::get()) else {
        return core::ptr::null_mut();
    };
    if !(0..=1).contains(&nargs) || (nargs == 1 && args.is_null()) {
        return raise(s.type_error, b"stop() takes at most 1 argument: keep_hooks");
    }
    let keep = if nargs == 1 {
        // SAFETY: Python passes `nargs` (1) live argument references; the GIL is held.
        match unsafe { (s.object_is_true)(*args) } {
            r if r < 0 => return core::ptr::null_mut(),
            r => r == 1,
        }
    } else {
        false
    };
    let stopping = match inprocess::stop_claim() {
        Ok(stopping) => stopping,
        Err(msg) => return raise(s.runtime_error, msg.as_bytes()),
    };
    TRACKING.store(false, Ordering::Release);
    allocators::uninstall(api);
    // SAFETY: the GIL is held.
    unsafe { thread_names::remove(api, s) };
    stopping.unhook(keep);
    // Threads still running get their names at the capture's last flush.
    // SAFETY: the GIL is held.
    unsafe { thread_names::learn_all(api, s) };
    stopping.finish();
    none(api)
}

/// `release_hooks() -> None`: puts back the slots that `stop(True)` left patched (a
/// RuntimeError while a capture is recorded here).
pub unsafe extern "C" fn release_hooks(_module: *mut Object, _: *mut Object) -> *mut Object {
    let (Some(api), Some(s)) = (api::get(), session_api::get()) else {
        return core::ptr::null_mut();
    };
    match inprocess::release_hooks() {
        Ok(()) => none(api),
        Err(msg) => raise(s.runtime_error, msg.as_bytes()),
    }
}

/// `child_records() -> int`: the child records the last (or running) capture started here
/// holds (children this process started that the tracker saw: fork, posix_spawn, vfork+exec).
pub unsafe extern "C" fn child_records(_module: *mut Object, _: *mut Object) -> *mut Object {
    let Some(s) = session_api::get() else {
        return core::ptr::null_mut();
    };
    // SAFETY: the GIL is held; a new reference (or null with an exception set) for Python.
    unsafe { (s.long_from_unsigned_long_long)(crate::family::child_records()) }
}

/// `allocated_bytes() -> int`: the bytes the last (or running) capture started here recorded as
/// allocated, at least its peak (record::thread::allocated).
pub unsafe extern "C" fn allocated_bytes(_module: *mut Object, _: *mut Object) -> *mut Object {
    let Some(s) = session_api::get() else {
        return core::ptr::null_mut();
    };
    // SAFETY: the GIL is held; a new reference (or null with an exception set) for Python.
    unsafe { (s.long_from_unsigned_long_long)(thread::allocated_bytes()) }
}

fn none(api: &Api) -> *mut Object {
    // SAFETY: None is a live object; the caller returns this new reference to Python.
    unsafe { (api.inc_ref)(api.none) };
    api.none
}

/// Sets a Python exception of type `kind` with `msg`; returns the NULL that signals it.
fn raise(kind: *mut Object, msg: &[u8]) -> *mut Object {
    if let Some(s) = session_api::get() {
        let mut z: Vec<u8> = msg.iter().copied().filter(|&b| b != 0).collect();
        z.push(0);
        // SAFETY: a live exception type and a NUL-terminated message; the GIL is held.
        unsafe { (s.err_set_string)(kind, z.as_ptr() as *const libc::c_char) };
    }
    core::ptr::null_mut()
}
