//! While the program runs, memtrace passes on to it the signals another process sends to
//! memtrace (`kill -INT <pid>`, a supervisor's stop signal), and survives, without sending them
//! again, the ones the terminal sends to the whole foreground process group (Ctrl-C, Ctrl-\,
//! hangup), which the program receives itself and decides about. The two are told apart by the
//! signal's origin: the terminal's come from the kernel (`si_code` SI_KERNEL), another
//! process's from kill, tgkill or sigqueue.
//!
//! A signal sent to memtrace's whole process group by another process (a test harness's or a
//! shell's killpg, `timeout`) also comes from kill, and would reach the program twice: directly
//! and passed on. So when no terminal needs the program in memtrace's group for job control
//! (none of memtrace's standard streams is a terminal, and memtrace is not in a terminal's
//! foreground), the two are parted ([`isolate`]): when memtrace leads its group, the program
//! gets a group of its own, which it would have led when run alone; otherwise the program stays
//! in the group memtrace was started in and memtrace leaves it. Either way a signal to the
//! group reaches one of them and the program gets it once, and the program keeps what it would
//! have had alone (a non-leader can call setsid(); `kill 0` reaches the group it was started
//! in). The program is then killed if memtrace is (SIGKILL, which memtrace cannot pass on).
//!
//! Once the program has ended, the default dispositions come back, so that a signal sent to
//! memtrace while it writes its report ends it as it would end any program.

use super::sentinel;
use signal_hook::consts::{
    SIGALRM, SIGCONT, SIGHUP, SIGINT, SIGPROF, SIGQUIT, SIGTERM, SIGURG, SIGUSR1, SIGUSR2,
    SIGVTALRM, SIGWINCH, SIGXCPU,
};
use signal_hook::iterator::exfiltrator::WithRawSiginfo;
use signal_hook::iterator::{Handle, SignalsInfo};
use std::io::IsTerminal;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// The signals passed on: those that would otherwise end memtrace and leave the program
/// running (a supervisor's timers, CPU limit, real-time signals) or be lost on memtrace (a
/// window size change, SIGCONT, SIGURG). Not job control's stops (TSTP, TTIN, TTOU: memtrace
/// stops with the program in a terminal), SIGCHLD and SIGPIPE (memtrace's own, from the
/// kernel), nor those that cannot be caught.
pub(super) fn forwarded() -> Vec<libc::c_int> {
    let mut v = vec![
        SIGINT,
        SIGQUIT,
        SIGTERM,
        SIGHUP,
        SIGUSR1,
        SIGUSR2,
        SIGALRM,
        SIGVTALRM,
        SIGPROF,
        SIGXCPU,
        libc::SIGPWR,
        SIGWINCH,
        SIGCONT,
        SIGURG,
    ];
    v.extend(libc::SIGRTMIN()..=libc::SIGRTMAX());
    v
}

/// A SIGCONT reached memtrace (set by the forwarding thread): memtrace, stopped with its
/// program (`run::waiting`), has been continued.
pub(super) static CONTINUED: AtomicBool = AtomicBool::new(false);

#[derive(Default)]
struct State {
    /// The program, once started.
    program: Option<libc::pid_t>,
    /// The program has ended: nothing is sent to its pid any more.
    ended: bool,
    /// Signals that came while there was no program to take them, with their information
    /// (a sigqueue's value and sender go on with them).
    held: Vec<Held>,
}

/// A signal's information, kept as its bytes until the program is known (the struct holds a
/// pointer, which a thread may not hand to another).
#[derive(Clone, Copy)]
struct Held([u8; std::mem::size_of::<libc::siginfo_t>()]);

impl Held {
    fn of(info: &libc::siginfo_t) -> Held {
        // SAFETY: siginfo_t is plain data (integers and a pointer-sized union), read whole.
        Held(unsafe { std::mem::transmute_copy(info) })
    }

