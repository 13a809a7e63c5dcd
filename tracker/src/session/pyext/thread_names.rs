//! Thread names for in-process tracking (`_memtrace_tracker.start`/`stop`, used by the Python
//! `Tracker`, the pytest plugin and `memtrace attach`). Threads already running are named from
//! `threading.enumerate()` at start and at stop; a thread `threading` starts meanwhile names
//! itself in `threading.Thread._set_native_id`, which its `_bootstrap_inner` calls before the
//! target runs: while tracking, that method is wrapped (as `memtrace run`'s start-up hook does).
//!
//! No profile function: on 3.12+ setting one turns on the monitoring instrumentation, which
//! leaves a block in every function run afterwards (72 bytes on 3.12, 64 on 3.13), and
//! `threading.setprofile` is the program's slot.

use super::api::{Api, Object};
use super::objects::{attr, call, text};
use super::session_api::{self, SessionApi};
use super::{MethodDef, Static, METH_FASTCALL, TRACKING};
use crate::{names, thread, tls};
use libc::c_void;
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The program's `threading` module (a new reference), or null when it has not imported it:
/// importing it here would run the program's import hooks and add a dozen modules to its
/// `sys.modules` (an attach must leave the program's imports alone). A program without
/// `threading` has no thread of it to name.
///
/// # Safety
/// The GIL is held.
unsafe fn imported_threading(s: &SessionApi) -> *mut Object {
    // SAFETY: the GIL is held; both lookups give borrowed references (or null), and the one
    // handed out is made a new reference.
    unsafe {
        let threading = session_api::imported(s, c"threading");
        if !threading.is_null() {
            (s.inc_ref)(threading);
        }
        threading
    }
}

