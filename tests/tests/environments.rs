//! Every environment memtrace claims to support, end to end, with allocations of known size at
//! known lines: Debian's `/usr/bin/python3` (a non-PIE executable that exports `malloc` and
//! `free` as its own PLT stubs), each pyenv Python 3.10 to 3.13, a virtual environment, in-process
//! tracking under Debian's python, and a non-PIE C program that takes the allocation functions'
//! addresses. The program's output and exit status must be what they are untracked. Every run is
//! bounded: a hang (a hook that calls itself through a stub spins forever) fails its test
//! instead of stalling the suite.

use memtrace_e2e::python::{claimed_pythons, python, write};
use memtrace_e2e::watchdog::Watched;
use memtrace_e2e::{allocator, link_tracker_module, memtrace_bin, num, report, scratch};
use serde_json::Value;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Generous for a loaded two-core machine: these runs take well under a second.
const TIMEOUT: Duration = Duration::from_secs(120);

/// `b"\0" * n` is one allocation of the bytes object: a 32-byte header, n bytes and a NUL.
const BYTES_HEADER: i64 = 33;

/// Runs `cmd` in `dir` with an empty stdin, in a process group of its own; fails the test, after
/// killing the group, if it has not ended within TIMEOUT.
fn bounded(mut cmd: Command, dir: &Path) -> Output {
    let what = format!("{cmd:?}");
    cmd.current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("{what} fails to start: {e}"));
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            break status;
        }
        if start.elapsed() > TIMEOUT {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.wait();
            panic!("{what} hangs: still running after {TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Whether this run is CI's, where every claimed environment must be present.
fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// Debian's python3 (`apt-get install python3`), or None, with a note, when it is absent here.
/// CI must have it (.ci/run installs it): there its absence fails the test.
fn debian_python() -> Option<PathBuf> {
    let path = Path::new("/usr/bin/python3");
    if path.is_file() {
        return Some(path.to_path_buf());
    }
    assert!(
        !in_ci(),
        "CI must test Debian's /usr/bin/python3: .ci/run installs it (apt-get install python3)"
    );
    eprintln!("skipped: no /usr/bin/python3 here (Debian's `apt-get install python3`)");
    None
}

/// `stats --json` with room for every location of these small programs.
fn stats(capture: &Path) -> Value {
    report(&["stats", "--json", "-n", "20"], capture)
}

/// The (function, line) of each frame of a location's stack, innermost first.
fn frames(location: &Value) -> Vec<(String, i64)> {
    location["stack"]
        .as_array()
        .unwrap_or_else(|| panic!("no stack: {location}"))
        .iter()
        .map(|f| {
            let function = f["function"].as_str().unwrap_or("?").to_string();
            (function, f["line"].as_i64().unwrap_or(0))
        })
        .collect()
}

/// A location of `top_by_size` by function and line.
fn location<'a>(s: &'a Value, function: &str, line: i64) -> Option<&'a Value> {
    s["top_by_size"]
        .as_array()?
        .iter()
        .find(|l| l["function"].as_str() == Some(function) && l["line"].as_i64() == Some(line))
}

/// `f` (line 5) allocates 10 MB once, called from `g` (line 9), called at line 13; the script
/// prints and exits with status 5.
const SCRIPT: &str = "\
import sys


def f(n):
    return b\"\\0\" * n


def g():
    data = f(10_000_000)
    return len(data)


