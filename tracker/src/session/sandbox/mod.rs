//! Programs that sandbox themselves with seccomp (OpenSSH's privilege-separated child, file(1),
//! libseccomp users, browsers' renderers): once their filter is in place, a system call it does
//! not allow kills the process (or fails, or traps into the program's handler). The tracker
//! makes system calls of its own (a new thread's id, growing the capture, the status file,
//! /proc reads), so a filter written for the program alone would kill it under memtrace.
//!
//! `prctl(PR_SET_SECCOMP)` and `syscall(SYS_seccomp)` are interposed. Before the filter goes
//! in, it is run ([`bpf`]) on each system call the tracker may still make: if it allows them
//! all (a deny-list, a permissive filter), recording goes on. Otherwise (an allow-list, strict
//! mode, a program that cannot be read) the capture is finished there, `memtrace run` is told
//! why, and from then on the tracker makes no system call in this process: no capture for a
//! fork child, no tracker for an exec'd image (its environment loses memtrace's variables), no
//! getpid in the signal hooks. The program then runs exactly as it would without memtrace.
//!
//! A filter installed without these functions (a raw `syscall` instruction), or inherited from
//! the parent at start, is not seen.

pub mod bpf;

use crate::{lifecycle, sys};
use bpf::{Call, Insn};
use libc::{c_int, c_long, c_ulong};

/// The system calls the tracker may make after start, with arguments as it makes them (a
/// filter may look at the arguments: mmap's protection, openat's flags, fcntl's command).
/// Pointers and descriptors are plausible values.
fn tracker_calls() -> impl Iterator<Item = (c_long, [u64; 6])> {
    const PTR: u64 = 0x7f00_0000_0000;
    const FD: u64 = 700;
    let at_fdcwd = libc::AT_FDCWD as i64 as u64;
    let rw = (libc::PROT_READ | libc::PROT_WRITE) as u64;
    let anon = (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS) as u64;
    let read_only = (libc::O_RDONLY | libc::O_CLOEXEC) as u64;
    let append = (libc::O_WRONLY | libc::O_CREAT | libc::O_APPEND | libc::O_CLOEXEC) as u64;
    [
        (libc::SYS_gettid, [0; 6]),
        (libc::SYS_getpid, [0; 6]),
        (libc::SYS_getppid, [0; 6]),
        (libc::SYS_mmap, [0, 1 << 20, rw, anon, u64::MAX, 0]),
        (
            libc::SYS_mmap,
            [0, 1 << 20, rw, libc::MAP_SHARED as u64, FD, 0],
        ),
        (libc::SYS_munmap, [PTR, 1 << 20, 0, 0, 0, 0]),
        (
            libc::SYS_mremap,
            [PTR, 1 << 20, 2 << 20, libc::MREMAP_MAYMOVE as u64, 0, 0],
        ),
        (
            libc::SYS_madvise,
            [PTR, 1 << 20, libc::MADV_DONTNEED as u64, 0, 0, 0],
        ),
        (
            libc::SYS_madvise,
            [PTR, 1 << 20, libc::MADV_RANDOM as u64, 0, 0, 0],
        ),
        (libc::SYS_mincore, [PTR, 4096, PTR, 0, 0, 0]),
        (libc::SYS_mprotect, [PTR, 4096, rw, 0, 0, 0]),
        (libc::SYS_ftruncate, [FD, 1 << 24, 0, 0, 0, 0]),
        (libc::SYS_fallocate, [FD, 0, 0, 1 << 24, 0, 0]),
        (libc::SYS_fstat, [FD, PTR, 0, 0, 0, 0]),
        (libc::SYS_fstatfs, [FD, PTR, 0, 0, 0, 0]),
        (libc::SYS_sync_file_range, [FD, 0, 1 << 20, 2, 0, 0]),
        (libc::SYS_pwritev, [FD, PTR, 1, 0, 0, 0]),
        (libc::SYS_openat, [at_fdcwd, PTR, read_only, 0, 0, 0]),
        (libc::SYS_openat, [at_fdcwd, PTR, append, 0o600, 0, 0]),
        (libc::SYS_read, [3, PTR, 4096, 0, 0, 0]),
        (libc::SYS_write, [3, PTR, 64, 0, 0, 0]),
        (libc::SYS_close, [3, 0, 0, 0, 0, 0]),
        (libc::SYS_readlinkat, [at_fdcwd, PTR, PTR, 4096, 0, 0]),
        // The limits the capture keeps within (file size, address space), the stack's size
        // (native unwinding) and the open files (the capture's descriptor).
        (
            libc::SYS_prlimit64,
            [0, libc::RLIMIT_FSIZE as u64, 0, PTR, 0, 0],
        ),
        (
            libc::SYS_prlimit64,
            [0, libc::RLIMIT_AS as u64, 0, PTR, 0, 0],
        ),
        (
            libc::SYS_prlimit64,
            [0, libc::RLIMIT_STACK as u64, 0, PTR, 0, 0],
        ),
        (
            libc::SYS_prlimit64,
            [0, libc::RLIMIT_NOFILE as u64, 0, PTR, 0, 0],
        ),
        (
            libc::SYS_getrlimit,
            [libc::RLIMIT_NOFILE as u64, PTR, 0, 0, 0, 0],
        ),
        (
            libc::SYS_fcntl,
            [3, libc::F_DUPFD_CLOEXEC as u64, FD, 0, 0, 0],
        ),
        (libc::SYS_fcntl, [3, libc::F_GETFD as u64, 0, 0, 0, 0]),
        (
            libc::SYS_rt_sigprocmask,
            [libc::SIG_BLOCK as u64, PTR, PTR, 8, 0, 0],
        ),
        (
            libc::SYS_rt_sigprocmask,
            [libc::SIG_SETMASK as u64, PTR, 0, 8, 0, 0],
        ),
        (
            libc::SYS_rt_sigaction,
            [libc::SIGABRT as u64, 0, PTR, 8, 0, 0],
        ),
        (
            libc::SYS_futex,
            [
                PTR,
                (libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG) as u64,
                2,
                0,
                0,
                0,
            ],
        ),
        (
            libc::SYS_futex,
            [
                PTR,
                (libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG) as u64,
                1,
                0,
                0,
                0,
            ],
        ),
        (libc::SYS_sched_yield, [0; 6]),
        (libc::SYS_membarrier, [0; 6]),
    ]
    .into_iter()
}

