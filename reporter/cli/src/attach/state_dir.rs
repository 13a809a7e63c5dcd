//! The attach's directory in the process's /tmp (`/tmp/memtrace-attach.PID`), handled as a
//! directory that others may have planted: memtrace often runs as root to attach a service,
//! and anyone may create names in /tmp. The directory is made anew (never an existing one of
//! another user's, never through a symbolic link, nor through a /tmp that is one: the
//! process's /tmp is reached through /proc/PID/root, where an absolute link would lead into
//! memtrace's own file system); memtrace's files in it are never written or read through a
//! link, and one that is read must be a plain file of its own.

use std::io::Read;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

/// Longest file of the directory's memtrace reads (a capture path and a token, a reason).
const READ_LIMIT: u64 = 64 * 1024;

/// Makes the directory `dir` (`theirs`: as the process names it, for messages), owned by
/// `uid` when given; a leftover of an earlier attach (no `active` in it: the caller checked)
/// is removed first.
pub fn make(dir: &Path, theirs: &Path, uid: Option<u32>) -> Result<(), String> {
    let shown = theirs.display();
    if let Some(tmp) = dir.parent() {
        match std::fs::symlink_metadata(tmp) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(format!(
                "the process's {} is a symbolic link: memtrace does not follow it to make {shown}",
                tmp.file_name()
                    .map_or("/tmp".into(), |n| format!("/{}", n.to_string_lossy()))
            ))
            }
            _ => {}
        }
    }
    match std::fs::symlink_metadata(dir) {
        Ok(m) if m.file_type().is_symlink() || !m.is_dir() => {
            return Err(format!(
                "{shown} exists and is not a directory memtrace made (a link or a file): remove it to attach"
            ))
        }
        Ok(m) => {
            // SAFETY: geteuid cannot fail.
            let me = unsafe { libc::geteuid() };
            if m.uid() != me && Some(m.uid()) != uid {
                return Err(format!(
                    "{shown} belongs to another user (uid {}): remove it to attach",
                    m.uid()
                ));
            }
            std::fs::remove_dir_all(dir)
                .map_err(|e| format!("cannot remove the old {shown}: {e}"))?;
        }
        Err(_) => {}
    }
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(dir)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => format!(
                "{shown} was made by someone else while memtrace made it: remove it to attach"
            ),
            _ => format!("cannot create {shown}: {e}"),
        })?;
    if let Some(uid) = uid {
        // Through the directory just made, never a link put in its place.
        let made = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
            .open(dir)
            .map_err(|e| format!("cannot open {shown}: {e}"))?;
        std::os::unix::fs::fchown(&made, Some(uid), None)
            .map_err(|e| format!("cannot give {shown} to the process's user: {e}"))?;
    }
    Ok(())
}

/// Makes the empty file `path` anew (an existing one, or a link, is removed first).
pub fn write_new(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .mode(0o644)
        .open(path)
        .map(drop)
}

/// The text of `path`: a plain file with one name (not a link, not a hard link to another
/// file, not a FIFO), at most READ_LIMIT bytes of it.
pub fn read_checked(path: &Path) -> std::io::Result<String> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() || meta.nlink() != 1 {
        return Err(std::io::Error::other("not a file memtrace made"));
    }
    let mut text = String::new();
    file.take(READ_LIMIT).read_to_string(&mut text)?;
    Ok(text)
}

/// [`read_checked`], None on any failure.
pub fn read(path: &Path) -> Option<String> {
    read_checked(path).ok()
}

/// The directory `dir`, held through its parent (the process's /tmp, opened while the process
/// lives): `dir`'s path goes through /proc/PID/root, which is gone with the process, and a
/// detach that saw the process end left the directory behind.
pub struct Held {
    tmp: Option<std::fs::File>,
    dir: std::path::PathBuf,
}

impl Held {
    /// Holds `dir`'s parent (no handle when it cannot be opened: then `dir`'s path is used).
    pub fn new(dir: &Path) -> Held {
        let tmp = dir.parent().and_then(|tmp| {
            std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
                .open(tmp)
                .ok()
        });
        Held {
            tmp,
            dir: dir.to_path_buf(),
        }
    }

    /// Removes the directory and what is in it, if it is there.
    pub fn remove(&self) {
        use std::os::fd::AsRawFd;
        let through_handle = self
            .tmp
            .as_ref()
            .zip(self.dir.file_name())
            .map(|(tmp, name)| Path::new(&format!("/proc/self/fd/{}", tmp.as_raw_fd())).join(name));
        let _ = std::fs::remove_dir_all(through_handle.as_deref().unwrap_or(&self.dir));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_planted_link_or_a_directory_of_another_user_is_refused() {
        let tmp = tempfile::tempdir().expect("tmp");
        let victim = tmp.path().join("victim");
        std::fs::create_dir(&victim).expect("mkdir");
        let dir = tmp.path().join("memtrace-attach.1");
        std::os::unix::fs::symlink(&victim, &dir).expect("link");
        let err = make(&dir, Path::new("/tmp/memtrace-attach.1"), Some(65534)).unwrap_err();
        assert!(err.contains("not a directory memtrace made"), "{err}");
        std::fs::remove_file(&dir).expect("unlink");
        // A leftover of ours is replaced by a new directory.
        std::fs::create_dir(&dir).expect("mkdir");
        std::fs::write(dir.join("running"), "").expect("write");
        make(&dir, Path::new("/tmp/memtrace-attach.1"), None).expect("made");
        assert!(!dir.join("running").exists());
        // Files are never written or read through a link.
        let secret = tmp.path().join("secret");
        std::fs::write(&secret, "precious").expect("write");
        std::os::unix::fs::symlink(&secret, dir.join("stop")).expect("link");
        write_new(&dir.join("stop")).expect("made anew");
        assert_eq!(std::fs::read_to_string(&secret).expect("read"), "precious");
        std::os::unix::fs::symlink(&secret, dir.join("error")).expect("link");
        assert_eq!(read(&dir.join("error")), None);
        std::fs::hard_link(&secret, dir.join("active")).expect("link");
        assert!(read_checked(&dir.join("active")).is_err());
    }

    #[test]
    fn a_held_directory_is_removed_through_its_parent_after_its_path_is_gone() {
        let tmp = tempfile::tempdir().expect("tmp");
        let root = tmp.path().join("root");
        std::fs::create_dir_all(root.join("tmp/memtrace-attach.1")).expect("mkdir");
        std::fs::write(root.join("tmp/memtrace-attach.1/active"), "x").expect("write");
        let held = Held::new(&root.join("tmp/memtrace-attach.1"));
        // The way to it is gone (as /proc/PID/root is when the process ends).
        let moved = tmp.path().join("moved");
        std::fs::rename(&root, &moved).expect("rename");
        held.remove();
        assert!(!moved.join("tmp/memtrace-attach.1").exists());
        assert!(moved.join("tmp").exists());
    }
}