    fn info(&self) -> libc::siginfo_t {
        // SAFETY: the bytes of a siginfo_t (`of`), read back unaligned.
        unsafe { std::mem::transmute_copy(&self.0) }
    }
}

pub struct Forwarder {
    handle: Handle,
    state: Arc<Mutex<State>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Forwarder {
    /// Installs handlers (not SIG_IGN, so the program starts with default dispositions).
    pub fn install() -> std::io::Result<Forwarder> {
        let mut signals = SignalsInfo::<WithRawSiginfo>::new(std::iter::empty::<libc::c_int>())?;
        let handle = signals.handle();
        // One by one: a signal that cannot be caught here (valgrind keeps one of the real-time
        // signals for itself) is not passed on, and the rest still are.
        for sig in forwarded() {
            let _ = handle.add_signal(sig);
        }
        let state = Arc::new(Mutex::new(State::default()));
        let shared = Arc::clone(&state);
        // A small stack: a thread's stack counts against the data limit (`ulimit -d`) the
        // program is run under, and this loop needs little. A thread that cannot be made is an
        // error the caller reports (a panic here hung memtrace when RUST_BACKTRACE was set).
        let thread = std::thread::Builder::new()
            .stack_size(128 << 10)
            .spawn(move || {
                for info in signals.forever() {
                    pass_on(&shared, &info);
                    // After passing it on: a program continued here is not continued again.
                    if info.si_signo == SIGCONT {
                        CONTINUED.store(true, Ordering::Release);
                    }
                }
            })?;
        Ok(Forwarder {
            handle,
            state,
            thread: Some(thread),
        })
    }

    /// The program has started: it gets the signals from now on, and those that came before.
    pub fn forward_to(&self, pid: u32) {
        let mut state = lock(&self.state);
        state.program = Some(pid as libc::pid_t);
        // As they came: one queued before memtrace knew the program's pid (the program may be
        // quicker to start than memtrace to note it) reached it as a plain kill from memtrace.
        for held in std::mem::take(&mut state.held) {
            send_as(pid as libc::pid_t, &held.info());
        }
    }

    /// The program has ended (see [`super::waiting::wait_for_exit`]): stops forwarding and restores the default
    /// dispositions; a signal that came meanwhile, with no program to take it, now takes its
    /// default effect on memtrace.
    pub fn finish(mut self) {
        let held = self.stop();
        for h in held {
            // SAFETY: raise(3) of a plain signal number, whose disposition is now the default.
            unsafe { libc::raise(h.info().si_signo) };
        }
    }

    fn stop(&mut self) -> Vec<Held> {
        lock(&self.state).ended = true;
        // Behind signal-hook's back (it never uninstalls its handler, which would swallow the
        // signals): nothing in memtrace registers these signals again after a run.
        for sig in forwarded() {
            // SAFETY: signal(2) back to the default disposition; the handler it replaces only
            // wakes the forwarding thread, which is stopped next.
            unsafe { libc::signal(sig, libc::SIG_DFL) };
        }
        self.handle.close();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        sentinel::stop();
        std::mem::take(&mut lock(&self.state).held)
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.stop();
        }
    }
}

/// Passes a signal memtrace got on to the program, unless the program got it itself.
fn pass_on(shared: &Mutex<State>, info: &libc::siginfo_t) {
    // SAFETY: the siginfo of a signal sent with kill(2), sigqueue(3) or tgkill(2) (si_code 0
    // or below): si_pid is its sender.
    let sender = (info.si_code <= 0).then(|| unsafe { info.si_pid() });
    let program = lock(shared).program;
    // Sent by the program (or a process of its own) to its parent, which memtrace is: alone,
    // it would have reached memtrace's parent (a supervisor told "ready", `kill $PPID`).
    // Passed back to the program, it killed the program instead.
    if let (Some(sender), Some(program)) = (sender, program) {
        if sender > 0 && descends_from(sender, program) {
            // SAFETY: getppid(2) and kill(2) of a plain signal number.
            unsafe { libc::kill(libc::getppid(), info.si_signo) };
            return;
        }
    }
    let pid = {
        let mut state = lock(shared);
        match state.program {
            Some(pid) if !state.ended => pid,
            _ => {
                state.held.push(Held::of(info));
                return;
            }
        }
    };
    if received_it_too(info.si_signo, info.si_code, pid) {
        return;
    }
    let sender = sender.unwrap_or(0);
    // Sent to the program's group as well (`timeout`): the program has it.
    if info.si_code == libc::SI_USER && sentinel::group_got(info.si_signo, sender) {
        return;
    }
    if !lock(shared).ended {
        send_as(pid, info);
    }
}

