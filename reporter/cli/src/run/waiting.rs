//! Waiting for the program's end, and stopping with it: a program that stops itself
//! (`raise(SIGSTOP)` to wait for a debugger, a shell's `suspend`, its own SIGTSTP) would stop
//! alone, and the shell, which waits for memtrace, would never get the terminal back. So when
//! the program stops and is still stopped when memtrace looks, memtrace stops with the same
//! signal: its parent sees it stopped as it would have seen the program. When memtrace is
//! continued (`fg`, `bg`, `kill -CONT`), the program is continued too, unless the same
//! SIGCONT reached it already (a shell continues the whole job).
//!
//! A stop that the whole group took (Ctrl-Z: memtrace stopped too) is over when memtrace
//! reads of it: the program runs again by then, and nothing is done.

use super::signals::{send, CONTINUED};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// How long memtrace waits, after its own stop, to learn that a SIGCONT continued it: a stop
/// signal that did not stop it (the kernel drops SIGTSTP, SIGTTIN and SIGTTOU for an orphaned
/// group) brings none, and the program is then left as it stopped.
const CONTINUE_NOTICE: Duration = Duration::from_millis(200);

/// Waits until the program has ended without reaping it, so that its pid cannot be reused by
/// another process while a signal may still be forwarded to it; stops with the program.
pub fn wait_for_exit(pid: u32) {
    loop {
        let info = match wait_child(pid, libc::WEXITED | libc::WSTOPPED | libc::WNOWAIT) {
            Ok(info) => info,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return,
        };
        if info.si_code != libc::CLD_STOPPED {
            return;
        }
        // SAFETY: the siginfo of a CLD_STOPPED child: si_status is the stop signal.
        let sig = unsafe { info.si_status() };
        // The stop's notice is taken (WSTOPPED without WNOWAIT: the process is left), so that
        // the next wait waits.
        let _ = wait_child(pid, libc::WSTOPPED | libc::WNOHANG);
        stop_with(pid as libc::pid_t, sig);
    }
}

/// waitid(2) of the child `pid` with `flags`: what changed (si_pid 0 when WNOHANG found
/// nothing).
pub(super) fn wait_child(pid: u32, flags: libc::c_int) -> std::io::Result<libc::siginfo_t> {
    // SAFETY: a zeroed siginfo_t is a valid out-buffer for waitid.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: waitid(2) on our own child with a valid out-buffer.
    let r = unsafe { libc::waitid(libc::P_PID, pid as libc::id_t, &mut info, flags) };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(info)
}

/// Stops memtrace with `sig` if the program is still stopped; once continued, continues the
/// program if it still is.
fn stop_with(pid: libc::pid_t, sig: libc::c_int) {
    if !stopped(pid) {
        return;
    }
    CONTINUED.store(false, Ordering::Release);
    // SAFETY: raise(3) of a stop signal, whose disposition memtrace leaves at the default
    // (job control's stops are not among the forwarded signals); SIGSTOP cannot be caught.
    unsafe { libc::raise(sig) };
    let start = Instant::now();
    while !CONTINUED.load(Ordering::Acquire) {
        if start.elapsed() > CONTINUE_NOTICE {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    if stopped(pid) {
        send(pid, libc::SIGCONT);
    }
}

/// Whether process `pid` is stopped by a signal (state T in /proc/PID/stat; not a tracer's
/// stop, t).
fn stopped(pid: libc::pid_t) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state follows the command's closing parenthesis (the command may hold any).
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next())
        == Some('T')
}
