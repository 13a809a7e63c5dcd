//! A program's source file read for a report (its lines beside the figures): a regular file
//! of a sensible size (crate::regular_file), never a FIFO planted at a script's path, a device
//! or a huge generated file.

use crate::regular_file::{self, Links};
use std::path::Path;

/// The largest source file read.
pub const MAX_SOURCE_BYTES: u64 = 16 << 20;

/// The bytes of the source file at `path`; None when it is not a regular file of at most
/// [`MAX_SOURCE_BYTES`], or cannot be read.
pub fn read(path: &Path) -> Option<Vec<u8>> {
    regular_file::read(path, MAX_SOURCE_BYTES, Links::Follow)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_of_a_sensible_size_are_read() {
        assert_eq!(read(Path::new("/dev/zero")), None);
        assert_eq!(read(Path::new("/dev/null")), None);
        assert_eq!(read(Path::new("/no/such/file")), None);
        let dir = std::env::temp_dir().join(format!("memtrace-source-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let small = dir.join("s.py");
        std::fs::write(&small, b"x = 1\n").expect("write");
        assert_eq!(read(&small).as_deref(), Some(&b"x = 1\n"[..]));
        let big = dir.join("big.py");
        let f = std::fs::File::create(&big).expect("create");
        f.set_len(MAX_SOURCE_BYTES + 1).expect("grow");
        assert_eq!(read(&big), None);
        let fifo = dir.join("fifo.py");
        let c = std::ffi::CString::new(fifo.to_str().expect("utf-8")).expect("path");
        // SAFETY: mkfifo(3) of a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert_eq!(read(&fifo), None);
        std::fs::remove_dir_all(&dir).expect("clean");
    }
}
