//! The reports of the memory at the peak, at exit and of temporary allocations: `tree`,
//! `summary` and `stats` on C programs and a Python script with known allocations. Each
//! allocation site is its own function, so the trees name them; bytes and counts are exact.

use memtrace_e2e::python::{python, track_script};
use memtrace_e2e::*;
use serde_json::Value;
use std::path::{Path, PathBuf};

fn capture(mode: &str) -> (PathBuf, PathBuf, String) {
    let dir = scratch(&format!("reports-{mode}"));
    let prog = compile("reports", &dir);
    let (cap, out) = record(&dir, &format!("{mode}.bin"), &prog, &[mode]);
    assert!(out.status.success(), "{out:?}");
    (dir, cap, String::from_utf8_lossy(&out.stdout).into_owned())
}

fn tree(cap: &Path, extra: &[&str]) -> Value {
    let mut args = vec!["tree", "--json"];
    args.extend_from_slice(extra);
    report(&args, cap)
}

fn summary(cap: &Path, extra: &[&str]) -> Value {
    let mut args = vec!["summary", "--json", "-n", "100000"];
    args.extend_from_slice(extra);
    report(&args, cap)
}

fn page() -> i64 {
    // SAFETY: sysconf only reads a system value.
    unsafe { libc::sysconf(libc::_SC_PAGESIZE) as i64 }
}

/// The tree's root is the peak of stats, the summary's own bytes add up to it, and each
/// function's total in the summary is its nodes' in the tree.
fn agree(cap: &Path, functions: &[&str]) {
    let s = stats(cap);
    let t = tree(cap, &[]);
    let root = &t["tree"];
    assert_eq!(num(root, "bytes"), num(&s, "peak_bytes"));
    assert_eq!(num(root, "allocations"), num(&s, "peak_allocations"));
    assert_eq!(num(&t, "bytes"), num(&s, "peak_bytes"));
    let sum = summary(cap, &[]);
    assert_eq!(num(&sum, "bytes"), num(&s, "peak_bytes"));
    let rows = sum["rows"].as_array().expect("rows");
    assert_eq!(rows.len() as i64, num(&sum, "functions"));
    let own: i64 = rows.iter().map(|r| num(r, "own_bytes")).sum();
    let own_allocs: i64 = rows.iter().map(|r| num(r, "own_allocations")).sum();
    assert_eq!(own, num(root, "bytes"));
    assert_eq!(own_allocs, num(root, "allocations"));
    for f in functions {
        let row = rows
            .iter()
            .find(|r| r["function"].as_str() == Some(f))
            .unwrap_or_else(|| panic!("{f} not in the summary: {sum}"));
        let (bytes, allocations) = node_sum(root, f);
        assert_eq!(num(row, "total_bytes"), bytes, "{f}");
        assert_eq!(num(row, "total_allocations"), allocations, "{f}");
    }
    // stats' top location at the peak is the tree's biggest leaf here (flat native stacks).
    let top = &s["top_at_peak"][0];
    assert_eq!(
        node_sum(root, top["function"].as_str().expect("a function")).0,
        num(top, "bytes")
    );
}

#[test]
fn a_peak_in_the_middle() {
    let (_dir, cap, _) = capture("middle");
    let t = tree(&cap, &[]);
    let root = &t["tree"];
    assert_eq!(node_sum(root, "big_block"), (3000, 1));
    assert_eq!(node_sum(root, "small_block"), (1000, 1));
    assert_eq!(node_sum(root, "late_block"), (0, 0));
    agree(&cap, &["big_block", "small_block"]);
}

#[test]
fn a_peak_at_the_very_end_is_also_what_leaks() {
    let (_dir, cap, _) = capture("end");
    let root = tree(&cap, &[])["tree"].clone();
    assert_eq!(node_sum(&root, "small_block"), (1000, 1));
    assert_eq!(node_sum(&root, "late_block"), (2500, 1));
    assert_eq!(node_sum(&root, "big_block"), (0, 0));
    let leaks = tree(&cap, &["--leaks"]);
    assert_eq!(leaks["view"], "leaks");
    assert_eq!(num(&leaks, "bytes"), num(&stats(&cap), "leaked_bytes"));
    assert_eq!(node_sum(&leaks["tree"], "late_block"), (2500, 1));
    assert_eq!(node_sum(&leaks["tree"], "small_block"), (1000, 1));
    agree(&cap, &["small_block", "late_block"]);
}

