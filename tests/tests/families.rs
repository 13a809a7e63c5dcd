//! Process families under `memtrace run --follow-fork`: every Python child, however it was
//! started (multiprocessing spawn, forkserver and fork, ProcessPoolExecutor, subprocess, a
//! shell in between, another interpreter version), is tracked as a Python run: its worker
//! function's allocation is found at its line with its exact size, with the PyMem allocators
//! traced.

use memtrace_e2e::python::*;
use memtrace_e2e::watchdog::Watched;
use memtrace_e2e::{allocator, num, scratch, stats};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `b"\0" * n` is one allocation of the bytes object: a 32-byte header, n bytes and a NUL.
const BYTES_HEADER: i64 = 33;

/// The worker module: `work` allocates `b"\0" * n` at line 5.
const WORKER: &str = "\
import sys


def work(n):
    data = b\"\\0\" * n
    return len(data)


if __name__ == \"__main__\":
    print(work(int(sys.argv[1])))
";
const WORK_LINE: i64 = 5;

/// The captures of the family of `capture`: the file itself and every `<capture>.<suffix>`.
fn family_files(capture: &Path) -> Vec<PathBuf> {
    let dir = capture.parent().expect("a directory");
    let name = capture
        .file_name()
        .expect("a file name")
        .to_string_lossy()
        .into_owned();
    let prefix = format!("{name}.");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read dir")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(&prefix))
        })
        .collect();
    files.sort();
    files
}

fn location<'a>(v: &'a Value, function: &str, line: i64) -> Option<&'a Value> {
    v["top_by_size"]
        .as_array()?
        .iter()
        .find(|l| l["function"].as_str() == Some(function) && l["line"].as_i64() == Some(line))
}

/// Runs `script` (in `dir`, with `args`) under `memtrace run --follow-fork` with `python`;
/// the program must succeed with the output it has untracked.
fn run_family(python: &Path, dir: &Path, script: &Path, args: &[&str]) -> PathBuf {
    let capture = dir.join("family.bin");
    let mut words = vec![script.to_str().expect("utf-8 path")];
    words.extend_from_slice(args);
    let plain = untracked(python, &words, dir, b"");
    assert!(plain.status.success(), "untracked: {plain:?}");
    let mut cmd = Command::new(memtrace_e2e::memtrace_bin());
    cmd.args(["run", "-q", "-f", "--follow-fork", "-o"])
        .arg(&capture)
        .arg("--python")
        .arg(python)
        .args(&words);
    let out = output(cmd, dir, b"");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(out.stdout, plain.stdout, "{out:?}");
    capture
}

/// The stats of the one capture of the family whose `work` (worker.py's WORK_LINE) made the
/// subprocess workers' one allocation of 3,210,987 bytes (asserted there).
fn subprocess_worker(capture: &Path) -> Value {
    child_with(
        capture,
        "work",
        "worker.py",
        WORK_LINE,
        3_210_987 + BYTES_HEADER,
    )
}

/// The one child capture whose `function` allocated `bytes` once at `line` of a file ending in
/// `file`: its stats. Fails listing what each child's top location was.
fn child_with(capture: &Path, function: &str, file: &str, line: i64, bytes: i64) -> Value {
    let mut found = Vec::new();
    let mut seen = Vec::new();
    for f in family_files(capture) {
        let s = stats(&f);
        match location(&s, function, line) {
            Some(site) if site["file"].as_str().is_some_and(|p| p.ends_with(file)) => {
                assert_eq!(num(site, "bytes"), bytes, "{}: {site}", f.display());
                assert_eq!(num(site, "count"), 1, "{}: {site}", f.display());
                found.push(s.clone());
            }
            _ => seen.push(format!(
                "{}: {}",
                f.display(),
                s["top_by_size"][0]["location"]
            )),
        }
    }
    assert_eq!(
        found.len(),
        1,
        "one child with {function} at {file}:{line} ({bytes} bytes); others: {seen:#?}"
    );
    let s = found.pop().expect("one");
    // A Python run: the PyMem allocators are traced in the child too.
    assert!(allocator(&s, "pymalloc_malloc") > 0, "{}", s["allocators"]);
    s
}

