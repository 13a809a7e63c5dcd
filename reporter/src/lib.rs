//! The memtrace reporter library: reads captures written by the tracker and builds reports on
//! them. The `memtrace` command (reporter/cli) and the Python package are built on it; it shows
//! nothing on a terminal itself (progress is a callback the caller passes in).
//!
//! - [`capture`]: the file (header, chunk index, decoding, the merged event stream)
//! - [`analysis`]: totals and the live-heap replay (peak, leaks)
//! - [`symbols`]: native addresses to functions and lines
//! - [`report`]: the reports built from an analysis
//! - [`export`]: standard formats (collapsed stacks, speedscope, pprof, CSV)
//! - [`flamegraph`]: the HTML pages (flamegraph, memory over time)
//! - [`index`]: what the first report of a capture leaves for the next ones
//! - [`output`]: files a report writes are never its inputs

pub mod analysis;
pub mod capture;
pub mod export;
pub mod family;
pub mod flamegraph;
pub mod index;
pub mod output;
pub mod regular_file;
pub mod report;
pub mod symbols;
