//! Helpers for the Python end-to-end tests: the interpreters to run, and a Python program run
//! both untracked and under `memtrace run`, for comparison.

use crate::memtrace_bin;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

/// The real interpreter behind `python3` on PATH (its `sys.executable`, not a pyenv shim), so
/// that tests run it directly and quickly. Python 3 is required by the tests.
pub fn python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let out = Command::new("python3")
            .args(["-c", "import sys; print(sys.executable)"])
            .stdin(Stdio::null())
            .output()
            .expect("the Python tests need python3 on PATH");
        assert!(out.status.success(), "python3 fails: {out:?}");
        let exe = String::from_utf8(out.stdout).expect("utf-8 path");
        PathBuf::from(exe.trim())
    })
}

/// A pyenv-installed interpreter of version 3.`minor` (`$(pyenv root)/versions/3.minor.*`), or
/// None, with a note on stderr, when pyenv or that version is absent.
pub fn pyenv_python(minor: u32) -> Option<PathBuf> {
    let root = Command::new("pyenv")
        .arg("root")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    let prefix = format!("3.{minor}.");
    let found = root.and_then(|root| {
        let mut versions: Vec<PathBuf> = std::fs::read_dir(root.join("versions"))
            .ok()?
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
            .map(|e| e.path().join("bin").join(format!("python3.{minor}")))
            .filter(|p| p.is_file())
            .collect();
        versions.sort();
        versions.pop()
    });
    if found.is_none() {
        eprintln!("skipped: no pyenv Python 3.{minor} here (`pyenv versions`)");
    }
    found
}

/// The CPython minor versions the README claims to support (3.10 to 3.13).
pub const CLAIMED_MINORS: [u32; 4] = [10, 11, 12, 13];

/// The pyenv interpreter of a claimed version 3.`minor`: a test that checks a claim must not
/// pass having checked nothing, so a missing one fails, naming it (CI installs 3.10 to 3.13).
pub fn claimed_python(minor: u32) -> PathBuf {
    assert!(
        CLAIMED_MINORS.contains(&minor),
        "3.{minor} is not a version the README claims"
    );
    pyenv_python(minor).unwrap_or_else(|| {
        panic!(
            "Python 3.{minor} is missing: the README claims 3.10 to 3.13, and this test checks \
             that claim on pyenv's interpreters (install it: `pyenv install 3.{minor}`)"
        )
    })
}

/// Every claimed version's interpreter, oldest first (fails naming the first one missing).
pub fn claimed_pythons() -> Vec<(u32, PathBuf)> {
    CLAIMED_MINORS
        .iter()
        .map(|&minor| (minor, claimed_python(minor)))
        .collect()
}

/// Writes `text` to `dir/name` (creating directories) and returns the path.
pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("create dirs");
    }
    std::fs::write(&path, text).expect("write file");
    path
}

/// Runs a command in `dir` with `stdin` fed to it and returns its output.
pub fn output(mut cmd: Command, dir: &Path, stdin: &[u8]) -> Output {
    cmd.current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    let mut pipe = child.stdin.take().expect("stdin");
    let input = stdin.to_vec();
    // A writer thread, so that a program that does not read does not block the test.
    let writer = std::thread::spawn(move || {
        let _ = pipe.write_all(&input);
    });
    let out = child.wait_with_output().expect("output");
    let _ = writer.join();
    out
}

/// `python WORDS...` untracked.
pub fn untracked(python: &Path, words: &[&str], dir: &Path, stdin: &[u8]) -> Output {
    let mut cmd = Command::new(python);
    cmd.args(words);
    output(cmd, dir, stdin)
}

/// `memtrace run -q -f -o CAPTURE --python PYTHON WORDS...`.
pub fn tracked(python: &Path, capture: &Path, words: &[&str], dir: &Path, stdin: &[u8]) -> Output {
    let mut cmd = Command::new(memtrace_bin());
    run_args(&mut cmd, python, capture, words);
    output(cmd, dir, stdin)
}

/// Writes `text` as the script `dir/NAME` and runs it under memtrace with no input into
/// `dir/STEM.bin`: the capture's path and the run's output.
pub fn track_script(python: &Path, dir: &Path, name: &str, text: &str) -> (PathBuf, Output) {
    let script = write(dir, name, text);
    let capture = script.with_extension("bin");
    let out = tracked(
        python,
        &capture,
        &[script.to_str().expect("utf-8")],
        dir,
        b"",
    );
    (capture, out)
}

