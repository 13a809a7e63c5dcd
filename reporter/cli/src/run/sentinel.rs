//! A process memtrace leaves behind in the process group it leaves (`Grouping::MemtraceAlone`,
//! where the program stays), so that memtrace can tell a signal a process sent to it alone
//! (which it passes on: the program would not get it otherwise) from one that process also
//! sent to the whole group, which the program gets itself. `timeout` does both, to its child
//! and then to its group: passed on as well, the program got the signal twice (a second
//! KeyboardInterrupt in the middle of its clean-up, a SIGTERM handler run twice), where
//! without memtrace the two merge into one.
//!
//! The sentinel is a fork of memtrace that only waits: it catches the signals memtrace passes
//! on and reports each (its number and sender) on a pipe. It dies with memtrace (PR_SET_PDEATHSIG)
//! and holds no descriptor but the pipe's, so nothing waits on it. It goes by a name of its
//! own (`mt-sentinel`, its command line too): a signal sent by name (`killall memtrace`,
//! `pkill -f 'memtrace run'`) reached memtrace and the sentinel alike, and memtrace took it for
//! one the whole group got, so the program never got it.

use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How long memtrace waits for the sentinel's report of a signal from a process of the group:
/// `timeout` signals its group right after its child, but on a busy machine the sentinel may
/// run some time later. A signal sent to memtrace alone is passed on this much later.
pub const GROUP_WAIT: Duration = Duration::from_millis(500);
/// Reports older than this are dropped unmatched (the program's own `kill(0, ...)`).
const KEPT: Duration = Duration::from_secs(1);

/// The write end of the pipe, in the sentinel.
static REPORT_FD: AtomicI32 = AtomicI32::new(-1);

/// The running sentinel, set by [`start`].
static SENTINEL: Mutex<Option<Sentinel>> = Mutex::new(None);

struct Sentinel {
    pid: libc::pid_t,
    /// The group the sentinel (and the program) is in.
    group: libc::pid_t,
    reports: std::fs::File,
    /// (signal, sender, when read) not matched yet.
    seen: Vec<(i32, i32, Instant)>,
}

/// Starts the sentinel in `group`, the group memtrace left, where the program runs: after
/// the program has started, so that its fork does not delay the program. False when it
/// cannot be made (memtrace then passes on every signal, as before).
pub fn start(signals: &[libc::c_int], group: libc::pid_t) -> bool {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe2(2) into a two-descriptor array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } != 0 {
        return false;
    }
    // SAFETY: getpid only reads the process table.
    let parent = unsafe { libc::getpid() };
    // Read before the fork: the child only writes over it.
    let args = argument_area();
    // SAFETY: fork(2); the child runs only async-signal-safe calls (`wait_for_signals`) and
    // never returns from it.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        wait_for_signals(parent, group, fds[1], signals, args);
    }
    // SAFETY: descriptors this function made: the write end is the sentinel's alone.
    unsafe { libc::close(fds[1]) };
    // SAFETY: the read end, owned from here on.
    let reports = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fds[0]) });
    if pid < 0 {
        return false;
    }
    // Into the group from here as well as in the child, whichever runs first; it fails when
    // the group is gone.
    // SAFETY: setpgid(2) of memtrace's own child, which has not exec'd; kill and waitpid of
    // that child when it cannot be moved.
    unsafe {
        if libc::setpgid(pid, group) != 0 && libc::getpgid(pid) != group {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, core::ptr::null_mut(), 0);
            return false;
        }
    }
    *SENTINEL.lock().unwrap_or_else(PoisonError::into_inner) = Some(Sentinel {
        pid,
        group,
        reports,
        seen: Vec::new(),
    });
    true
}

