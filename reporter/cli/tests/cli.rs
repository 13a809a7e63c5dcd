//! The `memtrace` binary: errors, text and JSON output.

use crate::common::{write_bytes, CaptureBuilder, Chunk};
use memtrace_format::Allocator;
use std::path::Path;
use std::process::{Command, Output};

fn memtrace(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_memtrace"))
        .args(args)
        .output()
        .expect("memtrace runs")
}

fn stats(path: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["stats"];
    args.extend_from_slice(extra);
    let p = path.to_str().expect("utf-8 path");
    args.push(p);
    memtrace(&args)
}

/// One line on stderr starting with "memtrace: ", nothing on stdout, exit 1.
fn assert_one_line_error(out: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {err}");
    assert!(out.stdout.is_empty());
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("memtrace: "), "{err}");
    assert!(err.contains(needle), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

fn sample() -> CaptureBuilder {
    let mut b = CaptureBuilder::new();
    let mut c = Chunk::new();
    c.thread_name("main")
        .malloc(1_000, 0x1000, 100)
        .malloc(2_000, 0x2000, 2000)
        .free(3_000, 0x1000)
        .alloc(Allocator::Mmap, 4_000, 0x10_0000, 8192, 0)
        .exit_marker(5_000);
    b.events(1, 77, 0, &c);
    b.trailer(1_000_000_000);
    b
}

#[test]
fn missing_file() {
    let out = stats(Path::new("/nonexistent/dir/capture.bin"), &[]);
    assert_one_line_error(&out, "no such file");
}

#[test]
fn not_a_capture() {
    let p = write_bytes("text", b"hello, this is not a capture at all\n");
    assert_one_line_error(&stats(&p, &[]), "not a memtrace capture");
    let p = write_bytes("empty", b"");
    assert_one_line_error(&stats(&p, &[]), "not a memtrace capture");
    let dir = std::env::temp_dir();
    assert_one_line_error(&stats(&dir, &[]), "directory");
}

#[test]
fn unsupported_version() {
    let mut bytes = sample().bytes();
    bytes[8] = 9;
    let p = write_bytes("v9", &bytes);
    assert_one_line_error(
        &stats(&p, &["--json"]),
        &format!("version 9.{} is not supported", memtrace_format::MINOR),
    );
}

#[test]
fn usage_errors_are_one_line() {
    assert_one_line_error(&memtrace(&["stats"]), "memtrace --help");
    assert_one_line_error(&memtrace(&["frobnicate"]), "frobnicate");
    assert_one_line_error(&memtrace(&["stats", "-n", "lots", "x.bin"]), "lots");
    let help = memtrace(&["stats", "--help"]);
    assert_eq!(help.status.code(), Some(0));
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("Examples"));
    assert!(
        help.contains("top_modules [{module, file, bytes, count}]"),
        "{help}"
    );
}