/// A pool of one worker under the start method `method` runs `work(n)`.
fn pool_worker_is_python(method: &str, n: i64) {
    let dir = scratch(&format!("family-{method}"));
    write(&dir, "worker.py", WORKER);
    let main = write(
        &dir,
        "main.py",
        &format!(
            "\
import multiprocessing as mp
import worker

if __name__ == \"__main__\":
    ctx = mp.get_context(\"{method}\")
    pool = ctx.Pool(1)
    print(pool.map(worker.work, [{n}]))
    pool.close()
    pool.join()
"
        ),
    );
    let capture = run_family(python(), &dir, &main, &[]);
    let s = child_with(&capture, "work", "worker.py", WORK_LINE, n + BYTES_HEADER);
    let top = location(&s, "work", WORK_LINE).expect("found");
    let frames: Vec<&str> = top["stack"]
        .as_array()
        .expect("a stack")
        .iter()
        .filter_map(|f| f["function"].as_str())
        .collect();
    assert!(
        frames.contains(&"worker"),
        "the pool's worker loop: {frames:?}"
    );
}

#[test]
fn a_spawned_pool_worker_is_tracked_as_python() {
    pool_worker_is_python("spawn", 7_654_321);
}

#[test]
fn a_forkserver_pool_worker_is_tracked_as_python() {
    pool_worker_is_python("forkserver", 6_543_210);
}

#[test]
fn a_forked_pool_worker_is_tracked_as_python() {
    pool_worker_is_python("fork", 5_432_109);
}

#[test]
fn a_process_pool_executor_worker_is_tracked_as_python() {
    let dir = scratch("family-executor");
    write(&dir, "worker.py", WORKER);
    let main = write(
        &dir,
        "main.py",
        "\
from concurrent.futures import ProcessPoolExecutor
import worker

if __name__ == \"__main__\":
    with ProcessPoolExecutor(max_workers=1) as ex:
        print(ex.submit(worker.work, 4_321_098).result())
",
    );
    let capture = run_family(python(), &dir, &main, &[]);
    child_with(
        &capture,
        "work",
        "worker.py",
        WORK_LINE,
        4_321_098 + BYTES_HEADER,
    );
}

/// `main.py` runs `PROGRAM worker.py N` with subprocess.run (through `sh -c` when `shell`).
fn subprocess_main(dir: &Path, program: &str, shell: bool) -> PathBuf {
    let call = if shell {
        // The shell forks the interpreter, then runs `true`: it stays in between.
        format!("subprocess.run(f\"'{program}' worker.py 3210987; true\", shell=True, check=True)")
    } else {
        format!("subprocess.run([{program}, \"worker.py\", \"3210987\"], check=True)")
    };
    write(
        dir,
        "main.py",
        &format!("import subprocess, sys\n\n{call}\nprint(\"done\")\n"),
    )
}

#[test]
fn a_subprocess_of_the_same_interpreter_is_tracked_as_python() {
    let dir = scratch("family-subprocess");
    write(&dir, "worker.py", WORKER);
    let main = subprocess_main(&dir, "sys.executable", false);
    let capture = run_family(python(), &dir, &main, &[]);
    let s = subprocess_worker(&capture);
    let frames = location(&s, "work", WORK_LINE).expect("found")["stack"].clone();
    assert_eq!(frames[1]["function"], "<module>", "{frames}");
    assert_eq!(frames[1]["line"], 10, "{frames}");
}

#[test]
fn a_python_child_behind_a_shell_is_tracked_as_python() {
    let dir = scratch("family-shell");
    write(&dir, "worker.py", WORKER);
    let exe = python().to_str().expect("utf-8 path").to_string();
    let main = subprocess_main(&dir, &exe, true);
    let capture = run_family(python(), &dir, &main, &[]);
    subprocess_worker(&capture);
}

/// The version of `python` (3.minor).
fn minor_of(python: &Path) -> u32 {
    let out = Command::new(python)
        .args(["-c", "import sys; print(sys.version_info[1])"])
        .output_watched();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("a minor version")
}

#[test]
fn a_child_on_another_python_version_is_tracked_as_python() {
    let dir = scratch("family-other-version");
    write(&dir, "worker.py", WORKER);
    let mine = minor_of(python());
    let other_minor = if mine == 12 { 13 } else { 12 };
    let other = claimed_python(other_minor);
    let quoted = format!("{:?}", other.to_str().expect("utf-8 path"));
    let main = subprocess_main(&dir, &quoted, false);
    let capture = run_family(python(), &dir, &main, &[]);
    let s = subprocess_worker(&capture);
    assert!(
        s["exe"]
            .as_str()
            .is_some_and(|e| e.contains(&format!("3.{other_minor}"))),
        "{}",
        s["exe"]
    );
}

#[test]
fn a_python_child_thread_is_tracked_at_its_line() {
    let dir = scratch("family-thread");
    write(
        &dir,
        "threaded.py",
        "\
import threading
kept = None

def in_thread():
    global kept
    kept = b\"\\0\" * 2_345_678


t = threading.Thread(target=in_thread, name=\"loader\")
t.start()
t.join()
",
    );
    let main = write(
        &dir,
        "main.py",
        "import subprocess, sys\nsubprocess.run([sys.executable, \"threaded.py\"], check=True)\n",
    );
    let capture = run_family(python(), &dir, &main, &[]);
    let s = child_with(
        &capture,
        "in_thread",
        "threaded.py",
        6,
        2_345_678 + BYTES_HEADER,
    );
    let threads = s["threads"].to_string();
    assert!(threads.contains("loader"), "{threads}");
}

// ---- the family report: the process tree and the combined peak ----

/// The `processes` row of `pid`.
fn row(s: &Value, pid: i64) -> Value {
    s["processes"]
        .as_array()
        .expect("processes")
        .iter()
        .find(|p| p["pid"].as_i64() == Some(pid))
        .unwrap_or_else(|| panic!("no process {pid} in {}", s["processes"]))
        .clone()
}

/// The pids a script printed, one per line.
fn pids(stdout: &[u8]) -> Vec<i64> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Runs `script` under `memtrace run --follow-fork`; returns the capture and the output.
fn run_traced(dir: &Path, script: &Path) -> (PathBuf, std::process::Output) {
    let capture = dir.join("family.bin");
    let mut cmd = Command::new(memtrace_e2e::memtrace_bin());
    cmd.args(["run", "-q", "-f", "--follow-fork", "-o"])
        .arg(&capture)
        .arg("--python")
        .arg(python())
        .arg(script);
    let out = output(cmd, dir, b"");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    (capture, out)
}

const MB30: i64 = 30_000_000;

#[test]
fn two_children_holding_30_mb_at_once_make_a_combined_peak_of_60_mb() {
    let dir = scratch("family-combined");
    // Each child holds 30 MB until both do (a barrier), then lets go; the parent waits.
    let script = write(&dir, "both.py", TWO_CHILDREN);
    let (capture, out) = run_traced(&dir, &script);
    let kids = pids(&out.stdout);
    assert_eq!(kids.len(), 2, "{out:?}");
    let s = stats(&capture);
    let combined = num(&s, "combined_peak_bytes");
    assert!(combined >= 2 * MB30, "combined peak {combined}");
    // No single process comes near it.
    for p in s["processes"].as_array().expect("processes") {
        assert!(num(p, "peak_bytes") < 2 * MB30 - 1_000_000, "{p}");
    }
    let shares = s["combined_peak_by_process"].as_array().expect("shares");
    for kid in &kids {
        let share = shares
            .iter()
            .find(|x| x["pid"].as_i64() == Some(*kid))
            .unwrap_or_else(|| panic!("pid {kid} not named at the combined peak: {shares:?}"));
        assert!(num(share, "bytes") >= MB30, "{share}");
        let r = row(&s, *kid);
        assert_eq!(num(&r, "parent_pid"), num(&s, "pid"), "{r}");
        assert!(num(&r, "peak_bytes") >= MB30, "{r}");
        assert!(
            r["command"]
                .as_str()
                .is_some_and(|c| c.contains("multiprocessing.spawn")),
            "{r}"
        );
    }
    let t = s["combined_peak_time_s"].as_f64().expect("a time");
    assert!(
        t > 0.0 && t <= s["duration_s"].as_f64().expect("duration"),
        "{t}"
    );
    // The text report shows the tree and the combined peak.
    let text = memtrace_e2e::memtrace(&["stats", capture.to_str().expect("utf-8")], &dir);
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    assert!(text.contains("Processes ("), "{text}");
    assert!(text.contains("Combined peak:"), "{text}");
    for kid in &kids {
        assert!(text.contains(&format!("pid {kid} ")), "{text}");
    }
    family_reports_show_each_process(&capture, &kids, &dir);
    // The reports that read one process say so (lines showed the parent's few MB alone and
    // said nothing); with --pid they read the process asked for, and say nothing.
    let c = capture.to_str().expect("utf-8");
    let said = "tracked processes (--follow-fork): only the process of this capture is shown, not its children (--pid PID shows a child's)";
    let kid = kids[0].to_string();
    for args in [
        vec!["lines", c],
        vec!["tree", "--by-type", "--text", c],
        vec!["summary", "--by-type", c],
    ] {
        let out = memtrace_e2e::memtrace(&args, &dir);
        assert!(out.status.success(), "{args:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(said), "{args:?}: {err}");
        let mut with_pid = args.clone();
        with_pid.splice(1..1, ["--pid", kid.as_str()]);
        let out = memtrace_e2e::memtrace(&with_pid, &dir);
        assert!(out.status.success(), "{with_pid:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("only the process"), "{with_pid:?}: {err}");
    }
    // The CSV export (rows name no process) says so too; the family's pprof does not.
    let csv_said =
        "only the process of this capture is exported, not its children (CSV rows name no process";
    for (args, alone) in [
        (vec!["export", "--format", "csv", c], true),
        (
            vec!["export", "--format", "csv", "--pid", kid.as_str(), c],
            false,
        ),
        (vec!["export", "--format", "folded", c], false),
    ] {
        let out = memtrace_e2e::memtrace(&args, &dir);
        assert!(out.status.success(), "{args:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.contains(csv_said), alone, "{args:?}: {err}");
    }
}

/// The nodes of a `tree --json` tree named `function` at `line`, anywhere below `node`.
fn find_nodes<'a>(node: &'a Value, function: &str, line: i64, out: &mut Vec<&'a Value>) {
    if node["function"].as_str() == Some(function) && node["line"].as_i64() == Some(line) {
        out.push(node);
    }
    for c in node["children"].as_array().into_iter().flatten() {
        find_nodes(c, function, line, out);
    }
}

fn report_json(args: &[&str], capture: &Path, dir: &Path) -> Value {
    let mut all = args.to_vec();
    all.push(capture.to_str().expect("utf-8"));
    let out = memtrace_e2e::memtrace(&all, dir);
    assert!(out.status.success(), "{args:?}: {out:?}");
    serde_json::from_slice(&out.stdout).expect("JSON")
}

/// tree, summary and export show the family at the combined peak, each process its outermost
/// frame; --pid shows one process alone.
fn family_reports_show_each_process(capture: &Path, kids: &[i64], dir: &Path) {
    let tree = report_json(
        &["tree", "--json", "--biggest", "3", "--depth", "12"],
        capture,
        dir,
    );
    assert!(
        tree["title"]
            .as_str()
            .is_some_and(|t| t.contains("combined peak")),
        "{}",
        tree["title"]
    );
    let top = tree["tree"]["children"].as_array().expect("children");
    for kid in kids {
        let prefix = format!("pid {kid}: ");
        let node = top
            .iter()
            .find(|n| {
                n["location"]
                    .as_str()
                    .is_some_and(|l| l.starts_with(&prefix))
            })
            .unwrap_or_else(|| panic!("no top-level node for pid {kid}: {top:?}"));
        let mut held = Vec::new();
        find_nodes(node, "hold", 5, &mut held);
        assert_eq!(held.len(), 1, "{node}");
        assert_eq!(num(held[0], "bytes"), MB30 + BYTES_HEADER, "{}", held[0]);
    }
    let summary = report_json(&["summary", "--json"], capture, dir);
    let rows = summary["rows"].to_string();
    for kid in kids {
        assert!(rows.contains(&format!("pid {kid}: ")), "{rows}");
    }
    // Written to a file and read line by line: a family's folded stacks are megabytes.
    let folded = dir.join("family.folded");
    let out = memtrace_e2e::memtrace(
        &[
            "export",
            "-f",
            "folded",
            "-o",
            folded.to_str().expect("utf-8"),
            capture.to_str().expect("utf-8"),
        ],
        dir,
    );
    assert!(out.status.success(), "{out:?}");
    for kid in kids {
        let file = std::fs::File::open(&folded).expect("the folded stacks");
        let prefix = format!("pid {kid}: ");
        let line = std::io::BufRead::lines(std::io::BufReader::new(file))
            .map(|l| l.expect("a line"))
            .find(|l| l.starts_with(&prefix) && l.contains("hold at "))
            .unwrap_or_else(|| panic!("no folded stack of pid {kid} at hold"));
        assert!(
            line.ends_with(&format!(" {}", MB30 + BYTES_HEADER)),
            "{line}"
        );
    }
    // --pid: one process alone, no process frame.
    let kid = kids[0].to_string();
    let alone = report_json(
        &[
            "tree",
            "--json",
            "--biggest",
            "3",
            "--depth",
            "12",
            "--pid",
            &kid,
        ],
        capture,
        dir,
    );
    let text = alone["tree"].to_string();
    assert!(!text.contains("pid "), "{text}");
    let mut held = Vec::new();
    find_nodes(&alone["tree"], "hold", 5, &mut held);
    assert_eq!(held.len(), 1, "{text}");
    assert_eq!(num(held[0], "bytes"), MB30 + BYTES_HEADER);
    let s = report_json(&["stats", "--json", "--pid", &kid], capture, dir);
    assert_eq!(s["pid"].as_i64(), Some(kids[0]));
    assert!(s.get("processes").is_none(), "--pid: one process");
    // lines too: the child's own lines, its 30 MB among them.
    let l = report_json(&["lines", "--json", "--pid", &kid], capture, dir);
    let held_line = l["files"]
        .as_array()
        .expect("files")
        .iter()
        .flat_map(|f| f["lines"].as_array().expect("lines"))
        .any(|line| line["bytes"].as_i64() == Some(MB30 + BYTES_HEADER));
    assert!(held_line, "lines --pid {kid}: {l}");
    // The root alone: its own figures, no family.
    let root = stats(capture);
    let root_pid = num(&root, "pid").to_string();
    let alone = report_json(&["stats", "--json", "--pid", &root_pid], capture, dir);
    assert_eq!(alone["pid"], root["pid"]);
    assert_eq!(alone["peak_bytes"], root["peak_bytes"]);
    assert!(alone.get("processes").is_none());
    // The page: each process a frame, the combined peak among its facts.
    let page = dir.join("family.html");
    let out = memtrace_e2e::memtrace(
        &[
            "flamegraph",
            "-o",
            page.to_str().expect("utf-8"),
            capture.to_str().expect("utf-8"),
        ],
        dir,
    );
    assert!(out.status.success(), "{out:?}");
    let html = std::fs::read_to_string(&page).expect("the page");
    let data = memtrace_e2e::page::page_data(&html);
    assert!(data["family"].is_object(), "not a family's page");
    for kid in kids {
        assert!(
            html.contains(&format!("pid {kid}: ")),
            "no frame of pid {kid}"
        );
    }
    // Without -o: the family's page, and one per process that keeps its own name (a page of a
    // --pid replaced the family's).
    let family_page = capture.with_extension("html");
    let mut pages = vec![family_page.clone()];
    let cap = capture.to_str().expect("utf-8");
    let out = memtrace_e2e::memtrace(&["flamegraph", cap], dir);
    assert!(out.status.success(), "{out:?}");
    for kid in kids {
        let pid = kid.to_string();
        let out = memtrace_e2e::memtrace(&["flamegraph", "--pid", &pid, cap], dir);
        assert!(out.status.success(), "{out:?}");
        let stem = capture.file_stem().expect("name").to_string_lossy();
        pages.push(capture.with_file_name(format!("{stem}.{kid}.html")));
    }
    for (i, page) in pages.iter().enumerate() {
        let html = std::fs::read_to_string(page).expect("each page");
        let data = memtrace_e2e::page::page_data(&html);
        assert_eq!(data["family"].is_object(), i == 0, "{}", page.display());
    }
    let bad = memtrace_e2e::memtrace(
        &[
            "tree",
            "--text",
            "--pid",
            "1",
            capture.to_str().expect("utf-8"),
        ],
        dir,
    );
    assert_eq!(bad.status.code(), Some(1));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.starts_with("memtrace: no process 1 in the family of"),
        "{err}"
    );
    let bad = memtrace_e2e::memtrace(
        &["lines", "--pid", "1", capture.to_str().expect("utf-8")],
        dir,
    );
    assert_eq!(bad.status.code(), Some(1), "{bad:?}");
    assert!(
        String::from_utf8_lossy(&bad.stderr).starts_with("memtrace: no process 1 in the family of"),
        "{bad:?}"
    );
    // A negative pid is an invalid value, not an unknown option.
    let bad = memtrace_e2e::memtrace(
        &["stats", "--pid", "-1", capture.to_str().expect("utf-8")],
        dir,
    );
    assert_eq!(bad.status.code(), Some(1), "{bad:?}");
    assert!(
        String::from_utf8_lossy(&bad.stderr)
            .starts_with("memtrace: stats: invalid value '-1' for '--pid <PID>'"),
        "{bad:?}"
    );
}

#[test]
fn the_parent_capture_alone_names_its_children() {
    // The root capture copied elsewhere without its children's: the family is still listed
    // (pid, parent, command, start), from the child records.
    let dir = scratch("family-records");
    write(&dir, "worker.py", WORKER);
    let main = subprocess_main(&dir, "sys.executable", false);
    let capture = run_family(python(), &dir, &main, &[]);
    let alone = scratch("family-records-alone").join("root.bin");
    std::fs::copy(&capture, &alone).expect("copy");
    let s = stats(&alone);
    let procs = s["processes"].as_array().expect("processes");
    assert_eq!(procs.len(), 2, "{procs:?}");
    let child = &procs[1];
    assert_eq!(num(child, "parent_pid"), num(&s, "pid"), "{child}");
    assert_eq!(child["tracked"], false, "{child}");
    assert!(
        child["command"]
            .as_str()
            .is_some_and(|c| c.ends_with("worker.py 3210987")),
        "{child}"
    );
    let start = child["start_s"].as_f64().expect("start");
    assert!(start > 0.0 && start < 60.0, "{start}");
    // Beside its children, the same pid is the tracked child with its capture.
    let s = stats(&capture);
    let r = row(&s, num(child, "pid"));
    assert_eq!(r["tracked"], true, "{r}");
    assert!(num(&r, "peak_bytes") >= 3_210_987, "{r}");
}

#[test]
fn a_child_killed_by_sigkill_is_read_as_far_as_it_goes() {
    let dir = scratch("family-sigkill");
    let script = write(
        &dir,
        "killer.py",
        "\
import os, signal, subprocess, sys

code = '''
import sys, time
def load():
    return b\"\\\\0\" * 4_000_000
kept = load()
print(\"ready\", flush=True)
time.sleep(60)
'''
child = subprocess.Popen([sys.executable, \"-c\", code], stdout=subprocess.PIPE)
child.stdout.readline()
os.kill(child.pid, signal.SIGKILL)
child.wait()
print(child.pid)
",
    );
    let (capture, out) = run_traced(&dir, &script);
    let kid = pids(&out.stdout)[0];
    let s = stats(&capture);
    let r = row(&s, kid);
    assert_eq!(r["complete"], false, "{r}");
    assert!(num(&r, "peak_bytes") >= 4_000_033, "{r}");
    let child = stats(&memtrace_e2e_child(&capture, kid));
    let site = location(&child, "load", 4).expect("load at line 4");
    assert_eq!(num(site, "bytes"), 4_000_000 + BYTES_HEADER);
}

/// `<capture>.<pid>`.
fn memtrace_e2e_child(capture: &Path, pid: i64) -> PathBuf {
    PathBuf::from(format!("{}.{pid}", capture.display()))
}

#[test]
fn a_child_that_outlives_the_parent_is_in_the_family() {
    let dir = scratch("family-orphan");
    let done = dir.join("done");
    // The child allocates once the parent's run is over (the test says so with `go`), however
    // slow the machine.
    let go = dir.join("go");
    let script = write(
        &dir,
        "orphan.py",
        &format!(
            "\
import subprocess, sys

code = '''
import os, time
while not os.path.exists({go:?}): time.sleep(0.02)
def late():
    return b\"\\\\0\" * 6_000_000
kept = late()
open({done:?}, \"w\").close()
'''
child = subprocess.Popen([sys.executable, \"-c\", code], start_new_session=True,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(child.pid)
"
        ),
    );
    let (capture, out) = run_traced(&dir, &script);
    std::fs::write(&go, "").expect("go");
    let kid = pids(&out.stdout)[0];
    // The parent is gone; the child finishes its capture on its own.
    let child_capture = memtrace_e2e_child(&capture, kid);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let finished = done.exists() && stats(&child_capture)["complete"] == true;
        if finished {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the child never ended"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let s = stats(&capture);
    let r = row(&s, kid);
    assert_eq!(r["complete"], true, "{r}");
    assert!(num(&r, "peak_bytes") >= 6_000_033, "{r}");
    // Its heap counts after the parent's end: the combined peak has it.
    let shares = s["combined_peak_by_process"].as_array().expect("shares");
    assert!(
        shares.iter().any(|x| x["pid"].as_i64() == Some(kid)),
        "{shares:?}"
    );
    assert!(s["combined_peak_time_s"].as_f64().expect("t") > s["duration_s"].as_f64().expect("d"));
    let child = stats(&child_capture);
    let site = location(&child, "late", 5).expect("late at line 5");
    assert_eq!(num(site, "bytes"), 6_000_000 + BYTES_HEADER);
}

#[test]
fn a_python_child_sees_no_trace_of_its_hook() {
    // The child's start-up hook is a directory of its own (the run's may be gone when a child
    // starts late): the child sees its own PYTHONPATH and sys.path, and the directory is gone.
    let dir = scratch("family-no-trace");
    write(
        &dir,
        "look.py",
        "\
import glob, os, sys, tempfile
print(os.environ.get(\"PYTHONPATH\"), os.environ.get(\"MEMTRACE_PYTHON_HOOK_PRIVATE\"))
print([p for p in sys.path if \"memtrace\" in p])
print([d for t in (\"/dev/shm\", tempfile.gettempdir()) for d in glob.glob(os.path.join(t, f\"memtrace-py-{os.getpid()}*\"))])
",
    );
    let main = write(
        &dir,
        "main.py",
        "import os, subprocess, sys\nos.environ[\"PYTHONPATH\"] = \"/nowhere\"\nsubprocess.run([sys.executable, \"look.py\"], check=True)\n",
    );
    let capture = run_family(python(), &dir, &main, &[]);
    let files = family_files(&capture);
    assert!(!files.is_empty(), "the child was tracked");
}

/// Python children killed as they start (a supervisor's, a test runner's timeout), before
/// their interpreter imported the hook that removes its directory: the run removes those
/// directories at its end (3 runs of this left 28 of them).
#[test]
fn python_children_killed_at_their_start_leave_no_hook_directory() {
    let dir = scratch("family-killed-at-start");
    let main = write(
        &dir,
        "main.py",
        "\
import subprocess, sys, time
pids = []
for i in range(12):
    p = subprocess.Popen([sys.executable, \"-c\", \"pass\"])
    time.sleep(0.001 * i)
    p.kill()
    p.wait()
    pids.append(str(p.pid))
with open(\"pids.txt\", \"w\") as f:
    f.write(\" \".join(pids))
print(\"done\")
",
    );
    for _ in 0..2 {
        run_family(python(), &dir, &main, &[]);
        let pids = std::fs::read_to_string(dir.join("pids.txt")).expect("the pids");
        let left: Vec<String> = pids.split_whitespace().flat_map(hook_dirs_of).collect();
        assert!(left.is_empty(), "{left:?}");
    }
}

/// The hook directories of the followed child `pid` still there: its own are
/// `memtrace-py-<pid><4 digits>`, in /dev/shm or the temporary directory.
fn hook_dirs_of(pid: &str) -> Vec<String> {
    let own = format!("memtrace-py-{pid}");
    let tmp = std::env::var("TMPDIR").unwrap_or_else(|_| "/tmp".into());
    ["/dev/shm".to_string(), tmp]
        .iter()
        .flat_map(|base| std::fs::read_dir(base).into_iter().flatten().flatten())
        .map(|e| e.path().to_string_lossy().into_owned())
        .filter(|p| {
            let name = p.rsplit('/').next().unwrap_or_default();
            name.starts_with(&own) && name.len() == own.len() + 4
        })
        .collect()
}

/// A followed Python child loads the compiled hook `memtrace run` keeps (its own hook directory
/// is new, so its interpreter would compile the hook at each start): on the second run, once the
/// first has kept it. The child's figures are its own, and its hook directory goes.
#[test]
fn a_python_child_loads_the_kept_compiled_hook() {
    let dir = scratch("family-child-compiled-hook");
    let cache = dir.join("cache");
    write(&dir, "worker.py", WORKER);
    let main = write(
        &dir,
        "main.py",
        "\
import os, subprocess, sys
env = dict(os.environ, PYTHONVERBOSE=\"1\")
p = subprocess.Popen([sys.executable, \"worker.py\", \"3210987\"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
out, err = p.communicate()
print(out.strip())
print(any(\"memtrace-py-\" in l and \"__pycache__/sitecustomize.\" in l for l in err.splitlines() if l.startswith(\"# code object from\")))
print(p.pid)
",
    );
    for (round, from_pyc) in [(1, false), (2, true)] {
        let capture = dir.join(format!("round{round}.bin"));
        let mut cmd = Command::new(memtrace_e2e::memtrace_bin());
        cmd.args(["run", "-q", "-f", "--follow-fork", "-o"])
            .arg(&capture)
            .arg("--python")
            .arg(python())
            .arg(&main)
            .env("XDG_CACHE_HOME", &cache)
            .env_remove("PYTHONDONTWRITEBYTECODE");
        let out = output(cmd, &dir, b"");
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let lines: Vec<&str> = stdout.lines().collect();
        let loaded = if from_pyc { "True" } else { "False" };
        assert_eq!(lines[..2], ["3210987", loaded], "round {round}: {stdout}");
        subprocess_worker(&capture);
        let left = hook_dirs_of(lines[2]);
        assert!(left.is_empty(), "round {round}: {left:?}");
    }
}

/// A followed child's hook directory is its own (`memtrace-py-<pid><4 digits>` in /dev/shm or
/// the temporary directory), removed by the hook when imported; a child whose interpreter
/// never imports it (`--version`, `-S`, `-I`, a bad option) has it removed at its end.
#[test]
fn a_python_child_that_never_imports_the_hook_leaves_no_directory() {
    let dir = scratch("family-hook-unused");
    let main = write(
        &dir,
        "main.py",
        "\
import subprocess, sys
for args in ([\"--version\"], [\"-S\", \"-c\", \"pass\"], [\"-I\", \"-c\", \"pass\"], [\"--no-such-option\"], [\"-c\", \"pass\"]):
    p = subprocess.Popen([sys.executable, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    p.wait()
    print(p.pid)
",
    );
    let capture = dir.join("family.bin");
    let mut cmd = Command::new(memtrace_e2e::memtrace_bin());
    cmd.args(["run", "-q", "-f", "--follow-fork", "-o"])
        .arg(&capture)
        .arg("--python")
        .arg(python())
        .arg(&main);
    let out = output(cmd, &dir, b"");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let pids: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(pids.len(), 5, "{out:?}");
    for pid in &pids {
        let left = hook_dirs_of(pid);
        assert!(left.is_empty(), "pid {pid}: {left:?}");
    }
}

#[test]
fn a_run_without_follow_fork_says_how_many_python_children_it_left_out() {
    let dir = scratch("family-hint");
    write(&dir, "worker.py", WORKER);
    let main = write(
        &dir,
        "main.py",
        "\
import subprocess, sys
for n in (\"1000\", \"2000\"):
    subprocess.run([sys.executable, \"worker.py\", n], check=True)
subprocess.run([\"true\"], check=True)
",
    );
    let capture = dir.join("hint.bin");
    let mut cmd = Command::new(memtrace_e2e::memtrace_bin());
    cmd.args(["run", "-f", "-o"])
        .arg(&capture)
        .arg("--python")
        .arg(python())
        .arg(&main);
    let out = output(cmd, &dir, b"");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        err.lines().last(),
        Some("memtrace: 2 Python child processes were not tracked; --follow-fork tracks them"),
        "{err}"
    );
    assert!(family_files(&capture).is_empty(), "no child capture");
    // The parent's capture still names all three children.
    let s = stats(&capture);
    let procs = s["processes"].as_array().expect("processes");
    assert_eq!(procs.len(), 4, "{procs:?}");
    assert!(
        procs[1..].iter().all(|p| p["tracked"] == false),
        "{procs:?}"
    );
    // With --follow-fork there is nothing to say.
    let mut cmd = Command::new(memtrace_e2e::memtrace_bin());
    cmd.args(["run", "-f", "--follow-fork", "-o"])
        .arg(&capture)
        .arg("--python")
        .arg(python())
        .arg(&main);
    let out = output(cmd, &dir, b"");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!err.contains("not tracked"), "{err}");
}

/// `memtrace stats FILE [--pid PID]` as text: (exit code, stdout, stderr).
fn stats_text(capture: &Path, pid: Option<&str>) -> (Option<i32>, String, String) {
    let mut cmd = Command::new(memtrace_e2e::memtrace_bin());
    cmd.arg("stats").arg(capture);
    if let Some(pid) = pid {
        cmd.args(["--pid", pid]);
    }
    let out = cmd.output().expect("memtrace stats runs");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

#[test]
fn a_followed_child_without_its_capture_is_not_called_untracked() {
    // A forked child always writes its capture under --follow-fork: one missing (removed, or
    // never written) is named, with its path. A subprocess child's may be missing by design
    // (its exec failed, a static program): no warning. Neither reads "not tracked".
    let dir = scratch("family-missing");
    let main = write(
        &dir,
        "main.py",
        "\
import os, subprocess, sys
pid = os.fork()
if pid == 0:
    os._exit(0)
os.waitpid(pid, 0)
subprocess.run([sys.executable, \"-c\", \"pass\"], check=True)
",
    );
    let capture = run_family(python(), &dir, &main, &[]);
    let s = stats(&capture);
    let procs = s["processes"].as_array().expect("processes").clone();
    assert_eq!(procs.len(), 3, "{procs:?}");
    let (forked, spawned) = (num(&procs[1], "pid"), num(&procs[2], "pid"));
    for p in [forked, spawned] {
        let child = memtrace_e2e_child(&capture, p);
        std::fs::remove_file(&child).expect("the child's capture");
    }
    let (code, out, err) = stats_text(&capture, None);
    assert_eq!(code, Some(0), "{err}");
    let missing = memtrace_e2e_child(&capture, forked);
    let warning = format!(
        "memtrace: warning: process {forked} has no capture: {} was not written",
        missing.display()
    );
    assert!(err.contains(&warning), "{err}");
    assert!(!err.contains(&format!("process {spawned} ")), "{err}");
    let rows: Vec<&str> = out.lines().filter(|l| l.contains("(no capture)")).collect();
    assert_eq!(rows.len(), 2, "{out}");
    assert!(
        !out.contains("not tracked") && !err.contains("--follow-fork"),
        "{out}{err}"
    );
    let (code, _, err) = stats_text(&capture, Some(&spawned.to_string()));
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "process {spawned} has no capture: the program it ran was not tracked"
        )),
        "{err}"
    );
    // Without --follow-fork, the children were not tracked: that and how to track them.
    let mut cmd = Command::new(memtrace_e2e::memtrace_bin());
    cmd.args(["run", "-q", "-f", "-o"])
        .arg(&capture)
        .arg("--python")
        .arg(python())
        .arg(&main);
    let out = output(cmd, &dir, b"");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let s = stats(&capture);
    let forked = num(&s["processes"][1], "pid").to_string();
    let (code, out, err) = stats_text(&capture, None);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out.matches("(not tracked)").count(), 2, "{out}");
    assert!(!err.contains("has no capture"), "{err}");
    let (code, _, err) = stats_text(&capture, Some(&forked));
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "process {forked} was not tracked (run with --follow-fork"
        )),
        "{err}"
    );
}

#[test]
fn a_forked_child_that_execs_python_is_tracked_as_python() {
    // os.fork, then os.execv of the interpreter: the child's second image is a Python run, and
    // the family names the process by what it became.
    let dir = scratch("family-fork-exec");
    write(&dir, "worker.py", WORKER);
    let main = write(
        &dir,
        "main.py",
        "\
import os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.executable, [sys.executable, \"worker.py\", \"2109876\"])
os.waitpid(pid, 0)
",
    );
    let capture = run_family(python(), &dir, &main, &[]);
    let s = child_with(
        &capture,
        "work",
        "worker.py",
        WORK_LINE,
        2_109_876 + BYTES_HEADER,
    );
    let root = stats(&capture);
    let r = row(&root, num(&s, "pid"));
    assert_eq!(r["captures"].as_array().map(Vec::len), Some(2), "{r}");
    assert!(
        r["command"]
            .as_str()
            .is_some_and(|c| c.ends_with("worker.py 2109876")),
        "{r}"
    );
}

#[test]
fn a_child_on_a_venv_python_is_tracked_as_python() {
    let dir = scratch("family-venv");
    write(&dir, "worker.py", WORKER);
    let made = Command::new(python())
        .args(["-m", "venv", "--without-pip"])
        .arg(dir.join("venv"))
        .status()
        .expect("python -m venv runs");
    assert!(made.success());
    let venv_python = dir.join("venv/bin/python");
    let quoted = format!("{:?}", venv_python.to_str().expect("utf-8 path"));
    let main = subprocess_main(&dir, &quoted, false);
    let capture = run_family(python(), &dir, &main, &[]);
    let s = subprocess_worker(&capture);
    assert!(
        s["argv"][0]
            .as_str()
            .is_some_and(|a| a.ends_with("venv/bin/python")),
        "{}",
        s["argv"]
    );
}

/// Pythons older than the tracker knows (3.6 to 3.8, and 2.7) started by a followed program
/// run as without memtrace: their own sitecustomize runs and nothing more is printed (3.8's
/// import of the tracker raised SystemError past the start-up hook: "Error in sitecustomize",
/// and the user's sitecustomize never ran; 2.7 printed "'import sitecustomize' failed").
#[test]
fn an_older_python_started_by_a_followed_program_runs_untouched() {
    let root = Command::new("pyenv").arg("root").output();
    let Some(root) = root
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
    else {
        eprintln!("skipped: no pyenv here");
        return;
    };
    let mut olds: Vec<PathBuf> = ["2.7", "3.6", "3.7", "3.8"]
        .iter()
        .filter_map(|v| {
            let mut found: Vec<PathBuf> = std::fs::read_dir(root.join("versions"))
                .ok()?
                .filter_map(|e| e.ok())
                .filter(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .starts_with(&format!("{v}."))
                })
                .map(|e| e.path().join("bin").join(format!("python{v}")))
                .filter(|p| p.is_file())
                .collect();
            found.sort();
            found.pop()
        })
        .collect();
    if olds.is_empty() {
        eprintln!("skipped: no pyenv Python older than 3.9 here");
        return;
    }
    olds.dedup();
    let dir = scratch("family-old-pythons");
    write(
        &dir,
        "usersite/sitecustomize.py",
        "print('USER SITECUSTOMIZE RAN')\n",
    );
    let script = write(
        &dir,
        "parent.py",
        "\
import os, subprocess, sys
env = dict(os.environ)
site = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'usersite')
env['PYTHONPATH'] = site + (':' + env['PYTHONPATH'] if env.get('PYTHONPATH') else '')
for py in sys.argv[1:]:
    for e in (env, None):
        r = subprocess.run([py, '-c', 'print(1)'], env=e, capture_output=True, text=True)
        print(repr(r.stdout), repr(r.stderr))
",
    );
    let words: Vec<String> = olds.iter().map(|p| p.display().to_string()).collect();
    let args: Vec<&str> = words.iter().map(String::as_str).collect();
    let mut plain = Command::new(python());
    plain.arg(&script).args(&args).current_dir(&dir);
    let plain = plain.output().expect("untracked run");
    assert!(plain.status.success(), "{plain:?}");
    let printed = String::from_utf8_lossy(&plain.stdout).into_owned();
    assert_eq!(
        printed.matches("USER SITECUSTOMIZE RAN").count(),
        olds.len(),
        "{printed}"
    );
    let capture = dir.join("parent.bin");
    let mut words_all = vec!["--follow-fork".to_string()];
    words_all.push(script.display().to_string());
    words_all.extend(words.iter().cloned());
    let all: Vec<&str> = words_all.iter().map(String::as_str).collect();
    let out = tracked(python(), &capture, &all, &dir, b"");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), printed, "{olds:?}");
}

/// `memtrace run --follow-fork` of the test program `name`, which makes pid namespaces (exit 3
/// where it cannot: None, the test is skipped); it must succeed otherwise.
fn run_in_pid_namespace(name: &str, dir: &Path, capture: &Path) -> Option<std::process::Output> {
    let prog = memtrace_e2e::compile(name, dir);
    let out = Command::new(memtrace_e2e::memtrace_bin())
        .args(["run", "-q", "-f", "--follow-fork", "-o"])
        .arg(capture)
        .arg("--")
        .arg(&prog)
        .current_dir(dir)
        .output_watched();
    if out.status.code() == Some(3) {
        eprintln!("skipped: no pid namespace can be made here");
        return None;
    }
    assert!(out.status.success(), "{out:?}");
    Some(out)
}

#[test]
fn children_in_pid_namespaces_of_their_own_are_named_and_linked_as_their_parents_know_them() {
    // A child that is the first process of a pid namespace of its own is pid 1 there and its
    // parent 0: its capture was named ROOT.1 (the others ROOT.1.2, ...), and the family report
    // listed its parent's record of it as not tracked and itself as a stray process 1.
    let dir = scratch("family-pidns");
    let capture = dir.join("ns.bin");
    if run_in_pid_namespace("pid_namespace", &dir, &capture).is_none() {
        return;
    }
    let s = stats(&capture);
    let procs = s["processes"].as_array().expect("processes").clone();
    // The program, its three children, their three grandchildren: all tracked, each named by
    // the pid its parent knows.
    assert_eq!(procs.len(), 7, "{procs:?}");
    let root = num(&s, "pid");
    let children: Vec<i64> = procs
        .iter()
        .filter(|p| num(p, "parent_pid") == root)
        .map(|p| num(p, "pid"))
        .collect();
    assert_eq!(children.len(), 3, "{procs:?}");
    let mut kept = Vec::new();
    for p in &procs {
        assert_eq!(p["tracked"], true, "{p}");
        assert!(dir.join(format!("ns.bin.{}", num(p, "pid"))).exists() || num(p, "pid") == root);
        if children.contains(&num(p, "parent_pid")) {
            kept.push(num(p, "leaked_bytes"));
        }
    }
    kept.sort_unstable();
    // (k + 1) * 1000 blocks of 100 bytes each, and whatever stdio keeps (its buffer).
    assert_eq!(kept.len(), 3, "{procs:?}");
    for (k, bytes) in kept.iter().enumerate() {
        let blocks = (k as i64 + 1) * 100_000;
        assert!(
            (blocks..blocks + 8192).contains(bytes),
            "{k}: {bytes} in {procs:?}"
        );
    }
}

#[test]
fn a_fork_inside_a_pid_namespace_is_linked_to_its_capture() {
    // Inside a pid namespace whose /proc is memtrace's, fork returns the child's pid there (2),
    // while the child's capture is named by /proc's pid: its parent's record named a process 2
    // that "has no capture" (a phantom row), and the capture stood apart.
    let dir = scratch("family-pidns-inner");
    let capture = dir.join("inner.bin");
    let Some(out) = run_in_pid_namespace("pid_namespace_inner", &dir, &capture) else {
        return;
    };
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("has no capture"),
        "{out:?}"
    );
    let s = stats(&capture);
    let procs = s["processes"].as_array().expect("processes").clone();
    // The program, its child, the namespace's first process and its child: all tracked.
    assert_eq!(procs.len(), 4, "{procs:?}");
    let root = num(&s, "pid");
    for p in &procs {
        assert_eq!(p["tracked"], true, "{p}");
        let pid = num(p, "pid");
        assert!(
            pid == root || dir.join(format!("inner.bin.{pid}")).exists(),
            "{p}"
        );
    }
    let pids: Vec<i64> = procs.iter().map(|p| num(p, "pid")).collect();
    // A chain: each process's parent is the one before it.
    let mut at = root;
    for _ in 0..3 {
        let next = procs
            .iter()
            .find(|p| num(p, "parent_pid") == at)
            .unwrap_or_else(|| panic!("no child of {at} in {procs:?}"));
        at = num(next, "pid");
    }
    let inner = procs
        .iter()
        .find(|p| num(p, "pid") == at)
        .expect("the inner one");
    let kept = num(inner, "leaked_bytes");
    assert!(
        (200_000..200_000 + 8192).contains(&kept),
        "{kept} in {pids:?}"
    );
    let warnings = s["warnings"].to_string();
    assert!(!warnings.contains("has no capture"), "{warnings}");
}

#[test]
fn pid_1_of_a_namespace_signalling_itself_goes_on_being_recorded() {
    // The kernel drops a signal at its default action that the first process of a pid
    // namespace sends itself: the program goes on, and its capture must not end there.
    let dir = scratch("family-pid1-kill");
    let capture = dir.join("pid1.bin");
    let Some(out) = run_in_pid_namespace("pid1_self_kill", &dir, &capture) else {
        return;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("pid 1 survived SIGTERM") && text.contains("child exited 7"),
        "{text}"
    );
    let s = stats(&capture);
    let procs = s["processes"].as_array().expect("processes").clone();
    assert_eq!(procs.len(), 2, "{procs:?}");
    let child = memtrace_e2e_child(&capture, num(&procs[1], "pid"));
    let c = stats(&child);
    assert_eq!(c["complete"], true, "{c}");
    // 1111 + 100 * 2222 bytes (and stdio's buffer), 50 of the blocks live at exit.
    let site = |function: &str| {
        c["top_by_size"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|t| t["function"] == function)
            .map(|t| (num(t, "bytes"), num(t, "count")))
            .fold((0, 0), |(b, n), (x, y)| (b + x, n + y))
    };
    assert_eq!(site("main"), (1111 + 100 * 2222, 101), "{c}");
    let leaked = num(&c, "leaked_bytes");
    assert!(
        (1111 + 50 * 2222..1111 + 50 * 2222 + 8192).contains(&leaked),
        "{c}"
    );
}

/// A program that drops its privileges and then forks (a daemon): the child, tracked under
/// --follow-fork, cannot create its capture in a directory its new user may not write, nor
/// tell memtrace through the run's files. memtrace said nothing; it names the child now.
#[test]
fn a_followed_child_that_cannot_write_its_capture_is_named() {
    if !memtrace_e2e::is_root() {
        eprintln!("skipped: dropping privileges needs root");
        return;
    }
    let dir = scratch("drop-then-fork");
    let prog = memtrace_e2e::compile("drop_then_fork", &dir);
    let cap = dir.join("drop.bin");
    let out = memtrace_e2e::memtrace(
        &[
            "run",
            "--follow-fork",
            "-f",
            "-o",
            cap.to_str().expect("utf-8 path"),
            "--",
            prog.to_str().expect("utf-8 path"),
        ],
        &dir,
    );
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "child 4\n");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.lines()
            .any(|l| l.starts_with("memtrace: child process ") && l.contains("has no capture")),
        "{err}"
    );
}

// Which captures beside a root belong to its run, and the family of any capture of a run.

fn utf8(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// `memtrace run -q -f [--follow-fork] -o CAPTURE -- PROGRAM ARGS` in `dir`: it must succeed.
fn run_program(dir: &Path, capture: &Path, follow: bool, program: &Path, args: &[&str]) {
    let mut words = vec!["run", "-q", "-f"];
    if follow {
        words.push("--follow-fork");
    }
    words.extend(["-o", utf8(capture), "--", utf8(program)]);
    words.extend_from_slice(args);
    let out = memtrace_e2e::memtrace(&words, dir);
    assert!(out.status.success(), "{out:?}");
}

/// `memtrace ARGS` in `dir`, which must succeed: its stdout, and its warnings (stderr's
/// `memtrace: warning: ` lines, without that).
fn warned(args: &[&str], dir: &Path) -> (String, Vec<String>) {
    let out = memtrace_e2e::memtrace(args, dir);
    assert!(out.status.success(), "{out:?}");
    let warnings = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter_map(|l| l.strip_prefix("memtrace: warning: "))
        .map(str::to_string)
        .collect();
    (String::from_utf8_lossy(&out.stdout).into_owned(), warnings)
}

/// The child captures beside `capture` (`<capture>.<digits>...`), sorted.
fn child_files(capture: &Path) -> Vec<PathBuf> {
    family_files(capture)
        .into_iter()
        .filter(|p| !p.to_string_lossy().contains(".exec"))
        .collect()
}

fn json_warnings(s: &Value) -> Vec<String> {
    s["warnings"]
        .as_array()
        .expect("warnings")
        .iter()
        .map(|w| w.as_str().expect("a string").to_string())
        .collect()
}

fn left_out_line(file: &Path, root: &Path) -> String {
    format!(
        "{}: left out: an earlier run's capture (it started before {})",
        file.display(),
        root.display()
    )
}

#[test]
fn captures_an_earlier_run_left_beside_the_root_are_left_out_of_the_family() {
    // `-f` replaces the root, not its children's captures: the next run over the same name
    // listed the earlier run's child as its own, and took its combined peak from it.
    let dir = scratch("family-earlier-run");
    let prog = memtrace_e2e::compile("family_runs", &dir);
    let cap = dir.join("cap.bin");
    // Run 1: one child holding 3 MiB.
    run_program(&dir, &cap, true, &prog, &["1", "3145728"]);
    let earlier = child_files(&cap);
    assert_eq!(earlier.len(), 1, "{earlier:?}");
    // Run 2: two children holding 2,000 bytes each while the parent holds 1,000.
    run_program(&dir, &cap, true, &prog, &["2", "2000"]);
    let s = stats(&cap);
    let procs = s["processes"].as_array().expect("a family");
    assert_eq!(procs.len(), 3, "{procs:?}");
    for p in &procs[1..] {
        assert_eq!(num(p, "peak_bytes"), 2000, "{p}");
        assert_eq!(num(p, "parent_pid"), num(&s, "pid"), "{p}");
    }
    assert_eq!(num(&s, "combined_peak_bytes"), 2 * 2000 + 1000, "{s}");
    let left_out: Vec<String> = json_warnings(&s)
        .into_iter()
        .filter(|w| w.contains("left out"))
        .collect();
    assert_eq!(left_out, vec![left_out_line(&earlier[0], &cap)]);
    // Run 3, without --follow-fork: its child is not tracked, and the three captures of the
    // runs before are not its: its combined peak is the root's own 1,000 bytes.
    run_program(&dir, &cap, false, &prog, &["1", "2000"]);
    let s = stats(&cap);
    let procs = s["processes"].as_array().expect("a family");
    assert_eq!(procs.len(), 2, "{procs:?}");
    assert_eq!(procs[1]["tracked"], false, "{procs:?}");
    assert_eq!(num(&s, "combined_peak_bytes"), 1000, "{s}");
    let all_earlier = child_files(&cap);
    assert_eq!(all_earlier.len(), 3, "{all_earlier:?}");
    let expected: Vec<String> = all_earlier.iter().map(|f| left_out_line(f, &cap)).collect();
    let left_out: Vec<String> = json_warnings(&s)
        .into_iter()
        .filter(|w| w.contains("left out"))
        .collect();
    assert_eq!(left_out, expected);
    // A report without a family (no tracked child) says it too, once per file.
    let (text, warnings) = warned(&["tree", "--text", utf8(&cap)], &dir);
    assert!(
        text.contains("1,000 bytes") && !text.contains("pid "),
        "{text}"
    );
    assert_eq!(warnings, expected);
}

/// `unshare -pf --mount-proc memtrace run -q -f --follow-fork -o CAPTURE -- PROGRAM`: the run
/// in a pid namespace of its own (the same pids every time); None where none can be made.
fn run_in_new_namespace(dir: &Path, capture: &Path, program: &Path) -> Option<()> {
    let out = Command::new("unshare")
        .args(["-pf", "--mount-proc"])
        .arg(memtrace_e2e::memtrace_bin())
        .args(["run", "-q", "-f", "--follow-fork", "-o"])
        .arg(capture)
        .arg("--")
        .arg(program)
        .current_dir(dir)
        .output_watched();
    if !out.status.success() && out.status.code() != Some(3) && out.stdout.is_empty() {
        let err = String::from_utf8_lossy(&out.stderr);
        if err.starts_with("unshare:") {
            eprintln!("skipped: no pid namespace can be made here: {err}");
            return None;
        }
    }
    if out.status.code() == Some(3) {
        eprintln!("skipped: the namespace's last pid cannot be set");
        return None;
    }
    assert!(out.status.success(), "{out:?}");
    Some(())
}

/// (peak bytes, first capture) of each child of the family of `capture`, sorted.
fn children_peaks(s: &Value) -> Vec<(i64, String)> {
    let procs = s["processes"].as_array().expect("a family");
    let mut out: Vec<(i64, String)> = procs[1..]
        .iter()
        .map(|p| {
            (
                num(p, "peak_bytes"),
                p["captures"][0].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn two_children_with_one_pid_are_two_processes_and_an_earlier_runs_capture_is_not_one() {
    // A pid used twice in a run: the second child wrote `<root>.<pid>.2` and was missing from
    // the family. Run again in a fresh namespace (the same pids, as in a container), the
    // earlier run's `<root>.<pid>` was taken for this run's child.
    let dir = scratch("family-pid-reuse");
    let prog = memtrace_e2e::compile("pid_reuse", &dir);
    let cap = dir.join("cap.bin");
    if run_in_new_namespace(&dir, &cap, &prog).is_none() {
        return;
    }
    let s = stats(&cap);
    let first = children_peaks(&s);
    assert_eq!(
        first.iter().map(|c| c.0).collect::<Vec<_>>(),
        vec![2 << 20, 3 << 20],
        "{}",
        s["processes"]
    );
    let pids: Vec<i64> = s["processes"].as_array().expect("a family")[1..]
        .iter()
        .map(|p| num(p, "pid"))
        .collect();
    assert_eq!(pids[0], pids[1], "one pid: {pids:?}");
    assert_ne!(first[0].1, first[1].1, "two captures: {first:?}");
    let earlier = child_files(&cap);
    assert_eq!(earlier.len(), 2, "{earlier:?}");
    run_in_new_namespace(&dir, &cap, &prog).expect("it ran once");
    let s = stats(&cap);
    let second = children_peaks(&s);
    assert_eq!(
        second.iter().map(|c| c.0).collect::<Vec<_>>(),
        vec![2 << 20, 3 << 20],
        "{}",
        s["processes"]
    );
    for (_, file) in &second {
        assert!(
            !earlier.iter().any(|e| e.to_string_lossy() == file.as_str()),
            "{file} is the earlier run's"
        );
    }
    let left_out: Vec<String> = json_warnings(&s)
        .into_iter()
        .filter(|w| w.contains("left out"))
        .collect();
    let expected: Vec<String> = earlier.iter().map(|f| left_out_line(f, &cap)).collect();
    assert_eq!(left_out, expected);
}

/// `family_exec root` under --follow-fork: (its capture, the child's pid).
fn exec_family(dir: &Path) -> (PathBuf, i64) {
    let prog = memtrace_e2e::compile("family_exec", dir);
    let cap = dir.join("cap.bin");
    run_program(dir, &cap, true, &prog, &["root"]);
    let s = stats(&cap);
    let procs = s["processes"].as_array().expect("a family");
    assert_eq!(procs.len(), 3, "{procs:?}");
    (cap, num(&procs[1], "pid"))
}

fn with_suffix(capture: &Path, suffix: &str) -> PathBuf {
    PathBuf::from(format!("{}{suffix}", capture.display()))
}

#[test]
fn the_family_of_an_exec_image_or_of_a_childs_capture_is_found_beside_the_root() {
    // Children are named after the root capture: `cap.bin.<pid>`. The report of
    // `cap.bin.exec1` (the capture `memtrace run` names when the program exec'd) looked for
    // `cap.bin.exec1.<pid>`: every child "(no capture)", grandchildren missing.
    let dir = scratch("family-exec-image");
    let (cap, child) = exec_family(&dir);
    let grandchild_of = |s: &Value| -> Value {
        let procs = s["processes"].as_array().expect("a family");
        procs
            .iter()
            .find(|p| num(p, "parent_pid") == child)
            .cloned()
            .unwrap_or_else(|| panic!("no grandchild in {procs:?}"))
    };
    let image = with_suffix(&cap, ".exec1");
    let s = stats(&image);
    let procs = s["processes"].as_array().expect("a family").clone();
    assert_eq!(procs.len(), 3, "{procs:?}");
    for p in &procs {
        assert_eq!(p["tracked"], true, "{p}");
    }
    assert_eq!(num(&procs[1], "pid"), child);
    assert_eq!(num(&procs[1], "peak_bytes"), 1 << 20, "{procs:?}");
    assert_eq!(num(&grandchild_of(&s), "peak_bytes"), 3000);
    // The parent's 1,000 bytes, the child's MiB and the grandchild's 3,000 at once.
    assert_eq!(
        num(&s, "combined_peak_bytes"),
        1000 + (1 << 20) + 3000,
        "{s}"
    );
    let warnings = json_warnings(&s);
    assert!(
        !warnings.iter().any(|w| w.contains("no capture")),
        "{warnings:?}"
    );
    let (text, _) = warned(&["stats", utf8(&image)], &dir);
    assert!(!text.contains("(no capture)"), "{text}");
    // A child's capture, and its exec'd image's: the child and its grandchild.
    for first in [".", ".exec1"] {
        let suffix = if first == "." {
            format!(".{child}")
        } else {
            format!(".{child}.exec1")
        };
        let s = stats(&with_suffix(&cap, &suffix));
        let procs = s["processes"].as_array().expect("a family").clone();
        assert_eq!(procs.len(), 2, "{suffix}: {procs:?}");
        assert_eq!(num(&procs[0], "pid"), child);
        assert_eq!(procs[1]["tracked"], true, "{procs:?}");
        assert_eq!(num(&grandchild_of(&s), "peak_bytes"), 3000);
    }
}

#[test]
fn a_process_that_execd_reported_by_pid_says_where_its_later_images_are() {
    // `--pid N` reads the process's first image: its figures are that image's (the fork's copy
    // of its parent, 0 bytes here), where the family table counts every image.
    let dir = scratch("family-pid-images");
    let (cap, child) = exec_family(&dir);
    let note = format!(
        "process {child} exec'd: this report is of its first image only; its later images are in {} (report each by its file)",
        with_suffix(&cap, &format!(".{child}.exec1")).display()
    );
    let pid = child.to_string();
    let (json, _) = warned(&["stats", "--json", "--pid", &pid, utf8(&cap)], &dir);
    let s: Value = serde_json::from_str(&json).expect("JSON");
    assert_eq!(num(&s, "peak_bytes"), 0, "{s}");
    let notes: Vec<String> = json_warnings(&s)
        .into_iter()
        .filter(|w| w.contains("exec'd"))
        .collect();
    assert_eq!(notes, vec![note.clone()]);
    for args in [
        vec!["stats", "--pid", &pid, utf8(&cap)],
        vec!["tree", "--text", "--pid", &pid, utf8(&cap)],
    ] {
        let (_, warnings) = warned(&args, &dir);
        let notes: Vec<&String> = warnings.iter().filter(|w| w.contains("exec'd")).collect();
        assert_eq!(notes, vec![&note], "{args:?}");
    }
}

#[test]
fn children_killed_holding_memory_are_said_to_count_only_up_to_their_last_event() {
    // Two children hold 1 MiB each while the parent allocates 5 MiB, then are SIGKILLed: 7 MiB
    // were live at once, but a killed child's capture ends at its last allocation, and nothing
    // recorded tells when it died. The combined peak is the parent's 5 MiB alone; every report
    // of it must say why it may be low.
    let dir = scratch("family-killed");
    let prog = memtrace_e2e::compile("killed_children", &dir);
    let cap = dir.join("cap.bin");
    run_program(&dir, &cap, true, &prog, &[]);
    let s = stats(&cap);
    assert_eq!(num(&s, "combined_peak_bytes"), 5 << 20, "{s}");
    let procs = s["processes"].as_array().expect("a family");
    assert_eq!(procs.len(), 3, "{procs:?}");
    let kids: Vec<String> = procs[1..]
        .iter()
        .map(|p| num(p, "pid").to_string())
        .collect();
    let note = format!(
        "2 processes were killed or are still running (pid {}): the combined peak counts their memory only up to their last event, so it may be low",
        kids.join(", ")
    );
    let notes: Vec<String> = json_warnings(&s)
        .into_iter()
        .filter(|w| w.contains("combined peak counts"))
        .collect();
    assert_eq!(notes, vec![note.clone()]);
    for args in [vec!["stats"], vec!["tree", "--text"], vec!["summary"]] {
        let mut args = args.clone();
        args.push(utf8(&cap));
        let (_, warnings) = warned(&args, &dir);
        let notes: Vec<&String> = warnings
            .iter()
            .filter(|w| w.contains("combined peak counts"))
            .collect();
        assert_eq!(notes, vec![&note], "{args:?}");
    }
}

#[test]
fn a_damaged_child_capture_is_named_once_and_marked_in_the_table() {
    // One child's capture emptied, the other's cut to 1,000 bytes: the warning named the path
    // twice, and both rows read 0 B with no mark, as if the children allocated nothing.
    let dir = scratch("family-damaged");
    let prog = memtrace_e2e::compile("family_runs", &dir);
    let cap = dir.join("cap.bin");
    run_program(&dir, &cap, true, &prog, &["2", "2000"]);
    let files = child_files(&cap);
    assert_eq!(files.len(), 2, "{files:?}");
    std::fs::write(&files[0], b"").expect("empty it");
    let kept = std::fs::read(&files[1]).expect("read it");
    assert!(kept.len() > 1000, "{}", kept.len());
    std::fs::write(&files[1], &kept[..1000]).expect("cut it");
    let (text, warnings) = warned(&["stats", utf8(&cap)], &dir);
    let empty = files[0].display().to_string();
    let about_empty: Vec<&String> = warnings.iter().filter(|w| w.contains(&empty)).collect();
    assert_eq!(
        about_empty,
        vec![&format!(
            "{empty}: not a memtrace capture (the file is too short)"
        )]
    );
    for w in &warnings {
        assert!(w.matches(&*cap.display().to_string()).count() <= 1, "{w}");
    }
    let marked = text.lines().filter(|l| l.ends_with("(damaged)")).count();
    assert_eq!(marked, 2, "{text}");
    let s = stats(&cap);
    let damaged: Vec<bool> = s["processes"]
        .as_array()
        .expect("a family")
        .iter()
        .map(|p| p["damaged"] == true)
        .collect();
    assert_eq!(damaged, vec![false, true, true], "{}", s["processes"]);
}

/// `diff` and `flamegraph --diff` of a family compare the process of the capture given, not
/// its children: they say so on each side that is a family (a child holding memory was left
/// out and the diff said "no changes").
#[test]
fn a_diff_of_a_family_says_its_children_are_not_compared() {
    let dir = memtrace_e2e::scratch("family-diff");
    let prog = memtrace_e2e::compile("patterns", &dir);
    let prog = prog.to_str().expect("utf-8");
    for (cap, follow) in [("solo.bin", false), ("fam.bin", true)] {
        let mut args = vec!["run", "-q", "-f", "-o", cap];
        if follow {
            args.push("--follow-fork");
        }
        args.extend([prog, "fork", "100"]);
        let out = memtrace_e2e::memtrace(&args, &dir);
        assert!(out.status.success(), "{out:?}");
    }
    let said = "a family of 2 tracked processes (--follow-fork): only the process of this capture is compared";
    let out = memtrace_e2e::memtrace(&["diff", "--json", "solo.bin", "fam.bin"], &dir);
    assert!(out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("NEW fam.bin: {said}")), "{err}");
    assert!(!err.contains("BASE solo.bin: a family"), "{err}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert!(
        json["new_capture"]["warnings"].to_string().contains(said),
        "{json}"
    );
    let out = memtrace_e2e::memtrace(
        &[
            "flamegraph",
            "-o",
            "d.html",
            "--diff",
            "fam.bin",
            "solo.bin",
        ],
        &dir,
    );
    assert!(out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("BASE fam.bin: {said}")), "{err}");
    let html = std::fs::read_to_string(dir.join("d.html")).expect("page");
    assert!(html.contains(said), "not on the page");
    // A child's own capture is one process: nothing to say.
    let child = std::fs::read_dir(&dir)
        .expect("dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| {
            n.starts_with("fam.bin.") && n["fam.bin.".len()..].bytes().all(|b| b.is_ascii_digit())
        })
        .expect("the child's capture");
    let out = memtrace_e2e::memtrace(&["diff", "solo.bin", &child], &dir);
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("a family of"),
        "{out:?}"
    );
}

/// Threads at work when the process forks (a child not followed): the family's combined peak
/// is the one tracked process's own peak, to the byte (it read 32 bytes below it when the
/// process's series missed its last allocation before a fall in the same nanosecond).
#[test]
fn one_tracked_process_s_combined_peak_is_its_own_peak() {
    let dir = memtrace_e2e::scratch("family-one-tracked-peak");
    let script = memtrace_e2e::python::write(
        &dir,
        "threads_fork.py",
        "import threading, os, time
keep = []
def worker(n):
    local = [bytearray(50_000) for _ in range(20 * n)]
    keep.append(bytearray(100_000 * n))
    time.sleep(0.05)
ts = [threading.Thread(target=worker, args=(i + 1,)) for i in range(4)]
for t in ts: t.start()
pid = os.fork()
if pid == 0:
    child = [bytearray(3_000_000) for _ in range(3)]
    time.sleep(0.1)
    os._exit(0)
for t in ts: t.join()
os.waitpid(pid, 0)
tmp = bytearray(5_000_000); del tmp
",
    );
    for round in 0..3 {
        let cap = dir.join(format!("tf{round}.bin"));
        let out = memtrace_e2e::python::tracked(
            memtrace_e2e::python::python(),
            &cap,
            &[script.to_str().expect("utf-8")],
            &dir,
            b"",
        );
        assert!(out.status.success(), "{out:?}");
        let s = stats(&cap);
        assert_eq!(
            s["combined_peak_bytes"], s["peak_bytes"],
            "round {round}: {s}"
        );
    }
}

/// A copy of a child's capture beside it under the name a reused pid's capture takes
/// (`cap.bin.<pid>.2`, as `cp` makes a backup): it joined the family as another process, and
/// the combined peak counted the child twice.
#[test]
fn a_copy_of_a_child_s_capture_is_not_another_process() {
    let dir = scratch("family-copy");
    let prog = memtrace_e2e::compile("family_runs", &dir);
    let cap = dir.join("cap.bin");
    run_program(&dir, &cap, true, &prog, &["2", "2000"]);
    let before = stats(&cap);
    let files = child_files(&cap);
    assert_eq!(files.len(), 2, "{files:?}");
    let copy = PathBuf::from(format!("{}.2", files[0].display()));
    std::fs::copy(&files[0], &copy).expect("copy it");
    let (text, warnings) = warned(&["stats", utf8(&cap)], &dir);
    assert_eq!(
        warnings,
        vec![format!(
            "{}: a copy of process {}'s capture: left out of the family",
            copy.display(),
            files[0]
                .extension()
                .and_then(|e| e.to_str())
                .expect("a pid")
        )],
        "{text}"
    );
    let after = stats(&cap);
    assert_eq!(after["processes"], before["processes"]);
    assert_eq!(
        num(&after, "combined_peak_bytes"),
        num(&before, "combined_peak_bytes")
    );
}

/// An aggregated family: a parent holding 1,998 bytes through its spawned child's life (the
/// child 24,096), and 4,096 more after it. The parent's series held no point from its first
/// allocations to the 4,096 (its window's high moved there): the combined peak left it out
/// (24,096). Its window now closes at the spawn, as at a fork.
#[test]
fn an_aggregated_parent_s_memory_through_its_spawned_child_s_life_counts() {
    let dir = scratch("family-spawn-aggregated");
    let prog = memtrace_e2e::compile("spawn_holding", &dir);
    for round in 0..4 {
        let cap = dir.join(format!("agg{round}.bin"));
        let words = [
            "run",
            "-q",
            "-f",
            "--follow-fork",
            "--aggregate",
            "-o",
            utf8(&cap),
        ];
        let out = memtrace_e2e::memtrace(&[&words[..], &["--", utf8(&prog)]].concat(), &dir);
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        let s = stats(&cap);
        assert_eq!(num(&s, "combined_peak_bytes"), 26_094, "round {round}: {s}");
    }
    // The combined peak of aggregated captures says its resolution (it said nothing, and
    // highs 30 ms apart read as one moment: 20 MiB for two 10 MiB spikes that never met).
    let (_, warnings) = warned(&["stats", utf8(&dir.join("agg0.bin"))], &dir);
    let said: Vec<&String> = warnings
        .iter()
        .filter(|w| w.contains("100 ms resolution"))
        .collect();
    assert_eq!(said.len(), 1, "{warnings:?}");
}

/// A followed child that execs a program the tracker cannot follow (statically linked, as a
/// set-user-ID one): its row showed its first image's 0 figures under that image's command,
/// with no mark, and the run named only the root's own execs. The row says what it exec'd,
/// and the run says it too.
#[test]
fn a_child_s_exec_that_wrote_no_capture_is_named_in_its_row_and_by_the_run() {
    let dir = scratch("family-child-exec-static");
    let prog = memtrace_e2e::compile("child_execs", &dir);
    let src = memtrace_e2e::workspace().join("tests/programs/static_hello.c");
    let stat = dir.join("static_hello");
    let built = Command::new("gcc")
        .args(["-O0", "-static", "-o"])
        .arg(&stat)
        .arg(&src)
        .output_watched();
    assert!(built.status.success(), "{built:?}");
    let cap = dir.join("cap.bin");
    let words = ["run", "-f", "--follow-fork", "-o", utf8(&cap), "--"];
    let out = memtrace_e2e::memtrace(&[&words[..], &[utf8(&prog), utf8(&stat)]].concat(), &dir);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(out.stdout, b"static program ran\n");
    let err = String::from_utf8_lossy(&out.stderr);
    let said: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("which wrote no capture"))
        .collect();
    assert_eq!(said.len(), 1, "{err}");
    assert!(
        said[0].starts_with("memtrace: child process ")
            && said[0].contains(&format!(
                "exec'd {}, which wrote no capture",
                stat.display()
            )),
        "{err}"
    );
    let s = stats(&cap);
    let rows = s["processes"].as_array().expect("a family");
    assert_eq!(rows.len(), 2, "{s}");
    assert_eq!(rows[0]["exec_without_capture"], Value::Null, "{s}");
    assert_eq!(
        rows[1]["exec_without_capture"].as_str(),
        Some(stat.display().to_string().as_str()),
        "{s}"
    );
    assert_eq!(num(&rows[1], "peak_bytes"), 2000, "{s}");
    let text = memtrace_e2e::memtrace(&["stats", cap.to_str().expect("utf-8")], &dir);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains(&format!("(then exec'd {}: no capture)", stat.display())),
        "{text}"
    );
}

/// A family's page with a Python process whose data is larger than its share of the page even
/// with no group of its own (many children share the page's size): its "other" groups, more
/// than one a thread, kept the count of groups to cut from falling, and `flamegraph` spun
/// forever. It now ends with the page, every process in it.
#[test]
fn a_family_page_whose_python_process_outgrows_its_share_is_written() {
    let dir = scratch("family-page-share");
    let script = write(
        &dir,
        "few.py",
        "import subprocess, json, email.mime.text, http.client, decimal, argparse, asyncio\n\
         data = [dict(a=i, b=str(i)) for i in range(100000)]\n\
         for i in range(20):\n    subprocess.run([\"true\"])\n\
         print(len(json.dumps(data)))\n",
    );
    let (capture, _) = run_traced(&dir, &script);
    let page = dir.join("few.html");
    let mut cmd = Command::new(memtrace_e2e::memtrace_bin());
    cmd.args(["flamegraph", "-f", "-o"])
        .arg(&page)
        .arg(&capture)
        .current_dir(&dir);
    let out = memtrace_e2e::watchdog::output_within(&mut cmd, std::time::Duration::from_secs(120));
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let html = std::fs::read_to_string(&page).expect("the page");
    assert!(html.contains("few.py"), "the root process is on the page");
    assert!(
        html.matches(": true").count() >= 20,
        "the 20 children are on the page"
    );
}
