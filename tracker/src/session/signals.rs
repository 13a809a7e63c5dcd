//! A program that ends itself with a signal (Python re-raises SIGINT after an unhandled
//! KeyboardInterrupt; others `raise(SIGTERM)` or `kill(getpid(), ...)`) runs no exit handlers:
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
    if pid > 0 && pid as u32 == sys::getpid() && ends_the_process(sig) {
        lifecycle::finish_now();
    }
    match real::get().and_then(|r| r.kill) {
        Some(real_kill) => forward!(real_kill; pid, sig),
        // SAFETY: the system call kill(2) with the caller's arguments.
        None => unsafe { libc::syscall(libc::SYS_kill, pid, sig) as c_int },
    }
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

/// Whether `sig`, delivered now to this thread, ends the process: SIGKILL, or a signal whose
/// default action is to terminate, left at its default and not blocked here.
fn ends_the_process(sig: c_int) -> bool {
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
