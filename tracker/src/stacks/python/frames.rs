//! The Python stack of the allocating thread, read from the interpreter's frame chain at the
//! allocation (no work at calls and returns). Each thread keeps the chain it last turned into a
//! stack id, outermost first, as steps: what was read of each frame and the stack id ending
//! there. A walk (chain.rs) reads the frames inside the first one from which that chain still
//! holds; of those, the ones that run the same code at the same instruction as the last chain's
//! steps at the same depth keep their stack ids, and only the others are named and interned. A
//! caller's line is computed once per instruction it calls from.

use super::api::Api;
use super::chain::{self, checked_prev, Index, Link, Walked, CAPACITY};
use super::codes::{self, Named};
use super::layout::{read, Layout, WalkFields, OB_TYPE};
use super::Tables;
use crate::{stacks, sys, tls};
use memtrace_format::StopsShort;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Slots of the per-thread caches (powers of two).
const LINE_SLOTS: usize = 1024;
const NAME_SLOTS: usize = 512;

#[derive(Clone, Copy)]
pub struct Step {
    /// The code it runs; 0 when not kept alive (codes.rs): such a step never matches.
    pub(super) code: usize,
    /// The instruction's byte offset times two, plus one for an entry frame (as walked).
    position: isize,
    /// The interned stack ending at this frame (its parent's, for a hidden frame).
    stack: u64,
    /// The frame's id (0 for a hidden frame).
    pub frame: u64,
    /// The outermost frame of one run of the evaluation loop (native stacks merge there).
    pub entry: bool,
    /// What the walk read of the frame, for the next walk's check (chain.rs): its link to the
    /// caller step, address, place in its code (`WalkFields::place`), `previous` (as
    /// `chain::checked_prev` makes it) and the caller step's frame (0 for the outermost).
    pub(super) link: Link,
    /// The frames (shims included) from this one to the outermost.
    pub(super) met: u32,
    pub(super) addr: usize,
    pub(super) place: usize,
    pub(super) prev: usize,
    pub(super) caller: usize,
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
    /// The count of named code objects' deaths the caches were made at (codes.rs): a dead
    /// code's address may run another code now.
    deaths: u64,
    depth: usize,
    /// The last walk reached the outermost frame: a walk may stop at one of its frames.
    complete: bool,
    chain: [Step; CAPACITY],
    index: Index,
    scratch: [Walked; CAPACITY],
    lines: [LineSlot; LINE_SLOTS],
    names: [NameSlot; NAME_SLOTS],
    /// Positions in the line tables of long code objects (lines.rs).
    cursors: super::lines::Cursors,
}

#[path = "quick.rs"]
mod quick;
pub use quick::{quick, thread_state};

/// What the walk needs of the running interpreter, known once verified.
pub struct Interpreter {
    pub layout: Layout,
    /// PyGILState_GetThisThreadState: the calling thread's own thread state.
    pub this_thread_state: unsafe extern "C" fn() -> *mut core::ffi::c_void,
    /// The main interpreter: thread states of others are not followed.
    pub interp: usize,
    pub code_type: usize,
}

/// The caches of threads that exited, kept for the next new threads: a program that starts
/// many short threads mapped and unmapped one each (two system calls and the TLB shootdowns of
/// an unmap, some 40 µs a thread).
static SPARE: [AtomicUsize; SPARES] = [const { AtomicUsize::new(0) }; SPARES];
const SPARES: usize = 8;

fn frames_of(t: &mut tls::Tls) -> Option<&'static mut ThreadFrames> {
    if t.py.is_null() {
        let p = match take_spare() {
            Some(p) => p,
            None => {
                let p = sys::map_anon(core::mem::size_of::<ThreadFrames>())? as *mut ThreadFrames;
                // Fresh zeroed pages are empty caches of the current tables: no `forget_ids`,
                // which would write (and fault in) every page of them at the thread's first
                // stack.
                // SAFETY: the mapping was just made, of the struct's size; zero is a valid
                // `epoch`.
                unsafe { (*p).epoch = stacks::EPOCH.load(Ordering::Relaxed) };
                p
            }
        };
        t.py = p as *mut core::ffi::c_void;
    }
    // SAFETY: this thread's own mapping, made above, given back only by `release` at its exit.
    Some(unsafe { &mut *(t.py as *mut ThreadFrames) })
}

