//! The Python exceptions of the package: a capture that cannot be read is a `CaptureError`
//! (a subclass of `ValueError`), a missing one `FileNotFoundError`, other I/O `OSError`.

use memtrace_reporter::capture::{CaptureError as OpenFailure, OpenError};
use pyo3::exceptions::{PyFileNotFoundError, PyIsADirectoryError, PyOSError, PyValueError};
use pyo3::{create_exception, PyErr};
use std::io::ErrorKind;

create_exception!(
    memtrace,
    CaptureError,
    PyValueError,
    "The file is not a readable memtrace capture (not a capture, corrupt, or an unsupported format version)."
);

/// The Python exception for a capture that could not be opened.
pub fn open_error(e: OpenFailure) -> PyErr {
    let message = e.to_string();
    match &e.kind {
        OpenError::Io(io) if io.kind() == ErrorKind::NotFound => {
            PyFileNotFoundError::new_err(message)
        }
        OpenError::Io(_) => PyOSError::new_err(message),
        OpenError::IsDirectory => PyIsADirectoryError::new_err(message),
        OpenError::NotRegular => PyOSError::new_err(message),
        OpenError::Header(_) => CaptureError::new_err(message),
    }
}
