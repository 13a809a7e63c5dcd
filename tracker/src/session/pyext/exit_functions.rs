//! `atexit._run_exitfuncs` wrapped for `memtrace run`: a program (or its test runner) that runs
//! the exit functions itself goes on afterwards, and CPython clears them once run, the tracker's
//! `script_finished` too. The wrapper registers it again once they are done, so that the
//! capture still ends at the interpreter's end (a registration made while they run would be
//! cleared with them). `script_finished` itself does nothing when Python code calls it.

use super::objects::{attr, call};
use super::session_api::{self, SessionApi};
use super::{MethodDef, Static, METH_NOARGS};
use crate::python::api::{self, Object};
use crate::tls;
use libc::c_void;
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The tracker's module (a reference kept for the run), once the wrapper is made.
static MODULE: AtomicUsize = AtomicUsize::new(0);

static WRAPPER_DEF: Static<MethodDef> = Static(UnsafeCell::new(MethodDef {
    name: c"_run_exitfuncs".as_ptr(),
    meth: run_exitfuncs as *const c_void,
    flags: METH_NOARGS,
    doc: core::ptr::null(),
}));

/// `_memtrace_tracker.exit_functions(original)`: the wrapper of `atexit._run_exitfuncs` that
/// `memtrace run`'s start-up hook puts in its place (a builtin function named as the original,
/// whose self is the original).
pub unsafe extern "C" fn exit_functions(module: *mut Object, original: *mut Object) -> *mut Object {
    let (Some(api), Some(s)) = (api::get(), session_api::get()) else {
        return core::ptr::null_mut();
    };
    // SAFETY: the GIL is held (Python calls this); `module` and `original` are live. The
    // module's reference is kept for the run (once); the wrapper holds the original's.
    unsafe {
        if MODULE
            .compare_exchange(0, module as usize, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            (s.inc_ref)(module);
        }
        let wrapper = (s.cfunction_new)(
            WRAPPER_DEF.0.get() as *mut c_void,
            original,
            core::ptr::null_mut(),
        );
        if wrapper.is_null() {
            // The original stays in place (the start-up hook keeps what it was given).
            (api.err_clear)();
            (s.inc_ref)(original);
            return original;
        }
        wrapper
    }
}

/// The wrapper: `original()`, then `atexit.register(script_finished)` again. An exception of
/// the original (CPython's prints its functions' own) goes on to the caller, unregistered: the
/// capture then ends at the process's exit.
unsafe extern "C" fn run_exitfuncs(original: *mut Object, _: *mut Object) -> *mut Object {
    let (Some(api), Some(s)) = (api::get(), session_api::get()) else {
        return core::ptr::null_mut();
    };
    // SAFETY: Python calls this with the GIL held; `original` is the wrapper's live self.
    unsafe {
        let result = call(s, original);
        if !result.is_null() {
            let t = tls::get();
            let was = t.in_tracker;
            // What registering allocates is not the program's.
            t.in_tracker = 1;
            register_script_finished(api, s);
            tls::get().in_tracker = was;
        }
        result
    }
}

/// `atexit.register(module.script_finished)`; an error it leaves is cleared.
///
/// # Safety
/// The GIL is held, and no exception is set.
unsafe fn register_script_finished(api: &api::Api, s: &SessionApi) {
    let module = MODULE.load(Ordering::Acquire) as *mut Object;
    // SAFETY: the caller's promise; the module's reference is kept for the run; references
    // taken are given back (the atexit module's is borrowed from sys.modules: the start-up
    // hook imported it).
    unsafe {
        let atexit = session_api::imported(s, c"atexit");
        let register = attr(api, atexit, c"register");
        let finished = attr(api, module, c"script_finished");
        if !register.is_null() && !finished.is_null() {
            let done = (s.call_obj_args)(register, finished, core::ptr::null_mut::<Object>());
            (api.dec_ref)(done);
        }
        (api.dec_ref)(register);
        (api.dec_ref)(finished);
        if !(s.err_occurred)().is_null() {
            (api.err_clear)();
        }
    }
}
