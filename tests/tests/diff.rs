//! `memtrace diff`: two runs of a script whose one line allocates twice as much in NEW.

use memtrace_e2e::python::two_runs;
use memtrace_e2e::watchdog::Watched;
use memtrace_e2e::{memtrace_bin, num, stats};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// `b"\0" * n` is one allocation of the bytes object: a 32-byte header, n bytes and a NUL.
const BLOCK: i64 = 10_000_000 + 33;

const SCRIPT: &str = "\
import sys


def block():
    return b\"\\0\" * 10_000_000


keep = []
for _ in range(int(sys.argv[1])):
    keep.append(block())
";

fn runs(name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let (dir, _script, base, new) = two_runs(name, SCRIPT);
    (dir, base, new)
}

fn diff(args: &[&str], base: &Path, new: &Path) -> Output {
    Command::new(memtrace_bin())
        .arg("diff")
        .args(args)
        .arg(base)
        .arg(new)
        .output_watched()
}

#[test]
fn the_line_allocating_twice_as_much_is_plus_100_percent() {
    let (dir, base, new) = runs("diff-twice");
    let out = diff(&["--json"], &base, &new);
    assert!(out.status.success(), "{out:?}");
    let d: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let file = dir.join("twice.py").display().to_string();
    let row = d["locations"]
        .as_array()
        .expect("locations")
        .iter()
        .find(|r| r["location"] == format!("block at {file}:5"))
        .unwrap_or_else(|| panic!("no row for block: {d}"));
    assert_eq!(num(&row["bytes"], "base"), BLOCK);
    assert_eq!(num(&row["bytes"], "new"), 2 * BLOCK);
    assert_eq!(num(&row["bytes"], "change"), BLOCK);
    assert_eq!(row["bytes"]["percent"].as_f64(), Some(100.0));
    assert_eq!(num(&row["allocations"], "change"), 1);
    // It is the largest change, and the peaks are those of stats.
    assert_eq!(d["locations"][0]["location"], row["location"]);
    assert_eq!(
        num(&d["peak_bytes"], "base"),
        num(&stats(&base), "peak_bytes")
    );
    assert_eq!(
        num(&d["peak_bytes"], "new"),
        num(&stats(&new), "peak_bytes")
    );
    assert_eq!(
        num(&d["total_bytes"], "change"),
        num(&stats(&new), "total_bytes") - num(&stats(&base), "total_bytes")
    );
    // The text table says the same.
    let out = diff(&[], &base, &new);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.ends_with(&format!("  block at {file}:5")))
        .unwrap_or_else(|| panic!("no line for block:\n{text}"));
    assert!(line.contains(" +100.0% "), "{line}");
    // A capture against itself: no changes.
    let same: Value =
        serde_json::from_slice(&diff(&["--json"], &base, &base).stdout).expect("JSON");
    assert_eq!(same["locations"], Value::Array(vec![]));
    assert_eq!(num(&same["peak_bytes"], "change"), 0);
}

#[test]
fn a_missing_capture_is_a_one_line_error() {
    let (_dir, base, _new) = runs("diff-missing");
    let out = diff(&[], &base, Path::new("/nonexistent/new.bin"));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("memtrace: "), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn a_native_capture_is_compared_with_a_plain_one_by_its_python_frames() {
    // Innermost, a --native capture has the C function that allocated, a plain one the Python
    // line: compared as they are, every location of one would be missing from the other.
    let (dir, base, plain) = runs("diff-native");
    let native = dir.join("native2.bin");
    let script = dir.join("twice.py");
    let out = Command::new(memtrace_bin())
        .args(["run", "-q", "-f", "--native", "-o"])
        .arg(&native)
        .arg("--python")
        .arg(memtrace_e2e::python::python())
        .arg(&script)
        .arg("2")
        .env("PYTHONHASHSEED", "0")
        .output_watched();
    assert!(out.status.success(), "{out:?}");
    for (b, n, with, without) in [
        (&base, &native, "NEW", "BASE"),
        (&native, &base, "BASE", "NEW"),
    ] {
        let out = diff(&["--json"], b, n);
        assert!(out.status.success(), "{out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        let note = format!("memtrace: {with} has native stacks and {without} has not: locations are compared by their Python frames (as with --python-only)");
        assert!(err.contains(&note), "{err}");
        let d: Value = serde_json::from_slice(&out.stdout).expect("JSON");
        let rows = d["locations"].as_array().expect("locations");
        let block = format!("block at {}:5", script.display());
        let row = rows
            .iter()
            .find(|r| r["location"] == block)
            .unwrap_or_else(|| panic!("no row for block: {d}"));
        let (from, to) = if with == "NEW" { (1, 2) } else { (2, 1) };
        assert_eq!(num(&row["bytes"], "base"), from * BLOCK, "{row}");
        assert_eq!(num(&row["bytes"], "new"), to * BLOCK, "{row}");
        // No C function holds the blocks.
        assert_eq!(d["locations"][0]["location"], row["location"], "{d}");
    }
    // The same run with and without native stacks: the script's compilation is `<compile>`
    // on both sides (the --native side's was the interpreter's parser, and `<compile>` read as
    // gone).
    let out = diff(&["--json"], &plain, &native);
    assert!(out.status.success(), "{out:?}");
    let d: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let rows = d["locations"].as_array().expect("locations");
    let compile = format!("<compile> at {}", script.display());
    for r in rows {
        let location = r["location"].as_str().unwrap_or_default();
        let (was, now) = (num(&r["bytes"], "base"), num(&r["bytes"], "new"));
        if location == compile {
            assert!((was - now).abs() * 100 <= was, "{r}");
        }
        assert!(!location.starts_with("block_new"), "{d}");
    }
    // Frames chosen by the user are kept as chosen, with nothing to say.
    let out = diff(&["--json", "--native-only"], &base, &native);
    assert!(out.status.success(), "{out:?}");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("compared by their Python frames"));
}
