//! A private start-up hook directory for a followed descendant that is CPython: the run's own
//! (MEMTRACE_PYTHON_HOOK, in `memtrace run`'s private directory) is removed when the program
//! `memtrace run` started exits, and a child may start after that (a daemon, a process that
//! outlives its parent) or while it goes. So each such child gets a directory of its own,
//! `/dev/shm/memtrace-py-<digits>` (else under $TMPDIR or /tmp; mode 0700, created afresh: never
//! one that exists), holding
//! the same `sitecustomize.py` and a `_memtrace_tracker.so` link to this library, and the
//! compiled hook of the run's directory when it has one ([`copy_compiled`]). The hook removes
//! it once imported (MEMTRACE_PYTHON_HOOK_PRIVATE names it).

use crate::sys;

/// The start-up hook `memtrace run` writes (the same file).
const SITECUSTOMIZE: &[u8] =
    include_bytes!("../../../reporter/cli/src/run/bootstrap/sitecustomize.py");

/// Where the directory goes, in order: /dev/shm first (a tmpfs: creating and removing the
/// directory there costs microseconds, where /tmp on ext4 costs milliseconds of every child's
/// start-up), then $TMPDIR or /tmp. Not a $TMPDIR with a `:`: the directory goes on
/// PYTHONPATH, which `:` separates.
fn bases() -> [Vec<u8>; 2] {
    let tmp = std::env::var_os("TMPDIR")
        .filter(|t| !t.is_empty() && !t.as_encoded_bytes().contains(&b':'))
        .map(|t| t.into_encoded_bytes())
        .unwrap_or_else(|| b"/tmp".to_vec());
    [b"/dev/shm".to_vec(), tmp]
}

