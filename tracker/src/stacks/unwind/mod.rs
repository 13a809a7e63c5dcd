//! Native call stacks (`memtrace run --native`): the allocating thread's stack is unwound in
//! process at each allocation, with framehop over the `.eh_frame` of the loaded modules (frame
//! pointers where a module has no CFI), and interned as a prefix tree of native frames.
//!
//! - [`loaded`]: the modules' unwind tables, rebuilt when the loader's lists change
//! - [`bounds`]: the stacks a walk may read
//! - [`walk`]: the walk itself, from the call site (or inside the tracker) out to the thread's
//!   first frame
//! - [`merge`]: in a Python run, the Python frames placed below the evaluation loop's frames; a
//!   stack that stops short of the thread's first frame marked so
//! - [`tree`]: the per-thread cache of the last stack, so that only new nodes are interned
//!
//! Nothing here runs unless `--native` was asked for: the allocation path tests one flag.

mod bounds;
mod loaded;
mod merge;
mod step;
mod tree;
mod walk;

pub use loaded::{after_fork, dlclose, module_closed};
pub use merge::learn_eval_loop;
pub use step::distances;

use crate::{stacks, sys, tls};
use framehop::x86_64::CacheX86_64;
use framehop::MustNotAllocateDuringUnwind;
use memtrace_format::StopsShort;
use std::sync::atomic::{AtomicBool, Ordering};

/// Native frames kept per stack: the innermost ones of a deeper stack.
pub const MAX_DEPTH: usize = 128;
/// Frames kept per merged stack of native and Python frames: every Python frame a stack of
/// Python frames alone keeps, with the native ones (512 kept 507 of a 1,000-deep recursion's
/// frames, where the same run without --native kept all).
pub const MAX_MERGED: usize = crate::python::chain::CAPACITY + MAX_DEPTH + 2;

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Where a thread writes the table records a native stack needs (and, for a merged stack, the
/// Python ones).
pub trait Tables: crate::python::Tables {}

/// Called at start-up: record native stacks (MEMTRACE_NATIVE=1).
pub fn configure(enabled: bool) {
    ENABLED.store(enabled, Ordering::Relaxed);
}

#[inline(always)]
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

type Cache = CacheX86_64<MustNotAllocateDuringUnwind>;

/// A thread's unwinding state, in an anonymous mapping made at its first native stack (and
/// inherited as it is by a fork child, whose thread runs on the same stack).
struct Native {
    bounds: bounds::Stack,
    /// `bounds` were found (not yet when the thread's first walk ran on a signal stack).
    bounds_known: bool,
    /// framehop's rule cache and DWARF evaluation space (boxed by framehop: built once).
    cache: Option<Cache>,
    /// Walks since the loader's lists were last checked (see `loaded::current`).
    walks: u32,
    /// The current walk's return addresses, innermost first (walked, or copied from a trace).
    pcs: [u64; MAX_DEPTH],
    /// What the last walks read from the first frame of the program on (see `walk`).
    traces: walk::Traces,
    /// The last merged chain, innermost first.
    merged: [u64; MAX_MERGED],
    /// Code outside every module met by walks, with the snapshot it was not in: the loader is
    /// asked about a new module once per such address (JIT code meets the same ones again).
    unknown: [(u64, usize); UNKNOWN_SLOTS],
    tree: tree::Tree,
}

const UNKNOWN_SLOTS: usize = 64;

/// Whether `pc`, unknown code, was not met before with `snapshot` (remembered in `seen`).
fn first_unknown(
    seen: &mut [(u64, usize); UNKNOWN_SLOTS],
    pc: u64,
    snapshot: &loaded::Snapshot,
) -> bool {
    let key = (pc, snapshot as *const loaded::Snapshot as usize);
    let slot = &mut seen[(stacks::hash(pc) as usize) & (UNKNOWN_SLOTS - 1)];
    if *slot == key {
        return false;
    }
    *slot = key;
    true
}

fn native_of(t: &mut tls::Tls) -> Option<&'static mut Native> {
    if t.native.is_null() {
        let p = sys::map_anon(core::mem::size_of::<Native>())? as *mut Native;
        // SAFETY: fresh zeroed memory of the right size, owned by this thread; `cache` is
        // written before use (zeroed bytes are not a valid Option<Cache>).
        unsafe { core::ptr::addr_of_mut!((*p).cache).write(None) };
        t.native = p as *mut core::ffi::c_void;
    }
    // SAFETY: this thread's own mapping, made above, unmapped only by `thread_exited`.
    let n = unsafe { &mut *(t.native as *mut Native) };
    if !n.bounds_known {
        if let Some(stack) = bounds::Stack::of_this_thread() {
            n.bounds = stack;
            n.bounds_known = true;
        }
    }
    Some(n)
}

/// Stack a walk may need below the hook's frame: measured, some 10-12 KiB (a thread's first
/// walk, which builds framehop's cache, about as much as later ones), with a margin.
const FIRST_WALK_ROOM: u64 = 32 << 10;
const WALK_ROOM: u64 = 20 << 10;

