//! Wrappers around the PyMem "mem" and "object" domains, so that each object pymalloc serves is
//! seen on its own. The wrapped allocator runs with the re-entrancy flag set: the malloc or mmap
//! it makes for a big object or a new arena is not recorded a second time. (The "raw" domain is
//! plain malloc: the malloc hook sees it.)
//!
//! With object types on, a free in the object domain also records the type of the object the
//! block held, read from the block's header before the real free (see [`object_type`]): the
//! reporter then knows the type of every block freed after the peak, so of what was live at
//! the peak.

use crate::capture::CAPTURE;
use crate::hooks::{enter, enter_at, refused, site_trampoline, CallSite, Entered};
use crate::python::api::{Api, MemAllocator, DOMAIN_MEM, DOMAIN_OBJ};
use crate::real::forward;
use crate::{clock, thread};
use libc::c_void;
use memtrace_format::Allocator;
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, Ordering};

/// The allocators wrapped, one per domain; each wrapper's context points at its original.
struct Originals(UnsafeCell<[MemAllocator; 2]>);
// SAFETY: written once, under the GIL, before any wrapper is installed; read-only afterwards.
unsafe impl Sync for Originals {}

static ORIGINALS: Originals = Originals(UnsafeCell::new(
    [MemAllocator {
        ctx: core::ptr::null_mut(),
        malloc: unset_malloc,
        calloc: unset_calloc,
        realloc: unset_realloc,
        free: unset_free,
    }; 2],
));

unsafe extern "C" fn unset_malloc(_: *mut c_void, _: usize) -> *mut c_void {
    core::ptr::null_mut()
}
unsafe extern "C" fn unset_calloc(_: *mut c_void, _: usize, _: usize) -> *mut c_void {
    core::ptr::null_mut()
}
unsafe extern "C" fn unset_realloc(_: *mut c_void, _: *mut c_void, _: usize) -> *mut c_void {
    core::ptr::null_mut()
}
unsafe extern "C" fn unset_free(_: *mut c_void, _: *mut c_void) {}

/// The wrapper of each domain is in the domain's chain (installed and not taken out).
static INSTALLED: [AtomicBool; 2] = [AtomicBool::new(false), AtomicBool::new(false)];

/// The object domain's frees record the type of the object freed (set before `install`).
static TYPED_FREES: AtomicBool = AtomicBool::new(false);

/// Whether the object domain's frees record the object's type (its wrapper is installed so).
pub fn typed_frees() -> bool {
    TYPED_FREES.load(Ordering::Relaxed) && INSTALLED[1].load(Ordering::Acquire)
}

/// Whether the next `install` makes the object domain's frees record the object's type.
pub fn set_typed_frees(on: bool) {
    TYPED_FREES.store(on, Ordering::Relaxed);
}

/// Wraps the mem and object domains (those not wrapped already). Called with the GIL held.
pub fn install(api: &Api) {
    let originals = ORIGINALS.0.get() as *mut MemAllocator;
    for (i, domain) in [DOMAIN_MEM, DOMAIN_OBJ].into_iter().enumerate() {
        if INSTALLED[i].swap(true, Ordering::AcqRel) {
            continue;
        }
        // SAFETY: slot i of the static table, written while no wrapper that reads it is
        // installed; PyMem_GetAllocator fills the struct.
        unsafe {
            let original = originals.add(i);
            (api.mem_get_allocator)(domain, original);
            let typed = domain == DOMAIN_OBJ && TYPED_FREES.load(Ordering::Relaxed);
            let (malloc, calloc, realloc) = allocating_entries();
            let wrapper = MemAllocator {
                ctx: original as *mut c_void,
                malloc,
                calloc,
                realloc,
                free: if typed {
                    wrapped_typed_free
                } else {
                    wrapped_free
                },
            };
            (api.mem_set_allocator)(domain, &wrapper);
        }
    }
}

