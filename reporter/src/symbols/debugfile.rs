//! Separate debug files: where distributions and `objcopy --only-keep-debug` put a module's
//! DWARF. Looked up by GNU build-id (`/usr/lib/debug/.build-id/ab/cdef….debug`) and by the
//! module's `.gnu_debuglink` (its directory, its `.debug/` subdirectory, and the same path
//! below `/usr/lib/debug`), checking the link's CRC.

use object::{Object, ObjectSection};
use std::path::{Path, PathBuf};

/// The global debug directory.
const DEBUG_ROOT: &str = "/usr/lib/debug";

/// The separate debug file of the module `path` (already parsed as `obj`), if one is there.
pub fn find(path: &Path, obj: &object::File<'_>) -> Option<PathBuf> {
    if let Some(id) = obj.build_id().ok().flatten().filter(|id| id.len() >= 2) {
        let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
        let candidate = Path::new(DEBUG_ROOT)
            .join(".build-id")
            .join(&hex[..2])
            .join(format!("{}.debug", &hex[2..]));
        if candidate.is_file() {
            return Some(candidate);
        }
    }
    let (name, crc) = obj.gnu_debuglink().ok().flatten()?;
    let name = Path::new(std::str::from_utf8(name).ok()?);
    let dir = path.parent().unwrap_or(Path::new("/"));
    let mut candidates = vec![dir.join(name), dir.join(".debug").join(name)];
    if let Ok(rel) = dir.strip_prefix("/") {
        candidates.push(Path::new(DEBUG_ROOT).join(rel).join(name));
    }
    candidates
        .into_iter()
        .find(|c| c.as_path() != path && c.is_file() && crc_of(c) == Some(crc))
}

/// Whether the object carries DWARF line information itself.
pub fn has_dwarf(obj: &object::File<'_>) -> bool {
    obj.section_by_name(".debug_info")
        .is_some_and(|s| s.size() > 0)
}

/// The CRC-32 of a file, as `.gnu_debuglink` records it.
fn crc_of(path: &Path) -> Option<u32> {
    let bytes = std::fs::read(path).ok()?;
    Some(crc32fast::hash(&bytes))
}
