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
//!
//! While memtrace is stopped with the program, a small forked watcher looks at the program:
//! continued by another process (a debugger, `kill -CONT` of its pid alone) or ended, it
//! continues memtrace, which would otherwise stay stopped and never pass the exit status on.

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
    let watcher = watch_while_stopped(pid);
    // SAFETY: raise(3) of a stop signal, whose disposition memtrace leaves at the default
    // (job control's stops are not among the forwarded signals); SIGSTOP cannot be caught.
    unsafe { libc::raise(sig) };
    if let Some(w) = watcher {
        // SAFETY: kill and waitpid of memtrace's own child, the watcher.
        unsafe {
            libc::kill(w, libc::SIGKILL);
            libc::waitpid(w, std::ptr::null_mut(), 0);
        }
    }
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

/// How often the watcher looks at the stopped program.
const WATCH_EVERY: libc::timespec = libc::timespec {
    tv_sec: 0,
    tv_nsec: 20_000_000,
};

/// A process that continues memtrace, stopped with the program, when the program is continued
/// or ends without memtrace being continued (`kill -CONT` of the program alone, a debugger
/// that attached to it): memtrace, stopped, could not notice, and its parent would wait for
/// it for ever. None when it cannot be made (memtrace then stops as before).
///
/// The program may be continued before memtrace's own stop has taken effect (memtrace slow
/// to run between its look and its raise): a SIGCONT then would come too early and be lost, so
/// the watcher sends it only once it sees memtrace stopped. Memtrace ends the watcher when its
/// stop is over (or never came: a stop signal the kernel dropped).
fn watch_while_stopped(program: libc::pid_t) -> Option<libc::pid_t> {
    let path = stat_path(program)?;
    // SAFETY: getpid only reads the process table.
    let memtrace = unsafe { libc::getpid() };
    let own_path = stat_path(memtrace)?;
    // SAFETY: fork(2); the child makes only async-signal-safe calls (no allocation, no lock)
    // and ends with _exit.
    let pid = unsafe { libc::fork() };
    if pid != 0 {
        return (pid > 0).then_some(pid);
    }
    // SAFETY: prctl, nanosleep, kill and _exit are async-signal-safe; `path` is NUL-terminated.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        loop {
            libc::nanosleep(&WATCH_EVERY, std::ptr::null_mut());
            if libc::getppid() != memtrace {
                libc::_exit(0);
            }
            if !stopped_raw(&path) && stopped_raw(&own_path) {
                libc::kill(memtrace, libc::SIGCONT);
                libc::_exit(0);
            }
        }
    }
}

/// [`stopped`] without allocating (in the watcher, a fork of a threaded process): `path` is
/// the NUL-terminated /proc/PID/stat.
fn stopped_raw(path: &[u8]) -> bool {
    let mut buf = [0u8; 512];
    // SAFETY: open, read and close with a NUL-terminated path and a buffer of ours.
    let n = unsafe {
        let fd = libc::open(path.as_ptr().cast(), libc::O_RDONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return false;
        }
        let n = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
        libc::close(fd);
        n
    };
    let Ok(n) = usize::try_from(n) else {
        return false;
    };
    let stat = &buf[..n];
    // The state follows the command's closing parenthesis (the command may hold any).
    stat.iter()
        .rposition(|&b| b == b')')
        .and_then(|at| stat.get(at + 2))
        == Some(&b'T')
}

/// Whether process `pid` is stopped by a signal (state T in /proc/PID/stat; not a tracer's
/// stop, t).
fn stopped(pid: libc::pid_t) -> bool {
    stat_path(pid).is_some_and(|path| stopped_raw(&path))
}

/// /proc/PID/stat, NUL-terminated.
fn stat_path(pid: libc::pid_t) -> Option<[u8; 32]> {
    let mut path = [0u8; 32];
    let text = format!("/proc/{pid}/stat");
    path.get_mut(..text.len())?.copy_from_slice(text.as_bytes());
    Some(path)
}
