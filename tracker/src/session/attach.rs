//! `memtrace attach PID` for a native process: `memtrace` makes the process load this library
//! (its `dlopen`, called through ptrace) and then call [`attach`], which starts in-process
//! tracking (GOT patching, as the Python `Tracker` does) and a control thread. The control thread
//! ends tracking, restoring every patched slot, when the file `stop` appears (`memtrace detach`
//! creates it), when the duration is over, or when tracking ended otherwise; then it removes
//! `stop` and `active` (the file `memtrace attach` left, which `memtrace detach` waits to see
//! go). A Python process is attached through its own interpreter instead (see reporter/cli's
//! attach), which imports this library as the `_memtrace_tracker` module.

use crate::inprocess::{self, Request};
use libc::{c_char, c_int, c_void};
use std::ffi::CStr;
use std::sync::atomic::Ordering;

/// What the control thread needs: the files it watches and when it stops by itself.
struct Control {
    stop: Vec<u8>,
    active: Vec<u8>,
    /// Made once tracking runs, so that `memtrace attach` and `detach` can tell an attach
    /// whose start never ran (its memtrace killed after the dlopen) from one that tracks.
    running: Vec<u8>,
    /// CLOCK_MONOTONIC nanoseconds at which tracking ends (0: never by itself).
    deadline_ns: u64,
}

/// Set in the result word of [`attach`] and [`attach_python`] beside the code: the word was
/// written (the tracer zeroes it before the call).
pub const RESULT_WRITTEN: u64 = 1 << 32;

/// Results of [`attach`], as `memtrace attach` reads them.
pub const ATTACHED: c_int = 0;
pub const ALREADY: c_int = 1;
pub const NO_CAPTURE: c_int = 2;
pub const NO_THREAD: c_int = 3;
pub const BAD_ARGUMENTS: c_int = 4;
/// The process has no descriptor free (its open-file limit reached): no file can be made.
pub const NO_DESCRIPTOR: c_int = 5;

/// Starts tracking into the capture `path` and the control thread watching `stop` (removing
/// `stop` and `active` at the end), for `duration_ms` milliseconds (0: until detached), with
/// native stacks when `native` is not 0. Called once in the target, by `memtrace attach`; the
/// result goes to `*result` too, with [`RESULT_WRITTEN`] (the tracer returns the call through
/// a signal frame, which gives it no return value).
///
/// # Safety
/// The three paths are NUL-terminated strings; `result` is null or points to a writable word.
pub unsafe extern "C" fn attach(
    path: *const c_char,
    stop: *const c_char,
    active: *const c_char,
    duration_ms: u64,
    native: c_int,
    result: *mut u64,
) -> c_int {
    // SAFETY: forwarded as the caller gave them.
    let code = unsafe { start(path, stop, active, duration_ms, native) };
    // SAFETY: the caller passes a writable word or null.
    unsafe { report(result, code) };
    code
}

/// Writes `code` with [`RESULT_WRITTEN`] to `result` (null: nowhere).
///
/// # Safety
/// `result` is null or points to a writable word.
unsafe fn report(result: *mut u64, code: c_int) {
    if !result.is_null() {
        // SAFETY: the caller's word.
        unsafe { result.write_volatile(RESULT_WRITTEN | u64::from(code as u32)) };
    }
}

/// Writes the address of the calling thread's errno to `result` (not null): `memtrace attach`
/// puts back the value the thread had before the attach's calls (dlopen sets it).
///
/// # Safety
/// `result` is null or points to a writable word.
pub unsafe extern "C" fn errno_at(result: *mut u64) {
    if !result.is_null() {
        // SAFETY: the caller's word; errno's location is the calling thread's.
        unsafe { result.write_volatile(libc::__errno_location() as u64) };
    }
}

/// Results of [`attach_python`].
pub const QUEUED: c_int = 0;
pub const QUEUE_FULL: c_int = 1;
pub const NOT_PYTHON: c_int = 2;
pub const NO_MEMORY: c_int = 3;
/// Python is loaded but its interpreter does not run (not initialized yet, or finalized): a
/// pending call there faulted.
pub const NOT_RUNNING: c_int = 4;

