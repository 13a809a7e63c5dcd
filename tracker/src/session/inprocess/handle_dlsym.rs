//! `memtrace run`'s `dlsym` in a library's own handle (session/exports.rs): a lookup in the
//! global scope (`RTLD_DEFAULT`, the program's handle) finds the preloaded tracker's hooks
//! first, but one in a library's handle searches that library's scope only, and
//! `dlsym(dlopen("libc.so.6"), "malloc")` gave the C library's own `malloc`: ctypes'
//! `CDLL("libc.so.6").malloc(...)` went unseen, and blocks freed through such a handle's `free`
//! stayed live in the capture. A function the tracker hooks, found in a handle as the very
//! definition its hook forwards to, is given as the hook, as the global scope would give it.

use super::deepbind::{before_dlsym, NEXT_DLSYM, PENDING};
use super::targets;
use crate::tls;
use core::ffi::CStr;
use libc::{c_char, c_void};
use std::sync::atomic::Ordering;

type DlsymFn = unsafe extern "C" fn(*mut c_void, *const c_char) -> *mut c_void;

/// `dlsym(handle, name)` for a handle that is neither `RTLD_DEFAULT` nor `RTLD_NEXT` (the
/// exported `dlsym` jumps here: the C library finds neither from the caller's address).
///
/// # Safety
/// Same contract as the C library's dlsym.
pub unsafe extern "C" fn dlsym_in_handle(handle: *mut c_void, name: *const c_char) -> *mut c_void {
    let mut next = NEXT_DLSYM.load(Ordering::Acquire);
    if next == 0 || PENDING.load(Ordering::Acquire) {
        next = before_dlsym();
    }
    if next == 0 {
        return core::ptr::null_mut();
    }
    // SAFETY: the C library's dlsym (or the next preloaded one), with the caller's arguments.
    let found = unsafe { core::mem::transmute::<usize, DlsymFn>(next)(handle, name) };
    // The tracker's own lookups (its hooks' own handle, deep-bound objects' definitions) want
    // what is there.
    if found.is_null() || name.is_null() || tls::get().in_tracker != 0 {
        return found;
    }
    // SAFETY: a name the C library's dlsym just found a symbol for: a NUL-terminated string.
    let name = unsafe { CStr::from_ptr(name) };
    tls::guarded(|| hook_for(name, found as usize)).map_or(found, |h| h as *mut c_void)
}

/// The tracker's hook of `name` when `found` is the definition the hook forwards to (the next
/// one after the tracker): None for any other symbol or definition.
fn hook_for(name: &CStr, found: usize) -> Option<usize> {
    // SAFETY: a lookup of the next definition by its NUL-terminated name, from the tracker:
    // the one its hook (if it has one) forwards to.
    let next = unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr()) } as usize;
    if next != found {
        return None;
    }
    Some(targets::own(name)).filter(|&h| h != 0 && h != found)
}
