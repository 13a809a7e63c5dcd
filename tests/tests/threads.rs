//! Many threads: each one is recorded exactly, and a thread that allocates little costs little
//! file space and memory (issue 15: 1,000 threads once made a 262 MB capture and used 732 MB
//! more memory, a 256 KiB staging area and a 512 KiB index each). The program is
//! tests/programs/manythreads.c; it prints its own peak resident size (VmHWM).

use memtrace_e2e::watchdog::Watched;
use memtrace_e2e::{compile, memtrace_bin, num, record, scratch, stats};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

const MIB: i64 = 1024 * 1024;

fn setup(name: &str) -> (PathBuf, PathBuf) {
    let dir = scratch(name);
    let prog = compile("manythreads", &dir);
    (dir, prog)
}

/// The line of manythreads.c whose source contains `marker`.
fn line_of(marker: &str) -> i64 {
    let src = memtrace_e2e::workspace().join("tests/programs/manythreads.c");
    let text = std::fs::read_to_string(src).expect("manythreads.c reads");
    let i = text
        .lines()
        .position(|l| l.contains(marker))
        .expect("the marker is in manythreads.c");
    i as i64 + 1
}

/// The "hwm_kb N" the program printed last, in bytes.
fn hwm(stdout: &[u8]) -> i64 {
    let text = String::from_utf8_lossy(stdout);
    let kb = text
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("hwm_kb "))
        .and_then(|v| v.trim().parse::<i64>().ok())
        .unwrap_or_else(|| panic!("no hwm_kb line in {text}"));
    assert!(kb > 0, "{text}");
    kb * 1024
}

/// Runs the program untracked; returns its output.
fn untracked(dir: &Path, prog: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new(prog)
        .args(args)
        .current_dir(dir)
        .output_watched();
    assert!(out.status.success(), "{out:?}");
    out.stdout
}

/// The location of `top_by_count` at `line` of manythreads.c.
fn at_line(s: &Value, line: i64) -> Value {
    s["top_by_count"]
        .as_array()
        .expect("top_by_count")
        .iter()
        .find(|l| {
            l["file"]
                .as_str()
                .is_some_and(|f| f.ends_with("manythreads.c"))
                && l["line"].as_i64() == Some(line)
        })
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "no location at manythreads.c:{line} in {}",
                s["top_by_count"]
            )
        })
}

/// 1,000 threads each malloc 4242 bytes once, all alive at once or one after another: every
/// allocation is in the capture, at its line, and the capture and the memory the tracker adds
/// stay small (4 MB, 64 MB: about 4 KiB and 64 KiB a thread).
fn thousand_threads(mode: &str) {
    let (dir, prog) = setup(mode);
    let plain = hwm(&untracked(&dir, &prog, &[mode, "1000"]));
    let (cap, out) = record(&dir, "run.bin", &prog, &[mode, "1000"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with(&format!("{mode} 1000 threads\n")),
        "{text}"
    );
    let tracked = hwm(&out.stdout);

    let s = stats(&cap);
    assert_eq!(s["complete"], true, "{}", s["warnings"]);
    assert_eq!(s["warnings"], serde_json::json!([]));
    let loc = at_line(&s, line_of("the one allocation of each thread"));
    assert_eq!(num(&loc, "count"), 1000, "{loc}");
    assert_eq!(num(&loc, "bytes"), 1000 * 4242, "{loc}");
    assert_eq!(loc["function"], "one_malloc");
    // The main thread and the 1,000 workers, each with its one block.
    let threads = s["threads"].as_array().expect("threads");
    assert_eq!(threads.len(), 1001, "{}", s["threads"]);
    let workers = threads
        .iter()
        .filter(|t| t["allocations"] == 1 && t["bytes"] == 4242)
        .count();
    assert_eq!(workers, 1000, "{}", s["threads"]);

    let size = std::fs::metadata(&cap).expect("capture").len() as i64;
    assert!(
        size <= 4 * MIB,
        "a {size}-byte capture for 1,000 small threads"
    );
    assert!(
        tracked - plain <= 64 * MIB,
        "tracked peak {tracked} bytes, untracked {plain}: the tracker adds more than 64 MiB"
    );
}

#[test]
fn a_thousand_threads_alive_at_once_are_recorded_exactly_and_cheaply() {
    thousand_threads("alive");
}

#[test]
fn a_thousand_threads_one_after_another_are_recorded_exactly_and_cheaply() {
    thousand_threads("sequential");
}

/// The "at Ts: rounds R hwm_kb H capture C" lines of a pool run: (rounds, hwm bytes).
fn pool_points(stdout: &[u8]) -> Vec<(i64, i64)> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter(|l| l.starts_with("at "))
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            let field = |name: &str| -> i64 {
                let i = w.iter().position(|&x| x == name).expect("field");
                w[i + 1].parse().expect("a number")
            };
            (field("rounds"), field("hwm_kb") * 1024)
        })
        .collect()
}