/// Whether process `p` is `ancestor` or one of its descendants (its parents read from /proc,
/// a few levels up).
fn descends_from(p: libc::pid_t, ancestor: libc::pid_t) -> bool {
    let mut p = p;
    for _ in 0..32 {
        if p == ancestor {
            return true;
        }
        match parent_of(p) {
            Some(parent) if parent > 1 => p = parent,
            _ => return false,
        }
    }
    false
}

/// The parent of process `p` (/proc/p/stat's fourth field, after the command in parentheses).
fn parent_of(p: libc::pid_t) -> Option<libc::pid_t> {
    crate::proc_stat::field(&format!("/proc/{p}/stat"), 4)?
        .parse()
        .ok()
}

/// Names memtrace to the tracker in the program, which then asks for SIGKILL when memtrace ends
/// (tracker/src/session/orphan.rs) and removes the variable.
const DIE_WITH_ENV: &str = "MEMTRACE_DIE_WITH";

/// Where the program runs, as to process groups (see the top).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grouping {
    /// In memtrace's group: a terminal's job control needs them together.
    Shared,
    /// The leader of a group of its own: memtrace leads its group (a job, a harness's new
    /// group), so the program, run alone, would have led it.
    ProgramAlone,
    /// In the group memtrace was started in (`pgid`), where the program, run alone, would
    /// have been (a shell script's command, a subprocess): memtrace has left it for a group of
    /// its own, so that the program can still call setsid() or signal its group (`kill 0`) as
    /// it would, and a signal to the group reaches it once.
    MemtraceAlone { pgid: libc::pid_t },
}

/// Chooses the program's [`Grouping`] when no terminal is involved; the tracker then makes the
/// program die with memtrace (the variable set here).
pub fn isolate(cmd: &mut Command) -> Grouping {
    cmd.env_remove(DIE_WITH_ENV);
    if terminal_involved() {
        return Grouping::Shared;
    }
    cmd.env(DIE_WITH_ENV, std::process::id().to_string());
    // SAFETY: getpgrp and getpid only read the process table; setpgid(0, 0) moves memtrace
    // (not a session leader: it does not lead its group) into a new group of its own.
    unsafe {
        let pgid = libc::getpgrp();
        if pgid != libc::getpid() && libc::setpgid(0, 0) == 0 {
            return Grouping::MemtraceAlone { pgid };
        }
    }
    Grouping::ProgramAlone
}

/// A standard stream is a terminal, or memtrace is in its terminal's foreground group: the
/// program must share memtrace's group, for the terminal's job control (Ctrl-Z, fg, reads).
fn terminal_involved() -> bool {
    if std::io::stdin().is_terminal()
        || std::io::stdout().is_terminal()
        || std::io::stderr().is_terminal()
    {
        return true;
    }
    let Ok(tty) = std::fs::File::open("/dev/tty") else {
        return false;
    };
    // SAFETY: tcgetpgrp on an open descriptor, getpgrp without arguments.
    unsafe { libc::tcgetpgrp(tty.as_raw_fd()) == libc::getpgrp() }
}

