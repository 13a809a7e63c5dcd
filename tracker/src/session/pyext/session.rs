//! `_memtrace_tracker.start(path, native, python_allocators, follow_fork)` and `stop()`:
//! tracking started and stopped from Python inside a running interpreter that `memtrace run`
//! did not start (see crate::inprocess for the hooks). Both run with the GIL held.
//!
//! The capture is a Python run's: its script starts (Marker::ScriptStart) when tracking does,
//! so the reports count exactly what happened between start and stop. Threads already running
//! are named from `threading` at start and at stop; threads started meanwhile name themselves
//! through a `threading` profile hook, as in a run of `memtrace run`.

use super::api::{self, Api, Object};
use super::session_api::{self, SessionApi};
use super::{allocators, startup, MethodDef, Static, INTERPRETER, METH_FASTCALL, TRACKING};
use crate::inprocess::{self, Request};
use crate::names;
use crate::{thread, tls};
use libc::c_void;
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicUsize, Ordering};

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
    unsafe { learn_thread_names(api, s) };
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
    unsafe { install_thread_hook(api, s) };
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
    unsafe { remove_thread_hook(api, s) };
    stopping.unhook(keep);
    // Threads still running get their names at the capture's last flush.
    // SAFETY: the GIL is held.
    unsafe { learn_thread_names(api, s) };
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

/// The UTF-8 bytes of a str (None with a TypeError set when `o` is not one; None for null).
///
/// # Safety
/// `o` is a live object (or null) and the GIL is held.
unsafe fn text(api: &Api, o: *mut Object) -> Option<Vec<u8>> {
    if o.is_null() {
        return None;
    }
    let mut len: isize = 0;
    // SAFETY: the caller's promise; the buffer belongs to `o` and is copied at once.
    unsafe {
        let p = (api.unicode_as_utf8_and_size)(o, &mut len);
        if p.is_null() || len < 0 {
            return None;
        }
        Some(core::slice::from_raw_parts(p as *const u8, len as usize).to_vec())
    }
}

/// `getattr(o, name)`, a new reference or null (with no exception left set).
///
/// # Safety
/// `o` is a live object (or null) and the GIL is held.
unsafe fn attr(api: &Api, o: *mut Object, name: &core::ffi::CStr) -> *mut Object {
    if o.is_null() {
        return core::ptr::null_mut();
    }
    // SAFETY: the caller's promise.
    unsafe {
        let r = (api.object_get_attr_string)(o, name.as_ptr());
        if r.is_null() {
            (api.err_clear)();
        }
        r
    }
}

/// `f()`, a new reference or null (null for a null `f`; an exception may be left set).
///
/// # Safety
/// `f` is a live object (or null) and the GIL is held.
unsafe fn call(s: &SessionApi, f: *mut Object) -> *mut Object {
    if f.is_null() {
        return core::ptr::null_mut();
    }
    // SAFETY: the caller's promise.
    unsafe { (s.call_no_args)(f) }
}

/// Remembers the name of every thread of `threading` by its native id.
///
/// # Safety
/// The GIL is held.
unsafe fn learn_thread_names(api: &Api, s: &SessionApi) {
    // SAFETY: the GIL is held; every reference taken is given back.
    unsafe {
        let threading = (s.import_module)(c"threading".as_ptr());
        let enumerate = attr(api, threading, c"enumerate");
        let list = call(s, enumerate);
        let iter = if list.is_null() {
            core::ptr::null_mut()
        } else {
            (s.get_iter)(list)
        };
        while !iter.is_null() {
            let item = (s.iter_next)(iter);
            if item.is_null() {
                break;
            }
            let id = attr(api, item, c"native_id");
            let tid = if id.is_null() {
                -1
            } else {
                (s.long_as_long_long)(id)
            };
            let name = attr(api, item, c"name");
            if tid > 0 && tid <= i64::from(u32::MAX) {
                if let Some(bytes) = text(api, name) {
                    names::set(tid as u32, &bytes);
                }
            }
            for o in [name, id, item] {
                (api.dec_ref)(o);
            }
        }
        for o in [iter, list, enumerate, threading] {
            (api.dec_ref)(o);
        }
        if !(s.err_occurred)().is_null() {
            (api.err_clear)();
        }
    }
}

/// The profile hook given to `threading` (a builtin function object), while installed.
static HOOK: AtomicUsize = AtomicUsize::new(0);

static HOOK_DEF: Static<MethodDef> = Static(UnsafeCell::new(MethodDef {
    name: c"_memtrace_thread_started".as_ptr(),
    meth: thread_hook as *const c_void,
    flags: METH_FASTCALL,
    doc: core::ptr::null(),
}));

