//! The `memtrace` binary's integration tests.
//!
//! One test binary per crate: each file beside this one is a module here, so the suite
//! links once. A file added and not declared here fails the end-to-end suite's
//! `every_test_file_is_a_module` (tests/tests/main.rs).

mod cli;
mod color;
#[path = "../../tests/common/mod.rs"]
mod common;
mod completions;
mod python_reports;
mod stats_text;
mod tui_panic;
mod unknown_note;
mod usage_errors;