/// A pool of 200 threads started and joined over and over (each thread mallocs and frees 20
/// times): the tracker's memory does not grow with the threads started, only the capture does,
/// with the events. (`bench/threads.sh` runs the same for a minute.)
#[test]
fn a_pool_of_threads_started_and_stopped_costs_by_the_events() {
    let (dir, prog) = setup("pool");
    let args = ["pool", "3", "200", "1.5"];
    let plain = hwm(&untracked(&dir, &prog, &args));
    let cap = dir.join("pool.bin");
    let out = Command::new(memtrace_bin())
        .args(["run", "-q", "-f", "-o"])
        .arg(&cap)
        .arg("--")
        .arg(&prog)
        .args(args)
        .current_dir(&dir)
        .output_watched();
    assert!(out.status.success(), "{out:?}");
    let points = pool_points(&out.stdout);
    assert_eq!(points.len(), 2, "{}", String::from_utf8_lossy(&out.stdout));
    let (half_rounds, half) = points[0];
    let (rounds, end) = points[1];
    assert!(rounds > half_rounds && half_rounds > 0, "{points:?}");

    // Every event: 20 allocations a thread, at their line.
    let s = stats(&cap);
    assert_eq!(s["complete"], true, "{}", s["warnings"]);
    assert_eq!(s["warnings"], serde_json::json!([]));
    let loc = at_line(&s, line_of("the pool's allocation"));
    assert_eq!(num(&loc, "count"), rounds * 200 * 20, "{loc}");
    assert_eq!(num(&loc, "bytes"), rounds * 200 * 20 * 100, "{loc}");

    // Memory: a small state for each thread alive at once (at most 200), reused by the threads
    // that follow, and the written capture still mapped (dropped every 4 MiB); the second half
    // of the run, as many threads again, adds no more than that window.
    let added = end - plain;
    assert!(
        added <= 24 * MIB,
        "tracked peak {end} bytes, untracked {plain}: the tracker adds {added}"
    );
    assert!(
        end - half <= 8 * MIB,
        "the peak grew from {half} to {end} bytes between the halves ({half_rounds} and {rounds} rounds)"
    );
    // The capture: the events' chunks (a few hundred bytes for each thread's 40 events), not a
    // staging area for each thread.
    let size = std::fs::metadata(&cap).expect("capture").len() as i64;
    let threads = rounds * 200;
    assert!(
        size <= 4 * MIB + threads * 1024,
        "a {size}-byte capture for {threads} threads of 40 events"
    );
}

/// 40 threads allocating much at once, then gone: the memory their recording took (the index
/// of recent addresses, the compressor's, the staging areas' pages) is given back when they
/// exit, not kept for threads that may never come.
#[test]
fn threads_that_wrote_much_give_their_memory_back_when_they_exit() {
    let (dir, prog) = setup("busy");
    let args = ["busy", "40", "100000"];
    let rss = |stdout: &[u8]| -> i64 {
        let text = String::from_utf8_lossy(stdout);
        text.lines()
            .find_map(|l| l.strip_prefix("rss_kb "))
            .and_then(|v| v.trim().parse::<i64>().ok())
            .unwrap_or_else(|| panic!("no rss_kb line in {text}"))
            * 1024
    };
    let plain = rss(&untracked(&dir, &prog, &args));
    let (cap, out) = record(&dir, "run.bin", &prog, &args);
    assert!(out.status.success(), "{out:?}");
    let tracked = rss(&out.stdout);

    let s = stats(&cap);
    assert_eq!(s["complete"], true, "{}", s["warnings"]);
    let loc = at_line(&s, line_of("the busy threads' allocation"));
    assert_eq!(num(&loc, "count"), 40 * 100_000, "{loc}");
    assert_eq!(num(&loc, "bytes"), 40 * 100_000 * 64, "{loc}");
    // What stays: the main thread's state, the capture's mapped window (up to 4 MiB), a few
    // pages of each idle state; about 1 MiB a thread was kept before.
    assert!(
        tracked - plain <= 24 * MIB,
        "resident after the threads exited: {tracked} bytes tracked, {plain} untracked"
    );
}

