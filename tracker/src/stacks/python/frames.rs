//! The Python stack of the allocating thread, read from the interpreter's frame chain at the
//! allocation (no work at calls and returns). Each thread keeps the chain it last turned into a
//! stack id, as (code, instruction offset, stack id) from the outermost frame: a new walk only
//! names and interns the frames below the first one that differs, and a caller's line is
//! computed once per instruction it calls from.

use super::api::Api;
use super::codes::{self, Named};
use super::layout::{read, walk_frames, Layout, WalkFields, OB_TYPE, TSTATE_INTERP};
use super::Tables;
use crate::{stacks, sys, tls};
use std::sync::atomic::Ordering;

/// Frames followed per stack; the outermost frames of a deeper stack are left out.
const CAPACITY: usize = 4096;
/// Slots of the per-thread caches (powers of two).
const LINE_SLOTS: usize = 1024;
const NAME_SLOTS: usize = 512;

#[derive(Clone, Copy)]
pub struct Step {
    code: usize,
    /// The instruction's byte offset times two, plus one for an entry frame (as walked).
    position: isize,
    /// The interned stack ending at this frame (its parent's, for a hidden frame).
    stack: u64,
    /// The frame's id (0 for a hidden frame).
    pub frame: u64,
    /// The outermost frame of one run of the evaluation loop (native stacks merge there).
    pub entry: bool,
}

/// A frame as walked: its code and position (see `layout::walk_frames`).
#[derive(Clone, Copy)]
struct Walked {
    code: usize,
    position: isize,
}

impl Walked {
    fn offset(self) -> isize {
        self.position >> 1
    }

    fn entry(self) -> bool {
        self.position & 1 != 0
    }
}

/// An instruction's line, and the stack of the last frame seen there with its parent stack:
/// a function allocating on several instructions under the same callers needs no interning.
#[derive(Clone, Copy)]
struct LineSlot {
    code: usize,
    offset: isize,
    line: u64,
    parent: u64,
    stack: u64,
    frame: u64,
}

#[derive(Clone, Copy)]
struct NameSlot {
    code: usize,
    named: Named,
}

/// A thread's caches, in an anonymous mapping (zeroed: empty) made at its first Python stack.
struct ThreadFrames {
    /// The tables' epoch the cached ids belong to (a followed fork starts new tables).
    epoch: u64,
    depth: usize,
    chain: [Step; CAPACITY],
    scratch: [Walked; CAPACITY],
    lines: [LineSlot; LINE_SLOTS],
    names: [NameSlot; NAME_SLOTS],
}

/// What the walk needs of the running interpreter, known once verified.
pub struct Interpreter {
    pub layout: Layout,
    /// The main interpreter: thread states of others are not followed.
    pub interp: usize,
    pub code_type: usize,
}

fn frames_of(t: &mut tls::Tls) -> Option<&'static mut ThreadFrames> {
    if t.py.is_null() {
        let p = sys::map_anon(core::mem::size_of::<ThreadFrames>())? as *mut ThreadFrames;
        // Fresh zeroed pages are empty caches of the current tables: no `forget_ids`, which
        // would write (and fault in) every page of them at the thread's first stack.
        // SAFETY: the mapping was just made, of the struct's size; zero is a valid `epoch`.
        unsafe { (*p).epoch = stacks::EPOCH.load(Ordering::Relaxed) };
        t.py = p as *mut core::ffi::c_void;
    }
    // SAFETY: this thread's own mapping, made above, unmapped only by `release` at its exit.
    Some(unsafe { &mut *(t.py as *mut ThreadFrames) })
}

/// Unmaps the thread's caches (at thread exit: no Python code runs on it any more).
pub fn release(t: &mut tls::Tls) {
    if !t.py.is_null() {
        let p = core::mem::replace(&mut t.py, core::ptr::null_mut());
        sys::unmap(p as *mut u8, core::mem::size_of::<ThreadFrames>());
    }
}

