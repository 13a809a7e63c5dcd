//! The Python extension module `_memtrace_tracker`: how a Python run turns tracking on.
//!
//! `memtrace run script.py` puts a `sitecustomize` module and a link to this library named
//! `_memtrace_tracker.so` on the interpreter's path (see reporter/src/run/bootstrap.rs). Python
//! imports it at start-up, after its own initialization and before the script: the import runs
//! `PyInit__memtrace_tracker` (`init_module` below), with the GIL held, which wraps the
//! allocators (hooks::pymem) and learns the interpreter's frame layout (stacks::python). Nothing
//! here runs in other programs.
//!
//! Imported into an interpreter that `memtrace run` did not start, the module does nothing until
//! its `start` is called (session.rs: in-process tracking).

mod exit_functions;
mod objects;
mod session;
pub(crate) mod session_api;
mod startup;
mod thread_names;
mod types;

use crate::hooks::pymem as allocators;
use crate::pyrun::{ALLOCATORS, OBJECT_TYPES, WANTED};
use crate::python::api::{self, Object};
use crate::python::{INTERPRETER, TRACKING};
use crate::{thread, tls, ACTIVE};
use libc::{c_char, c_int, c_void};
use memtrace_format::Marker;
use std::cell::UnsafeCell;
use std::sync::atomic::Ordering;

/// Learns the running interpreter's frame layout (stacks::python); tells the user why Python
/// stacks are missing when it cannot.
fn learn_interpreter(api: &api::Api) -> bool {
    match crate::python::learn_interpreter(api) {
        Ok(()) => true,
        Err(msg) => {
            if !msg.is_empty() {
                // SAFETY: Py_GetVersion returns a static NUL-terminated string.
                let version = unsafe { core::ffi::CStr::from_ptr((api.get_version)()) }.to_bytes();
                tell_about_python(version, msg);
            }
            false
        }
    }
}

/// Says `msg` about this process's Python, whose version `Py_GetVersion` gave as `version`
/// (a family may run several interpreters: which process, which Python).
fn tell_about_python(version: &[u8], msg: &[u8]) {
    let version = version.split(|&b| b == b' ').next().unwrap_or(b"?");
    let mut line = format!("process {} (Python ", crate::sys::getpid()).into_bytes();
    line.extend_from_slice(version);
    line.extend_from_slice(b"): ");
    line.extend_from_slice(msg);
    crate::lifecycle::tell_memtrace(&line);
}

/// In a Python run whose interpreter never imported this module as a supported Python does
/// (3.6 to 3.8 fail its import, 2.x looks for another init function): says so, once, when the
/// interpreter's version is one the tracker does not support. Any other reason (the hook
/// kept out by -I, an interpreter that failed at start-up) is said elsewhere, or not here.
pub fn tell_if_unsupported() {
    static TOLD: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if !WANTED.load(Ordering::Relaxed) || TRACKING.load(Ordering::Acquire) {
        return;
    }
    type GetVersion = unsafe extern "C" fn() -> *const c_char;
    let Some(get) = api::sym(c"Py_GetVersion") else {
        return;
    };
    // SAFETY: CPython's Py_GetVersion (every version has it): a static NUL-terminated string.
    let version = unsafe {
        let get = core::mem::transmute::<*mut c_void, GetVersion>(get);
        core::ffi::CStr::from_ptr(get()).to_bytes()
    };
    let (major, minor) = major_minor(version);
    if major != 0 && !crate::python::supports(major, minor) && !TOLD.swap(true, Ordering::AcqRel) {
        tell_about_python(version, crate::python::UNSUPPORTED);
    }
}

/// "3.8.18 (default, ...)" -> (3, 8); (0, 0) when it does not read as a version.
fn major_minor(version: &[u8]) -> (u32, u32) {
    let mut parts = version.split(|&b| b == b'.' || b == b' ').map(|p| {
        std::str::from_utf8(p)
            .ok()
            .and_then(|p| p.parse::<u32>().ok())
    });
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(major), Some(minor)) => (major, minor),
        _ => (0, 0),
    }
}

fn none(api: &api::Api) -> *mut Object {
    // SAFETY: None is a live object; the caller returns this new reference to Python.
    unsafe { (api.inc_ref)(api.none) };
    api.none
}

/// `_memtrace_tracker.untracked_thread()`: nothing the calling thread allocates from now on is
/// recorded, as for the tracker's own native threads (`memtrace attach`'s watcher thread, whose
/// polling showed in the capture among the program's allocations).
unsafe extern "C" fn untracked_thread(_module: *mut Object, _: *mut Object) -> *mut Object {
    let Some(api) = api::get() else {
        return core::ptr::null_mut();
    };
    tls::get().in_tracker = 1;
    none(api)
}