/// Creates the directory; its path, or None (then the run's hook is used). `run_hook` is the
/// run's hook directory, whose compiled hook is copied.
pub fn create(tracker: &[u8], run_hook: Option<&[u8]>) -> Option<Vec<u8>> {
    let pid = sys::getpid();
    for base in bases() {
        match create_in(&base, pid, tracker) {
            Made::Dir(dir) => {
                if let Some(run_hook) = run_hook.filter(|h| !h.is_empty()) {
                    copy_compiled(run_hook, &dir);
                }
                let _ = MADE.set((pid, dir.clone()));
                return Some(dir);
            }
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
    // The owner first: a child killed from here on leaves a directory `memtrace run` knows to
    // remove (one killed before has its pid in the directory's name). Best effort: without it
    // a directory left by a killed child stays (no harm otherwise).
    let owner = owner_line();
    if let Ok(fd) = sys::open(&path(OWNER), flags, 0o600) {
        let _ = sys::write_all(fd, &owner);
        sys::close(fd);
    }
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

/// The file naming the process that made the directory, as `memtrace run`'s own private
/// directories name theirs (reporter/cli/src/run/stale.rs): `memtrace run` removes the
/// directories of children killed before their interpreter imported the hook (which removes its
/// directory itself).
const OWNER: &[u8] = b"owner";

/// `pid start-time pid-namespace`: the start time is /proc/self/stat's 22nd field (clock ticks
/// since boot), which tells a reused pid; the namespace, which pids the line is about.
fn owner_line() -> Vec<u8> {
    let mut stat = [0u8; 1024];
    let n = sys::read_file(b"/proc/self/stat\0", &mut stat);
    // The fields after the command's closing parenthesis, the third of them field 3.
    let after = stat[..n]
        .iter()
        .rposition(|&b| b == b')')
        .map_or(&[][..], |i| &stat[i + 1..n]);
    let start = after
        .split(|&b| b == b' ')
        .filter(|f| !f.is_empty())
        .nth(22 - 3)
        .unwrap_or(b"0");
    let mut ns = [0u8; 64];
    let len = sys::readlink(b"/proc/self/ns/pid\0", &mut ns);
    let mut line = format!("{} ", sys::getpid()).into_bytes();
    line.extend_from_slice(start);
    line.push(b' ');
    line.extend_from_slice(&ns[..len]);
    line.push(b'\n');
    line
}

/// The most bytes a compiled hook (or the hook's source) is read with: some 9 KiB today.
const MAX_HOOK_FILE: usize = 64 << 10;

/// PEP 552 flags of an unchecked hash-based pyc, the form `memtrace run` keeps compiled hooks
/// in (reporter/cli/src/run/bootstrap/compiled.rs): the interpreter loads it without comparing
/// it with the source, whose modification time differs in every directory.
const UNCHECKED_HASH_PYC: [u8; 4] = [1, 0, 0, 0];

/// Copies into `dir/__pycache__` the compiled hooks `memtrace run` put in the run's hook
/// directory (`run_hook/__pycache__/sitecustomize.<tag>.pyc`, unchecked hash-based, checked
/// by it), so that the child's interpreter loads the hook rather than compiling it (some 1.5 ms
/// of each child's start). Only when the run's hook is this library's own `sitecustomize.py`
/// (a compiled hook holds the code of the hook it was made from). Best effort: whatever fails
/// leaves the interpreter to compile the hook, as before.
fn copy_compiled(run_hook: &[u8], dir: &[u8]) {
    let mut buf = vec![0u8; MAX_HOOK_FILE];
    let source = join(run_hook, &[b"sitecustomize.py"]);
    let n = sys::read_file(&source, &mut buf);
    if buf[..n] != *SITECUSTOMIZE {
        return;
    }
    let mut made = false;
    for name in names_in(&join(run_hook, &[b"__pycache__"])) {
        if !(name.starts_with(b"sitecustomize.") && name.ends_with(b".pyc")) {
            continue;
        }
        let n = sys::read_file(&join(run_hook, &[b"__pycache__", &name]), &mut buf);
        if n <= 16 || n == MAX_HOOK_FILE || buf[4..8] != UNCHECKED_HASH_PYC {
            continue;
        }
        let target = join(dir, &[b"__pycache__"]);
        // SAFETY: mkdir(2) of a NUL-terminated path inside the directory made here.
        if !made && unsafe { libc::mkdir(target.as_ptr() as *const libc::c_char, 0o700) } != 0 {
            return;
        }
        made = true;
        let flags =
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC;
        if let Ok(out) = sys::open(&join(dir, &[b"__pycache__", &name]), flags, 0o600) {
            // A file cut short (a full disk) is read by the interpreter as a bad pyc, which it
            // then compiles over: no harm.
            let _ = sys::write_all(out, &buf[..n]);
            sys::close(out);
        }
    }
}

/// The names in the directory at `dir` (NUL-terminated), `.` and `..` left out; none when it
/// cannot be read.
fn names_in(dir: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let Ok(fd) = sys::open(dir, libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC, 0) else {
        return out;
    };
    let mut buf = [0u8; 4096];
    loop {
        // SAFETY: getdents64(2) into a buffer of its length, on a directory descriptor.
        let got = unsafe { libc::syscall(libc::SYS_getdents64, fd, buf.as_mut_ptr(), buf.len()) };
        if got <= 0 {
            break;
        }
        out.extend(
            dirents(&buf[..got as usize])
                .filter(|n| *n != b"." && *n != b"..")
                .map(<[u8]>::to_vec),
        );
    }
    sys::close(fd);
    out
}

/// The names in a buffer of `linux_dirent64` records.
fn dirents(mut buf: &[u8]) -> impl Iterator<Item = &[u8]> {
    core::iter::from_fn(move || {
        // d_ino (8), d_off (8), d_reclen (2), d_type (1), then the NUL-terminated name.
        let len = usize::from(u16::from_ne_bytes([*buf.get(16)?, *buf.get(17)?]));
        let record = buf.get(..len).filter(|_| len > 19)?;
        buf = &buf[len..];
        let name = &record[19..];
        Some(&name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())])
    })
}

/// `base/part/part...`, NUL-terminated.
fn join(base: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut p = base.to_vec();
    for part in parts {
        p.push(b'/');
        p.extend_from_slice(part);
    }
    p.push(0);
    p
}

/// Removes a directory this module made: when filling it failed, or at the end of a process
/// whose interpreter never imported the hook (which removes it itself).
fn remove(dir: &[u8]) {
    for name in [&b"sitecustomize.py"[..], b"_memtrace_tracker.so", OWNER] {
        sys::unlink(&join(dir, &[name]));
    }
    let cache = join(dir, &[b"__pycache__"]);
    for name in names_in(&cache) {
        sys::unlink(&join(dir, &[b"__pycache__", &name]));
    }
    for at in [cache, join(dir, &[])] {
        // SAFETY: rmdir(2) of a NUL-terminated path inside (or of) the directory made here.
        unsafe { libc::rmdir(at.as_ptr() as *const libc::c_char) };
    }
}

/// The directory this process made (its pid: a forked child has the same memory) until the
/// process ends.
static MADE: std::sync::OnceLock<(u32, Vec<u8>)> = std::sync::OnceLock::new();

/// At the end of the process that made a directory: removes it if it is still there, as when
/// the interpreter never imported the hook (`python --version`, `-S`, `-I`, a bad option).
pub fn remove_unused() {
    if let Some((pid, dir)) = MADE.get() {
        if *pid == sys::getpid() {
            remove(dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `linux_dirent64` record as getdents64 lays it out, padded to 8 bytes.
    fn record(name: &[u8]) -> Vec<u8> {
        let len = (19 + name.len() + 1).next_multiple_of(8);
        let mut r = vec![0u8; len];
        r[16..18].copy_from_slice(&(len as u16).to_ne_bytes());
        r[19..19 + name.len()].copy_from_slice(name);
        r
    }

    #[test]
    fn directory_records_give_their_names() {
        let mut buf = Vec::new();
        for name in [&b"."[..], b"..", b"sitecustomize.cpython-311.pyc", b"x"] {
            buf.extend(record(name));
        }
        let names: Vec<&[u8]> = dirents(&buf).collect();
        assert_eq!(
            names,
            [&b"."[..], b"..", b"sitecustomize.cpython-311.pyc", b"x"]
        );
        // A record cut short ends the list.
        assert_eq!(dirents(&buf[..buf.len() - 3]).count(), 3);
        assert_eq!(dirents(&[]).count(), 0);
    }

    #[test]
    fn joined_paths_end_in_nul() {
        assert_eq!(join(b"/a", &[b"b", b"c"]), b"/a/b/c\0");
    }
}
