//! The README's first command runs memtrace on examples/demo.py: what the README and the
//! example's docstring promise of it (a 5 MB leak, a 20 MB temporary spike, a 50 MB peak) is
//! what the reports show, on every claimed CPython. (CI runs the README's command itself.)

use memtrace_e2e::python::{claimed_pythons, python, tracked};
use memtrace_e2e::{memtrace, num, report, scratch, workspace};
use serde_json::Value;

/// The demo's lines that allocate what it promises.
const LEAK_LINE: u64 = 19;
const SPIKE_LINE: u64 = 24;
const PEAK_LINE: u64 = 30;

/// The row of a top list at `demo.py:line`.
fn at_line(rows: &Value, line: u64) -> (i64, i64) {
    let row = rows
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| {
            r["file"]
                .as_str()
                .is_some_and(|f| f.ends_with("examples/demo.py"))
                && r["line"].as_u64() == Some(line)
        })
        .unwrap_or_else(|| panic!("demo.py:{line} in {rows:#}"));
    (num(row, "bytes"), num(row, "count"))
}

#[test]
fn the_demo_has_its_leak_spike_and_peak() {
    let demo = workspace().join("examples/demo.py");
    let demo = demo.to_str().expect("utf-8 path");
    for (minor, python) in claimed_pythons() {
        let dir = scratch(&format!("first-steps-3{minor}"));
        let capture = dir.join("demo.bin");
        let out = tracked(&python, &capture, &[demo], &dir, b"");
        assert!(out.status.success(), "3.{minor}: {out:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "report: 50,000,000 bytes in 5,000 rows; cache: 5 MB\n"
        );

        // The peak: 5,000 rows of 10,000 bytes (a bytes object is a 33-byte header and its
        // data) and the list's array of 5,228 pointers (CPython's growth to 5,000 items).
        let peak = report(&["stats", "--json"], &capture);
        assert_eq!(
            at_line(&peak["top_at_peak"], PEAK_LINE),
            (5_000 * 10_033 + 5_228 * 8, 5_001),
            "3.{minor}"
        );
        // The leak: five 1,000,000-byte buffers (and their NUL), their five 56-byte bytearray
        // objects and the cache list's array of 8 pointers.
        let leaks = report(&["stats", "--json", "--leaks"], &capture);
        assert_eq!(
            at_line(&leaks["top_by_size"], LEAK_LINE),
            (5 * 1_000_001 + 5 * 56 + 64, 11),
            "3.{minor}"
        );
        // The spike: one 20,000,000-byte copy, freed before the next allocation.
        let temporary = report(&["stats", "--json", "--temporary"], &capture);
        assert_eq!(
            at_line(&temporary["top_by_size"], SPIKE_LINE),
            (20_000_033, 1),
            "3.{minor}"
        );
        // The spike came and went before the peak: the peak is the table and the leak.
        assert!(num(&peak, "peak_bytes") < 5_000 * 10_033 + 5_228 * 8 + 5_000_349 + (1 << 20));
    }
}

#[test]
fn the_hint_after_a_python_run_names_the_tree_and_the_flamegraph() {
    let dir = scratch("first-steps-hint");
    let demo = workspace().join("examples/demo.py");
    let py = python().to_str().expect("utf-8 path");
    let demo = demo.to_str().expect("utf-8 path");
    let out = memtrace(&["run", "-o", "demo.bin", "--python", py, demo], &dir);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "memtrace: wrote demo.bin; see where the peak's memory was allocated with: memtrace tree \
         demo.bin (or the page: memtrace flamegraph demo.bin)\n"
    );
    // A native run's first look is the summary.
    let out = memtrace(&["run", "-o", "true.bin", "--", "/bin/true"], &dir);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "memtrace: wrote true.bin; view it with: memtrace stats true.bin\n"
    );
}