/// The architecture a filter checks first (AUDIT_ARCH_*).
#[cfg(target_arch = "x86_64")]
const ARCH: u32 = 0xc000_003e;
#[cfg(target_arch = "aarch64")]
const ARCH: u32 = 0xc000_00b7;

/// Whether the filter `prog` lets every call of [`tracker_calls`] through.
fn allows_the_tracker(prog: &[Insn]) -> bool {
    tracker_calls().all(|(nr, args)| {
        let call = Call {
            nr: nr as i32,
            arch: ARCH,
            instruction_pointer: 0x7f00_0000_1000,
            args,
        };
        bpf::allows(prog, &call)
    })
}

/// `struct sock_fprog`.
#[repr(C)]
struct Program {
    len: u16,
    filter: *const Insn,
}

/// The filter a `struct sock_fprog` at `p` names, when every byte of it is mapped; None
/// otherwise (the kernel will refuse it, or a program this cannot read).
///
/// # Safety
/// `p` is what the program passed as the filter: possibly invalid, checked before any read.
unsafe fn program_at(p: usize) -> Option<Vec<Insn>> {
    if p == 0 || !readable(p, core::mem::size_of::<Program>()) {
        return None;
    }
    // SAFETY: the struct's bytes are mapped (checked above); the program is single-threaded
    // here or owns the struct it passes.
    let prog = unsafe { core::ptr::read_unaligned(p as *const Program) };
    let len = usize::from(prog.len);
    let filter = prog.filter as usize;
    let bytes = len * core::mem::size_of::<Insn>();
    if len == 0 || len > bpf::MAX_INSNS || !filter.is_multiple_of(4) || !readable(filter, bytes) {
        return None;
    }
    // SAFETY: `len` instructions at `filter`, every page of them mapped, aligned as the
    // kernel reads them; copied before the program's call goes on.
    Some(unsafe { core::slice::from_raw_parts(prog.filter, len) }.to_vec())
}

/// Whether every page of `[p, p + len)` is mapped.
fn readable(p: usize, len: usize) -> bool {
    let page = sys::page_size();
    let Some(end) = p.checked_add(len) else {
        return false;
    };
    let mut at = p & !(page - 1);
    while at < end {
        if !sys::is_mapped(at) {
            return false;
        }
        at += page;
    }
    true
}

/// prctl's PR_SET_SECCOMP modes and seccomp(2)'s operations.
const MODE_STRICT: c_ulong = 1;
const MODE_FILTER: c_ulong = 2;
const SET_MODE_STRICT: c_ulong = 0;
const SET_MODE_FILTER: c_ulong = 1;

