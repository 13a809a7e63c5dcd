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
    // Read without faulting: a bad pointer gets EFAULT from the call below, as alone.
    let Some(new) = sys::read_own(new) else {
        return;
    };
    let limit = new.rlim_cur;
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

/// Interposed mlockall(2). The kernel refuses MCL_CURRENT to an unprivileged process whose
/// whole address space exceeds its lock limit (RLIMIT_MEMLOCK, 8 MiB by default), and the
/// capture's reservation alone does: a program that locks its memory (gpg-agent, real-time
/// audio) failed with ENOMEM where it ran alone. When the kernel refuses so, the call is made
/// as mlockall would make it for the program's own mappings: MCL_FUTURE as asked, and each
/// mapping locked but the capture's and the tracker's own code.
///
/// # Safety
/// Same contract as libc's mlockall.
pub unsafe extern "C" fn mlockall(flags: c_int) -> c_int {
    let call = |flags: c_int| {
        // SAFETY: mlockall(2) with the program's flags.
        unsafe { sys::raw_syscall(libc::SYS_mlockall, [flags as usize, 0, 0, 0, 0, 0]) as c_int }
    };
    let r = call(flags);
    // SAFETY: this thread's errno slot.
    let refused = r != 0 && unsafe { *libc::__errno_location() } == libc::ENOMEM;
    if !refused || flags & libc::MCL_CURRENT == 0 || sys::sandboxed() {
        return r;
    }
    let Some(capture) = CAPTURE.mapped_range() else {
        return r;
    };
    if flags & libc::MCL_FUTURE != 0 && call(flags & !libc::MCL_CURRENT) != 0 {
        return -1;
    }
    let onfault = if flags & libc::MCL_ONFAULT != 0 { 1 } else { 0 };
    lock_mappings_but(capture, onfault)
}

/// mlock2(2) of every mapping of the process but `capture` and the tracker's own file; 0, or
/// -1 with errno set by the first that failed.
fn lock_mappings_but(capture: (usize, usize), onfault: usize) -> c_int {
    let mut maps = vec![0u8; 1 << 20];
    let n = sys::read_file(b"/proc/self/maps\0", &mut maps);
    for line in maps[..n].split(|&b| b == b'\n') {
        let Some((start, end)) = range_of(line) else {
            continue;
        };
        let ours = (start < capture.1 && end > capture.0)
            || line.windows(16).any(|w| w == b"memtrace_tracker");
        // The kernel's own pages above user space ([vsyscall]) are no mapping to lock.
        if ours || end > 1 << 47 {
            continue;
        }
        // SAFETY: mlock2(2) of a range of this process's own mappings.
        let r =
            unsafe { sys::raw_syscall(libc::SYS_mlock2, [start, end - start, onfault, 0, 0, 0]) };
        if r != 0 {
            return -1;
        }
    }
    0
}

/// The `[start, end)` of a /proc/self/maps line.
fn range_of(line: &[u8]) -> Option<(usize, usize)> {
    let range = line.split(|&b| b == b' ').next()?;
    let dash = range.iter().position(|&b| b == b'-')?;
    let hex = |s: &[u8]| usize::from_str_radix(core::str::from_utf8(s).ok()?, 16).ok();
    Some((hex(&range[..dash])?, hex(&range[dash + 1..])?))
}