/// `_memtrace_tracker.script_finished()`: the script is done (atexit, before the interpreter
/// tears down): what is live now is what the script leaked, and the capture is finished.
unsafe extern "C" fn script_finished(_module: *mut Object, _: *mut Object) -> *mut Object {
    let Some(api) = api::get() else {
        return core::ptr::null_mut();
    };
    // SAFETY: the GIL is held (an exit function).
    if !unsafe { (api.eval_get_frame)() }.is_null() {
        // Python code runs the exit functions (`atexit._run_exitfuncs()`, as some test runners
        // do), not the interpreter's end: the script goes on, and this function is registered
        // again once they are done (exit_functions.rs). It ended the capture here: what the
        // script did afterwards was not recorded, and nothing said so.
        return none(api);
    }
    // Not once recording has ended (the program sandboxed itself: the types' chunks would make
    // system calls its filter forbids).
    if TRACKING.load(Ordering::Relaxed) && ACTIVE.load(Ordering::Acquire) {
        let t = tls::get();
        let was = t.in_tracker;
        t.in_tracker = 1;
        thread::record_marker(t, Marker::ExitSnapshot);
        tls::get().in_tracker = was;
        if OBJECT_TYPES.load(Ordering::Relaxed) {
            record_types(api);
        }
    }
    // The capture ends with the script, before the interpreter's teardown, as memray's does.
    // Finishing it at exit instead takes long enough, after the interpreter is freed, for
    // daemon threads of 3.10 to wake on its freed state and crash the process; and the thread
    // states of daemon threads are freed while those threads live on.
    crate::lifecycle::finish_now();
    none(api)
}

/// Walks the live objects and records their types (types.rs), with the re-entrancy flag set:
/// the walk's own allocations are not recorded.
fn record_types(api: &api::Api) {
    let Some(session) = session_api::get() else {
        return;
    };
    let t = tls::get();
    let was = t.in_tracker;
    t.in_tracker = 1;
    types::record_live_objects(api, session);
    tls::get().in_tracker = was;
}

/// `_memtrace_tracker.record_object_types()`: in-process tracking (`Tracker(object_types=True)`,
/// the pytest plugin's `limit_leaks`): records the types of the objects live now, before `stop`.
unsafe extern "C" fn record_object_types(_module: *mut Object, _: *mut Object) -> *mut Object {
    let Some(api) = api::get() else {
        return core::ptr::null_mut();
    };
    if TRACKING.load(Ordering::Relaxed) && ACTIVE.load(Ordering::Acquire) {
        record_types(api);
    }
    none(api)
}

/// `_memtrace_tracker.thread_started(name)`: a thread `threading` starts, before its target
/// runs (the start-up hook wraps `threading.Thread._set_native_id`). Records the thread's name.
unsafe extern "C" fn thread_started(
    _module: *mut Object,
    args: *const *mut Object,
    nargs: isize,
) -> *mut Object {
    let Some(api) = api::get() else {
        return core::ptr::null_mut();
    };
    // SAFETY: the arguments Python passed to this call.
    unsafe { with_str_arg(api, args, nargs, thread::set_python_name) };
    none(api)
}

/// `_memtrace_tracker.script_path(path)`: the start-up hook names the main script (as its code
/// objects will name it), so that the allocations of its compilation, before its first frame
/// runs, are charged to it (python::script).
unsafe extern "C" fn script_path(
    _module: *mut Object,
    args: *const *mut Object,
    nargs: isize,
) -> *mut Object {
    let Some(api) = api::get() else {
        return core::ptr::null_mut();
    };
    // SAFETY: the arguments Python passed to this call.
    unsafe {
        with_str_arg(api, args, nargs, |t, path| {
            crate::python::script::set(t, path)
        })
    };
    none(api)
}

