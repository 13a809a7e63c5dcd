//! The HTML report of `memtrace flamegraph`, written from Python (the IPython magic).

use memtrace_reporter::flamegraph_command::{self, FlamegraphArgs};
use memtrace_reporter::view_args::ViewArgs;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use std::path::PathBuf;

/// Writes `memtrace flamegraph`'s page for `capture` to `output`: the flamegraph of the memory
/// live at the peak (or at exit with `leaks`), memory over time and the top lines.
#[pyfunction]
#[pyo3(signature = (capture, output, *, leaks = false, inverted = false))]
pub fn write_flamegraph(
    py: Python<'_>,
    capture: PathBuf,
    output: PathBuf,
    leaks: bool,
    inverted: bool,
) -> PyResult<()> {
    let args = FlamegraphArgs {
        file: capture,
        diff: None,
        output: Some(output),
        inverted,
        view: ViewArgs {
            leaks,
            temporary: false,
            temporary_threshold: 1,
            threads: false,
            thread: None,
            include_startup: false,
            python_only: false,
            native_only: false,
        },
    };
    py.detach(|| flamegraph_command::write(&args))
        .map_err(PyValueError::new_err)
}
