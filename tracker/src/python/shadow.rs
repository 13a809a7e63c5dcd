//! Each thread's shadow stack of Python frames, kept by the profile function (a push at every
//! call, a pop at every return) and turned into an interned stack id only when the thread
//! allocates. A frame's line is read then: the innermost frame's every time, the others once
//! (a caller's line cannot change while its callee runs).

use super::api::{Api, Object};
use super::Tables;
use crate::{stacks, sys, tls};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Frames kept per thread; deeper frames are counted, not kept.
const CAPACITY: usize = 8192;

#[derive(Clone, Copy)]
struct Entry {
    frame: *mut Object,
    function: u64,
    file: u64,
    /// The interned stack ending at this frame at `line` (0: not known, or stale since this
    /// frame called another).
    stack: u64,
    line: u64,
}

struct Shadow {
    depth: usize,
    /// The thread's PyThreadState, where `profile_slot` says whose profile function runs.
    thread_state: *const u8,
    /// Another profile function replaced ours: this thread's frames are no longer followed.
    stopped: bool,
    entries: [Entry; CAPACITY],
}

/// Where PyThreadState holds the C profile function (c_profilefunc), found at start-up by
/// looking for ours; 0 when not found.
static PROFILE_SLOT: AtomicUsize = AtomicUsize::new(0);
static PROFILE_FN: AtomicUsize = AtomicUsize::new(0);

/// Learns where `thread_state` keeps the profile function `ours`, just installed.
pub fn find_profile_slot(thread_state: *const u8, ours: usize) {
    if PROFILE_SLOT.load(Ordering::Relaxed) != 0 || thread_state.is_null() {
        return;
    }
    // The field lies within the first few dozen words in every version from 3.9 to 3.13.
    for i in 1..64 {
        // SAFETY: PyThreadState is larger than 64 words in every supported version; aligned
        // reads of its words.
        let word = unsafe { (thread_state as *const usize).add(i).read() };
        if word == ours {
            PROFILE_FN.store(ours, Ordering::Relaxed);
            PROFILE_SLOT.store(i * 8, Ordering::Relaxed);
            return;
        }
    }
}

/// Whether our profile function still runs on the thread of `thread_state` (true when that
/// cannot be told).
fn still_ours(thread_state: *const u8) -> bool {
    let slot = PROFILE_SLOT.load(Ordering::Relaxed);
    if slot == 0 || thread_state.is_null() {
        return true;
    }
    // SAFETY: the calling thread's own PyThreadState (it runs the frames on its shadow stack,
    // so it is alive); the slot offset was found in one of the same layout.
    let word = unsafe { (thread_state.add(slot) as *const usize).read_volatile() };
    word == PROFILE_FN.load(Ordering::Relaxed)
}

/// Records the thread's PyThreadState (with the GIL held, when tracking begins on it).
pub fn set_thread_state(t: &mut tls::Tls, thread_state: *const u8) {
    if let Some(s) = shadow_or_new(t) {
        s.thread_state = thread_state;
        s.stopped = false;
    }
}

fn shadow(t: &tls::Tls) -> Option<&'static mut Shadow> {
    let p = t.py as *mut Shadow;
    // SAFETY: set by `shadow_or_new` to this thread's own mapping, never unmapped.
    (!p.is_null()).then(|| unsafe { &mut *p })
}

fn shadow_or_new(t: &mut tls::Tls) -> Option<&'static mut Shadow> {
    if t.py.is_null() {
        // Zeroed memory is an empty stack.
        t.py = sys::map_anon(core::mem::size_of::<Shadow>())? as *mut core::ffi::c_void;
    }
    shadow(t)
}

/// Unmaps the thread's shadow stack (at thread exit: no Python code runs on it any more).
pub fn release(t: &mut tls::Tls) {
    if !t.py.is_null() {
        let p = core::mem::replace(&mut t.py, core::ptr::null_mut());
        sys::unmap(p as *mut u8, core::mem::size_of::<Shadow>());
    }
}

/// A call: `frame` runs the code of `function` in `file` (string ids).
pub fn push(t: &mut tls::Tls, frame: *mut Object, function: u64, file: u64) {
    let Some(s) = shadow_or_new(t) else { return };
    if s.stopped {
        return;
    }
    if let Some(parent) = s.depth.checked_sub(1).and_then(|i| s.entries.get_mut(i)) {
        // The caller's line is now the call's: its interned stack is stale.
        parent.stack = 0;
    }
    if let Some(e) = s.entries.get_mut(s.depth) {
        *e = Entry {
            frame,
            function,
            file,
            stack: 0,
            line: 0,
        };
    }
    s.depth += 1;
}

/// A return from `frame`. Frames that were running before tracking began are not on the stack:
/// their returns are ignored.
pub fn pop(t: &mut tls::Tls, frame: *mut Object) {
    let Some(s) = shadow(t) else { return };
    if s.depth == 0 {
        return;
    }
    if s.depth > CAPACITY {
        s.depth -= 1;
        return;
    }
    if s.entries[s.depth - 1].frame == frame {
        s.depth -= 1;
    } else if let Some(i) = s.entries[..s.depth].iter().rposition(|e| e.frame == frame) {
        s.depth = i;
    }
}

/// The interned stack of the thread's Python frames now, defining new frames and stacks in
/// `tables`; None when the thread runs no Python frame that is tracked.
pub fn current(t: &tls::Tls, api: &Api, tables: &mut dyn Tables) -> Option<u64> {
    let s = shadow(t)?;
    let n = s.depth.min(CAPACITY);
    if n == 0 || s.stopped {
        return None;
    }
    if !still_ours(s.thread_state) {
        // Another profiler took over: the frames on the stack may be gone by now, and no more
        // calls or returns will come. This thread's stacks are native from here on.
        s.stopped = true;
        s.depth = 0;
        return None;
    }
    // Callers whose stack is stale or unknown, from the outermost of them.
    let mut first = n - 1;
    while first > 0 && s.entries[first - 1].stack == 0 {
        first -= 1;
    }
    let mut parent = if first == 0 {
        0
    } else {
        s.entries[first - 1].stack
    };
    for e in &mut s.entries[first..n] {
        let line = line_of(api, e.frame);
        if e.stack == 0 || e.line != line {
            e.stack = intern(tables, parent, e.function, e.file, line);
            e.line = line;
        }
        parent = e.stack;
    }
    Some(parent)
}

fn line_of(api: &Api, frame: *mut Object) -> u64 {
    // SAFETY: a frame on the shadow stack is executing (it is popped when it returns), so the
    // object is alive; reading its line number neither allocates nor needs the GIL's data.
    let line = unsafe { (api.frame_get_line_number)(frame) };
    line.max(0) as u64
}

/// The stack of `function` at `file:line` called from stack `parent`.
fn intern(tables: &mut dyn Tables, parent: u64, function: u64, file: u64, line: u64) -> u64 {
    let frame = match stacks::python_frame(function, file, line) {
        Ok(id) => id,
        Err(id) => {
            tables.python_frame(id, function, file, line);
            id
        }
    };
    match stacks::stack(parent, frame) {
        Ok(id) => id,
        Err(id) => {
            tables.stack(id, parent, frame);
            id
        }
    }
}
