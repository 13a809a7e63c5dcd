//! Where a capture's index lives and which capture it belongs to: beside the capture
//! (`.<capture>.mtidx`, hidden), else in the per-user cache directory ($XDG_CACHE_HOME/memtrace, else
//! ~/.cache/memtrace) when the capture's directory cannot be written; and the identity of the
//! capture (size, modification time, file, and a checksum of its first and last bytes) that an
//! index must match to be used.

use super::codec::{Reader, Store, Writer};
use crate::capture::Capture;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// What an index records of its capture; any change makes it stale.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    size: u64,
    mtime_s: i64,
    mtime_ns: i64,
    dev: u64,
    ino: u64,
    /// The status change time: a write in the middle whose modification time was put back
    /// (`touch -r`) still moves it.
    ctime_s: i64,
    ctime_ns: i64,
    /// The capture's owner.
    uid: u32,
    /// CRC-32 of the first and the last [`EDGE`] bytes (the header, the trailer).
    edges: u32,
}

/// Bytes checksummed at each end of the capture.
const EDGE: usize = 64 << 10;

impl Identity {
    /// The identity of `capture` as its file is now; None when it cannot be read (a capture
    /// held in memory, or a file gone).
    pub fn of(capture: &Capture) -> Option<Identity> {
        let meta = std::fs::metadata(capture.path()).ok()?;
        let bytes = capture.bytes();
        if meta.len() != bytes.len() as u64 {
            return None;
        }
        let mut crc = crc32fast::Hasher::new();
        crc.update(&bytes[..bytes.len().min(EDGE)]);
        crc.update(&bytes[bytes.len().saturating_sub(EDGE)..]);
        Some(Identity {
            size: meta.len(),
            mtime_s: meta.mtime(),
            mtime_ns: meta.mtime_nsec(),
            dev: meta.dev(),
            ino: meta.ino(),
            ctime_s: meta.ctime(),
            ctime_ns: meta.ctime_nsec(),
            uid: meta.uid(),
            edges: crc.finalize(),
        })
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// The capture file's owner.
    pub fn owner(&self) -> u32 {
        self.uid
    }
}

/// The effective user of this process.
pub fn effective_uid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    // The owner of what this process creates, without an FFI call: its own /proc entry.
    std::fs::metadata("/proc/self").map_or(u32::MAX, |m| m.uid())
}

/// Whether a capture at `path` may have an index: not one read through /dev or /proc
/// (`memtrace stats /dev/stdin < cap.bin`), where an index beside it would land among the
/// system's device files.
pub fn indexable(path: &Path) -> bool {
    let system = |p: &Path| ["/dev", "/proc", "/sys"].iter().any(|d| p.starts_with(d));
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    !system(path) && std::fs::canonicalize(parent).is_ok_and(|p| !system(&p))
}

impl Store for Identity {
    fn put(&self, w: &mut Writer) {
        w.put(&self.size);
        w.put(&self.mtime_s);
        w.put(&self.mtime_ns);
        w.put(&self.dev);
        w.put(&self.ino);
        w.put(&self.ctime_s);
        w.put(&self.ctime_ns);
        w.put(&self.uid);
        w.put(&self.edges);
    }
    fn get(r: &mut Reader) -> Option<Identity> {
        Some(Identity {
            size: r.get()?,
            mtime_s: r.get()?,
            mtime_ns: r.get()?,
            dev: r.get()?,
            ino: r.get()?,
            ctime_s: r.get()?,
            ctime_ns: r.get()?,
            uid: r.get()?,
            edges: r.get()?,
        })
    }
}

/// The index's name beside the capture: hidden, and not `<capture>.` followed by anything,
/// which names a process family's captures (`<capture>.<pid>`, `<capture>.exec<N>`).
pub fn beside(capture: &Path) -> Option<PathBuf> {
    let mut name = std::ffi::OsString::from(".");
    name.push(capture.file_name()?);
    name.push(".mtidx");
    Some(capture.with_file_name(name))
}

/// Where indexes go: beside their capture, else in a cache directory.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Places {
    /// The per-user cache directory's `memtrace` folder (None: no fallback).
    pub cache: Option<PathBuf>,
}

impl Places {
    /// $XDG_CACHE_HOME/memtrace, else ~/.cache/memtrace.
    pub fn from_env() -> Places {
        // A relative XDG_CACHE_HOME is not one (the XDG spec: it is ignored), as an empty one.
        let absolute = |d: &std::ffi::OsString| Path::new(d).is_absolute();
        let base = match std::env::var_os("XDG_CACHE_HOME").filter(absolute) {
            Some(d) => Some(PathBuf::from(d)),
            None => std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .map(|h| PathBuf::from(h).join(".cache")),
        };
        Places {
            cache: base.map(|b| b.join("memtrace")),
        }
    }