/// Puts back the allocators the wrappers wrap, where a wrapper is still the domain's
/// allocator. One another tool wrapped since (tracemalloc) stays in its chain, passing calls
/// through (recording is off), and is used again by the next `install`. Called with the GIL
/// held, so no call is inside a wrapper.
pub fn uninstall(api: &Api) {
    let originals = ORIGINALS.0.get() as *mut MemAllocator;
    for (i, domain) in [DOMAIN_MEM, DOMAIN_OBJ].into_iter().enumerate() {
        if !INSTALLED[i].load(Ordering::Acquire) {
            continue;
        }
        let mut current = MemAllocator {
            ctx: core::ptr::null_mut(),
            malloc: unset_malloc,
            calloc: unset_calloc,
            realloc: unset_realloc,
            free: unset_free,
        };
        // SAFETY: PyMem_GetAllocator fills the struct; slot i of the table is the original.
        unsafe {
            (api.mem_get_allocator)(domain, &mut current);
            let original = originals.add(i);
            if current.ctx == original as *mut c_void
                && (current.malloc as usize == wrapped_malloc as *const () as usize
                    || current.malloc as usize == sited_malloc as *const () as usize)
            {
                (api.mem_set_allocator)(domain, original);
                INSTALLED[i].store(false, Ordering::Release);
            }
        }
    }
}

fn original(ctx: *mut c_void) -> &'static MemAllocator {
    // SAFETY: the context of every wrapper is its slot in ORIGINALS (see `install`).
    unsafe { &*(ctx as *const MemAllocator) }
}

type MallocFn = unsafe extern "C" fn(*mut c_void, usize) -> *mut c_void;
type CallocFn = unsafe extern "C" fn(*mut c_void, usize, usize) -> *mut c_void;
type ReallocFn = unsafe extern "C" fn(*mut c_void, *mut c_void, usize) -> *mut c_void;

/// The wrappers the interpreter calls to allocate: under `--native`, the trampolines that pass
/// their call site (below); else the wrappers themselves (the site would serve
/// nothing, and each call would pay for the trampoline).
fn allocating_entries() -> (MallocFn, CallocFn, ReallocFn) {
    if crate::stacks::unwind::enabled() {
        (sited_malloc, sited_calloc, sited_realloc)
    } else {
        (wrapped_malloc, wrapped_calloc, wrapped_realloc)
    }
}

// Under `--native` the interpreter calls these call-site trampolines (hooks/trampoline.rs), as
// the exported allocation functions are: a walk then starts at the interpreter's call with its
// registers there, not in the tracker's own frames (each of them a lookup in the unwinder's rule
// cache, whose slots the tracker's code addresses shared with the program's: the walks' cost
// moved with the tracker's code layout), and a walk from a call path met before is given again
// before any set-up (unwind/walk.rs, `again`).
site_trampoline!(sited_malloc => malloc_at, "rdx", "x2", (ctx: *mut c_void, size: usize) -> *mut c_void);
site_trampoline!(sited_calloc => calloc_at, "rcx", "x3", (ctx: *mut c_void, n: usize, size: usize) -> *mut c_void);
site_trampoline!(sited_realloc => realloc_at, "rcx", "x3", (ctx: *mut c_void, old: *mut c_void, size: usize) -> *mut c_void);

/// [`enter`], from the call site `site` when a trampoline gave it.
#[inline(always)]
fn enter_from(site: Option<&CallSite>) -> Option<Entered> {
    match site {
        Some(site) => enter_at(site),
        None => enter(),
    }
}

unsafe extern "C" fn malloc_at(ctx: *mut c_void, size: usize, site: &CallSite) -> *mut c_void {
    // SAFETY: the allocator's own contract, passed on.
    unsafe { malloc_from(ctx, size, Some(site)) }
}

unsafe extern "C" fn wrapped_malloc(ctx: *mut c_void, size: usize) -> *mut c_void {
    // SAFETY: the allocator's own contract, passed on.
    unsafe { malloc_from(ctx, size, None) }
}

