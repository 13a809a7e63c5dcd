//! Object types: what is live at exit by Python type (`stats` table and `--json`, `tree
//! --by-type`, `summary --by-type`), with exact counts and bytes for two classes of known sizes
//! on every claimed Python; a native capture and bad arguments refused in one line each.

use memtrace_e2e::python::{claimed_pythons, tracked, write};
use memtrace_e2e::{compile, memtrace, record, scratch};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Two classes with `__slots__` (no dict, no weak references: each object is one block of
/// `sys.getsizeof` bytes on every version) and a known number of each live at exit; the script
/// prints the two sizes. A third class with a dict, whose size varies by version, is counted.
const SCRIPT: &str = "\
import sys
class Pair:
    __slots__ = (\"left\", \"right\")

class Quad:
    __slots__ = (\"a\", \"b\", \"c\", \"d\")

class Plain:
    pass

pairs = []
quads = []
for i in range(3000):
    pairs.append(Pair())
for i in range(1200):
    quads.append(Quad())
plain = [Plain() for i in range(700)]
print(sys.getsizeof(pairs[0]), sys.getsizeof(quads[0]))
";
const PAIRS: u64 = 3000;
const QUADS: u64 = 1200;
const PLAINS: u64 = 700;

fn run(python: &Path, dir: &Path) -> (PathBuf, u64, u64) {
    let script = write(dir, "known.py", SCRIPT);
    let capture = dir.join("known.bin");
    let out = tracked(
        python,
        &capture,
        &[script.to_str().expect("utf-8")],
        dir,
        b"",
    );
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let sizes: Vec<u64> = stdout
        .split_whitespace()
        .map(|w| w.parse().expect("a size"))
        .collect();
    assert_eq!(sizes.len(), 2, "{stdout}");
    (capture, sizes[0], sizes[1])
}

fn json(args: &[&str], dir: &Path) -> Value {
    let out = memtrace(args, dir);
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).expect("JSON")
}

fn entry<'a>(list: &'a Value, name: &str) -> &'a Value {
    list.as_array()
        .expect("a list")
        .iter()
        .find(|e| e["type"] == name)
        .unwrap_or_else(|| panic!("no type {name} in {list}"))
}

#[test]
fn known_classes_have_exact_counts_and_bytes_on_every_claimed_python() {
    for (minor, python) in claimed_pythons() {
        let dir = scratch(&format!("types-3{minor}"));
        let (capture, pair_size, quad_size) = run(&python, &dir);
        let path = capture.to_str().expect("utf-8");
        let stats = json(&["stats", "--json", path], &dir);
        let types = &stats["types"];
        assert_eq!(types["peak"], Value::Null, "3.{minor}: {types}");
        let exit = &types["exit"];
        let pair = entry(exit, "__main__.Pair");
        assert_eq!(pair["objects"], PAIRS, "3.{minor}: {pair}");
        assert_eq!(pair["bytes"], PAIRS * pair_size, "3.{minor}: {pair}");
        let quad = entry(exit, "__main__.Quad");
        assert_eq!(quad["objects"], QUADS, "3.{minor}: {quad}");
        assert_eq!(quad["bytes"], QUADS * quad_size, "3.{minor}: {quad}");
        assert_eq!(
            entry(exit, "__main__.Plain")["objects"],
            PLAINS,
            "3.{minor}"
        );
        // Every byte live at exit is in exactly one row ("<no object>" included).
        let sum: u64 = exit
            .as_array()
            .expect("rows")
            .iter()
            .map(|e| e["bytes"].as_u64().expect("bytes"))
            .sum();
        assert_eq!(sum, stats["leaked_bytes"], "3.{minor}: {exit}");

        // The by-type views: each type expands to the line that allocated its objects.
        for command in ["tree", "summary"] {
            let v = json(&[command, "--by-type", "--json", path], &dir);
            assert_eq!(v["view"], "leaks");
            let pair = entry(&v["types"], "__main__.Pair");
            assert_eq!(pair["objects"], PAIRS, "3.{minor} {command}: {pair}");
            assert_eq!(pair["bytes"], PAIRS * pair_size, "3.{minor} {command}");
            let lines = pair["lines"].as_array().expect("lines");
            assert_eq!(lines.len(), 1, "3.{minor} {command}: {pair}");
            assert_eq!(lines[0]["line"], 14, "3.{minor} {command}: {pair}");
            assert_eq!(lines[0]["allocations"], PAIRS, "3.{minor} {command}");
            assert_eq!(lines[0]["bytes"], PAIRS * pair_size, "3.{minor} {command}");
            let quad = entry(&v["types"], "__main__.Quad");
            assert_eq!(quad["lines"][0]["line"], 16, "3.{minor} {command}: {quad}");
        }
    }
}

