//! `memtrace run script.py | -m module | -c code`: the program sees what the same words given to
//! python show it (compared with an untracked run of the same interpreter), the interpreter is
//! chosen as documented, memtrace's own errors are one line, and the capture is readable.

use memtrace_e2e::python::*;
use memtrace_e2e::watchdog::Watched;
use memtrace_e2e::{memtrace_bin, num, scratch, stats};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Prints what a program can see of how it was started, as one JSON line; `memtrace_python` is
/// the tracker's variable in the environment the process was started with.
const PROBE: &str = r#"
import json, os, sys
start_env = open("/proc/self/environ", "rb").read().split(b"\0")
marker = [e.decode() for e in start_env if e.startswith(b"MEMTRACE_PYTHON=")]
print(json.dumps({
    "argv": sys.argv,
    "name": __name__,
    "path0": sys.path[0],
    "executable": sys.executable,
    "prefix": sys.prefix,
    "version": list(sys.version_info[:2]),
    "memtrace_python": marker,
}))
"#;

/// Arguments that look like memtrace's options, and awkward ones: all the program's.
const ARGS: [&str; 8] = ["-q", "-o", "x.bin", "--python", "nope", "--", "a b", "ü"];

fn probe(out: &Output) -> Value {
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().expect("a line of output");
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// The untracked and the tracked probe outputs agree but for the tracker's variable, which only
/// the tracked run was started with.
fn assert_same_view(plain: &Output, traced: &Output) -> Value {
    let mut plain = probe(plain);
    let mut traced = probe(traced);
    assert_eq!(plain["memtrace_python"], serde_json::json!([]));
    assert_eq!(
        traced["memtrace_python"],
        serde_json::json!(["MEMTRACE_PYTHON=1"])
    );
    plain["memtrace_python"] = Value::Null;
    traced["memtrace_python"] = Value::Null;
    assert_eq!(traced, plain);
    traced
}

fn words<'a>(first: &[&'a str]) -> Vec<&'a str> {
    first.iter().chain(ARGS.iter()).copied().collect()
}

fn assert_readable_capture(capture: &Path) {
    let s = stats(capture);
    assert!(num(&s, "total_allocations") > 0, "{s}");
    assert_eq!(s["complete"].as_bool(), Some(true), "{s}");
}

#[test]
fn a_script_sees_what_python_shows_it() {
    let dir = scratch("py-script");
    write(&dir, "sub/probe.py", PROBE);
    let py = python();
    let w = words(&["sub/probe.py"]);
    let plain = untracked(py, &w, &dir, b"");
    let cap = dir.join("script.bin");
    let traced = tracked(py, &cap, &w, &dir, b"");
    let view = assert_same_view(&plain, &traced);
    assert_eq!(view["name"], "__main__");
    assert_eq!(view["argv"][0], "sub/probe.py");
    assert_eq!(view["argv"][1], "-q");
    assert_eq!(view["path0"], dir.join("sub").to_str().expect("utf-8"));
    assert_readable_capture(&cap);
}

#[test]
fn a_module_sees_what_python_shows_it() {
    let dir = scratch("py-module");
    write(&dir, "probe_mod.py", PROBE);
    let py = python();
    let w = words(&["-m", "probe_mod"]);
    let plain = untracked(py, &w, &dir, b"");
    let cap = dir.join("module.bin");
    let traced = tracked(py, &cap, &w, &dir, b"");
    let view = assert_same_view(&plain, &traced);
    assert_eq!(view["name"], "__main__");
    assert!(view["argv"][0]
        .as_str()
        .is_some_and(|a| a.ends_with("probe_mod.py")));
    assert_readable_capture(&cap);
}

#[test]
fn code_sees_what_python_shows_it() {
    let dir = scratch("py-code");
    let py = python();
    let w = words(&["-c", PROBE]);
    let plain = untracked(py, &w, &dir, b"");
    let cap = dir.join("code.bin");
    let traced = tracked(py, &cap, &w, &dir, b"");
    let view = assert_same_view(&plain, &traced);
    assert_eq!(view["name"], "__main__");
    assert_eq!(view["argv"][0], "-c");
    assert_eq!(view["path0"], "");
    assert_readable_capture(&cap);
}

