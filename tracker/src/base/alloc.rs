//! The tracker's own heap: straight to the C library's allocator (`real::Heap`: never one the
//! program defines, which may hold its lock where a hook runs), so the tracker's memory never
//! passes through its hooks (and is never recorded). Large blocks are mappings of their own: a zeroed
//! one (each thread's index of recent addresses) then costs memory only for the pages the
//! thread touches, whatever the program did to malloc's mmap threshold.

use crate::{real, sys};
use std::alloc::{GlobalAlloc, Layout};

/// Blocks of at least this size are mapped directly (glibc's default mmap threshold).
const MAPPED: usize = 128 * 1024;

fn mapped(layout: &Layout) -> bool {
    layout.size() >= MAPPED && layout.align() <= 4096
}

pub struct RealAllocator;

impl RealAllocator {
    /// A block from the real allocator (a mapping of its own when large); null when refused.
    ///
    /// # Safety
    /// As GlobalAlloc::alloc.
    unsafe fn alloc_from_system(&self, layout: Layout) -> *mut u8 {
        if mapped(&layout) {
            return sys::map_anon(layout.size()).unwrap_or(core::ptr::null_mut());
        }
        match real::get() {
            // SAFETY: plain calls of the C allocator.
            Some(r) if layout.align() <= 16 => unsafe { (r.heap.malloc)(layout.size()) as *mut u8 },
            Some(r) => {
                let mut p = core::ptr::null_mut();
                // SAFETY: p is a valid out-pointer; the alignment is a power of two >= 16.
                if unsafe { (r.heap.posix_memalign)(&mut p, layout.align(), layout.size()) } != 0 {
                    return core::ptr::null_mut();
                }
                p as *mut u8
            }
            None => real::arena_alloc(layout.size(), layout.align()) as *mut u8,
        }
    }
}

/// What gives back address space the capture holds when an allocation is refused (set by
/// the session: the capture is a layer above).
static GIVE_BACK_ROOM: std::sync::OnceLock<fn() -> bool> = std::sync::OnceLock::new();

/// Sets what a refused allocation of the tracker's calls before it is made again.
pub fn on_refused(give_back_room: fn() -> bool) {
    let _ = GIVE_BACK_ROOM.set(give_back_room);
}

fn gave_back_room() -> bool {
    GIVE_BACK_ROOM.get().is_some_and(|f| f())
}

// SAFETY: every block comes from the real allocator (or the bootstrap arena, never freed) with at
// least the requested size and alignment.
unsafe impl GlobalAlloc for RealAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's layout.
        let mut p = unsafe { self.alloc_from_system(layout) };
        if p.is_null() && gave_back_room() {
            // SAFETY: as above.
            p = unsafe { self.alloc_from_system(layout) };
        }
        if p.is_null() {
            // Out of memory (the program's address-space limit, a full machine): Rust would
            // abort the process on a null, so the bootstrap arena serves while it lasts.
            return real::arena_alloc(layout.size(), layout.align()) as *mut u8;
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if mapped(&layout) {
            // Fresh anonymous pages are zero (and so are the arena's never used).
            return match sys::map_anon(layout.size()) {
                Some(p) => p,
                None => real::arena_alloc(layout.size(), layout.align()) as *mut u8,
            };
        }
        // SAFETY: the caller's layout is valid; the block holds layout.size() bytes.
        unsafe {
            let p = self.alloc(layout);
            if !p.is_null() {
                core::ptr::write_bytes(p, 0, layout.size());
            }
            p
        }
    }

    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        if real::in_arena(p as *mut libc::c_void) {
            return;
        }
        if mapped(&layout) {
            sys::unmap(p, layout.size());
            return;
        }
        if let Some(r) = real::get() {
            // SAFETY: p came from the real allocator.
            unsafe { (r.heap.free)(p as *mut libc::c_void) };
        }
    }

    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let small = |size| size < MAPPED;
        if layout.align() <= 16
            && small(layout.size())
            && small(new_size)
            && !real::in_arena(p as *mut libc::c_void)
        {
            if let Some(r) = real::get() {
                // SAFETY: p came from the real allocator.
                return unsafe { (r.heap.realloc)(p as *mut libc::c_void, new_size) as *mut u8 };
            }
        }
        // SAFETY: the layout is valid (it was valid for the old block).
        let new =
            unsafe { self.alloc(Layout::from_size_align_unchecked(new_size, layout.align())) };
        if !new.is_null() {
            // SAFETY: both blocks hold at least min(old, new) bytes.
            unsafe {
                core::ptr::copy_nonoverlapping(p, new, layout.size().min(new_size));
                self.dealloc(p, layout);
            }
        }
        new
    }
}
