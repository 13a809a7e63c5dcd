//! A program that ends itself with a signal (Python re-raises SIGINT after an unhandled
//! KeyboardInterrupt; others `raise(SIGTERM)`, `kill(getpid(), ...)`, a signal to their own
//! process group, `pthread_kill`, `sigqueue` or `tgkill` to themselves) runs no exit handlers:
//! the capture is finished just before such a signal is sent, so that it is complete.

use crate::real::forward;
use crate::{lifecycle, real, sys};
use libc::{c_int, pid_t};

/// Interposed: finishes the capture when the process signals itself with a signal that will
/// end it, then sends the signal.
///
/// # Safety
/// Same contract as libc's kill.
pub unsafe extern "C" fn kill(pid: pid_t, sig: c_int) -> c_int {
    if !sys::sandboxed() && reaches_this_process(pid) && ends_the_process(sig) {
        lifecycle::finish_now();
    }
    match real::get().and_then(|r| r.kill) {
        Some(real_kill) => forward!(real_kill; pid, sig),
        // SAFETY: the system call kill(2) with the caller's arguments.
        None => unsafe { libc::syscall(libc::SYS_kill, pid, sig) as c_int },
    }
}

/// Whether kill(2) of `pid` signals this process: its pid, 0 (its process group) or minus its
/// process group (`kill(-1, ...)` spares the caller on Linux).
fn reaches_this_process(pid: pid_t) -> bool {
    match pid {
        0 => true,
        p if p > 0 => p as u32 == sys::getpid(),
        -1 => false,
        // SAFETY: getpgrp(2) takes nothing and cannot fail.
        p => p.checked_neg() == Some(unsafe { libc::getpgrp() }),
    }
}

/// Interposed: glibc's killpg calls its own kill, which no hook sees; it is `kill(-pgrp, sig)`.
///
/// # Safety
/// Same contract as libc's killpg.
pub unsafe extern "C" fn killpg(pgrp: pid_t, sig: c_int) -> c_int {
    if pgrp < 0 {
        // SAFETY: the calling thread's errno.
        unsafe { *libc::__errno_location() = libc::EINVAL };
        return -1;
    }
    // SAFETY: kill's contract, which is killpg's.
    unsafe { kill(-pgrp, sig) }
}

/// Interposed: as `kill`, for a signal to the calling thread.
///
/// # Safety
/// Same contract as libc's raise.
pub unsafe extern "C" fn raise(sig: c_int) -> c_int {
    if ends_the_process(sig) {
        lifecycle::finish_now();
    }
    match real::get().and_then(|r| r.raise) {
        Some(real_raise) => forward!(real_raise; sig),
        // SAFETY: tgkill(2) to the calling thread with the caller's signal.
        None => unsafe {
            libc::syscall(
                libc::SYS_tgkill,
                sys::getpid(),
                libc::syscall(libc::SYS_gettid),
                sig,
            ) as c_int
        },
    }
}

/// Interposed: as `raise`, for a signal to a thread of this process (every pthread_t is one).
///
/// # Safety
/// Same contract as libc's pthread_kill.
pub unsafe extern "C" fn pthread_kill(thread: libc::pthread_t, sig: c_int) -> c_int {
    let Some(real_kill) = real::get().and_then(|r| r.pthread_kill) else {
        return libc::ENOSYS;
    };
    if ends_the_process(sig) {
        lifecycle::finish_now();
    }
    forward!(real_kill; thread, sig)
}

/// Interposed: as `kill`, for sigqueue (a signal with a value).
///
/// # Safety
/// Same contract as libc's sigqueue.
pub unsafe extern "C" fn sigqueue(pid: pid_t, sig: c_int, value: libc::sigval) -> c_int {
    let Some(real_queue) = real::get().and_then(|r| r.sigqueue) else {
        // SAFETY: the calling thread's errno.
        unsafe { *libc::__errno_location() = libc::ENOSYS };
        return -1;
    };
    if pid > 0 && pid as u32 == sys::getpid() && ends_the_process(sig) {
        lifecycle::finish_now();
    }
    forward!(real_queue; pid, sig, value)
}

/// Interposed: as `kill`, for tgkill (a signal to one thread of a process).
///
/// # Safety
/// Same contract as libc's tgkill.
pub unsafe extern "C" fn tgkill(tgid: pid_t, tid: pid_t, sig: c_int) -> c_int {
    if tgid > 0 && tgid as u32 == sys::getpid() && ends_the_process(sig) {
        lifecycle::finish_now();
    }
    // SAFETY: tgkill(2) with the caller's arguments (glibc's tgkill is that system call).
    unsafe {
        sys::raw_syscall(
            libc::SYS_tgkill,
            [tgid as usize, tid as usize, sig as usize, 0, 0, 0],
        ) as c_int
    }
}

