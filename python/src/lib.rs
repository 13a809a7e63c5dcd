//! `memtrace._native`: the Rust half of the memtrace Python package, on top of the reporter
//! crate: `FileReader` (a capture's metadata and allocation records) and the HTML report.

mod errors;
mod events;
mod family;
mod flamegraph;
mod groups;
mod peak;
mod pool;
mod reader;
mod record;
mod shared;
mod stacks;

use pyo3::prelude::*;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<reader::FileReader>()?;
    m.add_class::<shared::Metadata>()?;
    m.add_class::<reader::Records>()?;
    m.add_class::<reader::Events>()?;
    m.add_class::<record::AllocationRecord>()?;
    m.add("CaptureError", m.py().get_type::<errors::CaptureError>())?;
    m.add_function(wrap_pyfunction!(flamegraph::write_flamegraph, m)?)?;
    m.add_function(wrap_pyfunction!(family::family, m)?)?;
    m.add_function(wrap_pyfunction!(peak::aggregated_peak, m)?)?;
    Ok(())
}
