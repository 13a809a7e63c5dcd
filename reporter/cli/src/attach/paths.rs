//! The files an attach shares with the process, named twice: as memtrace reaches them and as the
//! process does. A process may see another file system than memtrace's: a service with a private
//! /tmp (systemd's PrivateTmp), a container, a chroot. memtrace reaches the process's files
//! through `/proc/PID/root`, which is its root in its own mount namespace; the process gets the
//! paths as it sees them. Before this, a service with a private /tmp never saw the `stop` file
//! that `memtrace detach` wrote in memtrace's /tmp: it stayed tracked until it ended.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// One file or directory, as memtrace reaches it (`ours`) and as the process names it
/// (`theirs`).
#[derive(Clone, Debug)]
pub struct Place {
    pub ours: PathBuf,
    pub theirs: PathBuf,
}

/// The process's root directory, as memtrace reaches it.
pub fn root(pid: i32) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}/root"))
}

/// `theirs` (an absolute path in the process's view) as memtrace reaches it.
fn through_root(pid: i32, theirs: &Path) -> PathBuf {
    root(pid).join(theirs.strip_prefix("/").unwrap_or(theirs))
}

/// The attach's directory: `/tmp/memtrace-attach.PID` in the file system of the process `pid`,
/// reached through the root of its thread `via` (the process's own id unless its main thread
/// ended, which takes its root along).
pub fn state_dir(pid: i32, via: i32) -> Place {
    let theirs = PathBuf::from(format!("/tmp/memtrace-attach.{pid}"));
    Place {
        ours: through_root(via, &theirs),
        theirs,
    }
}

/// Whether `a` and `b` are the same file (device and inode).
fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

/// The capture `ours` (absolute) as the process will write it: a path under
/// `/proc/PID/root/` names the process's own file; any other path must name a directory the
/// process sees as memtrace does.
pub fn capture(pid: i32, ours: &Path) -> Result<Place, String> {
    if let Ok(rest) = ours.strip_prefix(root(pid)) {
        return Ok(Place {
            ours: ours.to_path_buf(),
            theirs: Path::new("/").join(rest),
        });
    }
    let parent = ours.parent().unwrap_or(Path::new("/"));
    if !parent.is_dir() {
        return Err(format!(
            "cannot write the capture {}: no directory {}",
            ours.display(),
            parent.display()
        ));
    }
    if same_file(parent, &through_root(pid, parent)) {
        return Ok(Place {
            ours: ours.to_path_buf(),
            theirs: ours.to_path_buf(),
        });
    }
    let name = ours
        .file_name()
        .map_or("capture.bin".into(), |n| n.to_string_lossy());
    Err(format!(
        "process {pid} does not see {} (it runs with another file system: a container, a private /tmp or a chroot); write the capture where it does, for example: -o /proc/{pid}/root/tmp/{name}",
        parent.display()
    ))
}

/// The name of the tracker's copy in the attach's directory (the Python module's name: a
/// program that has the tracker loaded is one memtrace recognizes as tracked).
pub const TRACKER_MODULE: &str = "_memtrace_tracker.so";

/// The tracker library `ours` as the process will load it: the same path when the process
/// sees that file, else a copy in the attach's directory `state`, whose path is the same for
/// every attach to this process (the loader then finds it loaded by that path at a later
/// attach, even once the directory is gone, and never loads a second copy).
pub fn tracker(pid: i32, ours: &Path, state: &Place) -> Result<Place, String> {
    if same_file(ours, &through_root(pid, ours)) {
        return Ok(Place {
            ours: ours.to_path_buf(),
            theirs: ours.to_path_buf(),
        });
    }
    let copy = Place {
        ours: state.ours.join(TRACKER_MODULE),
        theirs: state.theirs.join(TRACKER_MODULE),
    };
    std::fs::copy(ours, &copy.ours).map_err(|e| {
        format!(
            "process {pid} does not see the tracker library {}, and copying it to {} failed: {e}",
            ours.display(),
            copy.ours.display()
        )
    })?;
    Ok(copy)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_capture_under_the_process_root_is_its_own_path() {
        let pid = std::process::id() as i32;
        let ours = PathBuf::from(format!("/proc/{pid}/root/tmp/x.bin"));
        let p = capture(pid, &ours).unwrap();
        assert_eq!(p.theirs, PathBuf::from("/tmp/x.bin"));
        assert_eq!(p.ours, ours);
    }

    #[test]
    fn in_the_same_file_system_both_names_are_the_same() {
        let pid = std::process::id() as i32;
        let dir = std::env::temp_dir();
        let p = capture(pid, &dir.join("y.bin")).unwrap();
        assert_eq!(p.theirs, dir.join("y.bin"));
        let s = state_dir(pid, pid);
        assert_eq!(
            s.theirs,
            PathBuf::from(format!("/tmp/memtrace-attach.{pid}"))
        );
        assert!(s.ours.starts_with(format!("/proc/{pid}/root")));
    }

    #[test]
    fn a_missing_directory_is_named() {
        let pid = std::process::id() as i32;
        let e = capture(pid, Path::new("/no/such/dir/z.bin")).unwrap_err();
        assert!(e.contains("no directory /no/such/dir"), "{e}");
    }
}