/// Whether abort() will end the process without running code of the program's: SIGABRT at its
/// default or ignored (abort then restores the default). A handler of the program's may
/// allocate, or jump out and go on: then the capture goes on too.
fn abort_ends_at_once() -> bool {
    // A sandboxed process: no system call, and no capture left to finish.
    if sys::sandboxed() {
        return false;
    }
    // SAFETY: a zeroed sigaction is a valid out-parameter; a null new action only reads.
    unsafe {
        let mut old: libc::sigaction = core::mem::zeroed();
        libc::sigaction(libc::SIGABRT, core::ptr::null(), &mut old) == 0
            && (old.sa_sigaction == libc::SIG_DFL || old.sa_sigaction == libc::SIG_IGN)
    }
}

/// Interposed: abort() (a failed check, C++'s std::terminate) runs no exit handlers, and libc
/// sends its SIGABRT from inside (no `raise` hook sees it): the capture is finished first.
///
/// # Safety
/// Same contract as libc's abort.
pub unsafe extern "C" fn abort() -> ! {
    if abort_ends_at_once() {
        lifecycle::finish_now();
    }
    match real::get().and_then(|r| r.abort) {
        // SAFETY: forwarding to libc's abort.
        Some(real_abort) => unsafe { real_abort() },
        None => abort_without_libc(),
    }
}

/// Interposed: a failed `assert` prints its message and aborts inside libc.
///
/// # Safety
/// Same contract as libc's __assert_fail.
pub unsafe extern "C" fn assert_fail(
    assertion: *const libc::c_char,
    file: *const libc::c_char,
    line: libc::c_uint,
    function: *const libc::c_char,
) -> ! {
    if abort_ends_at_once() {
        lifecycle::finish_now();
    }
    match real::get().and_then(|r| r.assert_fail) {
        // SAFETY: forwarding the caller's arguments to libc's __assert_fail.
        Some(real_assert_fail) => unsafe { real_assert_fail(assertion, file, line, function) },
        None => abort_without_libc(),
    }
}

/// SIGABRT at its default, sent to this thread; should it not end the process, exit status 134.
fn abort_without_libc() -> ! {
    // SAFETY: signal(2) back to the default, then tgkill(2) of the calling thread.
    unsafe {
        libc::signal(libc::SIGABRT, libc::SIG_DFL);
        libc::syscall(
            libc::SYS_tgkill,
            sys::getpid(),
            libc::syscall(libc::SYS_gettid),
            libc::SIGABRT,
        );
    }
    lifecycle::exit_now(128 + libc::SIGABRT)
}

/// Whether `sig`, delivered now to this thread, ends the process: SIGKILL, or a signal whose
/// default action is to terminate, left at its default and not blocked here.
fn ends_the_process(sig: c_int) -> bool {
    // A sandboxed process: no system call, and no capture left to finish.
    if sys::sandboxed() {
        return false;
    }
    // The first process of a pid namespace (a container's entry point, `unshare -pf`) is not
    // ended by a signal it sends itself at the default action, SIGKILL included: the kernel
    // drops it, the program goes on, and so must its capture.
    if sys::getpid() == 1 {
        return false;
    }
    if sig == libc::SIGKILL {
        return true;
    }
    if sig <= 0 || !terminates_by_default(sig) {
        return false;
    }
    // SAFETY: zeroed sigaction and sigset_t are valid out-parameters; both calls only read the
    // current settings (a null new action, a null new mask).
    unsafe {
        let mut old: libc::sigaction = core::mem::zeroed();
        if libc::sigaction(sig, core::ptr::null(), &mut old) != 0
            || old.sa_sigaction != libc::SIG_DFL
        {
            return false;
        }
        let mut mask: libc::sigset_t = core::mem::zeroed();
        libc::pthread_sigmask(libc::SIG_BLOCK, core::ptr::null(), &mut mask) == 0
            && libc::sigismember(&mask, sig) == 0
    }
}

fn terminates_by_default(sig: c_int) -> bool {
    !matches!(
        sig,
        libc::SIGCHLD
            | libc::SIGCONT
            | libc::SIGSTOP
            | libc::SIGTSTP
            | libc::SIGTTIN
            | libc::SIGTTOU
            | libc::SIGURG
            | libc::SIGWINCH
    ) && sig < 65
}