/// Whether `sender` sent `sig` to the sentinel's group as well (so the program got it itself):
/// only for a sender in that group, waiting up to [`GROUP_WAIT`] for the report.
pub fn group_got(sig: libc::c_int, sender: libc::pid_t) -> bool {
    let mut guard = SENTINEL.lock().unwrap_or_else(PoisonError::into_inner);
    let Some(s) = guard.as_mut() else {
        return false;
    };
    // SAFETY: getpgid only reads the process table (-1 for a process gone).
    if unsafe { libc::getpgid(sender) } != s.group {
        return false;
    }
    let deadline = Instant::now() + GROUP_WAIT;
    loop {
        s.read_reports();
        if let Some(i) = s.seen.iter().position(|&(g, p, _)| g == sig && p == sender) {
            s.seen.remove(i);
            return true;
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        let mut poll = libc::pollfd {
            fd: std::os::fd::AsRawFd::as_raw_fd(&s.reports),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = (deadline - now).as_millis().max(1) as libc::c_int;
        // SAFETY: poll(2) on one valid pollfd.
        unsafe { libc::poll(&mut poll, 1, ms) };
    }
}

/// Ends the sentinel (the program has ended).
pub fn stop() {
    let Some(s) = SENTINEL
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take()
    else {
        return;
    };
    // SAFETY: kill(2) and waitpid(2) of memtrace's own child, the sentinel.
    unsafe {
        libc::kill(s.pid, libc::SIGKILL);
        libc::waitpid(s.pid, core::ptr::null_mut(), 0);
    }
}

impl Sentinel {
    fn read_reports(&mut self) {
        let mut buf = [0u8; 8 * 64];
        while let Ok(n) = self.reports.read(&mut buf) {
            if n == 0 {
                break;
            }
            let now = Instant::now();
            for r in buf[..n].chunks_exact(8) {
                let sig = i32::from_ne_bytes([r[0], r[1], r[2], r[3]]);
                let pid = i32::from_ne_bytes([r[4], r[5], r[6], r[7]]);
                self.seen.push((sig, pid, now));
            }
        }
        let now = Instant::now();
        self.seen
            .retain(|&(_, _, at)| now.duration_since(at) < KEPT);
    }
}

/// The sentinel: reports each of `signals` it gets on `fd`, until memtrace ends.
fn wait_for_signals(
    parent: libc::pid_t,
    group: libc::pid_t,
    fd: libc::c_int,
    signals: &[libc::c_int],
    args: Option<(usize, usize)>,
) -> ! {
    // SAFETY: async-signal-safe calls only (this runs in a fork of a process with threads):
    // prctl, getppid, setpgid, dup2, close_range/close, sigaction, sigprocmask, pause, _exit,
    // and stores into this process's own copy of its argument strings.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        libc::prctl(
            libc::PR_SET_NAME,
            SENTINEL_NAME.as_ptr() as libc::c_ulong,
            0,
            0,
            0,
        );
        if let Some((start, end)) = args {
            // The command line (/proc/PID/cmdline) is read from here: the name, then zeros.
            let area = core::slice::from_raw_parts_mut(start as *mut u8, end - start);
            area.fill(0);
            let name = SENTINEL_NAME.to_bytes();
            let n = name.len().min(area.len().saturating_sub(1));
            area[..n].copy_from_slice(&name[..n]);
        }
        if libc::getppid() != parent || libc::setpgid(0, group) != 0 {
            libc::_exit(0);
        }
        // Nothing of memtrace's stays open here (a harness reading memtrace's output until it
        // closes must not wait on the sentinel).
        // The pipe becomes descriptor 0, every other one is closed.
        if fd != 0 && libc::dup2(fd, 0) != 0 {
            libc::_exit(0);
        }
        if libc::syscall(libc::SYS_close_range, 1, libc::c_uint::MAX, 0) != 0 {
            for d in 1..1024 {
                libc::close(d);
            }
        }
        REPORT_FD.store(0, Ordering::Relaxed);
        for &sig in signals {
            let mut action: libc::sigaction = core::mem::zeroed();
            action.sa_sigaction = report as *const () as usize;
            action.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(sig, &action, core::ptr::null_mut());
        }
        let mut none: libc::sigset_t = core::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, core::ptr::null_mut());
        loop {
            libc::pause();
        }
    }
}

/// The sentinel's process name and command line (see the top).
const SENTINEL_NAME: &core::ffi::CStr = c"mt-sentinel";

/// Where this process's argument strings lie (`/proc/self/stat`'s arg_start and arg_end), for
/// the sentinel to write its name over; None when they cannot be read.
fn argument_area() -> Option<(usize, usize)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields 48 and 49, counted from 1; the 3rd is the first after the command's ')'.
    let mut after = stat.rsplit_once(')')?.1.split_whitespace().skip(48 - 3);
    let start: usize = after.next()?.parse().ok()?;
    let end: usize = after.next()?.parse().ok()?;
    (start != 0 && end > start).then_some((start, end))
}

/// The sentinel's handler: the signal and its sender, in one write (atomic on a pipe).
extern "C" fn report(sig: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // SAFETY: the kernel's siginfo for this signal; write(2) is async-signal-safe.
    unsafe {
        let sender = (*info).si_pid();
        let mut r = [0u8; 8];
        r[..4].copy_from_slice(&sig.to_ne_bytes());
        r[4..].copy_from_slice(&sender.to_ne_bytes());
        libc::write(
            REPORT_FD.load(Ordering::Relaxed),
            r.as_ptr() as *const libc::c_void,
            8,
        );
    }
}