#[test]
fn the_text_reports_show_the_types() {
    let (_, python) = claimed_pythons().pop().expect("a claimed Python");
    let dir = scratch("types-text");
    let (capture, pair_size, _) = run(&python, &dir);
    let path = capture.to_str().expect("utf-8");
    let out = memtrace(&["stats", path], &dir);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Types live at exit (exit only: the objects live when the script finished"),
        "{text}"
    );
    let row = text
        .lines()
        .find(|l| l.trim_start().starts_with("__main__.Pair "))
        .unwrap_or_else(|| panic!("no Pair row in {text}"));
    let words: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(words[1], "3,000", "{row}");
    let kib = format!("{:.1}", (PAIRS * pair_size) as f64 / 1024.0);
    assert_eq!(&words[2..], [kib.as_str(), "KiB"], "{row}");

    let out = memtrace(&["tree", "--by-type", path], &dir);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.ends_with("objects  __main__.Pair"))
        .unwrap_or_else(|| panic!("no Pair node in {text}"));
    assert!(lines[at].contains("3,000 objects"), "{text}");
    let site = format!(
        "allocations  <module> at {}:14",
        dir.join("known.py").display()
    );
    assert!(lines[at + 1].ends_with(&site), "{text}");
}

#[test]
fn a_native_capture_and_bad_arguments_are_one_line_each() {
    let dir = scratch("types-errors");
    let prog = compile("reports", &dir);
    let (native, out) = record(&dir, "native.bin", &prog, &[]);
    assert!(out.status.success(), "{out:?}");
    let native = native.to_str().expect("utf-8");
    // stats: no types for a native program (null in JSON, no table in text).
    let stats = json(&["stats", "--json", native], &dir);
    assert_eq!(stats["types"], Value::Null);
    for command in ["tree", "summary"] {
        let out = memtrace(&[command, "--by-type", native], &dir);
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.starts_with("memtrace: ") && err.contains("has no object types"),
            "{err}"
        );
        let out = memtrace(&[command, "--by-type", "--temporary", native], &dir);
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.contains("'--by-type' cannot be used with '--temporary'"),
            "{err}"
        );
    }
}

#[test]
fn no_types_skips_the_walk_and_changes_no_figure() {
    let (_, python) = claimed_pythons().pop().expect("a claimed Python");
    let dir = scratch("types-off");
    let script = write(&dir, "known.py", SCRIPT);
    let script = script.to_str().expect("utf-8");
    let capture = dir.join("off.bin");
    let path = capture.to_str().expect("utf-8");
    let python = python.to_str().expect("utf-8");
    let out = memtrace(
        &[
            "run",
            "-q",
            "-f",
            "--no-types",
            "-o",
            path,
            "--python",
            python,
            script,
        ],
        &dir,
    );
    assert!(out.status.success(), "{out:?}");
    // The program's output is its own.
    assert_eq!(out.stdout.split(|&b| b == b' ').count(), 2, "{out:?}");
    let stats = json(&["stats", "--json", path], &dir);
    assert_eq!(stats["types"], Value::Null);
    // Without types the capture has every other record: the classes' blocks are there, at
    // exit, on their lines.
    let on = json(&["lines", "--json", path], &dir);
    let file = &on["files"][0];
    let line14 = file["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .find(|l| l["line"] == 14)
        .expect("line 14");
    assert!(
        line14["exit_allocations"].as_u64().expect("n") >= PAIRS,
        "{line14}"
    );
    let out = memtrace(&["tree", "--by-type", path], &dir);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
}