/// The interned stack of the calling thread's Python frames now, defining new strings, frames
/// and stacks in `tables`; None when the thread runs no Python frame.
pub fn current(
    t: &mut tls::Tls,
    api: &Api,
    py: &Interpreter,
    tables: &mut dyn Tables,
) -> Option<u64> {
    // SAFETY: reads the thread's own entry of the runtime's thread-state key.
    let tstate = unsafe { (api.gil_state_get_this_thread_state)() } as usize;
    // SAFETY: a thread state bound to this thread is alive while the thread uses it (until the
    // interpreter's teardown, which the capture does not reach: see script_finished).
    if tstate == 0 || unsafe { read(tstate + TSTATE_INTERP) } != py.interp {
        return None;
    }
    let f = frames_of(t)?;
    let epoch = stacks::EPOCH.load(Ordering::Relaxed);
    if f.epoch != epoch {
        forget_ids(f);
        f.epoch = epoch;
    }
    let n = walk(f, &py.layout, tstate);
    if n == 0 {
        return None;
    }
    // The frames kept from the last walk: the same code at the same instruction, outermost
    // first, have the same stack.
    let same = kept_frames(f, n);
    let mut parent = if same == 0 {
        0
    } else {
        f.chain[same - 1].stack
    };
    for i in same..n {
        let w = f.scratch[n - 1 - i];
        // Checked here, not in the walk: the code object's header is rarely in the cache.
        // SAFETY: the frame's executable object is alive while the frame runs.
        let is_code = unsafe { read(w.code + OB_TYPE) } == py.code_type;
        let (named, settled) = if is_code {
            name(f, api, py, w.code, tables)
        } else {
            // 3.13 frames may run other objects than code: not a Python function to show.
            (Named::Hidden, false)
        };
        let frame;
        (parent, frame) = match named {
            Named::Hidden => (parent, 0),
            Named::Shown { function, file } => {
                stack_at(f, api, (w.code, w.offset()), settled, parent, |line| {
                    intern(tables, parent, function, file, line)
                })
            }
        };
        f.chain[i] = Step {
            // A code not kept alive could be freed and another made at its address: its step
            // never matches.
            code: if settled { w.code } else { 0 },
            position: w.position,
            stack: parent,
            frame,
            entry: w.entry(),
        };
    }
    f.depth = n;
    (parent != 0).then_some(parent)
}

/// How many frames of the walk in `f.scratch` (innermost first, `n` long), counted from the
/// outermost, are those of the last chain. Zipped slices: no bounds check per frame.
#[inline(always)]
fn kept_frames(f: &ThreadFrames, n: usize) -> usize {
    let m = n.min(f.depth);
    let walked = &f.scratch[n - m..n];
    f.chain[..m]
        .iter()
        .zip(walked.iter().rev())
        .take_while(|(c, w)| c.code == w.code && c.position == w.position)
        .count()
}

/// Reads the chain from `tstate` into `f.scratch`, innermost first; returns its length.
fn walk(f: &mut ThreadFrames, layout: &Layout, tstate: usize) -> usize {
    // SAFETY: the thread's own state: the chain it points at is changed only by this thread,
    // which is here.
    let first = unsafe { layout.current_frame(tstate) };
    let fields = layout.walk_fields();
    // One loop per version, without a branch on the layout in it.
    match layout.minor {
        10 => walk_as::<10>(f, fields, first),
        11 => walk_as::<11>(f, fields, first),
        12 => walk_as::<12>(f, fields, first),
        _ => walk_as::<13>(f, fields, first),
    }
}

#[inline(always)]
fn walk_as<const MINOR: u32>(f: &mut ThreadFrames, fields: WalkFields, first: usize) -> usize {
    let mut n = 0;
    let scratch = &mut f.scratch;
    // SAFETY: every frame on the thread's own chain is alive (see `walk`), and so is each
    // frame's code object while the frame runs. Shims do not count towards the capacity: the
    // steps are bounded as well.
    unsafe {
        walk_frames::<MINOR>(fields, first, 4 * CAPACITY, |code, position| {
            if code == 0 {
                // 3.12+: the frame below a shim is the first of a run of the evaluation loop.
                if n > 0 {
                    scratch[n - 1].position |= 1;
                }
            } else {
                scratch[n] = Walked { code, position };
                n += 1;
            }
            n < CAPACITY
        })
    };
    n
}

