//! A new image that is CPython (an exec'd program: `env python3 x.py`, a wrapper script's
//! `exec python3 app.py`, a launcher) gets the Python run's tracking: Python stacks and the PyMem
//! allocators. `memtrace run` names its start-up hook's directory (MEMTRACE_PYTHON_HOOK); this
//! puts it first on PYTHONPATH, at the tracker's start, before the interpreter reads its
//! environment. The hook (reporter/src/run/bootstrap/sitecustomize.py) then starts tracking and
//! restores PYTHONPATH, so the program sees its own environment.
//!
//! Decided per image, from the executable itself: usable for any image the tracker starts in
//! (an exec'd one here; a followed child as well).
//!
//! Also what the environment asked of the Python run (`configure`), read when the interpreter
//! imports the extension module (session::pyext). Below lifecycle, which sets it at start-up.

use crate::python::api;
use crate::sys;
use std::sync::atomic::{AtomicBool, Ordering};

/// This process is the Python run `memtrace run` started (MEMTRACE_PYTHON=1).
pub(crate) static WANTED: AtomicBool = AtomicBool::new(false);
/// Trace the PyMem allocators (off with --no-python-allocators).
pub(crate) static ALLOCATORS: AtomicBool = AtomicBool::new(true);

/// Record the types of the objects live when a Python run's script finishes (off with
/// `memtrace run --no-types`).
pub(crate) static OBJECT_TYPES: AtomicBool = AtomicBool::new(true);

/// Whether the script's end records the types of the live objects.
pub fn set_object_types(on: bool) {
    OBJECT_TYPES.store(on, Ordering::Relaxed);
}

/// Called at start-up with what the environment asked for.
pub fn configure(wanted: bool, allocators: bool) {
    WANTED.store(wanted, Ordering::Relaxed);
    ALLOCATORS.store(allocators, Ordering::Relaxed);
}

/// Whether this image is CPython and will run the start-up hook; if so PYTHONPATH now names
/// the hook first (MEMTRACE_PYTHONPATH keeps the original for the hook to restore). With
/// `private` (a followed descendant: the tracker's path), the hook is a directory of its own
/// ([`crate::session::pyhook`]), the run's `hook` only if that cannot be made.
pub fn adopt_image(hook: Option<&[u8]>, private: Option<&[u8]>) -> bool {
    if !is_cpython() || skips_hook() {
        return false;
    }
    let own = private.and_then(|tracker| crate::session::pyhook::create(tracker, hook));
    let hook = match own.as_deref().or(hook.filter(|h| !h.is_empty())) {
        Some(h) => h,
        None => return false,
    };
    let Ok(hook) = std::ffi::CString::new(hook) else {
        return false;
    };
    match &own {
        Some(_) => crate::environ::set(c"MEMTRACE_PYTHON_HOOK_PRIVATE", &hook),
        None => crate::environ::unset(c"MEMTRACE_PYTHON_HOOK_PRIVATE"),
    }
    // An empty PYTHONPATH is kept as such (the hook restores it exactly).
    let original = std::env::var_os("PYTHONPATH");
    let mut path = hook.as_bytes().to_vec();
    if let Some(o) = original.as_ref().filter(|o| !o.is_empty()) {
        path.push(b':');
        path.extend_from_slice(o.as_encoded_bytes());
    }
    let Ok(path) = std::ffi::CString::new(path) else {
        return false;
    };
    match original.and_then(|o| std::ffi::CString::new(o.into_encoded_bytes()).ok()) {
        Some(o) => crate::environ::set(c"MEMTRACE_PYTHONPATH", &o),
        None => crate::environ::unset(c"MEMTRACE_PYTHONPATH"),
    }
    crate::environ::set(c"PYTHONPATH", &path);
    // The hook acts only where it finds this (the interpreter's start, not a subinterpreter).
    crate::environ::set(c"MEMTRACE_PYTHON_HOOK_ARMED", c"1");
    true
}

/// CPython's `main` is here (the executable defines it, or imports it from libpython) and the
/// executable is named as an interpreter is (`python`, `python3`, `python3.12`, `python3.13t`,
/// `python3.11-dbg`...). A program that only embeds libpython is not a Python run, even one that
/// links it statically and exports its API (`Py_BytesMain` then lies in the executable): the
/// hook would change its environment, and the end of its first interpreter would end its
/// capture.
///
/// The name is asked first: a program that is no interpreter makes no lookup, whose failure
/// glibc keeps as an error string, freed at the process's next dl call (a malloc shim
/// preloaded after the tracker that finds its `free` through `dlsym` then recursed until its
/// stack ran out: `/bin/echo` killed by SIGSEGV).
fn is_cpython() -> bool {
    let mut exe = [0u8; 4096];
    let n = sys::readlink_exe(&mut exe);
    memtrace_format::exec::interpreter_name(exe[..n].rsplit(|&c| c == b'/').next().unwrap_or(&[]))
        && api::sym(c"Py_BytesMain")
            .or_else(|| api::sym(c"Py_Main"))
            .is_some()
}

/// The interpreter's options skip the hook: -E and -I ignore PYTHONPATH, -S skips `site`.
/// Python stops reading options at the script, `-c`, `-m` or `--`.
fn skips_hook() -> bool {
    let mut buf = vec![0u8; 64 * 1024];
    let n = sys::read_cmdline(&mut buf);
    let mut args = buf[..n].split(|&b| b == 0).skip(1);
    while let Some(arg) = args.next() {
        if arg == b"--" || arg.len() < 2 || arg[0] != b'-' || arg[1] == b'-' {
            return false;
        }
        for (i, &c) in arg.iter().enumerate().skip(1) {
            match c {
                b'E' | b'I' | b'S' => return true,
                b'c' | b'm' => return false,
                // An option with a value: the rest of the word, or the next word.
                b'W' | b'X' => {
                    if i + 1 == arg.len() {
                        args.next();
                    }
                    break;
                }
                _ => {}
            }
        }
    }
    false
}
