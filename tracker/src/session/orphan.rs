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
/// already ended (we were re-parented before asking), ends now as that SIGKILL would have.
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
    // SAFETY: prctl(2) with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    if sys::getppid() != parent {
        // SAFETY: kill(2) of this process with a plain signal number.
        unsafe { libc::kill(sys::getpid() as libc::pid_t, libc::SIGKILL) };
    }
}
