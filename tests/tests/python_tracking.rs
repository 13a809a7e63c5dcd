//! Python-aware tracking: allocations of known size at known lines, with the PyMem allocators
//! traced or not, in threads, at the script's end; and the start-up hook leaving no trace.

use memtrace_e2e::python::*;
use memtrace_e2e::watchdog::Watched;
use memtrace_e2e::{allocator, num, scratch, stats};
use serde_json::Value;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `b"\0" * n` is one allocation of the bytes object: a 32-byte header, n bytes and a NUL.
const BYTES_HEADER: i64 = 33;

/// A location of `top_by_size` or `top_by_count` by function name and line.
fn location<'a>(v: &'a Value, list: &str, function: &str, line: i64) -> Option<&'a Value> {
    v[list]
        .as_array()?
        .iter()
        .find(|l| l["function"].as_str() == Some(function) && l["line"].as_i64() == Some(line))
}

/// Every claimed Python (pyenv's 3.10 to 3.13), then Debian's /usr/bin/python3 where there is
/// one.
fn claimed_and_debian_pythons() -> Vec<PathBuf> {
    let mut pythons: Vec<PathBuf> = claimed_pythons().into_iter().map(|(_, p)| p).collect();
    let debian = PathBuf::from("/usr/bin/python3");
    if debian.exists() {
        pythons.push(debian);
    }
    pythons
}

fn run_script(python: &Path, dir: &Path, name: &str, text: &str, extra: &[&str]) -> Value {
    let script = write(dir, name, text);
    let capture = dir.join(format!("{name}.bin"));
    let mut words: Vec<&str> = extra.to_vec();
    let script_arg = script.to_string_lossy().into_owned();
    words.push(&script_arg);
    // The same layout run to run: some tests compare the totals of two scripts.
    let out = tracked_fixed_layout(python, &capture, &words, dir, b"");
    assert!(out.status.success(), "{out:?}");
    assert!(
        out.stderr.is_empty(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    stats(&capture)
}

const KNOWN_SITE: &str = "\
def f(n):
    return b\"\\0\" * n


def g():
    data = f(10_000_000)
    return len(data)


g()
";

fn the_allocation_is_at_its_line(python: &Path) {
    let dir = scratch("py-known-site");
    let s = run_script(python, &dir, "known.py", KNOWN_SITE, &[]);
    let top = &s["top_by_size"][0];
    assert_eq!(top["function"], "f", "{top}");
    assert_eq!(top["line"], 2, "{top}");
    assert!(
        top["file"]
            .as_str()
            .is_some_and(|f| f.ends_with("known.py")),
        "{top}"
    );
    assert_eq!(num(top, "bytes"), 10_000_000 + BYTES_HEADER);
    assert_eq!(num(top, "count"), 1);
    assert!(allocator(&s, "pymalloc_malloc") > 0, "{}", s["allocators"]);
    // g drops the 10 MB object: its free is a pymalloc_free.
    assert!(allocator(&s, "pymalloc_free") > 0, "{}", s["allocators"]);
    // Every frame of the stack with the line it was running: g's call and the module's.
    let frames: Vec<(String, i64)> = top["stack"]
        .as_array()
        .unwrap_or_else(|| panic!("no stack: {top}"))
        .iter()
        .map(|f| {
            (
                f["function"].as_str().unwrap_or("?").to_string(),
                f["line"].as_i64().unwrap_or(0),
            )
        })
        .collect();
    let expected = [("f", 2), ("g", 6), ("<module>", 10)].map(|(f, l)| (f.to_string(), l));
    assert_eq!(frames, expected, "{top}");
    let module = s["top_modules"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["module"] == "known"))
        .unwrap_or_else(|| panic!("no module known: {}", s["top_modules"]));
    assert!(
        num(module, "bytes") >= 10_000_000 + BYTES_HEADER,
        "{module}"
    );
}

#[test]
fn an_allocation_is_counted_at_its_python_line() {
    the_allocation_is_at_its_line(python());
}

#[test]
fn every_supported_python_version_is_tracked() {
    for (_, p) in claimed_pythons() {
        the_allocation_is_at_its_line(&p);
    }
}

/// 200 code objects compiled, run and dropped, each with a 100 kB constant.
const DROPPED_CODE: &str = "\
import weakref
refs = []
for i in range(200):
    code = compile('s = %r * 2\\n' % ('x' * 100_000,), '<gen %d>' % i, 'exec')
    refs.append(weakref.ref(code))
    exec(code, {})
    del code
print('alive:', sum(r() is not None for r in refs))
";

/// The tracker knows a code object by its address: it kept each one it named alive (one
/// reference), so that no other could take the address. The program then kept every code
/// object that allocated (compiled and dropped ones, each module's once imported): 200 of 200
/// here, 20 MB "live at exit". Their deaths are watched instead.
#[test]
fn a_code_object_the_program_drops_is_freed() {
    let dir = scratch("py-dropped-code");
    let script = write(&dir, "dropped.py", DROPPED_CODE);
    let script = script.to_str().expect("utf-8 path");
    let mut pythons = claimed_and_debian_pythons();
    pythons.push(python().to_path_buf());
    for py in &pythons {
        let alone = untracked(py, &[script], &dir, b"");
        assert_eq!(
            String::from_utf8_lossy(&alone.stdout),
            "alive: 0\n",
            "{py:?}"
        );
        let capture = dir.join("dropped.bin");
        let out = tracked(py, &capture, &[script], &dir, b"");
        assert!(out.status.success(), "{py:?}: {out:?}");
        assert_eq!(out.stdout, alone.stdout, "{py:?}");
        let s = stats(&capture);
        // Each code object holds 100 kB: kept, they were 20 MB at exit.
        assert!(num(&s, "leaked_bytes") < 3_000_000, "{py:?}: {s}");
    }
}

/// 3,000 code objects compiled from seven sources (files gen0.py to gen6.py, whose allocating
/// line is k + 2), run and dropped, so that new ones take the addresses of dead ones; every
/// tenth keeps its list of 1,000 items (the globals are cleared: the function and its globals
/// make a cycle, which the collector would free at its own time).
const REUSED_CODE: &str = "\
keep = []
for i in range(3000):
    k = i % 7
    src = 'def f():\\n' + '    pass\\n' * k + '    return [0] * 1000\\n' + 'r = f()\\n'
    co = compile(src, 'gen%d.py' % k, 'exec')
    g = {}
    exec(co, g)
    if i % 10 == 0:
        keep.append(g['r'])
    g.clear()
    del co, g
print(len(keep))
";

/// The caches know a code object by its address; a code object that dies lets another take it.
/// Each kept list must be at its own file's line (what a cache kept of a dead code at that
/// address would have named wrongly).
#[test]
fn code_objects_made_at_the_addresses_of_dead_ones_are_named_right() {
    let dir = scratch("py-reused-code");
    let script = write(&dir, "reused.py", REUSED_CODE);
    let script = script.to_str().expect("utf-8 path");
    // Kept: i = 10j for j < 300, from file k = 10j mod 7 = 3j mod 7: 43 each, 42 for k = 4.
    let kept = |k: u64| if k == 4 { 42 } else { 43 };
    for (minor, py) in claimed_pythons() {
        let capture = dir.join("reused.bin");
        let out = tracked(&py, &capture, &[script], &dir, b"");
        assert!(out.status.success(), "3.{minor}: {out:?}");
        assert_eq!(out.stdout, b"300\n", "3.{minor}");
        let lines = memtrace_e2e::report(&["lines", "--json", "--leaks"], &capture);
        let mut per_list = None;
        for k in 0..7u64 {
            let file = lines["files"]
                .as_array()
                .and_then(|f| {
                    f.iter()
                        .find(|f| f["file"].as_str() == Some(&format!("gen{k}.py")))
                })
                .unwrap_or_else(|| panic!("3.{minor}: no gen{k}.py in {lines}"));
            let at = |n: u64| {
                file["lines"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|l| l["line"] == n)
                    .map_or(0, |l| l["exit_bytes"].as_u64().expect("bytes"))
            };
            let bytes = at(k + 2);
            assert_eq!(bytes % kept(k), 0, "3.{minor} gen{k}.py:{}: {bytes}", k + 2);
            let each = bytes / kept(k);
            assert!(each >= 8000, "3.{minor} gen{k}.py: {each} a list");
            assert_eq!(*per_list.get_or_insert(each), each, "3.{minor} gen{k}.py");
            // The function's other lines hold nothing.
            for n in (1..k + 2).filter(|&n| n != k + 2) {
                assert_eq!(at(n), 0, "3.{minor} gen{k}.py:{n}");
            }
        }
    }
}

#[test]
fn without_the_python_allocators_the_bytes_are_still_at_their_line() {
    let dir = scratch("py-no-pymalloc");
    let s = run_script(
        python(),
        &dir,
        "known.py",
        KNOWN_SITE,
        &["--no-python-allocators"],
    );
    for name in ["pymalloc_malloc", "pymalloc_calloc", "pymalloc_realloc"] {
        assert_eq!(allocator(&s, name), 0, "{}", s["allocators"]);
    }
    let top = location(&s, "top_by_size", "f", 2).expect("f at line 2");
    assert_eq!(num(top, "bytes"), 10_000_000 + BYTES_HEADER);
    assert_eq!(num(top, "count"), 1);
}

/// A script whose stacks change in each way the tracker's short path answers (the innermost
/// frame moves on in its code, calls a new frame, returns to its caller, recurses), with sizes
/// that tell every site apart; every block is kept until the end.
const STACK_MOVES: &str = "\
def leaf(n):
    return b\"\\0\" * n


def outer(rounds):
    keep = [None] * (4 * rounds)
    for i in range(rounds):
        keep[4 * i] = b\"\\0\" * 1_000_001
        keep[4 * i + 1] = leaf(2_000_003)
        keep[4 * i + 2] = b\"\\0\" * 3_000_005
        keep[4 * i + 3] = leaf(4_000_007)
    return keep


def recurse(depth):
    if depth == 0:
        return leaf(5_000_009)
    return recurse(depth - 1)


k = outer(3)
r = [recurse(2), recurse(3)]
";

/// The folded stacks of `STACK_MOVES` run by `python` (with `extra` words for `memtrace run`)
/// that hold its large blocks: (stack with file names cut to `moves.py`, live bytes), sorted.
fn stack_moves(python: &Path, extra: &[&str]) -> Vec<(String, i64)> {
    let dir = scratch("py-stack-moves");
    let script = write(&dir, "moves.py", STACK_MOVES);
    let capture = dir.join("moves.bin");
    let script_arg = script.to_string_lossy().into_owned();
    let mut words: Vec<&str> = extra.to_vec();
    words.push(&script_arg);
    let out = tracked_fixed_layout(python, &capture, &words, &dir, b"");
    assert!(out.status.success(), "{out:?}");
    let out = Command::new(memtrace_e2e::memtrace_bin())
        .args(["export", "-f", "folded"])
        .arg(&capture)
        .output_watched();
    assert!(out.status.success(), "{out:?}");
    let prefix = format!("{}/", dir.display());
    let mut stacks: Vec<(String, i64)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (stack, bytes) = l.rsplit_once(' ')?;
            let bytes: i64 = bytes.parse().ok()?;
            (bytes >= 1_000_000).then(|| (stack.replace(&prefix, ""), bytes))
        })
        .collect();
    stacks.sort();
    stacks
}

