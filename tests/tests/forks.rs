//! Forks while other threads do every kind of tracker work at once: a lock of the tracker held
//! by another thread at the fork stays held in the child, which then hangs at its next event or
//! at its exit (docs/TRACKER.md, "Fork and locks"). Each program forks hundreds of times while
//! its threads allocate with every function, map memory, are born and end, are named and
//! renamed, make new Python code and load and unload a library; under `--native`,
//! `--aggregate`, `--sample-bytes`, with and without `--follow-fork`, and in-process. Every run
//! has a watchdog: a hang fails its test.

use memtrace_e2e::python::{python, write};
use memtrace_e2e::watchdog::{output_within, LIMIT};
use memtrace_e2e::{compile, link_tracker_module, memtrace, num, scratch, stats, workspace};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Forks of the C program per run.
const NATIVE_FORKS: usize = 150;
/// Forks of the Python program per run (a Python child costs more).
const PYTHON_FORKS: usize = 80;

/// Two copies of tests/programs/native_lib.c (`lib_alloc(n)` allocates n bytes in
/// `lib_inner`): one the program keeps loaded (children call it: a child must not dlopen, glibc's
/// loader may be caught mid-change by the fork), one a thread loads and unloads.
fn libraries(dir: &Path) -> (PathBuf, PathBuf) {
    let kept = dir.join("libkept.so");
    let status = Command::new("gcc")
        .args(["-O0", "-g", "-fPIC", "-shared", "-o"])
        .arg(&kept)
        .arg(workspace().join("tests/programs/native_lib.c"))
        .status()
        .expect("gcc runs");
    assert!(status.success(), "compiling the library failed");
    let loaded = dir.join("libloaded.so");
    std::fs::copy(&kept, &loaded).expect("copy the library");
    (kept, loaded)
}

fn utf8(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// The run ended on its own, every child with its status (the program counts them).
fn assert_every_child_ok(out: &Output, forks: usize) {
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("children ok: {forks}\n"),
        "{out:?}"
    );
}

/// Whether `s` has a site (top_by_size) of exactly `bytes` in `count` allocations. (Found by
/// size, not name: a child forked while a thread of the parent was inside the loader lists no
/// modules, see tracker/src/base/loader_lock.rs.)
fn has_site(s: &Value, bytes: i64, count: i64) -> bool {
    s["top_by_size"].as_array().is_some_and(|a| {
        a.iter()
            .any(|l| num(l, "bytes") == bytes && num(l, "count") == count)
    })
}

/// The parent's capture is complete and names every child (one record per fork); with
/// `follow`, every child's capture exists, is complete and reads, and `check_child` holds for
/// the first and the last child's own stats.
fn check_family(capture: &Path, forks: usize, follow: bool, check_child: impl Fn(&Value)) {
    let s = stats(capture);
    assert_eq!(s["complete"], true, "{}", utf8(capture));
    let root = num(&s, "pid");
    let procs = s["processes"].as_array().expect("a family");
    assert_eq!(procs.len(), forks + 1, "{}", s["processes"]);
    assert_eq!(num(&procs[0], "pid"), root);
    for p in &procs[1..] {
        assert_eq!(num(p, "parent_pid"), root, "{p}");
        assert_eq!(p["tracked"], follow, "{p}");
        if follow {
            assert_eq!(p["complete"], true, "{p}");
        }
    }
    if follow {
        for p in [&procs[1], &procs[forks]] {
            let child = PathBuf::from(format!("{}.{}", utf8(capture), num(p, "pid")));
            let c = stats(&child);
            assert_eq!(c["complete"], true, "{}", utf8(&child));
            assert_eq!(num(&c, "pid"), num(p, "pid"));
            check_child(&c);
        }
    } else {
        let dir = capture.parent().expect("a directory");
        let name = capture.file_name().expect("a file name").to_string_lossy();
        let children = std::fs::read_dir(dir)
            .expect("the directory reads")
            .flatten()
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(&format!("{name}."))
            })
            .count();
        assert_eq!(children, 0, "captures of children that were not followed");
    }
}

/// The C program's child allocates 1234 and 777 bytes at one site in `leaf` and 4321 in the
/// library.
fn native_child(c: &Value) {
    assert!(has_site(c, 1234 + 777, 2), "{c}");
    assert!(has_site(c, 4321, 1), "{c}");
}