print(\"size\", g())
sys.exit(5)
";

/// `memtrace run -q -f -o CAPTURE [--python PYTHON] EXTRA... script`, bounded.
fn run_tracked(python: Option<&Path>, capture: &Path, extra: &[&str], script: &Path) -> Output {
    let mut cmd = Command::new(memtrace_bin());
    cmd.args(["run", "-q", "-f", "-o"]).arg(capture);
    if let Some(python) = python {
        cmd.arg("--python").arg(python);
    }
    cmd.args(extra).arg(script);
    bounded(cmd, script.parent().expect("the script's directory"))
}

/// Runs SCRIPT with `python` untracked and under `memtrace run` (with the Python allocators
/// traced, and without): the same output and status, and the 10 MB at its line, with its stack.
fn python_is_tracked(python: &Path, name: &str) {
    let dir = scratch(name);
    let script = write(&dir, "known.py", SCRIPT);
    let mut plain = Command::new(python);
    plain.arg(&script);
    let plain = bounded(plain, &dir);
    assert_eq!(
        plain.status.code(),
        Some(5),
        "{} untracked: {plain:?}",
        python.display()
    );
    assert_eq!(text(&plain.stdout), "size 10000000\n");
    for extra in [&[][..], &["--no-python-allocators"][..]] {
        let capture = dir.join("known.bin");
        let out = run_tracked(Some(python), &capture, extra, &script);
        let what = format!("{} {extra:?}", python.display());
        assert_eq!(out.status, plain.status, "{what}: {out:?}");
        assert_eq!(text(&out.stdout), text(&plain.stdout), "{what}");
        assert_eq!(text(&out.stderr), text(&plain.stderr), "{what}");
        the_script_allocation_is_at_its_line(&stats(&capture), &what);
        if extra.is_empty() {
            let s = stats(&capture);
            assert!(
                allocator(&s, "pymalloc_malloc") > 0,
                "{what}: {}",
                s["allocators"]
            );
        }
    }
}

fn the_script_allocation_is_at_its_line(s: &Value, what: &str) {
    assert_eq!(s["complete"], true, "{what}: {}", s["warnings"]);
    let top = &s["top_by_size"][0];
    assert_eq!(top["function"], "f", "{what}: {top}");
    assert_eq!(top["line"], 5, "{what}: {top}");
    assert!(
        top["file"]
            .as_str()
            .is_some_and(|f| f.ends_with("known.py")),
        "{what}: {top}"
    );
    assert_eq!(
        num(top, "bytes"),
        10_000_000 + BYTES_HEADER,
        "{what}: {top}"
    );
    assert_eq!(num(top, "count"), 1, "{what}: {top}");
    let expected = [("f", 5), ("g", 9), ("<module>", 13)].map(|(f, l)| (f.to_string(), l));
    assert_eq!(frames(top), expected, "{what}: {top}");
}

#[test]
fn debians_python_is_tracked() {
    if let Some(python) = debian_python() {
        python_is_tracked(&python, "env-debian");
    }
}

#[test]
fn every_pyenv_python_is_tracked() {
    for (minor, python) in claimed_pythons() {
        python_is_tracked(&python, &format!("env-pyenv-3{minor}"));
    }
}

/// bench/callgrind.sh's way: `valgrind --trace-children=yes memtrace run --python PY script`.
/// valgrind runs the interpreter inside its tool, a static program: only /proc/self/exe names
/// the interpreter there (/proc/thread-self/exe is the tool), and a tracker that read the latter
/// took the run for a native one (no Python frames, no pymalloc: the bench measured nothing).
#[test]
fn a_python_run_under_valgrind_is_tracked_as_python() {
    let Some(python) = debian_python() else {
        return;
    };
    let dir = scratch("env-valgrind-python");
    let script = write(&dir, "known.py", SCRIPT);
    let capture = dir.join("known.bin");
    let mut cmd = Command::new("valgrind");
    cmd.args(["-q", "--tool=none", "--trace-children=yes"])
        .arg(memtrace_bin())
        .args(["run", "-q", "-f", "-o"])
        .arg(&capture)
        .arg("--python")
        .arg(&python)
        .arg(&script);
    let out = bounded(cmd, &dir);
    assert_eq!(out.status.code(), Some(5), "{out:?}");
    assert_eq!(text(&out.stdout), "size 10000000\n");
    // valgrind's launcher is the first program, its tool (running the interpreter) the next:
    // one capture holds the script's allocation.
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("read the directory")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("known.bin"))
        .collect();
    names.sort();
    let holding: Vec<Value> = names
        .iter()
        .map(|n| stats(&dir.join(n)))
        .filter(|s| location(s, "f", 5).is_some())
        .collect();
    assert_eq!(holding.len(), 1, "one of {names:?} holds f at line 5");
    let s = &holding[0];
    the_script_allocation_is_at_its_line(s, "under valgrind");
    assert!(
        allocator(s, "pymalloc_malloc") > 0,
        "under valgrind: {}",
        s["allocators"]
    );
}

