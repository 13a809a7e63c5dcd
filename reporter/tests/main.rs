//! The report library's integration tests, on captures built in memory.
//!
//! One test binary per crate: each file beside this one is a module here, so the suite
//! links once. A file added and not declared here fails the end-to-end suite's
//! `every_test_file_is_a_module` (tests/tests/main.rs).

mod caps;
mod common;
mod dependencies;
mod failure_reasons;
mod follow;
mod garbage;
mod index;
mod merge;
mod object_types;
mod stats;