/// A directory with a `__main__.py`, and a zip application (`python -m zipapp`), which
/// `python PATH` runs (and memray's `run` too): they were looked for on PATH ("command not
/// found"). The program sees what python shows it, and its allocations are at their line.
#[test]
fn a_directory_or_zip_application_runs_as_python_runs_it() {
    let dir = scratch("py-zipapp");
    let main = format!("{PROBE}keep = [bytearray(100000) for _ in range(7)]\n");
    let line = main.lines().count() as u64;
    write(&dir, "app/__main__.py", &main);
    let py = python();
    let zipped = Command::new(py)
        .args(["-m", "zipapp", "app", "-o", "app.pyz"])
        .current_dir(&dir)
        .output_watched();
    assert!(zipped.status.success(), "{zipped:?}");
    // A zip application by another name: `python3 app.zip` runs it too.
    std::fs::copy(dir.join("app.pyz"), dir.join("app.zip")).expect("copy");
    for entry in ["app", "app.pyz", "app.zip"] {
        let w = words(&[entry]);
        let plain = untracked(py, &w, &dir, b"");
        let cap = dir.join(format!("{entry}.bin"));
        let traced = tracked(py, &cap, &w, &dir, b"");
        let view = assert_same_view(&plain, &traced);
        assert_eq!(view["argv"][0], entry);
        assert_eq!(view["name"], "__main__");
        let lines = memtrace_e2e::report(&["lines", "--json", "--leaks"], &cap);
        let file = lines["files"]
            .as_array()
            .and_then(|f| {
                f.iter().find(|f| {
                    f["file"]
                        .as_str()
                        .is_some_and(|n| n.ends_with(&format!("{entry}/__main__.py")))
                })
            })
            .unwrap_or_else(|| panic!("{entry}: no __main__.py in {lines}"));
        let kept = file["lines"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|l| l["line"] == line)
            .unwrap_or_else(|| panic!("{entry}: no line {line} in {file}"));
        // Seven buffers of 100,001 bytes, their objects and the list.
        let bytes = kept["exit_bytes"].as_u64().expect("bytes");
        assert!((700_007..702_000).contains(&bytes), "{entry}: {kept}");
        // The source, read from the archive too.
        assert_eq!(
            kept["text"], "keep = [bytearray(100000) for _ in range(7)]",
            "{entry}: {kept}"
        );
    }
}

/// The default capture names: memtrace-<script stem | module | c>.<pid>.bin, named on stderr.
#[test]
fn default_capture_names_follow_the_script_module_or_code() {
    let dir = scratch("py-names");
    write(&dir, "sub/tool.py", "print('tool')\n");
    write(&dir, "a_mod.py", "print('module')\n");
    let py = python().to_str().expect("utf-8 path");
    for (w, prefix, said) in [
        (&["sub/tool.py"][..], "memtrace-tool.", "tool\n"),
        (&["-m", "a_mod"][..], "memtrace-a_mod.", "module\n"),
        (&["-c", "print('code')"][..], "memtrace-c.", "code\n"),
    ] {
        let mut cmd = Command::new(memtrace_bin());
        cmd.args(["run", "--python", py]).args(w);
        let out = output(cmd, &dir, b"");
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), said);
        let cap = default_capture(&dir, prefix);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let name = cap.file_name().expect("name").to_string_lossy();
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(&*name), "{stderr}");
        assert_readable_capture(&cap);
    }
}

#[test]
fn stdout_is_byte_identical_and_stdin_passes_through() {
    let dir = scratch("py-stdio");
    write(
        &dir,
        "echo.py",
        "import sys\n\
         first = sys.stdin.buffer.readline()\n\
         rest = sys.stdin.buffer.read()\n\
         sys.stdout.buffer.write(bytes(range(256)) + first.upper() + rest[::-1])\n\
         print('\\nlines:', rest.count(b'\\n'), 'é')\n",
    );
    let input: Vec<u8> = (0..20_000u32)
        .flat_map(|i| format!("line {i} {}\n", "x".repeat((i % 97) as usize)).into_bytes())
        .chain([0xff, 0xfe, 0x00, b'\n'])
        .collect();
    let py = python();
    let plain = untracked(py, &["echo.py"], &dir, &input);
    let traced = tracked(py, &dir.join("io.bin"), &["echo.py"], &dir, &input);
    assert_eq!(plain.status.code(), Some(0), "{plain:?}");
    assert_eq!(traced.status.code(), Some(0));
    assert!(traced.stdout.len() > input.len());
    assert!(traced.stdout == plain.stdout, "stdout differs");
    assert_eq!(traced.stderr, plain.stderr);
}

