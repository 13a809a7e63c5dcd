//! Opening a module's file for symbolization, after checking that it is the file that was loaded.

use addr2line::Loader;
use memmap2::Mmap;
use object::Object;
use std::fs::File;
use std::path::Path;

/// Why a module's symbols are not available.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unavailable {
    /// The file is gone, unreadable or not an object file.
    Missing,
    /// The file was replaced since the capture.
    BuildIdMismatch,
}

/// The GNU build-id of the object file at `path`.
pub fn build_id(path: &Path) -> Result<Option<Vec<u8>>, Unavailable> {
    let file = File::open(path).map_err(|_| Unavailable::Missing)?;
    // SAFETY: read-only private map of a file we only read; a library replaced in place by
    // truncation while we read it could fault, as it would for any debugger.
    let map = unsafe { Mmap::map(&file) }.map_err(|_| Unavailable::Missing)?;
    let obj = object::File::parse(&*map).map_err(|_| Unavailable::Missing)?;
    Ok(obj.build_id().ok().flatten().map(<[u8]>::to_vec))
}

/// A symbolizer for the file at `path`, if it is there and its build-id is `expected` (any
/// build-id when `expected` is empty).
pub fn open(path: &Path, expected: &[u8]) -> Result<Loader, Unavailable> {
    if !path.is_file() {
        return Err(Unavailable::Missing);
    }
    if !expected.is_empty() {
        match build_id(path)? {
            Some(id) if id == expected => {}
            _ => return Err(Unavailable::BuildIdMismatch),
        }
    }
    // The DWARF may be in a separate debug file.
    if let Some(debug) = separate_debug_file(path) {
        if let Ok(loader) = Loader::new(&debug) {
            return Ok(loader);
        }
    }
    Loader::new(path).map_err(|_| Unavailable::Missing)
}

/// The module's separate debug file, when the module itself has no DWARF.
fn separate_debug_file(path: &Path) -> Option<std::path::PathBuf> {
    let file = File::open(path).ok()?;
    // SAFETY: as in `build_id`.
    let map = unsafe { Mmap::map(&file) }.ok()?;
    let obj = object::File::parse(&*map).ok()?;
    if super::debugfile::has_dwarf(&obj) {
        return None;
    }
    super::debugfile::find(path, &obj)
}
