//! `memtrace run --aggregate`: the capture holds sums per stack and thread instead of every
//! event, and the reports read from it the same peak, top lines, histogram, totals and leaks as
//! from a full capture of the same program; a run killed by SIGKILL shows what was live at its
//! last snapshot; every report runs on it, and a view it cannot give says so in one line.

use memtrace_e2e::watchdog::Watched;
use memtrace_e2e::{compile, kill_when_ready, memtrace, memtrace_bin, num, report, scratch, stats};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const PROGRAM: &str = "aggregate_service";

/// The row of `list` at line `line` of the program.
fn at_line(list: &Value, line: i64) -> Option<&Value> {
    list.as_array()?.iter().find(|r| {
        r["line"].as_i64() == Some(line)
            && r["file"]
                .as_str()
                .is_some_and(|f| f.ends_with("aggregate_service.c"))
    })
}

fn run(dir: &Path, name: &str, program: &Path, extra: &[&str]) -> PathBuf {
    let cap = dir.join(name);
    let out = Command::new(memtrace_bin())
        .args(["run", "-q", "-f"])
        .args(extra)
        .arg("-o")
        .arg(&cap)
        .arg(program)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output_watched();
    assert!(out.status.success(), "{out:?}");
    cap
}

/// The data of the HTML page `memtrace flamegraph` writes of `cap` to `html` in `dir`.
fn page_data(dir: &Path, cap: &Path, html: &str) -> Value {
    let out = memtrace(
        &["flamegraph", "-o", html, cap.to_str().expect("utf-8")],
        dir,
    );
    assert!(out.status.success(), "{out:?}");
    let text = std::fs::read_to_string(dir.join(html)).expect("the page");
    memtrace_e2e::page::page_data(&text)
}

/// The high-water mark of each of a page's time buckets.
fn high_water_marks(data: &Value) -> Vec<u64> {
    data["buckets"]["hwm"]
        .as_array()
        .expect("hwm")
        .iter()
        .filter_map(Value::as_u64)
        .collect()
}

/// (file, line, bytes, count) of a top list, in order.
fn rows(list: &Value) -> Vec<(String, i64, i64, i64)> {
    list.as_array()
        .expect("a list")
        .iter()
        .map(|r| {
            (
                r["file"].as_str().unwrap_or("").to_string(),
                r["line"].as_i64().unwrap_or(0),
                num(r, "bytes"),
                num(r, "count"),
            )
        })
        .collect()
}

/// `memtrace stats --json ARGS capture`.
fn stats_with(args: &[&str], capture: &Path) -> Value {
    let out = Command::new(memtrace_bin())
        .args(["stats", "--json"])
        .args(args)
        .arg(capture)
        .output_watched();
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).expect("JSON")
}

