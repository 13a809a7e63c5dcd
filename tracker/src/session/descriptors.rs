//! The program's calls that name a descriptor number: the capture's descriptor lives among the
//! program's, at a number it did not choose (700 or the like), and a program may name that very
//! number for one of its own files. A shell script's `exec 700>>log` is one: bash first asks
//! `fcntl(700, F_GETFD)`, and finding a close-on-exec descriptor at 10 or above it takes it for
//! one of its own, saves it and puts it back after the redirection, so the script's writes to
//! 700 went into the capture (and the capture was damaged). `dup2(fd, 700)` by any program, a
//! `close(700)` of a number it closes blindly, are others.
//!
//! So `close`, `dup`, `dup2`, `dup3` and `fcntl` first move the capture off a number they name
//! (capture::fd's `vacate`); the call then finds the number free, as it would without the
//! tracker, and goes to the C library unchanged. The cost is one comparison per call.
//! What passes no interposed function (`close_range`, `closefrom`, the C library's own calls)
//! is covered by the capture's identity check before every use of its descriptor.

use crate::capture::CAPTURE;
use crate::real;
use crate::sys;
use libc::{c_int, c_long};

/// A system call with the program's arguments, for the moment before the C library's functions
/// are known (errno set as the C library would).
fn raw(number: c_long, args: [usize; 3]) -> c_int {
    // SAFETY: the program's own call, passed on unchanged.
    unsafe { sys::raw_syscall(number, [args[0], args[1], args[2], 0, 0, 0]) as c_int }
}

/// Before an fcntl: the capture leaves `fd`, and the number a duplicate is asked for from
/// (`F_DUPFD` gives the lowest free one from `arg` on: that very number, alone).
fn leave_for(fd: c_int, cmd: c_int, arg: usize) {
    CAPTURE.leave_descriptor(fd);
    if cmd == libc::F_DUPFD || cmd == libc::F_DUPFD_CLOEXEC {
        CAPTURE.leave_descriptor(arg as c_int);
    }
}

/// Interposed close(2).
///
/// # Safety
/// Same contract as libc's close.
pub unsafe extern "C" fn close(fd: c_int) -> c_int {
    CAPTURE.leave_descriptor(fd);
    match real::get().and_then(|r| r.close) {
        // SAFETY: the C library's close, with the program's argument.
        Some(close) => unsafe { close(fd) },
        None => raw(libc::SYS_close, [fd as usize, 0, 0]),
    }
}

/// Interposed dup(2).
///
/// # Safety
/// Same contract as libc's dup.
pub unsafe extern "C" fn dup(fd: c_int) -> c_int {
    CAPTURE.leave_descriptor(fd);
    match real::get().and_then(|r| r.dup) {
        // SAFETY: the C library's dup, with the program's argument.
        Some(dup) => unsafe { dup(fd) },
        None => raw(libc::SYS_dup, [fd as usize, 0, 0]),
    }
}

/// Interposed dup2(2).
///
/// # Safety
/// Same contract as libc's dup2.
pub unsafe extern "C" fn dup2(old: c_int, new: c_int) -> c_int {
    CAPTURE.leave_descriptor(old);
    CAPTURE.leave_descriptor(new);
    match real::get().and_then(|r| r.dup2) {
        // SAFETY: the C library's dup2, with the program's arguments.
        Some(dup2) => unsafe { dup2(old, new) },
        // dup2 onto itself checks the descriptor only (dup3 refuses it; aarch64 has no dup2).
        None if old == new => {
            if raw(libc::SYS_fcntl, [old as usize, libc::F_GETFD as usize, 0]) < 0 {
                -1
            } else {
                old
            }
        }
        None => raw(libc::SYS_dup3, [old as usize, new as usize, 0]),
    }
}

/// Interposed dup3(2).
///
/// # Safety
/// Same contract as libc's dup3.
pub unsafe extern "C" fn dup3(old: c_int, new: c_int, flags: c_int) -> c_int {
    CAPTURE.leave_descriptor(old);
    CAPTURE.leave_descriptor(new);
    match real::get().and_then(|r| r.dup3) {
        // SAFETY: the C library's dup3, with the program's arguments.
        Some(dup3) => unsafe { dup3(old, new, flags) },
        None => raw(libc::SYS_dup3, [old as usize, new as usize, flags as usize]),
    }
}

/// Interposed fcntl(2). Variadic in C: its third argument, when there is one, comes in the
/// register (or slot) a fixed third argument would, and goes on to the C library the same way.
///
/// # Safety
/// Same contract as libc's fcntl.
pub unsafe extern "C" fn fcntl(fd: c_int, cmd: c_int, arg: usize) -> c_int {
    forward_fcntl(real::get().and_then(|r| r.fcntl), fd, cmd, arg)
}

/// fcntl and fcntl64 alike: the capture leaves what the call names, then `real` (the system
/// call before the C library's functions are known) makes it.
fn forward_fcntl(real: Option<real::FcntlFn>, fd: c_int, cmd: c_int, arg: usize) -> c_int {
    leave_for(fd, cmd, arg);
    match real {
        // SAFETY: the C library's fcntl (or fcntl64), with the program's arguments.
        Some(fcntl) => unsafe { fcntl(fd, cmd, arg) },
        None => raw(libc::SYS_fcntl, [fd as usize, cmd as usize, arg]),
    }
}

/// Interposed fcntl64 (what programs built with 64-bit file offsets call; the same call on
/// 64-bit systems).
///
/// # Safety
/// Same contract as libc's fcntl64.
pub unsafe extern "C" fn fcntl64(fd: c_int, cmd: c_int, arg: usize) -> c_int {
    forward_fcntl(
        real::get().and_then(|r| r.fcntl64.or(r.fcntl)),
        fd,
        cmd,
        arg,
    )
}
