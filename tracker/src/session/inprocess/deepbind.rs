//! `memtrace run`'s `dlopen` and `dlsym` (exported, session/exports.rs): a library loaded with
//! RTLD_DEEPBIND binds its symbols to its own scope (itself, then what it needs: the C
//! library) ahead of the preloaded tracker, so its allocations and frees went unseen and the
//! program's blocks it freed stayed live. The slots of the objects such a `dlopen` loaded that
//! lead to the functions the tracker hooks are patched to the hooks, as an in-process tracker
//! patches every object's.
//!
//! Every `dlopen` goes on to the C library's by a jump, the program's return address left in
//! place: the loader finds the caller from it (its search path, its loaders' RPATH, its
//! namespace), so nothing of the call can be made differently. A deep one is noted first
//! ([`note_deep`]: the objects loaded before it), and its objects are patched at the next
//! `dlsym`, `dlopen` or `dlclose` (how a program reaches what it loaded: [`patch_pending`]).
//! What a deep-bound library does before that (its constructors) is not seen.

use super::{got, targets};
use crate::lock::SpinLock;
use crate::{sys, tls};
use libc::c_void;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// The next `dlopen` after the tracker's (the C library's); 0 until looked up.
static NEXT_DLOPEN: AtomicUsize = AtomicUsize::new(0);
/// The C library's `dlsym`; 0 until looked up.
pub static NEXT_DLSYM: AtomicUsize = AtomicUsize::new(0);
/// A deep-bound `dlopen` was made and its objects are not patched yet.
pub static PENDING: AtomicBool = AtomicBool::new(false);

/// The first deep-bound `dlopen` not patched yet: what was loaded before it.
struct Noted {
    /// Base addresses of the objects loaded then.
    bases: Vec<usize>,
    /// The loader's count of objects it ever added, then.
    adds: u64,
    /// Calls that found nothing added since (the dlopen was still on its way, or found its
    /// library loaded already).
    idle: u32,
}

/// Calls that may find nothing added before a note is dropped (a deep-bound dlopen of a
/// library loaded already adds nothing, ever).
const IDLE_CALLS: u32 = 1000;

static BEFORE: SpinLock<Option<Noted>> = SpinLock::new(None);
/// Held by the thread patching.
static PATCHING: SpinLock<()> = SpinLock::new(());

/// Looks up the next `dlopen` (once); 0 when there is none.
fn next_dlopen() -> usize {
    let mut f = NEXT_DLOPEN.load(Ordering::Acquire);
    if f == 0 {
        let _errno = sys::ErrnoGuard::new();
        f = next(c"dlopen");
        NEXT_DLOPEN.store(f, Ordering::Release);
    }
    f
}

/// Looks up the next `dlsym` (once); 0 when there is none. Not through `dlsym`: that call
/// would come back to the exported one, which needs this.
fn next_dlsym() -> usize {
    let mut f = NEXT_DLSYM.load(Ordering::Acquire);
    if f == 0 {
        let _errno = sys::ErrnoGuard::new();
        // The next definition after the tracker's, read from the objects' tables (a preloaded
        // shim's own dlsym, or the C library's); else the next one by version (libdl's, in a
        // glibc before 2.34).
        f = crate::definition::next_definition_after(next_dlsym as *const () as usize, b"dlsym");
        for version in [c"GLIBC_2.34", c"GLIBC_2.2.5", c"GLIBC_2.17"] {
            if f != 0 {
                break;
            }
            // SAFETY: a lookup of the next definition by NUL-terminated name and version.
            f = unsafe {
                libc::dlvsym(libc::RTLD_NEXT, c"dlsym".as_ptr(), version.as_ptr()) as usize
            };
        }
        NEXT_DLSYM.store(f, Ordering::Release);
    }
    f
}

/// What the exported `dlopen` does before it jumps to the C library's, which it returns (0:
/// none): patches what a pending deep-bound dlopen loaded, and notes this one if deep.
pub extern "C" fn before_dlopen(mode: libc::c_int) -> usize {
    patch_pending();
    if mode & libc::RTLD_DEEPBIND != 0 {
        note_deep();
    }
    next_dlopen()
}

/// What the exported `dlsym` does, when a deep-bound dlopen is pending or the C library's
/// dlsym not looked up yet, before it jumps to that one, which it returns (0: none).
pub extern "C" fn before_dlsym() -> usize {
    patch_pending();
    next_dlsym()
}

/// The next definition of `name` after the tracker's. The tracker's own call: the exported
/// `dlsym` it goes through patches nothing for it (a pending deep-bound dlopen is not made yet).
fn next(name: &core::ffi::CStr) -> usize {
    // SAFETY: a lookup of the next definition by its NUL-terminated name.
    tls::guarded(|| unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr()) as usize })
}

