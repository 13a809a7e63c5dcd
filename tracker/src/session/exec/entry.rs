//! The interposed exec functions. glibc's execv, execvp, execl* and fexecve reach execve inside
//! libc (not through the PLT), so each public entry point is interposed; the variadic execl,
//! execle and execlp are in exec.c (Rust cannot define C variadic functions), which gathers
//! the arguments and calls [`memtrace_execve_hook`] or [`memtrace_execvpe_hook`].
//!
//! posix_spawn (and so `system`, `popen`, Python's subprocess on some paths) execs inside libc
//! in a new process: nothing here runs, and the child is followed (or not) as any child.

use super::{follow, Target};
use libc::{c_char, c_int};
use std::sync::atomic::{AtomicUsize, Ordering};

type ExecveFn =
    unsafe extern "C" fn(*const c_char, *const *const c_char, *const *const c_char) -> c_int;
type FexecveFn = unsafe extern "C" fn(c_int, *const *const c_char, *const *const c_char) -> c_int;
type ExecveatFn = unsafe extern "C" fn(
    c_int,
    *const c_char,
    *const *const c_char,
    *const *const c_char,
    c_int,
) -> c_int;

static EXECVE: AtomicUsize = AtomicUsize::new(0);
static EXECVPE: AtomicUsize = AtomicUsize::new(0);
static FEXECVE: AtomicUsize = AtomicUsize::new(0);
static EXECVEAT: AtomicUsize = AtomicUsize::new(0);
static CHROOT: AtomicUsize = AtomicUsize::new(0);

fn next(name: &core::ffi::CStr) -> usize {
    // SAFETY: dlsym with a NUL-terminated name; RTLD_NEXT: the definition after this library.
    unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr()) as usize }
}

/// Looks the real functions up (at start-up, so that a vfork child never runs dlsym).
pub fn resolve() {
    for (slot, name) in [
        (&EXECVE, c"execve"),
        (&EXECVPE, c"execvpe"),
        (&FEXECVE, c"fexecve"),
        (&EXECVEAT, c"execveat"),
        (&CHROOT, c"chroot"),
    ] {
        if slot.load(Ordering::Acquire) == 0 {
            slot.store(next(name), Ordering::Release);
        }
    }
}

/// The real function in `slot` (looked up now if start-up did not), or 0.
fn real(slot: &AtomicUsize, name: &core::ffi::CStr) -> usize {
    let f = slot.load(Ordering::Acquire);
    if f != 0 {
        return f;
    }
    let f = next(name);
    slot.store(f, Ordering::Release);
    f
}

fn enosys() -> c_int {
    // SAFETY: this thread's errno slot.
    unsafe { *libc::__errno_location() = libc::ENOSYS };
    -1
}

unsafe fn real_execve(
    path: *const c_char,
    argv: *const *const c_char,
    envp: *const *const c_char,
) -> c_int {
    match real(&EXECVE, c"execve") {
        // SAFETY: the system call has execve's contract.
        0 => unsafe { libc::syscall(libc::SYS_execve, path, argv, envp) as c_int },
        // SAFETY: libc's execve, with the caller's arguments.
        f => unsafe { core::mem::transmute::<usize, ExecveFn>(f)(path, argv, envp) },
    }
}

fn environ() -> *const *const c_char {
    extern "C" {
        static environ: *const *const c_char;
    }
    // SAFETY: libc's environ, read once.
    unsafe { environ }
}

/// The bytes of a C string (empty for null).
unsafe fn text<'a>(p: *const c_char) -> &'a [u8] {
    // A bad pointer is the program's to get EFAULT for from the call, as alone: no name.
    if p.is_null() || !crate::sys::c_string_readable(p, 1 << 16) {
        return b"";
    }
    // SAFETY: the caller passes a NUL-terminated string.
    unsafe { core::ffi::CStr::from_ptr(p) }.to_bytes()
}

/// execve(2), followed.
///
/// # Safety
/// Same contract as libc's execve.
pub unsafe extern "C" fn memtrace_execve_hook(
    path: *const c_char,
    argv: *const *const c_char,
    envp: *const *const c_char,
) -> c_int {
    // SAFETY: the caller's arguments, as execve takes them.
    unsafe {
        follow(Target::Path(path), text(path), argv, envp, |env| {
            real_execve(path, argv, env)
        })
    }
}

/// execvpe(3), followed.
///
/// # Safety
/// Same contract as libc's execvpe.
pub unsafe extern "C" fn memtrace_execvpe_hook(
    file: *const c_char,
    argv: *const *const c_char,
    envp: *const *const c_char,
) -> c_int {
    // SAFETY: the caller's arguments.
    let name = unsafe { text(file) };
    // A name with a slash is a path: no PATH search.
    let target = if name.contains(&b'/') {
        Target::Path(file)
    } else {
        Target::Unknown
    };
    let f = real(&EXECVPE, c"execvpe");
    // SAFETY: the caller's arguments, as execvpe takes them.
    unsafe {
        follow(target, name, argv, envp, |env| {
            if f == 0 {
                return enosys();
            }
            core::mem::transmute::<usize, ExecveFn>(f)(file, argv, env)
        })
    }
}

/// # Safety
/// Same contract as libc's execve.
pub unsafe extern "C" fn execve(
    path: *const c_char,
    argv: *const *const c_char,
    envp: *const *const c_char,
) -> c_int {
    // SAFETY: forwarded.
    unsafe { memtrace_execve_hook(path, argv, envp) }
}

