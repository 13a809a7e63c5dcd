//! `memtrace run`'s `dlsym` in a library's own handle (session/exports.rs): a lookup in the
//! global scope (`RTLD_DEFAULT`, the program's handle) finds the preloaded tracker's hooks
//! first, but one in a library's handle searches that library's scope only, and
//! `dlsym(dlopen("libc.so.6"), "malloc")` gave the C library's own `malloc`: ctypes'
//! `CDLL("libc.so.6").malloc(...)` went unseen, and blocks freed through such a handle's `free`
//! stayed live in the capture. An allocation function the tracker hooks, found in a handle as
//! the very definition its hook forwards to, is given as the hook, as the global scope would
//! give it. Nothing else changes: other names are not even compared past a list, and the
//! tracker makes no lookup of its own that could fail (a failed one left its error for the
//! program's `dlerror()` after a lookup that had succeeded: GLib's module loader took it for
//! its own and loaded no module).

use super::deepbind::{before_dlsym, NEXT_DLSYM, PENDING};
use super::targets;
use crate::definition::start_of;
use crate::{real, tls};
use core::ffi::CStr;
use libc::{c_char, c_void};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::OnceLock;

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
    // SAFETY: the caller's name, a NUL-terminated string when `found` is not null.
    unsafe { swapped(found, name) }
}

type DlvsymFn = unsafe extern "C" fn(*mut c_void, *const c_char, *const c_char) -> *mut c_void;

/// The C library's `dlvsym` (the next definition after the tracker's, from the objects'
/// tables: no lookup through `dlvsym` itself), looked up once; 0 when there is none.
pub extern "C" fn next_dlvsym() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let mut f = NEXT.load(Ordering::Acquire);
    if f == 0 {
        let _errno = crate::sys::ErrnoGuard::new();
        f = crate::definition::next_definition_after(next_dlvsym as *const () as usize, b"dlvsym");
        NEXT.store(f, Ordering::Release);
    }
    f
}

/// `dlvsym(handle, name, version)` for any handle but `RTLD_NEXT` (the exported `dlvsym` jumps
/// here), as [`dlsym_in_handle`].
///
/// # Safety
/// Same contract as the C library's dlvsym.
pub unsafe extern "C" fn dlvsym_in_handle(
    handle: *mut c_void,
    name: *const c_char,
    version: *const c_char,
) -> *mut c_void {
    if PENDING.load(Ordering::Acquire) {
        before_dlsym();
    }
    let next = next_dlvsym();
    if next == 0 {
        return core::ptr::null_mut();
    }
    // SAFETY: the C library's dlvsym, with the caller's arguments.
    let found = unsafe { core::mem::transmute::<usize, DlvsymFn>(next)(handle, name, version) };
    // SAFETY: as in `dlsym_in_handle`.
    unsafe { swapped(found, name) }
}

/// `found`, the definition of `name` a lookup gave, or the tracker's hook it stands for.
///
/// # Safety
/// `name` is a NUL-terminated string when `found` is not null.
unsafe fn swapped(found: *mut c_void, name: *const c_char) -> *mut c_void {
    // The tracker's own lookups (its hooks' own handle, deep-bound objects' definitions) want
    // what is there.
    if found.is_null() || name.is_null() || tls::get().in_tracker != 0 {
        return found;
    }
    // SAFETY: the caller's promise.
    let name = unsafe { CStr::from_ptr(name) }.to_bytes();
    // No lookup of its own here (its failure would be left for the program's dlerror(), which
    // GLib's modules take for their own), and none at all past the first call: the swaps are
    // made once.
    let swaps = tls::guarded(swaps);
    swaps
        .iter()
        .find(|s| s.real == found as usize && s.name == name)
        .map_or(found, |s| s.hook as *mut c_void)
}

/// A hooked allocation function: its name, the definition its hook forwards to, and the hook.
struct Swap {
    name: &'static [u8],
    real: usize,
    hook: usize,
}

/// The allocation functions whose hooks forward to the allocator's own object (the C
/// library's, or an allocator preloaded after the tracker that defines them all): only those
/// are swapped, so that a lookup in a handle never pairs the tracker's hook of one function
/// with another allocator's sibling (a shim's malloc with the C library's realloc).
///
/// Made by the first lookup that needs them; a lookup on another thread meanwhile does not
/// wait (it is not swapped): the making opens the tracker's own handle, which waits for the
/// loader's lock, which that thread may hold (a library's constructor looking a name up in a
/// handle, in a `dlopen`).
fn swaps() -> &'static [Swap] {
    static SWAPS: OnceLock<Vec<Swap>> = OnceLock::new();
    static MAKING: AtomicBool = AtomicBool::new(false);
    if let Some(s) = SWAPS.get() {
        return s;
    }
    if MAKING.swap(true, Ordering::AcqRel) {
        return SWAPS.get().map_or(&[], |s| &s[..]);
    }
    match make_swaps() {
        Some(made) => SWAPS.get_or_init(|| made),
        // The real functions are not known yet: a later lookup makes them.
        None => {
            MAKING.store(false, Ordering::Release);
            &[]
        }
    }
}

fn make_swaps() -> Option<Vec<Swap>> {
    let r = real::get()?;
    let allocator = start_of(r.malloc as usize);
    let made = targets::allocation_hooks(r)
        .into_iter()
        .filter_map(|(name, hook, forward)| {
            // reallocarray's hook goes through realloc's: the C library's own is the one.
            let real = match forward {
                // A function the C library lacks.
                Some(targets::NONE) => return None,
                Some(f) => f,
                None => next_definition(name)?,
            };
            let same_allocator = allocator != 0 && start_of(real) == allocator;
            (hook != 0 && hook != real && same_allocator).then_some(Swap {
                name: name.to_bytes(),
                real,
                hook,
            })
        })
        .collect();
    Some(made)
}

/// The next definition of `name` after the tracker's, from the objects' tables (no dlsym: its
/// failure would be left for the program's dlerror()).
fn next_definition(name: &CStr) -> Option<usize> {
    let f = crate::definition::next_definition_after(swaps as *const () as usize, name.to_bytes());
    (f != 0).then_some(f)
}