/// A spare thread's caches, ready for a new thread: its chain (the old thread's frames) and
/// line cursors go; its name and line caches stay, since their ids are the process's (a
/// changed epoch still empties them, as for any thread).
fn take_spare() -> Option<*mut ThreadFrames> {
    SPARE.iter().find_map(|slot| {
        let p = slot.swap(0, Ordering::Acquire) as *mut ThreadFrames;
        (!p.is_null()).then(|| {
            // SAFETY: a spare mapping of the struct's size, which the swap gave this thread
            // alone.
            let f = unsafe { &mut *p };
            f.depth = 0;
            f.complete = false;
            f.cursors = super::lines::Cursors::none();
            p
        })
    })
}

/// Gives the thread's caches back (at thread exit: no Python code runs on it any more): kept
/// for a new thread while there is room, else unmapped.
pub fn release(t: &mut tls::Tls) {
    if !t.py.is_null() {
        let p = core::mem::replace(&mut t.py, core::ptr::null_mut());
        let kept = SPARE.iter().any(|slot| {
            slot.compare_exchange(0, p as usize, Ordering::Release, Ordering::Relaxed)
                .is_ok()
        });
        if !kept {
            sys::unmap(p as *mut u8, core::mem::size_of::<ThreadFrames>());
        }
    }
}

/// The interned stack of the calling thread's Python frames now, defining new strings, frames
/// and stacks in `tables`; None when the thread runs no Python frame. `tstate` is the calling
/// thread's ([`thread_state`], not 0).
pub fn current(
    t: &mut tls::Tls,
    api: &Api,
    py: &Interpreter,
    tstate: usize,
    tables: &mut dyn Tables,
) -> Option<u64> {
    let f = frames_of(t)?;
    let epoch = stacks::EPOCH.load(Ordering::Relaxed);
    if f.epoch != epoch {
        forget_ids(f);
        f.epoch = epoch;
    }
    let deaths = codes::deaths();
    if f.deaths != deaths {
        match codes::dead_since(f.deaths, deaths) {
            Some((dead, n)) => forget_dead(f, &dead[..n]),
            None => forget_codes(f),
        }
        f.deaths = deaths;
    }
    // SAFETY: the thread's own state: the chain it points at is changed only by this thread,
    // which is here; every frame on it is alive, and so is each frame's code while it runs.
    let first = unsafe { py.layout.current_frame(tstate) };
    let cx = Context { api, py, tables };
    // One path per version, without a branch on the layout in it.
    // SAFETY: as above.
    unsafe {
        match py.layout.minor {
            10 => current_as::<10>(f, first, cx),
            11 => current_as::<11>(f, first, cx),
            12 => current_as::<12>(f, first, cx),
            _ => current_as::<13>(f, first, cx),
        }
    }
}

/// What naming and interning frames need.
struct Context<'a> {
    api: &'a Api,
    py: &'a Interpreter,
    tables: &'a mut dyn Tables,
}

/// [`current`] for CPython 3.`MINOR`, from the thread's innermost frame `first`.
///
/// # Safety
/// As for `chain::walk`.
#[inline(always)]
unsafe fn current_as<const MINOR: u32>(
    f: &mut ThreadFrames,
    first: usize,
    mut cx: Context,
) -> Option<u64> {
    // The offsets as constants.
    let fields = &const { WalkFields::of::<MINOR>() };
    // SAFETY: per the caller.
    if let Some(stack) = unsafe { same_innermost::<MINOR>(f, fields, first, &mut cx) } {
        return (stack != 0).then_some(stack);
    }
    // SAFETY: per the caller.
    let walk = unsafe {
        let last = if f.complete { &f.chain[..f.depth] } else { &[] };
        chain::walk::<MINOR>(fields, first, last, &f.index, &mut f.scratch)
    };
    let (n, kept) = (walk.n, walk.kept);
    // The frame of the last step kept may have moved on in its code (the innermost, or one
    // returned to): its position now.
    let moved = match kept.checked_sub(1).map(|i| &f.chain[i]) {
        Some(s) if s.place != walk.place => {
            // 3.12+: the entry flag comes from the shim outside, which is the same.
            let entry = if MINOR >= 12 { s.position & 1 } else { 0 };
            Some(fields.position::<MINOR>(s.code, walk.place) | entry)
        }
        _ => None,
    };
    let stack = match (n, moved) {
        (0, None) if kept > 0 => {
            f.depth = kept;
            f.chain[kept - 1].stack
        }
        (0, Some(position)) => {
            f.depth = kept;
            restep(f, kept - 1, (walk.place, position), cx)
        }
        _ => settle(f, walk, moved, cx)?,
    };
    (stack != 0).then_some(stack)
}