/// `base -m venv --without-pip VENV` (bounded, run in `dir`); the venv's `bin/python`.
fn make_venv(base: &Path, venv: &Path, dir: &Path) -> PathBuf {
    let mut make = Command::new(base);
    make.args(["-m", "venv", "--without-pip"]).arg(venv);
    let made = bounded(make, dir);
    assert!(
        made.status.success(),
        "{} -m venv: {made:?}",
        base.display()
    );
    venv.join("bin/python")
}

#[test]
fn a_virtual_environments_python_is_tracked() {
    // Of Debian's python when there is one (its venv's python is that same non-PIE binary).
    let base = debian_python().unwrap_or_else(|| python().to_path_buf());
    let dir = scratch("env-venv");
    let venv = dir.join("venv");
    let venv_python = make_venv(&base, &venv, &dir);
    let mut probe = Command::new(&venv_python);
    probe.args(["-c", "import sys; print(sys.prefix != sys.base_prefix)"]);
    assert_eq!(text(&bounded(probe, &dir).stdout), "True\n", "not a venv");
    python_is_tracked(&venv_python, "env-venv-python");
    // An active virtual environment (no --python) is what `memtrace run` runs.
    let script = write(&dir, "known.py", SCRIPT);
    let capture = dir.join("active.bin");
    let mut cmd = Command::new(memtrace_bin());
    cmd.args(["run", "-q", "-f", "-o"])
        .arg(&capture)
        .arg(&script)
        .env("VIRTUAL_ENV", &venv);
    let out = bounded(cmd, &dir);
    assert_eq!(out.status.code(), Some(5), "{out:?}");
    assert_eq!(text(&out.stdout), "size 10000000\n");
    let s = stats(&capture);
    assert!(
        s["exe"].as_str().is_some_and(|e| e.contains("python")),
        "{}",
        s["exe"]
    );
    the_script_allocation_is_at_its_line(&s, "active venv");
}

/// `memtrace run ./known.py` of an executable script runs the interpreter its `#!` line names,
/// as `./known.py` would: here a virtual environment's python, which alone has the module the
/// script imports (python3 on PATH, which memtrace ran before, failed to import it).
#[test]
fn an_executable_script_runs_with_the_interpreter_its_first_line_names() {
    let (_, base) = claimed_pythons()
        .into_iter()
        .next_back()
        .expect("a claimed Python");
    let dir = scratch("env-shebang");
    let venv = dir.join("venv");
    let venv_python = make_venv(&base, &venv, &dir);
    let mut purelib = Command::new(&venv_python);
    purelib.args([
        "-c",
        "import sysconfig; print(sysconfig.get_paths()['purelib'])",
    ]);
    let purelib = text(&bounded(purelib, &dir).stdout);
    write(Path::new(purelib.trim()), "venvonly.py", "WHERE = 'venv'\n");
    // The same lines as SCRIPT: the #! line takes the place of `import sys`, which moves down
    // into an empty line.
    let rest = SCRIPT
        .strip_prefix("import sys\n\n")
        .expect("SCRIPT's head");
    let text_of_script = format!("#!{}\nimport sys, venvonly\n{rest}", venv_python.display());
    let script = write(&dir, "known.py", &text_of_script);
    memtrace_e2e::make_executable(&script);
    let plain = bounded(Command::new(&script), &dir);
    assert_eq!(plain.status.code(), Some(5), "untracked: {plain:?}");
    let capture = dir.join("shebang.bin");
    let mut cmd = Command::new(memtrace_bin());
    cmd.args(["run", "-q", "-f", "-o"])
        .arg(&capture)
        .arg("./known.py")
        .env_remove("VIRTUAL_ENV");
    let out = bounded(cmd, &dir);
    assert_eq!(out.status, plain.status, "{out:?}");
    assert_eq!(text(&out.stdout), text(&plain.stdout));
    assert_eq!(text(&out.stderr), text(&plain.stderr));
    the_script_allocation_is_at_its_line(&stats(&capture), "#! venv");
    // A #! line whose flags keep the start-up hook out (-I ignores PYTHONPATH): the program
    // runs as asked, and memtrace says its allocations will have no Python stacks. Neither the
    // program nor its Python child sees the hook (PYTHONPATH is the program's own).
    let isolated = write(
        &dir,
        "isolated.py",
        &format!(
            "#!{} -I\nimport os, subprocess, sys\nprint(sys.flags.isolated)\nprint(os.environ.get(\"PYTHONPATH\"))\nsys.stdout.flush()\nsubprocess.run([sys.executable, \"-c\", \"import sys; print(getattr(sys.modules.get('sitecustomize'), '__file__', None) or '')\"], check=True)\n",
            base.display()
        ),
    );
    memtrace_e2e::make_executable(&isolated);
    let plain = bounded(Command::new(&isolated), &dir);
    assert_eq!(plain.status.code(), Some(0), "{plain:?}");
    assert!(text(&plain.stdout).starts_with("1\nNone\n"), "{plain:?}");
    let mut cmd = Command::new(memtrace_bin());
    cmd.args(["run", "-f", "-o"])
        .arg(dir.join("isolated.bin"))
        .arg("./isolated.py")
        .env_remove("PYTHONPATH");
    let out = bounded(cmd, &dir);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(text(&out.stdout), text(&plain.stdout));
    assert!(
        text(&out.stderr).starts_with(
            "memtrace: the script's #! line runs Python with -I, which keeps memtrace's start-up hook out"
        ),
        "{out:?}"
    );
    // The last line says the same, not that an interpreter was named as the program (with a
    // `--python` command that would not keep -I).
    let err = text(&out.stderr);
    let wrote = err
        .lines()
        .find(|l| l.starts_with("memtrace: wrote "))
        .unwrap_or_default();
    assert!(
        wrote.ends_with("Python ran with -I, which keeps memtrace's start-up hook out, so the capture has no Python frames"),
        "{err}"
    );
}

