//! `memtrace run`'s `dlopen` (exported, session/exports.rs): a library loaded with
//! RTLD_DEEPBIND binds its symbols to its own scope (itself, then what it needs: the C
//! library) ahead of the preloaded tracker, so its allocations and frees went unseen and the
//! program's blocks it freed stayed live. After such a `dlopen`, the slots of the objects it
//! loaded that lead to the functions the tracker hooks are patched to the hooks, as an
//! in-process tracker patches every object's.
//!
//! Every other request goes straight on to the C library's dlopen (a jump: the loader sees
//! the program's return address, which names the caller whose search path and namespace
//! apply). What a deep-bound library allocates in its constructors, before its dlopen
//! returns, is not seen.

use super::{got, loader, targets};
use crate::{sys, tls};
use libc::{c_char, c_int, c_void};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The next `dlopen` after the tracker's (the C library's); 0 until looked up.
pub static NEXT_DLOPEN: AtomicUsize = AtomicUsize::new(0);

type DlopenFn = unsafe extern "C" fn(*const c_char, c_int) -> *mut c_void;

/// Looks up the next `dlopen` (once); 0 when there is none. Called by the exported `dlopen`
/// before it jumps.
pub extern "C" fn next_dlopen() -> usize {
    let mut f = NEXT_DLOPEN.load(Ordering::Acquire);
    if f == 0 {
        let _errno = sys::ErrnoGuard::new();
        // SAFETY: looking up the next definition of a libc function by its NUL-terminated name.
        f = unsafe { libc::dlsym(libc::RTLD_NEXT, c"dlopen".as_ptr()) } as usize;
        NEXT_DLOPEN.store(f, Ordering::Release);
    }
    f
}

fn next_dlclose() -> usize {
    // SAFETY: as in next_dlopen.
    unsafe { libc::dlsym(libc::RTLD_NEXT, c"dlclose".as_ptr()) as usize }
}

/// A `dlopen` with RTLD_DEEPBIND, `ret` its caller's return address.
///
/// # Safety
/// Same contract as the C library's dlopen; `next_dlopen()` found it.
pub unsafe extern "C" fn deep_dlopen(file: *const c_char, mode: c_int, ret: usize) -> *mut c_void {
    let f = NEXT_DLOPEN.load(Ordering::Acquire);
    // SAFETY: the C library's dlopen, found by next_dlopen.
    let real: DlopenFn = unsafe { core::mem::transmute::<usize, DlopenFn>(f) };
    let old = tls::guarded(got::loaded_bases);
    // SAFETY: forwarding the caller's request; `ret` names the caller for its search path.
    let handle = unsafe { loader::open_as(real, file, mode, ret) };
    if !handle.is_null() {
        let _errno = sys::ErrnoGuard::new();
        tls::guarded(|| {
            // SAFETY: a handle dlopen just returned.
            let targets = unsafe { targets::for_deep_handle(handle, f, next_dlclose()) };
            got::patch_new_objects(&targets, &old);
        });
    }
    handle
}
