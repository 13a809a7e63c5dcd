//! Whether the loader has finished an object: a `dlopen` in one thread lists the object it
//! loads (`dl_iterate_phdr`) as soon as it is mapped, before it is relocated and its RELRO
//! pages made read-only. A patching pass run meanwhile from another thread's `dlopen` hook
//! made those pages read-only again under the loader, whose next relocation write then
//! faulted (two threads loading libraries while a tracker attached: SIGSEGV in the loader).
//! Such an object is left to the pass of its own `dlopen`'s hook, run once it is done.
//!
//! glibc 2.35 and later register an object with `_dl_find_object` only once its `dlopen` has
//! relocated it (lock-free: it may be asked inside a `dl_iterate_phdr` callback). Without it
//! (an older glibc, another C library) every object counts as finished, as before.

use core::ffi::c_void;
use std::sync::atomic::{AtomicUsize, Ordering};

type FindObjectFn = unsafe extern "C" fn(*mut c_void, *mut c_void) -> libc::c_int;

/// `_dl_find_object`'s address; 0 not looked up yet, 1 absent.
static FIND_OBJECT: AtomicUsize = AtomicUsize::new(0);

/// Looks `_dl_find_object` up, once; before a pass (dlsym takes the loader's lock, which a
/// `dl_iterate_phdr` callback must not wait for).
pub fn prepare() {
    if FIND_OBJECT.load(Ordering::Acquire) != 0 {
        return;
    }
    // SAFETY: a lookup by a NUL-terminated name in the global scope.
    let f = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"_dl_find_object".as_ptr()) } as usize;
    FIND_OBJECT.store(if f == 0 { 1 } else { f }, Ordering::Release);
}

/// Whether the object `info` describes is relocated (or cannot be told: true).
pub fn finished(info: &libc::dl_phdr_info) -> bool {
    let f = FIND_OBJECT.load(Ordering::Acquire);
    if f <= 1 {
        return true;
    }
    // SAFETY: the loader's description of a loaded object, valid during its callback.
    let headers = unsafe { crate::phdr::program_headers(info) };
    let Some(load) = headers.iter().find(|h| h.p_type == libc::PT_LOAD) else {
        return true;
    };
    let at = (info.dlpi_addr as usize).wrapping_add(load.p_vaddr as usize);
    // glibc's struct dl_find_object is 96 bytes; room to spare.
    let mut result = [0u64; 32];
    // SAFETY: _dl_find_object, found by dlsym, with an address and a result buffer larger than
    // its struct; it only reads the loader's lock-free table.
    let found = unsafe {
        let find: FindObjectFn = core::mem::transmute::<usize, FindObjectFn>(f);
        find(at as *mut c_void, result.as_mut_ptr().cast())
    };
    found == 0
}
