//! The memtrace reporter: reads captures written by the tracker and reports on them, and runs
//! programs under the tracker (`memtrace run`).
//!
//! - [`capture`]: the file (header, chunk index, decoding, the merged event stream)
//! - [`analysis`]: totals and the live-heap replay (peak, leaks)
//! - [`symbols`]: native addresses to functions and lines
//! - [`report`]: the reports built from an analysis
//! - [`stats`], [`run`]: the subcommands

pub mod analysis;
pub mod capture;
pub mod progress;
pub mod report;
pub mod run;
pub mod stats;
pub mod summary;
pub mod symbols;
pub mod tree;
pub mod view_args;
