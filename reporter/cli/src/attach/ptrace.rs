//! Making a running process call functions, with ptrace and no debugger: seize its main thread,
//! interrupt it, save its registers, its floating-point and vector state and its signal mask;
//! for each call set the arguments and the function's address, with a return address into the
//! C library's `rt_sigreturn` code and above it a signal frame that restores all of that (see
//! frame.rs). The tracer follows the call's system calls and stops the thread at that
//! `rt_sigreturn`, reads the call's result word, turns the system call into a `getpid` (so that
//! the kernel keeps what it needs to resume an interrupted sleep) and puts the registers and
//! the vector state back itself. Should memtrace be gone before that (killed, or giving up on a
//! call that waits for a lock), the frame brings the thread back by itself. A system call the
//! thread was stopped in is restarted as the kernel would after any interruption. x86-64 only.

use super::frame::{self, FpuState, Registers};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How long one call may take in the target before it is given up.
const CALL_PATIENCE: Duration = Duration::from_secs(20);

/// `NT_X86_XSTATE`: ptrace's regset of the whole xsave area.
const NT_X86_XSTATE: libc::c_uint = 0x202;
/// `-ERESTART*`: a system call interrupted, to be restarted when no handler runs.
const ERESTARTSYS: i64 = 512;
const ERESTARTNOINTR: i64 = 513;
const ERESTARTNOHAND: i64 = 514;
const ERESTART_RESTARTBLOCK: i64 = 516;
/// The stop of a system call, with PTRACE_O_TRACESYSGOOD.
const SYSCALL_STOP: i32 = libc::SIGTRAP | 0x80;

/// Where the thread is, for what a release must do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Stopped, and released by putting back the saved state.
    Stopped,
    /// Running an injected call: released by letting the call end and its frame restore it.
    InCall,
}

/// A seized and stopped thread, released (registers restored) when dropped.
pub struct Stopped {
    pid: libc::pid_t,
    saved: libc::user_regs_struct,
    fpu: FpuState,
    mask: u64,
    /// The C library's `rt_sigreturn` code in the process (0: not found yet).
    restorer: u64,
    state: State,
    released: bool,
    /// The signal the thread stopped for, delivered when it runs on (0: none).
    signal: i32,
    /// Calls started (for the test hook `MEMTRACE_TEST_ABANDON_CALL`).
    calls: u32,
    /// The thread's static TLS as it was before the first call (see [`TlsBefore`]).
    tls: TlsBefore,
}

/// The bytes below the thread pointer (x86-64 keeps the static TLS blocks there: errno among
/// them) before the first call: the calls (dlopen first) change the thread's errno, which the
/// program may be about to read; the tracker then names errno's address, and its old value is
/// written back ([`Stopped::restore_errno`]).
#[derive(Default)]
struct TlsBefore {
    /// Address of bytes[0].
    start: u64,
    bytes: Vec<u8>,
}

/// How far below the thread pointer the snapshot reaches: libc's block comes right after the
/// executable's, which is small in programs (a few hundred bytes in CPython).
const TLS_SNAPSHOT: u64 = 16 * 1024;

/// Why a seize failed.
#[derive(Debug)]
pub enum SeizeError {
    Gone,
    NotPermitted,
    Other(String),
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn os_error() -> std::io::Error {
    std::io::Error::last_os_error()
}

/// Set by SIGINT, SIGTERM, SIGHUP or SIGQUIT while [`catch_interrupts`] holds: the calls are
/// given up.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_interrupt(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::Relaxed);
}

/// While held, Ctrl-C (SIGINT), Ctrl-backslash (SIGQUIT), SIGTERM and SIGHUP make memtrace
/// give up the attach cleanly (the thread released, a call left to end and restore it, the
/// attach's directory removed) rather than die with its files left behind, which made the
/// process look attached; during --duration, they detach it.
pub struct Interrupts {
    old: Vec<(libc::c_int, libc::sigaction)>,
}

pub fn catch_interrupts() -> Interrupts {
    let mut old = Vec::new();
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT] {
        // SAFETY: a zeroed sigaction is a valid value to fill in.
        let mut act: libc::sigaction = unsafe { std::mem::zeroed() };
        act.sa_sigaction = on_interrupt as *const () as usize;
        // SAFETY: as above; filled by the kernel.
        let mut prev: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: installing an async-signal-safe handler (one atomic store).
        if unsafe { libc::sigaction(sig, &act, &mut prev) } == 0 {
            old.push((sig, prev));
        }
    }
    Interrupts { old }
}

impl Drop for Interrupts {
    fn drop(&mut self) {
        for (sig, prev) in &self.old {
            // SAFETY: putting back the disposition read at the start.
            unsafe { libc::sigaction(*sig, prev, std::ptr::null_mut()) };
        }
    }
}

