//! The report commands, one module each. Each returns a `Result` whose error is the one line
//! `main` prints; what two of them share lives in the library (memtrace-reporter), not here.

pub mod completions;
pub mod diff;
pub mod export;
pub mod flamegraph;
pub mod lines;
pub mod live;
pub mod stats;
pub mod summary;
pub mod tree;
