//! A program that lowers its own address-space limit (`resource.setrlimit(RLIMIT_AS, ...)`,
//! `setrlimit`, `prlimit`: test harnesses, judges, batch jobs that guard against runaway
//! memory). The capture's mapping reserves a terabyte of address space when the process starts
//! without such a limit (the capture never has to move); under a limit set later, that
//! reservation alone would exceed it, and every allocation of the program would fail. So the
//! functions that set limits are interposed: before RLIMIT_AS is lowered, the mapping gives
//! back its unused part (capture::file's `fit_address_limit`). Every call then goes to the
//! kernel as glibc makes it (prlimit64).

use crate::capture::CAPTURE;
use crate::sys;
use libc::{c_int, pid_t, rlimit};

/// Before `resource` of process `pid` (0: this one) is set to `new`.
///
/// # Safety
/// `new` is null or what the program passes as the new limit (a readable rlimit).
unsafe fn before_setting(pid: pid_t, resource: c_int, new: *const rlimit) {
    if resource != libc::RLIMIT_AS as c_int || new.is_null() || sys::sandboxed() {
        return;
    }
    if pid != 0 && pid as u32 != sys::getpid() {
        return;
    }
    // SAFETY: as the caller promises.
    let limit = unsafe { (*new).rlim_cur };
    if limit != libc::RLIM_INFINITY {
        CAPTURE.fit_address_limit(limit);
    }
}

/// prlimit64(2), as glibc makes it.
fn prlimit64(pid: pid_t, resource: c_int, new: *const rlimit, old: *mut rlimit) -> c_int {
    let args = [
        pid as usize,
        resource as usize,
        new as usize,
        old as usize,
        0,
        0,
    ];
    // SAFETY: the program's own arguments, passed on unchanged.
    unsafe { sys::raw_syscall(libc::SYS_prlimit64, args) as c_int }
}

/// Interposed setrlimit(2) (and setrlimit64: the same on 64-bit systems).
///
/// # Safety
/// Same contract as libc's setrlimit.
pub unsafe extern "C" fn setrlimit(resource: c_int, new: *const rlimit) -> c_int {
    // SAFETY: as the caller promises.
    unsafe { before_setting(0, resource, new) };
    prlimit64(0, resource, new, core::ptr::null_mut())
}

/// Interposed prlimit(2) (and prlimit64).
///
/// # Safety
/// Same contract as libc's prlimit.
pub unsafe extern "C" fn prlimit(
    pid: pid_t,
    resource: c_int,
    new: *const rlimit,
    old: *mut rlimit,
) -> c_int {
    // SAFETY: as the caller promises.
    unsafe { before_setting(pid, resource, new) };
    prlimit64(pid, resource, new, old)
}
