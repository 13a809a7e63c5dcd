//! In-process tracking: plain `python` (not started by memtrace, nothing preloaded) imports the
//! tracker library as `_memtrace_tracker` and calls its `start` and `stop`; the capture holds
//! exactly what happened in between, at its lines, in every thread.

use memtrace_e2e::python::*;
use memtrace_e2e::watchdog::Watched;
use memtrace_e2e::{allocator, link_tracker_module, num, scratch, stats};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// `b"\0" * n` is one allocation of the bytes object: a 32-byte header, n bytes and a NUL.
const BYTES_HEADER: i64 = 33;

/// A scratch directory holding the tracker library as `_memtrace_tracker.so` (a link), so
/// that a script there imports it.
fn setup(name: &str) -> PathBuf {
    let dir = scratch(name);
    link_tracker_module(&dir);
    dir
}

/// Runs `python dir/name ARGS` (the script written from `text`), untracked.
fn run(python: &Path, dir: &Path, name: &str, text: &str, args: &[&str]) -> Output {
    let script = write(dir, name, text);
    let mut words = vec![script.to_str().expect("utf-8 path")];
    words.extend_from_slice(args);
    let mut cmd = Command::new(python);
    cmd.args(&words).env_remove("LD_PRELOAD");
    for (k, _) in std::env::vars() {
        if k.starts_with("MEMTRACE") {
            cmd.env_remove(k);
        }
    }
    output(cmd, dir, b"")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A location of `top_by_size` by function name and line.
fn location<'a>(v: &'a Value, function: &str, line: i64) -> Option<&'a Value> {
    v["top_by_size"]
        .as_array()?
        .iter()
        .find(|l| l["function"].as_str() == Some(function) && l["line"].as_i64() == Some(line))
}

fn frames(location: &Value) -> Vec<(String, i64)> {
    location["stack"]
        .as_array()
        .unwrap_or_else(|| panic!("no stack: {location}"))
        .iter()
        .map(|f| {
            (
                f["function"].as_str().unwrap_or("?").to_string(),
                f["line"].as_i64().unwrap_or(0),
            )
        })
        .collect()
}

const KNOWN: &str = "\
import sys
import _memtrace_tracker as tracker
def f(n):
    return b\"\\0\" * n
def g():
    return f(10_000_000)