#[test]
fn json_has_every_key() {
    let p = sample().write("json");
    let out = stats(&p, &["--json"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    for key in [
        "format_version",
        "command",
        "argv",
        "pid",
        "duration_s",
        "total_allocations",
        "total_bytes",
        "total_frees",
        "peak_bytes",
        "peak_time_s",
        "leaked_bytes",
        "leaked_allocations",
        "startup_bytes",
        "histogram",
        "allocators",
        "top_by_size",
        "top_by_count",
        "top_modules",
        "threads",
        "top_at_peak",
        "view",
        "view_bytes",
        "view_allocations",
        "temporary_threshold",
        "complete",
        "warnings",
    ] {
        assert!(v.get(key).is_some(), "{key} missing");
    }
    assert_eq!(v["format_version"], "1.4");
    assert_eq!(v["command"], "./prog --flag");
    assert_eq!(v["argv"], serde_json::json!(["./prog", "--flag"]));
    assert_eq!(v["pid"], 4242);
    assert_eq!(v["duration_s"], 1.0);
    assert_eq!(v["total_allocations"], 3);
    assert_eq!(v["total_bytes"], 100 + 2000 + 8192);
    assert_eq!(v["total_frees"], 1);
    assert_eq!(v["peak_bytes"], 2000 + 8192);
    assert_eq!(v["peak_time_s"], 4e-6);
    assert_eq!(v["leaked_bytes"], 2000 + 8192);
    assert_eq!(v["leaked_allocations"], 2);
    assert_eq!(v["complete"], true);
    assert_eq!(v["warnings"], serde_json::json!([]));
    assert_eq!(v["allocators"]["mmap"], 1);
    assert_eq!(
        v["histogram"][0],
        serde_json::json!({"lo": 64, "hi": 127, "count": 1, "bytes": 100})
    );
    let top = &v["top_by_size"][0];
    assert_eq!(top["location"], "<unknown>");
    assert_eq!(top["function"], serde_json::Value::Null);
    assert_eq!(top["file"], serde_json::Value::Null);
    assert_eq!(top["line"], serde_json::Value::Null);
    assert_eq!(top["bytes"], 10292);
    assert_eq!(top["count"], 3);
    assert_eq!(top["stack"], serde_json::json!([]));
    assert_eq!(
        v["top_modules"],
        serde_json::json!([{"module": "<unknown>", "file": null, "bytes": 10292, "count": 3}])
    );
    assert_eq!(
        v["threads"],
        serde_json::json!([{"tid": 77, "name": "main", "allocations": 3, "bytes": 10292,
            "peak_bytes": 2000 + 8192, "peak_allocations": 2, "top_at_peak": null}])
    );
    assert!(
        v["startup_bytes"].is_null(),
        "a native capture has no script start"
    );
    assert_eq!(v["view"], "all");
    assert_eq!(
        (v["view_bytes"].as_u64(), v["view_allocations"].as_u64()),
        (Some(10292), Some(3))
    );
    assert_eq!(v["top_at_peak"][0]["bytes"], 2000 + 8192);
    assert_eq!(v["top_at_peak"][0]["count"], 2);
}

#[test]
fn text_report_and_warnings_on_stderr() {
    let mut b = sample();
    // Truncate the trailer away and add damage: warnings.
    let mut bytes = b.bytes();
    bytes.truncate(bytes.len() - 8);
    b.file = bytes;
    let p = b.write("text");
    let out = stats(&p, &["-n", "3"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "Command:      ./prog --flag",
        "PID:          4242",
        "Total allocations:      3",
        "Peak memory:            10.0 KiB (10,192 bytes) in 2 allocations, at 0.000 s",
        "Live at exit:",
        "64 B - 127 B",
        "8.0 KiB - 16.0 KiB",
        "Allocators:",
        "malloc",
        "Top 1 location by bytes allocated:",
        "<unknown>",
        "main",
    ] {
        assert!(text.contains(needle), "{needle:?} not in:\n{text}");
    }
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("memtrace: warning: capture is truncated"),
        "{err}"
    );
    assert!(
        err.contains("memtrace: warning: capture is incomplete"),
        "{err}"
    );
    // JSON mode keeps stderr quiet and puts the warnings in the object.
    let out = stats(&p, &["--json"]);
    assert!(out.stderr.is_empty());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["complete"], false);
    assert_eq!(v["warnings"].as_array().map(Vec::len), Some(2));
}

#[test]
fn library_errors_are_results() {
    use memtrace_reporter::report::stats::report;
    let missing = report(Path::new("/nonexistent/capture.bin"), 5).expect_err("missing");
    assert_eq!(
        missing.to_string(),
        "/nonexistent/capture.bin: no such file"
    );
    let text = write_bytes("lib-text", b"#!/bin/sh\necho not a capture\n");
    let e = report(&text, 5).expect_err("not a capture");
    assert!(
        e.to_string()
            .ends_with("not a memtrace capture (bad magic number)"),
        "{e}"
    );
    let mut bytes = sample().bytes();
    bytes[8] = 2;
    let v2 = write_bytes("lib-v2", &bytes);
    let e = report(&v2, 5).expect_err("version 2");
    assert!(
        e.to_string().contains(&format!(
            "capture format version 2.{} is not supported",
            memtrace_format::MINOR
        )),
        "{e}"
    );
    let ok = report(&sample().write("lib-ok"), 5).expect("a capture");
    assert_eq!(ok.total_allocations, 3);
}
