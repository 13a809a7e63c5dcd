//! Holes of a capture's file: space the tracker reserved and never wrote (the end of a killed
//! run's last step of growth, a file extended by hand). They read as zeros, but reading them
//! page by page costs time and memory in proportion to their size; the file system says where
//! the next data is (lseek SEEK_DATA), so the scan jumps over them.

use std::fs::File;
use std::os::fd::AsRawFd;

/// Where the file's next data lies, asked of the file system.
pub struct Holes {
    file: File,
}

/// The answer for an offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NextData {
    /// Data at or after the offset starts here.
    At(usize),
    /// Nothing but holes from the offset to the end of the file.
    None,
    /// The file system cannot tell (no SEEK_DATA, or an error): read on.
    Unknown,
}

impl Holes {
    pub fn new(file: File) -> Holes {
        Holes { file }
    }

    /// The offset of the first data at or after `from`.
    pub fn next_data(&self, from: usize) -> NextData {
        let Ok(offset) = libc::off_t::try_from(from) else {
            return NextData::Unknown;
        };
        // SAFETY: lseek on a descriptor this struct owns; it reads no memory of ours.
        let at = unsafe { libc::lseek(self.file.as_raw_fd(), offset, libc::SEEK_DATA) };
        if at >= 0 {
            return usize::try_from(at).map_or(NextData::Unknown, NextData::At);
        }
        match std::io::Error::last_os_error().raw_os_error() {
            Some(libc::ENXIO) => NextData::None,
            _ => NextData::Unknown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Seek, SeekFrom, Write};

    #[test]
    fn finds_the_data_after_a_hole_and_the_end_of_the_data() {
        let dir = std::env::temp_dir().join(format!("memtrace-holes-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("sparse");
        let mut f = File::create(&path).expect("create");
        f.write_all(b"head").expect("write");
        f.seek(SeekFrom::Start(64 << 20)).expect("seek");
        f.write_all(b"tail").expect("write");
        f.set_len(128 << 20).expect("extend");
        let holes = Holes::new(File::open(&path).expect("open"));
        assert_eq!(holes.next_data(0), NextData::At(0));
        // File systems without holes (or with large blocks) say the data is nearer: never
        // past the data written.
        match holes.next_data(1 << 20) {
            NextData::At(at) => assert!((1 << 20..=64 << 20).contains(&at), "{at}"),
            other => assert_eq!(other, NextData::Unknown),
        }
        match holes.next_data((64 << 20) + 4096) {
            NextData::At(at) => assert!(at < 128 << 20, "{at}"),
            other => assert!(other == NextData::None || other == NextData::Unknown),
        }
        assert_eq!(holes.next_data(200 << 20), NextData::None);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