before = b\"\\0\" * 20_000_000
tracker.start(sys.argv[1], False, True, False)
kept = g()
del before
tracker.stop()
after = b\"\\0\" * 30_000_000
print(\"kept\", len(kept))
sys.exit(7)
";

fn known_allocations_are_counted(python: &Path) {
    let dir = setup("inproc-known");
    let capture = dir.join("known.bin");
    let out = run(
        python,
        &dir,
        "known.py",
        KNOWN,
        &[capture.to_str().expect("utf-8")],
    );
    // The program's own output and exit status, untouched.
    assert_eq!(out.status.code(), Some(7), "{out:?}");
    assert_eq!(text(&out.stdout), "kept 10000000\n");
    assert_eq!(text(&out.stderr), "");
    let s = stats(&capture);
    assert_eq!(s["complete"], true, "{}", s["warnings"]);
    let top = &s["top_by_size"][0];
    assert_eq!(top["function"], "f", "{top}");
    assert_eq!(top["line"], 4, "{top}");
    assert_eq!(num(top, "bytes"), 10_000_000 + BYTES_HEADER);
    assert_eq!(num(top, "count"), 1);
    let expected = [("f", 4), ("g", 6), ("<module>", 9)].map(|(f, l)| (f.to_string(), l));
    assert_eq!(frames(top), expected, "{top}");
    // What was allocated before start (freed while tracking) and after stop is not there.
    for l in s["top_by_size"].as_array().into_iter().flatten() {
        assert!(num(l, "bytes") < 20_000_000, "{l}");
        assert_ne!(l["line"], 7, "{l}");
        assert_ne!(l["line"], 12, "{l}");
    }
    let total = num(&s, "total_bytes");
    assert!(
        (10_000_000 + BYTES_HEADER..10_200_000).contains(&total),
        "total {total}"
    );
    assert!(num(&s, "peak_bytes") < 10_200_000, "{}", s["peak_bytes"]);
    // The freed 20 MB block was the capture's: no free is counted for it.
    assert!(num(&s, "total_frees") < num(&s, "total_allocations"));
    // The kept block is live at the end; there is no start-up (tracking and the "script"
    // start together): none is reported, as for a native run (README: null).
    assert!(num(&s, "leaked_bytes") >= 10_000_000 + BYTES_HEADER);
    assert!(s["startup_bytes"].is_null(), "{}", s["startup_bytes"]);
    assert!(allocator(&s, "pymalloc_malloc") > 0, "{}", s["allocators"]);
    // The header says what ran.
    assert!(
        s["command"]
            .as_str()
            .is_some_and(|c| c.contains("known.py")),
        "{}",
        s["command"]
    );
}

#[test]
fn allocations_between_start_and_stop_are_counted_at_their_lines() {
    known_allocations_are_counted(python());
}

#[test]
fn every_supported_python_version_tracks_in_process() {
    for (_, p) in claimed_pythons() {
        known_allocations_are_counted(&p);
    }
}

#[test]
fn a_second_start_and_a_stop_without_start_are_refused() {
    let dir = setup("inproc-refused");
    let capture = dir.join("a.bin");
    write(&dir, "exists.bin", "taken");
    let script = "\
import sys
import _memtrace_tracker as tracker
def attempt(f, *args):
    try:
        f(*args)
        print('ok')
    except RuntimeError as e:
        print(e)
attempt(tracker.stop)
attempt(tracker.start, 'exists.bin', False, True, False)
attempt(tracker.start, sys.argv[1], False, True, False)
attempt(tracker.start, 'other.bin', False, True, False)
attempt(tracker.stop)
attempt(tracker.stop)
";
    let out = run(
        python(),
        &dir,
        "refused.py",
        script,
        &[capture.to_str().expect("utf-8")],
    );
    assert!(out.status.success(), "{out:?}");
    let lines: Vec<String> = text(&out.stdout).lines().map(str::to_string).collect();
    assert_eq!(lines.len(), 6, "{lines:?}");
    assert_eq!(lines[0], "no memtrace Tracker is active in this process");
    assert!(
        lines[1].starts_with("cannot create the capture exists.bin: File exists"),
        "{}",
        lines[1]
    );
    assert_eq!(lines[2], "ok");
    assert_eq!(
        lines[3],
        "a memtrace Tracker is already active in this process"
    );
    assert_eq!(lines[4], "ok");
    assert_eq!(lines[5], "no memtrace Tracker is active in this process");
    assert!(!dir.join("other.bin").exists());
    assert_eq!(
        std::fs::read_to_string(dir.join("exists.bin")).expect("read"),
        "taken"
    );
    assert_eq!(stats(&capture)["complete"], true);
}

#[test]
fn importing_the_library_does_nothing() {
    let dir = setup("inproc-import");
    let out = run(
        python(),
        &dir,
        "quiet.py",
        "import _memtrace_tracker\nx = b'\\0' * 1000\nprint('fine')\n",
        &[],
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(text(&out.stdout), "fine\n");
    assert_eq!(text(&out.stderr), "");
    let files: Vec<_> = std::fs::read_dir(&dir)
        .expect("read dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".bin"))
        .collect();
    assert!(files.is_empty(), "{files:?}");
}

/// Compiles a shared library with `make(n)` (mallocs n bytes and keeps them) and `drop()`.
fn compile_library(dir: &Path) -> PathBuf {
    let src = write(
        dir,
        "mk.c",
        "#include <stdlib.h>\n#include <string.h>\nvoid *keep;\nvoid make(size_t n) {\n    keep = malloc(n);\n    memset(keep, 1, n);\n}\nvoid drop(void) { free(keep); }\n",
    );
    let lib = dir.join("libmk.so");
    let status = Command::new("gcc")
        .args(["-O0", "-g", "-fno-builtin", "-shared", "-fPIC", "-o"])
        .arg(&lib)
        .arg(&src)
        .status()
        .expect("gcc runs");
    assert!(status.success(), "compiling mk.c failed");
    lib
}

const LOADS_A_LIBRARY: &str = "\
import ctypes, sys
import _memtrace_tracker as tracker
tracker.start(sys.argv[1], sys.argv[3] == 'native', False, False)
lib = ctypes.CDLL(sys.argv[2])
n = ctypes.c_size_t(3_000_000)
lib.make(n)
lib.drop()
lib.make(n)
tracker.stop()
lib.drop()
print('done')
";

/// Runs LOADS_A_LIBRARY in a scratch directory `name` with the test library, tracking in
/// `mode` ("python" or "native"); returns the capture and the run's output.
fn track_a_library(name: &str, mode: &str) -> (PathBuf, Output) {
    let dir = setup(name);
    let lib = compile_library(&dir);
    let capture = dir.join(format!("{mode}.bin"));
    let out = run(
        python(),
        &dir,
        "dl.py",
        LOADS_A_LIBRARY,
        &[
            capture.to_str().expect("utf-8"),
            lib.to_str().expect("utf-8"),
            mode,
        ],
    );
    (capture, out)
}

#[test]
fn a_library_loaded_after_start_is_tracked() {
    let (capture, out) = track_a_library("inproc-dlopen", "python");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(text(&out.stdout), "done\n");
    let s = stats(&capture);
    // Both calls of make, at their lines of the script; the first block freed by drop.
    for line in [6, 8] {
        let site = location(&s, "<module>", line)
            .unwrap_or_else(|| panic!("no <module> at line {line}: {}", s["top_by_size"]));
        assert_eq!(num(site, "bytes"), 3_000_000, "{site}");
        assert_eq!(num(site, "count"), 1, "{site}");
    }
    assert!(allocator(&s, "malloc") >= 2, "{}", s["allocators"]);
    assert!(allocator(&s, "free") >= 1, "{}", s["allocators"]);
    assert!(num(&s, "leaked_bytes") >= 3_000_000);
}

#[test]
fn native_stacks_reach_into_a_loaded_library() {
    let (capture, out) = track_a_library("inproc-native", "native");
    assert!(out.status.success(), "{out:?}");
    let s = stats(&capture);
    assert_eq!(s["complete"], true);
    let top = &s["top_by_size"][0];
    assert_eq!(top["function"], "make", "{top}");
    assert_eq!(top["line"], 5, "{top}");
    assert_eq!(num(top, "bytes"), 6_000_000, "{top}");
    assert_eq!(num(top, "count"), 2, "{top}");
    // The merged stack: the library's function below the script's line.
    let stack = frames(top);
    assert!(
        stack
            .iter()
            .any(|(f, l)| f == "<module>" && (*l == 6 || *l == 8)),
        "{stack:?}"
    );
}

#[test]
fn threads_running_before_start_are_tracked_and_named() {
    let dir = setup("inproc-threads");
    let capture = dir.join("threads.bin");
    let script = "\
import sys, threading
import _memtrace_tracker as tracker
go = threading.Event()
def early():
    go.wait()
    global a
    a = b\"\\0\" * 7_000_000
def late():
    global b
    b = b\"\\0\" * 2_000_000
first = threading.Thread(target=early, name='early-worker')
first.start()
tracker.start(sys.argv[1], False, True, False)
go.set()
first.join()
second = threading.Thread(target=late, name='late-worker')
second.start()
second.join()
tracker.stop()
";
    let out = run(
        python(),
        &dir,
        "threads.py",
        script,
        &[capture.to_str().expect("utf-8")],
    );
    assert!(out.status.success(), "{out:?}");
    let s = stats(&capture);
    let early = location(&s, "early", 7).expect("early at line 7");
    assert_eq!(num(early, "bytes"), 7_000_000 + BYTES_HEADER);
    assert_eq!(num(early, "count"), 1);
    let late = location(&s, "late", 10).expect("late at line 10");
    assert_eq!(num(late, "bytes"), 2_000_000 + BYTES_HEADER);
    for (name, bytes) in [("early-worker", 7_000_000), ("late-worker", 2_000_000)] {
        let t = s["threads"]
            .as_array()
            .and_then(|ts| ts.iter().find(|t| t["name"] == name))
            .unwrap_or_else(|| panic!("no thread named {name}: {}", s["threads"]));
        assert!(num(t, "bytes") >= bytes + BYTES_HEADER, "{t}");
    }
}

#[test]
fn start_and_stop_twice_make_two_captures_and_leave_nothing_open() {
    let dir = setup("inproc-twice");
    let first = dir.join("one.bin");
    let second = dir.join("two.bin");
    let script = "\
import os, sys
import _memtrace_tracker as tracker
def held():
    names = [open('/proc/self/maps').read()]
    for fd in os.listdir('/proc/self/fd'):
        try:
            names.append(os.readlink(f'/proc/self/fd/{fd}'))
        except OSError:
            pass
    return names
tracker.start(sys.argv[1], False, True, False)
one = b\"\\0\" * 4_000_000
tracker.stop()
between = b\"\\0\" * 6_000_000
tracker.start(sys.argv[2], False, True, False)
two = b\"\\0\" * 5_000_000
tracker.stop()
print(any(sys.argv[1] in h or sys.argv[2] in h for h in held()))
";
    let out = run(
        python(),
        &dir,
        "twice.py",
        script,
        &[
            first.to_str().expect("utf-8"),
            second.to_str().expect("utf-8"),
        ],
    );
    assert!(out.status.success(), "{out:?}");
    // Neither capture stays open or mapped in the process.
    assert_eq!(text(&out.stdout), "False\n");
    let one = stats(&first);
    let two = stats(&second);
    assert_eq!(one["complete"], true);
    assert_eq!(two["complete"], true);
    let site = location(&one, "<module>", 12).expect("line 12 in the first");
    assert_eq!(num(site, "bytes"), 4_000_000 + BYTES_HEADER);
    let site = location(&two, "<module>", 16).expect("line 16 in the second");
    assert_eq!(num(site, "bytes"), 5_000_000 + BYTES_HEADER);
    for (s, other) in [(&one, 16), (&two, 12)] {
        assert!(location(s, "<module>", other).is_none());
        assert!(location(s, "<module>", 14).is_none());
        assert!(num(s, "total_bytes") < 5_200_000);
    }
}

const FORKS: &str = "\
import os, sys
import _memtrace_tracker as tracker
tracker.start(sys.argv[1], False, True, sys.argv[2] == 'follow')
mine = b\"\\0\" * 3_000_000
pid = os.fork()
if pid == 0:
    theirs = b\"\\0\" * 8_000_000
    tracker.stop()
    os._exit(5)
_, status = os.waitpid(pid, 0)
tracker.stop()
print(pid, os.waitstatus_to_exitcode(status))
";

fn fork_run(follow: bool) -> (PathBuf, u32, Value) {
    let dir = setup(if follow {
        "inproc-fork-follow"
    } else {
        "inproc-fork"
    });
    let capture = dir.join("fork.bin");
    let mode = if follow { "follow" } else { "no" };
    let out = run(
        python(),
        &dir,
        "fork.py",
        FORKS,
        &[capture.to_str().expect("utf-8"), mode],
    );
    assert!(out.status.success(), "{out:?}");
    let stdout = text(&out.stdout);
    let words: Vec<&str> = stdout.split_whitespace().collect();
    assert_eq!(words.len(), 2, "{stdout}");
    assert_eq!(words[1], "5", "the child's exit status");
    let pid: u32 = words[0].parse().expect("pid");
    let s = stats(&capture);
    assert_eq!(s["complete"], true);
    let site = location(&s, "<module>", 4).expect("line 4");
    assert_eq!(num(site, "bytes"), 3_000_000 + BYTES_HEADER);
    assert!(location(&s, "<module>", 7).is_none(), "the child's block");
    (capture, pid, s)
}

#[test]
fn a_fork_child_is_not_tracked_without_follow_fork() {
    let (capture, pid, _) = fork_run(false);
    let child = PathBuf::from(format!("{}.{pid}", capture.display()));
    assert!(!child.exists());
}

#[test]
fn a_fork_child_writes_its_own_capture_with_follow_fork() {
    let (capture, pid, _) = fork_run(true);
    let child = PathBuf::from(format!("{}.{pid}", capture.display()));
    let s = stats(&child);
    assert_eq!(s["complete"], true);
    let site = location(&s, "<module>", 7).expect("the child's line 7");
    assert_eq!(num(site, "bytes"), 8_000_000 + BYTES_HEADER);
    assert!(location(&s, "<module>", 4).is_none());
}

#[test]
fn threads_allocating_through_many_starts_and_stops_run_on() {
    let dir = setup("inproc-stress");
    let base = dir.join("cycle.bin");
    let script = "\
import sys, threading
import _memtrace_tracker as tracker
done = False
def churn():
    while not done:
        small = [bytes(100) for _ in range(100)]
        big = bytearray(100_000)
threads = [threading.Thread(target=churn) for _ in range(4)]
for t in threads:
    t.start()
for i in range(20):
    tracker.start(f'{sys.argv[1]}.{i}', i % 2 == 0, i % 3 != 0, False)
    mark = b\"\\0\" * 1_000_000
    tracker.stop()
done = True
for t in threads:
    t.join()
print('survived')
";
    let out = run(
        python(),
        &dir,
        "stress.py",
        script,
        &[base.to_str().expect("utf-8")],
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(text(&out.stdout), "survived\n");
    for i in 0..20 {
        let s = stats(&PathBuf::from(format!("{}.{i}", base.display())));
        assert_eq!(s["complete"], true, "capture {i}: {}", s["warnings"]);
        if i % 2 == 1 {
            let site = location(&s, "<module>", 13)
                .unwrap_or_else(|| panic!("capture {i}: {}", s["top_by_size"]));
            assert_eq!(num(site, "bytes"), 1_000_000 + BYTES_HEADER, "capture {i}");
        }
    }
}

#[test]
fn a_patched_slot_holds_the_hook_while_tracking_and_its_own_value_after() {
    // The malloc slot of a library loaded while tracking: patched (neither the C library's
    // malloc nor the library's lazy stub), then put back. The C library's malloc is looked up
    // in its own handle: the global one is a PLT stub in a non-PIE python (Debian's). The
    // library's own stubs lie within its file's size from its base (the tracker may be mapped
    // just above it).
    let dir = setup("inproc-slot");
    let lib = compile_library(&dir);
    let offset = malloc_slot_offset(&lib);
    let script = "\
import ctypes, ctypes.util, os, sys
import _memtrace_tracker as tracker
libc = ctypes.CDLL(ctypes.util.find_library(\"c\"))
libc_malloc = ctypes.cast(libc.malloc, ctypes.c_void_p).value
def slot(lib):
    base = ctypes.c_size_t.from_address(lib._handle).value
    value = ctypes.c_size_t.from_address(base + int(sys.argv[3], 16)).value
    own = base <= value < base + os.path.getsize(sys.argv[2])
    return 'libc' if value == libc_malloc else 'own' if own else 'other'
tracker.start(sys.argv[1], False, True, False)
lib = ctypes.CDLL(sys.argv[2])
during = slot(lib)
tracker.stop()
print(during, slot(lib) in ('libc', 'own'))
";
    let capture = dir.join("slot.bin");
    let out = run(
        python(),
        &dir,
        "slot.py",
        script,
        &[
            capture.to_str().expect("utf-8"),
            lib.to_str().expect("utf-8"),
            &offset,
        ],
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(text(&out.stdout), "other True\n");
}

/// `stop(True)` (the pytest plugin's, between tests) leaves the patched slots in: the hooks pass
/// through while nothing records, the next capture records the library's malloc with no new
/// patching, and `release_hooks()` (refused while a capture runs) puts every slot back.
#[test]
fn hooks_kept_by_a_stop_pass_through_until_released() {
    let dir = setup("inproc-keep");
    let lib = compile_library(&dir);
    let offset = malloc_slot_offset(&lib);
    let script = "\
import ctypes, ctypes.util, os, sys
import _memtrace_tracker as tracker
libc = ctypes.CDLL(ctypes.util.find_library(\"c\"))
libc_malloc = ctypes.cast(libc.malloc, ctypes.c_void_p).value
def slot(lib):
    base = ctypes.c_size_t.from_address(lib._handle).value
    value = ctypes.c_size_t.from_address(base + int(sys.argv[3], 16)).value
    own = base <= value < base + os.path.getsize(sys.argv[2])
    return 'libc' if value == libc_malloc else 'own' if own else 'other'
tracker.start(sys.argv[1] + '.0', False, True, False)
lib = ctypes.CDLL(sys.argv[2])
tracker.stop(True)
between = slot(lib)
lib.make(ctypes.c_size_t(5_000_000))
lib.drop()
outside = b\"\\0\" * 20_000_000
n = ctypes.c_size_t(3_000_000)
tracker.start(sys.argv[1] + '.1', False, False, False)
try:
    tracker.release_hooks()
    refused = False
except RuntimeError:
    refused = True
lib.make(n)
tracker.stop(True)
tracker.release_hooks()
tracker.release_hooks()
lib.drop()
print(between, refused, slot(lib) in ('libc', 'own'))
";
    let capture = dir.join("keep.bin");
    let out = run(
        python(),
        &dir,
        "keep.py",
        script,
        &[
            capture.to_str().expect("utf-8"),
            lib.to_str().expect("utf-8"),
            &offset,
        ],
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(text(&out.stdout), "other True True\n");
    let s = stats(&PathBuf::from(format!("{}.1", capture.display())));
    assert_eq!(s["complete"], true, "{}", s["warnings"]);
    let made = location(&s, "<module>", 24)
        .unwrap_or_else(|| panic!("no <module> at line 24: {}", s["top_by_size"]));
    assert_eq!(num(made, "bytes"), 3_000_000, "{made}");
    assert_eq!(num(made, "count"), 1, "{made}");
    // Nothing of what ran between the captures (the make of line 14, line 16's bytes).
    assert!(num(&s, "total_bytes") < 3_100_000, "{}", s["total_bytes"]);
    for line in [14, 16] {
        assert!(
            location(&s, "<module>", line).is_none(),
            "line {line}: {}",
            s["top_by_size"]
        );
    }
}

#[test]
fn a_library_dlopened_by_name_is_found_along_its_callers_runpath() {
    // loader.so (RUNPATH $ORIGIN/plugins) opens "libplugin.so" by name while tracking: the
    // hooked dlopen finds it where the loader would for loader.so, and its malloc is seen.
    let dir = setup("inproc-runpath");
    let plugins = dir.join("plugins");
    std::fs::create_dir_all(&plugins).expect("mkdir");
    let plugin_src = write(
        &dir,
        "plugin.c",
        "#include <stdlib.h>\n#include <string.h>\nvoid *kept;\nvoid grow(void) { kept = malloc(4000000); memset(kept, 1, 4000000); }\n",
    );
    let loader_src = write(
        &dir,
        "loader.c",
        "#include <dlfcn.h>\nint load(void) {\n    void *h = dlopen(\"libplugin.so\", RTLD_NOW);\n    if (!h) return 1;\n    void (*grow)(void) = (void (*)(void))dlsym(h, \"grow\");\n    if (!grow) return 2;\n    grow();\n    return 0;\n}\n",
    );
    for (src, out, extra) in [
        (&plugin_src, plugins.join("libplugin.so"), vec![]),
        (
            &loader_src,
            dir.join("loader.so"),
            vec!["-Wl,--enable-new-dtags,-rpath,$ORIGIN/plugins", "-ldl"],
        ),
    ] {
        let status = Command::new("gcc")
            .args(["-O0", "-fno-builtin", "-shared", "-fPIC", "-o"])
            .arg(&out)
            .arg(src)
            .args(&extra)
            .status()
            .expect("gcc runs");
        assert!(status.success(), "compiling {} failed", src.display());
    }
    let script = "\
import ctypes, sys
import _memtrace_tracker as tracker
loader = ctypes.CDLL(sys.argv[2])
tracker.start(sys.argv[1], False, False, False)
rc = loader.load()
tracker.stop()
print(rc)
";
    let capture = dir.join("runpath.bin");
    let loader = dir.join("loader.so");
    let out = run(
        python(),
        &dir,
        "runpath.py",
        script,
        &[
            capture.to_str().expect("utf-8"),
            loader.to_str().expect("utf-8"),
        ],
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(text(&out.stdout), "0\n");
    let s = stats(&capture);
    let site = location(&s, "<module>", 5).expect("the load at line 5");
    // The plugin's block, once. Under a Python whose executable exports malloc (Debian's), the
    // loader's own allocations for the library it opens (its name, its dependency list) go
    // through the hooked malloc too, as they do under `memtrace run`: a few small blocks.
    let big: Vec<&Value> = s["histogram"]
        .as_array()
        .expect("a histogram")
        .iter()
        .filter(|bin| num(bin, "lo") >= 1 << 20)
        .collect();
    assert_eq!(big.len(), 1, "{}", s["histogram"]);
    assert_eq!(num(big[0], "count"), 1, "{}", s["histogram"]);
    assert_eq!(num(big[0], "bytes"), 4_000_000, "{}", s["histogram"]);
    let rest = num(site, "bytes") - 4_000_000;
    assert!((0..1024).contains(&rest), "{site}");
}

#[test]
fn a_library_loaded_where_a_closed_one_was_is_patched_at_the_next_start() {
    // The slots of each object are found once and kept from one start to the next. Here the
    // first library is patched (loaded while tracking) and closed; another one, whose malloc
    // slot lies elsewhere, is loaded between two sessions (the loader tends to map it where
    // the first was): the second start must patch its own slot, counted at its line.
    let dir = setup("inproc-reload");
    let first = compile_library(&dir);
    let src = write(
        &dir,
        "other.c",
        "#include <stdlib.h>\n#include <string.h>\n#include <stdio.h>\nvoid *keep;\nint pad1(const char *s) { return puts(s); }\nsize_t pad2(const char *s) { return strlen(s); }\nvoid make(size_t n) {\n    keep = malloc(n);\n    memset(keep, 1, n);\n}\nvoid drop(void) { free(keep); }\n",
    );
    let second = dir.join("libother.so");
    let status = Command::new("gcc")
        .args(["-O0", "-g", "-fno-builtin", "-shared", "-fPIC", "-o"])
        .arg(&second)
        .arg(&src)
        .status()
        .expect("gcc runs");
    assert!(status.success(), "compiling other.c failed");
    let script = "\
import _ctypes, ctypes, sys
import _memtrace_tracker as tracker
tracker.start(sys.argv[1], False, False, False)
lib = ctypes.CDLL(sys.argv[3])
lib.make(ctypes.c_size_t(1_000_000))
lib.drop()
tracker.stop()
_ctypes.dlclose(lib._handle)
del lib
lib = ctypes.CDLL(sys.argv[4])
tracker.start(sys.argv[2], False, False, False)
lib.make(ctypes.c_size_t(3_000_000))
tracker.stop()
lib.drop()
print('done')
";
    let (one, two) = (dir.join("one.bin"), dir.join("two.bin"));
    let out = run(
        python(),
        &dir,
        "reload.py",
        script,
        &[
            one.to_str().expect("utf-8"),
            two.to_str().expect("utf-8"),
            first.to_str().expect("utf-8"),
            second.to_str().expect("utf-8"),
        ],
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(text(&out.stdout), "done\n");
    for (capture, line, bytes) in [(&one, 5, 1_000_000), (&two, 12, 3_000_000)] {
        let s = stats(capture);
        let site = location(&s, "<module>", line)
            .unwrap_or_else(|| panic!("no <module> at line {line}: {}", s["top_by_size"]));
        assert_eq!(num(site, "bytes"), bytes, "{site}");
        assert_eq!(num(site, "count"), 1, "{site}");
    }
}

/// `allocated_bytes()` after a stop: every byte the capture's allocations took, in threads that
/// ran on from the last capture, in threads started and ended inside it (whose states the next
/// ones take), in the main thread: exactly the capture's total, so never below its peak (the
/// pytest plugin reads no capture that cannot reach the peaks it lists).
#[test]
fn allocated_bytes_is_the_capture_s_total() {
    let dir = setup("inproc-allocated");
    let base = dir.join("allocated.bin");
    let script = "\
import queue, sys, threading
import _memtrace_tracker as tracker
jobs, done = queue.Queue(), queue.Queue()
def worker():
    while (n := jobs.get()) is not None:
        kept = [bytes(n) for _ in range(20)]
        done.put(len(kept))
def short():
    kept = [bytearray(5000) for _ in range(30)]
w = threading.Thread(target=worker)
w.start()
for i in range(4):
    tracker.start(f'{sys.argv[1]}.{i}', False, True, False)
    mark = b\"\\0\" * (1_000_000 * (i + 1))
    jobs.put(1000 * (i + 1))
    done.get()
    for _ in range(3):
        t = threading.Thread(target=short)
        t.start()
        t.join()
    del mark
    tracker.stop()
    print(tracker.allocated_bytes())
jobs.put(None)
w.join()
";
    let out = run(
        python(),
        &dir,
        "allocated.py",
        script,
        &[base.to_str().expect("utf-8")],
    );
    assert!(out.status.success(), "{out:?}");
    let printed: Vec<i64> = text(&out.stdout)
        .lines()
        .map(|l| l.parse().expect("a number"))
        .collect();
    assert_eq!(printed.len(), 4, "{out:?}");
    for (i, &allocated) in printed.iter().enumerate() {
        let s = stats(&PathBuf::from(format!("{}.{i}", base.display())));
        assert_eq!(s["complete"], true, "capture {i}: {}", s["warnings"]);
        assert!(
            s["startup_bytes"].is_null(),
            "capture {i}: {}",
            s["startup_bytes"]
        );
        assert_eq!(allocated, num(&s, "total_bytes"), "capture {i}");
        let mark = 1_000_000 * (i as i64 + 1) + BYTES_HEADER;
        assert!(
            num(&s, "peak_bytes") >= mark,
            "capture {i}: {}",
            s["peak_bytes"]
        );
        // The worker's and the short threads' blocks are in the total.
        assert!(
            allocated >= mark + 20 * (1000 * (i as i64 + 1) + BYTES_HEADER) + 3 * 30 * 5000,
            "capture {i}: {allocated}"
        );
    }
}

/// The offset (hex, from readelf) of `lib`'s GOT slot for malloc.
fn malloc_slot_offset(lib: &Path) -> String {
    let relocs = Command::new("readelf")
        .args(["-rW"])
        .arg(lib)
        .output_watched();
    text(&relocs.stdout)
        .lines()
        .find(|l| l.contains("JUMP_SLOT") && l.contains(" malloc@"))
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .expect("a JUMP_SLOT of malloc")
}

/// Tracking from Python takes no profile function (on 3.12+ one turns on the monitoring
/// instrumentation, which leaves every function run afterwards a block of its own), leaves the
/// program's `threading.setprofile` slot alone, still names a thread started and ended while
/// tracking, and puts `threading.Thread` back as it was at stop.
#[test]
fn tracking_sets_no_profile_function_and_still_names_new_threads() {
    let dir = setup("inproc-no-profile");
    // Run with `-`, the same script does not track: what its functions keep is the reference.
    let script = "\
import sys, threading, tracemalloc
import _memtrace_tracker as tracker
track = sys.argv[1] != '-'
original = threading.Thread._set_native_id
def work():
    keep.append(bytearray(100_000))
keep = []
functions = []
for i in range(1000):
    ns = {}
    exec(f'def f{i}():\\n    return {i}\\n', ns)
    functions.append(ns[f'f{i}'])
kept = 0
if track:
    tracker.start(sys.argv[1], False, True, False)
print('profile', threading.getprofile(), sys.getprofile())
t = threading.Thread(target=work, name='worker-A')
t.start(); t.join()
tracemalloc.start()
before = tracemalloc.get_traced_memory()[0]
for f in functions:
    f()
kept = tracemalloc.get_traced_memory()[0] - before
tracemalloc.stop()
if track:
    tracker.stop()
print('kept', kept)
print('restored', threading.Thread._set_native_id is original)
";
    for (minor, py) in claimed_pythons() {
        let alone = run(&py, &dir, "calls.py", script, &["-"]);
        assert!(alone.status.success(), "3.{minor}: {alone:?}");
        let capture = dir.join(format!("calls{minor}.bin"));
        let out = run(
            &py,
            &dir,
            "calls.py",
            script,
            &[capture.to_str().expect("utf-8")],
        );
        assert!(out.status.success(), "3.{minor}: {out:?}");
        let printed = text(&out.stdout);
        assert_eq!(printed, text(&alone.stdout), "3.{minor}");
        assert!(
            printed.starts_with("profile None None\n") && printed.ends_with("restored True\n"),
            "3.{minor}: {printed}"
        );
        let s = stats(&capture);
        let worker = s["threads"]
            .as_array()
            .and_then(|ts| ts.iter().find(|t| t["name"] == "worker-A"))
            .unwrap_or_else(|| panic!("3.{minor}: no worker-A: {}", s["threads"]));
        assert!(num(worker, "bytes") >= 100_000, "3.{minor}: {worker}");
    }
}