#[test]
fn a_peak_inside_a_thread_and_thread_filters() {
    let (_dir, cap, _) = capture("thread");
    let root = tree(&cap, &[])["tree"].clone();
    assert_eq!(node_sum(&root, "thread_block"), (8000, 1));
    assert_eq!(node_sum(&root, "small_block"), (1000, 1));
    assert_eq!(node_sum(&root, "big_block"), (0, 0));
    agree(&cap, &["thread_block", "small_block"]);

    // One thread, by name and by TID.
    let worker = tree(&cap, &["--thread", "worker"]);
    assert_eq!(num(&worker, "bytes"), 8000);
    assert_eq!(node_sum(&worker["tree"], "thread_block"), (8000, 1));
    assert_eq!(node_sum(&worker["tree"], "small_block"), (0, 0));
    let s = stats(&cap);
    let tid = s["threads"]
        .as_array()
        .and_then(|ts| ts.iter().find(|t| t["name"] == "worker"))
        .map(|t| num(t, "tid"))
        .expect("a thread named worker");
    let by_tid = tree(&cap, &["--thread", &tid.to_string()]);
    assert_eq!(by_tid["tree"], worker["tree"]);
    let w = s["threads"]
        .as_array()
        .and_then(|ts| ts.iter().find(|t| t["name"] == "worker"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        (num(&w, "peak_bytes"), num(&w, "peak_allocations")),
        (8000, 1)
    );
    let ws = report(&["stats", "--json", "--thread", "worker"], &cap);
    assert_eq!(ws["threads"].as_array().map(Vec::len), Some(1));
    assert_eq!(num(&ws["top_at_peak"][0], "bytes"), 8000);
    assert_eq!(ws["top_at_peak"][0]["function"], "thread_block");

    // Split: one top-level node per thread, the worker's holding its block.
    let split = tree(&cap, &["--threads"]);
    let kids = split["tree"]["children"].as_array().expect("children");
    assert_eq!(kids.len(), 2, "{split}");
    let wnode = kids
        .iter()
        .find(|k| {
            k["location"]
                .as_str()
                .is_some_and(|l| l.contains(&format!("worker (tid {tid})")))
        })
        .expect("the worker's node");
    assert_eq!(num(wnode, "bytes"), 8000);
    assert_eq!(wnode["threads"], serde_json::json!([tid]));
    let rows = summary(&cap, &["--threads"]);
    let row = rows["rows"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["function"] == "thread_block"))
        .cloned()
        .unwrap_or_default();
    assert!(
        row["thread"].as_str().is_some_and(|t| t.contains("worker")),
        "{row}"
    );
    assert_eq!(num(&row, "own_bytes"), 8000);

    // An unknown thread is one line and status 1.
    let out = memtrace(
        &["tree", "--thread", "nope", cap.to_str().expect("utf-8")],
        Path::new("."),
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("memtrace: no thread named or numbered 'nope'"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn partial_munmaps_at_the_peak() {
    let (_dir, cap, _) = capture("munmap");
    let p = page();
    let s = stats(&cap);
    assert_eq!(num(&s, "peak_bytes"), 5 * p);
    let root = tree(&cap, &[])["tree"].clone();
    // Four pages less the second: two pieces, then two more pages.
    assert_eq!(node_sum(&root, "map_pages"), (3 * p, 2));
    assert_eq!(node_sum(&root, "map_more"), (2 * p, 1));
    agree(&cap, &["map_pages", "map_more"]);
}

#[test]
fn realloc_in_place_and_moving() {
    let (_dir, cap, stdout) = capture("realloc");
    assert_eq!(stdout.trim(), "1 1", "shrunk in place, then moved");
    let root = tree(&cap, &[])["tree"].clone();
    assert_eq!(num(&root, "bytes"), (1 << 20) + 2000);
    assert_eq!(node_sum(&root, "grow_far"), (1 << 20, 1));
    assert_eq!(node_sum(&root, "small_block"), (2000, 1));
    for gone in ["big_block", "shrink", "grow"] {
        assert_eq!(node_sum(&root, gone), (0, 0), "{gone}");
    }
    agree(&cap, &["grow_far", "small_block"]);
}

#[test]
fn leaks_and_temporary_allocations() {
    let (_dir, cap, _) = capture("views");
    let t1 = tree(&cap, &["--temporary"]);
    assert_eq!(t1["view"], "temporary");
    assert_eq!(node_sum(&t1["tree"], "temp_block"), (320, 10));
    assert_eq!(node_sum(&t1["tree"], "pair_second"), (80, 5));
    assert_eq!(node_sum(&t1["tree"], "pair_first"), (0, 0));
    assert_eq!(node_sum(&t1["tree"], "keep_block"), (0, 0));
    let t2 = tree(&cap, &["--temporary", "--temporary-threshold", "2"]);
    assert_eq!(node_sum(&t2["tree"], "pair_first"), (320, 5));
    assert_eq!(node_sum(&t2["tree"], "temp_block"), (320, 10));
    let leaks = tree(&cap, &["--leaks"]);
    assert_eq!(node_sum(&leaks["tree"], "keep_block"), (144, 3));
    assert_eq!(node_sum(&leaks["tree"], "temp_block"), (0, 0));

    // summary and stats switch to the same views.
    let st = summary(&cap, &["--temporary"]);
    assert_eq!(num(&st, "bytes"), num(&t1, "bytes"));
    let row = st["rows"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["function"] == "temp_block"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        (num(&row, "own_bytes"), num(&row, "own_allocations")),
        (320, 10)
    );
    let s = report(&["stats", "--json", "--temporary"], &cap);
    assert_eq!(s["view"], "temporary");
    assert_eq!(num(&s, "temporary_threshold"), 1);
    assert_eq!(num(&s, "view_bytes"), num(&t1, "bytes"));
    let top = s["top_by_size"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["function"] == "temp_block"))
        .cloned()
        .unwrap_or_default();
    assert_eq!((num(&top, "bytes"), num(&top, "count")), (320, 10));
    let s = report(&["stats", "--json", "--leaks"], &cap);
    assert_eq!(s["view"], "leaks");
    assert_eq!(num(&s, "view_bytes"), num(&s, "leaked_bytes"));
    assert_eq!(s["top_by_size"][0]["function"], "keep_block");
    assert_eq!(num(&s["top_by_size"][0], "bytes"), 144);
}

#[test]
fn the_text_tree_when_piped() {
    let (dir, cap, _) = capture("middle");
    let c = cap.to_str().expect("utf-8");
    let out = memtrace(&["tree", c], &dir);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("Memory live at the peak"), "{text}");
    assert!(
        lines[0].ends_with(": 3.9 KiB (4,000 bytes) in 2 allocations"),
        "{text}"
    );
    assert_eq!(lines[2], "   3.9 KiB  100.0%            2  (all)", "{text}");
    assert!(
        lines[3].starts_with("   2.9 KiB   75.0%            1  ├─ big_block at "),
        "{text}"
    );
    assert!(
        lines[4].starts_with("    1000 B   25.0%            1  └─ small_block at "),
        "{text}"
    );
    assert_eq!(lines.len(), 5, "{text}");
    let out = memtrace(&["tree", "--biggest", "1", "--depth", "1", c], &dir);
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5, "{text}");
    assert!(lines[3].contains("├─ big_block at "), "{text}");
    assert_eq!(
        lines[4], "    1000 B   25.0%            1  └─ … 1 other",
        "{text}"
    );
    let out = memtrace(&["summary", "-s", "own", c], &dir);
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(
        lines[2].starts_with(
            "   2.9 KiB  75.0%     2.9 KiB  75.0%             1            1  big_block at "
        ),
        "{text}"
    );
    assert!(lines[3].contains("  small_block at "), "{text}");
}

