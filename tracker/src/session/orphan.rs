//! The program ends with memtrace. When memtrace gives the program a process group of its own
//! (no terminal involved), a SIGKILL of memtrace no longer reaches the program through the
//! group, so memtrace names itself in MEMTRACE_DIE_WITH and its direct child asks here, first
//! thing, for SIGKILL when memtrace ends. Done in the program rather than between fork and exec,
//! so that memtrace can start it with posix_spawn (a fork of memtrace's large image costs
//! start-up time). The variable is removed at once: neither the program nor anything it starts
//! sees it.

use crate::{config, environ, sys};

const DIE_WITH: &core::ffi::CStr = c"MEMTRACE_DIE_WITH";

/// Asks for SIGKILL when the process named by MEMTRACE_DIE_WITH, our parent, ends; if it has
/// already ended (we were re-parented before asking), ends now as that SIGKILL would have. A
/// process that is not memtrace's child while memtrace lives is one the program started before
/// its own tracker removed the variable (a linked library's constructor runs before the
/// tracker's): it is left alone.
pub fn die_with_parent() {
    let Some(value) = config::var(DIE_WITH) else {
        return;
    };
    environ::unset(DIE_WITH);
    let Some(parent) = std::str::from_utf8(&value)
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
    else {
        return;
    };
    if sys::getppid() == parent {
        // SAFETY: prctl(2) with integer arguments only.
        unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
        // memtrace may have ended between the two: then the death signal never comes.
        if sys::getppid() == parent {
            return;
        }
    } else if alive(parent) {
        return;
    }
    // SAFETY: kill(2) of this process with a plain signal number.
    unsafe { libc::kill(sys::getpid() as libc::pid_t, libc::SIGKILL) };
}

/// Whether process `pid` exists (signal 0 checks without sending; EPERM: it exists, another
/// user's).
fn alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    let _errno = sys::ErrnoGuard::new();
    // SAFETY: kill(2) with signal 0 sends nothing.
    if unsafe { libc::kill(pid, 0) } == 0 {
        return true;
    }
    // SAFETY: this thread's errno slot, always valid.
    unsafe { *libc::__errno_location() == libc::EPERM }
}
