//! The files an attach keeps for itself in memtrace's temporary directory and beside the
//! capture: the lock on attaching a process, the capture `-f` replaces, and what earlier
//! attaches left for processes that are gone.

use super::process::alive;
use std::path::{Path, PathBuf};

/// An exclusive lock on attaching a process: the file `memtrace-attach.PID.lock` in memtrace's
/// temporary directory, locked while this lives and removed when it ends (every attach left
/// one behind).
pub struct Claim {
    path: PathBuf,
    _file: std::fs::File,
}

impl Drop for Claim {
    fn drop(&mut self) {
        // Removed while still locked: one who opened it meanwhile finds it replaced (below).
        let _ = std::fs::remove_file(&self.path);
    }
}

pub fn claim(pid: i32) -> Result<Claim, String> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let path = std::env::temp_dir().join(format!("memtrace-attach.{pid}.lock"));
    loop {
        // Never through a link someone planted at the name (memtrace may run as root).
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .custom_flags(libc::O_NOFOLLOW)
            .mode(0o600)
            .open(&path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        if file.try_lock().is_err() {
            return Err(format!(
                "process {pid} is being attached by another memtrace (or is attached: memtrace detach {pid})"
            ));
        }
        // The lock holds only if the file is still the one at the path: its holder removes it
        // at the end, and a file opened before that is an orphan.
        let same = match (file.metadata(), std::fs::metadata(&path)) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        };
        if same {
            return Ok(Claim { path, _file: file });
        }
    }
}

/// A capture that `-f` replaces, moved aside until the attach succeeds and put back if it
/// fails (it was removed before anything could fail).
pub struct Replaced {
    /// (the capture, where it was moved)
    moved: Option<(PathBuf, PathBuf)>,
}

impl Replaced {
    pub fn aside(capture: &Path) -> Result<Replaced, String> {
        if !capture.exists() {
            return Ok(Replaced { moved: None });
        }
        let name = capture
            .file_name()
            .map_or_else(Default::default, |n| n.to_string_lossy().to_string());
        let aside = capture.with_file_name(format!(".{name}.replaced-{}", std::process::id()));
        std::fs::rename(capture, &aside)
            .map_err(|e| format!("cannot replace {}: {e}", capture.display()))?;
        Ok(Replaced {
            moved: Some((capture.to_path_buf(), aside)),
        })
    }

    /// The attach succeeded: the old capture goes.
    pub fn discard(mut self) {
        if let Some((_, aside)) = self.moved.take() {
            let _ = std::fs::remove_file(aside);
        }
    }
}

impl Drop for Replaced {
    fn drop(&mut self) {
        if let Some((capture, aside)) = self.moved.take() {
            let _ = std::fs::rename(aside, capture);
        }
    }
}

/// Removes what attaches left in /tmp for processes that are gone: their directories (a
/// memtrace killed, a process that ended attached) and lock files of older versions.
pub fn remove_leftovers() {
    // Directories are in /tmp (the process's, here memtrace's own), locks in memtrace's
    // temporary directory.
    let mut places = vec![PathBuf::from("/tmp")];
    if std::env::temp_dir() != places[0] {
        places.push(std::env::temp_dir());
    }
    for e in places
        .iter()
        .filter_map(|p| std::fs::read_dir(p).ok())
        .flat_map(|d| d.flatten())
    {
        let name = e.file_name();
        let Some(rest) = name
            .to_str()
            .and_then(|n| n.strip_prefix("memtrace-attach."))
        else {
            continue;
        };
        let (digits, lock) = match rest.strip_suffix(".lock") {
            Some(d) => (d, true),
            None => (rest, false),
        };
        let Ok(pid) = digits.parse::<i32>() else {
            continue;
        };
        if alive(pid) {
            continue;
        }
        let _ = match lock {
            true => std::fs::remove_file(e.path()),
            false => std::fs::remove_dir_all(e.path()),
        };
    }
}

/// The attach's directory, made by this attach: removed when this is dropped, unless kept
/// (the attach succeeded).
pub struct Made {
    dir: Option<PathBuf>,
}

impl Made {
    pub fn new(dir: &Path) -> Made {
        Made {
            dir: Some(dir.to_path_buf()),
        }
    }

    pub fn keep(mut self) {
        self.dir = None;
    }
}

impl Drop for Made {
    fn drop(&mut self) {
        if let Some(dir) = self.dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