/// Whether memtrace was asked to stop (see [`catch_interrupts`]).
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}

/// What [`wait_stop`] says when its patience ran out.
const NOT_IN_TIME: &str = "the process did not stop in time";

/// Waits for a stop of `pid`; its status. `interruptible`: gives up when memtrace is asked
/// to stop.
fn wait_stop(pid: libc::pid_t, patience: Duration, interruptible: bool) -> Result<i32, String> {
    let start = Instant::now();
    loop {
        if let Some(status) = stopped_now(pid)? {
            return Ok(status);
        }
        if interruptible && interrupted() {
            return Err(INTERRUPTED_LINE.to_string());
        }
        if start.elapsed() > patience {
            return Err(NOT_IN_TIME.to_string());
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// The status of a stop (or end) of the traced thread `pid` waiting to be seen, if any.
fn stopped_now(pid: libc::pid_t) -> Result<Option<i32>, String> {
    let mut status = 0;
    // SAFETY: waitpid on a traced thread, with a valid status pointer.
    let r = unsafe { libc::waitpid(pid, &mut status, libc::__WALL | libc::WNOHANG) };
    if r == pid {
        return Ok(Some(status));
    }
    if r < 0 && errno() != libc::EINTR {
        return Err(format!("lost the process: {}", os_error()));
    }
    Ok(None)
}

/// What a given-up attach says.
pub const INTERRUPTED_LINE: &str = "interrupted";

/// The line for a request `what` that failed with `e`: a process gone meanwhile (ESRCH, or
/// its memory file gone) ended during the attach.
fn failed(what: &str, e: std::io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::ESRCH) => "the process ended during the attach".to_string(),
        _ => format!("cannot {what}: {e}"),
    }
}

/// System calls that a ptrace stop ends with a plain EINTR, which the kernel never restarts
/// (signal(7): after a stop they fail with EINTR even where no handler runs): waits for
/// events, signals, semaphores and sockets with a timeout (through the socket calls and
/// through read, readv, write, writev and connect alike). Without memtrace they would have
/// gone on waiting; a wait with a relative timeout starts it again. (A call that moved data
/// returns its count, not EINTR: starting it again repeats nothing.)
const EINTR_AT_STOP: &[libc::c_long] = &[
    libc::SYS_read,
    libc::SYS_readv,
    libc::SYS_write,
    libc::SYS_writev,
    libc::SYS_connect,
    libc::SYS_epoll_wait,
    libc::SYS_epoll_pwait,
    libc::SYS_epoll_pwait2,
    libc::SYS_rt_sigtimedwait,
    libc::SYS_semop,
    libc::SYS_semtimedop,
    libc::SYS_recvfrom,
    libc::SYS_recvmsg,
    libc::SYS_recvmmsg,
    libc::SYS_sendto,
    libc::SYS_sendmsg,
    libc::SYS_accept,
    libc::SYS_accept4,
    libc::SYS_io_getevents,
    // Waiting for completions (IORING_ENTER_GETEVENTS): it returned EINTR at 1 s where alone
    // it waited its 4 s for ETIME.
    libc::SYS_io_uring_enter,
];
const EINTR: i64 = libc::EINTR as i64;

/// The registers the thread goes on with: `saved`, with a system call it was stopped in set
/// to restart as the kernel does when no handler runs (`-ERESTART*` in rax: the call's number
/// back in rax and rip on its `syscall` instruction), and no restart left for the kernel to do
/// (`orig_rax` -1). A sleep's own restart (`restart_syscall`, which resumes it with the time
/// left) needs the kernel's record of it, which `rt_sigreturn` cancels: a frame restarts such a
/// call from its beginning instead (`for_sigreturn`). One of [`EINTR_AT_STOP`] that the stop
/// ended with EINTR starts again too, unless a signal is on its way to the thread
/// (`signal_coming`), whose handler may wait for that EINTR (a loop on epoll_wait that a
/// signal ends).
fn going_on(
    saved: &libc::user_regs_struct,
    for_sigreturn: bool,
    signal_coming: bool,
) -> libc::user_regs_struct {
    let mut r = *saved;
    if (r.orig_rax as i64) >= 0 {
        match -(r.rax as i64) {
            EINTR if !signal_coming && EINTR_AT_STOP.contains(&(r.orig_rax as libc::c_long)) => {
                r.rax = r.orig_rax;
                r.rip -= 2;
            }
            ERESTARTSYS | ERESTARTNOINTR | ERESTARTNOHAND => {
                r.rax = r.orig_rax;
                r.rip -= 2;
            }
            ERESTART_RESTARTBLOCK => {
                r.rax = if for_sigreturn {
                    r.orig_rax
                } else {
                    libc::SYS_restart_syscall as u64
                };
                r.rip -= 2;
            }
            _ => {}
        }
    }
    r.orig_rax = u64::MAX;
    r
}

fn frame_registers(r: &libc::user_regs_struct) -> Registers {
    Registers {
        r8: r.r8,
        r9: r.r9,
        r10: r.r10,
        r11: r.r11,
        r12: r.r12,
        r13: r.r13,
        r14: r.r14,
        r15: r.r15,
        rdi: r.rdi,
        rsi: r.rsi,
        rbp: r.rbp,
        rbx: r.rbx,
        rdx: r.rdx,
        rax: r.rax,
        rcx: r.rcx,
        rsp: r.rsp,
        rip: r.rip,
        eflags: r.eflags,
        cs: r.cs,
        ss: r.ss,
    }
}

impl Stopped {
    /// Seizes and stops the thread `pid` (the main thread when it is the process id).
    pub fn seize(pid: libc::pid_t) -> Result<Stopped, SeizeError> {
        // SAFETY: PTRACE_SEIZE with an option word; it only makes us the tracer.
        let r = unsafe {
            libc::ptrace(
                libc::PTRACE_SEIZE,
                pid,
                0,
                libc::PTRACE_O_TRACESYSGOOD as libc::c_long,
            )
        };
        if r != 0 {
            return Err(match errno() {
                libc::ESRCH => SeizeError::Gone,
                libc::EPERM => SeizeError::NotPermitted,
                _ => SeizeError::Other(os_error().to_string()),
            });
        }
        let status = interrupt_stop(pid).map_err(SeizeError::Other)?;
        if !libc::WIFSTOPPED(status) {
            return Err(SeizeError::Gone);
        }
        let mut stopped = Stopped {
            pid,
            // SAFETY: plain integers; filled right below.
            saved: unsafe { std::mem::zeroed() },
            fpu: FpuState {
                bytes: Vec::new(),
                xsave: false,
                feature_ends: [0; 64],
            },
            mask: 0,
            restorer: 0,
            state: State::Stopped,
            released: false,
            signal: stop_signal(status),
            calls: 0,
            tls: TlsBefore::default(),
        };
        stopped.snapshot().map_err(SeizeError::Other)?;
        Ok(stopped)
    }

    /// Saves what the thread must find again: registers, vector state, signal mask.
    fn snapshot(&mut self) -> Result<(), String> {
        self.saved = self.regs()?;
        self.fpu = self.fpu_state()?;
        self.mask = self.sigmask()?;
        Ok(())
    }

    /// The thread's stack pointer where it stopped.
    pub fn stack_pointer(&self) -> u64 {
        self.saved.rsp
    }

    /// Where the C library's `rt_sigreturn` code is (found by target::sigreturn_code).
    pub fn set_restorer(&mut self, addr: u64) {
        self.restorer = addr;
    }

    /// One ptrace request on the thread, `what` naming it in the error.
    ///
    /// # Safety
    /// `data` is what `request` wants for a stopped tracee: a buffer of its type and size.
    unsafe fn request(
        &self,
        request: libc::c_uint,
        addr: usize,
        data: *mut libc::c_void,
        what: &str,
    ) -> Result<(), String> {
        // SAFETY: the caller's promise on `data`.
        if unsafe { libc::ptrace(request, self.pid, addr, data) } != 0 {
            return Err(failed(what, std::io::Error::last_os_error()));
        }
        Ok(())
    }

    fn regs(&self) -> Result<libc::user_regs_struct, String> {
        // SAFETY: plain integers, filled by the kernel.
        let mut regs: libc::user_regs_struct = unsafe { std::mem::zeroed() };
        // SAFETY: a buffer of the type PTRACE_GETREGS fills.
        unsafe {
            self.request(
                libc::PTRACE_GETREGS,
                0,
                (&mut regs as *mut libc::user_regs_struct).cast(),
                "read registers",
            )?
        };
        Ok(regs)
    }

    fn set_regs(&self, regs: &libc::user_regs_struct) -> Result<(), String> {
        let mut regs = *regs;
        // SAFETY: registers of the type PTRACE_SETREGS reads.
        unsafe {
            self.request(
                libc::PTRACE_SETREGS,
                0,
                (&mut regs as *mut libc::user_regs_struct).cast(),
                "set registers",
            )
        }
    }

    /// The thread's floating-point and vector state: the xsave area, or the fxsave image where
    /// the kernel has no xsave regset.
    fn fpu_state(&self) -> Result<FpuState, String> {
        let mut buf = vec![0u8; 64 << 10];
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // SAFETY: an iovec describing a buffer of its length, which the kernel shortens.
        let xsave = unsafe {
            self.request(
                libc::PTRACE_GETREGSET,
                NT_X86_XSTATE as usize,
                (&mut iov as *mut libc::iovec).cast(),
                "read the vector registers",
            )
        };
        if xsave.is_ok() {
            buf.truncate(iov.iov_len);
            return Ok(FpuState {
                bytes: buf,
                xsave: true,
                feature_ends: xsave_feature_ends(),
            });
        }
        let mut fx = vec![0u8; 512];
        // SAFETY: PTRACE_GETFPREGS writes 512 bytes.
        unsafe {
            self.request(
                libc::PTRACE_GETFPREGS,
                0,
                fx.as_mut_ptr().cast(),
                "read the vector registers",
            )?
        };
        Ok(FpuState {
            bytes: fx,
            xsave: false,
            feature_ends: [0; 64],
        })
    }

    fn set_fpu_state(&self) -> Result<(), String> {
        let mut bytes = self.fpu.bytes.clone();
        if !self.fpu.xsave {
            // SAFETY: 512 bytes of fxsave image, as PTRACE_SETFPREGS reads.
            return unsafe {
                self.request(
                    libc::PTRACE_SETFPREGS,
                    0,
                    bytes.as_mut_ptr().cast(),
                    "set the vector registers",
                )
            };
        }
        let mut iov = libc::iovec {
            iov_base: bytes.as_mut_ptr().cast(),
            iov_len: bytes.len(),
        };
        // SAFETY: an iovec describing the area read from the thread.
        unsafe {
            self.request(
                libc::PTRACE_SETREGSET,
                NT_X86_XSTATE as usize,
                (&mut iov as *mut libc::iovec).cast(),
                "set the vector registers",
            )
        }
    }

    fn sigmask(&self) -> Result<u64, String> {
        let mut mask = 0u64;
        // SAFETY: the kernel writes the 8 bytes `addr` gives.
        unsafe {
            self.request(
                libc::PTRACE_GETSIGMASK,
                8,
                (&mut mask as *mut u64).cast(),
                "read the signal mask",
            )?
        };
        Ok(mask)
    }

    /// Puts back what the thread had when it stopped (it is stopped).
    fn restore(&self) -> Result<(), String> {
        self.set_regs(&going_on(&self.saved, false, self.signal_coming()))?;
        self.set_fpu_state()?;
        self.set_sigmask(self.mask)
    }

    /// Whether a signal the thread does not block (in its own mask) is pending for it or its
    /// process (/proc's SigPnd and ShdPnd); when it cannot be read, yes.
    fn signal_coming(&self) -> bool {
        let Ok(status) = std::fs::read_to_string(format!("/proc/{}/status", self.pid)) else {
            return true;
        };
        let mut pending = 0u64;
        for key in ["SigPnd:", "ShdPnd:"] {
            let Some(v) = status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            else {
                return true;
            };
            pending |= v;
        }
        pending & !self.mask != 0
    }

    fn set_sigmask(&self, mask: u64) -> Result<(), String> {
        let mut mask = mask;
        // SAFETY: the kernel reads the 8 bytes `addr` gives (and never blocks SIGKILL or
        // SIGSTOP).
        unsafe {
            self.request(
                libc::PTRACE_SETSIGMASK,
                8,
                (&mut mask as *mut u64).cast(),
                "set the signal mask",
            )
        }
    }

    /// The readable pages of the TLS_SNAPSHOT bytes below the thread pointer (the nearest
    /// first: a page that cannot be read ends it).
    fn tls_before(&self) -> TlsBefore {
        let end = self.saved.fs_base;
        if end < 4096 {
            return TlsBefore::default();
        }
        // The page below the thread pointer's, up to it; then whole pages further down.
        let mut start = (end - 1) & !0xfff;
        let mut bytes = vec![0u8; (end - start) as usize];
        if read_memory(self.pid, start, &mut bytes) != bytes.len() {
            return TlsBefore::default();
        }
        while end - start < TLS_SNAPSHOT && start >= 8192 {
            let mut page = vec![0u8; 4096];
            if read_memory(self.pid, start - 4096, &mut page) != page.len() {
                break;
            }
            page.extend_from_slice(&bytes);
            bytes = page;
            start -= 4096;
        }
        TlsBefore { start, bytes }
    }

    /// Writes back the 4 bytes of errno at `at` (its address in this thread, as the tracker
    /// gave it) as they were before the first call; nothing when they are not in the snapshot.
    pub fn restore_errno(&self, at: u64) -> Result<(), String> {
        let tls = &self.tls;
        let Some(offset) = at.checked_sub(tls.start).map(|o| o as usize) else {
            return Ok(());
        };
        match tls.bytes.get(offset..offset + 4) {
            Some(old) => self.write(at, old),
            None => Ok(()),
        }
    }

    /// Writes `bytes` at `addr` in the target, through /proc/PID/mem (its tracer's to write).
    fn write(&self, addr: u64, bytes: &[u8]) -> Result<(), String> {
        use std::os::unix::fs::FileExt;
        std::fs::OpenOptions::new()
            .write(true)
            .open(format!("/proc/{}/mem", self.pid))
            .and_then(|f| f.write_all_at(bytes, addr))
            .map_err(|e| failed("write to the process", e))
    }

    /// Calls `func(args...)` in the target with `strings` copied below its stack first; an
    /// argument `Arg::Str(i)` is the address of `strings[i]`, `Arg::Result` that of a word
    /// (zero before the call) the function may write its result to. Returns that word.
    pub fn call(&mut self, func: u64, args: &[Arg], strings: &[&[u8]]) -> Result<u64, String> {
        if self.restorer == 0 {
            return Err("no signal return code to return through".to_string());
        }
        if self.calls == 0 {
            self.tls = self.tls_before();
        }
        // Below the red zone: the strings, the result word, then the frame, 16-byte aligned.
        let mut sp = (self.saved.rsp - 1024) & !0xf;
        let mut addrs = Vec::new();
        for s in strings {
            let mut bytes = s.to_vec();
            bytes.push(0);
            sp = (sp - bytes.len() as u64) & !0xf;
            self.write(sp, &bytes)?;
            addrs.push(sp);
        }
        sp -= 16;
        let result_at = sp;
        self.write(result_at, &0u64.to_ne_bytes())?;
        let back = frame_registers(&going_on(&self.saved, true, self.signal_coming()));
        let frame = frame::build(sp, self.restorer, &back, self.mask, &self.fpu);
        self.write(frame.start, &frame.bytes)?;
        let mut regs = self.saved;
        let values: Vec<u64> = args
            .iter()
            .map(|a| match *a {
                Arg::Int(v) => v,
                Arg::Str(i) => addrs.get(i).copied().unwrap_or(0),
                Arg::Result => result_at,
            })
            .collect();
        let slots = [
            &mut regs.rdi,
            &mut regs.rsi,
            &mut regs.rdx,
            &mut regs.rcx,
            &mut regs.r8,
            &mut regs.r9,
        ];
        for (slot, v) in slots.into_iter().zip(values) {
            *slot = v;
        }
        regs.rsp = frame.start;
        regs.rip = func;
        regs.rax = 0;
        // Not in a system call: the kernel must not restart one when the thread goes on.
        regs.orig_rax = u64::MAX;
        // The direction flag clear, as the ABI wants at a call.
        regs.eflags &= !0x400;
        // Every signal held during the call: a handler run inside it would run inside dlopen
        // or malloc (a program whose handler allocates, safe where it only interrupts pause(),
        // had its heap corrupted). They stay pending and come when the mask is put back.
        self.set_sigmask(u64::MAX)?;
        self.set_regs(&regs)?;
        self.state = State::InCall;
        self.calls += 1;
        let mut signal = 0;
        let start = Instant::now();
        loop {
            // SAFETY: resuming a stopped tracee to its next system call, delivering `signal`.
            unsafe { libc::ptrace(libc::PTRACE_SYSCALL, self.pid, 0, signal) };
            abandon_if_asked(self.calls);
            let left = CALL_PATIENCE.saturating_sub(start.elapsed());
            // Said plainly: the call did not come back (the process may wait in it for a lock
            // another of its threads holds), not that the process did not stop.
            let status = wait_stop(self.pid, left, true).map_err(|e| match e.as_str() {
                NOT_IN_TIME => format!(
                    "memtrace's call into the process did not return in {} s (it may wait there for a lock another of its threads holds); it goes on in the process, which resumes when the call ends",
                    CALL_PATIENCE.as_secs()
                ),
                _ => e,
            })?;
            if !libc::WIFSTOPPED(status) {
                return Err("the process ended during the attach".to_string());
            }
            let sig = libc::WSTOPSIG(status);
            signal = 0;
            if sig == SYSCALL_STOP {
                let now = self.regs()?;
                if now.orig_rax == libc::SYS_rt_sigreturn as u64 && now.rsp == frame.sigreturn_sp {
                    return self.returned(now, result_at);
                }
                continue;
            }
            if status >> 16 != 0 {
                // A stop of ptrace's own (a group stop): nothing to deliver.
                continue;
            }
            if matches!(
                sig,
                libc::SIGSEGV | libc::SIGBUS | libc::SIGILL | libc::SIGFPE
            ) {
                let rip = self.regs().map_or(0, |r| r.rip);
                // Stopped before the signal is delivered: the release puts everything back.
                self.state = State::Stopped;
                return Err(format!("the call faulted (signal {sig}) at {rip:#x}"));
            }
            // Another signal for the program: delivered (its handler runs on this stack and
            // returns here).
            signal = sig;
        }
    }

    /// The call returned into its `rt_sigreturn` (stopped at its entry, `now`): reads the
    /// result word and puts the thread's state back.
    fn returned(&mut self, now: libc::user_regs_struct, result_at: u64) -> Result<u64, String> {
        let mut word = [0u8; 8];
        let read = read_memory(self.pid, result_at, &mut word);
        // A getpid in place of the rt_sigreturn: the registers are put back here, at its
        // end, and the kernel's record of an interrupted sleep stays for its restart.
        // Its instruction pointer back on the restorer's first instruction: should memtrace be
        // gone before it puts the registers back, the thread runs the frame's rt_sigreturn
        // again instead of going on past it with the call's registers.
        let mut swap = now;
        swap.orig_rax = libc::SYS_getpid as u64;
        swap.rip = self.restorer;
        self.set_regs(&swap)?;
        // SAFETY: resuming our tracee to the end of that system call.
        unsafe { libc::ptrace(libc::PTRACE_SYSCALL, self.pid, 0, 0) };
        let status = wait_stop(self.pid, Duration::from_secs(10), false)?;
        if !libc::WIFSTOPPED(status) {
            return Err("the process ended during the attach".to_string());
        }
        self.restore()?;
        self.state = State::Stopped;
        if read != 8 {
            return Err("cannot read the call's result".to_string());
        }
        Ok(u64::from_ne_bytes(word))
    }

    /// Whether the thread stopped where a call may run (see [`Hazards`]). Not inside the C
    /// library, unless it waits in a system call there, and then not under one of its
    /// allocator's functions (a return address into them at the top of the stack, where a
    /// system call's few frames are; that allocator calls nothing outside the library); not
    /// inside an allocator the program brings, nor under one (it may call anything, a lock's
    /// wait or a sleep among them); and nowhere under the loader's functions (a return address
    /// into them in the top `STACK_SCAN` bytes: a constructor or a dl_iterate_phdr callback
    /// runs under them). A call from inside them would take their locks again, or corrupt a
    /// single-threaded program's heap, which they change without one. A stale word that only
    /// looks like such an address makes it wait a little longer, never call unsafely.
    pub fn at_safe_point(&self, hazards: &Hazards) -> bool {
        let inside = |ranges: &[(u64, u64)], a: u64| ranges.iter().any(|&(s, e)| s <= a && a < e);
        // A signal the thread stopped for is delivered first (the calls would drop it).
        if self.signal != 0 {
            return false;
        }
        let in_syscall = self.saved.orig_rax != u64::MAX;
        if inside(&hazards.libc, self.saved.rip) && !in_syscall {
            return false;
        }
        if inside(&hazards.own_allocator, self.saved.rip) {
            return false;
        }
        let mut stack = vec![0u8; STACK_SCAN];
        let n = read_memory(self.pid, self.saved.rsp, &mut stack);
        let words = stack[..n]
            .chunks_exact(8)
            .map(|w| u64::from_ne_bytes(w.try_into().unwrap_or([0; 8])));
        // Outside the C library its allocator is not running (it calls nothing outside it):
        // only a system call's wait can be inside it. Its real callers tell, where the
        // library's tables can walk them; else the top words (stale ones too) do.
        let mut allocator_words = if in_syscall { ALLOCATOR_SCAN / 8 } else { 0 };
        if in_syscall {
            let read = |addr: u64| {
                let at = usize::try_from(addr.checked_sub(self.saved.rsp)?).ok()?;
                let w = stack[..n].get(at..at.checked_add(8)?)?;
                Some(u64::from_ne_bytes(w.try_into().ok()?))
            };
            let callers = hazards.libc_frames.as_ref().and_then(|f| {
                f.callers((self.saved.rip, self.saved.rsp, Some(self.saved.rbp)), read)
            });
            if let Some(callers) = callers {
                if callers.iter().any(|&r| inside(&hazards.allocator, r)) {
                    return false;
                }
                allocator_words = 0;
            }
        }
        // An allocator the program brings calls the C library (a lock's wait, a mapping, a
        // sleep): the first word past the C library's frames that points into the program's
        // code is the return address that tells whether the thread is under it. Only that one:
        // an idle thread's buffers hold stale addresses into the allocator further up, and an
        // idle service with jemalloc never looked safe (4 attaches of 4 gave up).
        let mut own_checked = hazards.own_allocator.is_empty();
        for (i, w) in words.enumerate() {
            // A return address into the signal return code: a handler is running (maybe on
            // a small alternate stack the calls would overflow, maybe over an interrupted
            // malloc): wait until it returns.
            let in_handler = self.restorer != 0 && w == self.restorer;
            let mut under_allocator = i < allocator_words && inside(&hazards.allocator, w);
            if !own_checked && i < OWN_ALLOCATOR_SCAN / 8 && inside(&hazards.program_code, w) {
                own_checked = true;
                under_allocator |= inside(&hazards.own_allocator, w);
            }
            if in_handler || inside(&hazards.loader, w) || under_allocator {
                return false;
            }
        }
        // Another thread waiting in the kernel under the allocator may hold its lock, which
        // the injected calls' allocations would wait for.
        !hazards.libc_frames.as_ref().is_some_and(|f| {
            super::other_threads::one_waits_under_the_allocator(
                self.pid,
                self.pid,
                f,
                &hazards.allocator,
            )
        })
    }

    /// Lets the thread run a moment and stops it again (registers saved anew); a signal that
    /// stopped it is delivered.
    pub fn run_a_little(&mut self) -> Result<(), String> {
        let signal = self.signal;
        // A system call the stop ended goes on as it would have (a bare resume handed the
        // program the EINTR of every such stop: thousands in a wait of a few seconds).
        let coming = signal != 0 || self.signal_coming();
        self.set_regs(&going_on(&self.saved, false, coming))?;
        // SAFETY: resuming a stopped tracee with the signal it stopped for (0: none).
        unsafe { libc::ptrace(libc::PTRACE_CONT, self.pid, 0, signal) };
        let status = match run_delivering_signals(self.pid, Duration::from_micros(1500))? {
            Some(stopped) => stopped,
            None => interrupt_stop(self.pid)?,
        };
        if !libc::WIFSTOPPED(status) {
            return Err("the process ended during the attach".to_string());
        }
        self.signal = stop_signal(status);
        self.snapshot()
    }

    /// Restores the registers and lets the thread go on.
    pub fn release(mut self) -> Result<(), String> {
        self.released = true;
        let r = match self.state {
            State::Stopped => self.restore(),
            State::InCall => Ok(()),
        };
        self.detach();
        r
    }

    /// Detaches: from a stop, with the signal it is for (0: none); during a call, after
    /// stopping it a moment (a running thread cannot be detached), leaving the call to end and
    /// its frame to restore the thread.
    fn detach(&self) {
        let mut signal = 0;
        if self.state == State::InCall {
            // SAFETY: interrupting our own tracee.
            unsafe { libc::ptrace(libc::PTRACE_INTERRUPT, self.pid, 0, 0) };
            match wait_stop(self.pid, Duration::from_secs(2), false) {
                Ok(status) if libc::WIFSTOPPED(status) => signal = stop_signal(status),
                // Gone, or not stopping: the kernel detaches it when memtrace exits.
                _ => return,
            }
        }
        // SAFETY: detaching a stopped tracee; it resumes.
        unsafe { libc::ptrace(libc::PTRACE_DETACH, self.pid, 0, signal) };
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        if !self.released {
            if self.state == State::Stopped {
                let _ = self.restore();
            }
            self.detach();
        }
    }
}

/// `MEMTRACE_TEST_ABANDON_CALL=N`: for the tests of a memtrace that dies during a call, exits
/// at once (no clean-up, as a SIGKILL would) once the Nth call runs in the target.
fn abandon_if_asked(call: u32) {
    let asked = std::env::var("MEMTRACE_TEST_ABANDON_CALL")
        .ok()
        .and_then(|v| v.parse::<u32>().ok());
    if asked == Some(call) {
        // SAFETY: ends this process at once; the kernel detaches its tracees.
        unsafe { libc::_exit(70) };
    }
}

/// Interrupts the thread `pid` and waits for the interrupt's own stop; the status. Stops for
/// signals that come first (every signal stops a traced thread, and one may be waiting since
/// the thread last ran) are passed on to it, so that a thread receiving signals all the time
/// still reaches a stop with no signal held (under a storm of signals every stop carried one,
/// and the attach gave up after 5 s).
/// Lets a running tracee run for `time`, delivering at once each signal that stops it (a tracer
/// sees every one): the interrupt that follows then finds it where it runs, not held at a
/// signal, or at the start of its handler once the interrupt delivers it. A program whose timer
/// fired every 0.5 ms was found there at every try, when the signals waited for the interrupt.
/// A stop of another kind (an event, a group stop) ends the wait: its status.
fn run_delivering_signals(pid: libc::pid_t, time: Duration) -> Result<Option<i32>, String> {
    let until = Instant::now() + time;
    while Instant::now() < until {
        let Some(status) = stopped_now(pid)? else {
            std::thread::sleep(Duration::from_micros(50));
            continue;
        };
        let sig = stop_signal(status);
        if !libc::WIFSTOPPED(status) || sig == 0 {
            return Ok(Some(status));
        }
        // SAFETY: resuming our stopped tracee with the signal it stopped for.
        unsafe { libc::ptrace(libc::PTRACE_CONT, pid, 0, sig) };
    }
    Ok(None)
}

fn interrupt_stop(pid: libc::pid_t) -> Result<i32, String> {
    // SAFETY: interrupting our own tracee.
    unsafe { libc::ptrace(libc::PTRACE_INTERRUPT, pid, 0, 0) };
    let start = Instant::now();
    loop {
        let status = wait_stop(pid, Duration::from_secs(10), false)?;
        let sig = stop_signal(status);
        if !libc::WIFSTOPPED(status) || sig == 0 || start.elapsed() > Duration::from_secs(2) {
            return Ok(status);
        }
        // SAFETY: resuming our stopped tracee with the signal it stopped for.
        unsafe { libc::ptrace(libc::PTRACE_CONT, pid, 0, sig) };
    }
}

/// The signal a stop was for, to deliver when the thread goes on (0 for a stop of ptrace's
/// own: an interrupt, an event).
fn stop_signal(status: i32) -> i32 {
    if status >> 16 == 0 {
        libc::WSTOPSIG(status)
    } else {
        0
    }
}

/// Bytes of a stopped thread's stack read for return addresses (see `at_safe_point`).
const STACK_SCAN: usize = 32 << 10;
/// Bytes of it read for return addresses into the allocator: the frames of a system call made
/// from inside it (an arena lock's wait, sysmalloc's mmap); stale words further up, left by
/// earlier calls, would keep a program that allocates all the time from ever looking safe.
const ALLOCATOR_SCAN: usize = 512;
/// Bytes of it read for return addresses into an allocator the program brings: its code is
/// unknown (a lock's wait, a sleep, a log line under its lock), so further than for the C
/// library's, and still short of most stale words.
const OWN_ALLOCATOR_SCAN: usize = 2048;

/// Where a call injected into the process must not run: address ranges `[start, end)`.
pub struct Hazards {
    /// The C library's code.
    pub libc: Vec<(u64, u64)>,
    /// The C library's allocator functions.
    pub allocator: Vec<(u64, u64)>,
    /// An allocator the program brings (`malloc` defined in the executable, or in a library
    /// such as jemalloc's), which the injected `dlopen`'s own allocations go to.
    pub own_allocator: Vec<(u64, u64)>,
    /// The code of every object but the C library and the loader (the program's, its
    /// libraries', the allocator it brings).
    pub program_code: Vec<(u64, u64)>,
    /// The loader's functions.
    pub loader: Vec<(u64, u64)>,
    /// The C library's unwind tables, which tell a waiting thread's real callers.
    pub libc_frames: Option<super::libc_frames::LibcFrames>,
}

/// Reads the process's memory at `addr` into `buf` (through /proc/PID/mem, which its tracer
/// may read); the bytes read (fewer at the end of a mapping).
pub fn read_memory(pid: libc::pid_t, addr: u64, buf: &mut [u8]) -> usize {
    use std::os::unix::fs::FileExt;
    let Ok(mem) = std::fs::File::open(format!("/proc/{pid}/mem")) else {
        return 0;
    };
    let mut n = 0;
    while n < buf.len() {
        match mem.read_at(&mut buf[n..], addr + n as u64) {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k,
        }
    }
    n
}

/// An argument of a call in the target.
#[derive(Clone, Copy, Debug)]
pub enum Arg {
    Int(u64),
    /// The address of the string of that index.
    Str(usize),
    /// The address of the call's result word.
    Result,
}

/// Where each xsave feature's state ends in the standard form of the area, by feature number
/// (0 for the legacy part's x87 and SSE, and for features the CPU lacks): CPUID leaf 0xD's
/// sub-leaf 0 names the features XCR0 may hold (EDX:EAX), and the sub-leaf of each its size
/// (EAX) and offset (EBX). Only those sub-leaves are asked: each CPUID is a trap to the
/// hypervisor in a virtual machine.
fn xsave_feature_ends() -> [u32; 64] {
    use std::arch::x86_64::__cpuid_count;
    let supported = __cpuid_count(0xD, 0);
    let features = u64::from(supported.eax) | u64::from(supported.edx) << 32;
    let mut ends = [0u32; 64];
    for (f, end) in ends.iter_mut().enumerate().skip(2) {
        if features >> f & 1 != 0 {
            let r = __cpuid_count(0xD, f as u32);
            *end = r.ebx + r.eax;
        }
    }
    ends
}
