//! The tracker's own allocator, for a process whose malloc is not the C library's (an
//! allocator the program brings: jemalloc, tcmalloc, one of its own). The tracker's memory can
//! come from neither: the program's may hold its lock where a hook runs (its mmap), and a hook
//! that allocates from it there waits for itself; the C library's grows with `sbrk`, and an
//! allocator that manages the program break itself (`brk(end)` to grow) moved the break back
//! under that heap and unmapped it. So blocks come from mappings of the tracker's own: size
//! classes of powers of two (32 bytes to 1 MiB), each a free list under a spin lock, refilled
//! 2 MiB at a time; larger blocks are mappings of their own. Each block has a 16-byte header
//! (the block's start and its class or mapping size), so that `free` needs only the pointer
//! (zstd's frees have nothing else). Nothing is given back to the system but large blocks.

use crate::lock::SpinLock;
use crate::sys;
use libc::{c_int, c_void, size_t};

const HEADER: usize = 16;
const MIN_SHIFT: u32 = 5;
const MAX_SHIFT: u32 = 20;
const CLASSES: usize = (MAX_SHIFT - MIN_SHIFT + 1) as usize;
/// Bytes mapped at a time for a class's free list.
const REFILL: usize = 2 << 20;

#[allow(clippy::declare_interior_mutable_const)]
const EMPTY: SpinLock<usize> = SpinLock::new(0);
/// Each class's free list: the first free block's start, each block's first word the next's.
static FREE: [SpinLock<usize>; CLASSES] = [EMPTY; CLASSES];

/// The class of a block of `need` bytes (header included), or None past the largest.
fn class_of(need: usize) -> Option<usize> {
    let shift = need.next_power_of_two().trailing_zeros().max(MIN_SHIFT);
    (shift <= MAX_SHIFT).then(|| (shift - MIN_SHIFT) as usize)
}

fn class_size(class: usize) -> usize {
    1 << (class as u32 + MIN_SHIFT)
}

/// A free block of `class`, refilling its list from a new mapping when empty; null when the
/// system refuses.
fn take(class: usize) -> *mut u8 {
    let mut head = FREE[class].lock();
    if *head == 0 {
        let size = class_size(class);
        let len = REFILL.max(size * 4);
        let Some(chunk) = sys::map_anon(len) else {
            return core::ptr::null_mut();
        };
        // Linked in address order; the first block is handed out below.
        for i in (0..len / size).rev() {
            let block = chunk as usize + i * size;
            // SAFETY: a fresh mapping of `len` bytes, each block inside it, word-aligned.
            unsafe { *(block as *mut usize) = *head };
            *head = block;
        }
    }
    let block = *head;
    // SAFETY: a free block of this list: its first word links the next.
    *head = unsafe { *(block as *const usize) };
    block as *mut u8
}

/// `size` bytes aligned to `align` (a power of two), from a class or, past the largest (or
/// `apart`), a mapping of its own: null when refused.
fn allocate(size: usize, align: usize, apart: bool) -> *mut u8 {
    let align = align.max(HEADER);
    let Some(need) = size.checked_add(HEADER + align - HEADER) else {
        return core::ptr::null_mut();
    };
    let class = if apart { None } else { class_of(need) };
    let (start, tag) = match class {
        Some(class) => (take(class), class),
        None => {
            let len = need.div_ceil(4096) * 4096;
            match sys::map_anon(len) {
                Some(p) => (p, CLASSES + len),
                None => return core::ptr::null_mut(),
            }
        }
    };
    if start.is_null() {
        return start;
    }
    let user = (start as usize + HEADER).div_ceil(align) * align;
    // SAFETY: [user - HEADER, user) lies inside the block, after its start.
    unsafe {
        *((user - HEADER) as *mut usize) = start as usize;
        *((user - HEADER + 8) as *mut usize) = tag;
    }
    user as *mut u8
}

/// The block's start and tag (a class, or CLASSES + a mapping's length) of a pointer given out.
///
/// # Safety
/// `p` came from [`allocate`] and was not freed.
unsafe fn header(p: *mut u8) -> (usize, usize) {
    let at = p as usize - HEADER;
    // SAFETY: per the caller: the header written by `allocate`.
    unsafe { (*(at as *const usize), *((at + 8) as *const usize)) }
}

