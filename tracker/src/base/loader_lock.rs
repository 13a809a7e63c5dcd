//! The loader's lock of its list of objects (glibc's `_dl_load_write_lock`, taken by
//! `dl_iterate_phdr` and briefly by `dlopen` and `dlclose`), in a fork child.
//!
//! glibc does not reset that lock in a fork child (2.36 resets only `_dl_load_lock`). A thread
//! of the parent inside `dlopen`, `dlclose` or `dl_iterate_phdr` at the fork leaves it held in
//! the child, and the child's tracker, which reads the module list when its capture starts and
//! at flushes (`dl_iterate_phdr`), waited for ever: a followed child of a program that loads
//! libraries in one thread and forks in another hung (tests/tests/forks.rs). It cannot be taken
//! around the fork in the tracker's lock order (the program's `dl_iterate_phdr` callbacks
//! allocate under it, the tracker calls `dl_iterate_phdr` under its own locks), and resetting
//! it is no cure: the list it guards may be half changed (reading it then crashed the child).
//! So a followed child that finds it held by a thread of the parent leaves the loader alone
//! (`phdr::iterate_phdr` does nothing there): its capture lists no modules and its native
//! walks use the snapshot inherited from the parent. The program itself would wait there too if it
//! called the loader, as it would untracked.
//!
//! Its place inside `_rtld_global` is private to glibc, so it is found, not assumed: at start,
//! the one recursive mutex in `_rtld_global` that this thread owns inside a `dl_iterate_phdr`
//! callback and nobody owns outside it. Nothing is found (another C library, another layout):
//! the child reads the loader as before.

use std::sync::atomic::{AtomicUsize, Ordering};

/// glibc's `pthread_mutex_t` on x86_64: lock word, recursion count, owner's tid, users, kind.
#[repr(C)]
pub(crate) struct Mutex {
    pub lock: i32,
    pub count: u32,
    pub owner: i32,
    pub nusers: u32,
    pub kind: i32,
}

pub(crate) const PTHREAD_MUTEX_RECURSIVE_NP: i32 = 1;

/// The lock's address; 0 when not found.
static LOCK: AtomicUsize = AtomicUsize::new(0);

/// Whether the lock was found (find_loader_lock.rs).
pub fn known() -> bool {
    LOCK.load(Ordering::Relaxed) != 0
}

/// The lock found at `at`, if nobody holds it now (a lock held outside a `dl_iterate_phdr`
/// callback is not the one).
///
/// # Safety
/// `at` is the address of a readable, aligned glibc mutex that lives as long as the process.
pub unsafe fn keep_if_free(at: usize) {
    // SAFETY: per the caller.
    if unsafe { owner(at) } == 0 {
        LOCK.store(at, Ordering::Relaxed);
    }
}

/// The owner's tid of the mutex at `at`.
///
/// # Safety
/// `at` is the address of a readable, aligned glibc mutex.
unsafe fn owner(at: usize) -> i32 {
    // SAFETY: per the caller; a volatile read (another thread may change it).
    unsafe { core::ptr::read_volatile(core::ptr::addr_of!((*(at as *const Mutex)).owner)) }
}

/// In a fork child: whether a thread of the parent (gone here) held the lock at the fork.
pub fn held_in_child() -> bool {
    let at = LOCK.load(Ordering::Relaxed);
    // The lock word, not only the owner: a thread of the parent caught between taking the lock
    // and writing its tid there (the fork copies that moment) holds it too.
    // SAFETY: found by `learn` in this (copied) process.
    at != 0 && unsafe { lock_word(at) != 0 || owner(at) != 0 }
}

/// Whether this thread holds the lock (false when it was not found).
pub fn held_by_this_thread() -> bool {
    let at = LOCK.load(Ordering::Relaxed);
    if at == 0 {
        return false;
    }
    // SAFETY: found by `learn` in this process (or the copy a fork made of it).
    let holder = unsafe { owner(at) };
    // Only this thread writes its own tid there, so the owner cannot read as this thread's tid
    // unless this thread holds it. Free (the usual case): no system call for the tid.
    holder != 0 && holder == super::sys::gettid() as i32
}

/// The lock word of the mutex at `at` (0: free).
///
/// # Safety
/// `at` is the address of a readable, aligned glibc mutex.
unsafe fn lock_word(at: usize) -> i32 {
    // SAFETY: per the caller; a volatile read.
    unsafe { core::ptr::read_volatile(core::ptr::addr_of!((*(at as *const Mutex)).lock)) }
}