/// # Safety
/// Same contract as libc's execv.
pub unsafe extern "C" fn execv(path: *const c_char, argv: *const *const c_char) -> c_int {
    // SAFETY: forwarded, with the process's environment as execv uses.
    unsafe { memtrace_execve_hook(path, argv, environ()) }
}

/// # Safety
/// Same contract as libc's execvpe.
pub unsafe extern "C" fn execvpe(
    file: *const c_char,
    argv: *const *const c_char,
    envp: *const *const c_char,
) -> c_int {
    // SAFETY: forwarded.
    unsafe { memtrace_execvpe_hook(file, argv, envp) }
}

/// # Safety
/// Same contract as libc's execvp.
pub unsafe extern "C" fn execvp(file: *const c_char, argv: *const *const c_char) -> c_int {
    // SAFETY: forwarded, with the process's environment as execvp uses.
    unsafe { memtrace_execvpe_hook(file, argv, environ()) }
}

/// # Safety
/// Same contract as libc's fexecve.
pub unsafe extern "C" fn fexecve(
    fd: c_int,
    argv: *const *const c_char,
    envp: *const *const c_char,
) -> c_int {
    // The record names the file behind the descriptor.
    let mut link = *b"/proc/self/fd/\0\0\0\0\0\0\0\0\0\0\0";
    let mut digits = [0u8; 10];
    let d = super::decimal(fd.max(0) as u32, &mut digits);
    link[14..14 + d.len()].copy_from_slice(d);
    let mut program = [0u8; 4096];
    let n = {
        let _errno = crate::sys::ErrnoGuard::new();
        crate::sys::readlink(&link, &mut program)
    };
    let f = real(&FEXECVE, c"fexecve");
    // SAFETY: the caller's arguments, as fexecve takes them.
    unsafe {
        follow(
            Target::Behind(link.as_ptr().cast()),
            &program[..n],
            argv,
            envp,
            |env| {
                if f == 0 {
                    return enosys();
                }
                core::mem::transmute::<usize, FexecveFn>(f)(fd, argv, env)
            },
        )
    }
}

/// # Safety
/// Same contract as libc's execveat.
pub unsafe extern "C" fn execveat(
    dirfd: c_int,
    path: *const c_char,
    argv: *const *const c_char,
    envp: *const *const c_char,
    flags: c_int,
) -> c_int {
    let f = real(&EXECVEAT, c"execveat");
    let mut file = [0u8; FILE_AT_LEN];
    // SAFETY: path is the caller's NUL-terminated string (or null).
    let target = match unsafe { file_at(dirfd, path, flags, &mut file) } {
        Some(()) => Target::Behind(file.as_ptr().cast()),
        None => Target::Unknown,
    };
    // SAFETY: the caller's arguments, as execveat takes them.
    unsafe {
        follow(target, text(path), argv, envp, |env| match f {
            0 => libc::syscall(libc::SYS_execveat, dirfd, path, argv, env, flags) as c_int,
            f => core::mem::transmute::<usize, ExecveatFn>(f)(dirfd, path, argv, env, flags),
        })
    }
}

/// Room for the path of the file an execveat names (/proc/self/fd/N/ and a path).
const FILE_AT_LEN: usize = 1024;

/// Writes into `out` a NUL-terminated path to the file execveat(dirfd, path, flags) runs:
/// `path` itself when absolute or from the current directory, else through
/// /proc/self/fd/DIRFD. None when it does not fit.
///
/// # Safety
/// `path` is null or a NUL-terminated string.
unsafe fn file_at(dirfd: c_int, path: *const c_char, flags: c_int, out: &mut [u8]) -> Option<()> {
    // SAFETY: as the caller promises.
    let path = unsafe { text(path) };
    let mut n = 0;
    let mut put = |bytes: &[u8]| -> Option<()> {
        out.get_mut(n..n + bytes.len())?.copy_from_slice(bytes);
        n += bytes.len();
        Some(())
    };
    let from_dir = path.first() != Some(&b'/') && dirfd != libc::AT_FDCWD;
    if from_dir {
        let mut digits = [0u8; 10];
        put(b"/proc/self/fd/")?;
        put(super::decimal(dirfd.max(0) as u32, &mut digits))?;
        if path.is_empty() && flags & libc::AT_EMPTY_PATH != 0 {
            return put(b"\0");
        }
        put(b"/")?;
    }
    put(path)?;
    put(b"\0")
}

// The variadic exec functions, in C (exec.c); exported by session::exports.
extern "C" {
    pub(crate) fn memtrace_execl(path: *const c_char, arg: *const c_char, ...) -> c_int;
    pub(crate) fn memtrace_execle(path: *const c_char, arg: *const c_char, ...) -> c_int;
    pub(crate) fn memtrace_execlp(file: *const c_char, arg: *const c_char, ...) -> c_int;
}

/// Interposed chroot(2): after a successful one, the environment loses the tracker's entries
/// when the tracker is out of the new root's reach (super::after_chroot).
///
/// # Safety
/// Same contract as libc's chroot.
pub unsafe extern "C" fn chroot(path: *const c_char) -> c_int {
    let f = real(&CHROOT, c"chroot");
    if f == 0 {
        return enosys();
    }
    // SAFETY: libc's chroot with the caller's argument.
    let rc = unsafe {
        core::mem::transmute::<usize, unsafe extern "C" fn(*const c_char) -> c_int>(f)(path)
    };
    if rc == 0 {
        super::after_chroot();
    }
    rc
}
