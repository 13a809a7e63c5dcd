//! `memtrace._native.aggregated_peak(path)`: an aggregated capture's peak from its snapshots
//! alone, without the analysis `FileReader` makes (its tables, stacks and symbols): what the
//! pytest plugin needs of most tests' captures.

use crate::errors;
use memtrace_reporter::capture::{aggregate, scan, Capture};
use pyo3::prelude::*;
use std::path::PathBuf;

/// `(peak_bytes, peak_allocations)` of an aggregated capture, the figures
/// `FileReader(path).metadata` gives; None for a full capture or one without a snapshot.
#[pyfunction]
pub fn aggregated_peak(py: Python<'_>, path: PathBuf) -> PyResult<Option<(u64, u64)>> {
    let capture = py
        .detach(|| Capture::open(&path))
        .map_err(|e| errors::open_error(py, e))?;
    Ok(py.detach(|| {
        crate::pool::transient(|| {
            let file = capture.bytes();
            let index = scan::scan_capture(&capture);
            if !index.settings.aggregate {
                return None;
            }
            let (sums, _) = aggregate::read(file, &index);
            sums.map(|a| (a.head.peak_bytes, a.head.peak_count))
        })
    }))
}