/// While tracking: hands `f` the UTF-8 of the first argument (a str; anything else is ignored,
/// its TypeError cleared) with the re-entrancy flag set, so that nothing it does is recorded.
///
/// # Safety
/// `args` holds `nargs` live argument references; the GIL is held.
unsafe fn with_str_arg(
    api: &api::Api,
    args: *const *mut Object,
    nargs: isize,
    f: impl FnOnce(&mut tls::Tls, &[u8]),
) {
    if !TRACKING.load(Ordering::Relaxed) || nargs < 1 || args.is_null() {
        return;
    }
    // SAFETY: Python passes `nargs` argument references.
    let arg = unsafe { *args };
    let t = tls::get();
    let was = t.in_tracker;
    t.in_tracker = 1;
    let mut len: isize = 0;
    // SAFETY: a live object from the caller; the UTF-8 buffer belongs to it.
    let p = unsafe { (api.unicode_as_utf8_and_size)(arg, &mut len) };
    if p.is_null() || len < 0 {
        // SAFETY: clearing the TypeError of an argument that is not a str (or the
        // UnicodeEncodeError of one that holds surrogate escapes).
        unsafe { (api.err_clear)() };
        // A file name that is not UTF-8 (its bytes as surrogate escapes): the bytes the frames
        // name it by (its compilation read as `<unknown>` otherwise).
        if is_exact_str(arg) {
            // SAFETY: a live str, alive during this call.
            if let Some(bytes) = unsafe { crate::python::file_name_bytes(arg as usize) } {
                f(t, &bytes);
            }
        }
    } else {
        // SAFETY: `len` bytes of UTF-8 owned by `arg`, alive during this call.
        let bytes = unsafe { core::slice::from_raw_parts(p as *const u8, len as usize) };
        f(t, bytes);
    }
    tls::get().in_tracker = was;
}

/// Whether the live object `o` is a str (of type str itself).
fn is_exact_str(o: *mut Object) -> bool {
    let Some(str_type) = api::sym(c"PyUnicode_Type") else {
        return false;
    };
    // SAFETY: a live object's header: its type pointer follows its reference count.
    let ty = unsafe { ((o as usize + 8) as *const usize).read() };
    ty == str_type as usize
}

/// PyMethodDef.
#[repr(C)]
struct MethodDef {
    name: *const c_char,
    meth: *const c_void,
    flags: c_int,
    doc: *const c_char,
}

/// PyModuleDef of a default (not free-threaded) build, 3.9 to 3.13.
#[repr(C)]
struct ModuleDef {
    ob_refcnt: isize,
    ob_type: *mut c_void,
    m_init: *mut c_void,
    m_index: isize,
    m_copy: *mut c_void,
    m_name: *const c_char,
    m_doc: *const c_char,
    m_size: isize,
    m_methods: *mut MethodDef,
    m_slots: *mut c_void,
    m_traverse: *mut c_void,
    m_clear: *mut c_void,
    m_free: *mut c_void,
}

const METH_O: c_int = 0x0008;
const METH_KEYWORDS: c_int = 0x0002;
const METH_NOARGS: c_int = 0x0004;
const METH_FASTCALL: c_int = 0x0080;
/// PYTHON_API_VERSION, unchanged since 3.0.
const API_VERSION: c_int = 1013;

struct Static<T>(UnsafeCell<T>);
// SAFETY: handed to Python once, under the GIL; the tracker never touches it again.
unsafe impl<T> Sync for Static<T> {}

static METHODS: Static<[MethodDef; 14]> = Static(UnsafeCell::new([
    MethodDef {
        name: c"start".as_ptr(),
        meth: session::start as *const c_void,
        flags: METH_FASTCALL,
        doc: c"start(path, native, python_allocators, follow_fork): start tracking this process"
            .as_ptr(),
    },
    MethodDef {
        name: c"stop".as_ptr(),
        meth: session::stop as *const c_void,
        flags: METH_FASTCALL,
        doc: c"stop([keep_hooks]): stop tracking and finish the capture".as_ptr(),
    },
    MethodDef {
        name: c"release_hooks".as_ptr(),
        meth: session::release_hooks as *const c_void,
        flags: METH_NOARGS,
        doc: c"release_hooks(): put back the slots stop(True) left patched".as_ptr(),
    },
    MethodDef {
        name: c"child_records".as_ptr(),
        meth: session::child_records as *const c_void,
        flags: METH_NOARGS,
        doc: c"child_records(): the child records of the last capture started here".as_ptr(),
    },
    MethodDef {
        name: c"allocated_bytes".as_ptr(),
        meth: session::allocated_bytes as *const c_void,
        flags: METH_NOARGS,
        doc: c"allocated_bytes(): the bytes the last capture started here recorded as allocated"
            .as_ptr(),
    },
    MethodDef {
        name: c"script_finished".as_ptr(),
        meth: script_finished as *const c_void,
        flags: METH_NOARGS,
        doc: core::ptr::null(),
    },
    MethodDef {
        name: c"exit_functions".as_ptr(),
        meth: exit_functions::exit_functions as *const c_void,
        flags: METH_O,
        doc: core::ptr::null(),
    },
    MethodDef {
        name: c"record_object_types".as_ptr(),
        meth: record_object_types as *const c_void,
        flags: METH_NOARGS,
        doc: c"record_object_types(): record the types of the objects live now (before stop)"
            .as_ptr(),
    },
    MethodDef {
        name: c"thread_started".as_ptr(),
        meth: thread_started as *const c_void,
        flags: METH_FASTCALL,
        doc: core::ptr::null(),
    },
    MethodDef {
        name: c"name_threads".as_ptr(),
        meth: thread_names::name_threads as *const c_void,
        flags: METH_O,
        doc: core::ptr::null(),
    },
    MethodDef {
        name: c"find_spec".as_ptr(),
        meth: thread_names::find_spec as *const c_void,
        flags: METH_FASTCALL | METH_KEYWORDS,
        doc: c"find_spec($module, fullname, path=None, target=None)\n--\n\nmemtrace's finder: finds nothing"
            .as_ptr(),
    },
    MethodDef {
        name: c"script_path".as_ptr(),
        meth: script_path as *const c_void,
        flags: METH_FASTCALL,
        doc: core::ptr::null(),
    },
    MethodDef {
        name: c"untracked_thread".as_ptr(),
        meth: untracked_thread as *const c_void,
        flags: METH_NOARGS,
        doc: c"untracked_thread(): record nothing the calling thread allocates from now on"
            .as_ptr(),
    },
    MethodDef {
        name: core::ptr::null(),
        meth: core::ptr::null(),
        flags: 0,
        doc: core::ptr::null(),
    },
]));

