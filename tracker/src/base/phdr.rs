//! The tracker's reads of the loader's list of objects (`dl_iterate_phdr`): one at a time,
//! never across a fork, and never where they could wait for ever (`may_iterate_phdr`).

/// The tracker's calls of dl_iterate_phdr, one at a time and never across a fork: a thread of
/// the parent inside it at fork time would leave the loader's lock held in the child, where
/// the child's next dl_iterate_phdr (or dlopen) would wait forever.
static PHDR: crate::lock::SpinLock<()> = crate::lock::SpinLock::new(());

/// dl_iterate_phdr with `callback` and `data`, under the tracker's fork guard. False when it
/// did not run (`may_iterate_phdr`): the callback was not called.
///
/// # Safety
/// As dl_iterate_phdr: `callback` is safe to call with `data`.
pub unsafe fn iterate_phdr(
    callback: unsafe extern "C" fn(
        *mut libc::dl_phdr_info,
        usize,
        *mut libc::c_void,
    ) -> libc::c_int,
    data: *mut libc::c_void,
) -> bool {
    if !may_iterate_phdr() {
        return false;
    }
    let _guard = PHDR.lock();
    // SAFETY: per the caller.
    unsafe { libc::dl_iterate_phdr(Some(callback), data) };
    true
}

/// Calls `visit` with each loaded object (as [`iterate_phdr`], under its guard) until it
/// returns true. False when the list could not be read (`may_iterate_phdr`).
pub fn each_object<F: FnMut(&libc::dl_phdr_info) -> bool>(mut visit: F) -> bool {
    unsafe extern "C" fn step<G: FnMut(&libc::dl_phdr_info) -> bool>(
        info: *mut libc::dl_phdr_info,
        _size: usize,
        data: *mut libc::c_void,
    ) -> libc::c_int {
        // SAFETY: the loader passes a valid info for the call; data is `visit`, below.
        let (info, visit) = unsafe { (&*info, &mut *(data as *mut G)) };
        libc::c_int::from(visit(info))
    }
    // SAFETY: `step::<F>` is called with `visit`, of type F, alive for the whole walk.
    unsafe { iterate_phdr(step::<F>, &mut visit as *mut F as *mut libc::c_void) }
}

/// Whether this thread may read the loader's list now. Not in a fork child that must leave the
/// loader alone, and not while this thread holds the loader's list lock: it is then inside
/// `dlclose` (which frees while it changes the list) or in a `dl_iterate_phdr` callback of the
/// program's that allocates. Taking the fork guard there would wait for a thread that holds
/// the guard and waits for that lock (the two hung for ever: tests/programs/phdr_alloc.c), and
/// in `dlclose` the list is half changed.
pub fn may_iterate_phdr() -> bool {
    loader_readable() && !crate::loader_lock::held_by_this_thread()
}

/// A fork child whose loader lock a vanished thread holds (loader_lock.rs): the tracker
/// never calls dl_iterate_phdr here again.
static LOADER_LEFT_ALONE: core::sync::atomic::AtomicBool =
    core::sync::atomic::AtomicBool::new(false);

pub fn leave_loader_alone() {
    LOADER_LEFT_ALONE.store(true, core::sync::atomic::Ordering::Relaxed);
}

/// Whether `iterate_phdr` reads the loader's list (false: see `leave_loader_alone`).
pub fn loader_readable() -> bool {
    !LOADER_LEFT_ALONE.load(core::sync::atomic::Ordering::Relaxed)
}

/// The program headers of the object `info` describes (none when the loader gives none).
///
/// # Safety
/// `info` is the loader's description of a loaded object, as a dl_iterate_phdr callback gets
/// it, and the returned slice is used only while that holds.
pub unsafe fn program_headers(info: &libc::dl_phdr_info) -> &[libc::Elf64_Phdr] {
    if info.dlpi_phdr.is_null() {
        return &[];
    }
    // SAFETY: the caller's promise: dlpi_phdr points at dlpi_phnum program headers.
    unsafe { core::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum as usize) }
}

/// Before fork: waits until no thread is inside `iterate_phdr` and keeps others out.
pub fn lock_for_fork() {
    PHDR.raw_lock();
}

/// After fork, in the parent and in the child.
pub fn unlock_after_fork() {
    PHDR.raw_unlock();
}