/// `tracked`, with the address-space layout not randomized (`setarch -R`) where the system
/// allows it. For tests that compare two runs' totals: CPython's pymalloc keeps a radix tree of
/// its arenas whose nodes depend on where the arenas land, so a randomized start-up needs one
/// more 128 KiB node in a few runs out of a hundred.
pub fn tracked_fixed_layout(
    python: &Path,
    capture: &Path,
    words: &[&str],
    dir: &Path,
    stdin: &[u8],
) -> Output {
    static SETARCH_WORKS: OnceLock<bool> = OnceLock::new();
    let works = *SETARCH_WORKS.get_or_init(|| {
        Command::new("setarch")
            .args(["-R", "true"])
            .status()
            .is_ok_and(|s| s.success())
    });
    if !works {
        return tracked(python, capture, words, dir, stdin);
    }
    let mut cmd = Command::new("setarch");
    cmd.arg("-R").arg(memtrace_bin());
    run_args(&mut cmd, python, capture, words);
    output(cmd, dir, stdin)
}

/// Appends `run -q -f -o CAPTURE --python PYTHON WORDS...`.
fn run_args(cmd: &mut Command, python: &Path, capture: &Path, words: &[&str]) {
    cmd.args(["run", "-q", "-f", "-o"])
        .arg(capture)
        .arg("--python")
        .arg(python)
        .args(words);
}

/// The one file in `dir` named `prefix<digits>.bin`.
pub fn default_capture(dir: &Path, prefix: &str) -> PathBuf {
    let found: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read dir")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
            name.as_deref()
                .and_then(|n| n.strip_prefix(prefix))
                .and_then(|n| n.strip_suffix(".bin"))
                .is_some_and(|pid| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
        })
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one capture named {prefix}<pid>.bin in {}: {found:?}",
        dir.display()
    );
    found[0].clone()
}

/// A script whose `block` (line 5) allocates 10 MB once per run count given as its argument,
/// and whose `same` (line 9) allocates 4 MB whatever the count: run with 1 and then 2, NEW's
/// `block` line has twice BASE's bytes and `same`'s are unchanged.
pub const TWICE_AND_SAME: &str = "\
import sys


def block():
    return b\"\\0\" * 10_000_000


def same():
    return b\"\\0\" * 4_000_000


keep = [same()]
for _ in range(int(sys.argv[1])):
    keep.append(block())
";

/// Writes `script` into a scratch directory `name` and captures it twice, with the argument 1
/// (BASE: `run1.bin`) and 2 (NEW: `run2.bin`). Returns (directory, script, BASE, NEW).
pub fn two_runs(name: &str, script: &str) -> (PathBuf, PathBuf, PathBuf, PathBuf) {
    let dir = crate::scratch(name);
    let path = write(&dir, "twice.py", script);
    let arg = path.to_string_lossy().into_owned();
    let mut caps = Vec::new();
    for n in ["1", "2"] {
        let cap = dir.join(format!("run{n}.bin"));
        // One hash seed for both runs: with random ones, dicts and sets may size themselves
        // differently, and the small allocations live at the peak differ by a few bytes.
        let mut cmd = Command::new(memtrace_bin());
        run_args(&mut cmd, python(), &cap, &[&arg, n]);
        cmd.env("PYTHONHASHSEED", "0");
        let out = output(cmd, &dir, b"");
        assert!(out.status.success(), "{out:?}");
        caps.push(cap);
    }
    let new = caps.pop().expect("two runs");
    let base = caps.pop().expect("two runs");
    (dir, path, base, new)
}

/// A script with one known allocation site: `f` at line 2 allocates `b"\0" * 10_000_000` (one
/// bytes object of SITE_BYTES), called from `g` at line 6, called from `<module>` at line 10.
pub const KNOWN_SITE: &str = "\
def f(n):
    return b\"\\0\" * n


def g():
    data = f(10_000_000)
    return len(data)


keep = [g()]
";

/// The bytes of KNOWN_SITE's allocation: a 32-byte header, n bytes and a NUL.
pub const SITE_BYTES: i64 = 10_000_000 + 33;

/// Allocations at known lines (f's 10,000,000 bytes at line 5, called from g at line 9), a
/// thread, then `sys.argv[1]` churn allocations: enough of them fill several chunks.
pub const KNOWN_LINES: &str = "\
import threading


def f(n):
    return b\"\\0\" * n


def g():
    data = f(10_000_000)
    return len(data)


def churn(n):
    kept = []
    for i in range(n):
        kept.append(bytes(100 + i % 50))
        if len(kept) > 1000:
            kept.clear()
    return kept


def worker():
    return [bytes(1000) for _ in range(100)]


t = threading.Thread(target=worker, name=\"worker\")
t.start()
t.join()
g()
churn(int(__import__(\"sys\").argv[1]))
";

/// Two spawned children each holding 30 MB at once (a barrier), printing their pids: a
/// combined peak no process reaches alone.
pub const TWO_CHILDREN: &str = "\
import multiprocessing as mp


def hold(barrier):
    block = b\"\\0\" * 30_000_000
    barrier.wait()
    barrier.wait()
    del block


if __name__ == \"__main__\":
    ctx = mp.get_context(\"spawn\")
    barrier = ctx.Barrier(2)
    kids = [ctx.Process(target=hold, args=(barrier,)) for _ in range(2)]
    for k in kids:
        k.start()
    for k in kids:
        print(k.pid, flush=True)
    for k in kids:
        k.join()
";
