//! End-to-end tests: C and Python programs run under memtrace.
//!
//! One test binary per crate: each file beside this one is a module here, so the suite
//! links once. `every_test_file_is_a_module` fails when a file is added to this crate's
//! test folder, or the reporter's or the command's, and not declared.

mod address_limit;
mod aggregate;
mod attach;
mod browser;
mod color;
mod cxx;
mod diff;
mod embedding;
mod environments;
mod exec;
mod export_readers;
mod exports;
mod families;
mod first_steps;
mod flamegraph;
mod flamegraph_diff;
mod forks;
mod hostile;
mod index;
mod inherited;
mod inprocess;
mod lines;
mod live;
mod native;
mod native_stacks;
mod oom;
mod promises;
mod python;
mod python_tracking;
mod reports;
mod run_safety;
mod sampling;
mod sandbox;
mod threads;
mod torture;
mod tui;
mod tui_keys;
mod types;
mod unknown;

/// Cargo's automatic test discovery is off in every crate with one test binary, so a new file in
/// one of their test folders would otherwise be silently left out of the suite.
#[test]
fn every_test_file_is_a_module() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut missing = Vec::new();
    for folder in ["tests/tests", "reporter/tests", "reporter/cli/tests"] {
        let dir = root.join(folder);
        let declared = std::fs::read_to_string(dir.join("main.rs")).expect("a main.rs");
        for entry in std::fs::read_dir(&dir).expect("the tests folder is readable") {
            let path = entry.expect("a directory entry").path();
            let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
                continue;
            };
            let is_test_file = path.extension().is_some_and(|e| e == "rs") && stem != "main";
            if is_test_file && !declared.contains(&format!("mod {stem};")) {
                missing.push(format!("{folder}/{stem}.rs"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "test files not declared in their main.rs: {missing:?}"
    );
}
