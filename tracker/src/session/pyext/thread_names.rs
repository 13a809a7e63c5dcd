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

/// Remembers the name of every thread of `threading` by its native id.
///
/// # Safety
/// The GIL is held.
pub unsafe fn learn_all(api: &Api, s: &SessionApi) {
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
    // SAFETY: the GIL is held; references taken are given back, but the original's and the
    // wrapper's, kept in ORIGINAL and WRAPPER until `remove`.
    unsafe {
        let threading = (s.import_module)(c"threading".as_ptr());
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
        for o in [method, class, threading] {
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
        let threading = (s.import_module)(c"threading".as_ptr());
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
    if nargs < 1 || args.is_null() {
        // SAFETY: the GIL is held (Python calls this); the original raises its own TypeError.
        return unsafe { call(s, original) };
    }
    // SAFETY: Python passes `nargs` (≥ 1) live argument references; the GIL is held.
    let me = unsafe { *args };
    // SAFETY: live objects; the GIL is held; the result is returned to Python.
    let result = unsafe { (s.call_obj_args)(original, me, core::ptr::null_mut::<Object>()) };
    if result.is_null() || !TRACKING.load(Ordering::Acquire) {
        return result;
    }
    let t = tls::get();
    let was = t.in_tracker;
    // What naming allocates is not the program's.
    t.in_tracker = 1;
    // SAFETY: the GIL is held; references taken are given back; an error left is cleared.
    unsafe {
        let started = attr(api, me, c"_started");
        let is_set = attr(api, started, c"is_set");
        let flag = call(s, is_set);
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