fn native_runs(name: &str, runs: &[&[&str]]) {
    let dir = scratch(name);
    let prog = compile("forkstorm", &dir);
    let (kept, loaded) = libraries(&dir);
    let forks = NATIVE_FORKS.to_string();
    for (i, options) in runs.iter().enumerate() {
        let cap = dir.join(format!("run{i}.bin"));
        let mut args = vec!["run", "-q", "-f", "-o", utf8(&cap)];
        args.extend_from_slice(options);
        args.extend(["--", utf8(&prog), &forks, utf8(&kept), utf8(&loaded)]);
        let out = memtrace(&args, &dir);
        assert_every_child_ok(&out, NATIVE_FORKS);
        let follow = options.contains(&"--follow-fork");
        let exact = !options.iter().any(|o| o.starts_with("--sample-bytes"));
        check_family(&cap, NATIVE_FORKS, follow, |c| {
            if exact {
                native_child(c)
            }
        });
    }
}

#[test]
fn native_forks_while_threads_allocate_map_name_and_load_native_stacks() {
    native_runs(
        "forks-native",
        &[&["--native"], &["--native", "--follow-fork"]],
    );
}

#[test]
fn native_forks_while_threads_allocate_map_name_and_load_sampled() {
    native_runs(
        "forks-native-sampled",
        &[&["--sample-bytes", "4096", "--follow-fork"]],
    );
}

/// With `--aggregate`, a thread in `dlclose` frees into the aggregate state while it holds
/// glibc's loader lock: the fork must not hold that state while it waits for the phdr lock
/// (whose holder waits for the loader lock). This hung about 1 run in 5 before the fork
/// handlers took the phdr lock first.
#[test]
fn native_forks_while_threads_allocate_map_name_and_load_aggregated() {
    native_runs("forks-native-agg", &[&["--aggregate", "--follow-fork"]]);
}

/// Threads that rename themselves, make new code (the code-name cache is written), compress
/// without the GIL, load and unload a library with ctypes, and start short-lived named threads,
/// while the main thread forks. Each child makes new code, runs a named thread and calls the
/// library the parent keeps loaded, then exits with its own status. `inprocess` (argv[4]): `no`, or the Tracker's
/// options `follow,native,aggregate` as 0/1 (the tracker is started in-process).
const STORM: &str = r#"import _ctypes, ctypes, os, sys, threading, zlib
forks, kept_path, loaded_path, inprocess = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
tracker = None
if inprocess != "no":
    import _memtrace_tracker as tracker
    follow, native, aggregate = (w == "1" for w in inprocess.split(","))
    tracker.start(sys.argv[5], native, True, follow, "", False, aggregate)
libc = ctypes.CDLL(None)
libc.free.argtypes = [ctypes.c_void_p]
kept_lib = ctypes.CDLL(kept_path)
kept_lib.lib_alloc.restype = ctypes.c_void_p
stop = threading.Event()

def load_and_call(n):
    lib = ctypes.CDLL(loaded_path)
    lib.lib_alloc.restype = ctypes.c_void_p
    libc.free(lib.lib_alloc(n))
    _ctypes.dlclose(lib._handle)

def renamer():
    me = threading.current_thread()
    i = 0
    while not stop.is_set():
        me.name = f"renamed-{i % 1000}"
        i += 1
        kept = [bytes(40 + i % 7) for _ in range(10)]

def coder():
    i = 0
    while not stop.is_set():
        ns = {}
        exec(compile(f"def made_{i}(n):\n    return [bytearray(n) for _ in range(3)]\n", f"<made {i}>", "exec"), ns)
        ns[f"made_{i}"](64 + i % 500)
        i += 1

def squeezer():
    data = bytes(range(256)) * 64
    while not stop.is_set():
        zlib.compress(data, 1)

def loader():
    while not stop.is_set():
        load_and_call(128)

def spawner():
    n = 0
    while not stop.is_set():
        t = threading.Thread(target=bytearray, args=(1000,), name=f"short-{n}")
        t.start()
        t.join()
        n += 1

def child(i):
    ns = {}
    exec(compile(f"def child_{i}():\n    return bytearray(54321)\n", f"<child {i}>", "exec"), ns)
    kept = ns[f"child_{i}"]()
    t = threading.Thread(target=bytearray, args=(7777,), name=f"child-thread-{i}")
    t.start()
    t.join()
    t.name = "renamed-child-thread"
    libc.free(kept_lib.lib_alloc(4321))
    if tracker is not None:
        tracker.stop()

workers = [threading.Thread(target=f, name=f.__name__) for f in (renamer, coder, squeezer, loader, spawner)]
for w in workers:
    w.start()