/// Exit statuses, SystemExit, an uncaught exception, a missing module, death by a signal: the
/// same status and the same stderr as the untracked run.
#[test]
fn exit_statuses_and_tracebacks_pass_through() {
    let dir = scratch("py-exit");
    write(&dir, "exit3.py", "import sys\nsys.exit(3)\n");
    write(
        &dir,
        "exitmsg.py",
        "import sys\nsys.exit('it went wrong')\n",
    );
    write(
        &dir,
        "raise.py",
        "def f():\n    raise ValueError('boom')\n\ndef g():\n    f()\n\ng()\n",
    );
    write(
        &dir,
        "term.py",
        "import os, signal\nos.kill(os.getpid(), signal.SIGTERM)\n",
    );
    let py = python();
    let cases: [(&[&str], i32, &str); 6] = [
        (&["exit3.py"], 3, ""),
        (&["exitmsg.py"], 1, "it went wrong\n"),
        (&["raise.py"], 1, "ValueError: boom\n"),
        (&["-c", "raise SystemExit(7)"], 7, ""),
        (
            &["-m", "no_such_module_here"],
            1,
            "No module named no_such_module_here",
        ),
        (&["term.py"], 128 + 15, ""),
    ];
    for (w, code, said) in cases {
        let plain = untracked(py, w, &dir, b"");
        let traced = tracked(py, &dir.join("exit.bin"), w, &dir, b"");
        let expected = plain
            .status
            .code()
            .or_else(|| plain.status.signal().map(|s| 128 + s));
        assert_eq!(expected, Some(code), "{w:?}: {plain:?}");
        // The same wait status: a program that died of a signal makes memtrace die of it.
        assert_eq!(
            traced.status.into_raw(),
            plain.status.into_raw(),
            "{w:?}: {traced:?}"
        );
        assert_eq!(
            String::from_utf8_lossy(&traced.stderr),
            String::from_utf8_lossy(&plain.stderr),
            "{w:?}"
        );
        let stderr = String::from_utf8_lossy(&traced.stderr);
        assert!(stderr.contains(said), "{w:?}: {stderr}");
        if w[0] == "raise.py" {
            assert!(
                stderr.starts_with("Traceback (most recent call last):"),
                "{stderr}"
            );
            assert!(stderr.contains("line 7, in <module>"), "{stderr}");
        }
        assert!(traced.stdout.is_empty());
    }
}