/// `threading`, its `getprofile` and `setprofile`, and the profile hook it has now: new
/// references, null where missing.
struct Profile {
    threading: *mut Object,
    get: *mut Object,
    set: *mut Object,
    current: *mut Object,
}

/// # Safety
/// The GIL is held.
unsafe fn threading_profile(api: &Api, s: &SessionApi) -> Profile {
    // SAFETY: the GIL is held; the references are the caller's to give back.
    unsafe {
        let threading = (s.import_module)(c"threading".as_ptr());
        let get = attr(api, threading, c"getprofile");
        let set = attr(api, threading, c"setprofile");
        let current = call(s, get);
        Profile {
            threading,
            get,
            set,
            current,
        }
    }
}

/// Gives back `objects` (null ones skipped by Py_DecRef) and clears an error they left.
///
/// # Safety
/// The GIL is held; each object is a reference the caller owns.
unsafe fn release(api: &Api, s: &SessionApi, objects: &[*mut Object]) {
    // SAFETY: the caller's promise.
    unsafe {
        for &o in objects {
            (api.dec_ref)(o);
        }
        if !(s.err_occurred)().is_null() {
            (api.err_clear)();
        }
    }
}

/// Has every thread `threading` starts from now name itself at its first call, unless the
/// program gave `threading` a profile hook of its own.
///
/// # Safety
/// The GIL is held.
unsafe fn install_thread_hook(api: &Api, s: &SessionApi) {
    // SAFETY: the GIL is held; references taken are given back (the hook's is kept in HOOK
    // until `remove_thread_hook`).
    unsafe {
        let Profile {
            threading,
            get,
            set,
            current,
        } = threading_profile(api, s);
        if current == api.none && !set.is_null() {
            let hook = (s.cfunction_new)(
                HOOK_DEF.0.get() as *mut c_void,
                core::ptr::null_mut(),
                core::ptr::null_mut(),
            );
            if !hook.is_null() {
                let r = (s.call_obj_args)(set, hook, core::ptr::null_mut::<Object>());
                if r.is_null() {
                    (api.dec_ref)(hook);
                } else {
                    (api.dec_ref)(r);
                    HOOK.store(hook as usize, Ordering::Release);
                }
            }
        }
        release(api, s, &[current, set, get, threading]);
    }
}

/// Takes the hook out of `threading` if it is still the one there.
///
/// # Safety
/// The GIL is held.
unsafe fn remove_thread_hook(api: &Api, s: &SessionApi) {
    let hook = HOOK.swap(0, Ordering::AcqRel) as *mut Object;
    if hook.is_null() {
        return;
    }
    // SAFETY: the GIL is held; references taken are given back, the hook's last.
    unsafe {
        let Profile {
            threading,
            get,
            set,
            current,
        } = threading_profile(api, s);
        if current == hook && !set.is_null() {
            let r = (s.call_obj_args)(set, api.none, core::ptr::null_mut::<Object>());
            (api.dec_ref)(r);
        }
        release(api, s, &[current, set, get, threading, hook]);
    }
}

/// The profile function of a thread started while tracking (called with the frame, event and
/// argument of its first event): names the thread, and removes itself.
unsafe extern "C" fn thread_hook(
    _self: *mut Object,
    _args: *const *mut Object,
    _nargs: isize,
) -> *mut Object {
    let (Some(api), Some(s)) = (api::get(), session_api::get()) else {
        return core::ptr::null_mut();
    };
    // SAFETY: the GIL is held (a profile event); removes the calling thread's profile function.
    unsafe { (api.eval_set_profile)(None, core::ptr::null_mut()) };
    if TRACKING.load(Ordering::Acquire) {
        // What the hook allocates is not the program's.
        let t = tls::get();
        let was = t.in_tracker;
        t.in_tracker = 1;
        // SAFETY: the GIL is held; references taken are given back.
        unsafe {
            let threading = (s.import_module)(c"threading".as_ptr());
            let current = attr(api, threading, c"current_thread");
            let me = call(s, current);
            let name = attr(api, me, c"name");
            if let Some(bytes) = text(api, name) {
                thread::set_python_name(tls::get(), &bytes);
            }
            for o in [name, me, current, threading] {
                (api.dec_ref)(o);
            }
            if !(s.err_occurred)().is_null() {
                (api.err_clear)();
            }
        }
        tls::get().in_tracker = was;
    }
    none(api)
}