/// Remembers the name of every thread of `threading` by its native id.
///
/// # Safety
/// The GIL is held.
pub unsafe fn learn_all(api: &Api, s: &SessionApi) {
    // SAFETY: the GIL is held; every reference taken is given back.
    unsafe {
        let threading = imported_threading(s);
        if threading.is_null() {
            // No thread of `threading`'s: the main thread has the name it would give it.
            names::set(crate::sys::getpid(), b"MainThread");
            return;
        }
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

/// The wrapper now in `threading.Thread` (a builtin function object whose self is the
/// original method), while installed; 0 otherwise.
static WRAPPER: AtomicUsize = AtomicUsize::new(0);
/// The original `threading.Thread._set_native_id` (a reference kept while installed).
static ORIGINAL: AtomicUsize = AtomicUsize::new(0);

static WRAPPER_DEF: Static<MethodDef> = Static(UnsafeCell::new(MethodDef {
    name: c"_set_native_id".as_ptr(),
    meth: set_native_id as *const c_void,
    flags: METH_FASTCALL,
    doc: core::ptr::null(),
}));

/// Wraps `threading.Thread._set_native_id`, so that every thread `threading` starts from now on
/// names itself before its target runs. Nothing when `threading` has no such method (a module
/// of the program's own named threading) or anything fails (the thread names then come from `threading.enumerate()` at stop).
///
/// # Safety
/// The GIL is held.
pub unsafe fn install(api: &Api, s: &SessionApi) {
    if WRAPPER.load(Ordering::Acquire) != 0 {
        return;
    }
    // SAFETY: the GIL is held; the module's reference is given back.
    unsafe {
        let threading = imported_threading(s);
        install_in(api, s, threading);
        (api.dec_ref)(threading);
        if !(s.err_occurred)().is_null() {
            (api.err_clear)();
        }
    }
}

/// [`install`] into the module `threading` (a live object, or null: nothing).
///
/// # Safety
/// The GIL is held.
unsafe fn install_in(api: &Api, s: &SessionApi, threading: *mut Object) {
    if WRAPPER.load(Ordering::Acquire) != 0 {
        return;
    }
    // SAFETY: the GIL is held; references taken are given back, but the original's and the
    // wrapper's, kept in ORIGINAL and WRAPPER until `remove`.
    unsafe {
        let class = attr(api, threading, c"Thread");
        let original = attr(api, class, c"_set_native_id");
        let wrapper = if original.is_null() {
            core::ptr::null_mut()
        } else {
            (s.cfunction_new)(
                WRAPPER_DEF.0.get() as *mut c_void,
                original,
                core::ptr::null_mut(),
            )
        };
        // An instancemethod binds the builtin function to the thread, as a def would.
        let method = if wrapper.is_null() {
            core::ptr::null_mut()
        } else {
            (s.instance_method_new)(wrapper)
        };
        if !method.is_null() && (s.set_attr_string)(class, c"_set_native_id".as_ptr(), method) == 0
        {
            ORIGINAL.store(original as usize, Ordering::Release);
            WRAPPER.store(wrapper as usize, Ordering::Release);
        } else {
            (api.dec_ref)(original);
            (api.dec_ref)(wrapper);
        }
        for o in [method, class] {
            (api.dec_ref)(o);
        }
        if !(s.err_occurred)().is_null() {
            (api.err_clear)();
        }
    }
}

/// Puts the original method back into `threading.Thread`, if the wrapper is still there.
///
/// # Safety
/// The GIL is held.
pub unsafe fn remove(api: &Api, s: &SessionApi) {
    let wrapper = WRAPPER.swap(0, Ordering::AcqRel) as *mut Object;
    let original = ORIGINAL.swap(0, Ordering::AcqRel) as *mut Object;
    if wrapper.is_null() {
        return;
    }
    // SAFETY: the GIL is held; references taken are given back, the kept ones last.
    unsafe {
        let threading = imported_threading(s);
        let class = attr(api, threading, c"Thread");
        // The class attribute's __get__ gives the instancemethod's function: the wrapper.
        let current = attr(api, class, c"_set_native_id");
        if current == wrapper {
            (s.set_attr_string)(class, c"_set_native_id".as_ptr(), original);
        }
        for o in [current, class, threading, wrapper, original] {
            (api.dec_ref)(o);
        }
        if !(s.err_occurred)().is_null() {
            (api.err_clear)();
        }
    }
}

/// The wrapper: `original(thread)`, then, while tracking and for a thread whose `_started`
/// event is not set yet (one `threading` starts, in its `_bootstrap_inner`; the main thread and
/// the stand-ins of threads made in C have theirs set), records the calling thread's name.
unsafe extern "C" fn set_native_id(
    original: *mut Object,
    args: *const *mut Object,
    nargs: isize,
) -> *mut Object {
    let (Some(api), Some(s)) = (super::api::get(), session_api::get()) else {
        return core::ptr::null_mut();
    };
    // SAFETY: Python calls this with `nargs` live arguments and the GIL held.
    let (result, me) = unsafe { call_original(s, original, args, nargs) };
    if result.is_null() || me.is_null() || !TRACKING.load(Ordering::Acquire) {
        return result;
    }
    let t = tls::get();
    let was = t.in_tracker;
    // What naming allocates is not the program's.
    t.in_tracker = 1;
    // SAFETY: the GIL is held; references taken are given back; an error left is cleared.
    unsafe {
        let started = attr(api, me, c"_started");
        // The event's flag, read as is_set() returns it, without running Python code a
        // tracer of the program's would see.
        let mut is_set = attr(api, started, c"_flag");
        let flag = if is_set.is_null() {
            is_set = attr(api, started, c"is_set");
            call(s, is_set)
        } else {
            (api.inc_ref)(is_set);
            is_set
        };
        if !flag.is_null() && (s.object_is_true)(flag) == 0 {
            let name = attr(api, me, c"name");
            if let Some(bytes) = text(api, name) {
                thread::set_python_name(tls::get(), &bytes);
            }
            (api.dec_ref)(name);
        }
        for o in [flag, is_set, started] {
            (api.dec_ref)(o);
        }
        if !(s.err_occurred)().is_null() {
            (api.err_clear)();
        }
    }
    tls::get().in_tracker = was;
    result
}

/// `_memtrace_tracker.name_threads(threading)`: `memtrace run`'s start-up hook, once the
/// program has `threading`: every thread it starts from now on names itself (the wrapper above,
/// kept for the whole run).
pub unsafe extern "C" fn name_threads(_module: *mut Object, threading: *mut Object) -> *mut Object {
    let (Some(api), Some(s)) = (super::api::get(), session_api::get()) else {
        return core::ptr::null_mut();
    };
    // SAFETY: the GIL is held (Python calls this); `threading` is the live argument.
    unsafe {
        install_in(api, s, threading);
        (api.inc_ref)(api.none);
    }
    api.none
}

/// `_memtrace_tracker.find_spec(name, path, target)`: the module is `memtrace run`'s finder,
/// first in `sys.meta_path` until the program imports `threading` (importing it at start
/// would add milliseconds and change the program's imports). It finds nothing itself; for
/// `threading` it leaves `sys.meta_path`, asks the finders after it, and has the module's
/// loader name the threads once the module has run. All of it in C: the program's tracers,
/// profilers, debuggers and coverage tools see no frame of memtrace's.
pub unsafe extern "C" fn find_spec(
    module: *mut Object,
    args: *const *mut Object,
    nargs: isize,
    kwnames: *mut Object,
) -> *mut Object {
    let (Some(api), Some(s)) = (super::api::get(), session_api::get()) else {
        return core::ptr::null_mut();
    };
    // SAFETY: the GIL is held (the import system calls this); Python passes `nargs` live
    // positional arguments followed by one per keyword name; references taken are given back,
    // the spec returned to Python.
    unsafe {
        let none = || {
            (api.inc_ref)(api.none);
            api.none
        };
        // (fullname, path=None, target=None), as importlib's finders take them.
        let mut given = [api.none; 3];
        let nargs = nargs & isize::MAX;
        for (i, slot) in given.iter_mut().enumerate() {
            if (i as isize) < nargs && !args.is_null() {
                *slot = *args.add(i);
            }
        }
        if !kwnames.is_null() && !args.is_null() {
            let iter = (s.get_iter)(kwnames);
            let mut at = nargs;
            while !iter.is_null() {
                let key = (s.iter_next)(iter);
                if key.is_null() {
                    break;
                }
                let slot = match text(api, key).as_deref() {
                    Some(b"fullname") => Some(0),
                    Some(b"path") => Some(1),
                    Some(b"target") => Some(2),
                    _ => None,
                };
                if let Some(slot) = slot {
                    given[slot] = *args.offset(at);
                }
                at += 1;
                (api.dec_ref)(key);
            }
            if !iter.is_null() {
                (api.dec_ref)(iter);
            }
        }
        if text(api, given[0]).as_deref() != Some(b"threading") {
            if !(s.err_occurred)().is_null() {
                (api.err_clear)();
            }
            return none();
        }
        let (name, path, target) = (given[0], given[1], given[2]);
        let meta_path = (s.sys_get_object)(c"meta_path".as_ptr());
        if meta_path.is_null() {
            return none();
        }
        let remove = attr(api, meta_path, c"remove");
        let removed = (s.call_obj_args)(remove, module, core::ptr::null_mut::<Object>());
        for o in [removed, remove] {
            if !o.is_null() {
                (api.dec_ref)(o);
            }
        }
        (api.err_clear)();
        let spec = spec_after(api, s, meta_path, name, path, target);
        if spec.is_null() {
            return if (s.err_occurred)().is_null() {
                none()
            } else {
                spec
            };
        }
        name_after_exec(api, s, spec);
        spec
    }
}

/// The spec the finders of `meta_path` give for the module (the first that finds it), a new
/// reference; null when none does (or one raised: the exception is left set, as the import
/// system would have it).
///
/// # Safety
/// The GIL is held; the objects are live.
unsafe fn spec_after(
    api: &Api,
    s: &SessionApi,
    meta_path: *mut Object,
    name: *mut Object,
    path: *mut Object,
    target: *mut Object,
) -> *mut Object {
    // SAFETY: the caller's promise; references taken are given back, the spec kept.
    unsafe {
        let iter = (s.get_iter)(meta_path);
        if iter.is_null() {
            return core::ptr::null_mut();
        }
        let mut spec = core::ptr::null_mut();
        loop {
            let finder = (s.iter_next)(iter);
            if finder.is_null() {
                break;
            }
            let find = attr(api, finder, c"find_spec");
            (api.dec_ref)(finder);
            if find.is_null() {
                continue;
            }
            let found =
                (s.call_obj_args)(find, name, path, target, core::ptr::null_mut::<Object>());
            (api.dec_ref)(find);
            if found.is_null() {
                break;
            }
            if found != api.none {
                spec = found;
                break;
            }
            (api.dec_ref)(found);
        }
        (api.dec_ref)(iter);
        spec
    }
}

static EXEC_DEF: Static<MethodDef> = Static(UnsafeCell::new(MethodDef {
    name: c"exec_module".as_ptr(),
    meth: exec_and_name as *const c_void,
    flags: METH_FASTCALL,
    doc: core::ptr::null(),
}));

/// Has the spec's loader run the module, then name the threads it starts: its `exec_module`
/// becomes a builtin function that calls the original first.
///
/// # Safety
/// The GIL is held; `spec` is live.
unsafe fn name_after_exec(api: &Api, s: &SessionApi, spec: *mut Object) {
    // SAFETY: the caller's promise; references taken are given back (the original
    // exec_module's is kept by the new function, its self).
    unsafe {
        let loader = attr(api, spec, c"loader");
        let original = attr(api, loader, c"exec_module");
        if !original.is_null() {
            let wrapper = (s.cfunction_new)(
                EXEC_DEF.0.get() as *mut c_void,
                original,
                core::ptr::null_mut(),
            );
            if !wrapper.is_null() {
                (s.set_attr_string)(loader, c"exec_module".as_ptr(), wrapper);
                (api.dec_ref)(wrapper);
            }
            (api.dec_ref)(original);
        }
        if !loader.is_null() {
            (api.dec_ref)(loader);
        }
        if !(s.err_occurred)().is_null() {
            (api.err_clear)();
        }
    }
}

/// The loader's `exec_module(module)` for `threading`: the original's, then the wrapper
/// installed into the module.
unsafe extern "C" fn exec_and_name(
    original: *mut Object,
    args: *const *mut Object,
    nargs: isize,
) -> *mut Object {
    let (Some(api), Some(s)) = (super::api::get(), session_api::get()) else {
        return core::ptr::null_mut();
    };
    // SAFETY: Python calls this with `nargs` live arguments and the GIL held.
    unsafe {
        let (result, module) = call_original(s, original, args, nargs);
        if !result.is_null() && !module.is_null() {
            install_in(api, s, module);
        }
        result
    }
}

/// A wrapper's call of the function it wraps with its one argument: the result (returned to
/// Python) and that argument (null when none was given: the original then raises its own
/// TypeError).
///
/// # Safety
/// The GIL is held; `args` holds `nargs` live references.
unsafe fn call_original(
    s: &SessionApi,
    original: *mut Object,
    args: *const *mut Object,
    nargs: isize,
) -> (*mut Object, *mut Object) {
    if nargs < 1 || args.is_null() {
        // SAFETY: the caller's promise.
        return (unsafe { call(s, original) }, core::ptr::null_mut());
    }
    // SAFETY: the caller's promise: at least one live argument.
    unsafe {
        let first = *args;
        let result = (s.call_obj_args)(original, first, core::ptr::null_mut::<Object>());
        (result, first)
    }
}
