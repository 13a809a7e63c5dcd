//! The process's name (`/proc/self/comm`) for a script run through its `#!` line. The kernel
//! names a process started from a script with such a line after the script (`./serve.py`:
//! `serve.py`), where memtrace starts the interpreter the line names, which names it after
//! the interpreter: `pgrep -x serve.py`, `killall` and `ps -o comm` did not find it. `memtrace
//! run` passes the script's name in MEMTRACE_COMM; the variable is removed at once.

use crate::{config, environ};

const COMM: &core::ffi::CStr = c"MEMTRACE_COMM";

/// Names the process as MEMTRACE_COMM says (the kernel keeps 15 bytes of it, as at exec).
pub fn take_script_name() {
    let Some(mut name) = config::var(COMM) else {
        return;
    };
    environ::unset(COMM);
    name.truncate(15);
    name.push(0);
    // SAFETY: prctl(2) PR_SET_NAME reads a NUL-terminated string of at most 16 bytes.
    unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr()) };
}