/// A filter is about to be installed (`filter`: the address of its `sock_fprog`; None: strict
/// mode). Recording stops first unless the filter allows every call of the tracker's.
///
/// # Safety
/// `filter` is what the program passed (checked before it is read).
unsafe fn before_filter(filter: Option<usize>) {
    if sys::sandboxed() {
        return;
    }
    // SAFETY: as the caller promises.
    let prog = filter.and_then(|p| unsafe { program_at(p) });
    if prog.is_some_and(|p| allows_the_tracker(&p)) {
        return;
    }
    lifecycle::stop_before_sandbox();
}

/// Interposed prctl(2): a seccomp filter or strict mode is looked at first (see the module's
/// doc); every other option goes straight to the kernel, as glibc's prctl does.
///
/// # Safety
/// Same contract as libc's prctl (variadic: its four further arguments are read as the
/// kernel does, whether given or not).
pub unsafe extern "C" fn prctl(
    option: c_int,
    a2: c_ulong,
    a3: c_ulong,
    a4: c_ulong,
    a5: c_ulong,
) -> c_int {
    if option == libc::PR_SET_SECCOMP {
        match a2 {
            // SAFETY: the program's own argument, checked before it is read.
            MODE_FILTER => unsafe { before_filter(Some(a3 as usize)) },
            // SAFETY: no argument is read.
            MODE_STRICT => unsafe { before_filter(None) },
            // Any other mode: the kernel refuses it.
            _ => {}
        }
    }
    let args = [option as c_ulong, a2, a3, a4, a5, 0].map(|a| a as usize);
    // SAFETY: prctl(2) with the program's arguments, as glibc's prctl makes it.
    unsafe { sys::raw_syscall(libc::SYS_prctl, args) as c_int }
}

/// The part of the interposed syscall(2) (exports.rs: the entry point tests the number and
/// makes every other call itself) for SYS_seccomp: its filter or strict mode is looked at first.
///
/// # Safety
/// Same contract as libc's syscall for SYS_seccomp.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub unsafe extern "C" fn seccomp_call(
    _nr: c_long,
    op: c_ulong,
    flags: c_ulong,
    args: c_ulong,
) -> c_long {
    match op {
        // SAFETY: the program's own argument, checked before it is read.
        SET_MODE_FILTER => unsafe { before_filter(Some(args as usize)) },
        // SAFETY: no argument is read.
        SET_MODE_STRICT => unsafe { before_filter(None) },
        _ => {}
    }
    let call = [op, flags, args, 0, 0, 0].map(|a| a as usize);
    // SAFETY: seccomp(2) with the program's arguments, as glibc's syscall makes it.
    unsafe { sys::raw_syscall(libc::SYS_seccomp, call) }
}

#[cfg(test)]
mod tests {
    use super::bpf::build::*;
    use super::*;

    #[test]
    fn an_allow_list_for_the_program_alone_does_not_allow_the_tracker() {
        // What a small C program needs (as tests/programs/sandboxed.c's list).
        let numbers = [
            libc::SYS_read,
            libc::SYS_write,
            libc::SYS_mmap,
            libc::SYS_munmap,
        ];
        let program_alone = allow_list(ARCH, &numbers.map(|n| n as u32));
        assert!(!allows_the_tracker(&program_alone));
        // A deny-list of one call the tracker never makes.
        assert!(allows_the_tracker(&deny_list(
            &[libc::SYS_ptrace as u32],
            KILL
        )));
        // ftruncate failed with EPERM: the capture could not grow.
        let no_ftruncate = deny_list(&[libc::SYS_ftruncate as u32], ERRNO);
        assert!(!allows_the_tracker(&no_ftruncate));
    }

    #[test]
    fn a_filter_that_is_not_mapped_is_not_read() {
        // SAFETY: addresses checked before any read.
        unsafe {
            assert!(program_at(0).is_none());
            assert!(program_at(8).is_none());
        }
        let insns = [ALLOW];
        let prog = Program {
            len: 1,
            filter: insns.as_ptr(),
        };
        // SAFETY: a valid sock_fprog on this stack.
        let read = unsafe { program_at(&prog as *const Program as usize) };
        assert_eq!(read.as_deref(), Some(&insns[..]));
        let bad = Program {
            len: 1,
            filter: 8 as *const Insn,
        };
        // SAFETY: as above; its filter is checked before it is read.
        assert!(unsafe { program_at(&bad as *const Program as usize) }.is_none());
    }
}