/// Queues `code` for a CPython process's main thread: `Py_AddPendingCall(PyRun_SimpleString,
/// copy)`, the copy on the heap (it must outlive this call). The result goes to `*result`, with
/// [`RESULT_WRITTEN`].
///
/// # Safety
/// `code` is a NUL-terminated string; `result` is null or points to a writable word.
pub unsafe extern "C" fn attach_python(code: *const c_char, result: *mut u64) -> c_int {
    // SAFETY: forwarded as the caller gave it.
    let status = unsafe { queue_python(code) };
    // SAFETY: the caller passes a writable word or null.
    unsafe { report(result, status) };
    status
}

/// The queueing itself: [`attach_python`]'s code.
///
/// # Safety
/// `code` is null or a NUL-terminated string.
unsafe fn queue_python(code: *const c_char) -> c_int {
    type Run = unsafe extern "C" fn(*const c_char) -> c_int;
    type Pending = unsafe extern "C" fn(Run, *const c_char) -> c_int;
    // SAFETY: dlsym with NUL-terminated names and a pseudo-handle.
    let pending = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"Py_AddPendingCall".as_ptr()) };
    if code.is_null() || pending.is_null() || python_runner().is_none() {
        return NOT_PYTHON;
    }
    type IsInitialized = unsafe extern "C" fn() -> c_int;
    // SAFETY: dlsym with a NUL-terminated name and a pseudo-handle.
    let initialized = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"Py_IsInitialized".as_ptr()) };
    if !initialized.is_null() {
        // SAFETY: CPython's Py_IsInitialized (every version has it), callable at any time.
        let running = unsafe { core::mem::transmute::<*mut c_void, IsInitialized>(initialized)() };
        if running == 0 {
            return NOT_RUNNING;
        }
    }
    // SAFETY: a NUL-terminated string, copied with the C library's allocator.
    let copy = unsafe { libc::strdup(code) };
    if copy.is_null() {
        return NO_MEMORY;
    }
    // SAFETY: Py_AddPendingCall has this C signature in every CPython 3.
    let pending = unsafe { core::mem::transmute::<*mut c_void, Pending>(pending) };
    // SAFETY: CPython's documented call, safe without the GIL.
    if unsafe { pending(run_queued as Run, copy) } == 0 {
        return QUEUED;
    }
    // SAFETY: the copy was not queued: still ours.
    unsafe { libc::free(copy.cast()) };
    QUEUE_FULL
}

type DictNew = unsafe extern "C" fn() -> *mut c_void;
type DictSet = unsafe extern "C" fn(*mut c_void, *const c_char, *mut c_void) -> c_int;
type RunString = unsafe extern "C" fn(
    *const c_char,
    c_int,
    *mut c_void,
    *mut c_void,
    *mut c_void,
) -> *mut c_void;
type DecRef = unsafe extern "C" fn(*mut c_void);
type ErrClear = unsafe extern "C" fn();

/// CPython's functions [`run_queued`] calls, found with dlsym.
struct Runner {
    dict_new: DictNew,
    dict_set: DictSet,
    run: RunString,
    dec_ref: DecRef,
    err_clear: ErrClear,
}

fn python_runner() -> Option<Runner> {
    let find = |name: &CStr| {
        // SAFETY: dlsym with a NUL-terminated name and a pseudo-handle.
        let f = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
        (!f.is_null()).then_some(f)
    };
    let (new, set, run, dec, clear) = (
        find(c"PyDict_New")?,
        find(c"PyDict_SetItemString")?,
        find(c"PyRun_StringFlags")?,
        find(c"Py_DecRef")?,
        find(c"PyErr_Clear")?,
    );
    // SAFETY: the functions have these C signatures in every CPython 3.
    unsafe {
        Some(Runner {
            dict_new: core::mem::transmute::<*mut c_void, DictNew>(new),
            dict_set: core::mem::transmute::<*mut c_void, DictSet>(set),
            run: core::mem::transmute::<*mut c_void, RunString>(run),
            dec_ref: core::mem::transmute::<*mut c_void, DecRef>(dec),
            err_clear: core::mem::transmute::<*mut c_void, ErrClear>(clear),
        })
    }
}

/// `Py_file_input`: the code is a module's statements.
const FILE_INPUT: c_int = 257;