#[test]
fn every_way_a_stack_changes_is_placed_exactly() {
    // b"\0" * n: n + 33 bytes. Each site's stack with every frame's line, on every claimed
    // version, in full and aggregated captures.
    let b = |n: i64| n + BYTES_HEADER;
    let module = "<module> at moves.py";
    let leaf = "leaf at moves.py:2";
    let recurse = "recurse at moves.py:18";
    let mut expected: Vec<(String, i64)> = vec![
        (format!("{module}:21;outer at moves.py:8"), 3 * b(1_000_001)),
        (
            format!("{module}:21;outer at moves.py:9;{leaf}"),
            3 * b(2_000_003),
        ),
        (
            format!("{module}:21;outer at moves.py:10"),
            3 * b(3_000_005),
        ),
        (
            format!("{module}:21;outer at moves.py:11;{leaf}"),
            3 * b(4_000_007),
        ),
        (
            format!("{module}:22;{recurse};{recurse};recurse at moves.py:17;{leaf}"),
            b(5_000_009),
        ),
        (
            format!("{module}:22;{recurse};{recurse};{recurse};recurse at moves.py:17;{leaf}"),
            b(5_000_009),
        ),
    ];
    expected.sort();
    let mut pythons = vec![python().to_path_buf()];
    pythons.extend(claimed_pythons().into_iter().map(|(_, p)| p));
    for p in &pythons {
        for mode in [&[][..], &["--aggregate"][..]] {
            assert_eq!(stack_moves(p, mode), expected, "{} {mode:?}", p.display());
        }
    }
}

/// ctypes' `CDLL("libc.so.6")` looks `malloc` and `free` up in the C library's handle: they
/// were the C library's own, and the 30 MB block was on no line.
const CTYPES_LIBC: &str = "\
import ctypes
libc = ctypes.CDLL('libc.so.6')
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
def grab():
    return libc.malloc(30_000_000)
kept = grab()
gone = libc.malloc(20_000_000)
libc.free(gone)
";

#[test]
fn ctypes_calls_of_the_c_library_s_malloc_and_free_are_recorded() {
    let dir = scratch("py-ctypes-libc");
    let s = run_script(python(), &dir, "ctypes_libc.py", CTYPES_LIBC, &[]);
    let at = |function: &str, line: i64| {
        location(&s, "top_by_size", function, line)
            .map(|l| num(l, "bytes"))
            .unwrap_or_else(|| panic!("no {function}:{line} in {s}"))
    };
    // The block and the int object ctypes returns for its address.
    assert!((30_000_000..30_001_000).contains(&at("grab", 7)), "{s}");
    assert!((20_000_000..20_001_000).contains(&at("<module>", 9)), "{s}");
    // The block freed through the handle's free is not live at exit; the kept one is.
    let leaked = num(&s, "leaked_bytes");
    assert!((30_000_000..31_000_000).contains(&leaked), "{leaked}");
}

#[test]
fn small_objects_are_each_an_allocation() {
    // 50,000 objects of one line, each its own pymalloc allocation (itertools.repeat makes no
    // int per turn); the list holding them adds a few dozen reallocations on the same line.
    let dir = scratch("py-small");
    let text = "\
from itertools import repeat
def make(n):
    return [object() for _ in repeat(None, n)]


keep = make(50_000)
";
    let s = run_script(python(), &dir, "small.py", text, &[]);
    let top = &s["top_by_count"][0];
    assert_eq!(top["line"], 3, "{top}");
    let count = num(top, "count");
    assert!((50_000..50_100).contains(&count), "{top}");
    assert!(num(top, "bytes") >= 16 * 50_000, "{top}");
}