static MODULE: Static<ModuleDef> = Static(UnsafeCell::new(ModuleDef {
    ob_refcnt: 1,
    ob_type: core::ptr::null_mut(),
    m_init: core::ptr::null_mut(),
    m_index: 0,
    m_copy: core::ptr::null_mut(),
    m_name: c"_memtrace_tracker".as_ptr(),
    m_doc: c"memtrace's hooks inside the interpreter (memtrace run, or start and stop)".as_ptr(),
    m_size: -1,
    m_methods: core::ptr::null_mut(),
    m_slots: core::ptr::null_mut(),
    m_traverse: core::ptr::null_mut(),
    m_clear: core::ptr::null_mut(),
    m_free: core::ptr::null_mut(),
}));

/// The module's init function, run by `import _memtrace_tracker` (with the GIL held).
///
/// # Safety
/// Called by CPython's import machinery only.
pub unsafe extern "C" fn init_module() -> *mut Object {
    let Some(api) = api::get() else {
        tell_if_unsupported();
        return not_this_python();
    };
    if WANTED.load(Ordering::Relaxed)
        && ACTIVE.load(Ordering::Acquire)
        && !TRACKING.swap(true, Ordering::AcqRel)
    {
        if ALLOCATORS.load(Ordering::Relaxed) {
            // The frees of objects name their type: the types live at the peak.
            allocators::set_typed_frees(OBJECT_TYPES.load(Ordering::Relaxed));
            allocators::install(api);
        }
        // The main thread is Python's "MainThread" (as an attach and the Python Tracker name
        // it), not the process's name.
        if crate::sys::gettid() == crate::sys::getpid() {
            let t = tls::get();
            let was = t.in_tracker;
            t.in_tracker = 1;
            thread::set_python_name(tls::get(), b"MainThread");
            tls::get().in_tracker = was;
        }
        let known = learn_interpreter(api);
        if known && crate::unwind::enabled() {
            crate::unwind::learn_eval_loop();
        }
        // The script starts when `site`, which imports this module, is done (startup.rs).
        match INTERPRETER.get() {
            Some(py) if py.layout.minor >= 12 => crate::python::script::watch_start(tls::get()),
            Some(py) if startup::watch(api, py) => {}
            _ => startup::mark(),
        }
    }
    let def = MODULE.0.get();
    // SAFETY: the static definition, completed with its method table and handed to Python
    // once (a second import finds the module in sys.modules).
    unsafe {
        (*def).m_methods = METHODS.0.get() as *mut MethodDef;
        (api.module_create2)(def as *mut c_void, API_VERSION)
    }
}

/// The import's failure in a Python the tracker does not know (3.9 and older lack functions it
/// calls): an ImportError, which callers expect of an extension module that cannot load (a
/// null without an exception is a SystemError).
fn not_this_python() -> *mut Object {
    type SetString = unsafe extern "C" fn(*mut Object, *const c_char);
    if let (Some(set), Some(kind)) = (api::sym(c"PyErr_SetString"), api::sym(c"PyExc_ImportError"))
    {
        // SAFETY: CPython's PyErr_SetString (its C signature) and the exported variable that
        // holds the ImportError type; the import runs with the GIL held.
        unsafe {
            let set = core::mem::transmute::<*mut c_void, SetString>(set);
            let kind = *(kind as *const *mut Object);
            if !kind.is_null() {
                set(
                    kind,
                    c"memtrace's tracker supports CPython 3.10 to 3.13".as_ptr(),
                );
            }
        }
    }
    core::ptr::null_mut()
}
