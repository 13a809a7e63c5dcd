//! C++ programs: what `new` allocates is counted at the line of the `new`, not inside
//! libstdc++'s `operator new` (nor C's `strdup`), with and without `--native`, in every report
//! that groups by location (stats' top lists, failed requests and modules, the CSV export,
//! diff).

use memtrace_e2e::*;
use serde_json::Value;
use std::path::Path;

/// (line, bytes, allocations) of tests/programs/cxx_sites.cpp run with N = 3.
const SITES: [(u64, u64, u64); 8] = [
    (16, 12_000, 4),
    (21, 3_000, 1),
    (22, 400, 1),
    (23, 700, 1),
    (24, 8, 1),
    (25, 640, 1),
    (26, 17, 1),
    (27, 6, 1),
];

const MODES: [&[&str]; 2] = [&[], &["--native"]];

/// Runs cxx_sites with `n` under `memtrace run` with `mode`; the capture.
fn run(dir: &Path, name: &str, mode: &[&str], n: &str) -> std::path::PathBuf {
    let prog = dir.join("cxx_sites");
    let cap = dir.join(name);
    let mut args = vec!["run", "-q", "-f", "-o", cap.to_str().expect("utf-8")];
    args.extend_from_slice(mode);
    args.extend(["--", prog.to_str().expect("utf-8"), n]);
    let out = memtrace(&args, dir);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "refused\n11 blocks\n",
        "{out:?}"
    );
    cap
}

/// A location in one of the C++ test programs (tests/programs/cxx_*.cpp).
fn in_program(v: &Value) -> bool {
    v["file"]
        .as_str()
        .is_some_and(|f| f.contains("tests/programs/cxx_") && f.ends_with(".cpp"))
}

fn row_at(rows: &Value, line: u64) -> Option<&Value> {
    rows.as_array()?
        .iter()
        .find(|r| in_program(r) && r["line"].as_u64() == Some(line))
}

fn is_wrapper(function: &str) -> bool {
    function.starts_with("operator new")
        || function.contains("strdup")
        || function.contains("strndup")
}

#[test]
fn cxx_allocations_are_counted_at_the_lines_of_their_new() {
    let dir = scratch("cxx-sites");
    compile_cxx("cxx_sites", &dir);
    for mode in MODES {
        let cap = run(&dir, "sites.bin", mode, "3");
        let s = report(&["stats", "--json", "-n", "50"], &cap);
        for (line, bytes, count) in SITES {
            let row = row_at(&s["top_by_size"], line)
                .unwrap_or_else(|| panic!("{mode:?}: no row at line {line}: {s}"));
            assert_eq!(
                row["bytes"].as_u64(),
                Some(bytes),
                "{mode:?} line {line}: {row}"
            );
            assert_eq!(
                row["count"].as_u64(),
                Some(count),
                "{mode:?} line {line}: {row}"
            );
            // The row's stack starts at its location.
            assert_eq!(
                row["stack"][0]["line"].as_u64(),
                Some(line),
                "{mode:?}: {row}"
            );
        }
        let wrappers: Vec<&Value> = s["top_by_size"]
            .as_array()
            .expect("a list")
            .iter()
            .filter(|r| r["function"].as_str().is_some_and(is_wrapper))
            .collect();
        assert!(wrappers.is_empty(), "{mode:?}: {wrappers:?}");
        // The refused `new` is named at its line.
        let failed = &s["failed_requests"][0];
        assert_eq!(failed["bytes"].as_u64(), Some(1 << 62), "{mode:?}: {s}");
        assert!(in_program(&failed["stack"][0]), "{mode:?}: {failed}");
        assert_eq!(
            failed["stack"][0]["line"].as_u64(),
            Some(31),
            "{mode:?}: {failed}"
        );
        // The program's own module holds what it newed, not libstdc++ (which keeps its own
        // start-up pool and the exception object of the refused `new`).
        let known = SITES
            .iter()
            .map(|s| (s.1, s.2))
            .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
        let module = |name: &str| {
            s["top_modules"]
                .as_array()
                .expect("a list")
                .iter()
                .find(|m| m["module"].as_str() == Some(name))
                .map(|m| (num(m, "bytes") as u64, num(m, "count") as u64))
                .unwrap_or((0, 0))
        };
        let own = module("cxx_sites");
        assert!(
            own.0 >= known.0 && own.1 >= known.1,
            "{mode:?}: {}",
            s["top_modules"]
        );
        assert!(
            module("libstdc++.so.6").1 <= 2,
            "{mode:?}: {}",
            s["top_modules"]
        );
    }
}