/// The usual case, without a walk's bookkeeping: the innermost frame is the last chain's
/// innermost step's frame and the chain holds from it (the check a walk makes first, with the
/// same limits). The stack, the step's own or anew at the frame's new place; None otherwise
/// (the walk decides).
///
/// # Safety
/// As for `chain::walk`.
#[inline(always)]
unsafe fn same_innermost<const MINOR: u32>(
    f: &mut ThreadFrames,
    fields: &WalkFields,
    first: usize,
    cx: &mut Context,
) -> Option<u64> {
    let depth = f.depth;
    if !f.complete || depth == 0 || depth >= CAPACITY {
        return None;
    }
    let s = &f.chain[depth - 1];
    if s.addr != first || s.met as usize > chain::MAX_STEPS {
        return None;
    }
    // SAFETY: per the caller: `first` is the live innermost frame.
    unsafe {
        if !matches!(
            chain::holds::<MINOR>(fields, &f.chain[..depth], first),
            chain::Held::Yes
        ) {
            return None;
        }
        let place = fields.place::<MINOR>(first);
        if s.place == place {
            return Some(s.stack);
        }
        // 3.12+: the entry flag comes from the shim outside, which is the same.
        let entry = if MINOR >= 12 { s.position & 1 } else { 0 };
        let position = fields.position::<MINOR>(s.code, place) | entry;
        let cx = Context {
            api: cx.api,
            py: cx.py,
            tables: &mut *cx.tables,
        };
        Some(restep(f, depth - 1, (place, position), cx))
    }
}

/// Step `i`'s frame is at `place`, `position` now (its code and callers unchanged): its stack
/// anew.
#[inline(always)]
fn restep(f: &mut ThreadFrames, i: usize, (place, position): (usize, isize), cx: Context) -> u64 {
    let code = f.chain[i].code;
    let parent = if i > 0 { f.chain[i - 1].stack } else { 0 };
    let (stack, frame) = frame_stack(f, cx, code, position >> 1, parent).0;
    let s = &mut f.chain[i];
    s.place = place;
    s.position = position;
    s.entry = position & 1 != 0;
    s.stack = stack;
    s.frame = frame;
    stack
}

