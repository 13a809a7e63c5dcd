//! Allocations without a Python frame: the main script's compilation (after `site`, before
//! its first line) is charged to `<compile>` at the script, so a short script's top lists name
//! its own lines and that, never `<unknown>`. (What stays `<unknown>`, a thread starting, is
//! explained in every text report: reporter/cli/tests/unknown_note.rs.)

use memtrace_e2e::python::{claimed_pythons, tracked, write, KNOWN_LINES, SITE_BYTES};
use memtrace_e2e::{num, report, scratch};
use serde_json::Value;
use std::path::Path;

fn locations(rows: &Value) -> Vec<String> {
    rows.as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            r["location"]
                .as_str()
                .or(r["module"].as_str())
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

/// The row of `rows` at `file:line` (line null: `<compile>`).
fn row<'a>(rows: &'a Value, file: &Path, line: Option<u64>) -> &'a Value {
    let file = file.to_str().expect("utf-8 path");
    rows.as_array()
        .into_iter()
        .flatten()
        .find(|r| r["file"].as_str() == Some(file) && r["line"].as_u64() == line)
        .unwrap_or_else(|| panic!("{file}:{line:?} in {rows:#}"))
}

#[test]
fn a_short_script_has_no_unknown_among_its_top_five() {
    for (minor, python) in claimed_pythons() {
        let dir = scratch(&format!("unknown-3{minor}"));
        let script = write(&dir, "known_lines.py", KNOWN_LINES);
        let capture = dir.join("known_lines.bin");
        let words = [script.to_str().expect("utf-8 path"), "20000"];
        let out = tracked(&python, &capture, &words, &dir, b"");
        assert!(out.status.success(), "3.{minor}: {out:?}");

        let v = report(&["stats", "--json", "-n", "5"], &capture);
        for list in ["top_by_size", "top_by_count", "top_at_peak"] {
            let names = locations(&v[list]);
            assert_eq!(names.len(), 5, "3.{minor} {list}: {names:?}");
            assert!(
                !names.iter().any(|n| n == "<unknown>"),
                "3.{minor} {list}: {names:?}"
            );
        }
        // The known lines, among the top 10: the program's own `import threading` (its
        // unmarshalling) may come before the compilation on some versions.
        let v = report(&["stats", "--json", "-n", "10"], &capture);
        // f's bytes object at line 5, called from g at line 9, exactly.
        let f = row(&v["top_by_size"], &script, Some(5));
        assert_eq!(
            (num(f, "bytes"), num(f, "count")),
            (SITE_BYTES, 1),
            "3.{minor}"
        );
        assert_eq!(f["stack"][1]["line"], 9, "3.{minor}");
        // The compilation: after `site`, before line 1, on the main thread: `<compile>` at the
        // script, among the top 10 by bytes (some hundred KiB in about a thousand allocations).
        let compile = row(&v["top_by_size"], &script, None);
        assert_eq!(compile["function"], "<compile>", "3.{minor}");
        assert!(
            (500..5_000).contains(&num(compile, "count")),
            "3.{minor}: {compile}"
        );
        // churn's bytes objects: 20,000 of 100 + i % 50 bytes, each with a 33-byte header.
        let churn = row(&v["top_by_size"], &script, Some(16));
        let bytes: i64 = (0..20_000).map(|i| 100 + i % 50 + 33).sum();
        assert!(num(churn, "bytes") >= bytes, "3.{minor}: {churn}");
        assert!(num(churn, "count") >= 20_000, "3.{minor}: {churn}");
    }
}

/// A script whose file name is not UTF-8 (its bytes kept by Python as surrogate escapes): its
/// compilation is `<compile>` at it too, not `<unknown>` (the tracker took only a str it could
/// give as UTF-8).
#[test]
fn a_script_named_in_bytes_that_are_not_utf8_has_its_compilation() {
    use std::os::unix::ffi::OsStrExt;
    for (minor, python) in claimed_pythons() {
        let dir = scratch(&format!("unknown-bytes-3{minor}"));
        let name = std::ffi::OsStr::from_bytes(b"bad\xff\xfename.py");
        let script = dir.join(name);
        std::fs::write(&script, KNOWN_LINES).expect("script");
        let capture = dir.join("bytes.bin");
        let mut cmd = std::process::Command::new(memtrace_e2e::memtrace_bin());
        cmd.args(["run", "-q", "-f", "-o"])
            .arg(&capture)
            .arg("--python")
            .arg(&python)
            .arg(&script)
            .arg("20000")
            .current_dir(&dir);
        let out = memtrace_e2e::watchdog::output_within(&mut cmd, memtrace_e2e::watchdog::LIMIT);
        assert!(out.status.success(), "3.{minor}: {out:?}");
        let v = report(&["stats", "--json", "-n", "10"], &capture);
        let names = locations(&v["top_by_size"]);
        assert!(
            !names.iter().any(|n| n == "<unknown>"),
            "3.{minor}: {names:?}"
        );
        let compile = v["top_by_size"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["function"] == "<compile>")
            .unwrap_or_else(|| panic!("3.{minor}: no <compile> in {names:?}"));
        assert!(
            (500..5_000).contains(&num(compile, "count")),
            "3.{minor}: {compile}"
        );
    }
}