/// The wrapped malloc, called at `site` when a trampoline gave it.
///
/// # Safety
/// As the allocator's malloc: `ctx` is a wrapper's context.
#[inline(always)]
unsafe fn malloc_from(ctx: *mut c_void, size: usize, site: Option<&CallSite>) -> *mut c_void {
    let o = original(ctx);
    let Some(mut t) = enter_from(site) else {
        return forward!(o.malloc; o.ctx, size);
    };
    let p = forward!(o.malloc; o.ctx, size);
    if !p.is_null() {
        thread::record_alloc(&mut t, Allocator::PymallocMalloc, p as u64, size as u64, 0);
        return p;
    }
    refused(
        &mut t,
        Allocator::PymallocMalloc,
        size as u64,
        0,
        || forward!(o.malloc; o.ctx, size),
    )
}

unsafe extern "C" fn calloc_at(
    ctx: *mut c_void,
    n: usize,
    size: usize,
    site: &CallSite,
) -> *mut c_void {
    // SAFETY: the allocator's own contract, passed on.
    unsafe { calloc_from(ctx, n, size, Some(site)) }
}

unsafe extern "C" fn wrapped_calloc(ctx: *mut c_void, n: usize, size: usize) -> *mut c_void {
    // SAFETY: the allocator's own contract, passed on.
    unsafe { calloc_from(ctx, n, size, None) }
}

/// The wrapped calloc, called at `site` when a trampoline gave it.
///
/// # Safety
/// As the allocator's calloc: `ctx` is a wrapper's context.
#[inline(always)]
unsafe fn calloc_from(
    ctx: *mut c_void,
    n: usize,
    size: usize,
    site: Option<&CallSite>,
) -> *mut c_void {
    let o = original(ctx);
    let Some(mut t) = enter_from(site) else {
        return forward!(o.calloc; o.ctx, n, size);
    };
    let p = forward!(o.calloc; o.ctx, n, size);
    let total = (n as u64).saturating_mul(size as u64);
    if !p.is_null() {
        thread::record_alloc(&mut t, Allocator::PymallocCalloc, p as u64, total, 0);
        return p;
    }
    refused(
        &mut t,
        Allocator::PymallocCalloc,
        total,
        0,
        || forward!(o.calloc; o.ctx, n, size),
    )
}

unsafe extern "C" fn realloc_at(
    ctx: *mut c_void,
    old: *mut c_void,
    size: usize,
    site: &CallSite,
) -> *mut c_void {
    // SAFETY: the allocator's own contract, passed on.
    unsafe { realloc_from(ctx, old, size, Some(site)) }
}

unsafe extern "C" fn wrapped_realloc(
    ctx: *mut c_void,
    old: *mut c_void,
    size: usize,
) -> *mut c_void {
    // SAFETY: the allocator's own contract, passed on.
    unsafe { realloc_from(ctx, old, size, None) }
}

/// The wrapped realloc, called at `site` when a trampoline gave it.
///
/// # Safety
/// As the allocator's realloc: `ctx` is a wrapper's context.
#[inline(always)]
unsafe fn realloc_from(
    ctx: *mut c_void,
    old: *mut c_void,
    size: usize,
    site: Option<&CallSite>,
) -> *mut c_void {
    let o = original(ctx);
    let Some(mut t) = enter_from(site) else {
        return forward!(o.realloc; o.ctx, old, size);
    };
    // The free's time (none in an aggregated capture, which orders nothing by it).
    let before = thread::free_tick(&mut t);
    let mut p = forward!(o.realloc; o.ctx, old, size);
    if p.is_null() && size > 0 && CAPTURE.give_back_room() {
        p = forward!(o.realloc; o.ctx, old, size);
    }
    if !p.is_null() {
        if !old.is_null() {
            thread::record_free(&mut t, true, old as u64, Some(before));
        }
        thread::record_alloc(&mut t, Allocator::PymallocRealloc, p as u64, size as u64, 0);
    } else if size > 0 {
        thread::record_failed(&mut t, Allocator::PymallocRealloc, size as u64, 0);
    }
    p
}

