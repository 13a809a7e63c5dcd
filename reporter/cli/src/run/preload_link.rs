//! LD_PRELOAD cannot name a library whose path holds a space or a colon (the loader splits the
//! list there, prints an error on the program's stderr for each piece and preloads nothing).
//! memtrace installed under such a path (a virtual environment in "My Projects") preloads the
//! tracker through a link in a per-user directory instead. The link stays: a followed child may
//! outlive the run and exec long after it.

use super::RunError;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// What LD_PRELOAD separates its entries with.
fn splits_preload(path: &Path) -> bool {
    path.as_os_str()
        .as_encoded_bytes()
        .iter()
        .any(|&b| b == b' ' || b == b':' || b == b'\t' || b == b'\n')
}

/// The path to preload the tracker `library` by: itself, or a link to it.
pub fn preloadable(library: &Path) -> Result<PathBuf, RunError> {
    if !splits_preload(library) {
        return Ok(library.to_path_buf());
    }
    let dir = links_directory().ok_or_else(|| refusal(library, "no directory for the link"))?;
    let link = dir.join(format!(
        "libmemtrace_tracker-{:016x}.so",
        fnv1a(library.as_os_str().as_encoded_bytes())
    ));
    if std::fs::read_link(&link).is_ok_and(|to| to == library) {
        return Ok(link);
    }
    // Made under another name and renamed: a run starting beside this one never sees a
    // half-made link.
    let fresh = dir.join(format!(".link-{}", std::process::id()));
    let _ = std::fs::remove_file(&fresh);
    std::os::unix::fs::symlink(library, &fresh)
        .and_then(|()| std::fs::rename(&fresh, &link))
        .map_err(|e| refusal(library, &format!("{}: {e}", link.display())))?;
    Ok(link)
}

fn refusal(library: &Path, why: &str) -> RunError {
    RunError(format!(
        "the tracker library's path {} has a space or a colon, which LD_PRELOAD cannot hold, and no link to it could be made ({why}): install memtrace under another path",
        library.display()
    ))
}

/// This user's directory of links, made if needed: `memtrace-links-UID` in the temporary
/// directory (or /tmp), owned by this user and closed to others; never one another user made.
fn links_directory() -> Option<PathBuf> {
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    let name = format!("memtrace-links-{uid}");
    for parent in [std::env::temp_dir(), PathBuf::from("/tmp")] {
        let dir = parent.join(&name);
        if splits_preload(&dir) {
            continue;
        }
        let _ = std::fs::create_dir(&dir);
        let Ok(meta) = std::fs::symlink_metadata(&dir) else {
            continue;
        };
        if !meta.is_dir() || meta.uid() != uid {
            continue;
        }
        if meta.mode() & 0o077 != 0
            && std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).is_err()
        {
            continue;
        }
        return Some(dir);
    }
    None
}

/// FNV-1a: a short, stable name for a path.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_without_separators_is_kept() {
        let p = Path::new("/opt/memtrace/libmemtrace_tracker.so");
        assert_eq!(preloadable(p).ok(), Some(p.to_path_buf()));
    }

    #[test]
    fn a_path_with_a_space_is_preloaded_through_a_link_to_it() {
        let dir = std::env::temp_dir().join(format!("memtrace preload {}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let library = dir.join("libmemtrace_tracker.so");
        std::fs::write(&library, b"x").expect("write");
        let link = preloadable(&library).expect("a link");
        assert!(!splits_preload(&link), "{}", link.display());
        assert_eq!(std::fs::read_link(&link).ok(), Some(library.clone()));
        // The same link again.
        assert_eq!(preloadable(&library).ok(), Some(link));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