/// The pending call: runs the queued code (its own copy, freed here) in a dictionary of its
/// own, which holds this library's module as `_memtrace_tracker`: made here, never imported,
/// so that the program's import hooks, `sys.modules` and profiler see nothing of the attach.
/// An exception that escapes the code is the program's (its signal handler ran inside the
/// code: the code raises nothing of memtrace's), left set with -1, which raises it on in the
/// program's code as it would have been raised there. (PyRun_SimpleString printed it on the
/// program's stderr and returned -1 with none set: a SystemError in the program.)
///
/// # Safety
/// Called by CPython with the GIL held, with the pointer given to Py_AddPendingCall.
unsafe extern "C" fn run_queued(code: *const c_char) -> c_int {
    let Some(py) = python_runner() else {
        return 0;
    };
    // SAFETY: CPython's calls with the GIL held; `code` is the NUL-terminated copy, freed once.
    unsafe {
        let globals = (py.dict_new)();
        if globals.is_null() {
            // Out of memory before any code ran: nothing of the program's to raise.
            (py.err_clear)();
            libc::free(code as *mut c_void);
            return 0;
        }
        // Without it (out of memory), the code says why in the attach's error file.
        let module = crate::pyext::init_module();
        if module.is_null() || (py.dict_set)(globals, c"_memtrace_tracker".as_ptr(), module) != 0 {
            (py.err_clear)();
        }
        (py.dec_ref)(module);
        // The built-in modules the code uses, from sys.modules (every interpreter has them
        // from its start): an import statement would call the program's `__import__`.
        if let Some(s) = crate::pyext::session_api::get() {
            for name in [c"sys", c"posix", c"_thread"] {
                let m = crate::pyext::session_api::imported(s, name);
                if !m.is_null() && (py.dict_set)(globals, name.as_ptr(), m) != 0 {
                    (py.err_clear)();
                }
            }
        }
        let result = (py.run)(code, FILE_INPUT, globals, globals, core::ptr::null_mut());
        (py.dec_ref)(globals);
        libc::free(code as *mut c_void);
        if result.is_null() {
            return -1;
        }
        (py.dec_ref)(result);
    }
    0
}

/// The start itself: [`attach`]'s code.
///
/// # Safety
/// As [`attach`].
unsafe fn start(
    path: *const c_char,
    stop: *const c_char,
    active: *const c_char,
    duration_ms: u64,
    native: c_int,
) -> c_int {
    if path.is_null() || stop.is_null() || active.is_null() {
        return BAD_ARGUMENTS;
    }
    // SAFETY: the caller passes NUL-terminated strings.
    let (path, stop, active) = unsafe {
        (
            CStr::from_ptr(path).to_bytes().to_vec(),
            CStr::from_ptr(stop).to_bytes().to_vec(),
            CStr::from_ptr(active).to_bytes().to_vec(),
        )
    };
    let starting = match inprocess::claim() {
        Ok(s) => s,
        Err(_) => return ALREADY,
    };
    let req = Request {
        path,
        native: native != 0,
        python_allocators: false,
        follow_fork: false,
        labels: Vec::new(),
        attached: true,
        aggregate: false,
    };
    // Made before tracking runs (its allocation is not the program's) and before the thread
    // that removes it at the end starts; first of all, so that a process with no descriptor
    // free is told apart (its capture took the last one, `running` none, and memtrace said a
    // native process would start tracking "when its interpreter next runs Python code").
    let running = sibling(&active, b"running");
    if create(&running) == Err(libc::EMFILE) {
        return NO_DESCRIPTOR;
    }
    if let Err(why) = starting.open(&req) {
        unlink(&running);
        // The reason (a read-only file system, a directory the process may not write) for
        // memtrace to show, in the file it reads a Python start's errors from.
        write_file(&sibling(&active, b"error"), &why);
        return NO_CAPTURE;
    }
    starting.run();
    let deadline_ns = match duration_ms {
        0 => 0,
        ms => {
            crate::sys::clock_ns(libc::CLOCK_MONOTONIC).saturating_add(ms.saturating_mul(1_000_000))
        }
    };
    let control = Box::into_raw(Box::new(Control {
        stop,
        active,
        running,
        deadline_ns,
    }));
    let mut thread: libc::pthread_t = 0;
    // A small stack: the default (8 MiB, the stack limit's) counts against the program's data
    // limit (`ulimit -d`) for the rest of its life (the C library keeps a finished thread's
    // stack for reuse), where the program's own mallocs then failed. The thread polls files and
    // at the end finishes the capture, which needs far less.
    // SAFETY: a zeroed attribute object, initialized before use and destroyed after.
    let mut attr: libc::pthread_attr_t = unsafe { core::mem::zeroed() };
    // SAFETY: as above.
    let sized = unsafe {
        libc::pthread_attr_init(&mut attr) == 0
            && libc::pthread_attr_setstacksize(&mut attr, CONTROL_STACK) == 0
    };
    // SAFETY: a plain thread start routine given its own boxed argument; the attribute object
    // is initialized when `sized`.
    let r = unsafe {
        libc::pthread_create(
            &mut thread,
            if sized { &attr } else { core::ptr::null() },
            watch,
            control.cast::<c_void>(),
        )
    };
    if sized {
        // SAFETY: initialized above, no longer used.
        unsafe { libc::pthread_attr_destroy(&mut attr) };
    }
    if r != 0 {
        // SAFETY: the thread did not start: the box is still ours.
        let control = unsafe { Box::from_raw(control) };
        unlink(&control.running);
        end();
        return NO_THREAD;
    }
    // SAFETY: a thread just created, never joined.
    unsafe { libc::pthread_detach(thread) };
    ATTACHED
}