#[test]
fn aggregated_and_full_captures_agree() {
    let dir = scratch("aggregate-agree");
    let prog = compile(PROGRAM, &dir);
    let full = run(&dir, "full.bin", &prog, &[]);
    let agg = run(&dir, "agg.bin", &prog, &["--aggregate"]);
    let f = stats(&full);
    let a = stats(&agg);
    for key in [
        "peak_bytes",
        "peak_allocations",
        "leaked_bytes",
        "leaked_allocations",
        "total_allocations",
        "total_bytes",
        "total_frees",
    ] {
        assert_eq!(num(&a, key), num(&f, key), "{key}");
    }
    assert_eq!(a["histogram"], f["histogram"]);
    assert_eq!(a["allocators"], f["allocators"]);
    for list in ["top_at_peak", "top_by_size", "top_by_count"] {
        assert_eq!(rows(&a[list]), rows(&f[list]), "{list}");
    }
    // The known allocations, exactly.
    let big = at_line(&a["top_at_peak"], 16).unwrap_or_else(|| panic!("{a}"));
    assert_eq!((num(big, "bytes"), num(big, "count")), (16 << 20, 16));
    let small = at_line(&a["top_at_peak"], 20).unwrap_or_else(|| panic!("{a}"));
    assert_eq!(
        (num(small, "bytes"), num(small, "count")),
        (10_000_000, 100_000)
    );
    let churn = at_line(&a["top_by_count"], 27).unwrap_or_else(|| panic!("{a}"));
    assert_eq!((num(churn, "bytes"), num(churn, "count")), (24_000, 1000));
    // Leaks: the large blocks, as in the full capture.
    let fl = stats_with(&["--leaks"], &full);
    let al = stats_with(&["--leaks"], &agg);
    assert_eq!(rows(&al["top_by_size"]), rows(&fl["top_by_size"]));
    let leaked = at_line(&al["top_by_size"], 16).unwrap_or_else(|| panic!("{al}"));
    assert_eq!(num(leaked, "bytes"), 16 << 20);
    assert!(at_line(&al["top_by_size"], 20).is_none(), "{al}");
    // The aggregated capture is a fraction of the full one and says what it is.
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    assert!(
        size(&agg) * 4 < size(&full),
        "{} {}",
        size(&agg),
        size(&full)
    );
    assert!(
        a["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().starts_with("aggregated capture")),
        "{}",
        a["warnings"]
    );
}

/// small_objects.py's churn, smaller: records of a dict, a str, a tuple and a float, built in
/// a list and dropped, twice.
const CHURN: &str = "\
def make_record(i):
    return {\"id\": i, \"name\": \"item-%d\" % i, \"tags\": (i % 7, i % 11), \"score\": i * 0.5}


def churn(rounds, n):
    total = 0
    for _ in range(rounds):
        data = [make_record(i) for i in range(n)]
        total += sum(len(r[\"name\"]) for r in data)
        del data
    return total


print(churn(2, 20_000))
";

/// A Python run gives the same figures in both modes: the script's own lines to the byte (at
/// the peak, at exit and in total), the top 5 lines at the peak (bytes and counts), and the
/// whole process's peak, totals, leaks and histogram to within the interpreter's own noise.
/// That noise: the compiler and the import system allocate a little differently from run to
/// run, even between two full runs (objects hashed by address; 1-2 allocations of up to 132
/// bytes under `<compile>` or a meta path finder were seen), and the two modes map different
/// tracker memory, so they lay the process out differently. The runs share one hash seed, the
/// script sits alone in its directory (the import system lists it), and the captures' names
/// and variables have the same lengths.
#[test]
fn aggregated_and_full_python_captures_agree() {
    let dir = scratch("aggregate-python");
    let scripts = dir.join("script");
    std::fs::create_dir_all(&scripts).expect("mkdir");
    let script = scripts.join("churn.py");
    std::fs::write(&script, CHURN).expect("write the script");
    let python = memtrace_e2e::python::python();
    let capture = |name: &str, mode: &[&str]| {
        let cap = dir.join(name);
        let out = Command::new(memtrace_bin())
            .args(["run", "-q", "-f", "--no-types"])
            .args(mode)
            .arg("--python")
            .arg(python)
            .arg("-o")
            .arg(&cap)
            .arg(&script)
            .env("PYTHONHASHSEED", "0")
            .env("MEMTRACE_AGGREGATE", "0")
            .current_dir(&dir)
            .stdin(Stdio::null())
            .output_watched();
        assert!(out.status.success(), "{out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "377780");
        cap
    };
    let (full_capture, agg_capture) = (
        capture("full.bin", &[]),
        capture("aggr.bin", &["--aggregate"]),
    );
    // The script's own lines (line 0 is the compilation), exactly.
    let script_lines = |capture: &Path| -> Vec<Value> {
        let out = Command::new(memtrace_bin())
            .args(["lines", "--json"])
            .arg(capture)
            .output_watched();
        assert!(out.status.success(), "{out:?}");
        let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
        let file = v["files"]
            .as_array()
            .expect("files")
            .iter()
            .find(|f| f["file"].as_str().is_some_and(|f| f.ends_with("churn.py")))
            .expect("the script's file")
            .clone();
        file["lines"]
            .as_array()
            .expect("lines")
            .iter()
            .filter(|l| l["line"].as_i64().is_some_and(|n| n >= 1))
            .cloned()
            .collect()
    };
    let lines = script_lines(&full_capture);
    assert_eq!(script_lines(&agg_capture), lines);
    let line2 = lines.iter().find(|l| l["line"] == 2).expect("line 2");
    assert!(num(line2, "allocations") >= 80_000, "{line2}");

    let full = stats_with(&["-n", "5"], &full_capture);
    let agg = stats_with(&["-n", "5"], &agg_capture);
    // Why there are no types: --no-types for the full one; the aggregated one says its own
    // reason (it blamed --no-types).
    assert!(
        full["types_missing"]
            .as_str()
            .is_some_and(|w| w.contains("--no-types")),
        "{}",
        full["types_missing"]
    );
    assert!(
        agg["types_missing"]
            .as_str()
            .is_some_and(|w| w.starts_with("an aggregated capture (--aggregate)")),
        "{}",
        agg["types_missing"]
    );
    // What the start-up held is not known there (it said 0 bytes).
    assert!(agg["startup_bytes"].is_null(), "{}", agg["startup_bytes"]);
    assert!(
        full["startup_bytes"].as_u64().is_some_and(|b| b > 0),
        "{}",
        full["startup_bytes"]
    );
    assert_eq!(rows(&agg["top_at_peak"]), rows(&full["top_at_peak"]));
    // The records are at the peak: 20,000 of them, each a dict, a str and a tuple from line 2.
    let top = &rows(&full["top_at_peak"])[0];
    assert_eq!((top.1, top.3 >= 60_000), (2, true), "{top:?}");
    let close = |key: &str, slack: i64| {
        let (a, f) = (num(&agg, key), num(&full, key));
        assert!((a - f).abs() <= slack, "{key}: aggregated {a}, full {f}");
    };
    for key in ["peak_bytes", "total_bytes", "leaked_bytes"] {
        close(key, 512);
    }
    for key in [
        "peak_allocations",
        "total_allocations",
        "total_frees",
        "leaked_allocations",
    ] {
        close(key, 4);
    }
    let bins = |v: &Value| -> Vec<(i64, i64, i64)> {
        v["histogram"]
            .as_array()
            .expect("histogram")
            .iter()
            .map(|b| (num(b, "lo"), num(b, "hi"), num(b, "count")))
            .collect()
    };
    let (a, f) = (bins(&agg), bins(&full));
    assert_eq!(a.len(), f.len(), "{a:?} {f:?}");
    for (a, f) in a.iter().zip(&f) {
        assert!(
            a.0 == f.0 && a.1 == f.1 && (a.2 - f.2).abs() <= 4,
            "{a:?} {f:?}"
        );
    }
}

#[test]
fn a_killed_aggregated_run_shows_what_was_live_at_its_last_snapshot() {
    let dir = scratch("aggregate-killed");
    let prog = compile(PROGRAM, &dir);
    let cap = dir.join("killed.bin");
    // It serves until a snapshot (every 2 s) holds its serving loop a hundred times.
    let served = || {
        let out = Command::new(memtrace_bin())
            .args(["stats", "--json"])
            .arg(&cap)
            .stdin(Stdio::null())
            .output_watched();
        out.status.success()
            && serde_json::from_slice::<Value>(&out.stdout).is_ok_and(|s| {
                at_line(&s["top_by_count"], 38).is_some_and(|l| num(l, "count") >= 100)
            })
    };
    memtrace_e2e::kill_when(&dir, &prog, &cap, &["--aggregate"], served);
    let s = stats(&cap);
    assert_eq!(s["complete"], false);
    let big = at_line(&s["top_at_peak"], 16).unwrap_or_else(|| panic!("{s}"));
    assert_eq!((num(big, "bytes"), num(big, "count")), (16 << 20, 16));
    let small = at_line(&s["top_at_peak"], 20).unwrap_or_else(|| panic!("{s}"));
    assert_eq!(
        (num(small, "bytes"), num(small, "count")),
        (10_000_000, 100_000)
    );
    // Live at the end (no exit: the last snapshot): the same blocks.
    let l = stats_with(&["--leaks"], &cap);
    let live = at_line(&l["top_by_size"], 20).unwrap_or_else(|| panic!("{l}"));
    assert_eq!(num(live, "bytes"), 10_000_000);
    // The serving loop was seen, a few thousand times at most.
    let serving = at_line(&s["top_by_count"], 38).unwrap_or_else(|| panic!("{s}"));
    assert!(num(serving, "count") >= 100, "{serving}");
    // The reports say the figures are the last snapshot's, and when it was taken (nothing
    // said so: a kill of an idle program loses what it did just before going idle).
    assert_eq!(cut_short_notes(&s), 1, "{s}");
}

/// The warnings of a `stats --json` that say an aggregated capture has no final snapshot and
/// when its last one was taken.
fn cut_short_notes(s: &Value) -> usize {
    s["warnings"]
        .as_array()
        .expect("warnings")
        .iter()
        .filter_map(Value::as_str)
        .filter(|w| {
            w.starts_with("aggregated capture without its final snapshot")
                && w.contains("its last snapshot, taken at ")
        })
        .count()
}

#[test]
fn every_report_reads_an_aggregated_capture() {
    let dir = scratch("aggregate-reports");
    let prog = compile(PROGRAM, &dir);
    let full = run(&dir, "full.bin", &prog, &[]);
    let agg = run(&dir, "agg.bin", &prog, &["--aggregate"]);
    let c = agg.to_str().unwrap();
    let f = full.to_str().unwrap();
    for args in [
        vec!["stats", c],
        vec!["tree", c],
        vec!["tree", "--leaks", c],
        vec!["summary", c],
        vec!["flamegraph", "-o", "page.html", c],
        vec!["export", "--format", "folded", "-o", "out.folded", c],
        vec!["export", "--format", "speedscope", "-o", "out.json", c],
        vec!["export", "--format", "pprof", "-o", "out.pb.gz", c],
        vec!["export", "--format", "csv", "-o", "out.csv", c],
        vec!["diff", f, c],
    ] {
        let out = memtrace(&args, &dir);
        assert!(out.status.success(), "{args:?}: {out:?}");
    }
    // A finished run's capture has its final snapshot.
    assert_eq!(cut_short_notes(&stats(&agg)), 0);
    // The report itself says so (a warning on stderr alone was lost with `stats > report.txt`),
    // and so does its JSON; a full capture's does not.
    let stats_text = memtrace(&["stats", c], &dir);
    assert!(
        String::from_utf8_lossy(&stats_text.stdout)
            .contains("Mode:         aggregated (memtrace run --aggregate)"),
        "{stats_text:?}"
    );
    assert_eq!(report(&["stats", "--json"], &agg)["aggregated"], true);
    assert_eq!(report(&["stats", "--json"], &full)["aggregated"], false);
    let tree = memtrace(&["tree", c], &dir);
    let text = String::from_utf8_lossy(&tree.stdout);
    assert!(
        text.contains("aggregate_service.c:20") && text.contains("aggregate_service.c:16"),
        "{text}"
    );
    // The same folded stacks as the full capture's.
    let full_folded = memtrace(&["export", "--format", "folded", f], &dir);
    let agg_folded = memtrace(&["export", "--format", "folded", c], &dir);
    assert_eq!(
        String::from_utf8_lossy(&agg_folded.stdout),
        String::from_utf8_lossy(&full_folded.stdout)
    );
    // What it cannot give: one line, exit 1. The interpreter's start-up is not in the sums
    // either (they start afresh at a script's start): --include-startup said "counted in the
    // above".
    let temporary = "memtrace: temporary allocations: not recorded in an aggregated capture";
    let startup = "memtrace: --include-startup";
    for (args, said) in [
        (vec!["tree", "--temporary", c], temporary),
        (vec!["stats", "--temporary", c], temporary),
        (vec!["stats", "--include-startup", c], startup),
        (vec!["tree", "--include-startup", c], startup),
    ] {
        let out = memtrace(&args, &dir);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with(said), "{err}");
    }
    // --live follows events: not with --aggregate.
    let out = memtrace(
        &["run", "--aggregate", "--live", "-o", "x.bin", "true"],
        &dir,
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stderr).lines().count(), 1);
}

#[test]
fn the_page_of_an_aggregated_capture_charts_its_run_and_says_what_it_is() {
    // The page's memory chart ran from tick 0 (the machine's start: the chunks of an aggregated
    // capture hold no timed record) to the end, every bucket empty, "full" as its mode and no
    // word of the aggregation.
    let dir = scratch("aggregate-page");
    let prog = compile(PROGRAM, &dir);
    let agg = run(&dir, "agg.bin", &prog, &["--aggregate"]);
    let full = run(&dir, "full.bin", &prog, &[]);
    let a = page_data(&dir, &agg, "agg.html");
    let f = page_data(&dir, &full, "full.html");
    assert_eq!(a["meta"]["aggregated"], true);
    assert_eq!(f["meta"]["aggregated"], false);
    assert!(
        a["meta"]["mode"]
            .as_str()
            .is_some_and(|m| m.starts_with("aggregated")),
        "{}",
        a["meta"]
    );
    assert!(
        a["meta"]["warnings"]
            .as_array()
            .is_some_and(|w| w.iter().any(|w| w
                .as_str()
                .is_some_and(|w| w.starts_with("aggregated capture")))),
        "{}",
        a["meta"]
    );
    for d in [&a, &f] {
        let hwm = high_water_marks(d);
        let buckets = hwm.len() as f64;
        let width = d["buckets"]["width_s"].as_f64().expect("width");
        let duration = d["meta"]["duration_s"].as_f64().expect("duration");
        // The chart spans the run, not the machine's uptime.
        assert!(
            width * buckets <= duration * 1.5 + 0.01,
            "{width} x {buckets} for {duration} s"
        );
        // Its highest bucket is the peak, and memory shows in more than one bucket.
        assert_eq!(
            hwm.iter().max().copied(),
            d["meta"]["peak"].as_u64(),
            "{}",
            d["buckets"]
        );
        assert!(
            hwm.iter().filter(|&&b| b > 0).count() > 1,
            "{}",
            d["buckets"]
        );
    }
}

/// The mode passes through an exec: a program that `env` runs is aggregated as well, and its
/// capture gives the figures of a direct aggregated run of it.
#[test]
fn a_program_run_through_an_exec_is_aggregated_too() {
    let dir = scratch("aggregate-exec");
    let prog = compile(PROGRAM, &dir);
    let direct = run(&dir, "direct.bin", &prog, &["--aggregate"]);
    let out = Command::new(memtrace_bin())
        .args(["run", "-q", "-f", "--aggregate", "-o"])
        .arg(dir.join("env.bin"))
        .arg("/usr/bin/env")
        .arg(&prog)
        .current_dir(&dir)
        .stdin(Stdio::null())
        .output_watched();
    assert!(out.status.success(), "{out:?}");
    let execd = dir.join("env.bin.exec1");
    let d = stats(&direct);
    let e = stats(&execd);
    assert!(
        e["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().starts_with("aggregated capture")),
        "{}",
        e["warnings"]
    );
    for key in [
        "peak_bytes",
        "peak_allocations",
        "leaked_bytes",
        "total_frees",
    ] {
        assert_eq!(num(&e, key), num(&d, key), "{key}");
    }
    let big = at_line(&e["top_at_peak"], 16).unwrap_or_else(|| panic!("{e}"));
    assert_eq!((num(big, "bytes"), num(big, "count")), (16 << 20, 16));
}

#[test]
fn allocations_of_a_thread_s_last_key_destructors_are_aggregated_too() {
    // After the tracker gave a thread's state back (its last round of key destructors), a full
    // capture records an allocation without a stack; an aggregated one dropped it.
    let dir = scratch("agg-key-destructors");
    let program = compile("key_destructors", &dir);
    let full = stats(&run(&dir, "full.bin", &program, &[]));
    let agg = stats(&run(&dir, "agg.bin", &program, &["--aggregate"]));
    for key in [
        "total_allocations",
        "total_bytes",
        "leaked_allocations",
        "leaked_bytes",
    ] {
        assert_eq!(num(&agg, key), num(&full, key), "{key}");
    }
    // The 32 blocks of 333 bytes are all there.
    let histogram = |s: &Value| -> i64 {
        s["histogram"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|b| b["lo"].as_i64() == Some(256))
            .map(|b| num(b, "count"))
            .sum()
    };
    assert!(histogram(&full) >= 32, "{full}");
    assert_eq!(histogram(&agg), histogram(&full));
}

#[test]
fn threads_with_sums_and_no_record_keep_their_own_rows() {
    // A thread whose allocations needed no table record wrote no chunk of its own, so its sums
    // went to another thread: eight threads showed as three.
    let dir = scratch("agg-named-threads");
    let program = compile("named_threads", &dir);
    for extra in [&[][..], &["--aggregate"]] {
        let cap = run(&dir, "threads.bin", &program, extra);
        let s = stats(&cap);
        for n in 1..=8 {
            let name = format!("t{n}");
            let t = s["threads"]
                .as_array()
                .and_then(|ts| ts.iter().find(|t| t["name"].as_str() == Some(&name)))
                .unwrap_or_else(|| panic!("{extra:?}: no thread {name}: {}", s["threads"]));
            assert_eq!(num(t, "allocations"), 1, "{extra:?}: {t}");
            assert_eq!(num(t, "bytes"), 1000 * n, "{extra:?}: {t}");
        }
        let tree = memtrace(
            &[
                "tree",
                "--text",
                "--thread",
                "t5",
                cap.to_str().expect("utf-8"),
            ],
            &dir,
        );
        assert!(tree.status.success(), "{extra:?}: {tree:?}");
        assert!(
            String::from_utf8_lossy(&tree.stdout).contains("4.9 KiB"),
            "{extra:?}: {tree:?}"
        );
    }
}

#[test]
fn unmaps_of_any_part_of_a_mapping_count_as_in_a_full_capture() {
    // An aggregated capture followed only unmaps that started at a mapping's start: a hole, a
    // MAP_FIXED overlay, a lost partial page and an mremap that keeps the old mapping counted
    // wrong (77,824 bytes at the peak for 45,056 in one of the sweep's programs).
    let dir = scratch("agg-mapping-pieces");
    let program = compile("mapping_pieces", &dir);
    for extra in [&[][..], &["--aggregate"]] {
        let s = stats(&run(&dir, "maps.bin", &program, extra));
        assert_eq!(num(&s, "leaked_bytes"), 23 * 4096, "{extra:?}: {s}");
        assert_eq!(num(&s, "leaked_allocations"), 8, "{extra:?}: {s}");
        // The peak is the end: `a` whole (10 pages), before anything else, is less.
        assert_eq!(num(&s, "peak_bytes"), 23 * 4096, "{extra:?}: {s}");
        assert_eq!(num(&s, "total_allocations"), 6, "{extra:?}: {s}");
        // Each unmap that took part of a mapping is a free, as in a full capture (aggregated:
        // allocations less those live, 0 here, since the pieces still live count as theirs).
        assert_eq!(num(&s, "total_frees"), 5, "{extra:?}: {s}");
    }
}

/// A C program with 3,000 allocation sites that fills its address space (mappings of 64 KiB
/// until mmap fails), gives back `room` of them, keeps one block from each site, waits for a
/// snapshot to be due, then gives the space back.
fn pressure_program(dir: &Path) -> PathBuf {
    let mut src = String::from(
        "#include <stdlib.h>\n#include <stdio.h>\n#include <unistd.h>\n#include <sys/mman.h>\n",
    );
    for i in 0..3000 {
        src.push_str(&format!(
            "__attribute__((noinline)) void *s{i}(void) {{ return malloc(16); }}\n"
        ));
    }
    src.push_str("static void *(*sites[3000])(void) = {");
    src.push_str(
        &(0..3000)
            .map(|i| format!("s{i}"))
            .collect::<Vec<_>>()
            .join(","),
    );
    src.push_str(
        "};\nstatic void *fill[1 << 16]; static int nfill;\n\
         int main(int argc, char **argv) {\n\
         int room = atoi(argv[1]);\n\
         for (;;) { void *p = mmap(0, 1 << 16, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0);\n\
         if (p == MAP_FAILED) break; fill[nfill++] = p; }\n\
         for (int i = 0; i < room && nfill > 0; i++) munmap(fill[--nfill], 1 << 16);\n\
         int got = 0;\n\
         for (int i = 0; i < 3000; i++) got += sites[i]() != NULL;\n\
         usleep(2100000);\n\
         free(malloc(100));\n\
         while (nfill > 0) munmap(fill[--nfill], 1 << 16);\n\
         free(malloc(100));\n\
         printf(\"kept %d\\n\", got);\n\
         return 0;\n}\n",
    );
    let c = dir.join("pressure.c");
    std::fs::write(&c, src).expect("write");
    let out = dir.join("pressure");
    let ok = Command::new("gcc")
        .args(["-O0", "-o"])
        .arg(&out)
        .arg(&c)
        .status()
        .expect("gcc runs");
    assert!(ok.success());
    out
}

#[test]
fn a_snapshot_that_cannot_be_written_loses_nothing_of_the_next() {
    // With the address space full, a snapshot's buffers could not be mapped: it was skipped,
    // but counted as written, and each snapshot holds only what changed since the one before,
    // so those changes were lost for good: `stats` said 36,848 bytes live at exit, `tree
    // --leaks` 4,096, and the capture read as complete.
    let dir = scratch("aggregate-pressure");
    let prog = pressure_program(&dir);
    let cap = dir.join("pressure.bin");
    let out = Command::new("prlimit")
        .arg("--as=200000000")
        .arg(memtrace_bin())
        .args(["run", "-q", "-f", "--aggregate", "-o"])
        .arg(&cap)
        .arg(&prog)
        .arg("10")
        .current_dir(&dir)
        .output_watched();
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("kept "),
        "{out:?}"
    );
    let s = stats(&cap);
    let tree = report(&["tree", "--json", "--leaks"], &cap);
    assert_eq!(num(&tree, "bytes"), num(&s, "leaked_bytes"), "{s}");
    assert_eq!(
        num(&tree, "allocations"),
        num(&s, "leaked_allocations"),
        "{s}"
    );
    // Most of the 3,000 blocks kept are there (those the tracker could place; the rest are
    // counted where memory allowed), not one.
    assert!(num(&s, "leaked_allocations") >= 1000, "{s}");
}

#[test]
fn an_allocation_after_a_pause_is_charted_after_it() {
    // The aggregated tracker read the clock once per 16 allocations while they came quickly:
    // the first ones after a pause took the time from before it (4 MiB charted 0.5 s early).
    let dir = scratch("aggregate-pause");
    let prog = compile("pause_then_allocate", &dir);
    let cap = run(&dir, "agg.bin", &prog, &["--aggregate"]);
    let data = page_data(&dir, &cap, "agg.html");
    let hwm = high_water_marks(&data);
    let width = data["buckets"]["width_s"].as_f64().expect("width");
    let t0 = data["buckets"]["t0_s"].as_f64().expect("t0");
    // The chart holds each window's high-water mark until the next point: the burst's 20 MiB
    // through the first pause, then 5 MiB from the allocation after it, 0.5 s in.
    let five = hwm
        .iter()
        .position(|&b| (5 << 20..20 << 20).contains(&b))
        .map(|i| t0 + i as f64 * width);
    assert!(
        five.is_some_and(|t| t >= 0.45),
        "5 MiB charted from {five:?} s: {hwm:?}"
    );
}

/// The combined peak of a `--follow-fork` family, full and aggregated, of
/// tests/programs/family_phases.c in `mode`.
fn family_combined_peak(mode: &str, aggregate: bool) -> (i64, Value) {
    let dir = scratch(&format!("aggregate-family-{mode}-{aggregate}"));
    let prog = compile("family_phases", &dir);
    let cap = dir.join("family.bin");
    let mut args = vec!["run", "-q", "-f", "--follow-fork", "-o", "family.bin"];
    if aggregate {
        args.push("--aggregate");
    }
    args.extend_from_slice(&[prog.to_str().expect("utf-8"), mode]);
    let out = memtrace(&args, &dir);
    assert!(out.status.success(), "{out:?}");
    let s = stats(&cap);
    (num(&s, "combined_peak_bytes"), s)
}

#[test]
fn an_aggregated_family_s_combined_peak_adds_only_what_was_live_at_once() {
    // An aggregated capture's memory series had each window's high and no fall: a parent that
    // freed before its child began was read as holding its high until its next window (the
    // combined peak summed highs that never met), and the child's first allocations took the
    // parent's last time, from before the fork.
    for aggregate in [false, true] {
        let (peak, s) = family_combined_peak("fork-after-free", aggregate);
        assert_eq!(peak, 11_000_000, "aggregate {aggregate}: {s}");
        let (peak, s) = family_combined_peak("fork-after-pause", aggregate);
        assert_eq!(peak, 10_000_000, "aggregate {aggregate}: {s}");
    }
}

#[test]
fn a_killed_aggregated_run_that_freed_before_waiting_shows_what_it_kept() {
    // A worker that frees most of its heap and then waits, allocating nothing, to be killed
    // (a multiprocessing pool's worker at Pool.__exit__): its last snapshot was the peak's, so
    // what it freed read as live at its end. A fall of the heap by 10% (and 64 KiB) below the
    // last snapshot's is written at once now.
    let dir = scratch("aggregate-freed-then-idle");
    let prog = compile("freed_then_idle", &dir);
    let cap = dir.join("idle.bin");
    kill_when_ready(
        &dir,
        &prog,
        &cap,
        &["--aggregate"],
        Duration::from_millis(300),
    );
    let s = stats(&cap);
    assert_eq!(s["complete"], false);
    assert_eq!(num(&s, "peak_bytes"), (16 << 20) + 10_000_000, "{s}");
    // What it keeps (4 MiB), give or take the last fall too small to be written.
    let kept = num(&s, "leaked_bytes");
    assert!((4 << 20..(4 << 20) + (1 << 19)).contains(&kept), "{kept}");
    let l = stats_with(&["--leaks"], &cap);
    let lines: Vec<(i64, i64)> = l["top_by_size"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| (num(r, "line"), num(r, "bytes")))
        .collect();
    assert_eq!(lines[0], (15, 4 << 20), "{l}");
}

#[test]
fn a_block_held_while_the_program_allocates_nothing_is_charted_held() {
    // Frees carry no time: the fall of the heap was dated at the last allocation before it,
    // the block's own, and the chart read 10 MB held 800 ms as gone at once.
    let dir = scratch("aggregate-held-while-idle");
    let prog = compile("held_while_idle", &dir);
    for (name, extra) in [("full.bin", &[][..]), ("agg.bin", &["--aggregate"][..])] {
        let cap = run(&dir, name, &prog, extra);
        let data = page_data(&dir, &cap, &format!("{name}.html"));
        let width = data["buckets"]["width_s"].as_f64().expect("width");
        let held = high_water_marks(&data)
            .iter()
            .filter(|&&b| b >= 10_000_000)
            .count() as f64
            * width;
        assert!(
            (0.6..1.2).contains(&held),
            "{name}: 10 MB charted for {held} s"
        );
    }
}

#[test]
fn an_aggregated_family_s_combined_peak_counts_a_child_holding_memory_while_idle() {
    // Child A holds 10 MB without allocating while child B takes 10 MB: A's fall was dated at
    // its allocation, and the combined peak read 10 MB.
    for aggregate in [false, true] {
        let dir = scratch(&format!("aggregate-family-idle-{aggregate}"));
        let prog = compile("held_while_idle", &dir);
        let mut args = vec!["run", "-q", "-f", "--follow-fork", "-o", "family.bin"];
        if aggregate {
            args.push("--aggregate");
        }
        args.extend_from_slice(&[prog.to_str().expect("utf-8"), "family"]);
        let out = memtrace(&args, &dir);
        assert!(out.status.success(), "{out:?}");
        let s = stats(&dir.join("family.bin"));
        let peak = num(&s, "combined_peak_bytes");
        assert!(
            (20_000_000..=20_002_000).contains(&peak),
            "aggregate {aggregate}: {peak}: {s}"
        );
        // The parent allocated nothing: its peak has no time, not minus the machine's uptime.
        let at = s["peak_time_s"].as_f64().expect("a time");
        assert!((0.0..=1.0).contains(&at), "aggregate {aggregate}: {at}");
    }
}
