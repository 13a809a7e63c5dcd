//! The private directory of one `memtrace run`, for the Python start-up hook and the tracker's
//! status file: created in $TMPDIR under an unpredictable name with mode 0700 whatever the
//! umask, so that no other user can plant, read or swap what memtrace and the tracker put there.
//! Removed with everything in it after the run. The status file is still read defensively (no
//! link followed, never blocking, bounded, control characters shown as escapes).
//!
//! A `memtrace run` killed with SIGKILL cannot remove its directory: each directory holds an
//! `owner` file (memtrace's pid and start time), and the next run removes the directories of
//! this user whose owner is gone (see `stale`).

use super::stale;
use super::RunError;
use std::io::Read;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Bytes a private directory must have room for (the start-up hook's files take less).
const ROOM: usize = 64 * 1024;

/// The most of the status file shown: the tracker writes a line or two.
const STATUS_LIMIT: u64 = 16 * 1024;

pub struct RunDir {
    dir: tempfile::TempDir,
}

impl RunDir {
    /// In $TMPDIR, or where a temporary directory usually is when $TMPDIR cannot take it (a
    /// missing or read-only directory must not keep the program from running). Not under a
    /// path with a `:`: the start-up hook's directory goes on PYTHONPATH, which `:` separates.
    pub fn create() -> Result<RunDir, RunError> {
        let first = std::env::temp_dir();
        let mut error = None;
        for parent in [
            first.as_path(),
            Path::new("/tmp"),
            Path::new("/var/tmp"),
            Path::new("/dev/shm"),
        ] {
            if parent.as_os_str().as_encoded_bytes().contains(&b':') {
                continue;
            }
            match Self::create_in(parent) {
                Ok(dir) => return Ok(dir),
                Err(e) => {
                    error.get_or_insert(e);
                }
            }
        }
        let e = error.unwrap_or_else(|| std::io::Error::other("no temporary directory"));
        Err(RunError(format!(
            "cannot create a private directory in {} (nor in /tmp, /var/tmp, /dev/shm): {e}",
            first.display()
        )))
    }

    fn create_in(parent: &Path) -> std::io::Result<RunDir> {
        let dir = tempfile::Builder::new()
            .prefix("memtrace-")
            .rand_bytes(12)
            .tempdir_in(parent)?;
        // The umask may have taken bits from the owner too; the others never get any.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))?;
        stale::mark(dir.path())?;
        // Room for the start-up hook's files (a few KB): a full file system takes a new
        // directory and then refuses its files, which stopped every Python run.
        // No more than the file size limit (`ulimit -f`) allows: a larger probe fails for
        // that reason alone.
        let room = ROOM.min(file_size_limit());
        if room > 0 {
            let probe = dir.path().join("room");
            std::fs::write(&probe, vec![0u8; room])?;
            std::fs::remove_file(&probe)?;
        }
        Ok(RunDir { dir })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Removes the directories killed runs left beside this one (see `stale`): called once
    /// the program runs, so that its start waits for none of it.
    pub fn sweep_stale(&self) {
        if let Some(parent) = self.path().parent() {
            stale::sweep(parent, self.path());
        }
    }

    /// Where the tracker writes why it could not record (it creates the file when it must).
    pub fn status_path(&self) -> PathBuf {
        self.dir.path().join("status")
    }

    /// The tracker's lines, if it wrote any, as they can safely be shown on a terminal.
    pub fn read_status(&self) -> Option<String> {
        read_bounded(&self.status_path()).map(|text| printable(&text))
    }
}

/// The start of a regular file at `path`, without following a link or waiting on a FIFO.
fn read_bounded(path: &Path) -> Option<String> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .ok()?;
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    let mut bytes = Vec::new();
    file.take(STATUS_LIMIT).read_to_end(&mut bytes).ok()?;
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

/// `text` with every control character but the line break escaped (`\u{1b}`), so that it cannot
/// move the cursor, retitle the window or clear the screen.
fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() && c != '\n' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// The file size limit (RLIMIT_FSIZE) in bytes; usize::MAX when there is none.
fn file_size_limit() -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit(2) into a valid struct.
    if unsafe { libc::getrlimit(libc::RLIMIT_FSIZE, &mut limit) } != 0
        || limit.rlim_cur == libc::RLIM_INFINITY
    {
        return usize::MAX;
    }
    usize::try_from(limit.rlim_cur).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_shown_escaped() {
        assert_eq!(
            printable("cannot create x\u{1b}]0;t\u{7}\u{9b}2J\r\nnext\n"),
            "cannot create x\\u{1b}]0;t\\u{7}\\u{9b}2J\\r\nnext\n"
        );
    }

    #[test]
    fn the_directory_is_private_and_removed_after_the_run() {
        let run = RunDir::create().expect("private dir");
        let path = run.path().to_path_buf();
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        assert!(!name.contains(&std::process::id().to_string()), "{name}");
        assert_eq!(run.read_status(), None);
        std::fs::write(run.status_path(), "x".repeat(100_000)).expect("write");
        assert_eq!(run.read_status().map(|s| s.len()), Some(16 * 1024));
        drop(run);
        assert!(!path.exists());
    }

    #[test]
    fn a_fifo_or_a_link_at_the_status_path_is_not_read() {
        let run = RunDir::create().expect("private dir");
        let target = run.path().join("elsewhere");
        std::fs::write(&target, "planted\n").expect("write");
        std::os::unix::fs::symlink(&target, run.status_path()).expect("symlink");
        assert_eq!(run.read_status(), None);
        std::fs::remove_file(run.status_path()).expect("unlink");
        let made = std::process::Command::new("mkfifo")
            .arg(run.status_path())
            .status()
            .expect("mkfifo runs");
        assert!(made.success());
        assert_eq!(run.read_status(), None);
    }
}
