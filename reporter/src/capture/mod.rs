//! Reading a capture file: the file header, the chunk index, payload decoding and the merged
//! event stream.

pub mod aggregate;
pub mod clock;
pub mod decode;
pub mod event;
pub mod exec;
pub mod family;
pub mod follow;
pub mod holes;
pub mod pool;
pub mod python_version;
pub mod scan;
pub mod settings;
pub mod shrunk;
pub mod stream;

use memmap2::Mmap;
use memtrace_format::{FileHeader, HeaderError};
use std::fmt;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Why a capture could not be opened at all.
#[derive(Debug)]
pub enum OpenError {
    Io(io::Error),
    IsDirectory,
    /// A FIFO, a device, a socket: reading one could wait forever or never end.
    NotRegular,
    Header(HeaderError),
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::Io(e) => match e.kind() {
                io::ErrorKind::NotFound => write!(f, "no such file"),
                io::ErrorKind::PermissionDenied => write!(f, "permission denied"),
                _ => write!(f, "cannot read the file: {e}"),
            },
            OpenError::IsDirectory => write!(f, "is a directory, not a capture file"),
            OpenError::NotRegular => write!(f, "is not a regular file, not a capture file"),
            OpenError::Header(HeaderError::TooShort) => {
                write!(f, "not a memtrace capture (the file is too short)")
            }
            OpenError::Header(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for OpenError {}

/// An error tied to the capture's path, as shown to users.
#[derive(Debug)]
pub struct CaptureError {
    pub path: PathBuf,
    pub kind: OpenError,
}

impl fmt::Display for CaptureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.kind)
    }
}

impl std::error::Error for CaptureError {}

enum Data {
    Mapped(Mmap),
    Owned(Vec<u8>),
}

impl Drop for Data {
    fn drop(&mut self) {
        // Its addresses may be mapped again for something else: a fault there is not ours.
        if let Data::Mapped(m) = self {
            shrunk::forget(m.as_ptr());
        }
    }
}

/// An open capture: its bytes and its decoded file header.
pub struct Capture {
    path: PathBuf,
    data: Data,
    pub header: FileHeader,
    /// Encoded length of the file header.
    pub header_len: usize,
    /// Where the file's holes are (a mapped capture's; None for one held in memory).
    holes: Option<holes::Holes>,
}

impl Capture {
    /// Maps the file at `path` and decodes its header.
    pub fn open(path: &Path) -> Result<Capture, CaptureError> {
        let err = |kind| CaptureError {
            path: path.to_path_buf(),
            kind,
        };
        let kind = |meta: &std::fs::Metadata| {
            if meta.is_dir() {
                Err(err(OpenError::IsDirectory))
            } else if !meta.is_file() {
                Err(err(OpenError::NotRegular))
            } else {
                Ok(())
            }
        };
        // Checked before opening: opening a FIFO for reading waits for a writer.
        kind(&std::fs::metadata(path).map_err(|e| err(OpenError::Io(e)))?)?;
        // Non-blocking, should the path have become a FIFO since: the check below then refuses it.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .map_err(|e| err(OpenError::Io(e)))?;
        kind(&file.metadata().map_err(|e| err(OpenError::Io(e)))?)?;
        // SAFETY: the map is read-only and private to this process. A capture that is still being
        // written only grows (the tracker appends); a file truncated under us faults (SIGBUS),
        // which `shrunk` turns into one line and exit 1.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| err(OpenError::Io(e)))?;
        shrunk::note(path, map.as_ptr(), map.len());
        let mut capture = Capture::from_data(path.to_path_buf(), Data::Mapped(map))?;
        capture.holes = Some(holes::Holes::new(file));
        Ok(capture)
    }

    /// A capture held in memory (tests, or data read from a pipe).
    pub fn from_bytes(path: impl Into<PathBuf>, bytes: Vec<u8>) -> Result<Capture, CaptureError> {
        Capture::from_data(path.into(), Data::Owned(bytes))
    }

    fn from_data(path: PathBuf, data: Data) -> Result<Capture, CaptureError> {
        let bytes: &[u8] = match &data {
            Data::Mapped(m) => m,
            Data::Owned(v) => v,
        };
        match FileHeader::decode(bytes) {
            Ok((header, header_len)) => Ok(Capture {
                path,
                data,
                header,
                header_len,
                holes: None,
            }),
            Err(e) => Err(CaptureError {
                path,
                kind: OpenError::Header(e),
            }),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The whole file.
    pub fn bytes(&self) -> &[u8] {
        match &self.data {
            Data::Mapped(m) => m,
            Data::Owned(v) => v,
        }
    }

    /// Lets the system drop the file's pages in `range` from this process's memory (they are
    /// read again from the file if needed): for a mapped capture that is read once, front to
    /// back. Nothing for a capture held in memory.
    pub fn release(&self, range: std::ops::Range<usize>) {
        if let Data::Mapped(m) = &self.data {
            let end = range.end.min(m.len());
            if range.start < end {
                // SAFETY: the map is private and read-only, never written: dropping its pages
                // only means reading them from the file again.
                let _ = unsafe {
                    m.unchecked_advise_range(
                        memmap2::UncheckedAdvice::DontNeed,
                        range.start,
                        end - range.start,
                    )
                };
            }
        }
    }

    /// Where the file's holes are, when the file system can tell.
    pub fn holes(&self) -> Option<&holes::Holes> {
        self.holes.as_ref()
    }

    /// Offset of the first chunk.
    pub fn data_start(&self) -> usize {
        FileHeader::data_start(self.header_len)
    }

    /// "MAJOR.MINOR" of the capture's format.
    pub fn format_version(&self) -> String {
        format!("{}.{}", self.header.major, self.header.minor)
    }

    /// The command line, arguments joined by spaces (lossy UTF-8).
    pub fn argv(&self) -> Vec<String> {
        self.header
            .argv
            .iter()
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect()
    }
}