fn name(
    f: &mut ThreadFrames,
    api: &Api,
    py: &Interpreter,
    code: usize,
    tables: &mut dyn Tables,
) -> (Named, bool) {
    let slot = &mut f.names[(code >> 4) & (NAME_SLOTS - 1)];
    if slot.code == code {
        return (slot.named, true);
    }
    let (named, settled) = codes::name(api, &py.layout, code, tables);
    if settled {
        *slot = NameSlot { code, named };
    }
    (named, settled)
}

/// The stack of the frame at `(code, offset)` called from `parent`: from the thread's cache, or
/// made by `intern` from the instruction's line.
fn stack_at(
    f: &mut ThreadFrames,
    api: &Api,
    (code, offset): (usize, isize),
    settled: bool,
    parent: u64,
    intern: impl FnOnce(u64) -> (u64, u64),
) -> (u64, u64) {
    let h = (code >> 4) ^ (offset as usize).wrapping_mul(0x9e37_79b9);
    let slot = &mut f.lines[h & (LINE_SLOTS - 1)];
    if slot.code == code && slot.offset == offset {
        if slot.parent == parent && slot.stack != 0 {
            return (slot.stack, slot.frame);
        }
        let (stack, frame) = intern(slot.line);
        slot.parent = parent;
        slot.stack = stack;
        slot.frame = frame;
        return (stack, frame);
    }
    let offset32 = offset.clamp(i32::MIN as isize, i32::MAX as isize) as i32;
    // SAFETY: a live code object; PyCode_Addr2Line only reads its line table.
    let line = unsafe { (api.code_addr2line)(code as *mut _, offset32) }.max(0) as u64;
    let (stack, frame) = intern(line);
    // Only for a code kept alive (codes.rs): its address is never reused by another.
    if settled {
        *slot = LineSlot {
            code,
            offset,
            line,
            parent,
            stack,
            frame,
        };
    }
    (stack, frame)
}

/// Drops every cached id (new tables), keeping the lines.
fn forget_ids(f: &mut ThreadFrames) {
    f.depth = 0;
    for n in &mut f.names {
        n.code = 0;
    }
    for l in &mut f.lines {
        l.parent = 0;
        l.stack = 0;
    }
}

/// The stack of `function` at `file:line` called from stack `parent`, and the frame's id.
fn intern(tables: &mut dyn Tables, parent: u64, function: u64, file: u64, line: u64) -> (u64, u64) {
    let frame = match stacks::python_frame(function, file, line) {
        Ok(id) => id,
        Err(id) => {
            tables.python_frame(id, function, file, line);
            id
        }
    };
    let stack = match stacks::stack(parent, frame) {
        Ok(id) => id,
        Err(id) => {
            tables.stack(id, parent, frame);
            id
        }
    };
    (stack, frame)
}

impl Step {
    /// A step of a made-up chain, for tests of what reads chains.
    #[cfg(test)]
    pub fn for_test(frame: u64, entry: bool) -> Step {
        Step {
            code: 0,
            position: 0,
            stack: 0,
            frame,
            entry,
        }
    }
}

/// The file (string id) of the outermost shown frame of the chain the last `current` call read,
/// when its code's names are cached (settled); None otherwise.
pub fn outermost_file(t: &tls::Tls) -> Option<u64> {
    if t.py.is_null() {
        return None;
    }
    // SAFETY: this thread's own mapping (see frames_of).
    let f = unsafe { &*(t.py as *const ThreadFrames) };
    let code = f.chain[..f.depth].iter().find(|s| s.frame != 0)?.code;
    let slot = &f.names[(code >> 4) & (NAME_SLOTS - 1)];
    match slot.named {
        Named::Shown { file, .. } if code != 0 && slot.code == code => Some(file),
        _ => None,
    }
}

/// The chain the last `current` call read, outermost first (empty when it found none).
pub fn last_chain(t: &tls::Tls) -> &'static [Step] {
    if t.py.is_null() {
        return &[];
    }
    // SAFETY: this thread's own mapping (see frames_of).
    let f = unsafe { &*(t.py as *const ThreadFrames) };
    &f.chain[..f.depth]
}
