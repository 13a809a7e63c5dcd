//! What memtrace was started with, recorded before anything changes it, so that `memtrace run`
//! hands the program the same as a plain run would: standard descriptors closed, signals ignored
//! or blocked, the environment in its order.
//!
//! Rust's start-up would open /dev/null on a closed standard descriptor and ignore SIGPIPE
//! before `main`, and the program would inherit both. memtrace's entry point is therefore a C
//! `main` (`#![no_main]`) that calls [`record`] first; `record` then sets memtrace itself up as
//! Rust would, except that the /dev/null descriptors close when the program is exec'd.
//! [`command`] makes the program's `Command`, which restores the rest in the child before exec.

use crate::run::environment;
use std::ffi::{c_char, c_int, CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::OnceLock;

struct Inherited {
    /// Signals whose disposition was SIG_IGN.
    ignored: Vec<c_int>,
    /// The signal mask.
    mask: libc::sigset_t,
    /// The environment, entry by entry in its order.
    environment: Vec<Vec<u8>>,
    /// The open-file limit (RLIMIT_NOFILE), when memtrace raised its own (see [`record`]).
    files: Option<libc::rlimit>,
}

static INHERITED: OnceLock<Inherited> = OnceLock::new();

extern "C" {
    static mut environ: *const *const c_char;
}

/// Every signal a disposition can be set for, glibc's two internal ones (32, 33) included:
/// its posix_spawn leaves them ignored in a child, and a program must find them so again.
fn settable_signals() -> impl Iterator<Item = c_int> {
    (1..=libc::SIGRTMAX()).filter(|&s| s != libc::SIGKILL && s != libc::SIGSTOP)
}

/// The kernel's `struct sigaction` for SIG_IGN or SIG_DFL: the handler first, then flags,
/// restorer (where there is one) and mask, all zero. glibc's sigaction refuses 32 and 33.
type KernelAction = [u64; 4];

fn kernel_sigaction(
    sig: c_int,
    new: Option<&KernelAction>,
    old: Option<&mut KernelAction>,
) -> bool {
    let new = new.map_or(std::ptr::null(), |a| a as *const KernelAction);
    let old = old.map_or(std::ptr::null_mut(), |a| a as *mut KernelAction);
    // SAFETY: rt_sigaction(2) with buffers of at least the kernel's struct size (4 words) and
    // the kernel's sigset size (8 bytes); async-signal-safe, as the child needs.
    unsafe { libc::syscall(libc::SYS_rt_sigaction, sig, new, old, 8usize) == 0 }
}

fn is_ignored(sig: c_int) -> bool {
    let mut old: KernelAction = [0; 4];
    kernel_sigaction(sig, None, Some(&mut old)) && old[0] == libc::SIG_IGN as u64
}

fn set_disposition(sig: c_int, to: libc::sighandler_t) {
    let action: KernelAction = [to as u64, 0, 0, 0];
    kernel_sigaction(sig, Some(&action), None);
}

fn is_closed(fd: c_int) -> bool {
    // SAFETY: F_GETFD only reads the descriptor's flags.
    unsafe { libc::fcntl(fd, libc::F_GETFD) == -1 }
}

fn current() -> Inherited {
    // SAFETY: sigemptyset initializes the set; pthread_sigmask with a null new set only reads
    // the calling thread's mask into it.
    let mask = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut set);
        set
    };
    let mut environment = Vec::new();
    // SAFETY: environ is libc's NULL-terminated array of NUL-terminated strings; nothing
    // changes it while it is read (memtrace's main has not started a thread yet, and a report
    // never sets a variable).
    unsafe {
        let mut e = environ;
        while !e.is_null() && !(*e).is_null() {
            environment.push(std::ffi::CStr::from_ptr(*e).to_bytes().to_vec());
            e = e.add(1);
        }
    }
    Inherited {
        ignored: settable_signals().filter(|&s| is_ignored(s)).collect(),
        mask,
        environment,
        files: None,
    }
}

/// The descriptors memtrace needs for itself (its signal handling, the run's files, a report's
/// capture and index): under a lower open-file limit (`ulimit -n 4`, which the program alone
/// runs under) memtrace refused to run the program. Its own soft limit is raised to this, as
/// far as the hard limit lets it; the program gets the limit it was given.
const FILES_NEEDED: u64 = 64;

/// Raises memtrace's own open-file limit when it is below [`FILES_NEEDED`]; the limit it was
/// given, when it did.
fn raise_file_limit() -> Option<libc::rlimit> {
    let mut given = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills the struct.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut given) } != 0
        || given.rlim_cur >= FILES_NEEDED
        || given.rlim_max <= given.rlim_cur
    {
        return None;
    }
    let raised = libc::rlimit {
        rlim_cur: FILES_NEEDED.min(given.rlim_max),
        rlim_max: given.rlim_max,
    };
    // SAFETY: setrlimit with a valid struct.
    (unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0).then_some(given)
}

