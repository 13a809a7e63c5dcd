//! The HTML report of `memtrace flamegraph`, written from Python (the IPython magic) through
//! the reporter library's plain function.

use memtrace_reporter::flamegraph::report;
use memtrace_reporter::report::views::{View, ViewOptions};
use memtrace_reporter::report::visible::escape;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use std::path::PathBuf;

/// Writes `memtrace flamegraph`'s interactive page for `capture` to `output`, opening on the
/// memory live at the peak (or at exit with `leaks`): every other view is picked in the page.
/// The caller says where it went (the IPython magic prints it in the cell's output).
#[pyfunction]
#[pyo3(signature = (capture, output, *, leaks = false, inverted = false))]
pub fn write_flamegraph(
    py: Python<'_>,
    capture: PathBuf,
    output: PathBuf,
    leaks: bool,
    inverted: bool,
) -> PyResult<()> {
    // As FileReader says it (and open()): a missing capture is FileNotFoundError.
    if !capture.exists() {
        let err = pyo3::exceptions::PyFileNotFoundError::new_err(format!(
            "{}: no such file",
            capture.display()
        ));
        let _ = err.value(py).setattr("errno", 2);
        return Err(err);
    }
    let view = ViewOptions {
        view: if leaks { View::Leaks } else { View::Peak },
        ..ViewOptions::default()
    };
    py.detach(|| {
        crate::pool::transient(|| {
            report::write(&capture, &output, &view, inverted, &mut |warnings| {
                for w in warnings {
                    eprintln!("memtrace: warning: {}", escape(w));
                }
            })?;
            Ok::<(), String>(())
        })
    })
    // The command's words are not this function's: its output is `output`, not `-o`.
    .map_err(|e| PyValueError::new_err(e.replace("with -o)", "as output)")))
}