/// Turns a walk's new frames into steps over the kept ones (the last of which `moved` to a
/// new position, or not): names, lines, stack ids. The stack, or None when the walk found no
/// frame.
#[inline(never)]
fn settle(
    f: &mut ThreadFrames,
    walk: chain::Walk,
    moved: Option<isize>,
    cx: Context,
) -> Option<u64> {
    let (n, kept) = (walk.n, walk.kept);
    if n == 0 && kept == 0 {
        return None;
    }
    let same = match moved {
        Some(position) => {
            restep(
                f,
                kept - 1,
                (walk.place, position),
                Context {
                    api: cx.api,
                    py: cx.py,
                    tables: &mut *cx.tables,
                },
            );
            // The steps outside it were made over its former stack.
            0
        }
        // The new frames that run the same code at the same instruction as the last chain's
        // steps at their depth (outermost first) have the same stacks: under the same root
        // (a chain cut at the limit is rooted at a mark, a whole one at nothing).
        None if walk.complete == f.complete => reused_frames(f, kept, n),
        None => 0,
    };
    let Context { api, py, tables } = cx;
    let mut parent = if kept + same > 0 {
        f.chain[kept + same - 1].stack
    } else if walk.complete {
        0
    } else {
        too_deep_root(tables)
    };
    // The frame of the step outside (0 outside the outermost: when the walk was complete;
    // else the chain is never checked).
    let mut caller = if kept > 0 { f.chain[kept - 1].addr } else { 0 };
    for j in 0..n {
        let w = f.scratch[n - 1 - j];
        let i = kept + j;
        let (code, stack, frame) = if j < same {
            let s = &f.chain[i];
            (s.code, s.stack, s.frame)
        } else {
            let cx = Context {
                api,
                py,
                tables: &mut *tables,
            };
            let frame;
            let settled;
            ((parent, frame), settled) = frame_stack(f, cx, w.code, w.position >> 1, parent);
            // A code not kept alive could be freed and another made at its address: its step
            // never matches and is never checked.
            (if settled { w.code } else { 0 }, parent, frame)
        };
        let link = if code == 0 { Link::Other } else { w.link };
        f.chain[i] = Step {
            code,
            position: w.position,
            stack,
            frame,
            entry: w.position & 1 != 0,
            link,
            met: walk.met - w.met,
            addr: w.addr,
            place: w.place,
            prev: checked_prev(w.prev, link),
            caller,
        };
        chain::index(&mut f.index, w.addr, i);
        caller = w.addr;
    }
    f.depth = kept + n;
    f.complete = walk.complete;
    Some(f.chain[kept + n - 1].stack)
}

/// The root of a chain deeper than kept (its outermost frames left out): the mark of a stack
/// that stops short (docs/FORMAT.md), as native stacks have, so that reports say so.
#[cold]
fn too_deep_root(tables: &mut dyn Tables) -> u64 {
    let address = StopsShort::TooDeep.address();
    let frame = stacks::native_frame(address).unwrap_or_else(|id| {
        tables.native_frame(id, address);
        id
    });
    stacks::stack(0, frame).unwrap_or_else(|id| {
        tables.stack(id, 0, frame);
        id
    })
}

/// How many of the new frames (`f.scratch[..n]`, innermost first), counted from the outermost,
/// run the same code at the same instruction as the last chain's steps from `kept` on.
/// Zipped slices: no bounds check per frame.
#[inline(always)]
fn reused_frames(f: &ThreadFrames, kept: usize, n: usize) -> usize {
    let m = n.min(f.depth.saturating_sub(kept));
    let walked = &f.scratch[n - m..n];
    f.chain[kept..kept + m]
        .iter()
        .zip(walked.iter().rev())
        .take_while(|(c, w)| c.code == w.code && c.position == w.position)
        .count()
}

/// The stack of a frame running `code` at `offset` called from `parent` (the parent's own for
/// a hidden frame) and the frame's id, and whether the code is settled (codes.rs).
#[inline(always)]
fn frame_stack(
    f: &mut ThreadFrames,
    cx: Context,
    code: usize,
    offset: isize,
    parent: u64,
) -> ((u64, u64), bool) {
    // The line cache holds settled codes that show, which need no naming.
    let slot = &f.lines[line_slot(code, offset)];
    if slot.code == code && slot.offset == offset && slot.parent == parent && slot.stack != 0 {
        return ((slot.stack, slot.frame), true);
    }
    frame_stack_named(f, cx, code, offset, parent)
}

/// [`frame_stack`] past the line cache: names the code, finds the line, interns.
#[inline(never)]
fn frame_stack_named(
    f: &mut ThreadFrames,
    cx: Context,
    code: usize,
    offset: isize,
    parent: u64,
) -> ((u64, u64), bool) {
    let Context { api, py, tables } = cx;
    let (named, settled) = name(f, api, py, code, tables);
    let ids = match named {
        Named::Hidden => (parent, 0),
        // Not begun yet: what it allocates is its caller's line's (as CPython counts it).
        // SAFETY: a code named Shown is a live code object (`name` checked its type).
        Named::Shown { .. } if unsafe { py.layout.in_prologue(code, offset) } => (parent, 0),
        Named::Shown { function, file } => {
            stack_at(f, api, (code, offset), settled, parent, |line| {
                intern(tables, parent, function, file, line)
            })
        }
    };
    (ids, settled)
}

