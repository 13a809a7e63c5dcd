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
