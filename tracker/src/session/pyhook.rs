//! A private start-up hook directory for a followed descendant that is CPython: the run's own
//! (MEMTRACE_PYTHON_HOOK, in `memtrace run`'s private directory) is removed when the program
//! `memtrace run` started exits, and a child may start after that (a daemon, a process that
//! outlives its parent) or while it goes. So each such child gets a directory of its own,
//! `/dev/shm/memtrace-py-<digits>` (else under $TMPDIR or /tmp; mode 0700, created afresh: never
//! one that exists), holding
//! the same `sitecustomize.py` and a `_memtrace_tracker.so` link to this library. The hook
//! removes it once imported (MEMTRACE_PYTHON_HOOK_PRIVATE names it).

use crate::sys;

/// The start-up hook `memtrace run` writes (the same file).
const SITECUSTOMIZE: &[u8] =
    include_bytes!("../../../reporter/cli/src/run/bootstrap/sitecustomize.py");

/// Where the directory goes, in order: /dev/shm first (a tmpfs: creating and removing the
/// directory there costs microseconds, where /tmp on ext4 costs milliseconds of every child's
/// start-up), then $TMPDIR or /tmp.
fn bases() -> [Vec<u8>; 2] {
    let tmp = std::env::var_os("TMPDIR")
        .filter(|t| !t.is_empty())
        .map(|t| t.into_encoded_bytes())
        .unwrap_or_else(|| b"/tmp".to_vec());
    [b"/dev/shm".to_vec(), tmp]
}

/// Creates the directory; its path, or None (then the run's hook is used).
pub fn create(tracker: &[u8]) -> Option<Vec<u8>> {
    let pid = sys::getpid();
    for base in bases() {
        match create_in(&base, pid, tracker) {
            Made::Dir(dir) => return Some(dir),
            // The directory was made but could not be filled: no use trying elsewhere.
            Made::Failed => return None,
            Made::NotHere => continue,
        }
    }
    None
}

enum Made {
    Dir(Vec<u8>),
    /// The directory could not be made under this base (absent, not writable).
    NotHere,
    Failed,
}

fn create_in(base: &[u8], pid: u32, tracker: &[u8]) -> Made {
    for attempt in 0..8u64 {
        // The name need not be secret: a directory that exists is never used.
        let salt = (sys::clock_ns(libc::CLOCK_MONOTONIC) / 1000 + attempt) % 10_000;
        let mut dir = base.to_vec();
        dir.extend_from_slice(format!("/memtrace-py-{pid}{salt:04}").as_bytes());
        let Ok(c) = std::ffi::CString::new(dir.clone()) else {
            return Made::NotHere;
        };
        // SAFETY: mkdir(2) of a NUL-terminated path; it never follows a link at the name.
        if unsafe { libc::mkdir(c.as_ptr(), 0o700) } != 0 {
            if std::io::Error::last_os_error().raw_os_error() == Some(libc::EEXIST) {
                continue;
            }
            return Made::NotHere;
        }
        if fill(&dir, tracker).is_some() {
            return Made::Dir(dir);
        }
        remove(&dir);
        return Made::Failed;
    }
    Made::NotHere
}

/// Writes the hook and the link into the new directory.
fn fill(dir: &[u8], tracker: &[u8]) -> Option<()> {
    let path = |name: &[u8]| {
        let mut p = dir.to_vec();
        p.push(b'/');
        p.extend_from_slice(name);
        p.push(0);
        p
    };
    let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    let fd = sys::open(&path(b"sitecustomize.py"), flags, 0o644).ok()?;
    let written = sys::write_all(fd, SITECUSTOMIZE);
    sys::close(fd);
    written.ok()?;
    let target = std::ffi::CString::new(tracker).ok()?;
    let link = path(b"_memtrace_tracker.so");
    // SAFETY: symlink(2) of two NUL-terminated paths.
    let rc = unsafe { libc::symlink(target.as_ptr(), link.as_ptr() as *const libc::c_char) };
    (rc == 0).then_some(())
}

/// Removes a directory this module made (when filling it failed).
fn remove(dir: &[u8]) {
    for name in [&b"sitecustomize.py"[..], b"_memtrace_tracker.so", b""] {
        let mut p = dir.to_vec();
        if !name.is_empty() {
            p.push(b'/');
            p.extend_from_slice(name);
        }
        p.push(0);
        let at = p.as_ptr() as *const libc::c_char;
        // SAFETY: unlink(2) / rmdir(2) of NUL-terminated paths inside the directory made here.
        unsafe {
            if name.is_empty() {
                libc::rmdir(at);
            } else {
                libc::unlink(at);
            }
        }
    }
}
