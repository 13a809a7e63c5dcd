//! `memtrace._native.family(path)`: a capture's process family (`Tracker(follow_fork=True)`,
//! `memtrace run --follow-fork`) through the reporter library: each process's figures and the
//! combined peak, the highest sum of their live heaps at one moment. None without children.

use memtrace_reporter::family::{report, view};
use memtrace_reporter::report::views::ViewOptions;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use std::path::PathBuf;

/// A dict: `combined_peak_bytes`, `combined_peak_allocations`, `combined_peak_time_s`,
/// `combined_peak_by_process` (a list of `(pid, bytes)`) and `processes` (a list of dicts: pid, parent_pid, command, peak_bytes,
/// total_bytes, leaked_bytes, tracked, complete) and `warnings` (captures left out of the
/// family, damaged ones); None when the capture has no children.
#[pyfunction]
#[pyo3(signature = (path, *, include_startup = false))]
pub fn family(py: Python<'_>, path: PathBuf, include_startup: bool) -> PyResult<Option<Py<PyAny>>> {
    let (built, warnings) = py
        .detach(|| crate::pool::transient(|| report::build(&path, include_startup)))
        .map_err(PyValueError::new_err)?;
    let Some(f) = built else {
        return Ok(None);
    };
    let d = PyDict::new(py);
    // Captures beside this one left out of the family (an earlier run's), and damaged ones.
    let mut all = warnings;
    all.extend(f.warnings.iter().cloned());
    d.set_item("warnings", all)?;
    d.set_item("combined_peak_bytes", f.combined_peak_bytes)?;
    d.set_item("combined_peak_time_s", f.combined_peak_time_s)?;
    let shares: Vec<(u32, u64)> = f
        .combined_peak_by_process
        .iter()
        .map(|s| (s.pid, s.bytes))
        .collect();
    d.set_item("combined_peak_by_process", shares)?;
    // The allocations live at the combined peak: the family's peak view (each process's
    // capture read again, to its share of the peak).
    let view = ViewOptions {
        include_startup,
        ..ViewOptions::default()
    };
    let allocations = py
        .detach(|| crate::pool::transient(|| view::build(&path, &view)))
        .map_err(PyValueError::new_err)?
        .map_or(0, |t| t.tree.root().allocations);
    d.set_item("combined_peak_allocations", allocations)?;
    let procs = PyList::empty(py);
    for p in &f.processes {
        let row = PyDict::new(py);
        row.set_item("pid", p.pid)?;
        row.set_item("parent_pid", p.parent_pid)?;
        row.set_item("command", &p.command)?;
        row.set_item("peak_bytes", p.peak_bytes)?;
        row.set_item("total_bytes", p.total_bytes)?;
        row.set_item("leaked_bytes", p.leaked_bytes)?;
        row.set_item("tracked", p.tracked)?;
        row.set_item("complete", p.complete)?;
        procs.append(row)?;
    }
    d.set_item("processes", procs)?;
    Ok(Some(d.into_any().unbind()))
}