/// The bytes a pointer given out may use.
///
/// # Safety
/// As [`header`].
unsafe fn usable(p: *mut u8) -> usize {
    // SAFETY: per the caller.
    let (start, tag) = unsafe { header(p) };
    let size = if tag < CLASSES {
        class_size(tag)
    } else {
        tag - CLASSES
    };
    start + size - p as usize
}

/// # Safety
/// C's free: `p` null or from this allocator.
pub unsafe extern "C" fn free(p: *mut c_void) {
    if p.is_null() {
        return;
    }
    // SAFETY: per the caller.
    let (start, tag) = unsafe { header(p as *mut u8) };
    if tag >= CLASSES {
        sys::unmap(start as *mut u8, tag - CLASSES);
        return;
    }
    let mut head = FREE[tag].lock();
    // SAFETY: the block is free from now on: its first word links the list.
    unsafe { *(start as *mut usize) = *head };
    *head = start;
}

/// A block of `size` bytes in a mapping of its own (pages of its size), whatever its size:
/// for what must cost a process no more than it asks (zstd's contexts, taken from here in every
/// process: a class's 2 MiB refill took a program's data limit, `ulimit -d`, where the C
/// library's malloc took their size). `free` unmaps it. Null when refused.
pub fn malloc_apart(size: size_t) -> *mut c_void {
    allocate(size, HEADER, true) as *mut c_void
}

/// # Safety
/// C's malloc.
pub unsafe extern "C" fn malloc(size: size_t) -> *mut c_void {
    allocate(size, HEADER, false) as *mut c_void
}

/// # Safety
/// C's realloc: `p` null or from this allocator.
pub unsafe extern "C" fn realloc(p: *mut c_void, size: size_t) -> *mut c_void {
    if p.is_null() {
        return allocate(size, HEADER, false) as *mut c_void;
    }
    // SAFETY: per the caller.
    let old = unsafe { usable(p as *mut u8) };
    if size <= old {
        return p;
    }
    let new = allocate(size, HEADER, false);
    if !new.is_null() {
        // SAFETY: both blocks hold at least `old` bytes; the old one is freed after the copy.
        unsafe {
            core::ptr::copy_nonoverlapping(p as *const u8, new, old);
            free(p);
        }
    }
    new as *mut c_void
}

/// # Safety
/// C's posix_memalign: `out` writable, `align` a power of two.
pub unsafe extern "C" fn posix_memalign(
    out: *mut *mut c_void,
    align: size_t,
    size: size_t,
) -> c_int {
    let p = allocate(size, align, false);
    if p.is_null() {
        return libc::ENOMEM;
    }
    // SAFETY: per the caller.
    unsafe { *out = p as *mut c_void };
    0
}

pub fn lock_for_fork() {
    for f in &FREE {
        f.raw_lock();
    }
}

pub fn unlock_after_fork() {
    for f in FREE.iter().rev() {
        f.raw_unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_aligned_distinct_and_reused() {
        // SAFETY: this allocator's own calls on its own blocks.
        unsafe {
            let a = malloc(100) as *mut u8;
            let b = malloc(100) as *mut u8;
            assert!(!a.is_null() && !b.is_null() && a != b);
            assert_eq!(a as usize % 16, 0);
            core::ptr::write_bytes(a, 1, 100);
            core::ptr::write_bytes(b, 2, 100);
            assert_eq!(*a.add(99), 1);
            free(a as *mut c_void);
            let c = malloc(90) as *mut u8;
            assert_eq!(c, a, "the freed block of the class comes back first");
            let mut p = core::ptr::null_mut();
            assert_eq!(posix_memalign(&mut p, 4096, 5000), 0);
            assert_eq!(p as usize % 4096, 0);
            let big = malloc(3 << 20) as *mut u8;
            core::ptr::write_bytes(big, 3, 3 << 20);
            let grown = realloc(b as *mut c_void, 10_000) as *mut u8;
            assert_eq!(*grown.add(99), 2);
            for q in [c, big, grown, p as *mut u8] {
                free(q as *mut c_void);
            }
        }
    }
}
