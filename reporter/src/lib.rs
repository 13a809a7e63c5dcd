//! The memtrace reporter: reads captures written by the tracker and reports on them, and runs
//! programs under the tracker (`memtrace run`).
//!
//! - [`capture`]: the file (header, chunk index, decoding, the merged event stream)
//! - [`analysis`]: totals and the live-heap replay (peak, leaks)
//! - [`symbols`]: native addresses to functions and lines
//! - [`report`]: the reports built from an analysis
//! - [`export`]: standard formats (collapsed stacks, speedscope, pprof, CSV)
//! - [`stats`], [`run`]: the subcommands
//! - [`tui`]: the interactive terminal UI of a call tree

pub mod analysis;
pub mod capture;
pub mod diff;
pub mod export;
pub mod export_command;
pub mod flamegraph;
pub mod flamegraph_command;
pub mod flamegraph_diff;
pub mod output;
pub mod progress;
pub mod report;
pub mod run;
pub mod stats;
pub mod summary;
pub mod symbols;
pub mod tree;
pub mod tui;
pub mod view_args;
