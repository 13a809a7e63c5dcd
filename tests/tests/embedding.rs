//! Python embedded in a program, and subinterpreters: memtrace's start-up hook serves the
//! interpreter memtrace starts, never a program that only embeds Python nor a subinterpreter,
//! and neither changes what the program sees nor ends its capture early.

use memtrace_e2e::python::{claimed_python, claimed_pythons, write};
use memtrace_e2e::{memtrace_bin, scratch, stats};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// stdout, stderr and exit status of `cmd` run in `dir` with the user's PYTHONPATH.
fn run(mut cmd: Command, dir: &Path, pythonpath: &Path) -> Output {
    cmd.current_dir(dir)
        .env("PYTHONPATH", pythonpath)
        .stdin(Stdio::null())
        .output()
        .expect("runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// (bytes, allocations) at `file`:`line` among the top locations by size.
fn at_line(s: &Value, file: &str, line: u64) -> (i64, i64) {
    s["top_by_size"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|l| {
            l["file"].as_str().is_some_and(|f| f.ends_with(file))
                && l["line"].as_u64() == Some(line)
        })
        .map(|l| {
            (
                l["bytes"].as_i64().unwrap_or(0),
                l["count"].as_i64().unwrap_or(0),
            )
        })
        .fold((0, 0), |(b, c), (lb, lc)| (b + lb, c + lc))
}

/// A subinterpreter with the main interpreter's settings (what `Py_NewInterpreter` makes, and
/// the default of `_xxsubinterpreters.create()` before 3.12) imports threading; then the main
/// interpreter allocates 30 × 100,000 bytes at line 20.
const SUBINTERPRETER: &str = "\
import subprocess, sys
try:
    import _interpreters as I
    iid = I.create('legacy')
    run = I.exec
except ImportError:
    import _xxsubinterpreters as I
    iid = I.create(isolated=False) if sys.version_info >= (3, 12) else I.create()
    run = I.run_string
def child():
    out = subprocess.run(['sh', '-c', 'echo \"${PYTHONPATH-unset}\"'], capture_output=True, text=True)
    return out.stdout.strip()
print('before:', child(), flush=True)
r = run(iid, \"import threading\\nprint('sub imported threading', flush=True)\\n\")
print('sub failed' if r is not None else 'sub ok', flush=True)
I.destroy(iid)
print('after:', child(), flush=True)
c = [None] * 30
for i in range(30):
    c[i] = bytes(100_000)
print('main', len(c))
";

/// The bytes of a bytes object of n bytes: n and the object's header (and its NUL).
const BYTES_HEADER: i64 = 33;

#[test]
fn a_subinterpreter_changes_nothing_of_the_program_or_its_capture() {
    for (minor, python) in claimed_pythons() {
        let dir = scratch(&format!("embed-subinterpreter-3{minor}"));
        let userlib = dir.join("userlib");
        std::fs::create_dir(&userlib).expect("mkdir");
        let script = write(&dir, "sub.py", SUBINTERPRETER);
        let mut alone = Command::new(&python);
        alone.arg(&script);
        let alone = run(alone, &dir, &userlib);
        let capture = dir.join("sub.bin");
        let mut tracked = Command::new(memtrace_bin());
        tracked
            .args(["run", "-q", "-f", "-o"])
            .arg(&capture)
            .arg("--python")
            .arg(&python)
            .arg(&script);
        let tracked = run(tracked, &dir, &userlib);
        let what = format!("3.{minor}");
        assert_eq!(alone.status.code(), Some(0), "{what}: {alone:?}");
        let expected = format!(
            "before: {u}\nsub imported threading\nsub ok\nafter: {u}\nmain 30\n",
            u = userlib.display()
        );
        assert_eq!(text(&alone.stdout), expected, "{what}");
        assert_eq!(
            text(&tracked.stdout),
            expected,
            "{what}: {}",
            text(&tracked.stderr)
        );
        assert_eq!(text(&tracked.stderr), text(&alone.stderr), "{what}");
        assert_eq!(tracked.status.code(), Some(0), "{what}");
        // The capture goes on after the subinterpreter's end.
        let s = stats(&capture);
        assert_eq!(s["complete"], true, "{what}: {}", s["warnings"]);
        // The 30 bytes objects (and at most a few small objects the interpreter makes on
        // its first call there).
        let (bytes, count) = at_line(&s, "sub.py", 20);
        let objects = 30 * (100_000 + BYTES_HEADER);
        assert!(
            (objects..objects + 1024).contains(&bytes) && (30..=33).contains(&count),
            "{what}: {bytes} bytes in {count} at line 20: {}",
            s["top_by_size"]
        );
    }
}

/// Builds tests/programs/`program`.c against `python`'s shared libpython, as `name`.
fn embedding(program: &str, python: &Path, minor: u32, dir: &Path, name: &str) -> PathBuf {
    let prefix = python
        .parent()
        .and_then(Path::parent)
        .expect("PREFIX/bin/python");
    let out = dir.join(name);
    let src = memtrace_e2e::workspace().join(format!("tests/programs/{program}.c"));
    let built = Command::new("gcc")
        .arg("-o")
        .arg(&out)
        .arg(src)
        .arg(format!("-I{}/include/python3.{minor}", prefix.display()))
        .arg(format!("-L{}/lib", prefix.display()))
        .arg(format!("-lpython3.{minor}"))
        .arg(format!("-Wl,-rpath,{}/lib", prefix.display()))
        .status()
        .expect("gcc runs");
    assert!(built.success(), "compiling {program}.c failed");
    out
}

/// A program that embeds Python, exec'd by the program memtrace runs, is a native image: it
/// sees its own environment, and its capture goes on after its interpreter ends. Its name
/// starts with "python", which once made it an interpreter to memtrace.
#[test]
fn a_program_that_embeds_python_is_not_taken_for_an_interpreter() {
    let minor = 12;
    let python = claimed_python(minor);
    let dir = scratch("embed-apphost");
    let host = embedding("python_apphost", &python, minor, &dir, "python-apphost");
    let userlib = dir.join("userlib");
    std::fs::create_dir(&userlib).expect("mkdir");
    let mut alone = Command::new("/usr/bin/env");
    alone.arg(&host);
    let alone = run(alone, &dir, &userlib);
    assert_eq!(alone.status.code(), Some(0), "{alone:?}");
    let u = userlib.display();
    assert_eq!(
        text(&alone.stdout),
        format!(
            "C sees PYTHONPATH={u}\nPython sees PYTHONPATH={u}\nafter: C sees PYTHONPATH={u}\n"
        )
    );
    let capture = dir.join("host.bin");
    let mut tracked = Command::new(memtrace_bin());
    tracked
        .args(["run", "-q", "-f", "-o"])
        .arg(&capture)
        .args(["--", "/usr/bin/env"])
        .arg(&host);
    let tracked = run(tracked, &dir, &userlib);
    assert_eq!(
        text(&tracked.stdout),
        text(&alone.stdout),
        "{}",
        text(&tracked.stderr)
    );
    assert_eq!(tracked.status.code(), Some(0), "{tracked:?}");
    let exec = dir.join("host.bin.exec1");
    let s = stats(&exec);
    assert_eq!(s["complete"], true, "{}", s["warnings"]);
    // The 3,000,000 bytes allocated after the interpreter's end, live at exit (libpython
    // leaves more of its own).
    let main: Vec<&Value> = s["top_by_size"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|l| l["function"].as_str() == Some("main"))
        .collect();
    assert_eq!(main.len(), 1, "{}", s["top_by_size"]);
    assert_eq!(main[0]["bytes"].as_i64(), Some(3_000_000), "{}", main[0]);
    assert_eq!(main[0]["count"].as_i64(), Some(1), "{}", main[0]);
    let live = s["leaked_bytes"].as_i64().unwrap_or(0);
    assert!(live >= 3_000_000, "live at exit {live}");
    // Run directly, it is no interpreter named as the program either: memtrace's last line
    // told it to run a SCRIPT.py with --python.
    let mut direct = Command::new(memtrace_bin());
    direct
        .args(["run", "-f", "-o"])
        .arg(dir.join("direct.bin"))
        .arg(&host);
    let direct = run(direct, &dir, &userlib);
    assert_eq!(direct.status.code(), Some(0), "{direct:?}");
    let said = text(&direct.stderr);
    assert!(!said.contains("interpreter named as the program"), "{said}");
    assert!(said.contains("wrote"), "{said}");
}

/// A host started in `dir`, after its "ready" line; killed if the test ends before it does.
struct Host {
    child: std::process::Child,
    stdout: std::io::BufReader<std::process::ChildStdout>,
}

impl Host {
    fn start(host: &Path, dir: &Path) -> Host {
        let mut child = Command::new(host)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the host starts");
        let mut stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        std::io::BufRead::read_line(&mut stdout, &mut line).expect("ready");
        assert_eq!(line, "ready\n");
        Host { child, stdout }
    }

    fn pid(&self) -> String {
        self.child.id().to_string()
    }

    /// Its exit status and the rest of its output.
    fn finish(mut self) -> (Option<i32>, String) {
        let status = self.child.wait().expect("the host ends");
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut self.stdout, &mut rest).expect("read");
        (status.code(), rest)
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `memtrace ARGS` run in `dir`.
fn memtrace_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(memtrace_bin())
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("memtrace runs")
}

/// Whether ptrace is refused here (said: the test then checks nothing more).
fn ptrace_refused(out: &Output) -> bool {
    let err = text(&out.stderr);
    let refused = !out.status.success() && err.contains("ptrace");
    if refused {
        eprintln!("skipped: ptrace is refused here: {err}");
    }
    refused
}

/// Waits until `path` exists (`what` names it in the failure).
fn wait_for(path: &Path, what: &str) {
    let start = std::time::Instant::now();
    while !path.exists() {
        assert!(start.elapsed().as_secs() < 30, "{what}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// `memtrace attach` to a program whose embedded Python is then finalized: the tracker's stop
/// runs in the interpreter, which is gone, so a detach cannot stop it. When the process then
/// ends, `memtrace detach` says so; it said "detached" though the process had been tracked to
/// its end.
#[test]
fn a_detach_that_the_process_never_acknowledged_is_not_called_detached() {
    let minor = 12;
    let python = claimed_python(minor);
    let dir = scratch("embed-attach-finalize");
    let host = embedding("embed_finalize", &python, minor, &dir, "host");
    let host = Host::start(&host, &dir);
    let pid = host.pid();
    let attach = memtrace_in(&dir, &["attach", &pid, "-o", "cap.bin"]);
    if ptrace_refused(&attach) {
        return;
    }
    assert!(attach.status.success(), "{attach:?}");
    // Tracking starts in the interpreter, which runs Python code every 20 ms.
    wait_for(&dir.join("cap.bin"), "tracking never started");
    std::fs::write(dir.join("finalize"), "").expect("write");
    wait_for(
        &dir.join("finalized"),
        "the interpreter was never finalized",
    );
    // The process ends once the detach has asked it to stop (its `stop` file), not after a
    // fixed time that a loaded machine may outrun.
    let done = dir.join("done");
    let stop = std::path::PathBuf::from(format!("/tmp/memtrace-attach.{pid}/stop"));
    let ender = std::thread::spawn(move || {
        wait_for(&stop, "the detach never asked the process to stop");
        std::thread::sleep(std::time::Duration::from_millis(200));
        std::fs::write(done, "").expect("write");
    });
    let detach = memtrace_in(&dir, &["detach", &pid]);
    ender.join().expect("ender");
    assert_eq!(host.finish(), (Some(0), "bye\n".to_string()));
    let said = format!("{}{}", text(&detach.stdout), text(&detach.stderr));
    assert!(!said.contains("detached from"), "{said}");
    assert!(said.contains("ended before it stopped tracking"), "{said}");
}

/// `memtrace attach` to a program whose embedded Python is not started yet: the queued call
/// faulted in it ("the call faulted (signal 11)"). It is refused, saying why, and works once
/// the interpreter runs.
#[test]
fn attach_to_an_embedded_python_not_started_yet_says_so_and_works_later() {
    let minor = 12;
    let python = claimed_python(minor);
    let dir = scratch("embed-attach-late");
    let host = embedding("embed_late", &python, minor, &dir, "host");
    let host = Host::start(&host, &dir);
    let pid = host.pid();
    let early = memtrace_in(&dir, &["attach", &pid, "-o", "early.bin"]);
    if ptrace_refused(&early) {
        return;
    }
    let err = text(&early.stderr);
    assert_eq!(early.status.code(), Some(1), "{early:?}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("interpreter is not running"), "{err}");
    std::fs::write(dir.join("init"), "").expect("write");
    wait_for(&dir.join("running"), "Python never ran");
    let later = memtrace_in(&dir, &["attach", &pid, "-o", "later.bin"]);
    assert!(later.status.success(), "{later:?}");
    let detach = memtrace_in(&dir, &["detach", &pid]);
    assert!(detach.status.success(), "{detach:?}");
    std::fs::write(dir.join("stop"), "").expect("write");
    assert_eq!(host.finish(), (Some(0), "bye\n".to_string()));
    let s = stats(&dir.join("later.bin"));
    assert_eq!(s["complete"], true, "{}", s["warnings"]);
}