/// A record larger than a new thread's small staging area (a Python thread's 1,000-character
/// name, a function name of 3,000 characters) moves the thread to an area big enough for it:
/// nothing is dropped.
#[test]
fn records_larger_than_a_small_staging_area_are_kept() {
    use memtrace_e2e::python::{python, track_script};
    let dir = scratch("py-long");
    let function = format!("f{}", "x".repeat(2999));
    let text = format!(
        "import threading\n\n\ndef {function}():\n    global blob\n    blob = b\"\\0\" * 4_000_000\n\n\n\
         t = threading.Thread(target={function}, name=\"n\" * 1000)\nt.start()\nt.join()\n"
    );
    let (cap, out) = track_script(python(), &dir, "long.py", &text);
    assert!(out.status.success(), "{out:?}");
    let s = stats(&cap);
    assert_eq!(s["complete"], true, "{}", s["warnings"]);
    assert_eq!(s["warnings"], serde_json::json!([]));
    let threads = s["threads"].as_array().expect("threads");
    let named = threads
        .iter()
        .find(|t| t["name"].as_str() == Some(&"n".repeat(1000)))
        .unwrap_or_else(|| panic!("no thread with the long name: {}", s["threads"]));
    assert!(num(named, "bytes") >= 4_000_033, "{named}");
    let site = s["top_by_size"]
        .as_array()
        .expect("top_by_size")
        .iter()
        .find(|l| l["function"].as_str() == Some(&function))
        .unwrap_or_else(|| panic!("no location in the long-named function"));
    assert_eq!(num(site, "line"), 6, "{site}");
    assert_eq!(num(site, "bytes"), 4_000_033, "{site}");
    assert_eq!(num(site, "count"), 1, "{site}");
}

#[test]
fn threads_calling_exit_at_once_leave_a_whole_capture() {
    // The first exit runs the exit handlers and the capture's finish; a second thread's exit
    // used to end the process in the middle of it (6 runs in 10: no trailer, records lost).
    let dir = scratch("threads-exits");
    let prog = compile("exits_at_once", &dir);
    for round in 0..5 {
        let (capture, out) = record(&dir, "exits.bin", &prog, &["8"]);
        assert_eq!(out.status.code(), Some(10), "round {round}: {out:?}");
        let s = stats(&capture);
        assert_eq!(s["complete"], true, "round {round}: {}", s["warnings"]);
        assert_eq!(s["records_found"], s["records_written"], "round {round}");
        // 8 threads' 1000 allocations of 100 bytes, each freed.
        let blocks = s["top_by_count"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|t| t["function"] == "worker")
            .map(|t| (num(t, "count"), num(t, "bytes")));
        assert_eq!(blocks, Some((8000, 800_000)), "round {round}: {s}");
    }
}

#[test]
fn a_child_forked_while_its_parent_exits_ends_with_its_own_exit() {
    // Later callers of exit() wait while the first one runs the handlers (the test above): a
    // child forked meanwhile by another thread is not that process, and its exit goes on.
    let dir = scratch("threads-fork-exit");
    let prog = compile("fork_during_exit", &dir);
    let (capture, out) = record(&dir, "fork.bin", &prog, &[]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "child exited 5\n");
    assert_eq!(stats(&capture)["complete"], true);
}

