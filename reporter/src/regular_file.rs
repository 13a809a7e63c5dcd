//! Reading a file a report did not write (a source file, an index another process may have
//! planted): only a regular file, of at most a given size, never waited on (a FIFO) nor read
//! without end (a device), whatever the path holds when it is opened.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Whether a symbolic link at the path itself is followed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Links {
    Follow,
    Refuse,
}

/// The bytes of the file at `path`; None when it is not a regular file of at most `limit`
/// bytes (checked on the file opened, then again on what is read), or cannot be read.
pub fn read(path: &Path, limit: u64, links: Links) -> Option<Vec<u8>> {
    read_if(path, limit, links, |_| true)
}

/// [`read`] of a file another user could have planted (an index beside a capture in a
/// shared directory): never through a link, and only a file of one of `owners` that no one
/// else may write (checked on the file opened).
pub fn read_owned(path: &Path, limit: u64, owners: &[u32]) -> Option<Vec<u8>> {
    use std::os::unix::fs::MetadataExt;
    read_if(path, limit, Links::Refuse, |meta| {
        owners.contains(&meta.uid()) && meta.mode() & 0o022 == 0
    })
}

fn read_if(
    path: &Path,
    limit: u64,
    links: Links,
    accept: impl Fn(&std::fs::Metadata) -> bool,
) -> Option<Vec<u8>> {
    let flags = match links {
        Links::Follow => libc::O_NONBLOCK,
        Links::Refuse => libc::O_NONBLOCK | libc::O_NOFOLLOW,
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)
        .ok()?;
    let meta = file.metadata().ok()?;
    if !meta.is_file() || meta.len() > limit || !accept(&meta) {
        return None;
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(limit + 1).read_to_end(&mut bytes).ok()?;
    (bytes.len() as u64 <= limit).then_some(bytes)
}
