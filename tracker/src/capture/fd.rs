//! The capture's file descriptor. It lives among the program's own descriptors, and the program
//! may close it (daemons, `closefrom`, `close_range`, a loop closing 3..4095) or `dup2` a file
//! of its own over it; its next `open` then gets that number. The tracker must then never grow,
//! punch or truncate through it: that would change the program's file.
//!
//! So every call that changes the file through the descriptor goes through `CaptureFd::with`,
//! which first checks that the descriptor still is the capture (device and inode taken at open,
//! compared with fstat). When it is not, the number belongs to the program: the tracker neither
//! uses nor closes it, and opens the capture again by its absolute path (no links followed,
//! the same device and inode required). When that fails too, the capture stops and its trailer
//! says why (`trailer_flags::DESCRIPTOR_LOST`). The shared mapping needs no descriptor: what was
//! already reserved stays writable, only growing the file needs one.
//!
//! Why not (only) hook close/close_range/dup2/dup3: glibc's `closefrom` and `posix_spawn`'s file
//! actions call the system call inside libc, and a program may call `syscall(SYS_close_range)`
//! itself; none of these pass through an interposed function. The identity check sees every
//! way the descriptor can be lost and costs one fstat per file growth (every 4 MiB or more of
//! capture), not a test on each of the program's `close` calls. What it cannot see is another
//! thread of the program closing the descriptor and opening a file in the microseconds between
//! the check and the call; a program doing that closes descriptors under its own threads' feet.

use crate::lock::SpinLock;
use crate::sys;
use libc::c_int;
use std::sync::atomic::{AtomicI32, Ordering};

/// What the capture file is: the identity of the file and a path to open it again by.
struct Identity {
    dev: u64,
    ino: u64,
    /// Absolute, NUL-terminated; empty when unknown.
    path: Vec<u8>,
}

pub struct CaptureFd {
    fd: AtomicI32,
    id: SpinLock<Identity>,
}

impl CaptureFd {
    pub const fn new() -> CaptureFd {
        CaptureFd {
            fd: AtomicI32::new(-1),
            id: SpinLock::new(Identity {
                dev: 0,
                ino: 0,
                path: Vec::new(),
            }),
        }
    }

    /// Takes `fd` (just opened from `opened`) as the capture's descriptor. Runs when a capture
    /// starts, outside the hooks (it allocates the path). Err(errno) when fstat fails.
    pub fn set(&self, fd: c_int, opened: &[u8]) -> Result<(), c_int> {
        let (dev, ino) = sys::file_id(fd)?;
        let path = absolute_path(fd, opened);
        let mut id = self.id.lock();
        *id = Identity { dev, ino, path };
        self.fd.store(fd, Ordering::Relaxed);
        Ok(())
    }

    /// Calls `f` with a descriptor of the capture file, checked to be one just before; None
    /// (without calling `f`) when the program took the number and the file cannot be opened
    /// again. Rare (file growth, the end): it takes a lock and an fstat.
    pub fn with<R>(&self, f: impl FnOnce(c_int) -> R) -> Option<R> {
        let id = self.id.lock();
        let fd = self.fd.load(Ordering::Relaxed);
        if fd >= 0 && sys::file_id(fd) == Ok((id.dev, id.ino)) {
            return Some(f(fd));
        }
        // The number is the program's now (or nothing): forget it, never close it.
        self.fd.store(-1, Ordering::Relaxed);
        let fd = reopen(&id)?;
        self.fd.store(fd, Ordering::Relaxed);
        Some(f(fd))
    }

    /// Whether `fd` is the capture descriptor's number: one load, asked by the program's calls
    /// on descriptors (session::descriptors).
    #[inline]
    pub fn holds_number(&self, fd: c_int) -> bool {
        fd >= 0 && self.fd.load(Ordering::Relaxed) == fd
    }

    /// The program names the capture's descriptor number (a `dup2` onto it, an `fcntl` probing
    /// it): the number is the program's to use, as it would be free without the tracker. The
    /// capture moves to another number first (or, when none is free, lets this one go and
    /// opens the file again when it next needs it), so that the program's call finds the
    /// number free. A number that is no longer the capture (the program took it already) is
    /// left alone.
    pub fn vacate(&self, fd: c_int) {
        let id = self.id.lock();
        if self.fd.load(Ordering::Relaxed) != fd || sys::file_id(fd) != Ok((id.dev, id.ino)) {
            return;
        }
        match sys::move_fd_high(fd) {
            Some(moved) if moved != fd => self.fd.store(moved, Ordering::Relaxed),
            _ => {
                sys::close(fd);
                self.fd.store(-1, Ordering::Relaxed);
            }
        }
    }

    /// Closes the descriptor if it still is the capture's (a program's file at that number is
    /// left alone); the tracker no longer has one afterwards.
    pub fn close(&self) {
        let id = self.id.lock();
        let fd = self.fd.swap(-1, Ordering::Relaxed);
        if fd >= 0 && sys::file_id(fd) == Ok((id.dev, id.ino)) {
            sys::close(fd);
        }
    }

    pub fn lock_for_fork(&self) {
        self.id.raw_lock();
    }

    pub fn unlock_after_fork(&self) {
        self.id.raw_unlock();
    }
}

/// Opens the capture again by its path: a new descriptor, moved out of the program's way, of
/// the very file (device and inode) the capture was; None otherwise.
fn reopen(id: &Identity) -> Option<c_int> {
    if id.path.is_empty() {
        return None;
    }
    // No link followed, no blocking on something else put at the path, never created.
    let flags = libc::O_RDWR | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY;
    let fd = sys::open(&id.path, flags | libc::O_CLOEXEC, 0).ok()?;
    if sys::file_id(fd) != Ok((id.dev, id.ino)) {
        sys::close(fd);
        return None;
    }
    sys::move_fd_high(fd)
}

/// The capture's absolute path, NUL-terminated: what /proc says `fd` is, else `opened` made
/// absolute (the program may change its directory before the capture must be reopened).
fn absolute_path(fd: c_int, opened: &[u8]) -> Vec<u8> {
    let link = format!("/proc/self/fd/{fd}\0");
    let mut buf = vec![0u8; 4096];
    let n = sys::readlink(link.as_bytes(), &mut buf);
    let mut path = if n > 0 && n < buf.len() && buf[0] == b'/' && !buf[..n].ends_with(b" (deleted)")
    {
        buf.truncate(n);
        buf
    } else if opened.first() == Some(&b'/') {
        opened.to_vec()
    } else {
        match std::env::current_dir() {
            Ok(dir) => {
                let mut p = std::os::unix::ffi::OsStrExt::as_bytes(dir.as_os_str()).to_vec();
                p.push(b'/');
                p.extend_from_slice(opened);
                p
            }
            Err(_) => return Vec::new(),
        }
    };
    path.push(0);
    path
}