#[test]
fn an_exit_handler_waiting_for_a_thread_that_exits_too_still_ends() {
    // The worker's exit waits for the main thread's finish, which waits for the worker: the
    // wait is bounded (3 s), then the worker's exit goes on as it would without memtrace.
    let dir = scratch("threads-exit-joined");
    let prog = compile("exit_joined_at_exit", &dir);
    let start = std::time::Instant::now();
    let (capture, out) = record(&dir, "joined.bin", &prog, &[]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(start.elapsed().as_secs() < 30, "{:?}", start.elapsed());
    assert_eq!(stats(&capture)["complete"], true);
}

/// A `pthread_cancel` pending while a thread allocates: malloc and free are no cancellation
/// points, but the tracker's first table of a call site drew its hash keys from `getrandom`,
/// which is one: the thread ended inside malloc with the table's lock held, and the process
/// hung (2 runs of 2). The tracker's waits were `usleep`s, cancellation points too.
#[test]
fn a_thread_with_a_cancel_pending_is_not_cancelled_inside_malloc() {
    let dir = scratch("cancel-pending");
    let prog = compile("cancel_pending", &dir);
    let alone = untracked(&dir, &prog, &[]);
    assert_eq!(
        String::from_utf8_lossy(&alone),
        "cancelled 8, reached their check 8\n"
    );
    for mode in [&[][..], &["--native"][..]] {
        let mut args = vec!["run", "-q", "-f", "-o", "c.bin"];
        args.extend_from_slice(mode);
        args.extend_from_slice(&["--", prog.to_str().expect("utf-8 path")]);
        let out = Command::new(memtrace_bin())
            .args(&args)
            .current_dir(&dir)
            .output_watched();
        assert!(out.status.success(), "{mode:?}: {out:?}");
        assert_eq!(out.stdout, alone, "{mode:?}");
        // Each worker's block (100 to 107 bytes), each freed; the C library's own (stdout's
        // buffer, the unwinder pthread_cancel loads) come from elsewhere.
        let s = stats(&dir.join("c.bin"));
        let program = s["top_modules"]
            .as_array()
            .and_then(|m| m.iter().find(|m| m["module"] == "cancel_pending"))
            .unwrap_or_else(|| panic!("{mode:?}: {s}"));
        assert_eq!(num(program, "count"), 8, "{mode:?}: {s}");
        assert_eq!(num(program, "bytes"), 828, "{mode:?}: {s}");
        assert_eq!(num(&s, "total_frees"), 8, "{mode:?}: {s}");
    }
}

/// A main thread that ends with pthread_exit leaves the process to end with its last thread,
/// through the C library's own exit, which no hook sees: the capture measured "live at exit"
/// at its very end, after the destructors (the block freed by one read as gone).
#[test]
fn live_at_exit_is_measured_when_the_main_thread_ended_first() {
    let dir = scratch("main-exits-first");
    let prog = compile("main_thread_exits_first", &dir);
    let (cap, out) = record(&dir, "m.bin", &prog, &[]);
    assert!(out.status.success(), "{out:?}");
    let s = stats(&cap);
    assert_eq!(s["leaks_at"], "exit_snapshot", "{s}");
    // main's block (freed by a destructor after the exit) and the thread's ten.
    assert!(num(&s, "leaked_bytes") >= 15_000, "{s}");
    assert!(num(&s, "leaked_allocations") >= 11, "{s}");
}

/// 100,000 short threads made `stats` a table of 100,000 rows, which `-n` did not shorten:
/// the table lists the threads that allocated most (20, or -n if more), then how many more
/// there are; `--all` (and --json) lists them all.
#[test]
fn the_thread_table_of_stats_lists_the_threads_that_allocated_most() {
    let dir = scratch("thread-table");
    let src = dir.join("sixty.c");
    std::fs::write(
        &src,
        "#include <pthread.h>\n#include <stdlib.h>\n#include <string.h>\n\
         static void *work(void *arg) {\n\
             size_t n = 1000 * (size_t)arg;\n\
             char *p = malloc(n); memset(p, 1, n); free(p);\n\
             return NULL;\n\
         }\n\
         int main(void) {\n\
             for (long i = 1; i <= 60; i++) {\n\
                 pthread_t t; pthread_create(&t, NULL, work, (void *)i); pthread_join(t, NULL);\n\
             }\n\
             return 0;\n\
         }\n",
    )
    .expect("write");
    let prog = memtrace_e2e::compile_file(&src, &dir);
    let (cap, out) = record(&dir, "sixty.bin", &prog, &[]);
    assert!(out.status.success(), "{out:?}");
    let table = |args: &[&str]| -> Vec<String> {
        let out = Command::new(memtrace_bin())
            .arg("stats")
            .args(args)
            .arg(&cap)
            .output_watched();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .skip_while(|l| !l.starts_with("Threads:"))
            .skip(2)
            .take_while(|l| !l.is_empty())
            .map(str::to_string)
            .collect()
    };
    let rows = table(&[]);
    assert_eq!(rows.len(), 21, "{rows:#?}");
    // The biggest first: the thread of 60,000 bytes, then 59,000.
    assert!(rows[0].contains("58.6 KiB"), "{rows:#?}");
    assert!(rows[1].contains("57.6 KiB"), "{rows:#?}");
    assert_eq!(
        rows[20].trim(),
        "... 41 more threads, which allocated less (--all or --json lists them all)"
    );
    let rows = table(&["-n", "30"]);
    assert_eq!(rows.len(), 31, "{rows:#?}");
    assert!(rows[30].contains("... 31 more threads"), "{rows:#?}");
    // The main thread and the 60.
    let rows = table(&["--all"]);
    assert_eq!(rows.len(), 61, "{rows:#?}");
    assert!(rows.iter().all(|r| !r.contains("more threads")));
    // Every row in the same order, all shown or not: by bytes, the most first.
    assert!(
        rows[0].contains("58.6 KiB") && rows[1].contains("57.6 KiB"),
        "{rows:#?}"
    );
    assert_eq!(stats(&cap)["threads"].as_array().map(Vec::len), Some(61));
}