/// One line on stderr starting with "memtrace: " and containing `needle`, exit status 1.
fn assert_one_line_error(out: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(out.stdout.is_empty(), "{out:?}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("memtrace: "), "{err}");
    assert!(err.contains(needle), "{err}");
    assert!(
        !err.contains("panicked") && !err.contains("Traceback"),
        "{err}"
    );
}

fn memtrace_in(dir: &Path, args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut cmd = Command::new(memtrace_bin());
    cmd.args(args).env_remove("VIRTUAL_ENV");
    for (k, v) in env {
        cmd.env(k, v);
    }
    output(cmd, dir, b"")
}

fn no_capture_in(dir: &Path) {
    let captures: Vec<_> = std::fs::read_dir(dir)
        .expect("dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".bin"))
        .map(|e| e.path())
        .collect();
    assert!(captures.is_empty(), "{captures:?}");
}

#[test]
fn a_missing_script_is_one_clear_line() {
    let dir = scratch("py-noscript");
    let out = memtrace_in(&dir, &["run", "nope.py", "arg"], &[]);
    assert_one_line_error(&out, "memtrace: no such script: nope.py");
    let out = memtrace_in(&dir, &["run", "-m"], &[]);
    assert_one_line_error(&out, "-m needs a module name");
    let out = memtrace_in(&dir, &["run", "-q", "-c"], &[]);
    assert_one_line_error(&out, "-c needs the code");
    no_capture_in(&dir);
}

#[test]
fn a_missing_or_foreign_interpreter_is_one_clear_line() {
    let dir = scratch("py-nointerp");
    write(&dir, "hello.py", "print('hello')\n");
    let out = memtrace_in(
        &dir,
        &["run", "--python", "/no/such/python3", "hello.py"],
        &[],
    );
    assert_one_line_error(&out, "no such Python interpreter: /no/such/python3");
    let out = memtrace_in(&dir, &["run", "--python", "/bin/ls", "hello.py"], &[]);
    assert_one_line_error(&out, "/bin/ls is not a Python interpreter");
    let fake = write(
        &dir,
        "fake-python",
        "#!/bin/sh\necho 'not me' >&2\nexit 1\n",
    );
    make_executable(&fake);
    let out = memtrace_in(&dir, &["run", "--python", "./fake-python", "hello.py"], &[]);
    assert_one_line_error(
        &out,
        "./fake-python is not a Python interpreter (it says: not me)",
    );
    // No python3 on PATH, no virtual environment.
    let empty = dir.join("empty-bin");
    std::fs::create_dir_all(&empty).expect("mkdir");
    let out = memtrace_in(&dir, &["run", "hello.py"], &[("PATH", &empty)]);
    assert_one_line_error(&out, "python3 is not on PATH");
    // --python belongs to Python runs.
    let py = python().to_str().expect("utf-8 path");
    let out = memtrace_in(&dir, &["run", "--python", py, "/bin/true"], &[]);
    assert_one_line_error(&out, "--python is for Python runs");
    no_capture_in(&dir);
}

fn make_executable(path: &Path) {
    memtrace_e2e::make_executable(path);
}

/// A directory holding `python3`, a link to the real interpreter: an ELF python3 on PATH.
fn python3_dir(dir: &Path) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).expect("mkdir");
    std::os::unix::fs::symlink(python(), bin.join("python3")).expect("symlink");
    bin
}

#[test]
fn python3_on_path_is_the_default() {
    let dir = scratch("py-path");
    write(&dir, "probe.py", PROBE);
    let bin = python3_dir(&dir);
    let plain = {
        let mut cmd = Command::new("python3");
        cmd.arg("probe.py").env("PATH", &bin);
        output(cmd, &dir, b"")
    };
    let traced = memtrace_in(
        &dir,
        &["run", "-q", "-o", "p.bin", "probe.py"],
        &[("PATH", &bin)],
    );
    let view = assert_same_view(&plain, &traced);
    assert_eq!(
        view["executable"],
        bin.join("python3").to_str().expect("utf-8")
    );
    assert_readable_capture(&dir.join("p.bin"));
}

/// A python3 that is a script (pyenv's shim is one) is asked once for the real interpreter,
/// which is the one traced: the script's 50 MB bytearray is in the capture.
#[test]
fn a_shim_is_resolved_to_the_real_interpreter() {
    let dir = scratch("py-shim");
    write(&dir, "big.py", "b = bytearray(50_000_000)\nprint(len(b))\n");
    let shim = write(
        &dir,
        "shims/python3",
        &format!(
            "#!/bin/sh\necho run >> \"$SHIM_LOG\"\nexec '{}' \"$@\"\n",
            python().display()
        ),
    );
    make_executable(&shim);
    let log = dir.join("shim.log");
    let mut path = dir.join("shims").into_os_string();
    path.push(":/usr/bin:/bin");
    let mut cmd = Command::new(memtrace_bin());
    cmd.args(["run", "-q", "-o", "shim.bin", "big.py"])
        .env_remove("VIRTUAL_ENV")
        .env("PATH", path)
        .env("SHIM_LOG", &log);
    let out = output(cmd, &dir, b"");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(out.stdout, b"50000000\n");
    let runs = std::fs::read_to_string(&log).expect("the shim ran");
    assert_eq!(runs.lines().count(), 1, "the shim runs once, to be asked");
    let s = stats(&dir.join("shim.bin"));
    assert!(num(&s, "peak_bytes") >= 50_000_000, "{s}");
}

