//! The `memtrace` binary's integration tests.
//!
//! One test binary per crate: each file beside this one is a module here, so the suite
//! links once. `every_test_file_is_a_module` fails when a file is added and not declared.

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

/// Cargo's automatic test discovery is off for this crate (one binary), so a new file in this
/// folder would otherwise be silently left out of the suite.
#[test]
fn every_test_file_is_a_module() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let declared = include_str!("main.rs");
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("the tests folder is readable") {
        let path = entry.expect("a directory entry").path();
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        let is_test_file = path.extension().is_some_and(|e| e == "rs") && stem != "main";
        if is_test_file && !declared.contains(&format!("mod {stem};")) {
            missing.push(stem.to_string());
        }
    }
    assert!(
        missing.is_empty(),
        "test files not declared in main.rs: {missing:?}"
    );
}
