//! The usual cases of a Python stack, answered before any walk (frames::current) from the
//! last chain and the line cache alone: the innermost frame is the last chain's innermost
//! (moved on in its code or not), the frame that called it (it returned), or a new frame called
//! from it. One inlined path from the hook: most allocations need nothing else.

use super::super::chain::{self, checked_prev, Held, Link, CAPACITY};
use super::super::layout::{read, WalkFields, TSTATE_INTERP};
use super::{line_slot, Interpreter, Step, ThreadFrames};
use crate::{stacks, tls};
use std::sync::atomic::Ordering;

/// The calling thread's thread state, if it is one of the main interpreter's (0 otherwise).
#[inline(always)]
pub fn thread_state(py: &Interpreter) -> usize {
    // SAFETY: reads the thread's own entry of the runtime's thread-state key.
    let tstate = unsafe { (py.this_thread_state)() } as usize;
    // SAFETY: a thread state bound to this thread is alive while the thread uses it (until the
    // interpreter's teardown, which the capture does not reach: see script_finished).
    if tstate == 0 || unsafe { read(tstate + TSTATE_INTERP) } != py.interp {
        return 0;
    }
    tstate
}

/// The usual cases of [`current`], answered from the last chain and the line cache alone:
/// the innermost frame is the last chain's innermost (moved on in its code or not), the one
/// it was called from (it returned), or a new frame called from it; the chain outside holds
/// (chain.rs) and every line needed is cached. The stack; None otherwise (nothing changed:
/// `current` takes the whole way). The stacks are those a walk gives: a stack is a function
/// of what is compared.
#[inline(always)]
pub fn quick(t: &tls::Tls, py: &Interpreter, tstate: usize) -> Option<u64> {
    let p = t.py as *mut ThreadFrames;
    if p.is_null() {
        return None;
    }
    // SAFETY: this thread's own mapping (see frames_of).
    let f = unsafe { &mut *p };
    if f.epoch != stacks::EPOCH.load(Ordering::Relaxed) || f.deaths != super::codes::deaths() {
        return None;
    }
    // SAFETY: the thread's own state: its chain is changed only by this thread, which is here;
    // every frame on it is alive, and so is each frame's code.
    unsafe {
        match py.layout.minor {
            10 => quick_as::<10>(f, tstate),
            11 => quick_as::<11>(f, tstate),
            12 => quick_as::<12>(f, tstate),
            _ => quick_as::<13>(f, tstate),
        }
    }
}

/// [`quick`] for CPython 3.`MINOR`.
///
/// # Safety
/// `tstate` is the calling thread's live thread state, of this version; as for `chain::walk`.
#[inline(always)]
unsafe fn quick_as<const MINOR: u32>(f: &mut ThreadFrames, tstate: usize) -> Option<u64> {
    let fields = &const { WalkFields::of::<MINOR>() };
    // SAFETY: per the caller.
    let first = unsafe { fields.current_frame(tstate) };
    let depth = f.depth;
    // As a walk's limits: it stops at a kept frame only within them.
    if first == 0 || !f.complete || depth == 0 || depth + 1 >= CAPACITY {
        return None;
    }
    let top = f.chain[depth - 1];
    if top.met as usize >= chain::MAX_STEPS {
        return None;
    }
    // SAFETY: per the caller: `first` is the live innermost frame, and the frames `holds`
    // reads are on the live chain.
    unsafe {
        if top.addr == first {
            return moved_on::<MINOR>(f, fields, depth, first);
        }
        if depth >= 2 && f.chain[depth - 2].addr == first {
            return moved_on::<MINOR>(f, fields, depth - 1, first);
        }
        // A new frame called from the innermost step's frame.
        let prev = fields.previous(first);
        if prev != top.addr || fields.is_shim::<MINOR>(first) {
            return None;
        }
        let code = fields.code(first);
        if code == 0
            || !matches!(
                chain::holds::<MINOR>(fields, &f.chain[..depth], prev),
                Held::Yes
            )
        {
            return None;
        }
        let (top_place, top_position, top_ids) = at_place::<MINOR>(f, fields, depth - 1, prev)?;
        let place = fields.place::<MINOR>(first);
        let position = fields.position::<MINOR>(code, place);
        let (stack, frame) = cached(f, code, position >> 1, top_ids.0)?;
        set_place(&mut f.chain[depth - 1], top_place, top_position, top_ids);
        f.chain[depth] = Step {
            code,
            position,
            stack,
            frame,
            entry: position & 1 != 0,
            link: Link::Direct,
            met: top.met + 1,
            addr: first,
            place,
            prev: checked_prev(prev, Link::Direct),
            caller: top.addr,
        };
        chain::index(&mut f.index, first, depth);
        f.depth = depth + 1;
        Some(stack)
    }
}

/// The chain's step `depth - 1` is the frame `first`, innermost now, and the chain holds from
/// it: the chain is cut there and the step's stack is taken at the frame's place now.
///
/// # Safety
/// As for `chain::walk`; `first` is the live innermost frame.
#[inline(always)]
unsafe fn moved_on<const MINOR: u32>(
    f: &mut ThreadFrames,
    fields: &WalkFields,
    depth: usize,
    first: usize,
) -> Option<u64> {
    // SAFETY: per the caller.
    unsafe {
        if !matches!(
            chain::holds::<MINOR>(fields, &f.chain[..depth], first),
            Held::Yes
        ) {
            return None;
        }
        let (place, position, ids) = at_place::<MINOR>(f, fields, depth - 1, first)?;
        set_place(&mut f.chain[depth - 1], place, position, ids);
        f.depth = depth;
        Some(ids.0)
    }
}

/// Step `i`'s frame `frame` (its code and callers unchanged) at its place now: the place, the
/// position and the (stack, frame) ids, the step's own or from the line cache; None when not
/// cached.
///
/// # Safety
/// `frame` is the live frame of step `i`.
#[inline(always)]
unsafe fn at_place<const MINOR: u32>(
    f: &ThreadFrames,
    fields: &WalkFields,
    i: usize,
    frame: usize,
) -> Option<(usize, isize, (u64, u64))> {
    let s = &f.chain[i];
    // SAFETY: per the caller.
    let place = unsafe { fields.place::<MINOR>(frame) };
    if place == s.place {
        return (s.stack != 0).then_some((place, s.position, (s.stack, s.frame)));
    }
    // 3.12+: the entry flag comes from the shim outside, which is the same.
    let entry = if MINOR >= 12 { s.position & 1 } else { 0 };
    let position = fields.position::<MINOR>(s.code, place) | entry;
    let parent = if i > 0 { f.chain[i - 1].stack } else { 0 };
    let ids = cached(f, s.code, position >> 1, parent)?;
    Some((place, position, ids))
}

/// A step at a new place (as `restep` sets it).
#[inline(always)]
fn set_place(s: &mut Step, place: usize, position: isize, (stack, frame): (u64, u64)) {
    s.place = place;
    s.position = position;
    s.entry = position & 1 != 0;
    s.stack = stack;
    s.frame = frame;
}

/// The line cache's (stack, frame) of `code` at `offset` under `parent`, if it has them (a
/// code kept alive that shows: see `frame_stack`).
#[inline(always)]
fn cached(f: &ThreadFrames, code: usize, offset: isize, parent: u64) -> Option<(u64, u64)> {
    let slot = &f.lines[line_slot(code, offset)];
    (slot.code == code && slot.offset == offset && slot.parent == parent && slot.stack != 0)
        .then_some((slot.stack, slot.frame))
}