#[test]
fn csv_rows_and_diffs_of_cxx_programs_are_by_line() {
    let dir = scratch("cxx-diff");
    compile_cxx("cxx_sites", &dir);
    for mode in MODES {
        let base = run(&dir, "base.bin", mode, "1");
        let new = run(&dir, "new.bin", mode, "10");
        let out = memtrace(
            &[
                "diff",
                "--json",
                base.to_str().expect("utf-8"),
                new.to_str().expect("utf-8"),
            ],
            &dir,
        );
        assert!(out.status.success(), "{out:?}");
        let d: Value = serde_json::from_slice(&out.stdout).expect("JSON");
        let grown = row_at(&d["locations"], 21).unwrap_or_else(|| panic!("{mode:?}: {d}"));
        assert_eq!(grown["bytes"]["base"].as_u64(), Some(1_000), "{grown}");
        assert_eq!(grown["bytes"]["new"].as_u64(), Some(10_000), "{grown}");
        // Line 22 did not change: no row, or one with no change.
        if let Some(same) = row_at(&d["locations"], 22) {
            assert_eq!(same["bytes"]["change"].as_i64(), Some(0), "{same}");
        }
        let rows = d["locations"].as_array().expect("a list");
        assert!(
            !rows
                .iter()
                .any(|r| r["function"].as_str().is_some_and(is_wrapper)),
            "{mode:?}: {d}"
        );
        let out = memtrace(
            &[
                "export",
                new.to_str().expect("utf-8"),
                "--format",
                "csv",
                "-o",
                "-",
            ],
            &dir,
        );
        assert!(out.status.success(), "{out:?}");
        let csv = String::from_utf8_lossy(&out.stdout).into_owned();
        for (line, bytes) in [(21, 10_000), (16, 12_000), (26, 17)] {
            let row = csv
                .lines()
                .find(|r| r.contains(&format!("cxx_sites.cpp,{line},")))
                .unwrap_or_else(|| panic!("{mode:?}: no row at line {line}:\n{csv}"));
            let fields: Vec<&str> = row.rsplit(',').collect();
            // live_bytes, live_allocations, allocated_bytes, allocations: reversed.
            assert_eq!(fields[1], bytes.to_string(), "{row}");
            assert_eq!(fields[3], bytes.to_string(), "{row}");
        }
        assert!(
            !csv.lines()
                .any(|r| r.starts_with("operator new") || r.contains("strdup")),
            "{mode:?}:\n{csv}"
        );
    }
}

/// Runs a C++ test program under `memtrace run` with `mode`; its capture and stats.
fn record_cxx(dir: &Path, prog: &Path, mode: &[&str], stdout: &str) -> Value {
    let cap = dir.join("run.bin");
    let mut args = vec!["run", "-q", "-f", "-o", cap.to_str().expect("utf-8")];
    args.extend_from_slice(mode);
    args.extend(["--", prog.to_str().expect("utf-8")]);
    let out = memtrace(&args, dir);
    assert_eq!(out.status.code(), Some(0), "{mode:?}: {out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), stdout, "{mode:?}");
    report(&["stats", "--json", "-n", "50"], &cap)
}

/// A `new` inside a dl_iterate_phdr callback (the loader's lock held) while another thread
/// makes the process's first `new`: the tracker read operator new's unwind rule at that first
/// call, under a lock of its own the other thread waited for while holding the loader's (a
/// deadlock, 3 runs of 3). Now nothing waits, and both lines are found.
#[test]
fn a_new_inside_a_loader_callback_never_waits_and_is_found() {
    let dir = scratch("cxx-loader-callback");
    let prog = compile_cxx("cxx_loader_callback", &dir);
    for mode in MODES {
        for _ in 0..3 {
            let s = record_cxx(&dir, &prog, mode, "ok\n");
            let main = row_at(&s["top_by_size"], 31).unwrap_or_else(|| panic!("{s}"));
            assert_eq!(main["bytes"].as_u64(), Some(100), "{main}");
            let visited = row_at(&s["top_by_size"], 16).unwrap_or_else(|| panic!("{s}"));
            let n = visited["count"].as_u64().expect("a count");
            assert!(n >= 3, "{visited}");
            assert_eq!(visited["bytes"].as_u64(), Some(8 * n), "{visited}");
        }
    }
}

/// A program's own global `operator new` is its code: its allocations are counted at its own
/// malloc line in both modes (with `--native` they were counted at its callers', its frame
/// taken for libstdc++'s by its name).
#[test]
fn a_program_s_own_operator_new_is_its_own_code() {
    let dir = scratch("cxx-own-new");
    let prog = compile_cxx("cxx_own_new", &dir);
    for mode in MODES {
        let s = record_cxx(&dir, &prog, mode, "news 15\n");
        let own = row_at(&s["top_by_size"], 11).unwrap_or_else(|| panic!("{mode:?}: {s}"));
        assert_eq!(own["count"].as_u64(), Some(15), "{mode:?}: {own}");
        assert_eq!(
            own["bytes"].as_u64(),
            Some(10 * 72 + 5 * 164),
            "{mode:?}: {own}"
        );
        for line in [23, 25] {
            assert!(row_at(&s["top_by_size"], line).is_none(), "{mode:?}: {s}");
        }
    }
}
