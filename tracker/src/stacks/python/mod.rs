//! Each thread's Python call stack, read from the interpreter's frames at an allocation.
//!
//! This is the stacks layer's half of Python support: the interpreter's layout, the frames and
//! the code objects. The Python extension module that turns it on (`_memtrace_tracker`) is
//! session::pyext; the PyMem allocator wrappers are hooks::pymem.

pub(crate) mod api;
pub(crate) mod chain;
mod codes;
pub(crate) mod frames;
mod layout;
mod lines;
pub(crate) mod script;

use crate::tls;
pub use codes::{lock_for_fork, unlock_after_fork};
use frames::Interpreter;
pub use frames::Step;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

/// Where a thread writes the table records a Python stack needs.
pub trait Tables {
    fn string(&mut self, id: u64, bytes: &[u8]);
    fn python_frame(&mut self, id: u64, function: u64, file: u64, line: u64);
    fn stack(&mut self, id: u64, parent: u64, frame: u64);
    /// Native frames: return addresses, or the mark of a stack that stops short.
    fn native_frame(&mut self, id: u64, address: u64);
}

/// The tracker started in the Python run (markers, thread names).
pub(crate) static TRACKING: AtomicBool = AtomicBool::new(false);
/// The running interpreter's layout, set once at start-up when verified: allocations carry
/// Python stacks.
pub(crate) static INTERPRETER: OnceLock<Interpreter> = OnceLock::new();

/// The Python stack of the calling thread now, if Python tracking runs and the thread runs
/// Python code.
#[inline(always)]
pub fn current_stack(t: &mut tls::Tls, tables: &mut dyn Tables) -> Option<u64> {
    if !TRACKING.load(Ordering::Relaxed) {
        return None;
    }
    let py = INTERPRETER.get()?;
    let tstate = frames::thread_state(py);
    if tstate == 0 {
        return None;
    }
    // While the script compiles, each stack is looked at (script::frame_seen).
    if !script::compiling() {
        if let Some(stack) = frames::quick(t, py, tstate) {
            return Some(stack);
        }
    }
    walked_stack(t, py, tstate, tables)
}

/// Whether the calling thread runs a Python frame now (shims left out).
pub fn runs_python_frame() -> bool {
    if !TRACKING.load(Ordering::Relaxed) {
        return false;
    }
    let Some(py) = INTERPRETER.get() else {
        return false;
    };
    let tstate = frames::thread_state(py);
    if tstate == 0 {
        return false;
    }
    // SAFETY: the calling thread's own live thread state; its frames are alive while it runs
    // (the hook runs inside one of its calls). A few steps: shims sit next to real frames.
    unsafe {
        let mut frame = py.layout.current_frame(tstate);
        for _ in 0..8 {
            if frame == 0 {
                return false;
            }
            if !py.layout.is_shim(frame) {
                return true;
            }
            frame = py.layout.previous(frame);
        }
    }
    true
}

/// [`current_stack`] past the usual cases: a walk.
#[inline(never)]
fn walked_stack(
    t: &mut tls::Tls,
    py: &frames::Interpreter,
    tstate: usize,
    tables: &mut dyn Tables,
) -> Option<u64> {
    let stack = frames::current(t, api::get()?, py, tstate, tables)?;
    script::frame_seen(t, tables);
    Some(stack)
}

/// The calling thread's Python frames now, outermost first (interned as `current_stack` does),
/// for a merged native stack; None when it runs none.
#[inline]
pub fn current_chain(t: &mut tls::Tls, tables: &mut dyn Tables) -> Option<(&'static [Step], bool)> {
    current_stack(t, tables)?;
    Some(frames::last_chain(t))
}

/// The bytes of the str object `s` as the frames name a file: UTF-8, a file name's bytes that
/// are not UTF-8 given back from their surrogate escapes (codes.rs); None before the
/// interpreter's layout is known or for a str not laid out compactly.
///
/// # Safety
/// `s` is a live str object, alive as long as the returned bytes are used.
pub(crate) unsafe fn file_name_bytes(s: usize) -> Option<Vec<u8>> {
    let py = INTERPRETER.get()?;
    // SAFETY: the caller's promise.
    unsafe { codes::text(&py.layout, s) }.map(|t| t.into_owned())
}

/// The thread is ending (its last destructors run): its frame caches go.
pub fn thread_exited(t: &mut tls::Tls) {
    frames::release(t);
}

/// What the user is told of a Python version this build has no frame layout for.
pub(crate) const UNSUPPORTED: &[u8] =
    b"this Python version is not supported (3.10 to 3.13 are): allocations have no Python stacks";

/// Whether this build knows the frame layout of CPython `major`.`minor`.
pub(crate) fn supports(major: u32, minor: u32) -> bool {
    major == 3 && layout::Layout::for_minor(minor).is_some()
}

/// Learns the running interpreter's frame layout and checks it on the calling thread (the GIL
/// is held and Python frames run: the import of the tracker). Err, with the message for the
/// user, when the version is not one this build knows or the check fails.
pub(crate) fn learn_interpreter(api: &api::Api) -> Result<(), &'static [u8]> {
    let minor = layout::running_minor(api);
    let Some(layout) = minor.and_then(layout::Layout::for_minor) else {
        return Err(UNSUPPORTED);
    };
    // SAFETY: the GIL is held: the calling thread's state is current.
    let tstate = unsafe { (api.thread_state_get)() } as usize;
    if !layout::verify(&layout, api, tstate) {
        return Err(
            b"this Python's frames are not laid out as memtrace expects: allocations have no Python stacks",
        );
    }
    let py = Interpreter {
        layout,
        this_thread_state: api.gil_state_get_this_thread_state,
        // SAFETY: the live thread state of the calling thread.
        interp: unsafe { layout::read(tstate + layout::TSTATE_INTERP) },
        code_type: api.code_type as usize,
    };
    if INTERPRETER.set(py).is_ok() {
        Ok(())
    } else {
        Err(b"")
    }
}
