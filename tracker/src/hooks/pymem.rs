//! Wrappers around the PyMem "mem" and "object" domains, so that each object pymalloc serves is
//! seen on its own. The wrapped allocator runs with the re-entrancy flag set: the malloc or mmap
//! it makes for a big object or a new arena is not recorded a second time. (The "raw" domain is
//! plain malloc: the malloc hook sees it.)

use crate::hooks::enter;
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
            let wrapper = MemAllocator {
                ctx: original as *mut c_void,
                malloc: wrapped_malloc,
                calloc: wrapped_calloc,
                realloc: wrapped_realloc,
                free: wrapped_free,
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
                && current.malloc as usize == wrapped_malloc as *const () as usize
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

unsafe extern "C" fn wrapped_malloc(ctx: *mut c_void, size: usize) -> *mut c_void {
    let o = original(ctx);
    let Some(mut t) = enter() else {
        return forward!(o.malloc; o.ctx, size);
    };
    let p = forward!(o.malloc; o.ctx, size);
    if !p.is_null() {
        thread::record_alloc(&mut t, Allocator::PymallocMalloc, p as u64, size as u64, 0);
    } else if size > 0 {
        thread::record_failed(&mut t, Allocator::PymallocMalloc, size as u64, 0);
    }
    p
}

unsafe extern "C" fn wrapped_calloc(ctx: *mut c_void, n: usize, size: usize) -> *mut c_void {
    let o = original(ctx);
    let Some(mut t) = enter() else {
        return forward!(o.calloc; o.ctx, n, size);
    };
    let p = forward!(o.calloc; o.ctx, n, size);
    let total = (n as u64).saturating_mul(size as u64);
    if !p.is_null() {
        thread::record_alloc(&mut t, Allocator::PymallocCalloc, p as u64, total, 0);
    } else if total > 0 {
        thread::record_failed(&mut t, Allocator::PymallocCalloc, total, 0);
    }
    p
}

unsafe extern "C" fn wrapped_realloc(
    ctx: *mut c_void,
    old: *mut c_void,
    size: usize,
) -> *mut c_void {
    let o = original(ctx);
    let Some(mut t) = enter() else {
        return forward!(o.realloc; o.ctx, old, size);
    };
    let before = clock::tick();
    let p = forward!(o.realloc; o.ctx, old, size);
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
    let o = original(ctx);
    if p.is_null() {
        return forward!(o.free; o.ctx, p);
    }
    let Some(mut t) = enter() else {
        return forward!(o.free; o.ctx, p);
    };
    if !thread::take_free(p as u64) {
        return forward!(o.free; o.ctx, p);
    }
    // The tick before the real free orders the free before any reuse of the block; the record
    // is written after it, so that the real free hides the recorder's cache miss.
    let tick = clock::tick();
    thread::prefetch_free(&t, p as u64);
    forward!(o.free; o.ctx, p);
    thread::record_free_taken(&mut t, true, p as u64, Some(tick));
}