/// A deep-bound `dlopen` is about to be made: the objects loaded now are noted (the first such
/// call's, until its objects are patched).
fn note_deep() {
    let _errno = sys::ErrnoGuard::new();
    static FORK_HANDLERS: std::sync::Once = std::sync::Once::new();
    // SAFETY: registering plain functions that never unwind.
    FORK_HANDLERS.call_once(|| unsafe {
        libc::pthread_atfork(Some(fork_prepare), Some(fork_after), Some(fork_after));
    });
    tls::guarded(|| {
        let mut before = BEFORE.lock();
        if before.is_none() {
            *before = Some(Noted {
                bases: got::loaded_objects().into_iter().map(|(b, _)| b).collect(),
                adds: got::objects_added(),
                idle: 0,
            });
        }
        PENDING.store(true, Ordering::Release);
    });
}

/// Patches the objects loaded since the first deep-bound `dlopen` not patched yet: each with
/// the functions its own scope defines as the C library (see `targets::for_deep_handle`).
fn patch_pending() {
    // Not from the tracker's own calls (a hook's lookups while the loader maps the library):
    // only the program's, once its dlopen has returned.
    if !PENDING.load(Ordering::Acquire) || tls::get().in_tracker != 0 {
        return;
    }
    let _errno = sys::ErrnoGuard::new();
    tls::guarded(|| {
        // One thread patches; the others wait until it is done (the flag stays set until
        // then, so that none of them goes on into a library not patched yet).
        let _patching = PATCHING.lock();
        let Some(mut before) = BEFORE.lock().take() else {
            return;
        };
        // Nothing added yet: the dlopen (in another thread) has not listed its objects.
        let unfinished = if got::objects_added() == before.adds {
            before.idle += 1;
            before.idle < IDLE_CALLS
        } else {
            let now = got::loaded_objects();
            let mut unfinished = false;
            for (base, name) in now.iter().filter(|(b, _)| !before.bases.contains(b)) {
                unfinished |= !patch_object(*base, name, &now);
            }
            unfinished
        };
        let mut kept = BEFORE.lock();
        // An object another thread's dlopen is still loading: patched at a later call.
        if unfinished && kept.is_none() {
            *kept = Some(before);
        }
        // Pending still when a deep-bound dlopen was noted meanwhile.
        PENDING.store(kept.is_some(), Ordering::Release);
    });
}

/// Patches the loaded object at `base` (its path `name`) with the functions its own scope
/// defines; `loaded` is every loaded object (all but this one are left alone). False when the
/// loader has not finished the object yet.
fn patch_object(
    base: usize,
    name: &core::ffi::CStr,
    loaded: &[(usize, std::ffi::CString)],
) -> bool {
    let open = next_dlopen();
    if open == 0 || name.is_empty() {
        return true;
    }
    type DlopenFn = unsafe extern "C" fn(*const libc::c_char, libc::c_int) -> *mut c_void;
    // SAFETY: the C library's dlopen; RTLD_NOLOAD only hands out the handle of a loaded
    // object (given back below).
    let handle = unsafe {
        let open: DlopenFn = core::mem::transmute::<usize, DlopenFn>(open);
        open(name.as_ptr(), libc::RTLD_LAZY | libc::RTLD_NOLOAD)
    };
    if handle.is_null() {
        // Not loaded (any more), or not yet: a dlopen in another thread holds it.
        return !got::is_loading(base);
    }
    // SAFETY: a handle dlopen just returned.
    let targets = unsafe { targets::for_deep_handle(handle, next_dlopen(), next(c"dlclose")) };
    let others: Vec<usize> = loaded
        .iter()
        .map(|(b, _)| *b)
        .filter(|&b| b != base)
        .collect();
    got::patch_new_objects(&targets, &others);
    let close = next(c"dlclose");
    if close != 0 {
        type DlcloseFn = unsafe extern "C" fn(*mut c_void) -> libc::c_int;
        // SAFETY: the C library's dlclose, with the handle taken above.
        unsafe { core::mem::transmute::<usize, DlcloseFn>(close)(handle) };
    }
    !got::is_loading(base)
}

/// A fork waits for a patching pass to end, so that the child's locks are free and its note
/// whole.
/// A fork from inside the tracker (a signal handler's, interrupting a pass on this very
/// thread) takes neither lock: it would wait for itself.
extern "C" fn fork_prepare() {
    if tls::get().in_tracker != 0 {
        return;
    }
    PATCHING.raw_lock();
    BEFORE.raw_lock();
    LOCKED_FOR_FORK.store(true, Ordering::Release);
}

extern "C" fn fork_after() {
    if LOCKED_FOR_FORK.swap(false, Ordering::AcqRel) {
        BEFORE.raw_unlock();
        PATCHING.raw_unlock();
    }
}

/// fork_prepare took the locks.
static LOCKED_FOR_FORK: AtomicBool = AtomicBool::new(false);