#[test]
fn python_option_chooses_the_interpreter() {
    let dir = scratch("py-option");
    write(&dir, "probe.py", PROBE);
    for (minor, py) in claimed_pythons() {
        let plain = untracked(&py, &["probe.py"], &dir, b"");
        let cap = dir.join(format!("v{minor}.bin"));
        let traced = tracked(&py, &cap, &["probe.py"], &dir, b"");
        let view = assert_same_view(&plain, &traced);
        assert_eq!(view["version"], serde_json::json!([3, minor]));
        assert_readable_capture(&cap);
    }
}

#[test]
fn the_active_virtual_environment_is_used() {
    let dir = scratch("py-venv");
    write(&dir, "probe.py", PROBE);
    let venv = dir.join("venv");
    let made = Command::new(python())
        .args(["-m", "venv", "--without-pip"])
        .arg(&venv)
        .output_watched();
    assert!(made.status.success(), "{made:?}");
    // python3 on PATH is not the environment's: VIRTUAL_ENV alone decides.
    let bin = python3_dir(&dir);
    let plain = untracked(&venv.join("bin/python"), &["probe.py"], &dir, b"");
    let traced = memtrace_in(
        &dir,
        &["run", "-q", "-o", "venv.bin", "probe.py"],
        &[("PATH", &bin), ("VIRTUAL_ENV", &venv)],
    );
    let view = assert_same_view(&plain, &traced);
    assert_eq!(view["prefix"], venv.to_str().expect("utf-8"));
    assert_readable_capture(&dir.join("venv.bin"));
    // A VIRTUAL_ENV without an interpreter: python3 on PATH.
    let traced = memtrace_in(
        &dir,
        &["run", "-q", "-f", "-o", "venv.bin", "probe.py"],
        &[("PATH", &bin), ("VIRTUAL_ENV", &dir.join("gone"))],
    );
    assert_eq!(
        probe(&traced)["executable"],
        bin.join("python3").to_str().expect("utf-8")
    );
}

/// `memtrace run python3 x.py` names an interpreter: a native run, as before.
#[test]
fn an_explicit_interpreter_is_a_native_run() {
    let dir = scratch("py-native");
    write(&dir, "probe.py", PROBE);
    let py = python().to_str().expect("utf-8 path");
    let out = memtrace_in(&dir, &["run", py, "probe.py"], &[]);
    let view = probe(&out);
    assert_eq!(view["memtrace_python"], serde_json::json!([]));
    let exe = python().file_name().expect("name").to_string_lossy();
    assert_readable_capture(&default_capture(&dir, &format!("memtrace-{exe}.")));
    // It says so, and how to get the script's Python stacks (a heaptrack user types this and
    // got a tree of `python3.11+0x62d099` frames without a word).
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ran as a native program"), "{err}");
    assert!(
        err.contains(&format!("memtrace run --python {py} probe.py")),
        "{err}"
    );
    // A Python run says nothing of the kind.
    let out = memtrace_in(&dir, &["run", "-f", "--python", py, "probe.py"], &[]);
    assert!(out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("native program"), "{err}");
    assert!(err.contains("memtrace tree "), "{err}");
}

