//! Memory for one exec: the new environment and the exec record are built in a private
//! anonymous mapping, never with malloc (exec may be called from a signal handler, or while
//! another thread holds the allocator's locks). A successful exec discards it with the image;
//! a failed one unmaps it. After the process sandboxed itself (no mapping may be made then),
//! a static area serves instead, one exec at a time.

use crate::sys;
use libc::c_char;
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, Ordering};

pub struct Scratch {
    base: *mut u8,
    len: usize,
    used: usize,
    /// The static area (given back on drop, not unmapped).
    in_static: bool,
}

/// The static area's size: the pointers and strings of an environment of some 30,000 entries.
const STATIC_LEN: usize = 256 * 1024;

#[repr(C, align(8))]
struct StaticArea(UnsafeCell<[u8; STATIC_LEN]>);
// SAFETY: handed to one Scratch at a time (STATIC_BUSY).
unsafe impl Sync for StaticArea {}
static STATIC: StaticArea = StaticArea(UnsafeCell::new([0; STATIC_LEN]));
static STATIC_BUSY: AtomicBool = AtomicBool::new(false);

impl Scratch {
    pub fn new(len: usize) -> Option<Scratch> {
        let len = len.div_ceil(4096) * 4096;
        Some(Scratch {
            base: sys::map_anon(len)?,
            len,
            used: 0,
            in_static: false,
        })
    }

    /// The static area, made without a system call; None while another exec uses it.
    pub fn in_static() -> Option<Scratch> {
        STATIC_BUSY
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .ok()?;
        Some(Scratch {
            base: STATIC.0.get() as *mut u8,
            len: STATIC_LEN,
            used: 0,
            in_static: true,
        })
    }

    /// `n` zeroed bytes, 8-byte aligned; None when the mapping is full.
    pub fn take(&mut self, n: usize) -> Option<&'static mut [u8]> {
        let start = self.used.div_ceil(8) * 8;
        let end = start.checked_add(n).filter(|&e| e <= self.len)?;
        self.used = end;
        // SAFETY: [start, end) lies inside the area and is handed out once; the area outlives
        // every use (it goes when the Scratch is dropped, after the exec returned).
        let out = unsafe { core::slice::from_raw_parts_mut(self.base.add(start), n) };
        if self.in_static {
            // A new mapping is zeroed; the static area keeps what an earlier exec left.
            out.fill(0);
        }
        Some(out)
    }

    /// The concatenation of `parts` as a NUL-terminated string.
    pub fn cstr(&mut self, parts: &[&[u8]]) -> Option<*const c_char> {
        let n: usize = parts.iter().map(|p| p.len()).sum();
        let out = self.take(n + 1)?;
        let mut at = 0;
        for p in parts {
            out[at..at + p.len()].copy_from_slice(p);
            at += p.len();
        }
        out[at] = 0;
        Some(out.as_ptr() as *const c_char)
    }

    /// An array of `n` pointers (null-filled).
    pub fn pointers(&mut self, n: usize) -> Option<&'static mut [*const c_char]> {
        let bytes = self.take(n.checked_mul(core::mem::size_of::<usize>())?)?;
        // SAFETY: 8-byte aligned, zeroed memory of n pointers (a zero pointer is null).
        Some(unsafe {
            core::slice::from_raw_parts_mut(bytes.as_mut_ptr() as *mut *const c_char, n)
        })
    }
}

impl Scratch {
    /// Leaves the mapping in place past this value (a vfork child's exec: the mapping is in
    /// the parent's memory, which its next child gives back): its address and length.
    pub fn leak(self) -> (*mut u8, usize) {
        let kept = (self.base, self.len);
        if self.in_static {
            STATIC_BUSY.store(false, Ordering::Release);
        }
        core::mem::forget(self);
        kept
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if self.in_static {
            STATIC_BUSY.store(false, Ordering::Release);
        } else {
            sys::unmap(self.base, self.len);
        }
    }
}

/// The entries of a NULL-terminated array of C strings (argv, envp); none for a null array.
///
/// # Safety
/// `array` is null or a NULL-terminated array of NUL-terminated strings that outlive the use.
pub unsafe fn entries(array: *const *const c_char) -> impl Iterator<Item = &'static [u8]> + Clone {
    let mut n = 0usize;
    if !array.is_null() {
        // SAFETY: the caller promises a NULL-terminated array.
        while unsafe { !(*array.add(n)).is_null() } {
            n += 1;
        }
    }
    (0..n).map(move |i| {
        // SAFETY: i < n, the array's length; each entry is a NUL-terminated string.
        unsafe { core::ffi::CStr::from_ptr(*array.add(i)) }.to_bytes()
    })
}