    /// The cache directory's index of the capture: named by a hash of the capture's full path
    /// (and its name, for whoever looks).
    pub fn in_cache(&self, capture: &Path) -> Option<PathBuf> {
        let dir = self.cache.as_ref()?;
        let full = std::fs::canonicalize(capture).ok()?;
        // FNV-1a over the path's bytes: stable across runs, unlike the std hasher.
        let hash = full
            .as_os_str()
            .as_encoded_bytes()
            .iter()
            .fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
                (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
            });
        let name = full.file_name()?.to_string_lossy();
        Some(dir.join(format!("{hash:016x}-{name}.mtidx")))
    }

    /// Where to look for a capture's index, in order.
    pub fn candidates(&self, capture: &Path) -> Vec<PathBuf> {
        beside(capture)
            .into_iter()
            .chain(self.in_cache(capture))
            .collect()
    }

    /// Writes the index beside the capture, else in the cache directory; where it went, if
    /// anywhere. It is readable by whom the capture is readable, no one more: it names the
    /// program's functions, files and sizes, as the capture does (an index of a capture kept
    /// to its owner was readable by all). The cache directory is its owner's alone.
    pub fn write(&self, capture: &Path, bytes: &[u8]) -> Option<PathBuf> {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        let mode = std::fs::metadata(capture)
            .map(|m| m.permissions().mode() & 0o444 | 0o200)
            .unwrap_or(0o600);
        if let Some(p) = beside(capture) {
            if write_whole(&p, bytes, mode).is_ok() {
                return Some(p);
            }
        }
        let p = self.in_cache(capture)?;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(p.parent()?)
            .ok()?;
        write_whole(&p, bytes, mode).ok().map(|()| p)
    }
}

/// Writes `bytes` at `path` whole or not at all (a reader never sees half an index): a
/// temporary file then a rename. The temporary file is a new one (whatever is at its name,
/// a link planted there included, is never written through), of permissions `mode` (less the
/// umask's).
pub fn write_whole(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    use std::io::Write;
    let mut tmp = path.as_os_str().to_os_string();
    tmp.push(format!(".tmp{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    use std::os::unix::fs::OpenOptionsExt;
    let result = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .and_then(|mut f| f.write_all(bytes))
        .and_then(|()| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_read_through_dev_or_proc_get_no_index() {
        assert!(!indexable(Path::new("/dev/stdin")));
        assert!(!indexable(Path::new("/proc/self/fd/0")));
        assert!(!indexable(Path::new("/dev/fd/3")));
        assert!(indexable(&std::env::temp_dir().join("cap.bin")));
        assert!(indexable(Path::new("cap.bin")));
    }

    #[test]
    fn a_link_at_the_temporary_name_is_not_written_through() {
        let dir = std::env::temp_dir().join(format!("memtrace-place-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let victim = dir.join("victim");
        std::fs::write(&victim, b"mine").expect("victim");
        let path = dir.join(".cap.bin.mtidx");
        let tmp = dir.join(format!(".cap.bin.mtidx.tmp{}", std::process::id()));
        std::os::unix::fs::symlink(&victim, &tmp).expect("link");
        assert!(write_whole(&path, b"index", 0o644).is_err());
        assert_eq!(std::fs::read(&victim).expect("victim"), b"mine");
        assert!(!path.exists());
        // With the name free, it is written whole.
        write_whole(&path, b"index", 0o644).expect("written");
        assert_eq!(std::fs::read(&path).expect("index"), b"index");
        std::fs::remove_dir_all(&dir).expect("clean");
    }

    #[test]
    fn an_index_is_readable_by_whom_its_capture_is_and_the_cache_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("memtrace-perm-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let mode = |p: &Path| std::fs::metadata(p).expect("exists").permissions().mode() & 0o777;
        let capture = dir.join("cap.bin");
        std::fs::write(&capture, b"capture").expect("capture");
        let places = Places {
            cache: Some(dir.join("cache").join("memtrace")),
        };
        for (capture_mode, index_mode) in [(0o600, 0o600), (0o644, 0o644), (0o640, 0o640)] {
            std::fs::set_permissions(&capture, std::fs::Permissions::from_mode(capture_mode))
                .expect("chmod");
            let written = places.write(&capture, b"index").expect("written");
            assert_eq!(written, beside(&capture).expect("a name"));
            // Less what the umask takes away (022 or 002 here).
            assert_eq!(
                mode(&written) & !0o022,
                index_mode & !0o022,
                "{capture_mode:o}"
            );
            assert_eq!(mode(&written) & 0o077 & !(capture_mode & 0o077), 0);
            std::fs::remove_file(&written).expect("clean");
        }
        // Where the index cannot go beside the capture (a directory at its name): the cache,
        // its owner's alone.
        std::fs::set_permissions(&capture, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        std::fs::create_dir(beside(&capture).expect("a name")).expect("in the way");
        let written = places.write(&capture, b"index").expect("written");
        assert!(
            written.starts_with(dir.join("cache")),
            "{}",
            written.display()
        );
        assert_eq!(mode(written.parent().expect("dir")), 0o700);
        assert_eq!(mode(&written) & 0o077, 0);
        std::fs::remove_dir_all(&dir).expect("clean");
    }
}