#[test]
fn threads_are_named_and_their_allocations_placed() {
    let dir = scratch("py-threads");
    let text = "\
import threading


def work():
    global blob
    blob = b\"\\0\" * 3_000_000


t = threading.Thread(target=work, name=\"loader\")
t.start()
t.join()
";
    let s = run_script(python(), &dir, "threads.py", text, &[]);
    let loader = s["threads"]
        .as_array()
        .and_then(|ts| ts.iter().find(|t| t["name"] == "loader"))
        .unwrap_or_else(|| panic!("no thread named loader: {}", s["threads"]));
    assert!(num(loader, "bytes") >= 3_000_000 + BYTES_HEADER, "{loader}");
    let site = location(&s, "top_by_size", "work", 6).expect("work at line 6");
    assert_eq!(num(site, "bytes"), 3_000_000 + BYTES_HEADER);
}

#[test]
fn live_at_exit_is_taken_when_the_script_ends() {
    // What the script keeps is live at its end; what it dropped is not; what the interpreter
    // frees when it tears down does not count.
    let dir = scratch("py-leaks");
    let base = run_script(python(), &dir, "empty.py", "pass\n", &[]);
    let text = "\
kept = b\"\\0\" * 5_000_000
dropped = b\"\\0\" * 7_000_000
del dropped
";
    let s = run_script(python(), &dir, "leaks.py", text, &[]);
    assert_eq!(s["leaks_at"], "exit_snapshot");
    // The interpreter's start-up is reported apart: live when the script started, the same
    // for both scripts (up to the script's own module and code objects).
    let startup = num(&s, "startup_bytes");
    assert!(
        startup > 1_000_000 && startup < num(&s, "peak_bytes"),
        "{startup}"
    );
    let base_startup = num(&base, "startup_bytes");
    assert!(
        (startup - base_startup).abs() < 100_000,
        "{startup} vs {base_startup}"
    );
    let extra = num(&s, "leaked_bytes") - num(&base, "leaked_bytes");
    assert!(
        (5_000_000 + BYTES_HEADER..5_000_000 + 200_000).contains(&extra),
        "leaked {extra} more than an empty script"
    );
}

#[test]
fn code_and_modules_are_tracked_too() {
    let dir = scratch("py-c-m");
    let capture = dir.join("c.bin");
    let out = tracked(
        python(),
        &capture,
        &["-c", "x = b'\\0' * 4_000_000"],
        &dir,
        b"",
    );
    assert!(out.status.success(), "{out:?}");
    let s = stats(&capture);
    let top = location(&s, "top_by_size", "<module>", 1).expect("<module> at line 1");
    assert_eq!(top["file"], "<string>");
    assert_eq!(num(top, "bytes"), 4_000_000 + BYTES_HEADER);

    write(&dir, "pkg/__init__.py", "");
    write(&dir, "pkg/big.py", "\n\ny = b'\\0' * 6_000_000\n");
    let capture = dir.join("m.bin");
    let out = tracked(python(), &capture, &["-m", "pkg.big"], &dir, b"");
    assert!(out.status.success(), "{out:?}");
    let s = stats(&capture);
    let top = location(&s, "top_by_size", "<module>", 3).expect("<module> at line 3");
    assert!(
        top["file"]
            .as_str()
            .is_some_and(|f| f.ends_with("pkg/big.py")),
        "{top}"
    );
    assert_eq!(num(top, "bytes"), 6_000_000 + BYTES_HEADER);
}

/// The interpreter on `script`, alone (`capture` None) or under `memtrace run -q -f -o capture
/// --python`, with `PYTHONPATH` set to `pythonpath`, in `dir`.
fn python_maybe_tracked(
    capture: Option<&Path>,
    script: &Path,
    pythonpath: &Path,
    dir: &Path,
) -> std::process::Output {
    interpreter_maybe_tracked(python(), capture, script, pythonpath, dir)
}

/// [`python_maybe_tracked`] with the interpreter `py`.
fn interpreter_maybe_tracked(
    py: &Path,
    capture: Option<&Path>,
    script: &Path,
    pythonpath: &Path,
    dir: &Path,
) -> std::process::Output {
    let mut cmd = match capture {
        Some(cap) => {
            let mut c = Command::new(memtrace_e2e::memtrace_bin());
            c.args(["run", "-q", "-f", "-o"])
                .arg(cap)
                .arg("--python")
                .arg(py);
            c
        }
        None => Command::new(py),
    };
    cmd.arg(script).env("PYTHONPATH", pythonpath);
    output(cmd, dir, b"")
}

#[test]
fn the_start_up_hook_leaves_no_trace() {
    // sys.path, PYTHONPATH and sys.modules' sitecustomize are what python shows, and a
    // sitecustomize of the user's still runs.
    let dir = scratch("py-hook");
    let user = dir.join("userpath");
    write(
        &user,
        "sitecustomize.py",
        "import sys\nsys.user_site_hook_ran = True\n",
    );
    let text = "\
import json, os, sys
print(json.dumps({
    'path': sys.path,
    'pythonpath': os.environ.get('PYTHONPATH'),
    'memtrace_vars': sorted(k for k in os.environ if k.startswith('MEMTRACE')),
    'hook': getattr(sys, 'user_site_hook_ran', False),
    'sitecustomize': getattr(sys.modules.get('sitecustomize'), '__file__', None),
    'tracker_module': '_memtrace_tracker' in sys.modules,
}))
";
    let script = write(&dir, "probe.py", text);
    let cap = dir.join("hook.bin");
    let run = |tracked_run: bool| {
        let out = python_maybe_tracked(tracked_run.then_some(&*cap), &script, &user, &dir);
        assert!(out.status.success(), "{out:?}");
        assert!(
            out.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).expect("json");
        v
    };
    let (plain, traced) = (run(false), run(true));
    assert_eq!(plain["hook"], true);
    assert_eq!(traced, plain);
}

#[test]
fn a_failing_sitecustomize_of_the_user_s_is_reported_as_without_memtrace() {
    // site.py reports a sitecustomize whose own import fails ("Error in sitecustomize; set
    // PYTHONVERBOSE for traceback: ModuleNotFoundError: ..."); the hook, which imports the
    // user's, once swallowed every ImportError and the message was lost.
    let dir = scratch("py-hook-failing");
    let user = dir.join("userpath");
    write(
        &user,
        "sitecustomize.py",
        "import no_such_module_of_the_user_s\n",
    );
    let script = write(&dir, "hello.py", "print('hello')\n");
    let cap = dir.join("failing.bin");
    let plain = python_maybe_tracked(None, &script, &user, &dir);
    let traced = python_maybe_tracked(Some(&cap), &script, &user, &dir);
    let said = String::from_utf8_lossy(&plain.stderr).into_owned();
    assert!(
        said.contains("Error in sitecustomize")
            && said.contains("No module named 'no_such_module_of_the_user_s'"),
        "{said}"
    );
    assert_eq!(
        (
            traced.status.code(),
            &traced.stdout,
            String::from_utf8_lossy(&traced.stderr)
        ),
        (plain.status.code(), &plain.stdout, said.as_str().into()),
    );
    // The run was tracked all the same: the script's capture is whole.
    let s = stats(&cap);
    assert_eq!(s["complete"].as_bool(), Some(true), "{s}");
}

#[test]
fn a_profiler_of_the_program_changes_nothing() {
    // memtrace reads frames at allocations and installs no profile function: a program that
    // installs its own (here from deep in a recursion) keeps its stacks, before and after.
    let dir = scratch("py-profiler");
    let text = "\
import sys
def before(n):
    return b\"\\0\" * n
kept = [before(2_000_000)]
def deep(k):
    if k:
        return deep(k - 1)
    sys.setprofile(lambda *a: None)
    return 0
deep(50)
def after():
    return b\"\\0\" * 1_500_000
for _ in range(3):
    kept.append(after())
print('done')
";
    let (capture, out) = track_script(python(), &dir, "prof.py", text);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout, b"done\n");
    let s = stats(&capture);
    let site = location(&s, "top_by_size", "before", 3).expect("before at line 3");
    assert_eq!(num(site, "bytes"), 2_000_000 + BYTES_HEADER);
    let site = location(&s, "top_by_size", "after", 12).expect("after at line 12");
    // The three objects, and at most a few small ones the profile function's calls make there.
    let bytes = num(site, "bytes");
    assert!(
        (3 * (1_500_000 + BYTES_HEADER)..3 * (1_500_000 + BYTES_HEADER) + 10_000).contains(&bytes),
        "{site}"
    );
    assert_eq!(
        frames_of(site),
        [("after", 12), ("<module>", 14)].map(|(f, l)| (f.to_string(), l))
    );
}

#[test]
fn a_thread_created_from_c_has_its_python_stack() {
    // ctypes runs the callback on a thread a C library created (PyGILState_Ensure gives it a
    // thread state): its allocations are at the callback's line.
    let dir = scratch("py-cthread");
    let lib = dir.join("libcthread.so");
    let status = Command::new("gcc")
        .args(["-shared", "-fPIC", "-pthread", "-o"])
        .arg(&lib)
        .arg(memtrace_e2e::workspace().join("tests/programs/cthread.c"))
        .status()
        .expect("gcc runs");
    assert!(status.success());
    let text = "\
import ctypes, sys
lib = ctypes.CDLL(sys.argv[1])
kept, slot = [None, None], iter(range(2))
def callback():
    kept[next(slot)] = b\"\\0\" * 2_500_000
cb = ctypes.CFUNCTYPE(None)(callback)
lib.run_in_thread(cb)
lib.run_in_thread(cb)
print(len(kept))
";
    let script = write(&dir, "cthread.py", text);
    let capture = dir.join("cthread.bin");
    let words = [
        script.to_str().expect("utf-8"),
        lib.to_str().expect("utf-8"),
    ];
    let out = tracked(python(), &capture, &words, &dir, b"");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout, b"2\n");
    let s = stats(&capture);
    let site = location(&s, "top_by_size", "callback", 5).expect("callback at line 5");
    assert_eq!(num(site, "bytes"), 2 * (2_500_000 + BYTES_HEADER));
    assert_eq!(num(site, "count"), 2);
    assert_eq!(frames_of(site), [("callback".to_string(), 5)]);
}