unsafe extern "C" fn wrapped_free(ctx: *mut c_void, p: *mut c_void) {
    if p.is_null() || thread::surely_unrecorded_free(p as u64) {
        let o = original(ctx);
        return forward!(o.free; o.ctx, p);
    }
    // SAFETY: the allocator's own contract, passed on.
    unsafe { free_as::<false>(ctx, p) }
}

/// The object domain's free with object types on: as `wrapped_free`, and the type of the
/// object the block held, read before the real free (which writes pymalloc's free-list link
/// over the block's first word).
unsafe extern "C" fn wrapped_typed_free(ctx: *mut c_void, p: *mut c_void) {
    if p.is_null() || thread::surely_unrecorded_free(p as u64) {
        let o = original(ctx);
        return forward!(o.free; o.ctx, p);
    }
    // SAFETY: the allocator's own contract, passed on.
    unsafe { free_as::<true>(ctx, p) }
}

/// A free in a domain of a block that is not null and may be recorded, typed (`TYPED`) or
/// not. Out of line: the wrappers' quick way out (a free sampling leaves out) saves no
/// registers.
///
/// # Safety
/// `p` is a live block of the domain `ctx` wraps, being freed by its owner.
#[inline(never)]
unsafe fn free_as<const TYPED: bool>(ctx: *mut c_void, p: *mut c_void) {
    let o = original(ctx);
    let Some(mut t) = enter() else {
        return forward!(o.free; o.ctx, p);
    };
    if !thread::take_free(p as u64) {
        return forward!(o.free; o.ctx, p);
    }
    if TYPED {
        // SAFETY: `p` is a live block of the object domain, being freed by its owner.
        let ty = unsafe { object_type(p as usize) };
        let tick = clock::event_tick(&mut t);
        thread::prefetch_free(&t, p as u64);
        forward!(o.free; o.ctx, p);
        thread::record_typed_free(&mut t, p as u64, ty, tick);
    } else {
        // The tick before the real free orders the free before any reuse of the block; the
        // record is written after it, so that the real free hides the recorder's cache miss.
        let tick = thread::free_tick(&mut t);
        thread::prefetch_free(&t, p as u64);
        forward!(o.free; o.ctx, p);
        thread::record_free_taken(&mut t, true, p as u64, Some(tick));
    }
}

/// The type of the object a block of the object domain held, read from the block as its
/// object's deallocation left it, or 0. An object's memory is freed at the end of its
/// deallocation, when its reference count is 0 and its type pointer still set. The object
/// lies at the block's start, or after the collector's two links (the next one 0 once the
/// object left the collector's lists, the previous one 0 or the "finalized" bit), or, from
/// 3.11, after two words more (the managed dict and weak-reference pointers). The first layout
/// that fits gives the type. Blocks that hold no object (a dict's keys) give whatever a word
/// holds: the reporter keeps only addresses that are types it knows (the walk at the script's
/// end names every type then alive).
///
/// # Safety
/// `p` must be the start of a live block (at least 16 bytes: pymalloc's least). Words past the
/// 16th byte are read on `p`'s own page, which is mapped, or, for a block that starts in the
/// last 48 bytes of its page (about one free in a hundred), once mincore said the next page is
/// mapped too (a heap's pages are readable when mapped).
#[inline(always)]
unsafe fn object_type(p: usize) -> u64 {
    // SAFETY: the first 16 bytes are the block's.
    let word = |offset: usize| unsafe { *((p + offset) as *const usize) };
    let (refcnt, ty) = (word(0), word(8));
    if refcnt == 0 && ty > 1 {
        return ty as u64;
    }
    let room = 4096 - (p & 4095);
    if room < 48 && !crate::sys::is_mapped((p & !4095) + 4096) {
        return 0;
    }
    for at in [16, 32] {
        if word(at - 16) == 0 && word(at - 8) <= 1 && word(at) == 0 && word(at + 8) > 1 {
            return word(at + 8) as u64;
        }
    }
    0
}