#[inline(always)]
fn line_slot(code: usize, offset: isize) -> usize {
    ((code >> 4) ^ (offset as usize).wrapping_mul(0x9e37_79b9)) & (LINE_SLOTS - 1)
}

/// The names of the object `code` a frame runs, and whether they are settled (cached).
fn name(
    f: &mut ThreadFrames,
    api: &Api,
    py: &Interpreter,
    code: usize,
    tables: &mut dyn Tables,
) -> (Named, bool) {
    // A cached code is kept alive: the object at its address is that code. Others are checked
    // (the code object's header is rarely in the cache).
    let slot = &mut f.names[(code >> 4) & (NAME_SLOTS - 1)];
    if slot.code == code {
        return (slot.named, true);
    }
    // SAFETY: the object a frame runs is alive while the frame runs.
    if unsafe { read(code + OB_TYPE) } != py.code_type {
        // 3.13 frames may run other objects than code: not a Python function to show.
        return (Named::Hidden, false);
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
    let slot = &mut f.lines[line_slot(code, offset)];
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
    let line = if settled {
        // A code kept alive, and its line table with it: a cursor may stay in it.
        super::lines::line(&mut f.cursors, api, code, offset32)
    } else {
        // SAFETY: a live code object; PyCode_Addr2Line only reads its line table.
        unsafe { (api.code_addr2line)(code as *mut _, offset32) }
    }
    .max(0) as u64;
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
    f.complete = false;
    for n in &mut f.names {
        n.code = 0;
    }
    for l in &mut f.lines {
        l.parent = 0;
        l.stack = 0;
    }
}

/// Forgets what the caches know of the code objects at `dead` (they died: others may run at
/// their addresses now): the chain's steps from the outermost that ran one of them inwards
/// (the steps outside stay: each links only outwards), and their entries in the line and name
/// caches and the line cursors. An eval loop makes and drops a code object each time:
/// emptying every cache at each death cost it 29% more added instructions than codes kept
/// alive did (callgrind, 100 frames deep), 7% so.
fn forget_dead(f: &mut ThreadFrames, dead: &[usize]) {
    f.depth = f.chain[..f.depth]
        .iter()
        .position(|s| dead.contains(&s.code))
        .unwrap_or(f.depth);
    for &code in dead {
        let name = &mut f.names[(code >> 4) & (NAME_SLOTS - 1)];
        if name.code == code {
            name.code = 0;
        }
        f.cursors.forget(code);
    }
    for l in &mut f.lines {
        if dead.contains(&l.code) {
            l.code = 0;
        }
    }
}

/// Forgets what the caches know by code address (code objects died: others may run at their
/// addresses now), the ids with it.
fn forget_codes(f: &mut ThreadFrames) {
    forget_ids(f);
    for l in &mut f.lines {
        l.code = 0;
    }
    f.cursors = super::lines::Cursors::none();
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
    /// A step as a walk keeps it, for tests of the chain's check.
    #[cfg(test)]
    pub(super) fn for_check(
        addr: usize,
        code: usize,
        place: usize,
        prev: usize,
        link: Link,
        caller: usize,
    ) -> Step {
        Step {
            code,
            link,
            addr,
            place,
            prev,
            caller,
            ..Step::for_test(1, false)
        }
    }

    /// A step of a made-up chain, for tests of what reads chains.
    #[cfg(test)]
    pub fn for_test(frame: u64, entry: bool) -> Step {
        Step {
            code: 0,
            position: 0,
            stack: 0,
            frame,
            entry,
            link: Link::Other,
            met: 0,
            addr: 0,
            place: 0,
            prev: 0,
            caller: 0,
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

/// The chain the last `current` call read, outermost first (empty when it found none), and
/// whether it is whole: false when its outermost frames were left out (a chain deeper than
/// `chain::CAPACITY`).
pub fn last_chain(t: &tls::Tls) -> (&'static [Step], bool) {
    if t.py.is_null() {
        return (&[], true);
    }
    // SAFETY: this thread's own mapping (see frames_of).
    let f = unsafe { &*(t.py as *const ThreadFrames) };
    (&f.chain[..f.depth], f.complete || f.depth == 0)
}