/// Ctrl-C: the terminal signals the whole process group; memtrace stays, the script gets its
/// KeyboardInterrupt, and memtrace ends as the untracked python does.
/// Waits until a Python process of process group `group` (or a child of its leader) sleeps (its system call
/// clock_nanosleep, 230 on x86-64, or nanosleep, 35).
fn wait_for_python_asleep(group: i32) {
    let start = std::time::Instant::now();
    loop {
        let asleep = std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| {
                let dir = e.path();
                let stat = std::fs::read_to_string(dir.join("stat")).unwrap_or_default();
                let Some((head, rest)) = stat.rsplit_once(')') else {
                    return false;
                };
                // In the group, or memtrace's child (in a group of its own).
                let fields: Vec<&str> = rest.split_whitespace().collect();
                let group = group.to_string();
                let in_group = fields.get(1) == Some(&group.as_str())
                    || fields.get(2) == Some(&group.as_str());
                let python = head.contains("(python");
                let call = std::fs::read_to_string(dir.join("syscall")).unwrap_or_default();
                in_group && python && (call.starts_with("230 ") || call.starts_with("35 "))
            });
        if asleep {
            return;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(60),
            "the script never slept"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn ctrl_c_is_a_keyboard_interrupt_in_the_script() {
    let dir = scratch("py-sigint");
    write(
        &dir,
        "sleepy.py",
        "import time\nprint('ready', flush=True)\ntime.sleep(60)\n",
    );
    let py = python();
    let interrupt = |mut cmd: Command| -> Output {
        cmd.current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = cmd.spawn().expect("spawn");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("read");
        assert_eq!(line, "ready\n");
        let group = i32::try_from(child.id()).expect("pid");
        // Once the script is in its sleep (a SIGINT before it put the traceback elsewhere).
        wait_for_python_asleep(group);
        // SAFETY: killpg on the group of the child just started in its own group.
        assert_eq!(unsafe { libc::killpg(group, libc::SIGINT) }, 0);
        child.wait_with_output().expect("wait")
    };
    let mut plain = Command::new(py);
    plain.arg("sleepy.py");
    let plain = interrupt(plain);
    let cap = dir.join("int.bin");
    let mut traced = Command::new(memtrace_bin());
    traced
        .args(["run", "-q", "-o"])
        .arg(&cap)
        .arg("--python")
        .arg(py)
        .arg("sleepy.py");
    let traced = interrupt(traced);
    let expected = plain
        .status
        .code()
        .or_else(|| plain.status.signal().map(|s| 128 + s));
    assert!(
        expected == Some(130) || expected == Some(1),
        "untracked: {plain:?}"
    );
    assert_eq!(
        traced.status.into_raw(),
        plain.status.into_raw(),
        "{traced:?}"
    );
    let stderr = String::from_utf8_lossy(&traced.stderr);
    assert!(stderr.contains("Traceback"), "{stderr}");
    assert!(stderr.trim_end().ends_with("KeyboardInterrupt"), "{stderr}");
    assert_eq!(stderr, String::from_utf8_lossy(&plain.stderr));
    // Python leaves through a SIGINT it sends itself, past the C exit handlers: the tracker
    // finishes the capture just before.
    let s = stats(&cap);
    assert!(num(&s, "total_allocations") > 0, "{s}");
    assert_eq!(s["complete"].as_bool(), Some(true), "{s}");
}

/// Records the files of every Python function called (sys.settrace) while the script imports
/// modules and `threading`, and starts a named thread that allocates.
const TRACED: &str = r#"import sys
seen = set()
def tracer(frame, event, arg):
    if event == "call":
        seen.add(frame.f_code.co_filename)
    return None
sys.settrace(tracer)
import json, decimal
import threading
threading.settrace(tracer)
def work():
    global kept
    kept = [bytearray(1000) for _ in range(100)]
t = threading.Thread(target=work, name="named-worker")
t.start()
t.join()
sys.settrace(None)
print(sorted(f for f in seen if f != __file__ and ("memtrace" in f or "sitecustomize" in f)))
"#;

#[test]
fn a_tracer_of_the_program_sees_no_code_of_memtrace() {
    // The start-up hook's finder (first in sys.meta_path until threading is imported) and its
    // wrapper of Thread._set_native_id were Python functions of memtrace's temporary
    // sitecustomize.py: settrace, setprofile, sys.monitoring, pdb and coverage.py (whose
    // sysmon report then failed on the file, gone after the run) saw them. Both are C now.
    let dir = scratch("py-tracer-sees-nothing");
    let mut pythons = claimed_pythons();
    pythons.push((0, PathBuf::from("/usr/bin/python3")));
    for (minor, py) in pythons {
        if !py.exists() {
            continue;
        }
        let (cap, out) = track_script(&py, &dir, &format!("traced{minor}.py"), TRACED);
        assert!(out.status.success(), "3.{minor}: {out:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "[]\n",
            "3.{minor}: {out:?}"
        );
        let s = stats(&cap);
        let threads = s["threads"].as_array().expect("threads");
        assert!(
            threads
                .iter()
                .any(|t| t["name"].as_str() == Some("named-worker") && num(t, "bytes") >= 100_000),
            "3.{minor}: {}",
            s["threads"]
        );
    }
}

#[test]
fn a_removed_current_directory_with_a_relative_path_entry_changes_nothing() {
    // 3.10 keeps PYTHONPATH's relative entries: the start-up hook made each absolute with
    // os.getcwd(), which raised in a removed directory ("Error in sitecustomize" on the
    // program's stderr, and the hook's directory left on sys.path).
    let dir = scratch("py-cwd-removed");
    let script = write(&dir, "show_path.py", "import sys\nprint(sys.path[:3])\n");
    let gone = dir.join("gone");
    for (minor, py) in claimed_pythons() {
        let run = |tracked: bool| {
            std::fs::create_dir_all(&gone).expect("mkdir");
            let mut cmd = if tracked {
                let mut c = Command::new(memtrace_bin());
                c.args(["run", "-q", "-f", "-o"])
                    .arg(dir.join(format!("gone{minor}.bin")))
                    .arg("--python")
                    .arg(&py);
                c
            } else {
                Command::new(&py)
            };
            cmd.arg(&script).env("PYTHONPATH", "rel").current_dir(&gone);
            let gone = gone.clone();
            // SAFETY: only an async-signal-safe call between fork and exec.
            unsafe {
                cmd.pre_exec(move || {
                    let _ = std::fs::remove_dir(&gone);
                    Ok(())
                })
            };
            cmd.output_watched()
        };
        let (plain, traced) = (run(false), run(true));
        assert_eq!(
            plain.status.code(),
            traced.status.code(),
            "3.{minor}: {traced:?}"
        );
        assert_eq!(plain.stdout, traced.stdout, "3.{minor}: {traced:?}");
        // 3.11 and later refuse to start there, tracked or not (their fatal error's dump holds
        // addresses).
        if plain.status.success() {
            assert_eq!(plain.stderr, traced.stderr, "3.{minor}: {traced:?}");
        }
    }
}

#[test]
fn a_script_run_through_its_shebang_line_keeps_its_process_name() {
    // The kernel names a process started from `#!/path/to/python` after the script; memtrace
    // started the interpreter, named after itself: `pgrep -x` and `killall` lost the program.
    let dir = scratch("py-comm");
    let text = format!(
        "#!{}\nimport os\nprint(open('/proc/self/comm').read().strip(), 'MEMTRACE_COMM' in os.environ)\n",
        python().display()
    );
    let script = write(&dir, "a_long_worker_name.py", &text);
    memtrace_e2e::make_executable(&script);
    let plain = Command::new(&script).current_dir(&dir).output_watched();
    let traced = Command::new(memtrace_bin())
        .args([
            "run",
            "-q",
            "-f",
            "-o",
            "comm.bin",
            "./a_long_worker_name.py",
        ])
        .current_dir(&dir)
        .output_watched();
    assert!(traced.status.success(), "{traced:?}");
    assert_eq!(
        String::from_utf8_lossy(&plain.stdout),
        "a_long_worker_n False\n"
    );
    assert_eq!(plain.stdout, traced.stdout, "{traced:?}");
}

#[test]
fn a_program_read_from_standard_input_is_a_python_run() {
    // `python - ARGS < script.py` is an ordinary way to run a program: memtrace refused it
    // ("--python is for Python runs").
    let dir = scratch("py-stdin");
    let program = b"import sys\nkeep = bytearray(3_000_000)\nprint(sys.argv)\n";
    let plain = untracked(python(), &["-", "a", "b"], &dir, program);
    let cap = dir.join("stdin.bin");
    let traced = tracked(python(), &cap, &["-", "a", "b"], &dir, program);
    assert!(traced.status.success(), "{traced:?}");
    assert_eq!(plain.stdout, traced.stdout);
    assert_eq!(String::from_utf8_lossy(&traced.stdout), "['-', 'a', 'b']\n");
    let tree = memtrace_e2e::report(&["tree", "--json"], &cap);
    let at_line = tree["tree"]["children"]
        .as_array()
        .expect("children")
        .iter()
        .find(|c| c["location"].as_str() == Some("<module> at <stdin>:2"))
        .map(|c| num(c, "bytes"));
    assert!(at_line.is_some_and(|b| b >= 3_000_000), "{tree}");
}

#[test]
fn the_first_finder_takes_the_arguments_importlib_s_finders_take() {
    // Until threading is imported the tracker module is the first finder: its C find_spec took
    // no keyword arguments, and code walking sys.meta_path with `find_spec(name, path=None)`
    // failed.
    let dir = scratch("py-finder-keywords");
    // (An interpreter that imports threading at start, as a .pth can, has no such finder.)
    let script = "import sys, inspect\nfinder = sys.meta_path[0]\nif type(finder).__name__ != 'module':\n    print('True\\nTrue\\n(fullname, path=None, target=None)')\n    sys.exit()\nprint(finder.find_spec('json', path=None) is None or 'spec')\nprint(finder.find_spec(fullname='json', target=None) is None or 'spec')\nprint(inspect.signature(finder.find_spec))\n";
    for (minor, py) in claimed_pythons() {
        let (_, out) = track_script(&py, &dir, &format!("finder{minor}.py"), script);
        assert!(out.status.success(), "3.{minor}: {out:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "True\nTrue\n(fullname, path=None, target=None)\n",
            "3.{minor}"
        );
    }
}

#[test]
fn the_main_thread_of_a_python_run_is_main_thread() {
    // A Python run's main thread carried the process's name (python3), where an attach and the
    // Python Tracker name it MainThread, as Python does: `--thread MainThread`, the example of
    // `memtrace tree --help`, found nothing.
    let dir = scratch("py-main-thread");
    let (cap, out) = track_script(python(), &dir, "main.py", "keep = bytearray(1_000_000)\n");
    assert!(out.status.success(), "{out:?}");
    let s = stats(&cap);
    let names: Vec<&str> = s["threads"]
        .as_array()
        .expect("threads")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(names, ["MainThread"], "{s}");
    let tree = memtrace_e2e::report(&["tree", "--thread", "MainThread", "--json"], &cap);
    assert!(num(&tree["tree"], "bytes") >= 1_000_000, "{tree}");
}

/// A Python the tracker has no frame layout for (3.9 here) runs tracked without Python stacks,
/// and memtrace says so; the line named neither the process nor the version (a family may run
/// several interpreters).
#[test]
fn an_unsupported_python_is_named_with_its_process_and_version() {
    // 3.6 to 3.8 failed the tracker module's import and 2.7 never imports it: they were not
    // named at all (only 3.9 reached the layout check).
    let mut pythons: Vec<(String, PathBuf)> = [9, 8, 7, 6]
        .into_iter()
        .filter_map(|minor| pyenv_python(minor).map(|p| (format!("3.{minor}."), p)))
        .collect();
    pythons.extend(python2().map(|p| ("2.7.".to_string(), p)));
    for (version, py) in pythons {
        let dir = scratch(&format!("python-unsupported-{version}"));
        let out = Command::new(memtrace_bin())
            .args(["run", "-o", "old.bin", "--python"])
            .arg(&py)
            .args(["-c", "x = bytearray(1000); print('ok')"])
            .current_dir(&dir)
            .stdin(Stdio::null())
            .output_watched();
        assert_eq!(out.status.code(), Some(0), "{version}: {out:?}");
        assert_eq!(out.stdout, b"ok\n", "{version}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let said: Vec<&str> = stderr
            .lines()
            .filter(|l| l.contains("this Python version is not supported"))
            .collect();
        assert_eq!(said.len(), 1, "{version}: {stderr}");
        assert!(
            said[0].starts_with("memtrace: process ")
                && said[0].contains(&format!("(Python {version}")),
            "{version}: {}",
            said[0]
        );
    }
}

/// pyenv's Python 2.7, if installed.
fn python2() -> Option<PathBuf> {
    let root = Command::new("pyenv").arg("root").output().ok()?;
    let root = PathBuf::from(String::from_utf8_lossy(&root.stdout).trim());
    let mut found: Vec<PathBuf> = std::fs::read_dir(root.join("versions"))
        .ok()?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("2.7."))
        .map(|e| e.path().join("bin/python2.7"))
        .filter(|p| p.is_file())
        .collect();
    found.sort();
    found.pop()
}
