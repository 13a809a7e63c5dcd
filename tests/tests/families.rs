//! Process families under `memtrace run --follow-fork`: every Python child, however it was
//! started (multiprocessing spawn, forkserver and fork, ProcessPoolExecutor, subprocess, a
//! shell in between, another interpreter version), is tracked as a Python run: its worker
//! function's allocation is found at its line with its exact size, with the PyMem allocators
//! traced.

use memtrace_e2e::python::*;
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
    let s = child_with(
        &capture,
        "work",
        "worker.py",
        WORK_LINE,
        3_210_987 + BYTES_HEADER,
    );
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
    child_with(
        &capture,
        "work",
        "worker.py",
        WORK_LINE,
        3_210_987 + BYTES_HEADER,
    );
}

/// The version of `python` (3.minor).
fn minor_of(python: &Path) -> u32 {
    let out = Command::new(python)
        .args(["-c", "import sys; print(sys.version_info[1])"])
        .output()
        .expect("python runs");
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
    let s = child_with(
        &capture,
        "work",
        "worker.py",
        WORK_LINE,
        3_210_987 + BYTES_HEADER,
    );
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