/// In-process tracking: the script imports the tracker as `_memtrace_tracker` and tracks
/// `g()` (line 9) between start and stop; `python_allocators` as asked.
const IN_PROCESS: &str = "\
import sys
import _memtrace_tracker as tracker
def f(n):
    return b\"\\0\" * n
def g():
    return f(10_000_000)
before = b\"\\0\" * 20_000_000
tracker.start(sys.argv[1], False, sys.argv[2] == \"pymem\", False)
kept = g()
del before
tracker.stop()
after = b\"\\0\" * 30_000_000
print(\"kept\", len(kept))
sys.exit(7)
";

#[test]
fn debians_python_tracks_in_process() {
    let Some(python) = debian_python() else {
        return;
    };
    let dir = scratch("env-inprocess");
    link_tracker_module(&dir);
    let script = write(&dir, "inproc.py", IN_PROCESS);
    // Without the Python allocators, the interpreter's own malloc calls (from the executable,
    // through its PLT) are what is recorded.
    for (mode, alloc, free) in [
        ("pymem", "pymalloc_malloc", "pymalloc_free"),
        ("raw", "malloc", "free"),
    ] {
        let capture = dir.join(format!("{mode}.bin"));
        let mut cmd = Command::new(&python);
        cmd.arg(&script).arg(&capture).arg(mode);
        cmd.env_remove("LD_PRELOAD");
        for (k, _) in std::env::vars() {
            if k.starts_with("MEMTRACE") {
                cmd.env_remove(k);
            }
        }
        let out = bounded(cmd, &dir);
        assert_eq!(out.status.code(), Some(7), "{mode}: {out:?}");
        assert_eq!(text(&out.stdout), "kept 10000000\n", "{mode}");
        assert_eq!(text(&out.stderr), "", "{mode}");
        let s = stats(&capture);
        assert_eq!(s["complete"], true, "{mode}: {}", s["warnings"]);
        let top = location(&s, "f", 4).unwrap_or_else(|| panic!("{mode}: no f at line 4: {s}"));
        assert_eq!(
            num(top, "bytes"),
            10_000_000 + BYTES_HEADER,
            "{mode}: {top}"
        );
        assert_eq!(num(top, "count"), 1, "{mode}: {top}");
        let expected = [("f", 4), ("g", 6), ("<module>", 9)].map(|(f, l)| (f.to_string(), l));
        assert_eq!(frames(top), expected, "{mode}: {top}");
        assert!(allocator(&s, alloc) >= 1, "{mode}: {}", s["allocators"]);
        // `before` (20 MB, allocated before start) is freed while tracking.
        assert!(allocator(&s, free) >= 1, "{mode}: {}", s["allocators"]);
        let total = num(&s, "total_bytes");
        assert!(
            (10_000_000 + BYTES_HEADER..10_200_000).contains(&total),
            "{mode}: total {total}"
        );
    }
}

/// Builds tests/programs/nopie.c as a non-PIE executable (-no-pie -fno-pic), and checks that it
/// is one (ELF type EXEC, not DYN).
fn compile_non_pie(dir: &Path, link: &[&str]) -> PathBuf {
    let src = memtrace_e2e::workspace().join("tests/programs/nopie.c");
    let out = dir.join("nopie");
    let status = Command::new("gcc")
        .args(["-O0", "-g", "-fno-builtin", "-no-pie", "-fno-pic"])
        .args(link)
        .arg("-o")
        .arg(&out)
        .arg(&src)
        .status()
        .expect("gcc runs");
    assert!(status.success(), "compiling {} failed", src.display());
    let header = std::fs::read(&out).expect("read the program");
    const ET_EXEC: u16 = 2;
    assert_eq!(
        u16::from_le_bytes([header[16], header[17]]),
        ET_EXEC,
        "not a non-PIE executable"
    );
    out
}

/// The line of tests/programs/nopie.c holding `needle` (1-based).
fn line_of(source: &str, needle: &str) -> i64 {
    let index = source
        .lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle} is not in nopie.c"));
    index as i64 + 1
}

#[test]
fn a_non_pie_program_taking_mallocs_address_is_tracked() {
    non_pie_program_is_tracked("env-nopie", &[]);
}

/// The same with only the old ELF hash table (DT_HASH): the tracker tells the program's stub
/// for `free` from libc's `free` through the symbol tables, and reads those through either hash.
#[test]
fn a_non_pie_program_with_only_the_old_hash_table_is_tracked() {
    non_pie_program_is_tracked("env-nopie-sysv", &["-Wl,--hash-style=sysv"]);
}

fn non_pie_program_is_tracked(name: &str, link: &[&str]) {
    let dir = scratch(name);
    let program = compile_non_pie(&dir, link);
    if !link.is_empty() {
        let dynamic = Command::new("readelf")
            .arg("-dW")
            .arg(&program)
            .output_watched();
        let dynamic = text(&dynamic.stdout);
        assert!(
            dynamic.contains("(HASH)") && !dynamic.contains("(GNU_HASH)"),
            "{dynamic}"
        );
    }
    let source = std::fs::read_to_string(memtrace_e2e::workspace().join("tests/programs/nopie.c"))
        .expect("read nopie.c");
    let run = |capture: Option<&str>, args: &[&str]| {
        let mut cmd = match capture {
            Some(capture) => {
                let mut cmd = Command::new(memtrace_bin());
                cmd.args(["run", "-q", "-f", "-o", capture, "--"])
                    .arg(&program);
                cmd
            }
            None => Command::new(&program),
        };
        cmd.args(args);
        bounded(cmd, &dir)
    };
    let plain = run(None, &[]);
    assert_eq!(plain.status.code(), Some(3), "{plain:?}");
    assert_eq!(text(&plain.stdout), "done\n");
    let base = run(Some("base.bin"), &["none"]);
    assert!(base.status.success(), "{base:?}");
    let out = run(Some("run.bin"), &[]);
    assert_eq!(out.status, plain.status, "{out:?}");
    assert_eq!(text(&out.stdout), text(&plain.stdout));
    assert_eq!(text(&out.stderr), text(&plain.stderr));
    let (s, b) = (stats(&dir.join("run.bin")), stats(&dir.join("base.bin")));
    assert_eq!(s["complete"], true, "{}", s["warnings"]);
    // What the program did, without what libc's start-up did (the "none" run).
    let get = |key: &str| num(&s, key) - num(&b, key);
    let count = |name: &str| allocator(&s, name) - allocator(&b, name);
    for name in [
        "malloc",
        "calloc",
        "realloc",
        "posix_memalign",
        "aligned_alloc",
        "mmap",
        "munmap",
    ] {
        assert_eq!(count(name), 1, "{name}: {}", s["allocators"]);
    }
    // a, b (the realloc frees calloc's block) and c; d is kept.
    assert_eq!(count("free"), 4, "{}", s["allocators"]);
    assert_eq!(get("total_allocations"), 6);
    assert_eq!(get("total_bytes"), 1111 + 2100 + 4444 + 3333 + 5120 + 65536);
    assert_eq!(get("peak_bytes"), 1111 + 4444 + 3333 + 5120 + 65536);
    assert_eq!(get("leaked_bytes"), 5120);
    assert_eq!(get("leaked_allocations"), 1);
    for (needle, bytes) in [
        ("use_malloc(1111)", 1111),
        ("use_calloc(3, 700)", 2100),
        ("use_realloc(b, 4444)", 4444),
        ("use_posix_memalign(&c, 64, 3333)", 3333),
        ("use_aligned_alloc(256, 5120)", 5120),
        ("use_mmap(NULL, 65536", 65536),
    ] {
        let line = line_of(&source, needle);
        let site = location(&s, "main", line)
            .unwrap_or_else(|| panic!("no main at line {line} ({needle}): {}", s["top_by_size"]));
        assert_eq!(num(site, "bytes"), bytes, "{needle}: {site}");
        assert_eq!(num(site, "count"), 1, "{needle}: {site}");
    }
}

/// An interpreter reached through a shim (a script, as pyenv's `python3`): memtrace asks it
/// once, untracked, for the real interpreter. That probe runs nothing of the user's (their
/// sitecustomize ran twice), and the program gets the environment the shim gives it (pyenv's
/// PATH and variables were missing).
#[test]
fn a_shim_s_environment_is_the_program_s_and_the_user_s_site_runs_once() {
    let dir = scratch("env-shim");
    let bin = dir.join("bin");
    let lib = dir.join("lib");
    std::fs::create_dir_all(&bin).expect("bin");
    std::fs::create_dir_all(&lib).expect("lib");
    let log = dir.join("site.log");
    let shim = write(
        &bin,
        "python3",
        &format!(
            "#!/bin/sh\nexport SHIM_WAS_HERE=1\nexport PATH=\"/shim/first:$PATH\"\nunset DROPPED_BY_SHIM\nexec {} \"$@\"\n",
            python().display()
        ),
    );
    memtrace_e2e::make_executable(&shim);
    write(
        &lib,
        "sitecustomize.py",
        &format!(
            "open({:?}, \"a\").write(\"site\\n\")\n",
            log.display().to_string()
        ),
    );
    let script = write(
        &dir,
        "env.py",
        "import os\nprint(os.environ.get(\"SHIM_WAS_HERE\"), os.environ[\"PATH\"].split(\":\")[0], os.environ.get(\"DROPPED_BY_SHIM\"))\n",
    );
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let run = |tracked: bool| {
        let _ = std::fs::remove_file(&log);
        let mut cmd = if tracked {
            let mut c = Command::new(memtrace_bin());
            c.args(["run", "-q", "-f", "-o"]).arg(dir.join("shim.bin"));
            c
        } else {
            Command::new("python3")
        };
        cmd.arg(&script)
            .env("PATH", &path)
            .env("PYTHONPATH", &lib)
            .env("DROPPED_BY_SHIM", "x")
            .env_remove("VIRTUAL_ENV");
        let out = bounded(cmd, &dir);
        assert!(out.status.success(), "tracked {tracked}: {out:?}");
        let runs = std::fs::read_to_string(&log).unwrap_or_default();
        (text(&out.stdout), runs)
    };
    let plain = run(false);
    assert_eq!(
        plain,
        ("1 /shim/first None\n".to_string(), "site\n".to_string())
    );
    assert_eq!(run(true), plain);
    // A Python run of the real interpreter: the start-up is set apart.
    let s = memtrace_e2e::stats(&dir.join("shim.bin"));
    assert!(s["startup_bytes"].as_u64().is_some_and(|b| b > 0), "{s}");
}