/// Called first in `main`: records the state, then does for memtrace what Rust's start-up
/// would have done (a standard descriptor is never left free for a file memtrace opens), and
/// lets memtrace wait for its own children even when it was started with SIGCHLD ignored.
pub fn record() {
    let closed = [0, 1, 2].map(is_closed);
    let mut inherited = current();
    inherited.files = raise_file_limit();
    let _ = INHERITED.set(inherited);
    for (fd, closed) in (0..).zip(closed) {
        if closed {
            occupy_with_null(fd);
        }
    }
    // SAFETY: signal(2) with plain dispositions, before any thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        libc::signal(libc::SIGCHLD, libc::SIG_DFL);
    }
}

/// Opens /dev/null at `fd`, closed on exec so that the program finds `fd` closed.
fn occupy_with_null(fd: c_int) {
    // SAFETY: open(2) of a constant path; the lowest free descriptor is `fd` when 0..fd are
    // open (they are taken in order), otherwise dup3 puts it there and the spare is closed.
    unsafe {
        let got = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
        if got >= 0 && got != fd {
            libc::dup3(got, fd, libc::O_CLOEXEC);
            libc::close(got);
        }
    }
}

/// The environment block the child installs before exec: the strings and the pointer array
/// into them, made before the fork (the child may not allocate).
struct EnvBlock {
    _strings: Vec<CString>,
    pointers: Vec<*const c_char>,
}

// SAFETY: the pointers point into `_strings`, owned by the same value and never changed; the
// block is only read (in the forked child).
unsafe impl Send for EnvBlock {}
// SAFETY: as above: shared read-only.
unsafe impl Sync for EnvBlock {}

impl EnvBlock {
    fn new(entries: Vec<Vec<u8>>) -> Result<EnvBlock, String> {
        let strings = entries
            .into_iter()
            .map(CString::new)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| "an environment variable holds a NUL byte".to_string())?;
        let mut pointers: Vec<*const c_char> = strings.iter().map(|s| s.as_ptr()).collect();
        pointers.push(std::ptr::null());
        Ok(EnvBlock {
            _strings: strings,
            pointers,
        })
    }

    /// Makes this block libc's environment (for the exec that follows).
    ///
    /// # Safety
    /// Only in the single-threaded child between fork and exec: nothing else reads environ.
    unsafe fn install(&self) {
        // SAFETY: the caller's; `self` outlives the exec (the closure owning it does).
        unsafe { environ = self.pointers.as_ptr() };
    }
}

/// The program's `Command`: `planned`'s program, arguments, directory and environment
/// changes, with `arg0`; in the child, before exec, the signals memtrace was started with
/// ignored are ignored again (others back to default), its signal mask comes back, and the
/// environment is the inherited one in its order with the changes in place.
pub fn command(planned: &Command, arg0: &OsStr) -> Result<Command, String> {
    let inherited = INHERITED.get_or_init(current);
    let changes: Vec<(Vec<u8>, Option<Vec<u8>>)> = planned
        .get_envs()
        .map(|(k, v)| (k.as_bytes().to_vec(), v.map(|v| v.as_bytes().to_vec())))
        .collect();
    let block = EnvBlock::new(environment::ordered(&inherited.environment, &changes))?;
    let ignored = inherited.ignored.clone();
    let mask = inherited.mask;
    let files = inherited.files;
    let mut cmd = Command::new(planned.get_program());
    cmd.arg0(arg0).args(planned.get_args());
    if let Some(dir) = planned.get_current_dir() {
        cmd.current_dir(dir);
    }
    let restore = move || {
        for sig in settable_signals() {
            let ignore = ignored.contains(&sig);
            if ignore || is_ignored(sig) {
                set_disposition(sig, if ignore { libc::SIG_IGN } else { libc::SIG_DFL });
            }
        }
        // SAFETY: the child is single-threaded (after fork, before exec); `mask` is a valid set.
        unsafe {
            libc::pthread_sigmask(libc::SIG_SETMASK, &mask, std::ptr::null_mut());
            block.install();
        }
        if let Some(files) = files {
            // SAFETY: setrlimit(2), async-signal-safe, with a valid struct.
            unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &files) };
        }
        Ok(())
    };
    // SAFETY: `restore` only makes async-signal-safe calls (rt_sigaction, pthread_sigmask,
    // setrlimit) and a pointer store, and allocates nothing: safe between fork and exec.
    unsafe { cmd.pre_exec(restore) };
    Ok(cmd)
}
