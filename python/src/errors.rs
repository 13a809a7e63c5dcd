//! The Python exceptions of the package: a capture that cannot be read is a `CaptureError`
//! (a subclass of `ValueError`), a missing one `FileNotFoundError`, other I/O `OSError`.

use memtrace_reporter::capture::{CaptureError as OpenFailure, OpenError};
use pyo3::exceptions::{PyFileNotFoundError, PyIsADirectoryError, PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::{create_exception, PyErr};
use std::io::ErrorKind;

create_exception!(
    memtrace,
    CaptureError,
    PyValueError,
    "The file is not a readable memtrace capture (not a capture, corrupt, or an unsupported format version)."
);

/// The Python exception for a capture that could not be opened: its message names the file.
/// A system call's failure is the `OSError` `open()` raises (`errno`, `strerror`, `filename`:
/// `e.errno == errno.EACCES` works, and `e.filename` names the capture); the other
/// `OSError`s carry `errno` where there is one.
pub fn open_error(py: Python<'_>, e: OpenFailure) -> PyErr {
    if let OpenError::Io(io) = &e.kind {
        if let Some(n) = io.raw_os_error() {
            let strerror = strerror(py, n);
            let filename = e.path.clone().into_os_string();
            return if io.kind() == ErrorKind::NotFound {
                PyFileNotFoundError::new_err((n, strerror, filename))
            } else {
                PyOSError::new_err((n, strerror, filename))
            };
        }
    }
    let message = e.to_string();
    let (err, errno) = match &e.kind {
        OpenError::Io(io) if io.kind() == ErrorKind::NotFound => {
            (PyFileNotFoundError::new_err(message), io.raw_os_error())
        }
        OpenError::Io(io) => (PyOSError::new_err(message), io.raw_os_error()),
        OpenError::IsDirectory => (PyIsADirectoryError::new_err(message), Some(EISDIR)),
        OpenError::NotRegular => (PyOSError::new_err(message), None),
        OpenError::Header(_) => (CaptureError::new_err(message), None),
    };
    if let Some(n) = errno {
        // Setting an attribute of a new exception object cannot fail but on memory.
        let _ = err.value(py).setattr("errno", n);
    }
    err
}

/// EISDIR, the same number on every Linux architecture.
const EISDIR: i32 = 21;

/// The system's text for an error number, as Python's `os.strerror` gives it.
fn strerror(py: Python<'_>, n: i32) -> String {
    py.import("os")
        .and_then(|os| os.call_method1("strerror", (n,)))
        .and_then(|s| s.extract::<String>())
        .unwrap_or_else(|_| format!("error {n}"))
}