/// The thread is ending: its unwinding state goes.
pub fn thread_exited(t: &mut tls::Tls) {
    if t.native.is_null() {
        return;
    }
    let p = core::mem::replace(&mut t.native, core::ptr::null_mut()) as *mut Native;
    // SAFETY: the thread's own state, no longer reachable: drop its cache (the tracker's own
    // allocator frees it), then unmap it.
    unsafe { core::ptr::drop_in_place(core::ptr::addr_of_mut!((*p).cache)) };
    sys::unmap(p as *mut u8, core::mem::size_of::<Native>());
}

/// The interned native stack of the calling thread's allocation, defining new frames and stacks
/// in `tables` (on a stack the walk may not use, the call site under a mark); None when it
/// could not be unwound (the caller falls back to the call site).
/// Called from a hook with the re-entrancy flag set.
#[inline(never)]
pub fn stack(t: &mut tls::Tls, tables: &mut dyn Tables, ret: u64) -> Option<u64> {
    let n = native_of(t)?;
    // A small thread stack or signal stack (PTHREAD_STACK_MIN, SIGSTKSZ) is the program's
    // choice: the walk must not overflow it, the call site does instead.
    let need = if n.cache.is_none() {
        FIRST_WALK_ROOM
    } else {
        WALK_ROOM
    };
    let depth = if bounds::room_below(&n.bounds, bounds::stack_pointer()) < need {
        call_site_only(n, ret)?
    } else {
        walked(t, n)?
    };
    intern(t, n, tables, depth)
}

/// A stack the walk may not use (too small, or of bounds not known: a coroutine's): the call
/// site `ret` alone, as a walk that stopped there (`StopsShort::NoRoom`); None without one.
#[cold]
fn call_site_only(n: &mut Native, ret: u64) -> Option<walk::Walked> {
    if ret == 0 {
        return None;
    }
    n.pcs[0] = ret;
    Some(walk::Walked {
        frames: 1,
        short: Some(StopsShort::NoRoom),
        trace: None,
    })
}

/// The calling thread's walk into `n.pcs`; None when it found no frame.
#[inline(always)]
fn walked(t: &mut tls::Tls, n: &mut Native) -> Option<walk::Walked> {
    let snapshot = loaded::current(&mut n.walks)?;
    let site = t.call_site;
    let mut depth = match walk::again(snapshot, &n.bounds, &mut n.traces, &mut n.pcs, site) {
        Some(depth) => depth,
        None => {
            let cache = n.cache.get_or_insert_with(Cache::new_in);
            walk::walk(snapshot, cache, &n.bounds, &mut n.pcs, &mut n.traces, site)
        }
    };
    if depth.short == Some(StopsShort::UnknownCode)
        && first_unknown(&mut n.unknown, n.pcs[depth.frames - 1], snapshot)
        && loaded::refresh_if_changed()
    {
        // Code of a module loaded since the snapshot was made: walk again with the new one.
        let snapshot = loaded::current(&mut n.walks)?;
        let cache = n.cache.get_or_insert_with(Cache::new_in);
        depth = walk::walk(snapshot, cache, &n.bounds, &mut n.pcs, &mut n.traces, site);
    }
    (depth.frames > 0).then_some(depth)
}

/// The stack of `depth` frames in `n.pcs`, merged with the thread's Python frames and interned.
#[inline(always)]
fn intern(
    t: &mut tls::Tls,
    n: &mut Native,
    tables: &mut dyn Tables,
    depth: walk::Walked,
) -> Option<u64> {
    let pcs = &n.pcs[..depth.frames];
    let epoch = stacks::EPOCH.load(Ordering::Relaxed);
    let chain = crate::python::current_chain(t, tables);
    // The main script's compilation (no Python frame yet): its `<compile>` frame outermost,
    // so that the stack's Python frames name it as a capture without native stacks does (a
    // diff of the two listed it as gone, and the interpreter's parser as new).
    let compile = match chain {
        None => crate::python::script::compile_frame(t, tables),
        Some(_) => None,
    };
    let keys = match (chain, depth.short, compile) {
        (None, None, None) => {
            // A trace's frames, interned alone in this epoch: the same id.
            if let Some(stack) = depth.trace.and_then(|i| n.traces.interned(i, epoch)) {
                return Some(stack);
            }
            pcs
        }
        (chain, short, compile) => {
            let (chain, whole) = chain.unwrap_or((&[], true));
            let mut len = merge::merge(pcs, short, chain, whole, &mut n.merged);
            if let Some(frame) = compile.filter(|_| len < MAX_MERGED) {
                n.merged[len] = merge::PYTHON | frame;
                len += 1;
            }
            &n.merged[..len]
        }
    };
    let stack = n.tree.intern(epoch, keys, tables);
    if keys.as_ptr() == n.pcs.as_ptr() {
        if let Some(i) = depth.trace {
            n.traces.set_interned(i, epoch, stack);
        }
    }
    Some(stack)
}