/// A location's stack as (function, line), innermost first.
fn frames_of(site: &Value) -> Vec<(String, i64)> {
    site["stack"]
        .as_array()
        .unwrap_or_else(|| panic!("no stack: {site}"))
        .iter()
        .map(|f| {
            (
                f["function"].as_str().unwrap_or("?").to_string(),
                f["line"].as_i64().unwrap_or(0),
            )
        })
        .collect()
}

#[test]
fn pools_generators_and_coroutines_are_placed() {
    let dir = scratch("py-kinds");
    let text = "\
import asyncio
from concurrent.futures import ThreadPoolExecutor
def pooled(n):
    return b\"\\0\" * n
def gen():
    for n in (1_100_000, 1_200_000):
        yield b\"\\0\" * n
async def coro():
    await asyncio.sleep(0)
    return b\"\\0\" * 1_300_000
with ThreadPoolExecutor(2) as ex:
    a = list(ex.map(pooled, [2_000_000, 2_000_000]))
b = list(gen())
c = asyncio.run(coro())
";
    run_script(python(), &dir, "kinds.py", text, &[]);
    // asyncio itself allocates more than these (it formats the task's repr when it restores
    // the SIGINT handler): ask for more locations than the default five.
    let out = Command::new(memtrace_e2e::memtrace_bin())
        .args(["stats", "--json", "-n", "50"])
        .arg(dir.join("kinds.py.bin"))
        .output_watched();
    assert!(out.status.success(), "{out:?}");
    let s: Value = serde_json::from_slice(&out.stdout).expect("json");
    let at = |function: &str, line: i64| {
        let l = location(&s, "top_by_size", function, line)
            .unwrap_or_else(|| panic!("no {function} at line {line}: {}", s["top_by_size"]));
        (num(l, "bytes"), num(l, "count"))
    };
    assert_eq!(at("pooled", 4), (2 * (2_000_000 + BYTES_HEADER), 2));
    assert_eq!(at("gen", 7), (2_300_000 + 2 * BYTES_HEADER, 2));
    assert_eq!(at("coro", 10), (1_300_000 + BYTES_HEADER, 1));
}

#[test]
fn a_forked_child_runs_as_it_would() {
    // The child runs new Python code (a code object the tracker has not named yet) after the
    // fork: it must neither crash nor write to the parent's capture, followed or not.
    let dir = scratch("py-fork");
    let text = "\
import os
pid = os.fork()
if pid == 0:
    x = [bytes(100) for _ in range(1000)]
    def fresh():
        return bytearray(5000)
    fresh()
    os._exit(7)
_, status = os.waitpid(pid, 0)
print('child', os.waitstatus_to_exitcode(status))
kept = b'\\0' * 1_000_000
";
    let script = write(&dir, "fork.py", text);
    let words = [script.to_str().expect("utf-8")];
    let plain = untracked(python(), &words, &dir, b"");
    assert_eq!(plain.stdout, b"child 7\n");
    for follow in [false, true] {
        let capture = dir.join(format!("fork-{follow}.bin"));
        let mut cmd = Command::new(memtrace_e2e::memtrace_bin());
        cmd.args(["run", "-q", "-f", "-o"])
            .arg(&capture)
            .arg("--python")
            .arg(python());
        if follow {
            cmd.arg("--follow-fork");
        }
        cmd.args(words);
        let out = output(cmd, &dir, b"");
        assert_eq!(out.stdout, plain.stdout, "follow {follow}: {out:?}");
        assert_eq!(out.status.code(), Some(0));
        let s = stats(&capture);
        assert!(
            location(&s, "top_by_size", "<module>", 11).is_some(),
            "{}",
            s["top_by_size"]
        );
    }
}

#[test]
fn a_script_killed_from_outside_leaves_its_allocations_readable() {
    // SIGKILL from another process: no exit handler runs; what the script did before is in
    // the capture, at its line and stack.
    let dir = scratch("py-sigkill");
    let text = "\
import os, sys, time
def load():
    return b\"\\0\" * 3_000_000
kept = load()
print(os.getpid(), flush=True)
time.sleep(60)
";
    let script = write(&dir, "killed.py", text);
    let capture = dir.join("killed.bin");
    let mut child = Command::new(memtrace_e2e::memtrace_bin())
        .args(["run", "-q", "-f", "-o"])
        .arg(&capture)
        .arg("--python")
        .arg(python())
        .arg(&script)
        .current_dir(&dir)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().expect("stdout")),
        &mut line,
    )
    .expect("read the pid");
    let pid: i32 = line.trim().parse().expect("a pid");
    // SAFETY: kill(2) of the script's process, which is waiting in its sleep.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    let status = child.wait().expect("wait");
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
    let s = stats(&capture);
    assert_eq!(s["complete"].as_bool(), Some(false), "{s}");
    let site = location(&s, "top_by_size", "load", 3).expect("load at line 3");
    assert_eq!(num(site, "bytes"), 3_000_000 + BYTES_HEADER);
    assert_eq!(
        frames_of(site),
        [("load", 3), ("<module>", 4)].map(|(f, l)| (f.to_string(), l))
    );
}

#[test]
fn daemon_threads_still_running_at_exit_are_harmless() {
    // Daemon threads churn while the script ends. (3.10 crashes when its exit takes long after
    // the interpreter is freed: the capture is finished with the script, before that.)
    let dir = scratch("py-daemons");
    let text = "\
import threading, sys
def churn(n):
    while True:
        x = [str(i) for i in range(100)]
        d = {i: bytearray(64) for i in range(50)}
        n[0] += 1
counts = [[0] for _ in range(4)]
for c in counts:
    threading.Thread(target=churn, args=(c,), daemon=True).start()
import time
# Each thread has churned a while (however loaded the machine), and goes on as the script ends.
start = time.time()
while min(c[0] for c in counts) < 200 and time.time() - start < 60:
    time.sleep(0.01)
print('bye')
";
    let script = write(&dir, "daemons.py", text);
    let mut pythons: Vec<(Option<u32>, PathBuf)> = claimed_pythons()
        .into_iter()
        .map(|(minor, p)| (Some(minor), p))
        .collect();
    pythons.push((None, python().to_path_buf()));
    for (minor, py) in &pythons {
        for round in 0..2 {
            let capture = dir.join(format!("daemons-{round}.bin"));
            let run = || tracked(py, &capture, &[script.to_str().expect("utf-8")], &dir, b"");
            let mut out = run();
            // CPython 3.10 itself sometimes dies of SIGSEGV at the end of this script, untracked
            // too (2 of 80 untracked runs with 3 CPU hogs beside them, 0 of 80 tracked): a
            // daemon thread woken after the interpreter is freed. There, and only for that
            // death, the run is made again, twice at most; a crash of the tracker's making
            // repeats and still fails.
            let mut again = 0;
            while *minor == Some(10) && out.status.signal() == Some(libc::SIGSEGV) && again < 2 {
                eprintln!(
                    "{}: SIGSEGV at exit (CPython 3.10's own, see above): again",
                    py.display()
                );
                again += 1;
                out = run();
            }
            assert!(out.status.success(), "{}: {out:?}", py.display());
            assert_eq!(out.stdout, b"bye\n");
            let s = stats(&capture);
            assert_eq!(s["complete"].as_bool(), Some(true), "{}", py.display());
            // The threads' allocations are at their lines, called from churn.
            let site = s["top_by_count"][0].clone();
            assert!(matches!(site["line"].as_i64(), Some(4 | 5)), "{site}");
            assert!(
                frames_of(&site)
                    .iter()
                    .any(|f| f == &("churn".to_string(), site["line"].as_i64().unwrap_or(0))),
                "{site}"
            );
        }
    }
}

#[test]
fn os_exit_and_a_failed_exec_leave_a_complete_capture() {
    // os._exit runs no exit handlers: the tracker finishes the capture in _exit. A child that
    // fails to exec calls _exit too (after vfork, in the parent's memory): that must not end
    // the parent's capture.
    let dir = scratch("py-os-exit");
    let text = "\
import os, subprocess
try:
    subprocess.run(['/nonexistent/program'])
except FileNotFoundError:
    pass
kept = b\"\\0\" * 2_000_000
print('exiting', flush=True)
os._exit(3)
";
    let (capture, out) = track_script(python(), &dir, "osexit.py", text);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert_eq!(out.stdout, b"exiting\n");
    let s = stats(&capture);
    assert_eq!(s["complete"].as_bool(), Some(true), "{s}");
    let site = location(&s, "top_by_size", "<module>", 6).expect("<module> at line 6");
    assert_eq!(num(site, "bytes"), 2_000_000 + BYTES_HEADER);
}