ok = 0
for i in range(forks):
    status = 1 + i % 100
    pid = os.fork()
    if pid == 0:
        try:
            child(i)
        except BaseException:
            os._exit(250)
        os._exit(status)
    _, st = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(st) == status:
        ok += 1
    else:
        print(f"child {pid}: wait status {st:#x}, expected exit {status}", file=sys.stderr)
stop.set()
for w in workers:
    w.join()
if tracker is not None:
    tracker.stop()
print(f"children ok: {ok}")
"#;

/// The Python child's `bytearray(54321)` at its made function (the object and its buffer: two
/// allocations, 54378 bytes), at least its thread's 7777 and the library's 4321 bytes in all.
/// Under --native the innermost frame is CPython's, not the made function.
fn python_child(c: &Value, native: bool) {
    assert!(num(c, "total_bytes") >= 54321 + 7777 + 4321, "{c}");
    if native {
        return;
    }
    let made = c["top_by_size"]
        .as_array()
        .expect("sites")
        .iter()
        .find(|l| {
            l["function"]
                .as_str()
                .is_some_and(|f| f.starts_with("child_"))
        })
        .unwrap_or_else(|| panic!("no child_ function: {c}"));
    assert_eq!(num(made, "line"), 2, "{made}");
    assert_eq!(num(made, "bytes"), 54378, "{made}");
    assert_eq!(num(made, "count"), 2, "{made}");
}

fn python_runs(name: &str, runs: &[&[&str]]) {
    let dir = scratch(name);
    let (kept, loaded) = libraries(&dir);
    let script = write(&dir, "storm.py", STORM);
    let forks = PYTHON_FORKS.to_string();
    for (i, options) in runs.iter().enumerate() {
        let cap = dir.join(format!("run{i}.bin"));
        let mut args = vec!["run", "-q", "-f", "-o", utf8(&cap)];
        args.extend_from_slice(options);
        args.extend(["--python", utf8(python()), utf8(&script)]);
        args.extend([forks.as_str(), utf8(&kept), utf8(&loaded), "no"]);
        let out = memtrace(&args, &dir);
        assert_every_child_ok(&out, PYTHON_FORKS);
        let follow = options.contains(&"--follow-fork");
        let exact = !options.iter().any(|o| o.starts_with("--sample-bytes"));
        let native = options.contains(&"--native");
        check_family(&cap, PYTHON_FORKS, follow, |c| {
            if exact {
                python_child(c, native)
            }
        });
    }
}

#[test]
fn python_forks_while_threads_rename_compile_and_load() {
    python_runs(
        "forks-python",
        &[&["--follow-fork"], &["--sample-bytes", "1000"]],
    );
}

#[test]
fn python_forks_while_threads_rename_compile_and_load_native_and_aggregated() {
    python_runs(
        "forks-python-native",
        &[
            &["--follow-fork", "--native"],
            &["--follow-fork", "--aggregate"],
        ],
    );
}

#[test]
fn python_forks_under_the_in_process_tracker() {
    let dir = scratch("forks-inprocess");
    link_tracker_module(&dir);
    let (kept, loaded) = libraries(&dir);
    let script = write(&dir, "storm.py", STORM);
    let forks = PYTHON_FORKS.to_string();
    // follow, native, aggregate
    for (i, options) in ["1,1,0", "0,0,1", "1,0,1"].iter().enumerate() {
        let cap = dir.join(format!("run{i}.bin"));
        let mut cmd = Command::new(python());
        cmd.arg(&script)
            .args([
                forks.as_str(),
                utf8(&kept),
                utf8(&loaded),
                options,
                utf8(&cap),
            ])
            .current_dir(&dir)
            .stdin(Stdio::null())
            .env_remove("LD_PRELOAD");
        for (k, _) in std::env::vars() {
            if k.starts_with("MEMTRACE") {
                cmd.env_remove(k);
            }
        }
        let out = output_within(&mut cmd, LIMIT);
        assert_every_child_ok(&out, PYTHON_FORKS);
        let follow = options.starts_with('1');
        // In-process, children are found by their captures (the fork hook is not patched in).
        if follow {
            let native = options.as_bytes()[2] == b'1';
            check_family(&cap, PYTHON_FORKS, true, |c| python_child(c, native));
        } else {
            let s = stats(&cap);
            assert_eq!(s["complete"], true);
            assert!(s["processes"].is_null(), "{}", s["processes"]);
        }
    }
}