/// The control thread's stack.
const CONTROL_STACK: usize = 512 * 1024;

/// The file named `name` in the directory of `path`.
fn sibling(path: &[u8], name: &[u8]) -> Vec<u8> {
    let dir = path.iter().rposition(|&b| b == b'/').map_or(0, |i| i + 1);
    let mut p = path[..dir].to_vec();
    p.extend_from_slice(name);
    p
}

/// Makes an empty file at `path`; the error number when it cannot.
fn create(path: &[u8]) -> Result<(), c_int> {
    let mut c = path.to_vec();
    c.push(0);
    // Never through a link: the directory is shared with memtrace, which may run as root.
    let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    let fd = crate::sys::open(&c, flags, 0o644)?;
    crate::sys::close(fd);
    Ok(())
}

/// Writes `text` to a new file at `path` (errors ignored: a hint to memtrace).
fn write_file(path: &[u8], text: &[u8]) {
    let mut c = path.to_vec();
    c.push(0);
    let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    if let Ok(fd) = crate::sys::open(&c, flags, 0o644) {
        let _ = crate::sys::write_all(fd, text);
        crate::sys::close(fd);
    }
}

/// Stops tracking, restores every patched slot and finishes the capture.
fn end() {
    if let Ok(stopping) = inprocess::stop_claim() {
        stopping.unhook(false);
        stopping.finish();
    }
}

/// Whether the file `path` exists.
fn exists(path: &[u8]) -> bool {
    let mut c = path.to_vec();
    c.push(0);
    // SAFETY: a NUL-terminated path.
    unsafe { libc::access(c.as_ptr().cast::<c_char>(), libc::F_OK) == 0 }
}

fn unlink(path: &[u8]) {
    let mut c = path.to_vec();
    c.push(0);
    crate::sys::unlink(&c);
}

/// The control thread: polls ten times a second for the end.
extern "C" fn watch(arg: *mut c_void) -> *mut c_void {
    // SAFETY: `attach` handed over this box.
    let control = unsafe { Box::from_raw(arg.cast::<Control>()) };
    // Nothing this thread does is the program's: never recorded.
    crate::tls::get().in_tracker = 1;
    loop {
        let pause = libc::timespec {
            tv_sec: 0,
            tv_nsec: 100_000_000,
        };
        // SAFETY: a valid timespec; the remainder is not wanted.
        unsafe { libc::nanosleep(&pause, core::ptr::null_mut()) };
        let late = control.deadline_ns != 0
            && crate::sys::clock_ns(libc::CLOCK_MONOTONIC) >= control.deadline_ns;
        // `active` gone: memtrace gave up the attach (interrupted, or a call too slow) and
        // removed its directory; nobody could detach, so tracking ends now.
        if exists(&control.stop)
            || !exists(&control.active)
            || late
            || !crate::ACTIVE.load(Ordering::Acquire)
        {
            break;
        }
    }
    end();
    unlink(&control.running);
    unlink(&control.stop);
    unlink(&control.active);
    core::ptr::null_mut()
}