#[test]
fn threads_ending_as_the_script_ends_lose_nothing() {
    // The workers' last events (their exit) may race with the end of the capture: they come
    // after its end, and nothing is reported lost.
    let dir = scratch("py-thread-end");
    let text = "\
import threading
def work(n):
    out = []
    for i in range(n):
        out.append(str(i) * 3)
        if len(out) > 1000:
            out.clear()
ts = [threading.Thread(target=work, args=(30_000,)) for _ in range(4)]
for t in ts: t.start()
for t in ts: t.join()
print('done')
";
    for round in 0..3 {
        let s = run_script(python(), &dir, &format!("ends{round}.py"), text, &[]);
        assert_eq!(s["complete"].as_bool(), Some(true), "{s}");
        assert_eq!(s["warnings"], serde_json::json!([]), "{}", s["warnings"]);
        let workers = s["threads"].as_array().map(|ts| {
            ts.iter()
                .filter(|t| num(t, "allocations") >= 30_000)
                .count()
        });
        assert_eq!(workers, Some(4), "{}", s["threads"]);
    }
}

#[test]
fn reports_start_with_the_script_unless_asked() {
    // As memray sees a run: the interpreter's start-up (and `site`, run before the script) is
    // not in the figures; --include-startup counts it.
    let dir = scratch("py-startup");
    let text = "\
kept = b\"\\0\" * 10_000_000
";
    for py in claimed_pythons()
        .into_iter()
        .map(|(_, p)| p)
        .chain([python().to_path_buf()])
    {
        let script = write(&dir, "startup.py", text);
        let capture = dir.join("startup.bin");
        let out = tracked(&py, &capture, &[script.to_str().expect("utf-8")], &dir, b"");
        assert!(out.status.success(), "{out:?}");
        let s = stats(&capture);
        let startup = num(&s, "startup_bytes");
        assert!(startup > 1_000_000, "{}: {startup}", py.display());
        assert_eq!(s["startup_included"], false);
        let peak = num(&s, "peak_bytes");
        let kept = 10_000_000 + BYTES_HEADER;
        // The bytes object, and the little the running of a module takes.
        assert!(
            (kept..kept + 100_000).contains(&peak),
            "{}: {peak}",
            py.display()
        );
        assert!(
            num(&s, "total_frees") <= num(&s, "total_allocations"),
            "{s}"
        );
        let files = s["top_by_size"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|l| l["stack"].as_array().cloned().unwrap_or_default())
            .filter_map(|f| f["file"].as_str().map(str::to_string))
            .collect::<Vec<_>>();
        assert!(!files.iter().any(|f| f == "<frozen site>"), "{files:?}");
        let all = memtrace_e2e::memtrace(
            &[
                "stats",
                "--json",
                "--include-startup",
                capture.to_str().expect("utf-8"),
            ],
            &dir,
        );
        let all: Value = serde_json::from_slice(&all.stdout).expect("json");
        assert_eq!(all["startup_included"], true);
        assert!(num(&all, "peak_bytes") >= peak + startup / 2, "{all}");
    }
}

/// The start-up hook imports nothing for the program beyond the built-in `atexit` (and itself,
/// as `sitecustomize`): a program that never imports threading runs without it (its threads
/// are named once it imports it). Checked on python3 and on Debian's python3, whose start-up
/// imports no threading of its own.
#[test]
fn the_hook_imports_no_module_the_program_does_not() {
    let debian = Path::new("/usr/bin/python3");
    let mut pythons = vec![python()];
    if debian.exists() {
        pythons.push(debian);
    }
    for py in pythons {
        let dir = scratch("py-hook-modules");
        let script = write(&dir, "mods.py", "import sys\nprint(sorted(sys.modules))\n");
        let words = [script.to_str().unwrap()];
        let plain = untracked(py, &words, &dir, b"");
        let out = tracked(py, &dir.join("mods.bin"), &words, &dir, b"");
        assert!(plain.status.success() && out.status.success(), "{out:?}");
        let modules = |o: &std::process::Output| -> Vec<String> {
            let text = String::from_utf8_lossy(&o.stdout);
            text.trim()
                .trim_matches(|c| c == '[' || c == ']')
                .split(", ")
                .map(|m| m.trim_matches('\'').to_string())
                // The import system keeps the hook's module as `sitecustomize` when the
                // interpreter has none of its own (it must stay in sys.modules once imported).
                .filter(|m| m != "atexit" && m != "sitecustomize")
                .collect()
        };
        let (tracked, plain) = (modules(&out), modules(&plain));
        let extra: Vec<&String> = tracked.iter().filter(|m| !plain.contains(m)).collect();
        let missing: Vec<&String> = plain.iter().filter(|m| !tracked.contains(m)).collect();
        assert!(
            extra.is_empty() && missing.is_empty(),
            "{}: imported for the program: {extra:?}; missing: {missing:?}",
            py.display()
        );
    }
}

/// Whether the interpreter loaded the start-up hook compiled (PYTHONVERBOSE's stderr says
/// where each module's code came from).
fn hook_from_pyc(stderr: &str) -> bool {
    stderr.lines().any(|l| {
        l.starts_with("# code object from")
            && l.contains("memtrace-py-")
            && l.contains("__pycache__/sitecustomize.")
    })
}

/// The hook compiled by one run is kept per user and loaded by the next without compiling
/// (the interpreter says so under PYTHONVERBOSE), with the same figures; a damaged kept file
/// is not used, and the run compiles the hook and tracks as before.
#[test]
fn the_compiled_hook_is_kept_for_the_next_run() {
    let dir = scratch("py-hook-kept");
    let cache = dir.join("cache");
    let script = write(&dir, "known.py", KNOWN_SITE);
    let run = |name: &str| {
        let mut cmd = Command::new(memtrace_e2e::memtrace_bin());
        cmd.args(["run", "-q", "-f", "-o"])
            .arg(dir.join(name))
            .arg("--python")
            .arg(python())
            .arg(&script)
            .env("XDG_CACHE_HOME", &cache)
            .env("PYTHONVERBOSE", "1")
            .env_remove("PYTHONDONTWRITEBYTECODE");
        let out = output(cmd, &dir, b"");
        assert!(out.status.success(), "{out:?}");
        let s = stats(&dir.join(name));
        let top = &s["top_by_size"][0];
        assert_eq!(
            (top["function"].as_str(), top["line"].as_i64()),
            (Some("f"), Some(2))
        );
        assert_eq!(num(top, "bytes"), 10_000_000 + BYTES_HEADER);
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    assert!(
        !hook_from_pyc(&run("first.bin")),
        "nothing kept before the first run"
    );
    let kept: Vec<PathBuf> = std::fs::read_dir(cache.join("memtrace"))
        .expect("the cache")
        .flatten()
        .flat_map(|d| std::fs::read_dir(d.path()).into_iter().flatten().flatten())
        .map(|e| e.path())
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert!(hook_from_pyc(&run("second.bin")), "the kept hook is loaded");
    // Damaged: cut short. Not used; the run compiles the hook, and keeps it whole again.
    let bytes = std::fs::read(&kept[0]).expect("the kept hook");
    std::fs::write(&kept[0], &bytes[..bytes.len() - 5]).expect("damage it");
    assert!(
        !hook_from_pyc(&run("third.bin")),
        "a damaged hook is not used"
    );
    assert!(
        hook_from_pyc(&run("fourth.bin")),
        "the hook is kept whole again"
    );
}

/// A $TMPDIR whose path holds a `:` (PYTHONPATH's separator) cannot hold the start-up hook's
/// directory: the run puts it elsewhere, and the program runs tracked, with its own PYTHONPATH.
#[test]
fn a_temporary_directory_with_a_colon_is_passed_over() {
    let dir = scratch("py-tmpdir-colon");
    let tmp = dir.join("a:b");
    std::fs::create_dir_all(&tmp).expect("a directory");
    let script = write(
        &dir,
        "colon.py",
        "import os\ndef f(n):\n    return b\"\\0\" * n\ndata = f(7_000_000)\nprint(os.environ.get(\"PYTHONPATH\"))\n",
    );
    let capture = dir.join("colon.bin");
    let mut cmd = Command::new(memtrace_e2e::memtrace_bin());
    cmd.args(["run", "-q", "-f", "-o"])
        .arg(&capture)
        .arg("--python")
        .arg(python())
        .arg(&script)
        .env("TMPDIR", &tmp)
        .env_remove("PYTHONPATH");
    let out = output(cmd, &dir, b"");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "None\n");
    let s = stats(&capture);
    let top = location(&s, "top_by_size", "f", 3).expect("f at line 3");
    assert_eq!(num(top, "bytes"), 7_000_000 + BYTES_HEADER);
}