const SCRIPT: &str = "\
def hold(n):
    return b\"\\0\" * n


def temp(n):
    return (b\"\\0\" * n)[0]


def main():
    big = [hold(3_000_000), hold(2_000_000)]
    del big
    for _ in range(3):
        temp(700_000)
    return hold(1_000_000)


kept = main()
";

/// `b"\0" * n` is one allocation of the bytes object: a 32-byte header, n bytes and a NUL.
const BYTES_HEADER: i64 = 33;

#[test]
fn a_python_script_at_the_peak_at_exit_and_temporary() {
    let dir = scratch("reports-py");
    let (cap, out) = track_script(python(), &dir, "known.py", SCRIPT);
    assert!(out.status.success(), "{out:?}");
    let peak = tree(&cap, &[]);
    assert_eq!(
        node_sum(&peak["tree"], "hold"),
        (5_000_000 + 2 * BYTES_HEADER, 2)
    );
    assert_eq!(node_sum(&peak["tree"], "temp"), (0, 0));
    let leaks = tree(&cap, &["--leaks"]);
    assert_eq!(
        node_sum(&leaks["tree"], "hold"),
        (1_000_000 + BYTES_HEADER, 1)
    );
    let tmp = tree(&cap, &["--temporary"]);
    assert_eq!(
        node_sum(&tmp["tree"], "temp"),
        (3 * (700_000 + BYTES_HEADER), 3)
    );
    // The interpreter's start-up is left out of the temporary view as of every other (its
    // temporary allocations made the view larger than all the script allocated).
    let t = report(&["stats", "--json", "--temporary"], &cap);
    assert!(
        num(&t, "view_allocations") <= num(&t, "total_allocations"),
        "{t}"
    );
    let with_startup = report(
        &["stats", "--json", "--temporary", "--include-startup"],
        &cap,
    );
    assert!(
        num(&with_startup, "view_allocations") > num(&t, "view_allocations"),
        "{with_startup}"
    );
    agree(&cap, &["hold", "main", "<module>"]);
    let s = stats(&cap);
    assert_eq!(s["top_at_peak"][0]["function"], "hold");
    assert_eq!(
        num(&s["top_at_peak"][0], "bytes"),
        5_000_000 + 2 * BYTES_HEADER
    );
    // main holds both blocks: its total in the summary is at least theirs, its own is small.
    let rows = summary(&cap, &[]);
    let main = rows["rows"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["function"] == "main"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(num(&main, "total_bytes"), node_sum(&peak["tree"], "main").0);
}

#[test]
fn a_list_length_of_zero_is_refused_in_one_line() {
    // `-n 0` printed "(no allocations)" under every list of a capture that has some.
    let dir = scratch("top-zero");
    let (cap, out) = record(&dir, "true.bin", Path::new("/bin/true"), &[]);
    assert!(out.status.success(), "{out:?}");
    let cap = cap.to_str().expect("utf-8");
    for report in ["stats", "summary", "lines", "diff"] {
        let mut args = vec![report, "-n", "0", cap];
        if report == "diff" {
            args.push(cap);
        }
        let out = memtrace(&args, &dir);
        assert_eq!(out.status.code(), Some(1), "{report}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{report}: {err}");
        assert!(err.contains("0 lists nothing"), "{report}: {err}");
    }
    let one = memtrace(&["stats", "-n", "1", cap], &dir);
    assert!(one.status.success(), "{one:?}");
}

#[test]
fn without_path_a_program_is_found_where_execvp_looks() {
    // execvp(3) and the shells search /bin:/usr/bin when PATH is unset; memtrace said
    // "true: command not found".
    let dir = scratch("no-path");
    let cap = dir.join("true.bin");
    let out = std::process::Command::new(memtrace_bin())
        .args(["run", "-q", "-o"])
        .arg(&cap)
        .arg("true")
        .current_dir(&dir)
        .env_clear()
        .output()
        .expect("memtrace run");
    assert!(out.status.success(), "{out:?}");
    assert!(cap.is_file());
}

/// A capture appended to itself (`cat a.bin a.bin > b.bin`): every chunk of the second copy
/// is ignored, and said in one line (it was one line per chunk: 21 for a small capture, each
/// report again); the figures are the capture's own.
#[test]
fn a_capture_appended_to_itself_reads_as_itself_with_one_warning() {
    let dir = scratch("appended-to-itself");
    let (cap, out) = track_script(
        python(),
        &dir,
        "many.py",
        "keep = [str(i) * 3 for i in range(300_000)]\n",
    );
    assert!(out.status.success(), "{out:?}");
    let bytes = std::fs::read(&cap).expect("read");
    let twice = dir.join("twice.bin");
    std::fs::write(&twice, [bytes.clone(), bytes].concat()).expect("write");
    let once = stats(&cap);
    let out = memtrace(&["stats", "--json", twice.to_str().expect("utf-8")], &dir);
    assert!(out.status.success(), "{out:?}");
    let again: Value = serde_json::from_slice(&out.stdout).expect("json");
    for key in [
        "peak_bytes",
        "total_allocations",
        "total_bytes",
        "leaked_bytes",
    ] {
        assert_eq!(again[key], once[key], "{key}");
    }
    // The text report says it on stderr (the JSON one in its warnings).
    let text = memtrace(&["stats", twice.to_str().expect("utf-8")], &dir);
    assert!(text.status.success(), "{text:?}");
    let err = String::from_utf8_lossy(&text.stderr);
    let copies: Vec<&str> = err.lines().filter(|l| l.contains("second cop")).collect();
    assert_eq!(copies.len(), 1, "{err}");
    assert!(
        copies[0].contains("chunks that were second copies of others (the first at offset "),
        "{err}"
    );
}
