//! Making a running process call functions, with ptrace and no debugger: seize its main thread,
//! interrupt it, save its registers, and for each call set the arguments, the function's address
//! and a return address of 0 on its stack; the function returns into a fault at address 0,
//! which the tracer catches (the signal is never delivered). Then the registers are put back
//! and the thread released: it goes on exactly where it was, a system call it was in included
//! (restarted by the kernel as after any interruption). x86-64 only.

use std::time::{Duration, Instant};

/// How long one call may take in the target before it is given up.
const CALL_PATIENCE: Duration = Duration::from_secs(20);

/// A seized and stopped thread, released (registers restored) when dropped.
pub struct Stopped {
    pid: libc::pid_t,
    saved: libc::user_regs_struct,
    released: bool,
    /// The signal the thread stopped for, delivered when it runs on (0: none).
    signal: i32,
}

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

/// Waits for a stop of `pid`; its status.
fn wait_stop(pid: libc::pid_t, patience: Duration) -> Result<i32, String> {
    let start = Instant::now();
    loop {
        let mut status = 0;
        // SAFETY: waitpid on a traced thread, with a valid status pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::__WALL | libc::WNOHANG) };
        if r == pid {
            return Ok(status);
        }
        if r < 0 && errno() != libc::EINTR {
            return Err(format!(
                "lost the process: {}",
                std::io::Error::last_os_error()
            ));
        }
        if start.elapsed() > patience {
            return Err("the process did not stop in time".to_string());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

impl Stopped {
    /// Seizes and stops the thread `pid` (the main thread when it is the process id).
    pub fn seize(pid: libc::pid_t) -> Result<Stopped, SeizeError> {
        // SAFETY: PTRACE_SEIZE with no options; it only makes us the tracer.
        let r = unsafe { libc::ptrace(libc::PTRACE_SEIZE, pid, 0, 0) };
        if r != 0 {
            return Err(match errno() {
                libc::ESRCH => SeizeError::Gone,
                libc::EPERM => SeizeError::NotPermitted,
                _ => SeizeError::Other(std::io::Error::last_os_error().to_string()),
            });
        }
        // SAFETY: the thread is ours to trace.
        unsafe { libc::ptrace(libc::PTRACE_INTERRUPT, pid, 0, 0) };
        let status = wait_stop(pid, Duration::from_secs(10)).map_err(SeizeError::Other)?;
        if !libc::WIFSTOPPED(status) {
            return Err(SeizeError::Gone);
        }
        let mut stopped = Stopped {
            pid,
            // SAFETY: plain integers; filled right below.
            saved: unsafe { std::mem::zeroed() },
            released: false,
            signal: stop_signal(status),
        };
        stopped.saved = stopped.regs().map_err(SeizeError::Other)?;
        Ok(stopped)
    }

    fn regs(&self) -> Result<libc::user_regs_struct, String> {
        // SAFETY: plain integers, filled by the kernel.
        let mut regs: libc::user_regs_struct = unsafe { std::mem::zeroed() };
        // SAFETY: a stopped tracee and a buffer of the right type.
        let r = unsafe {
            libc::ptrace(
                libc::PTRACE_GETREGS,
                self.pid,
                0,
                &mut regs as *mut libc::user_regs_struct,
            )
        };
        if r != 0 {
            return Err(format!(
                "cannot read registers: {}",
                std::io::Error::last_os_error()
            ));
        }
        Ok(regs)
    }

    fn set_regs(&self, regs: &libc::user_regs_struct) -> Result<(), String> {
        // SAFETY: a stopped tracee and registers of the right type.
        let r = unsafe {
            libc::ptrace(
                libc::PTRACE_SETREGS,
                self.pid,
                0,
                regs as *const libc::user_regs_struct,
            )
        };
        if r != 0 {
            return Err(format!(
                "cannot set registers: {}",
                std::io::Error::last_os_error()
            ));
        }
        Ok(())
    }

    /// Writes `bytes` at `addr` in the target (word by word, through ptrace).
    fn poke(&self, addr: u64, bytes: &[u8]) -> Result<(), String> {
        for (i, chunk) in bytes.chunks(8).enumerate() {
            let at = addr + 8 * i as u64;
            let mut word = [0u8; 8];
            if chunk.len() < 8 {
                errno_clear();
                // SAFETY: reading a word of the stopped tracee's memory.
                let old = unsafe { libc::ptrace(libc::PTRACE_PEEKDATA, self.pid, at, 0) };
                word = old.to_ne_bytes();
            }
            word[..chunk.len()].copy_from_slice(chunk);
            // SAFETY: writing a word of the stopped tracee's stack, below its stack pointer.
            let r = unsafe {
                libc::ptrace(
                    libc::PTRACE_POKEDATA,
                    self.pid,
                    at,
                    i64::from_ne_bytes(word),
                )
            };
            if r != 0 {
                return Err(format!(
                    "cannot write to the process: {}",
                    std::io::Error::last_os_error()
                ));
            }
        }
        Ok(())
    }

    /// Calls `func(args...)` in the target with `strings` copied below its stack first; an
    /// argument `Arg::Str(i)` is the address of `strings[i]`. Returns the function's `rax`.
    pub fn call(&self, func: u64, args: &[Arg], strings: &[&[u8]]) -> Result<u64, String> {
        // Below the red zone, then the strings, 16-byte aligned.
        let mut sp = (self.saved.rsp - 1024) & !0xf;
        let mut addrs = Vec::new();
        for s in strings {
            let mut bytes = s.to_vec();
            bytes.push(0);
            sp = (sp - bytes.len() as u64) & !0xf;
            self.poke(sp, &bytes)?;
            addrs.push(sp);
        }
        // The return address: 0, a fault the tracer catches.
        sp -= 8;
        self.poke(sp, &0u64.to_ne_bytes())?;
        let mut regs = self.saved;
        let values: Vec<u64> = args
            .iter()
            .map(|a| match *a {
                Arg::Int(v) => v,
                Arg::Str(i) => addrs.get(i).copied().unwrap_or(0),
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
        regs.rsp = sp;
        regs.rip = func;
        regs.rax = 0;
        // Not in a system call: the kernel must not restart one when the thread goes on.
        regs.orig_rax = u64::MAX;
        self.set_regs(&regs)?;
        let mut signal = 0;
        let start = Instant::now();
        loop {
            // SAFETY: resuming a stopped tracee, delivering `signal` (0: none).
            unsafe { libc::ptrace(libc::PTRACE_CONT, self.pid, 0, signal) };
            let left = CALL_PATIENCE.saturating_sub(start.elapsed());
            let status = wait_stop(self.pid, left)?;
            if !libc::WIFSTOPPED(status) {
                return Err("the process ended during the attach".to_string());
            }
            let sig = libc::WSTOPSIG(status);
            let now = self.regs()?;
            if sig == libc::SIGSEGV && now.rip == 0 {
                return Ok(now.rax);
            }
            // Another signal for the program: delivered (its handler runs on this stack and
            // returns here); a stop of ptrace's own: nothing to deliver.
            signal = if status >> 16 == 0 { sig } else { 0 };
            if sig == libc::SIGSEGV || sig == libc::SIGBUS || sig == libc::SIGILL {
                return Err(format!("the call faulted (signal {sig}) at {:#x}", now.rip));
            }
        }
    }

    /// Whether the thread stopped where a call may run. Not inside the C library (`libc`:
    /// its code), unless it waits in a system call there, and then not under one of the
    /// allocator's functions (`allocator`: a return address into them at the top of the
    /// stack, where a system call's few frames are; the allocator calls nothing outside the
    /// library); and nowhere under the loader's (`loader`: a return address into them in the
    /// top `STACK_SCAN` bytes: a constructor or a dl_iterate_phdr callback runs under them). A call from inside
    /// them would take their locks again, or corrupt a single-threaded program's heap, which
    /// they change without one. A stale word that only looks like such an address makes it
    /// wait a little longer, never call unsafely.
    pub fn at_safe_point(
        &self,
        libc: &[(u64, u64)],
        allocator: &[(u64, u64)],
        loader: &[(u64, u64)],
    ) -> bool {
        let inside = |ranges: &[(u64, u64)], a: u64| ranges.iter().any(|&(s, e)| s <= a && a < e);
        let in_syscall = self.saved.orig_rax != u64::MAX;
        if inside(libc, self.saved.rip) && !in_syscall {
            return false;
        }
        let mut stack = vec![0u8; STACK_SCAN];
        let n = read_memory(self.pid, self.saved.rsp, &mut stack);
        let words = stack[..n]
            .chunks_exact(8)
            .map(|w| u64::from_ne_bytes(w.try_into().unwrap_or([0; 8])));
        // Outside the C library the allocator is not running (it calls nothing outside it):
        // only a system call's wait can be inside it.
        let allocator_words = if in_syscall { ALLOCATOR_SCAN / 8 } else { 0 };
        for (i, w) in words.enumerate() {
            if inside(loader, w) || (i < allocator_words && inside(allocator, w)) {
                return false;
            }
        }
        true
    }

    /// Lets the thread run a moment and stops it again (registers saved anew); a signal that
    /// stopped it is delivered.
    pub fn run_a_little(&mut self) -> Result<(), String> {
        let signal = self.signal;
        // SAFETY: resuming a stopped tracee with the signal it stopped for (0: none).
        unsafe { libc::ptrace(libc::PTRACE_CONT, self.pid, 0, signal) };
        std::thread::sleep(Duration::from_micros(1500));
        // SAFETY: interrupting our own tracee.
        unsafe { libc::ptrace(libc::PTRACE_INTERRUPT, self.pid, 0, 0) };
        let status = wait_stop(self.pid, Duration::from_secs(10))?;
        if !libc::WIFSTOPPED(status) {
            return Err("the process ended during the attach".to_string());
        }
        self.signal = stop_signal(status);
        self.saved = self.regs()?;
        Ok(())
    }

    /// Restores the registers and lets the thread go on.
    pub fn release(mut self) -> Result<(), String> {
        self.released = true;
        let r = self.set_regs(&self.saved);
        // SAFETY: detaching a stopped tracee; it resumes.
        unsafe { libc::ptrace(libc::PTRACE_DETACH, self.pid, 0, 0) };
        r
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        if !self.released {
            let _ = self.set_regs(&self.saved);
            // SAFETY: detaching a stopped tracee; it resumes.
            unsafe { libc::ptrace(libc::PTRACE_DETACH, self.pid, 0, 0) };
        }
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

/// Reads the process's memory at `addr` into `buf` (through /proc/PID/mem, which its tracer
/// may read); the bytes read (fewer at the end of a mapping).
fn read_memory(pid: libc::pid_t, addr: u64, buf: &mut [u8]) -> usize {
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

fn errno_clear() {
    // SAFETY: errno is this thread's.
    unsafe { *libc::__errno_location() = 0 };
}

/// An argument of a call in the target.
#[derive(Clone, Copy, Debug)]
pub enum Arg {
    Int(u64),
    /// The address of the string of that index.
    Str(usize),
}