/// An interpreter told to write no bytecode (PYTHONDONTWRITEBYTECODE, common in containers)
/// would compile the hook at every run: the hook writes its own compiled form, kept for the
/// next run, which loads it; the program's own modules still get no bytecode written.
#[test]
fn the_hook_is_kept_when_the_interpreter_writes_no_bytecode() {
    let dir = scratch("py-hook-kept-no-bytecode");
    let cache = dir.join("cache");
    let program = dir.join("program");
    std::fs::create_dir_all(&program).expect("a directory");
    write(
        &program,
        "helper.py",
        "def size():\n    return 10_000_000\n",
    );
    let script = write(
        &program,
        "main.py",
        "import sys\nimport helper\ndata = b\"\\0\" * helper.size()\nprint(sys.dont_write_bytecode)\n",
    );
    let run = |name: &str| {
        let mut cmd = Command::new(memtrace_e2e::memtrace_bin());
        cmd.args(["run", "-q", "-f", "-o"])
            .arg(dir.join(name))
            .arg("--python")
            .arg(python())
            .arg(&script)
            .env("XDG_CACHE_HOME", &cache)
            .env("PYTHONVERBOSE", "1")
            .env("PYTHONDONTWRITEBYTECODE", "1");
        let out = output(cmd, &dir, b"");
        assert!(out.status.success(), "{out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "True\n");
        let s = stats(&dir.join(name));
        let top = &s["top_by_size"][0];
        assert_eq!(top["line"].as_i64(), Some(3), "{top}");
        assert_eq!(num(top, "bytes"), 10_000_000 + BYTES_HEADER);
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    assert!(!hook_from_pyc(&run("first.bin")), "nothing kept before");
    assert!(hook_from_pyc(&run("second.bin")), "the kept hook is loaded");
    assert!(
        !program.join("__pycache__").exists(),
        "bytecode written for the program's modules"
    );
}

/// An interpreter that does not import threading as it starts (a `.pth` file of pyenv's 3.11
/// does): among the tests' Python and Debian's.
fn python_without_threading_at_start() -> PathBuf {
    let candidates = [python().to_path_buf(), PathBuf::from("/usr/bin/python3")];
    candidates
        .into_iter()
        .find(|py| {
            Command::new(py)
                .args(["-c", "import sys; print('threading' in sys.modules)"])
                .output_watched()
                .stdout
                == b"False\n"
        })
        .expect("a Python that starts without importing threading")
}

#[test]
fn a_module_named_threading_beside_the_script_is_the_program_s_own() {
    // The hook names threads when threading is imported; a program's own threading.py (no
    // current_thread) made the import fail with an AttributeError from the hook.
    let dir = scratch("py-own-threading");
    write(&dir, "threading.py", "VALUE = 42\n");
    let script = write(
        &dir,
        "main.py",
        "import threading\nprint('threading.VALUE', threading.VALUE)\n",
    );
    let py = python_without_threading_at_start();
    let empty = dir.join("empty");
    std::fs::create_dir(&empty).expect("mkdir");
    let alone = interpreter_maybe_tracked(&py, None, &script, &empty, &dir);
    let cap = dir.join("run.bin");
    let tracked = interpreter_maybe_tracked(&py, Some(&cap), &script, &empty, &dir);
    assert_eq!(
        String::from_utf8_lossy(&alone.stdout),
        "threading.VALUE 42\n",
        "{alone:?}"
    );
    assert_eq!(tracked.status.code(), alone.status.code(), "{tracked:?}");
    assert_eq!(tracked.stdout, alone.stdout);
    assert_eq!(tracked.stderr, alone.stderr);
}

/// The hook that names threads is the threads' profile function until their first call: the
/// program saw it in `threading.getprofile()` (a test asserting None failed), and its own
/// `threading.setprofile` replaced it (no more thread names). Now the program sees its own
/// function (or None), its function gets the events of new threads from their first call on,
/// and the threads are still named.
/// The names of a capture's threads (`stats --json`).
fn thread_names(s: &serde_json::Value) -> Vec<&str> {
    s["threads"]
        .as_array()
        .expect("threads")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect()
}

#[test]
fn threading_getprofile_shows_the_program_s_own_profile_function() {
    let dir = scratch("py-getprofile");
    let script = write(
        &dir,
        "prof.py",
        r#"import threading
print(threading.getprofile())
seen = []
def prof(frame, event, arg):
    if event == "call":
        seen.append((threading.current_thread().name, frame.f_code.co_name))
threading.setprofile(prof)
print(threading.getprofile() is prof)
def work():
    sum(range(10))
def named():
    work()
t = threading.Thread(target=named, name="worker-1")
t.start(); t.join()
print(sorted(set(n for n, f in seen if f in ("named", "work"))), ("worker-1", "named") in seen)
threading.setprofile(None)
print(threading.getprofile())
t = threading.Thread(target=named, name="worker-2"); t.start(); t.join()
print(any(n == "worker-2" for n, f in seen))
"#,
    );
    let empty = dir.join("empty");
    std::fs::create_dir(&empty).expect("mkdir");
    for (minor, py) in claimed_pythons() {
        let alone = interpreter_maybe_tracked(&py, None, &script, &empty, &dir);
        assert_eq!(
            String::from_utf8_lossy(&alone.stdout),
            "None\nTrue\n['worker-1'] True\nNone\nFalse\n",
            "3.{minor}: {alone:?}"
        );
        let cap = dir.join(format!("prof{minor}.bin"));
        let tracked = interpreter_maybe_tracked(&py, Some(&cap), &script, &empty, &dir);
        assert_eq!(tracked.status.code(), Some(0), "3.{minor}: {tracked:?}");
        assert_eq!(tracked.stdout, alone.stdout, "3.{minor}");
        assert_eq!(tracked.stderr, alone.stderr, "3.{minor}");
        let s = stats(&cap);
        let names = thread_names(&s);
        for name in ["worker-1", "worker-2"] {
            assert!(names.contains(&name), "3.{minor}: {names:?}");
        }
    }
}

/// Finding where the script starts, and naming new threads, once set a profile function; on
/// 3.12+ that turns on the monitoring instrumentation, which gives every function run
/// afterwards a block (72 bytes on 3.12, 64 on 3.13) that it keeps: tracemalloc saw memory
/// alone there was none, and memtrace's own reports showed a "leak" at each function's `def`.
/// Now neither sets one: the functions keep nothing, as alone, with a thread started first (and
/// still named).
#[test]
fn functions_keep_no_monitoring_block_under_memtrace() {
    let dir = scratch("py-no-monitoring");
    let script = write(
        &dir,
        "calls.py",
        r#"import threading, tracemalloc
def work():
    keep.append(bytearray(100_000))
keep = []
t = threading.Thread(target=work, name="worker-A")
t.start(); t.join()
functions = []
for i in range(1000):
    ns = {}
    exec(f"def f{i}():\n    return {i}\n", ns)
    functions.append(ns[f"f{i}"])
tracemalloc.start()
before = tracemalloc.get_traced_memory()[0]
for f in functions:
    f()
print("kept", tracemalloc.get_traced_memory()[0] - before)
tracemalloc.stop()
"#,
    );
    let empty = dir.join("empty");
    std::fs::create_dir(&empty).expect("mkdir");
    for (minor, py) in claimed_pythons() {
        let alone = interpreter_maybe_tracked(&py, None, &script, &empty, &dir);
        // 3.10 gives a function called for the first time a cache of its own, alone too.
        if minor >= 11 {
            assert_eq!(
                String::from_utf8_lossy(&alone.stdout),
                "kept 0\n",
                "3.{minor}: {alone:?}"
            );
        }
        let cap = dir.join(format!("calls{minor}.bin"));
        let tracked = interpreter_maybe_tracked(&py, Some(&cap), &script, &empty, &dir);
        assert_eq!(tracked.status.code(), Some(0), "3.{minor}: {tracked:?}");
        assert_eq!(tracked.stdout, alone.stdout, "3.{minor}");
        let s = stats(&cap);
        let names = thread_names(&s);
        assert!(names.contains(&"worker-A"), "3.{minor}: {names:?}");
    }
}

/// The mark of a stack that stops short, as reports name it.
const TOO_DEEP: &str = "<stack stops short: deeper than kept, outer frames left out>";

/// With --native too, a merged stack keeps every Python frame a Python stack alone keeps (it
/// kept 507 of a 1,000-deep recursion's, and none of a 5,000-deep one's on 3.11+), and one cut
/// short ends with the mark.
#[test]
fn a_native_stack_keeps_the_python_frames_of_a_deep_recursion() {
    let dir = scratch("py-too-deep-native");
    let script = "\
import sys
sys.setrecursionlimit(20_000)
def down(d):
    if d == 0:
        return bytearray(3_000_000)
    return down(d - 1)
def down2(d):
    if d == 0:
        return b\"\\0\" * 2_000_000
    return down2(d - 1)
deep = down(5000)
whole = down2(1000)
";
    let count = |stack: &[(String, i64)], f: &str, line: i64| {
        stack.iter().filter(|(n, l)| n == f && *l == line).count()
    };
    for (minor, py) in claimed_pythons() {
        let s = run_script(&py, &dir, &format!("deep{minor}.py"), script, &["--native"]);
        // The innermost frame is the interpreter's (each object type's own): the site is found
        // by its bytes.
        let site = |bytes: i64| {
            s["top_by_size"]
                .as_array()
                .and_then(|l| l.iter().find(|l| num(l, "bytes") == bytes))
                .unwrap_or_else(|| panic!("3.{minor}: no site of {bytes} bytes"))
        };
        // bytearray(n) asks for n + 1 bytes.
        let stack = frames_of(site(3_000_001));
        assert_eq!(count(&stack, "down", 5), 1, "3.{minor}");
        assert_eq!(count(&stack, "down", 6), 4095, "3.{minor}");
        assert_eq!(
            stack.last().map(|f| f.0.as_str()),
            Some(TOO_DEEP),
            "3.{minor}"
        );
        let stack = frames_of(site(2_000_000 + BYTES_HEADER));
        assert_eq!(count(&stack, "down2", 9), 1, "3.{minor}");
        assert_eq!(count(&stack, "down2", 10), 1000, "3.{minor}");
        assert_eq!(count(&stack, "<module>", 12), 1, "3.{minor}");
    }
}

/// A Python stack keeps its innermost 4,096 frames: a deeper one says so with the mark of a
/// stack that stops short (and the reports count what lies under it), one within the limit
/// reaches its outermost frame.
#[test]
fn a_python_stack_deeper_than_kept_is_marked_where_it_stops() {
    let dir = scratch("py-too-deep");
    let script = "\
import sys
sys.setrecursionlimit(20_000)
def down(d):
    if d == 0:
        return b\"\\0\" * 3_000_000
    return down(d - 1)
def down2(d):
    if d == 0:
        return b\"\\0\" * 2_000_000
    return down2(d - 1)
deep = down(5000)
whole = down2(4000)
";
    for (minor, py) in claimed_pythons() {
        let s = run_script(&py, &dir, &format!("deep{minor}.py"), script, &[]);
        let deep = location(&s, "top_by_size", "down", 5).expect("down at line 5");
        assert_eq!(num(deep, "bytes"), 3_000_000 + BYTES_HEADER, "3.{minor}");
        assert_eq!(num(deep, "count"), 1, "3.{minor}");
        let stack = frames_of(deep);
        assert_eq!(stack.len(), 4097, "3.{minor}");
        assert_eq!(stack[0], ("down".to_string(), 5), "3.{minor}");
        assert!(
            stack[1..4096].iter().all(|f| *f == ("down".to_string(), 6)),
            "3.{minor}"
        );
        assert_eq!(stack[4096].0, TOO_DEEP, "3.{minor}");
        let whole = location(&s, "top_by_size", "down2", 9).expect("down2 at line 9");
        assert_eq!(num(whole, "bytes"), 2_000_000 + BYTES_HEADER, "3.{minor}");
        let stack = frames_of(whole);
        assert_eq!(stack.len(), 4002, "3.{minor}");
        assert_eq!(stack[0], ("down2".to_string(), 9), "3.{minor}");
        assert!(
            stack[1..4001]
                .iter()
                .all(|f| *f == ("down2".to_string(), 10)),
            "3.{minor}"
        );
        assert_eq!(stack[4001], ("<module>".to_string(), 12), "3.{minor}");
        // The deep bytes object and what the interpreter keeps for the deep calls (3.10's
        // frame objects), not the 2 MB under the whole stack.
        let short = num(&s, "peak_stops_short_bytes");
        assert!(
            (3_000_000 + BYTES_HEADER..3_500_000).contains(&short),
            "3.{minor}: {short}"
        );
    }
}

/// `mmap.resize` (an mremap that moves the mapping) is charged to its Python line, as the
/// mmap was: it showed as the mmap module's code, with no Python frame.
#[test]
fn a_resized_mapping_is_at_the_line_that_resized_it() {
    let dir = scratch("py-mremap");
    let script = "\
import mmap
m = mmap.mmap(-1, 10 * 4096)
m.resize(1000 * 4096)
n = mmap.mmap(-1, 20 * 4096)
print(len(m), len(n))
";
    for (minor, py) in claimed_pythons() {
        let s = run_script(&py, &dir, &format!("resize{minor}.py"), script, &[]);
        let resized = location(&s, "top_by_size", "<module>", 3)
            .unwrap_or_else(|| panic!("3.{minor}: no line 3: {}", s["top_by_size"]));
        assert_eq!(num(resized, "bytes"), 1000 * 4096, "3.{minor}: {resized}");
        assert_eq!(num(resized, "count"), 1, "3.{minor}: {resized}");
        let at_peak = location(&s, "top_at_peak", "<module>", 3)
            .unwrap_or_else(|| panic!("3.{minor}: {}", s["top_at_peak"]));
        assert_eq!(num(at_peak, "bytes"), 1000 * 4096, "3.{minor}: {at_peak}");
    }
}

/// Short threads one after another, each at its own depth: a thread takes over the caches of
/// one that exited (kept for new threads) and still gets its own stacks, exactly.
#[test]
fn short_threads_one_after_another_each_get_their_own_stacks() {
    let dir = scratch("py-short-threads");
    let script = "\
import threading
keep = [None] * 40
def leaf(i, n):
    keep[i] = b\"\\0\" * n
def deep(d, i, n):
    if d:
        return deep(d - 1, i, n)
    leaf(i, n)
def shallow(i, n):
    leaf(i, n)
for i in range(40):
    target = deep if i % 2 else shallow
    args = (i % 7, i, 100_000 + i) if i % 2 else (i, 200_000 + i)
    t = threading.Thread(target=target, args=args)
    t.start()
    t.join()
";
    let s = run_script(python(), &dir, "short.py", script, &[]);
    let leaf = location(&s, "top_by_size", "leaf", 4).expect("leaf at line 4");
    let expected: i64 = (0..40)
        .map(|i| if i % 2 == 1 { 100_000 + i } else { 200_000 + i } + BYTES_HEADER)
        .sum();
    assert_eq!(num(leaf, "bytes"), expected, "{leaf}");
    assert_eq!(num(leaf, "count"), 40, "{leaf}");
    // Each stack is shallow's, or deep's with its own depth, under the thread's run().
    let folded = memtrace_e2e::memtrace(
        &[
            "export",
            "--format",
            "folded",
            dir.join("short.py.bin").to_str().expect("utf-8"),
        ],
        &dir,
    );
    assert!(folded.status.success(), "{folded:?}");
    let text = String::from_utf8_lossy(&folded.stdout);
    let mut shallow = 0;
    let mut depths = std::collections::BTreeMap::new();
    for line in text.lines().filter(|l| l.contains("leaf")) {
        let (stack, _) = line.rsplit_once(' ').expect("folded line");
        let frames: Vec<&str> = stack.split(';').collect();
        assert!(
            frames.last().is_some_and(|f| f.starts_with("leaf")),
            "{line}"
        );
        assert!(frames.iter().any(|f| f.contains("run")), "{line}");
        let deep = frames.iter().filter(|f| f.starts_with("deep")).count();
        if frames.iter().any(|f| f.starts_with("shallow")) {
            assert_eq!(deep, 0, "{line}");
            shallow += 1;
        } else {
            *depths.entry(deep).or_insert(0) += 1;
        }
    }
    assert_eq!(shallow, 1, "{text}");
    // deep(d) for d in 0..=6: d + 1 frames of deep, one folded line each.
    assert_eq!(
        depths.into_iter().collect::<Vec<_>>(),
        (1..=7).map(|d| (d, 1)).collect::<Vec<_>>(),
        "{text}"
    );
}

/// The start-up hook is imported as `sitecustomize`: with no sitecustomize of the program's
/// own it must not stay one (a program's `import sitecustomize` found it, and `-m
/// sitecustomize` ran it in place of the program's file). On every claimed Python, the same
/// as untracked.
#[test]
fn the_hook_leaves_no_sitecustomize_module_behind() {
    let dir = scratch("py-no-sitecustomize");
    let script = write(
        &dir,
        "look.py",
        "import sys\nprint('sitecustomize' in sys.modules)\ntry:\n    import sitecustomize\n    print('imported', getattr(sitecustomize, '__file__', None))\nexcept ImportError as e:\n    print('ImportError', e.name)\n",
    );
    let own = dir.join("own");
    std::fs::create_dir_all(&own).expect("dir");
    write(
        &own,
        "sitecustomize.py",
        "print('own sitecustomize as', __name__)\n",
    );
    for (minor, py) in claimed_pythons() {
        let script = script.to_str().expect("utf-8");
        let plain = untracked(&py, &[script], &dir, b"");
        let capture = dir.join(format!("look{minor}.bin"));
        let out = tracked(&py, &capture, &[script], &dir, b"");
        assert!(out.status.success(), "3.{minor}: {out:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&plain.stdout),
            "3.{minor}"
        );
        // -m of the program's own module of that name, from its directory.
        let mut cmd = Command::new(&py);
        cmd.args(["-m", "sitecustomize"]);
        let plain = output(cmd, &own, b"");
        let mut cmd = Command::new(memtrace_e2e::memtrace_bin());
        cmd.args(["run", "-q", "-f", "-o"])
            .arg(dir.join(format!("m{minor}.bin")))
            .arg("--python")
            .arg(&py)
            .args(["-m", "sitecustomize"]);
        let out = output(cmd, &own, b"");
        assert!(out.status.success(), "3.{minor}: {out:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&plain.stdout),
            "3.{minor} -m"
        );
    }
}

/// With PYTHONPYCACHEPREFIX the interpreter writes the hook's compiled form under the prefix,
/// at a path made from the hook's directory, new each run: nothing of it is left there.
#[test]
fn a_pycache_prefix_keeps_nothing_of_the_hook() {
    let dir = scratch("py-pycache-prefix");
    let prefix = dir.join("pfx");
    let script = write(&dir, "p.py", "import json\nprint('ok')\n");
    for round in 0..2 {
        let mut cmd = Command::new(memtrace_e2e::memtrace_bin());
        cmd.args(["run", "-q", "-f", "-o"])
            .arg(dir.join(format!("p{round}.bin")))
            .arg("--python")
            .arg(python())
            .arg(&script)
            .env("PYTHONPYCACHEPREFIX", &prefix)
            .env_remove("PYTHONDONTWRITEBYTECODE");
        let out = output(cmd, &dir, b"");
        assert!(out.status.success(), "{out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "ok\n");
    }
    let mut left = Vec::new();
    let mut todo = vec![prefix.clone()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            let name = p
                .strip_prefix(&prefix)
                .expect("under the prefix")
                .to_string_lossy()
                .into_owned();
            if name.contains("memtrace-") {
                left.push(name);
            }
            if p.is_dir() {
                todo.push(p);
            }
        }
    }
    assert!(left.is_empty(), "{left:?}");
}

/// tracemalloc on, then imports: tracemalloc calls malloc while it holds its table lock, and
/// the tracker's hook, naming a code object it had not seen, set the code's `co_extra` slot,
/// which allocated through tracemalloc's hook and waited on that lock for good (every Python);
/// and a name that is not ASCII was read through the C API, which allocates (the same). The
/// file is `tm_ü.py`.
const WITH_TRACEMALLOC: &str = "\
import tracemalloc
tracemalloc.start(10)
import json, decimal, email.parser
def fünf(n):
    return [str(i) for i in range(n)]
x = fünf(20000)
snapshot = tracemalloc.take_snapshot()
lines = {s.traceback[0].lineno for s in snapshot.statistics('lineno')}
print(len(x), 5 in lines)
";

#[test]
fn a_program_using_tracemalloc_runs_as_alone() {
    let dir = scratch("py-tracemalloc");
    let script = write(&dir, "tm_ü.py", WITH_TRACEMALLOC);
    let script = script.to_str().expect("utf-8 path");
    for py in &claimed_and_debian_pythons() {
        let alone = untracked(py, &[script], &dir, b"");
        assert_eq!(
            String::from_utf8_lossy(&alone.stdout),
            "20000 True\n",
            "{py:?}"
        );
        let capture = dir.join("tm.bin");
        let out = tracked(py, &capture, &[script], &dir, b"");
        assert!(out.status.success(), "{py:?}: {out:?}");
        assert_eq!(out.stdout, alone.stdout, "{py:?}");
        let s = stats(&capture);
        let at = location(&s, "top_by_size", "fünf", 5)
            .or_else(|| location(&s, "top_by_size", "fünf.<locals>.<listcomp>", 5))
            .or_else(|| location(&s, "top_by_size", "<listcomp>", 5));
        assert!(
            at.is_some_and(|l| l["file"].as_str().is_some_and(|f| f.ends_with("/tm_ü.py"))),
            "{py:?}: no allocation at tm_ü.py:5 in {}",
            s["top_by_size"]
        );
        // Started by the environment, from the interpreter's start.
        let out = Command::new(memtrace_e2e::memtrace_bin())
            .args(["run", "-q", "-f", "-o"])
            .arg(&capture)
            .arg("--python")
            .arg(py)
            .args(["-c", "import json, decimal; print('ok')"])
            .env("PYTHONTRACEMALLOC", "5")
            .current_dir(&dir)
            .output_watched();
        assert!(out.status.success(), "{py:?}: {out:?}");
        assert_eq!(out.stdout, b"ok\n", "{py:?}");
    }
}

/// `atexit._run_exitfuncs()` called by the program (as some test runners do): the script goes
/// on, and so does its capture. The tracker's exit function, run and cleared with the others,
/// ended the capture there: the 20 MB the script kept afterwards were in no report, and
/// nothing said so (review 4).
#[test]
fn a_program_that_runs_its_exit_functions_goes_on_being_tracked() {
    let text = "\
import atexit
def keep(n):
    return b\"\\0\" * n
atexit.register(lambda: print(\"exit function\"))
first = keep(1_000_000)
atexit._run_exitfuncs()
print(\"went on\")
second = keep(20_000_000)
";
    for py in claimed_and_debian_pythons() {
        let dir = scratch("py-run-exitfuncs");
        let script = write(&dir, "exits.py", text);
        let words = [script.to_str().expect("utf-8")];
        let plain = untracked(&py, &words, &dir, b"");
        assert_eq!(
            String::from_utf8_lossy(&plain.stdout),
            "exit function\nwent on\n",
            "{py:?}"
        );
        let capture = dir.join("exits.bin");
        let out = tracked(&py, &capture, &words, &dir, b"");
        assert_eq!(out.status.code(), plain.status.code(), "{py:?}: {out:?}");
        assert_eq!(out.stdout, plain.stdout, "{py:?}");
        assert_eq!(out.stderr, plain.stderr, "{py:?}");
        let s = stats(&capture);
        assert_eq!(s["complete"], true, "{py:?}: {}", s["warnings"]);
        assert_eq!(s["leaks_at"], "exit_snapshot", "{py:?}");
        // Both blocks of keep (line 3), the one made after the exit functions too.
        let site = location(&s, "top_by_size", "keep", 3)
            .unwrap_or_else(|| panic!("{py:?}: nothing in keep: {}", s["top_by_size"]));
        assert_eq!(
            num(site, "bytes"),
            21_000_000 + 2 * BYTES_HEADER,
            "{py:?}: {site}"
        );
        assert_eq!(num(site, "count"), 2, "{py:?}: {site}");
        assert!(
            num(&s, "leaked_bytes") >= 21_000_000 + 2 * BYTES_HEADER,
            "{py:?}: leaked {}",
            s["leaked_bytes"]
        );
    }
}