/// Whether the program got this signal itself: a terminal's signal (from the kernel) goes to
/// the foreground process group, which holds the program unless it left memtrace's group. A
/// hangup from the kernel goes to the session leader alone, so when memtrace is the leader the
/// program did not get it.
///
/// A SIGCONT is not passed on to a program in memtrace's group: the shell's `fg` and `bg`
/// continue the whole group (memtrace and the program stopped together), and a second one
/// would run the program's handler twice.
fn received_it_too(sig: libc::c_int, code: libc::c_int, pid: libc::pid_t) -> bool {
    if code != libc::SI_KERNEL && sig != SIGCONT {
        return false;
    }
    // SAFETY: getpgid, getpgrp, getsid and getpid only read the process table.
    let (theirs, ours, session, me) = unsafe {
        (
            libc::getpgid(pid),
            libc::getpgrp(),
            libc::getsid(0),
            libc::getpid(),
        )
    };
    if theirs != ours {
        return false;
    }
    !(sig == SIGHUP && session == me)
}

/// Passes on a signal as it came: one sent with sigqueue(3) keeps its value, its code and its
/// sender (with kill(2) the program read `code 0 value 0` and memtrace's pid). Else as kill.
fn send_as(pid: libc::pid_t, info: &libc::siginfo_t) {
    // The kernel takes a queued signal's information from another process only with a code
    // below 0 other than tgkill's (the rest it writes itself).
    if info.si_code < 0 && info.si_code != libc::SI_TKILL {
        // SAFETY: rt_sigqueueinfo(2) of our own child with a copy of a siginfo the kernel
        // filled for memtrace; only read.
        let r = unsafe {
            libc::syscall(
                libc::SYS_rt_sigqueueinfo,
                pid,
                info.si_signo,
                info as *const libc::siginfo_t,
            )
        };
        if r == 0 {
            return;
        }
    }
    send(pid, info.si_signo);
}

pub(super) fn send(pid: libc::pid_t, sig: libc::c_int) {
    // SAFETY: kill(2) of our own, not yet reaped, child with a plain signal number.
    unsafe { libc::kill(pid, sig) };
}

/// Ends memtrace by the signal that ended the program, so that its parent sees what it would
/// have seen without memtrace: a shell loop stops at a Ctrl-C (bash goes on after a child that
/// exited 130, taking the signal as handled), and `waitpid` callers get the signal, not 128+N.
/// Returns only when the signal does not end memtrace (one whose default is to be ignored or
/// to stop); the caller then exits 128+N. No core file: the program left its own, which one of
/// memtrace's would overwrite.
pub fn die_of(sig: libc::c_int) {
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    let no_core = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: setrlimit with a valid struct; signal(2) to the default disposition and an
    // unblocked mask of one valid signal number; raise(3) then delivers it to this thread.
    unsafe {
        libc::setrlimit(libc::RLIMIT_CORE, &no_core);
        libc::signal(sig, libc::SIG_DFL);
        let mut set: libc::sigset_t = core::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, sig);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, core::ptr::null_mut());
        libc::raise(sig);
    }
}

extern "C" fn ignore_signal(_: libc::c_int) {}

/// A write of memtrace's own past the file size limit (`ulimit -f`: its run directory's
/// probe, the start-up hook's files) fails with EFBIG instead of killing memtrace with
/// SIGXFSZ before the program started. A handler, not SIG_IGN: exec gives the program the
/// default disposition back, as it would have had.
pub fn survive_file_size_limit() {
    // SAFETY: signal(2) with a handler that does nothing (async-signal-safe).
    unsafe {
        libc::signal(
            libc::SIGXFSZ,
            ignore_signal as *const () as libc::sighandler_t,
        )
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_kernel_s_signals_reach_the_program_without_memtrace() {
        // SAFETY: getpid has no preconditions.
        let me = unsafe { libc::getpid() };
        assert!(!received_it_too(SIGINT, libc::SI_USER, me));
        assert!(!received_it_too(SIGINT, libc::SI_QUEUE, me));
        assert!(!received_it_too(SIGINT, libc::SI_TKILL, me));
        assert!(received_it_too(SIGINT, libc::SI_KERNEL, me));
        assert!(received_it_too(SIGQUIT, libc::SI_KERNEL, me));
    }
}
