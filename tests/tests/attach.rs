//! `memtrace attach PID` / `memtrace detach PID` on processes started without memtrace: a Python
//! script and a C program that allocate at known lines after the attach; the target goes on and
//! ends with its own output and status; a block allocated before the attach and freed after it
//! does not count; refusals (twice, no such process, statically linked, another user, a process that forbids
//! ptrace with a memtrace without CAP_SYS_PTRACE) are one
//! line with status 1. The thread stopped for the injected calls gets back every register (the
//! SSE ones included) and a sleep it was in, also when memtrace is gone during a call. When ptrace is refused by the environment (a container without
//! CAP_SYS_PTRACE) the tests say so and check only the refusal.

use memtrace_e2e::python::{python, write};
use memtrace_e2e::watchdog::Watched;
use memtrace_e2e::{memtrace_bin, scratch, workspace};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Holds 4,000,000 bytes from before the attach and frees them after it; allocates 3,000,000
/// at line 7 once `go` exists; exits with status 5 after `done`.
const SCRIPT: &str = "import os, time
BEFORE = bytearray(4_000_000)
print('ready', flush=True)
while not os.path.exists('go'):
    time.sleep(0.05)
del BEFORE
KEEP = bytearray(3_000_000)
open('allocated', 'w').close()
while not os.path.exists('done'):
    time.sleep(0.05)
print('bye')
raise SystemExit(5)
";

/// A target process, killed if a test fails before it ends.
struct Target(Option<Child>);

impl Target {
    /// Starts `cmd` in `dir` and waits for its "ready" line (a minute at most: a target that
    /// never says it, one that deadlocked on its own, fails the test instead of holding the
    /// suite).
    fn start(mut cmd: Command, dir: &Path) -> Target {
        let mut child = cmd
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the target starts");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let read = reader.read_line(&mut line).map(|_| line);
            let _ = tx.send((read, reader));
        });
        let Ok((line, reader)) = rx.recv_timeout(Duration::from_secs(60)) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the target said nothing for a minute");
        };
        assert_eq!(line.expect("read ready"), "ready\n");
        // The rest of the output is read at the end.
        child.stdout = Some(reader.into_inner());
        Target(Some(child))
    }

    fn pid(&self) -> String {
        self.0.as_ref().map_or(0, Child::id).to_string()
    }

    /// Waits for the target's end and its output; five minutes at most (a target memtrace
    /// left hung fails the test instead of holding the suite).
    fn finish(mut self) -> Output {
        let child = self.0.take().expect("running");
        let pid = child.id() as libc::pid_t;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        match rx.recv_timeout(Duration::from_secs(300)) {
            Ok(out) => out.expect("the target ends"),
            Err(_) => {
                // SAFETY: kill(2) of our own child, not yet reaped (its waiter still waits).
                unsafe { libc::kill(pid, libc::SIGKILL) };
                panic!("the target did not end within five minutes (hung?)");
            }
        }
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn memtrace(args: &[&str], dir: &Path) -> Output {
    Command::new(memtrace_bin())
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output_watched()
}

/// `memtrace ARGS` started in `dir`, its output piped, not waited for.
fn memtrace_in_background(args: &[&str], dir: &Path) -> Child {
    Command::new(memtrace_bin())
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("memtrace starts")
}

fn wait_for(path: &Path) {
    let start = Instant::now();
    while !path.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no {}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Writes `script` as `file` in `dir` and starts python on it (see [`Target::start`]).
fn python_target(dir: &Path, file: &str, script: &str) -> Target {
    write(dir, file, script);
    let mut cmd = Command::new(python());
    cmd.arg(file);
    Target::start(cmd, dir)
}

/// Lets the target allocate its known block and end; it ends with `code` and prints "bye".
fn let_it_allocate_and_end(target: Target, dir: &Path, code: i32) {
    std::fs::write(dir.join("go"), "").expect("go");
    wait_for(&dir.join("allocated"));
    std::fs::write(dir.join("done"), "").expect("done");
    let end = target.finish();
    assert_eq!(end.status.code(), Some(code), "{end:?}");
    assert_eq!(String::from_utf8_lossy(&end.stdout), "bye\n");
}

/// `memtrace attach PID -o CAPTURE` from `dir`, which must succeed: its output; None when
/// ptrace is refused here (said, and the test ends).
fn attached(pid: &str, capture: &str, dir: &Path) -> Option<Output> {
    let out = memtrace(&["attach", pid, "-o", capture], dir);
    if refused(&out) {
        return None;
    }
    assert!(out.status.success(), "attach {pid} -o {capture}: {out:?}");
    Some(out)
}

/// `memtrace detach PID` from `dir`, which must succeed.
fn detached(pid: &str, dir: &Path) {
    let out = memtrace(&["detach", pid], dir);
    assert!(out.status.success(), "detach {pid}: {out:?}");
}

/// Whether ptrace is refused here (then the refusal is checked, one line and status 1).
fn refused(out: &Output) -> bool {
    let err = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() && err.contains("ptrace") {
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(err.lines().count(), 1, "{err}");
        eprintln!("skipped: ptrace is refused here: {err}");
        return true;
    }
    false
}

/// The nodes of a `tree --json` tree at `file`:`line` (file by its name), bytes summed.
fn bytes_at(node: &serde_json::Value, file: &str, line: i64) -> i64 {
    at_line(node, file, line).0
}

/// Bytes and allocations of the nodes of a `tree --json` tree at `file`:`line` (file by its
/// name; nodes nested in one another counted once, at the outermost).
fn at_line(node: &serde_json::Value, file: &str, line: i64) -> (i64, i64) {
    let here = node["file"].as_str().is_some_and(|f| f.ends_with(file))
        && node["line"].as_i64() == Some(line);
    if here {
        return (
            node["bytes"].as_i64().unwrap_or(0),
            node["allocations"].as_i64().unwrap_or(0),
        );
    }
    let mut sum = (0, 0);
    for c in node["children"].as_array().into_iter().flatten() {
        let (b, a) = at_line(c, file, line);
        sum = (sum.0 + b, sum.1 + a);
    }
    sum
}

#[test]
fn attach_to_python_records_the_line_and_the_target_goes_on() {
    let dir = scratch("attach_py");
    let target = python_target(&dir, "sl.py", SCRIPT);
    let pid = target.pid();
    let Some(out) = attached(&pid, "cap.bin", &dir) else {
        return;
    };
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("memory allocated before is not attributed"),
        "{err}"
    );
    // Twice: refused, one line.
    let again = memtrace(&["attach", &pid, "-o", "cap2.bin"], &dir);
    assert_eq!(again.status.code(), Some(1));
    let again_err = String::from_utf8_lossy(&again.stderr);
    assert_eq!(again_err.lines().count(), 1, "{again_err}");
    assert!(again_err.contains("already attached"), "{again_err}");
    std::fs::write(dir.join("go"), "").expect("go");
    wait_for(&dir.join("allocated"));
    detached(&pid, &dir);
    std::fs::write(dir.join("done"), "").expect("done");
    let end = target.finish();
    assert_eq!(end.status.code(), Some(5));
    assert_eq!(String::from_utf8_lossy(&end.stdout), "bye\n");
    assert_eq!(String::from_utf8_lossy(&end.stderr), "");
    // The line is in the capture, the capture is finished, and the 4,000,000 bytes from before
    // the attach, freed after it, take nothing off: live at the end is the 3,000,000 kept.
    let stats = memtrace_e2e::stats(&dir.join("cap.bin"));
    assert_eq!(stats["complete"], serde_json::Value::Bool(true), "{stats}");
    says_attached(&dir.join("cap.bin"));
    let tree = memtrace_e2e::report(&["tree", "--json", "--leaks"], &dir.join("cap.bin"));
    let at_line = bytes_at(&tree["tree"], "sl.py", 7);
    assert!((3_000_000..3_001_000).contains(&at_line), "{at_line}");
    let live = tree["tree"]["bytes"].as_i64().unwrap_or(-1);
    assert!((3_000_000..3_200_000).contains(&live), "{live}");
}

#[test]
fn an_attach_to_a_program_without_threading_charges_it_nothing_of_its_own() {
    // Without threading imported (python -S), the attach puts the tracker's module first in
    // sys.meta_path; it did so once tracking had started, and the list's growth (64 bytes,
    // live to the end) was charged to the program's line, under memtrace's own code.
    let dir = scratch("attach_no_threading");
    let script = SCRIPT.replacen("import os, time", "import os, sys, time; sys.meta_path = list(sys.meta_path); assert 'threading' not in sys.modules", 1);
    write(&dir, "sl.py", &script);
    let mut cmd = Command::new(python());
    cmd.args(["-S", "sl.py"]);
    let target = Target::start(cmd, &dir);
    let pid = target.pid();
    let Some(_) = attached(&pid, "cap.bin", &dir) else {
        return;
    };
    std::fs::write(dir.join("go"), "").expect("go");
    wait_for(&dir.join("allocated"));
    detached(&pid, &dir);
    std::fs::write(dir.join("done"), "").expect("done");
    let end = target.finish();
    assert_eq!(end.status.code(), Some(5), "{end:?}");
    assert_eq!(String::from_utf8_lossy(&end.stdout), "bye\n");
    for view in [&["tree", "--json"][..], &["tree", "--json", "--leaks"][..]] {
        let tree = memtrace_e2e::report(view, &dir.join("cap.bin"));
        let kept = bytes_at(&tree["tree"], "sl.py", 7);
        assert!((3_000_000..3_001_000).contains(&kept), "{view:?}: {tree}");
        assert!(!has_file(&tree["tree"], "<string>"), "{view:?}: {tree}");
    }
}

/// tests/programs/attach.c started in a scratch directory `name` and attached to, its capture
/// `cap.bin` there; None when ptrace is refused here (the test says so and ends).
fn attached_native(name: &str) -> Option<(std::path::PathBuf, Target, String)> {
    let dir = scratch(name);
    let prog = memtrace_e2e::compile("attach", &dir);
    let target = Target::start(Command::new(&prog), &dir);
    let pid = target.pid();
    let out = memtrace(&["attach", &pid, "-o", "cap.bin"], &dir);
    if refused(&out) {
        return None;
    }
    assert!(out.status.success(), "{out:?}");
    Some((dir, target, pid))
}

#[test]
fn attach_to_a_native_program_counts_exactly_what_follows() {
    let Some((dir, target, pid)) = attached_native("attach_c") else {
        return;
    };
    std::fs::write(dir.join("go"), "").expect("go");
    wait_for(&dir.join("allocated"));
    detached(&pid, &dir);
    std::fs::write(dir.join("done"), "").expect("done");
    let end = target.finish();
    assert_eq!(end.status.code(), Some(7));
    assert_eq!(String::from_utf8_lossy(&end.stdout), "bye\n");
    // One allocation of 1,234,567 bytes at attach.c:23; the free of the 5,000,000 bytes from
    // before the attach does not count.
    let tree = memtrace_e2e::report(&["tree", "--json", "--leaks"], &dir.join("cap.bin"));
    assert_eq!(tree["tree"]["bytes"].as_i64(), Some(1_234_567), "{tree}");
    assert_eq!(tree["tree"]["allocations"].as_i64(), Some(1), "{tree}");
    assert_eq!(bytes_at(&tree["tree"], "attach.c", 23), 1_234_567);
    says_attached(&dir.join("cap.bin"));
}

#[test]
fn attach_records_what_the_c_library_allocates_for_the_program() {
    // strdup, asprintf, fopen and opendir call malloc through the C library's own slot for it,
    // as `memtrace run`'s preloaded hooks see: an attach must record them as run does.
    let dir = scratch("attach_libc_internal");
    let prog = memtrace_e2e::compile("libc_internal", &dir);
    let target = Target::start(Command::new(&prog), &dir);
    let pid = target.pid();
    // --native: the program's own line is in each stack, below the C library's frames.
    let out = memtrace(&["attach", "--native", &pid, "-o", "cap.bin"], &dir);
    if refused(&out) {
        return;
    }
    assert!(out.status.success(), "{out:?}");
    std::fs::write(dir.join("go"), "").expect("go");
    wait_for(&dir.join("allocated"));
    detached(&pid, &dir);
    std::fs::write(dir.join("done"), "").expect("done");
    let end = target.finish();
    assert_eq!(end.status.code(), Some(3), "{end:?}");
    let attach = memtrace_e2e::report(&["tree", "--json", "--leaks"], &dir.join("cap.bin"));
    assert_eq!(
        at_line(&attach["tree"], "libc_internal.c", 21),
        (300, 10),
        "10 strdup copies of 30 bytes: {attach}"
    );
    // The same program run from the start under memtrace (go and done already there): each
    // line keeps what it kept under the attach.
    let prog = prog.to_str().expect("utf-8");
    let out = memtrace(&["run", "-q", "--native", "-o", "run.bin", prog], &dir);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let run = memtrace_e2e::report(&["tree", "--json", "--leaks"], &dir.join("run.bin"));
    for line in [21, 23, 25, 27] {
        let (bytes, allocations) = at_line(&run["tree"], "libc_internal.c", line);
        assert!(bytes > 0 && allocations >= 10, "line {line}: {run}");
        assert_eq!(
            at_line(&attach["tree"], "libc_internal.c", line),
            (bytes, allocations),
            "line {line}: {attach}"
        );
    }
}

/// The reports of an attached capture say when it was attached and that what came before is
/// not attributed (on stderr, and in the JSON's warnings).
fn says_attached(capture: &Path) {
    let out = memtrace(
        &["stats", capture.to_str().expect("utf-8")],
        capture.parent().expect("dir"),
    );
    assert!(out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("attached at ") && err.contains("memory allocated before is not attributed"),
        "{err}"
    );
    let stats = memtrace_e2e::stats(capture);
    let warned = stats["warnings"].as_array().is_some_and(|w| {
        w.iter()
            .any(|w| w.as_str().is_some_and(|w| w.starts_with("attached at ")))
    });
    assert!(warned, "{stats}");
}

#[test]
fn attach_refuses_a_missing_process_and_a_static_program() {
    let dir = scratch("attach_refuse");
    let out = memtrace(&["attach", "999999999"], &dir);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("no process 999999999"), "{err}");
    // detach says it as attach does (it said "not attached by memtrace").
    let out = memtrace(&["detach", "999999999"], &dir);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.trim_end(),
        "memtrace: no process 999999999 (it is gone, or never existed)"
    );

    // Statically linked: the same program built -static, when the C library's static archive
    // is installed.
    let src = workspace().join("tests/programs/attach.c");
    let bin = dir.join("attach_static");
    let built = Command::new("gcc")
        .args(["-O0", "-static", "-o"])
        .arg(&bin)
        .arg(&src)
        .status()
        .is_ok_and(|s| s.success());
    if !built {
        eprintln!("skipped the static program: gcc -static failed");
        return;
    }
    let target = Target::start(Command::new(&bin), &dir);
    let out = memtrace(&["attach", &target.pid()], &dir);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("statically linked"), "{err}");
    drop(target);
}

/// `-f -o DIR` names a directory: refused in one line, before the process is touched. It was
/// moved aside for the capture (`attach -f -o /tmp` renamed the machine's /tmp) and not put
/// back.
#[test]
fn attach_refuses_a_directory_for_the_capture() {
    let dir = scratch("attach_dir_output");
    let prog = memtrace_e2e::compile("attach", &dir);
    let target = Target::start(Command::new(&prog), &dir);
    let kept = dir.join("results");
    std::fs::create_dir(&kept).expect("dir");
    std::fs::write(kept.join("mine.txt"), "mine").expect("write");
    for force in [true, false] {
        let mut args = vec!["attach", "-o", "results"];
        if force {
            args.push("-f");
        }
        let pid = target.pid();
        args.push(&pid);
        let out = memtrace(&args, &dir);
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("is not a file"), "{err}");
        assert_eq!(
            std::fs::read_to_string(kept.join("mine.txt")).expect("kept"),
            "mine"
        );
        let names: Vec<String> = std::fs::read_dir(&dir)
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains("replaced"))
            .collect();
        assert!(names.is_empty(), "{names:?}");
    }
    drop(target);
}

/// A process that sandboxed itself with a seccomp filter of its own (tests/programs/sandboxed.c
/// `wait`: an allow-list that kills on any other call): loading the tracker would make it call
/// what its filter forbids (openat, ...) and kill it. The attach is refused in one line, and the
/// process goes on to its own end.
#[cfg(target_arch = "x86_64")]
#[test]
fn attach_refuses_a_process_that_sandboxed_itself() {
    let dir = scratch("attach_sandboxed");
    let bin = memtrace_e2e::compile("sandboxed", &dir);
    let mut cmd = Command::new(&bin);
    cmd.arg("wait");
    let target = Target::start(cmd, &dir);
    let out = memtrace(&["attach", &target.pid()], &dir);
    if refused(&out) {
        return;
    }
    assert_refused(&out, "runs under a seccomp filter of its own");
    std::fs::write(dir.join("go"), b"").expect("go");
    let end = target.finish();
    assert_eq!(end.status.code(), Some(7), "{end:?}");
    assert_eq!(String::from_utf8_lossy(&end.stdout), "bye\n");
}

/// Another user's process: as root, memtrace runs as `nobody` (setpriv) against a process of
/// root's, and is refused with what to change.
#[test]
fn attach_refuses_another_users_process() {
    if !memtrace_e2e::is_root() {
        eprintln!("skipped: needs root to run memtrace as another user");
        return;
    }
    let dir = scratch("attach_user");
    let target = python_target(&dir, "sl.py", SCRIPT);
    let setpriv = ["--reuid=65534", "--regid=65534", "--clear-groups"];
    let Some(out) = attach_under_setpriv(&setpriv, &target, Path::new("/"), "/tmp/never.bin")
    else {
        return;
    };
    let err = String::from_utf8_lossy(&out.stderr);
    if err.contains("Permission denied") && !err.contains("memtrace:") {
        eprintln!("skipped: nobody cannot run memtrace from here: {err}");
        return;
    }
    assert_refused(&out, "another user");
    drop(target);
}

/// `memtrace attach` to `target` run under `setpriv ARGS` from `dir`, writing to `capture`; None
/// (said on stderr) when setpriv is not installed.
fn attach_under_setpriv(
    args: &[&str],
    target: &Target,
    dir: &Path,
    capture: &str,
) -> Option<Output> {
    let out = Command::new("setpriv")
        .args(args)
        .arg(memtrace_bin())
        .args(["attach", &target.pid(), "-o", capture])
        .current_dir(dir)
        .stdin(Stdio::null())
        .output();
    if out.is_err() {
        eprintln!("skipped: setpriv is not installed");
    }
    out.ok()
}

/// A refusal: status 1 and one line that contains `why`.
fn assert_refused(out: &Output, why: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(why), "{err}");
}

/// A process that forbids ptrace (it made itself non-dumpable) and a memtrace without
/// CAP_SYS_PTRACE: one line that says what to change, status 1, and the target goes on to its own
/// end, unharmed.
#[test]
fn attach_without_cap_sys_ptrace_to_a_process_that_forbids_it_is_refused() {
    if !memtrace_e2e::is_root() {
        eprintln!("skipped: needs root to drop CAP_SYS_PTRACE from memtrace alone");
        return;
    }
    let dir = scratch("attach_nodump");
    let forbid = "import ctypes\nctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE 0\n";
    write(&dir, "sl.py", &format!("{forbid}{SCRIPT}"));
    let mut cmd = Command::new(python());
    cmd.arg("sl.py");
    let target = Target::start(cmd, &dir);
    let setpriv = ["--inh-caps=-sys_ptrace", "--bounding-set=-sys_ptrace"];
    let Some(out) = attach_under_setpriv(&setpriv, &target, &dir, "never.bin") else {
        return;
    };
    let err = String::from_utf8_lossy(&out.stderr);
    if err.contains("setpriv:") {
        eprintln!("skipped: setpriv cannot drop the capability here: {err}");
        return;
    }
    assert_refused(&out, "CAP_SYS_PTRACE");
    assert!(
        !dir.join("never.bin").exists(),
        "a refused attach leaves no capture"
    );
    let_it_allocate_and_end(target, &dir, 5);
}

/// `attach --live`: the view opens on the attached process, shows the line allocated after the
/// attach, and quitting it detaches; the process then ends with its own status.
/// `memtrace attach --live` (with `flags`) of `pid` from `dir`, in a terminal (tmux), shown
/// once its view is up; None when tmux is missing or ptrace is refused here (said). Its
/// stderr goes to err.txt and its exit status to status.txt.
fn attach_live(dir: &Path, pid: &str, flags: &str) -> Option<memtrace_e2e::tmux::Tmux> {
    attach_live_from(dir, pid, flags, &["● running"])
}

/// [`attach_live`], whose view is taken as up once its state line starts with one of `first`.
fn attach_live_from(
    dir: &Path,
    pid: &str,
    flags: &str,
    first: &[&str],
) -> Option<memtrace_e2e::tmux::Tmux> {
    use memtrace_e2e::tmux::{have_tmux, Tmux};
    if !have_tmux() {
        return None;
    }
    let cmd = format!(
        "cd {} && {} attach --live {flags} -o cap.bin {pid} 2> err.txt; echo status=$? > status.tmp; mv status.tmp status.txt; sleep 60",
        dir.display(),
        memtrace_bin().display()
    );
    let ui = Tmux::start(&cmd, 140, 40);
    let screen = ui.wait("the view or a refusal", |s| {
        first.iter().any(|f| s[0].starts_with(f)) || dir.join("status.txt").exists()
    });
    if dir.join("status.txt").exists() {
        let err = std::fs::read_to_string(dir.join("err.txt")).unwrap_or_default();
        assert!(err.contains("ptrace"), "{err}");
        eprintln!("skipped: ptrace is refused here: {err}");
        return None;
    }
    assert!(screen[0].contains("live now"), "{}", screen[0]);
    Some(ui)
}

/// Quits the view of [`attach_live`] and returns memtrace's exit status line and stderr.
fn quit_attach_live(ui: &memtrace_e2e::tmux::Tmux, dir: &Path) -> (String, String) {
    ui.key("q");
    wait_for(&dir.join("status.txt"));
    std::thread::sleep(Duration::from_millis(100));
    let status = std::fs::read_to_string(dir.join("status.txt")).expect("status");
    let err = std::fs::read_to_string(dir.join("err.txt")).unwrap_or_default();
    (status.trim().to_string(), err)
}

#[test]
fn attach_live_shows_the_process_and_quitting_detaches() {
    let dir = scratch("attach_live");
    let prog = memtrace_e2e::compile("attach", &dir);
    let target = Target::start(Command::new(&prog), &dir);
    let pid = target.pid();
    let Some(ui) = attach_live(&dir, &pid, "") else {
        return;
    };
    std::fs::write(dir.join("go"), "").expect("go");
    ui.wait("the line", |s| s.iter().any(|l| l.contains("attach.c:23")));
    let (status, err) = quit_attach_live(&ui, &dir);
    assert_eq!(status, "status=0", "{err}");
    // Said once (the detach's own line, then the view's, said it twice).
    assert_eq!(err.matches("detached from process").count(), 1, "{err}");
    assert!(!std::env::temp_dir()
        .join(format!("memtrace-attach.{pid}/active"))
        .exists());
    std::fs::write(dir.join("done"), "").expect("done");
    let end = target.finish();
    assert_eq!(end.status.code(), Some(7));
    assert_eq!(String::from_utf8_lossy(&end.stdout), "bye\n");
    let tree = memtrace_e2e::report(&["tree", "--json", "--leaks"], &dir.join("cap.bin"));
    assert_eq!(tree["tree"]["bytes"].as_i64(), Some(1_234_567), "{tree}");
}

/// Every claimed Python (3.10 to 3.13): the line allocated after the attach is in the capture,
/// with its bytes, and the process ends with its own status.
#[test]
fn attach_to_each_claimed_python() {
    for (minor, py) in memtrace_e2e::python::claimed_pythons() {
        let dir = scratch(&format!("attach_py3{minor}"));
        write(&dir, "sl.py", SCRIPT);
        let mut cmd = Command::new(&py);
        cmd.arg("sl.py");
        let target = Target::start(cmd, &dir);
        let pid = target.pid();
        let Some(_) = attached(&pid, "cap.bin", &dir) else {
            return;
        };
        std::fs::write(dir.join("go"), "").expect("go");
        wait_for(&dir.join("allocated"));
        detached(&pid, &dir);
        std::fs::write(dir.join("done"), "").expect("done");
        let end = target.finish();
        assert_eq!(end.status.code(), Some(5), "3.{minor}");
        assert_eq!(String::from_utf8_lossy(&end.stderr), "", "3.{minor}");
        let tree = memtrace_e2e::report(&["tree", "--json", "--leaks"], &dir.join("cap.bin"));
        let at_line = bytes_at(&tree["tree"], "sl.py", 7);
        assert!(
            (3_000_000..3_001_000).contains(&at_line),
            "3.{minor}: {at_line}"
        );
    }
}

/// A Python attach does not support (3.9, when pyenv has one): refused, one line.
#[test]
fn attach_refuses_an_unsupported_python() {
    let Some(py) = memtrace_e2e::python::pyenv_python(9) else {
        return;
    };
    let dir = scratch("attach_py39");
    write(&dir, "sl.py", SCRIPT);
    let mut cmd = Command::new(&py);
    cmd.arg("sl.py");
    let target = Target::start(cmd, &dir);
    let out = memtrace(&["attach", &target.pid()], &dir);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("Python 3.9"), "{err}");
    drop(target);
}

/// A stopped process (SIGSTOP) cannot answer a detach: `detach` said nothing and waited a
/// minute; now it says so at once, and the process detaches itself when it runs again. A
/// zombie was refused as "statically linked".
#[test]
fn detach_of_a_stopped_process_and_attach_to_a_zombie_say_why() {
    let Some((dir, target, pid)) = attached_native("attach_stopped") else {
        return;
    };
    let signal = |sig: &str| {
        let s = Command::new("kill")
            .args([sig, &pid])
            .status()
            .expect("kill");
        assert!(s.success());
    };
    signal("-STOP");
    // Stopped is the state once the signal is delivered.
    let stat = format!("/proc/{pid}/stat");
    let started = Instant::now();
    while !std::fs::read_to_string(&stat)
        .unwrap_or_default()
        .rsplit_once(')')
        .is_some_and(|(_, rest)| rest.trim_start().starts_with('T'))
    {
        assert!(started.elapsed() < Duration::from_secs(10), "never stopped");
        std::thread::sleep(Duration::from_millis(10));
    }
    let started = Instant::now();
    let out = memtrace(&["detach", &pid], &dir);
    assert_refused(&out, "is stopped");
    // Not the minute a detach waits for a stop to be acknowledged.
    assert!(started.elapsed() < Duration::from_secs(30));
    signal("-CONT");
    // The request stands: the process stops tracking by itself.
    let started = Instant::now();
    loop {
        let out = memtrace(&["detach", &pid], &dir);
        if !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("is not attached")
        {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{out:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::fs::write(dir.join("go"), "").expect("go");
    wait_for(&dir.join("allocated"));
    std::fs::write(dir.join("done"), "").expect("done");
    let end = target.finish();
    assert_eq!(end.status.code(), Some(7));
    assert_eq!(String::from_utf8_lossy(&end.stdout), "bye\n");

    // A zombie: a child that ended and that its parent (a shell that sleeps) never waits for.
    let mut parent = Command::new("sh")
        .args(["-c", "sleep 0.1 & exec sleep 60"])
        .spawn()
        .expect("sh");
    // Once the child is a zombie (however slow the machine).
    let children = format!("/proc/{0}/task/{0}/children", parent.id());
    let started = Instant::now();
    let zombie = loop {
        let list = std::fs::read_to_string(&children).unwrap_or_default();
        let child = list.split_whitespace().next().unwrap_or("").to_string();
        let state = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
        if !child.is_empty()
            && state
                .rsplit_once(')')
                .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
        {
            break child;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no zombie: {list}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = memtrace(&["attach", &zombie], &dir);
    assert_refused(&out, "has exited");
    let _ = parent.kill();
    let _ = parent.wait();
}

#[test]
fn two_attaches_at_once_leave_one_attached_and_detachable() {
    // The second took the first's files for stale ones and removed them: the process stayed
    // tracked with no way to detach.
    let dir = scratch("attach_twice_at_once");
    let prog = memtrace_e2e::compile("attach", &dir);
    let target = Target::start(Command::new(&prog), &dir);
    let pid = target.pid();
    let spawn = |out: &str| memtrace_in_background(&["attach", &pid, "-o", out], &dir);
    let (a, b) = (spawn("a.bin"), spawn("b.bin"));
    let (a, b) = (
        a.wait_with_output().expect("a"),
        b.wait_with_output().expect("b"),
    );
    if refused(&a) || refused(&b) {
        return;
    }
    assert!(
        a.status.success() != b.status.success(),
        "exactly one attaches: {a:?} {b:?}"
    );
    let loser = if a.status.success() { &b } else { &a };
    let err = String::from_utf8_lossy(&loser.stderr);
    assert_eq!(loser.status.code(), Some(1), "{loser:?}");
    assert!(
        err.contains("is being attached by another memtrace") || err.contains("already attached"),
        "{err}"
    );
    detached(&pid, &dir);
    let_it_allocate_and_end(target, &dir, 7);
}

#[test]
fn a_python_target_whose_queued_attach_fails_goes_on_unharmed() {
    // The code queued in the interpreter runs at its next bytecode; if memtrace's files are
    // gone by then (memtrace gave up waiting, or was killed), it fails: its error escaped into
    // the program's current line (SystemError) and both tracebacks went to its stderr.
    let dir = scratch("attach_py_queued");
    // Blocked in a call into C until the test opens the gate (a sleep of 12 s left about 2 s
    // after the attach's own 10 s wait: too short on a loaded machine).
    let made = Command::new("mkfifo")
        .arg(dir.join("gate"))
        .status()
        .expect("mkfifo runs");
    assert!(made.success());
    let script = write(
        &dir,
        "blocked.py",
        "print('ready', flush=True)\nwith open('gate') as f:\n    f.read()\nx = bytearray(1000)\nprint('bye')\nraise SystemExit(5)\n",
    );
    let mut cmd = Command::new(python());
    cmd.arg(&script);
    let target = Target::start(cmd, &dir);
    let pid = target.pid();
    let Some(out) = attached(&pid, "cap.bin", &dir) else {
        return;
    };
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("tracking starts when its main thread next runs Python code"),
        "{out:?}"
    );
    let state = std::env::temp_dir().join(format!("memtrace-attach.{pid}"));
    std::fs::remove_dir_all(&state).expect("the attach's state directory");
    std::fs::write(dir.join("gate"), "").expect("open the gate");
    let end = target.finish();
    assert_eq!(end.status.code(), Some(5), "{end:?}");
    assert_eq!(String::from_utf8_lossy(&end.stdout), "bye\n");
    assert_eq!(String::from_utf8_lossy(&end.stderr), "", "{end:?}");
    assert!(!dir.join("cap.bin").exists());
}

#[test]
fn attach_to_a_process_traced_by_another_names_the_tracer() {
    // It said "ptrace is not permitted here (a container without CAP_SYS_PTRACE ...)".
    let dir = scratch("attach_traced");
    let prog = memtrace_e2e::compile("attach", &dir);
    let target = Target::start(Command::new(&prog), &dir);
    let pid: i32 = target.pid().parse().expect("a pid");
    // SAFETY: PTRACE_SEIZE of this test's own child makes this thread its tracer; the child is
    // killed at the end (Target's drop).
    if unsafe { libc::ptrace(libc::PTRACE_SEIZE, pid, 0, 0) } != 0 {
        eprintln!("skipped: ptrace is refused here");
        return;
    }
    let out = memtrace(&["attach", &pid.to_string(), "-o", "cap.bin"], &dir);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("it is already traced by process"), "{err}");
    assert!(!dir.join("cap.bin").exists());
}

#[test]
fn attach_to_a_program_inside_malloc_waits_for_a_safe_point() {
    // The injected call ran wherever the main thread stopped: inside malloc, a single-threaded
    // program's heap was corrupted (4 of 10 attaches aborted it in a sweep).
    let dir = scratch("attach_malloc_loop");
    let prog = memtrace_e2e::compile("malloc_loop", &dir);
    for round in 0..8 {
        let _ = std::fs::remove_file(dir.join("done"));
        let target = Target::start(Command::new(&prog), &dir);
        let pid = target.pid();
        let cap = format!("cap{round}.bin");
        let Some(_) = attached(&pid, &cap, &dir) else {
            return;
        };
        detached(&pid, &dir);
        std::fs::write(dir.join("done"), "").expect("done");
        let end = target.finish();
        assert_eq!(end.status.code(), Some(7), "round {round}: {end:?}");
        assert_eq!(
            String::from_utf8_lossy(&end.stdout),
            "bye\n",
            "round {round}"
        );
        assert!(dir.join(&cap).is_file(), "round {round}");
    }
}

#[test]
fn attach_to_a_program_with_an_allocator_of_its_own_under_a_lock_leaves_it_running() {
    // The program's malloc (its executable's) holds its lock while it maps memory and sleeps.
    // The tracker's own memory came from that malloc: a hook of the mmap made under the lock
    // waited for the lock forever (6 of 6 attaches hung it). And the injected dlopen allocates
    // from it: a main thread stopped in the sleep under the lock made it wait for itself (2
    // of 6).
    let dir = scratch("attach_own_allocator");
    let prog = memtrace_e2e::compile("attach_own_allocator", &dir);
    for round in 0..4 {
        let _ = std::fs::remove_file(dir.join("done"));
        let target = Target::start(Command::new(&prog), &dir);
        let pid = target.pid();
        let cap = format!("cap{round}.bin");
        let Some(_) = attached(&pid, &cap, &dir) else {
            return;
        };
        // Detached once the capture holds the allocator's mappings (however slow the machine).
        let start = Instant::now();
        while memtrace_e2e::num(&memtrace_e2e::stats(&dir.join(&cap)), "total_allocations") == 0 {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "round {round}: nothing recorded"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        detached(&pid, &dir);
        std::fs::write(dir.join("done"), "").expect("done");
        let end = target.finish();
        assert_eq!(end.status.code(), Some(5), "round {round}: {end:?}");
        assert_eq!(
            String::from_utf8_lossy(&end.stdout),
            "bye\n",
            "round {round}"
        );
        // What the hooks saw: the allocator's own mappings, 64 KiB each (its malloc is called
        // directly in the executable, never through a patched slot).
        let s = memtrace_e2e::stats(&dir.join(&cap));
        let (count, bytes) = (
            memtrace_e2e::num(&s, "total_allocations"),
            memtrace_e2e::num(&s, "total_bytes"),
        );
        assert!(count > 0, "round {round}: {s}");
        assert_eq!(bytes, count * 65536, "round {round}: {s}");
    }
}

#[test]
fn attach_to_an_idle_program_whose_stack_holds_words_into_its_allocator() {
    // Its malloc is a library's, and its idle thread waits in poll() under a buffer of words
    // pointing into that library's code (stale return addresses, as an idle service with
    // jemalloc has): each read as the thread being under its allocator, and every attach gave
    // up after 5 s. Only the return address past the C library's frames tells.
    let dir = scratch("attach_idle_stale");
    let prog = memtrace_e2e::compile_linked(
        (
            "lib_allocator",
            "idle_with_stale_words",
            "idle_with_stale_words",
        ),
        &dir,
        &["-O0", "-g", "-fno-builtin", "-pthread"],
        &[],
    );
    for round in 0..3 {
        let _ = std::fs::remove_file(dir.join("done"));
        let target = Target::start(Command::new(&prog), &dir);
        let pid = target.pid();
        let cap = format!("idle{round}.bin");
        let Some(_) = attached(&pid, &cap, &dir) else {
            return;
        };
        detached(&pid, &dir);
        std::fs::write(dir.join("done"), "").expect("done");
        let end = target.finish();
        assert_eq!(end.status.code(), Some(5), "round {round}: {end:?}");
        assert_eq!(
            String::from_utf8_lossy(&end.stdout),
            "bye\n",
            "round {round}"
        );
    }
}

/// Sends SIGUSR1 to the target (tests/programs/fp_registers.c ends its spin on it).
fn signal_usr1(target: &Target) {
    let pid: i32 = target.pid().parse().expect("pid");
    // SAFETY: kill with a pid of our own child and a signal number.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGUSR1) }, 0);
}

/// fp_registers ended with its own status and every SSE register as it was.
fn registers_kept(target: Target, round: &str) {
    let end = target.finish();
    assert_eq!(end.status.code(), Some(3), "{round}: {end:?}");
    let out = String::from_utf8_lossy(&end.stdout);
    // ymm2's 256 bits where the CPU has AVX (lost when memtrace died mid-call).
    let wide = if out.ends_with("no avx\n") {
        "no avx\n"
    } else {
        "ymm2 kept\n"
    };
    assert_eq!(
        out,
        format!("xmm0 kept\nxmm1 kept\nxmm8 kept\nxmm15 kept\n{wide}"),
        "{round}"
    );
}

#[test]
fn attach_gives_the_program_back_every_register() {
    // The injected dlopen and the tracker's start use the SSE registers; only the general
    // registers were put back: a program stopped with live values in xmm0, xmm1 and xmm8 went
    // on with zeros there.
    let dir = scratch("attach_fp_registers");
    let prog = memtrace_e2e::compile("fp_registers", &dir);
    for round in 0..3 {
        let target = Target::start(Command::new(&prog), &dir);
        let pid = target.pid();
        let cap = format!("cap{round}.bin");
        let Some(_) = attached(&pid, &cap, &dir) else {
            return;
        };
        detached(&pid, &dir);
        signal_usr1(&target);
        registers_kept(target, &format!("round {round}"));
        assert!(dir.join(&cap).is_file(), "round {round}");
    }
}

/// `memtrace attach` that exits at once (as if killed) while the process runs its `call`th
/// injected call (1: dlopen, 2: the tracker's start).
fn attach_abandoned_at(call: &str, pid: &str, cap: &str, dir: &Path) -> Output {
    Command::new(memtrace_bin())
        .args(["attach", pid, "-o", cap])
        .env("MEMTRACE_TEST_ABANDON_CALL", call)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output_watched()
}

#[test]
fn a_memtrace_gone_during_its_call_leaves_the_program_unharmed() {
    // The call returned to address 0, where memtrace caught it: a memtrace killed meanwhile
    // (or giving up on a call that waits) left the program to crash there. The call now
    // returns through a signal frame that restores the thread by itself.
    let dir = scratch("attach_abandoned");
    let prog = memtrace_e2e::compile("fp_registers", &dir);
    for call in ["1", "2"] {
        let target = Target::start(Command::new(&prog), &dir);
        let pid = target.pid();
        let cap = format!("cap{call}.bin");
        let out = attach_abandoned_at(call, &pid, &cap, &dir);
        if refused(&out) {
            return;
        }
        assert_eq!(out.status.code(), Some(70), "call {call}: {out:?}");
        if call == "2" {
            // The start ran to its end: tracking runs and detaches as always.
            detached(&pid, &dir);
            assert!(dir.join(&cap).is_file());
        } else {
            std::thread::sleep(Duration::from_millis(300));
        }
        signal_usr1(&target);
        registers_kept(target, &format!("abandoned in call {call}"));
        let _ =
            std::fs::remove_dir_all(std::env::temp_dir().join(format!("memtrace-attach.{pid}")));
    }
    // A Python program, abandoned while it loads the tracker, ends as it would have.
    let target = python_target(&dir, "sl.py", SCRIPT);
    let pid = target.pid();
    let out = attach_abandoned_at("1", &pid, "py.bin", &dir);
    assert_eq!(out.status.code(), Some(70), "{out:?}");
    let _ = std::fs::remove_dir_all(std::env::temp_dir().join(format!("memtrace-attach.{pid}")));
    let_it_allocate_and_end(target, &dir, 5);
}

/// The line of tests/programs/sleeper.c: nanosleep's result, its errno, tenths of a second.
/// tests/programs/sleeper.c asked for a sleep of 10 s.
fn sleeper(prog: &Path) -> Command {
    let mut cmd = Command::new(prog);
    cmd.arg("10");
    cmd
}

fn slept(target: Target) -> (String, i64) {
    let end = target.finish();
    assert_eq!(end.status.code(), Some(4), "{end:?}");
    let out = String::from_utf8_lossy(&end.stdout).to_string();
    let tenths = out
        .split_whitespace()
        .last()
        .and_then(|t| t.parse().ok())
        .unwrap_or(-1);
    (out, tenths)
}

#[test]
fn an_attach_during_a_sleep_neither_cuts_it_short_nor_lengthens_it() {
    // The thread is stopped inside nanosleep: after the calls the sleep resumes with the time
    // it had left (the kernel's restart_syscall), neither returning EINTR nor starting over.
    let dir = scratch("attach_sleeper");
    let prog = memtrace_e2e::compile("sleeper", &dir);
    let target = Target::start(sleeper(&prog), &dir);
    let pid = target.pid();
    std::thread::sleep(Duration::from_millis(1000));
    let out = memtrace(
        &["attach", &pid, "-o", "cap.bin", "--duration", "0.5"],
        &dir,
    );
    if refused(&out) {
        return;
    }
    assert!(out.status.success(), "{out:?}");
    let (line, tenths) = slept(target);
    assert!(line.starts_with("nanosleep 0 errno 0 "), "{line}");
    // 10 s asked (time for the attach to land in it, and end, on a loaded machine); started
    // over after the attach at 1 s it would take 11.
    assert!((100..108).contains(&tenths), "{line}");
    // A memtrace gone during its call: the frame restarts the sleep from its start (the
    // kernel's record of the time left does not survive rt_sigreturn), still without EINTR.
    let target = Target::start(sleeper(&prog), &dir);
    let pid = target.pid();
    std::thread::sleep(Duration::from_millis(500));
    let out = attach_abandoned_at("1", &pid, "cap2.bin", &dir);
    assert_eq!(out.status.code(), Some(70), "{out:?}");
    let _ = std::fs::remove_dir_all(std::env::temp_dir().join(format!("memtrace-attach.{pid}")));
    let (line, tenths) = slept(target);
    assert!(line.starts_with("nanosleep 0 errno 0 "), "{line}");
    assert!(tenths >= 100, "{line}");
}

/// Starts `program` (a shell command run in `dir`, its working directory) in a mount
/// namespace of its own where /tmp and each of `hidden` is an empty tmpfs: a service's private
/// /tmp (systemd's PrivateTmp), a container's other files. None where this machine cannot make
/// one (not root, no unshare): the test says so and ends.
fn start_with_own_files(dir: &Path, program: &str, hidden: &[&Path]) -> Option<Target> {
    let mut script = String::from("mount -t tmpfs none /tmp");
    for h in hidden {
        script += &format!(" && mount -t tmpfs none '{}'", h.display());
    }
    let probe = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .stdin(Stdio::null())
        .output();
    if !probe.as_ref().is_ok_and(|o| o.status.success()) {
        eprintln!("skipped: cannot make a mount namespace here: {probe:?}");
        return None;
    }
    let mut cmd = Command::new("unshare");
    cmd.args(["-m", "--propagation", "private", "sh", "-c"])
        .arg(format!("{script} && exec {program}"));
    Some(Target::start(cmd, dir))
}

#[test]
fn attach_to_a_process_with_its_own_tmp_detaches_and_counts_exactly() {
    // memtrace's `stop` file went to its own /tmp: a service with a private /tmp never saw it,
    // and stayed tracked until it ended (detach gave up after a minute).
    let dir = scratch("attach_own_tmp");
    memtrace_e2e::compile("attach", &dir);
    // The tracker library is not in the process's files either: it loads a copy.
    let bin_dir = memtrace_dir();
    let Some(target) = start_with_own_files(&dir, "./attach", &[&bin_dir]) else {
        return;
    };
    let pid = target.pid();
    // A capture in a directory the process does not have: refused, saying what to write.
    let out = memtrace(&["attach", &pid, "-o", "cap.bin"], &dir);
    if refused(&out) {
        return;
    }
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    let cap = format!("/proc/{pid}/root/tmp/cap.bin");
    assert!(err.contains(&format!("-o {cap}")), "{err}");
    assert!(
        attached(&pid, &cap, &dir).is_some(),
        "ptrace refused after it was allowed"
    );
    std::fs::write(dir.join("go"), "").expect("go");
    wait_for(&dir.join("allocated"));
    let start = Instant::now();
    detached(&pid, &dir);
    assert!(
        start.elapsed() < Duration::from_secs(40),
        "{:?}",
        start.elapsed()
    );
    // Read through the process's root while it lives: its /tmp ends with it.
    let tree = memtrace_e2e::report(&["tree", "--json", "--leaks"], Path::new(&cap));
    assert_eq!(tree["tree"]["bytes"].as_i64(), Some(1_234_567), "{tree}");
    assert_eq!(tree["tree"]["allocations"].as_i64(), Some(1), "{tree}");
    assert_eq!(bytes_at(&tree["tree"], "attach.c", 23), 1_234_567);
    // Again: the copy of the tracker it loaded is gone from its path by now (the attach's
    // directory went at the detach), and its symbols are read through /proc/PID/map_files
    // (every later attach failed: "could not load the tracker library").
    let cap2 = format!("/proc/{pid}/root/tmp/cap2.bin");
    assert!(
        attached(&pid, &cap2, &dir).is_some(),
        "ptrace refused after it was allowed"
    );
    detached(&pid, &dir);
    assert!(Path::new(&cap2).is_file());
    std::fs::write(dir.join("done"), "").expect("done");
    let end = target.finish();
    assert_eq!(end.status.code(), Some(7), "{end:?}");
    assert_eq!(String::from_utf8_lossy(&end.stdout), "bye\n");
}

/// The directory of memtrace and its tracker library.
fn memtrace_dir() -> std::path::PathBuf {
    std::fs::canonicalize(memtrace_bin())
        .expect("memtrace")
        .parent()
        .expect("its directory")
        .to_path_buf()
}

#[test]
fn attach_to_a_python_process_with_its_own_tmp_records_and_detaches() {
    // Python opens its script by its absolute path: the script must lie outside the hidden /tmp.
    let dir = workspace().join("target").join(format!(
        "memtrace-e2e-{}-attach_own_tmp_py",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch directory");
    write(&dir, "sl.py", SCRIPT);
    let program = format!("'{}' sl.py", python().display());
    let Some(target) = start_with_own_files(&dir, &program, &[&memtrace_dir()]) else {
        return;
    };
    let pid = target.pid();
    let cap = format!("/proc/{pid}/root/tmp/cap.bin");
    let Some(_) = attached(&pid, &cap, &dir) else {
        return;
    };
    std::fs::write(dir.join("go"), "").expect("go");
    wait_for(&dir.join("allocated"));
    detached(&pid, &dir);
    let tree = memtrace_e2e::report(&["tree", "--json", "--leaks"], Path::new(&cap));
    let at_line = bytes_at(&tree["tree"], "sl.py", 7);
    assert!((3_000_000..3_001_000).contains(&at_line), "{at_line}");
    std::fs::write(dir.join("done"), "").expect("done");
    let end = target.finish();
    assert_eq!(end.status.code(), Some(5), "{end:?}");
    assert_eq!(String::from_utf8_lossy(&end.stdout), "bye\n");
    assert_eq!(String::from_utf8_lossy(&end.stderr), "");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn attach_to_a_process_whose_main_thread_ended_uses_another_thread() {
    // The main thread's pthread_exit leaves it a zombie while the process runs on: the attach
    // took the process for an exited one.
    let dir = scratch("attach_main_exits");
    let prog = memtrace_e2e::compile("main_exits", &dir);
    let target = Target::start(Command::new(&prog), &dir);
    let pid = target.pid();
    let stat = format!("/proc/{pid}/stat");
    let start = Instant::now();
    while !std::fs::read_to_string(&stat).is_ok_and(|s| {
        s.rsplit_once(')')
            .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
    }) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the main thread did not end"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let Some(_) = attached(&pid, "cap.bin", &dir) else {
        return;
    };
    std::fs::write(dir.join("go"), "").expect("go");
    wait_for(&dir.join("allocated"));
    detached(&pid, &dir);
    std::fs::write(dir.join("done"), "").expect("done");
    let end = target.finish();
    assert_eq!(end.status.code(), Some(6), "{end:?}");
    assert_eq!(String::from_utf8_lossy(&end.stdout), "bye\n");
    let tree = memtrace_e2e::report(&["tree", "--json", "--leaks"], &dir.join("cap.bin"));
    assert_eq!(tree["tree"]["bytes"].as_i64(), Some(1_234_567), "{tree}");
    assert_eq!(bytes_at(&tree["tree"], "main_exits.c", 18), 1_234_567);
}

/// The state letter of process `pid`'s main thread (R running, S asleep, t traced...).
fn thread_state(pid: &str) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

#[test]
fn an_interrupted_attach_leaves_the_process_as_it_was_and_attachable() {
    // A Ctrl-C during the calls killed memtrace with its files left: the process looked
    // attached ("memtrace detach first") and detach waited a minute for nothing. And a call
    // given up could still start tracking later, with nobody able to stop it.
    let dir = scratch("attach_interrupted");
    let prog = memtrace_e2e::compile("loader_held", &dir);
    let target = Target::start(Command::new(&prog), &dir);
    let pid = target.pid();
    wait_for(&dir.join("holding"));
    // The injected dlopen waits for the loader's lock, which the program's other thread holds
    // until the test releases it. Ctrl-C comes once memtrace is in that call (its directory
    // made, the main thread, which otherwise spins, asleep on the lock).
    let attach = memtrace_in_background(&["attach", &pid, "-o", "cap.bin"], &dir);
    wait_for(&std::env::temp_dir().join(format!("memtrace-attach.{pid}/active")));
    let start = Instant::now();
    while thread_state(&pid) != Some('S') {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the call never waited"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: kill with our child's pid.
    assert_eq!(unsafe { libc::kill(attach.id() as i32, libc::SIGINT) }, 0);
    let out = attach.wait_with_output().expect("memtrace attach ends");
    if refused(&out) {
        return;
    }
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("interrupted"), "{err}");
    assert!(
        !std::env::temp_dir()
            .join(format!("memtrace-attach.{pid}"))
            .exists(),
        "the attach's directory is left"
    );
    // Once the lock is free the dlopen ends and the thread goes back to its loop; a new
    // attach works and detaches.
    std::fs::write(dir.join("release"), "").expect("release the lock");
    assert!(
        attached(&pid, "cap2.bin", &dir).is_some(),
        "ptrace refused after it was allowed"
    );
    detached(&pid, &dir);
    signal_usr1(&target);
    let end = target.finish();
    assert_eq!(end.status.code(), Some(8), "{end:?}");
    assert_eq!(String::from_utf8_lossy(&end.stdout), "done\n");
    assert!(!dir.join("cap.bin").exists());
}

#[test]
fn attach_waits_for_a_signal_handler_and_holds_signals_during_its_calls() {
    let dir = scratch("attach_handlers");
    let prog = memtrace_e2e::compile("handlers", &dir);
    // A handler running on an 8 KiB alternate stack: the calls ran on it and wrote 3,000 bytes
    // below it (into the program's heap). The attach now waits for the handler to return.
    let mut cmd = Command::new(&prog);
    cmd.arg("altstack");
    let target = Target::start(cmd, &dir);
    let pid = target.pid();
    std::thread::sleep(Duration::from_millis(300));
    let Some(_) = attached(&pid, "alt.bin", &dir) else {
        return;
    };
    detached(&pid, &dir);
    std::fs::write(dir.join("go"), "").expect("go");
    let end = target.finish();
    assert_eq!(end.status.code(), Some(9), "{end:?}");
    assert_eq!(String::from_utf8_lossy(&end.stdout), "guard kept\n");
    // A handler that allocates, every 0.5 ms, in a program that only waits in pause(): run
    // inside the injected calls it re-entered the allocator (2 of 15 attaches aborted with a
    // malloc assertion in a sweep). The calls now hold the signals.
    for round in 0..3 {
        let _ = std::fs::remove_file(dir.join("done"));
        let mut cmd = Command::new(&prog);
        cmd.arg("pause");
        let target = Target::start(cmd, &dir);
        let pid = target.pid();
        std::thread::sleep(Duration::from_millis(300));
        let cap = format!("pause{round}.bin");
        assert!(
            attached(&pid, &cap, &dir).is_some(),
            "ptrace refused after it was allowed"
        );
        detached(&pid, &dir);
        std::fs::write(dir.join("done"), "").expect("done");
        let end = target.finish();
        assert_eq!(end.status.code(), Some(9), "round {round}: {end:?}");
        assert_eq!(
            String::from_utf8_lossy(&end.stdout),
            "done\n",
            "round {round}"
        );
    }
}

#[test]
fn waits_that_a_stop_ends_with_eintr_go_on_waiting() {
    // epoll_wait, sigtimedwait, a socket with a receive timeout and semtimedop return EINTR
    // after any ptrace stop (signal(7)): the attach made them fail at once where the program
    // would have waited. They start again (a relative timeout from its beginning).
    let dir = scratch("attach_waits");
    let prog = memtrace_e2e::compile("waits", &dir);
    for (mode, result) in [
        ("epoll", "0 errno 0"),
        ("sigtimedwait", "-1 errno 11"),
        ("recv", "-1 errno 11"),
        ("semtimedop", "-1 errno 11"),
        ("read", "-1 errno 11"),
        ("readv", "-1 errno 11"),
        ("write", "-1 errno 11"),
        // Waiting for a completion that never comes: ETIME (62) at its timeout.
        ("io_uring", "-1 errno 62"),
    ] {
        // A wait of 6 s: long enough that the attach lands in it on a loaded machine. The
        // times are taken from before the start, which is before the program's own clock
        // starts (it reads it after "ready", which the test may read late).
        let _ = std::fs::remove_file(dir.join("done"));
        let mut cmd = Command::new(&prog);
        cmd.args([mode, "6"]);
        let started = Instant::now();
        let target = Target::start(cmd, &dir);
        let pid = target.pid();
        std::thread::sleep(Duration::from_millis(300));
        let cap = format!("{mode}.bin");
        let Some(_) = attached(&pid, &cap, &dir) else {
            return;
        };
        let attach_done = started.elapsed();
        detached(&pid, &dir);
        // The program waits for this after its line, so that the detach finds it running.
        std::fs::write(dir.join("done"), "").expect("done");
        let end = target.finish();
        assert_eq!(end.status.code(), Some(4), "{mode}: {end:?}");
        let line = String::from_utf8_lossy(&end.stdout).to_string();
        if line == "io_uring unavailable\n" {
            eprintln!("io_uring is not allowed here: not tried");
            continue;
        }
        assert!(line.starts_with(&format!("{mode} {result} ")), "{line}");
        let tenths: i64 = line
            .split_whitespace()
            .last()
            .and_then(|t| t.parse().ok())
            .unwrap_or(-1);
        if attach_done >= Duration::from_secs(6) {
            // The wait was over before the attach: nothing of it was tried.
            eprintln!("{mode}: the attach took {attach_done:?}, past the wait: not tried");
            continue;
        }
        // 6 s asked: not cut short, and started again at most from the attach's stop (before
        // the attach was done), with a second of slack for the program's wake-up.
        let latest = 60 + (attach_done.as_millis() as i64) / 100 + 10;
        assert!((60..=latest).contains(&tenths), "{line} (at most {latest})");
    }
}

#[test]
fn an_attach_leaves_no_files_and_clears_those_of_gone_processes() {
    // Every attach left its lock file in /tmp, and a killed memtrace or a process that ended
    // attached its directory: 800 files after a sweep.
    let tmp = std::env::temp_dir();
    let mut gone = Command::new("true").spawn().expect("true runs");
    let gone_pid = gone.id();
    gone.wait().expect("true ends");
    let left_dir = tmp.join(format!("memtrace-attach.{gone_pid}"));
    let left_lock = tmp.join(format!("memtrace-attach.{gone_pid}.lock"));
    std::fs::create_dir_all(&left_dir).expect("a leftover directory");
    std::fs::write(left_dir.join("active"), "x").expect("its active file");
    std::fs::write(&left_lock, "").expect("a leftover lock");
    let Some((dir, target, pid)) = attached_native("attach_leftovers") else {
        return;
    };
    assert!(!left_dir.exists(), "the gone process's directory stays");
    assert!(!left_lock.exists(), "the gone process's lock stays");
    detached(&pid, &dir);
    assert!(!tmp.join(format!("memtrace-attach.{pid}.lock")).exists());
    assert!(!tmp.join(format!("memtrace-attach.{pid}")).exists());
    let_it_allocate_and_end(target, &dir, 7);
}

#[test]
fn a_failed_attach_keeps_the_capture_that_f_would_replace() {
    // -f removed the old capture before anything could fail.
    let dir = scratch("attach_keeps_capture");
    std::fs::write(dir.join("keep.bin"), "old capture").expect("keep.bin");
    let mut sleeper = Command::new("sleep").arg("30").spawn().expect("sleep runs");
    let pid = sleeper.id().to_string();
    let out = memtrace(
        &["attach", &pid, "--duration", "0", "-f", "-o", "keep.bin"],
        &dir,
    );
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        std::fs::read_to_string(dir.join("keep.bin")).expect("kept"),
        "old capture"
    );
    let left: Vec<_> = std::fs::read_dir(&dir)
        .expect("dir")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(left.len(), 1, "{left:?}");
}

/// The attach's directory of process `pid` (the tests' processes share memtrace's /tmp).
fn attach_dir(pid: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("memtrace-attach.{pid}"))
}

/// `memtrace detach PID` of an attach whose tracking never started: at once, with status 0,
/// saying so, and with the attach's directory gone.
fn detach_cancels(pid: &str, dir: &Path) {
    let start = Instant::now();
    let out = memtrace(&["detach", pid], dir);
    assert!(out.status.success(), "{out:?}");
    assert!(start.elapsed() < Duration::from_secs(30), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("had not started tracking"), "{err}");
    assert!(!attach_dir(pid).exists());
}

#[test]
fn a_native_attach_whose_memtrace_died_before_the_start_can_be_redone_or_cancelled() {
    // memtrace killed between the dlopen and the tracker's start left the tracker loaded and
    // the attach's `active` file: every later attach said "already attached", and detach
    // waited a minute for a tracking that never ran, then failed.
    let dir = scratch("attach_half_native");
    let prog = memtrace_e2e::compile("attach", &dir);
    let target = Target::start(Command::new(&prog), &dir);
    let pid = target.pid();
    let out = attach_abandoned_at("1", &pid, "lost.bin", &dir);
    if refused(&out) {
        return;
    }
    assert_eq!(out.status.code(), Some(70), "{out:?}");
    // The dlopen ends by itself.
    std::thread::sleep(Duration::from_millis(300));
    let Some(_) = attached(&pid, "cap.bin", &dir) else {
        return;
    };
    std::fs::write(dir.join("go"), "").expect("go");
    wait_for(&dir.join("allocated"));
    detached(&pid, &dir);
    std::fs::write(dir.join("done"), "").expect("done");
    let end = target.finish();
    assert_eq!(end.status.code(), Some(7), "{end:?}");
    assert_eq!(String::from_utf8_lossy(&end.stdout), "bye\n");
    let tree = memtrace_e2e::report(&["tree", "--json", "--leaks"], &dir.join("cap.bin"));
    assert_eq!(tree["tree"]["bytes"].as_i64(), Some(1_234_567), "{tree}");
    assert_eq!(tree["tree"]["allocations"].as_i64(), Some(1), "{tree}");
    assert_eq!(bytes_at(&tree["tree"], "attach.c", 23), 1_234_567);
    assert!(!dir.join("lost.bin").exists());

    // The same left-over state, ended by detach instead.
    let _ = std::fs::remove_file(dir.join("go"));
    let _ = std::fs::remove_file(dir.join("allocated"));
    let _ = std::fs::remove_file(dir.join("done"));
    let target = Target::start(Command::new(&prog), &dir);
    let pid = target.pid();
    let out = attach_abandoned_at("1", &pid, "lost2.bin", &dir);
    assert_eq!(out.status.code(), Some(70), "{out:?}");
    std::thread::sleep(Duration::from_millis(300));
    detach_cancels(&pid, &dir);
    let_it_allocate_and_end(target, &dir, 7);
    assert!(!dir.join("lost2.bin").exists());
}

/// Blocks in a C call (the open of the FIFO `gate`) right after "ready", so that an attach's
/// Python start stays queued until the test opens the gate; keeps 2,000,000 bytes at line 6,
/// exits with status 3 after `done`.
const GATED: &str = "import os, time
print('ready', flush=True)
with open('gate') as f:
    f.read()
time.sleep(0.2)
KEEP = bytearray(2_000_000)
open('allocated', 'w').close()
while not os.path.exists('done'):
    time.sleep(0.05)
print('bye')
raise SystemExit(3)
";

/// Starts GATED in `dir` (its FIFO made afresh).
fn gated_python(dir: &Path) -> Target {
    for f in ["gate", "allocated", "done"] {
        let _ = std::fs::remove_file(dir.join(f));
    }
    let made = Command::new("mkfifo")
        .arg(dir.join("gate"))
        .status()
        .expect("mkfifo runs");
    assert!(made.success());
    python_target(dir, "gated.py", GATED)
}

/// Opens the gate, lets the script allocate and end: status 3, "bye", nothing on stderr.
fn open_gate_and_end(target: Target, dir: &Path) {
    std::fs::write(dir.join("gate"), "open").expect("the gate opens");
    wait_for(&dir.join("allocated"));
    std::fs::write(dir.join("done"), "").expect("done");
    let end = target.finish();
    assert_eq!(end.status.code(), Some(3), "{end:?}");
    assert_eq!(String::from_utf8_lossy(&end.stdout), "bye\n");
    assert_eq!(String::from_utf8_lossy(&end.stderr), "");
}

#[test]
fn a_python_attach_still_queued_can_be_redone_or_cancelled() {
    // A Python process starts tracking when its interpreter next runs Python code: until then
    // a second attach said "already attached" and detach waited a minute and failed.
    let dir = scratch("attach_queued_python");

    // Cancelled by detach: the queued start does nothing when it runs.
    let target = gated_python(&dir);
    let pid = target.pid();
    let Some(out) = attached(&pid, "never.bin", &dir) else {
        return;
    };
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("tracking starts when"), "{err}");
    detach_cancels(&pid, &dir);
    open_gate_and_end(target, &dir);
    std::thread::sleep(Duration::from_millis(300));
    assert!(!dir.join("never.bin").exists());

    // Attached again: the second attach's capture is the one that records.
    let target = gated_python(&dir);
    let pid = target.pid();
    let Some(_) = attached(&pid, "first.bin", &dir) else {
        return;
    };
    let Some(_) = attached(&pid, "second.bin", &dir) else {
        return;
    };
    std::fs::write(dir.join("gate"), "open").expect("the gate opens");
    wait_for(&dir.join("allocated"));
    detached(&pid, &dir);
    std::fs::write(dir.join("done"), "").expect("done");
    let end = target.finish();
    assert_eq!(end.status.code(), Some(3), "{end:?}");
    assert_eq!(String::from_utf8_lossy(&end.stdout), "bye\n");
    assert_eq!(String::from_utf8_lossy(&end.stderr), "");
    assert!(!dir.join("first.bin").exists());
    let tree = memtrace_e2e::report(&["tree", "--json", "--leaks"], &dir.join("second.bin"));
    let at_line = bytes_at(&tree["tree"], "gated.py", 6);
    assert!(
        (2_000_000..2_001_000).contains(&at_line),
        "{at_line}: {tree}"
    );
}

/// Prints the threads `threading` knows once tracking runs, keeps 1,500,000 bytes at line 6,
/// exits with status 4 after `done`.
const THREADS_SEEN: &str = "import os, threading, time
print('ready', flush=True)
while not os.path.exists('go'):
    time.sleep(0.05)
print([t.name for t in threading.enumerate()], threading.active_count(), flush=True)
KEEP = bytearray(1_500_000)
open('allocated', 'w').close()
while not os.path.exists('done'):
    time.sleep(0.05)
raise SystemExit(4)
";

/// Whether a node of a `tree --json` tree, or one under it, is in `file`.
fn has_file(node: &serde_json::Value, file: &str) -> bool {
    node["file"].as_str() == Some(file)
        || node["children"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| has_file(c, file))
}

#[test]
fn a_python_attach_adds_no_thread_the_program_or_the_capture_sees() {
    // The attach's watcher was a threading.Thread named memtrace-attach: the program's
    // threading.enumerate() and active_count() showed it, and its polling (reading the
    // attach's files ten times a second) was in the capture as a thread of the program's.
    let dir = scratch("attach_no_thread_seen");
    let target = python_target(&dir, "threads_seen.py", THREADS_SEEN);
    let pid = target.pid();
    let Some(_) = attached(&pid, "cap.bin", &dir) else {
        return;
    };
    // Tracking runs and the watcher polls for a while.
    std::thread::sleep(Duration::from_millis(700));
    std::fs::write(dir.join("go"), "").expect("go");
    wait_for(&dir.join("allocated"));
    detached(&pid, &dir);
    std::fs::write(dir.join("done"), "").expect("done");
    let end = target.finish();
    assert_eq!(end.status.code(), Some(4), "{end:?}");
    assert_eq!(
        String::from_utf8_lossy(&end.stdout),
        "['MainThread'] 1\n",
        "{end:?}"
    );
    assert_eq!(String::from_utf8_lossy(&end.stderr), "");
    let stats = memtrace_e2e::stats(&dir.join("cap.bin"));
    assert_eq!(stats["complete"], serde_json::Value::Bool(true), "{stats}");
    let threads = stats["threads"].as_array().expect("threads");
    assert_eq!(threads.len(), 1, "{stats}");
    assert_eq!(threads[0]["name"], "MainThread", "{stats}");
    let tree = memtrace_e2e::report(&["tree", "--json"], &dir.join("cap.bin"));
    assert!(!has_file(&tree["tree"], "<string>"), "{tree}");
    let tree = memtrace_e2e::report(&["tree", "--json", "--leaks"], &dir.join("cap.bin"));
    let at_line = bytes_at(&tree["tree"], "threads_seen.py", 6);
    assert!(
        (1_500_000..1_501_000).contains(&at_line),
        "{at_line}: {tree}"
    );
}

/// A program that watches its imports (a finder first in `sys.meta_path`) and the Python
/// functions called from files other than its own (a profile function), and prints both with
/// whether `threading` and memtrace's module are in `sys.modules`.
const IMPORTS_SEEN: &str = "import os, sys, time, builtins
seen, files, imported = [], set(), []
class Finder:
    def find_spec(self, name, path=None, target=None):
        seen.append(name)
sys.meta_path.insert(0, Finder())
def profile(frame, event, arg):
    if event == 'call' and frame.f_code.co_filename not in (__file__, '<string>'):
        files.add(os.path.basename(frame.f_code.co_filename))
sys.setprofile(profile)
real_import = builtins.__import__
def spy(name, *args, **kwargs):
    imported.append(name)
    return real_import(name, *args, **kwargs)
builtins.__import__ = spy
print('ready', flush=True)
while not os.path.exists('go'):
    time.sleep(0.05)
KEEP = bytearray(2_000_000)
threads_seen = 'threading' in sys.modules
import threading
def work():
    global KEPT
    KEPT = bytearray(1_000_000)
worker = threading.Thread(target=work, name='worker-7')
worker.start()
worker.join()
open('allocated', 'w').close()
while not os.path.exists('done'):
    time.sleep(0.05)
sys.setprofile(None)
builtins.__import__ = real_import
print(seen, sorted(files), sorted(set(imported)), threads_seen, '_memtrace_tracker' in sys.modules)
";

#[test]
fn a_python_attach_imports_nothing_into_the_program() {
    // The attach imported memtrace's module through the program's import system, and
    // `threading` (with 11 modules of its own) to name threads: the program's import hooks and
    // profiler saw them, and they stayed in its sys.modules.
    let dir = scratch("attach_imports_nothing");
    for f in ["go", "done"] {
        std::fs::write(dir.join(f), "").expect("gate");
    }
    // -S: no site, whose .pth files may import threading at start.
    let script = write(&dir, "imports_seen.py", IMPORTS_SEEN);
    let alone = Command::new(python())
        .arg("-S")
        .arg(&script)
        .current_dir(&dir)
        .output()
        .expect("python runs");
    assert!(alone.status.success(), "{alone:?}");
    let alone = String::from_utf8_lossy(&alone.stdout).replace("ready\n", "");
    assert!(alone.ends_with("False False\n"), "{alone}");
    for f in ["go", "done", "allocated"] {
        std::fs::remove_file(dir.join(f)).expect("gate");
    }
    let mut cmd = Command::new(python());
    cmd.arg("-S").arg(&script);
    let target = Target::start(cmd, &dir);
    let pid = target.pid();
    let Some(_) = attached(&pid, "cap.bin", &dir) else {
        return;
    };
    std::fs::write(dir.join("go"), "").expect("go");
    wait_for(&dir.join("allocated"));
    detached(&pid, &dir);
    std::fs::write(dir.join("done"), "").expect("done");
    let end = target.finish();
    assert!(end.status.success(), "{end:?}");
    assert_eq!(String::from_utf8_lossy(&end.stdout), alone, "{end:?}");
    assert_eq!(String::from_utf8_lossy(&end.stderr), "");
    let stats = memtrace_e2e::stats(&dir.join("cap.bin"));
    assert_eq!(stats["complete"], serde_json::Value::Bool(true), "{stats}");
    assert_eq!(stats["threads"][0]["name"], "MainThread", "{stats}");
    // A thread of threading, imported by the program while attached, has its name.
    let named = stats["threads"]
        .as_array()
        .is_some_and(|t| t.iter().any(|t| t["name"] == "worker-7"));
    assert!(named, "{stats}");
    let tree = memtrace_e2e::report(&["tree", "--json", "--leaks"], &dir.join("cap.bin"));
    let at_line = bytes_at(&tree["tree"], "imports_seen.py", 19);
    assert!(
        (2_000_000..2_001_000).contains(&at_line),
        "{at_line}: {tree}"
    );
}

#[test]
fn attach_to_threads_loading_libraries_leaves_them_running() {
    // A patching pass (run by one thread's dlopen hook) listed the library another thread was
    // still relocating and made its RELRO pages read-only again under the loader: SIGSEGV in
    // the loader's next relocation write (3 of 3 runs of two such programs at once). Objects
    // the loader has not finished are left to their own dlopen's pass now.
    let dir = scratch("attach_dlopen_threads");
    let prog = memtrace_e2e::compile("dlopen_threads", &dir);
    let lib_src = memtrace_e2e::workspace().join("tests/programs/dlopen_threads_lib.c");
    for i in 0..3 {
        let built = std::process::Command::new("gcc")
            .args([
                "-O1",
                "-shared",
                "-fPIC",
                "-Wl,-z,now",
                "-Wl,-z,relro",
                "-o",
            ])
            .arg(dir.join(format!("lib{i}.so")))
            .arg(&lib_src)
            .output_watched();
        assert!(built.status.success(), "{built:?}");
    }
    // Two targets at once: the crash needed the machine busy.
    let targets: Vec<Target> = (0..2)
        .map(|_| {
            let mut cmd = Command::new(&prog);
            // Libraries of the system (zlib, bzip2's: dpkg's own; expat: python3's), where
            // the crash was found, and ours.
            // It runs until told (`stop`): under load the two attaches took longer than a
            // fixed run, and the second found its target ended.
            cmd.args(["120", "libz.so.1", "libbz2.so.1.0", "libexpat.so.1"])
                .args((0..3).map(|i| format!("./lib{i}.so")));
            Target::start(cmd, &dir)
        })
        .collect();
    for (i, target) in targets.iter().enumerate() {
        let Some(_) = attached(&target.pid(), &format!("cap{i}.bin"), &dir) else {
            return;
        };
    }
    // The loads go on for a while with the tracker in place before the targets end.
    std::thread::sleep(Duration::from_secs(1));
    std::fs::write(dir.join("stop"), "").expect("stop");
    for (i, target) in targets.into_iter().enumerate() {
        let end = target.finish();
        assert_eq!(end.status.code(), Some(9), "target {i}: {end:?}");
        assert_eq!(String::from_utf8_lossy(&end.stdout), "bye\n", "target {i}");
    }
}

#[test]
fn an_attach_waiting_for_a_safe_point_hands_the_program_no_eintr() {
    // While it waited for a place where a call may run, the attach resumed the thread from
    // each of its stops as they were: an epoll_wait loop saw some 2,300 EINTRs in 5 s. (Here
    // the wait lasts until the attach gives up: a stale word on the stack looks like a signal
    // handler running.)
    let dir = scratch("attach_no_eintr_while_waiting");
    let prog = memtrace_e2e::compile("stale_handler_word", &dir);
    let mut cmd = Command::new(&prog);
    cmd.arg("8");
    let target = Target::start(cmd, &dir);
    let out = memtrace(&["attach", "-o", "cap.bin", &target.pid()], &dir);
    if refused(&out) {
        return;
    }
    if out.status.success() {
        detached(&target.pid(), &dir);
    }
    let end = target.finish();
    assert_eq!(end.status.code(), Some(6), "{end:?}");
    assert_eq!(String::from_utf8_lossy(&end.stdout), "EINTR 0\n", "{out:?}");
}

#[test]
fn attach_live_with_a_duration_ends_well_after_the_duration() {
    // The README's `attach --live --duration`: after the duration the view said "the program
    // ended" (the process went on) and quitting it printed "not attached", exit status 1.
    let dir = scratch("attach_live_duration");
    let prog = memtrace_e2e::compile("attach", &dir);
    let target = Target::start(Command::new(&prog), &dir);
    let pid = target.pid();
    // The duration counts from the tracker's start: on a loaded machine it may be over by the
    // time the view first shows.
    let Some(ui) = attach_live_from(&dir, &pid, "--duration 1", &["● running", "■ ended"])
    else {
        return;
    };
    let screen = ui.wait("the end of tracking", |s| s[0].contains("ended"));
    assert!(
        screen[0].contains("tracking stopped: detached, or the process ended"),
        "{}",
        screen[0]
    );
    let (status, err) = quit_attach_live(&ui, &dir);
    assert_eq!(status, "status=0", "{err}");
    assert!(err.contains("memtrace: detached from process"), "{err}");
    std::fs::write(dir.join("go"), "").expect("go");
    wait_for(&dir.join("allocated"));
    std::fs::write(dir.join("done"), "").expect("done");
    let end = target.finish();
    assert_eq!(end.status.code(), Some(7));
    assert_eq!(String::from_utf8_lossy(&end.stdout), "bye\n");
}

#[test]
fn attach_live_to_python_in_a_long_call_waits_for_its_tracking() {
    // A Python process starts tracking when its interpreter next runs Python code: after the
    // attach's own 10 s the view failed at once ("no such file", exit 1) and left the attach
    // armed, the process then tracked to its end with no memtrace to detach it.
    let dir = scratch("attach_live_python_sleeping");
    let target = python_target(
        &dir,
        "sleeper.py",
        "import os, time
print('ready', flush=True)
time.sleep(12)
KEEP = bytearray(2_345_678)
while not os.path.exists('done'):
    time.sleep(0.05)
print('bye')
",
    );
    let pid = target.pid();
    let Some(ui) = attach_live(&dir, &pid, "") else {
        return;
    };
    ui.wait("the line", |s| s.iter().any(|l| l.contains("sleeper.py:4")));
    let (status, err) = quit_attach_live(&ui, &dir);
    assert_eq!(status, "status=0", "{err}");
    std::fs::write(dir.join("done"), "").expect("done");
    let end = target.finish();
    assert_eq!(end.status.code(), Some(0), "{end:?}");
    assert_eq!(String::from_utf8_lossy(&end.stdout), "bye\n");
    assert!(!std::env::temp_dir()
        .join(format!("memtrace-attach.{pid}/active"))
        .exists());
}

#[test]
fn detach_after_the_process_exec_d_says_so_at_once() {
    // The exec took the tracker with the old image: detach waited a minute for it, then
    // gave a hint about Python.
    let dir = scratch("attach_detach_after_exec");
    let prog = memtrace_e2e::compile("exec_after_go", &dir);
    let target = Target::start(Command::new(&prog), &dir);
    let pid = target.pid();
    let Some(_) = attached(&pid, "cap.bin", &dir) else {
        return;
    };
    std::fs::write(dir.join("go"), "").expect("go");
    let start = Instant::now();
    while std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() != "sleep") {
        assert!(start.elapsed() < Duration::from_secs(30), "no exec");
        std::thread::sleep(Duration::from_millis(20));
    }
    let start = Instant::now();
    let out = memtrace(&["detach", &pid], &dir);
    assert!(start.elapsed() < Duration::from_secs(30), "{out:?}");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("ran another program (exec), which ended its tracking"),
        "{err}"
    );
    drop(target);
}

#[test]
fn attach_live_without_a_terminal_leaves_the_process_alone() {
    // It attached, tracked and detached before finding that the view could not be shown.
    let dir = scratch("attach_live_no_terminal");
    let prog = memtrace_e2e::compile("attach", &dir);
    let target = Target::start(Command::new(&prog), &dir);
    let pid = target.pid();
    let out = memtrace(&["attach", "--live", "-o", "cap.bin", &pid], &dir);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim_end(),
        "memtrace: --live needs a terminal (stdout is not one)"
    );
    assert!(!dir.join("cap.bin").exists());
    drop(target);
}

#[test]
fn a_capture_the_process_cannot_create_is_refused_with_the_reason() {
    // The process creates its capture itself: "could not create the capture" said no more
    // (a read-only file system, a directory it may not write).
    let dir = scratch("attach_capture_not_created");
    let prog = memtrace_e2e::compile("attach", &dir);
    let target = Target::start(Command::new(&prog), &dir);
    let pid = target.pid();
    let out = memtrace(&["attach", "-o", "/proc/memtrace-test.bin", &pid], &dir);
    if refused(&out) {
        return;
    }
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim_end(),
        format!(
            "memtrace: process {pid} could not create the capture /proc/memtrace-test.bin: No \
             such file or directory (os error 2) (it is written by the process itself: -o names \
             a file it may create)"
        )
    );
    // It goes on, untracked, and can be attached again.
    let Some(_) = attached(&pid, "cap.bin", &dir) else {
        return;
    };
    detached(&pid, &dir);
    let_it_allocate_and_end(target, &dir, 7);
}

/// SIGTERM (or Ctrl-C) to `memtrace attach --duration 30` once tracking runs ends the
/// tracking there, with a detach and a line saying so (memtrace ended at once, status 0, and
/// the process stayed tracked with no memtrace left); the process goes on to its own end.
#[test]
fn a_terminated_attach_with_a_duration_detaches() {
    // SIGQUIT (Ctrl-backslash) killed memtrace silently, leaving the process tracked.
    for (name, signal) in [("term", libc::SIGTERM), ("quit", libc::SIGQUIT)] {
        terminated_during_duration(name, signal);
    }
}

fn terminated_during_duration(name: &str, signal: libc::c_int) {
    let dir = scratch(&format!("attach_duration_{name}"));
    let target = python_target(&dir, "sl.py", SCRIPT);
    let pid = target.pid();
    let mut attach =
        memtrace_in_background(&["attach", &pid, "--duration", "30", "-o", "cap.bin"], &dir);
    // Attached once the capture is there (or refused where ptrace is not allowed).
    let start = Instant::now();
    while !dir.join("cap.bin").exists() {
        if let Ok(Some(_)) = attach.try_wait() {
            let out = attach.wait_with_output().expect("output");
            assert!(refused(&out), "{out:?}");
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "no capture");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: kill(2) of the memtrace this test started.
    unsafe { libc::kill(attach.id() as libc::pid_t, signal) };
    let out = attach.wait_with_output().expect("memtrace ends");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{name}: {err}");
    assert!(
        err.contains("interrupted: detached from process"),
        "{name}: {err}"
    );
    // Detached: a second detach finds nothing to stop.
    let again = memtrace(&["detach", &pid], &dir);
    assert_eq!(again.status.code(), Some(1), "{again:?}");
    let_it_allocate_and_end(target, &dir, 5);
    let stats = memtrace_e2e::stats(&dir.join("cap.bin"));
    assert_eq!(stats["complete"], serde_json::Value::Bool(true), "{stats}");
}

/// A program that replaced `time.sleep` and `os.path.exists` (unittest.mock, freezegun) while
/// attached: memtrace's watcher thread called the replacements (49,621 calls of a fake sleep
/// in 4 s, and a patched `exists` ended tracking at once). It calls none of the program's.
#[test]
fn attach_to_python_never_calls_the_program_s_replacements() {
    let dir = scratch("attach_py_mocked");
    let script = "import os, time
calls = {'sleep': 0, 'exists': 0}
real_sleep, real_exists = time.sleep, os.path.exists
def fake_sleep(s):
    calls['sleep'] += 1
def fake_exists(p):
    calls['exists'] += 1
    return True
time.sleep, os.path.exists = fake_sleep, fake_exists
print('ready', flush=True)
while not real_exists('go'):
    real_sleep(0.05)
keep = bytearray(3_000_000)
open('allocated', 'w').close()
while not real_exists('done'):
    real_sleep(0.05)
print('calls', calls['sleep'], calls['exists'])
";
    let target = python_target(&dir, "mocked.py", script);
    let pid = target.pid();
    let Some(_) = attached(&pid, "cap.bin", &dir) else {
        return;
    };
    std::thread::sleep(Duration::from_millis(1500));
    std::fs::write(dir.join("go"), "").expect("go");
    wait_for(&dir.join("allocated"));
    // Still tracking (a patched `exists` made the watcher see its stop file at once).
    detached(&pid, &dir);
    std::fs::write(dir.join("done"), "").expect("done");
    let end = target.finish();
    assert_eq!(end.status.code(), Some(0), "{end:?}");
    assert_eq!(String::from_utf8_lossy(&end.stdout), "calls 0 0\n");
    let tree = memtrace_e2e::report(&["tree", "--json", "--leaks"], &dir.join("cap.bin"));
    let at_line = bytes_at(&tree["tree"], "mocked.py", 13);
    assert!((3_000_000..3_001_000).contains(&at_line), "{at_line}");
}

/// A native process with one descriptor free: its attach is a native one ("memory allocated
/// before is not attributed", a detach that stops it), not the Python message "tracking
/// starts when its interpreter next runs Python code" it got when the capture took that last
/// descriptor before the tracker's `running` file could be made.
#[test]
fn attach_to_a_native_process_short_of_descriptors_is_a_native_attach() {
    let dir = scratch("attach_fds_full");
    let prog = memtrace_e2e::compile("fds_nearly_full", &dir);
    let target = Target::start(Command::new(&prog), &dir);
    let pid = target.pid();
    let Some(out) = attached(&pid, "cap.bin", &dir) else {
        return;
    };
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("memory allocated before is not attributed"),
        "{err}"
    );
    assert!(!err.contains("interpreter"), "{err}");
    let detach = memtrace(&["detach", &pid], &dir);
    assert!(detach.status.success(), "{detach:?}");
    assert!(
        String::from_utf8_lossy(&detach.stderr).contains("detached from process"),
        "{detach:?}"
    );
    std::fs::write(dir.join("done"), "").expect("done");
    let end = target.finish();
    assert_eq!(end.status.code(), Some(0), "{end:?}");
}

/// `detach` by a user who may not read the attached process's files says so and what to do
/// (it said the process "is not attached by memtrace"); root's detach then stops it.
#[test]
fn a_detach_without_permission_says_why() {
    use std::os::unix::process::CommandExt;
    if !memtrace_e2e::is_root() {
        eprintln!("not root: another user's detach is not tried");
        return;
    }
    let Some((dir, target, pid)) = attached_native("attach_detach_perm") else {
        return;
    };
    let out = Command::new(memtrace_bin())
        .args(["detach", &pid])
        .current_dir("/")
        .uid(65534)
        .gid(65534)
        .stdin(Stdio::null())
        .output_watched();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("permission denied"), "{err}");
    assert!(err.contains("detach as the user who attached it"), "{err}");
    detached(&pid, &dir);
    drop(target);
}

/// The attach's directory is `/tmp/memtrace-attach.PID`, a name anyone can take first, and
/// memtrace often runs as root. A link planted there once made root's attach give the linked
/// directory to the process's user; links planted in a directory made there in advance made
/// the process truncate the linked file (`running`). A link is refused (the directory it
/// points to untouched); a planted directory is made anew, its links removed, not followed.
#[test]
fn links_planted_in_the_attach_s_directory_are_never_followed() {
    let dir = scratch("attach_planted");
    let victim_dir = dir.join("victim_dir");
    std::fs::create_dir(&victim_dir).expect("mkdir");
    let victim = dir.join("victim.txt");
    std::fs::write(&victim, "precious").expect("write");
    let target = python_target(&dir, "sl.py", SCRIPT);
    let pid = target.pid();
    let state = std::path::PathBuf::from(format!("/tmp/memtrace-attach.{pid}"));
    let _ = std::fs::remove_dir_all(&state);
    let _ = std::fs::remove_file(&state);
    std::os::unix::fs::symlink(&victim_dir, &state).expect("plant a link");
    let out = memtrace(&["attach", &pid, "-o", "cap.bin"], &dir);
    if refused(&out) {
        let _ = std::fs::remove_file(&state);
        return;
    }
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("not a directory memtrace made"), "{err}");
    assert_eq!(
        std::fs::read_dir(&victim_dir).expect("read").count(),
        0,
        "nothing was made in the linked directory"
    );
    std::fs::remove_file(&state).expect("unlink");
    // A directory made in advance, with links where memtrace and the tracker write.
    std::fs::create_dir(&state).expect("plant a directory");
    for name in ["running", "stop", "error"] {
        std::os::unix::fs::symlink(&victim, state.join(name)).expect("plant a link");
    }
    let Some(_) = attached(&pid, "cap.bin", &dir) else {
        return;
    };
    std::fs::write(dir.join("go"), "").expect("go");
    wait_for(&dir.join("allocated"));
    detached(&pid, &dir);
    assert_eq!(std::fs::read_to_string(&victim).expect("read"), "precious");
    std::fs::write(dir.join("done"), "").expect("done");
    let end = target.finish();
    assert_eq!(end.status.code(), Some(5));
    let stats = memtrace_e2e::stats(&dir.join("cap.bin"));
    assert_eq!(stats["complete"], serde_json::Value::Bool(true), "{stats}");
}

/// The thread that makes the attach's calls is stopped anywhere in the program's code, maybe
/// between a failed call and the program's look at errno: every attach left errno = ENOENT
/// there (dlopen's). errno is put back with the registers.
#[test]
fn attach_and_detach_leave_the_program_s_errno_alone() {
    let dir = scratch("attach_errno");
    let prog = memtrace_e2e::compile("errno_kept", &dir);
    let target = Target::start(Command::new(&prog), &dir);
    let pid = target.pid();
    for round in 0..3 {
        let capture = format!("cap{round}.bin");
        let Some(_) = attached(&pid, &capture, &dir) else {
            return;
        };
        std::thread::sleep(Duration::from_millis(200));
        detached(&pid, &dir);
    }
    std::fs::write(dir.join("done"), "").expect("done");
    let end = target.finish();
    assert_eq!(
        String::from_utf8_lossy(&end.stdout),
        "checks made bad 0 errno 0\n"
    );
    assert_eq!(end.status.code(), Some(0));
}

/// A SIGALRM handler (1 kHz) that raises, caught by the program's loop. Python runs a handler
/// at any instruction of the main thread, memtrace's queued start included: the handler's
/// exception was swallowed there (the program never saw it), or escaped before the start's
/// `try` and killed the program with a SystemError.
const RAISING_HANDLER: &str = "import os, signal
class Timeout(Exception): pass
raised = caught = 0
armed = False
def h(sig, frame):
    global raised, armed
    if armed:
        armed = False
        raised += 1
        raise Timeout()
signal.signal(signal.SIGALRM, h)
signal.setitimer(signal.ITIMER_REAL, 0.001, 0.001)
print('ready', flush=True)
done = False
while not done:
    try:
        armed = True
        while True:
            if os.path.exists('done'):
                armed = False
                done = True
                break
            x = [0] * 10
    except Timeout:
        caught += 1
signal.setitimer(signal.ITIMER_REAL, 0, 0)
print('swallowed', raised - caught)
";

#[test]
fn an_exception_of_the_program_s_signal_handler_reaches_the_program() {
    let dir = scratch("attach_raising_handler");
    let target = python_target(&dir, "alarm.py", RAISING_HANDLER);
    let pid = target.pid();
    for round in 0..6 {
        let capture = format!("cap{round}.bin");
        let out = memtrace(&["attach", &pid, "-o", &capture], &dir);
        if refused(&out) {
            return;
        }
        let err = String::from_utf8_lossy(&out.stderr);
        if out.status.success() {
            detached(&pid, &dir);
        } else {
            // The handler raised inside the start: said, and the exception went on to the
            // program.
            assert!(
                err.contains("signal handler of the program raised Timeout"),
                "{err}"
            );
        }
    }
    std::fs::write(dir.join("done"), "").expect("done");
    let end = target.finish();
    assert_eq!(String::from_utf8_lossy(&end.stderr), "");
    assert_eq!(String::from_utf8_lossy(&end.stdout), "swallowed 0\n");
    assert_eq!(end.status.code(), Some(0));
}

/// `memtrace detach` while `memtrace attach` is still at work (its calls, or waiting for a
/// Python start queued behind a long call into C) cancelled the start under way, and the
/// attach then said "attached" with nothing tracked. The detach is refused until the attach
/// is done.
#[test]
fn a_detach_during_an_attach_is_refused_until_the_attach_is_done() {
    let dir = scratch("attach_detach_race");
    // The script waits in a C call (GATED's gate) until the detach below was refused: the
    // attach's Python start stays queued, and its claim held, that long. (A script that slept
    // 6 s let the start run before the detach came on a loaded machine; one that ended right
    // after its tracking started raced the second detach: "not attached".)
    let target = gated_python(&dir);
    let pid = target.pid();
    let attach = memtrace_in_background(&["attach", &pid, "-o", "cap.bin"], &dir);
    // The detach comes once the attach holds its claim (its lock file is there), however slow
    // the machine: a fixed wait sent it before the attach began on a loaded one.
    wait_for(&std::env::temp_dir().join(format!("memtrace-attach.{pid}.lock")));
    std::thread::sleep(Duration::from_millis(300));
    let during = memtrace(&["detach", &pid], &dir);
    std::fs::write(dir.join("gate"), "open").expect("the gate opens");
    let attached = attach.wait_with_output().expect("attach ends");
    if refused(&attached) {
        return;
    }
    let err = String::from_utf8_lossy(&during.stderr);
    assert_eq!(during.status.code(), Some(1), "{during:?}");
    assert!(
        err.contains("is being attached by another memtrace"),
        "{err}"
    );
    assert!(attached.status.success(), "{attached:?}");
    // Done: the detach works now.
    let after = memtrace(&["detach", &pid], &dir);
    assert!(after.status.success(), "{after:?}");
    wait_for(&dir.join("allocated"));
    std::fs::write(dir.join("done"), "").expect("done");
    let end = target.finish();
    assert_eq!(String::from_utf8_lossy(&end.stdout), "bye\n");
    assert_eq!(end.status.code(), Some(3), "{end:?}");
    // The attach's directory in /tmp is gone (it was removed through /proc/PID/root, and
    // stays gone once the process ended).
    let state = std::path::PathBuf::from(format!("/tmp/memtrace-attach.{pid}"));
    assert!(!state.exists(), "{} left behind", state.display());
}

/// A thread with little stack left where it stopped: the tracker's start, run on that stack,
/// faulted ("the call faulted (signal 11)") and left the process half started, so that it
/// could never be attached ("already tracked") nor detached again. The attach is refused,
/// saying why, and works once the thread is back at a shallow depth.
#[test]
fn attach_to_a_thread_with_little_stack_left_is_refused_and_works_later() {
    let dir = scratch("attach_deep_stack");
    let prog = memtrace_e2e::compile("stack_nearly_full", &dir);
    let mut cmd = Command::new(&prog);
    cmd.arg("24");
    let target = Target::start(cmd, &dir);
    let pid = target.pid();
    let deep = memtrace(&["attach", &pid, "-o", "deep.bin"], &dir);
    if refused(&deep) {
        return;
    }
    let err = String::from_utf8_lossy(&deep.stderr);
    assert_eq!(deep.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("KiB of stack left"), "{err}");
    std::fs::write(dir.join("shallow"), "").expect("shallow");
    wait_for(&dir.join("back"));
    let Some(_) = attached(&pid, "cap.bin", &dir) else {
        return;
    };
    detached(&pid, &dir);
    std::fs::write(dir.join("done"), "").expect("done");
    let end = target.finish();
    assert_eq!(String::from_utf8_lossy(&end.stdout), "ok 1\n");
    assert_eq!(end.status.code(), Some(0));
}

/// A capture removed while attached: the detach named it to view, a file not there.
#[test]
fn a_detach_says_when_the_capture_was_removed_meanwhile() {
    let Some((dir, target, pid)) = attached_native("attach_capture_removed") else {
        return;
    };
    std::fs::remove_file(dir.join("cap.bin")).expect("remove the capture");
    let out = memtrace(&["detach", &pid], &dir);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{out:?}");
    assert!(err.contains("is not there any more"), "{err}");
    assert!(!err.contains("view the capture"), "{err}");
    std::fs::write(dir.join("go"), "").expect("go");
    wait_for(&dir.join("allocated"));
    std::fs::write(dir.join("done"), "").expect("done");
    let end = target.finish();
    assert_eq!(end.status.code(), Some(7));
}

/// `attach --duration` to a process that ends before the duration: the attach's directory in
/// the process's /tmp, removed through /proc/PID/root once the process was gone, stayed.
#[test]
fn an_attach_with_a_duration_to_a_process_that_ends_leaves_nothing_in_tmp() {
    let dir = scratch("attach_duration_ends");
    let target = python_target(&dir, "ends.py", SCRIPT);
    let pid = target.pid();
    let attach =
        memtrace_in_background(&["attach", &pid, "--duration", "60", "-o", "cap.bin"], &dir);
    let start = Instant::now();
    while !dir.join("cap.bin").exists() {
        assert!(start.elapsed() < Duration::from_secs(60), "no capture");
        std::thread::sleep(Duration::from_millis(20));
    }
    let_it_allocate_and_end(target, &dir, 5);
    let out = attach.wait_with_output().expect("memtrace ends");
    if refused(&out) {
        return;
    }
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("ended before the end of --duration"), "{err}");
    let state = std::path::PathBuf::from(format!("/tmp/memtrace-attach.{pid}"));
    assert!(!state.exists(), "{} left behind", state.display());
    let stats = memtrace_e2e::stats(&dir.join("cap.bin"));
    let peak = stats["peak_bytes"].as_u64().expect("a peak");
    assert!((3_000_000..3_100_000).contains(&peak), "{stats}");
}

#[test]
fn attach_to_a_thread_waiting_inside_the_allocator_waits_until_it_leaves() {
    // malloc_stats holds the main arena's lock while it writes to a full pipe. The return
    // address into it lies 8 KiB down the stack (under fprintf's buffer), past the 512 bytes
    // the attach looked through for one, so it called dlopen there, whose malloc waited for
    // that lock for good: the program hung. The C library's unwind tables name the thread's
    // real callers: the attach waits until malloc_stats has returned.
    attach_while_malloc_stats_waits("attach_malloc_stats", "malloc_stats_blocked");
}

#[test]
fn attach_waits_while_another_thread_holds_the_allocator_in_a_system_call() {
    // A thread in malloc_stats holds the main arena's lock while it writes to a full pipe that
    // only the main thread drains. The attach looked at the main thread alone and called
    // dlopen there, whose malloc waited for that lock: the program hung for good. It waits now
    // until no other thread waits in the kernel under the allocator.
    attach_while_malloc_stats_waits("attach_malloc_stats_thread", "malloc_stats_thread");
}

#[test]
fn an_attach_near_the_recursion_limit_leaves_the_program_its_limit_and_tracks_it() {
    // memtrace's queued code runs on top of the program's frames: at depth 195 of a limit of
    // 200 (3.10, 3.11) its own RecursionError reached the program's line, and tracking never
    // started. The limit is raised while the code runs and put back.
    let dir = scratch("attach_recursion_limit");
    // C calls only (os.access, os.open), as few frames as can be: the program alone runs at
    // 198 of its 200.
    let script = "import os, sys, time
sys.setrecursionlimit(200)
print('ready', flush=True)
def rec(n):
    if n == 0:
        while not os.access('go', os.F_OK):
            time.sleep(0.02)
        kept = [bytearray(100_000) for _ in range(10)]
        os.close(os.open('allocated', os.O_CREAT | os.O_WRONLY))
        while not os.access('done', os.F_OK):
            time.sleep(0.02)
        return 0
    return rec(n - 1) + 1
print('depth', rec(195), sys.getrecursionlimit())
";
    let target = python_target(&dir, "deep.py", script);
    let pid = target.pid();
    let Some(_) = attached(&pid, "cap.bin", &dir) else {
        return;
    };
    std::fs::write(dir.join("go"), "").expect("go");
    wait_for(&dir.join("allocated"));
    detached(&pid, &dir);
    std::fs::write(dir.join("done"), "").expect("done");
    let end = target.finish();
    assert_eq!(end.status.code(), Some(0), "{end:?}");
    assert_eq!(String::from_utf8_lossy(&end.stdout), "depth 195 200\n");
    assert_eq!(String::from_utf8_lossy(&end.stderr), "");
    // The ten blocks of line 8 (stacks 190 frames deep: read through stats, whose JSON is flat).
    let s = memtrace_e2e::stats(&dir.join("cap.bin"));
    let at8: Vec<&serde_json::Value> = s["top_by_size"]
        .as_array()
        .expect("top_by_size")
        .iter()
        .filter(|l| l["file"].as_str().is_some_and(|f| f.ends_with("deep.py")) && l["line"] == 8)
        .collect();
    let bytes: i64 = at8.iter().filter_map(|l| l["bytes"].as_i64()).sum();
    assert!(
        (1_000_000..1_002_000).contains(&bytes),
        "{bytes} bytes at line 8"
    );
}

#[test]
fn an_attach_to_a_thread_on_a_stack_inside_the_heap_is_refused_and_harms_nothing() {
    // The main thread ran on a coroutine's 12 KiB stack taken from malloc: the attach counted
    // the whole heap below it as free stack, ran its calls there and wrote over 1,595 bytes of
    // the block below. Its room cannot be told: the attach says so and calls nothing.
    let dir = scratch("attach_heap_stack");
    let prog = memtrace_e2e::compile("heap_stack", &dir);
    let target = Target::start(Command::new(&prog), &dir);
    let pid = target.pid();
    let out = memtrace(&["attach", &pid, "-o", "cap.bin"], &dir);
    if refused(&out) {
        return;
    }
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("runs on a stack inside its heap or data"),
        "{err}"
    );
    std::fs::write(dir.join("go"), "").expect("go");
    let end = target.finish();
    assert_eq!(end.status.code(), Some(0), "{end:?}");
    assert_eq!(String::from_utf8_lossy(&end.stdout), "damaged 0\n");
}

/// tests/programs/`program`.c (a thread of it in malloc_stats, writing to a full pipe under the
/// arena's lock, until the test writes `drain`, 2 s after the attach starts) attached to: the
/// attach waits until the pipe drains, then attaches; the program ends as alone (9, "bye").
fn attach_while_malloc_stats_waits(name: &str, program: &str) {
    let dir = scratch(name);
    let prog = memtrace_e2e::compile(program, &dir);
    let target = Target::start(Command::new(&prog), &dir);
    let pid = target.pid();
    // A thread waits in write (system call 1) on the pipe.
    let start = Instant::now();
    let in_write = || {
        std::fs::read_dir(format!("/proc/{pid}/task"))
            .into_iter()
            .flatten()
            .flatten()
            .any(|t| {
                std::fs::read_to_string(t.path().join("syscall"))
                    .is_ok_and(|s| s.split_whitespace().next() == Some("1"))
            })
    };
    while !in_write() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "never waited in write"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let drain = dir.join("drain");
    let drainer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(2));
        std::fs::write(drain, "").expect("drain");
    });
    let start = Instant::now();
    let attach = attached(&pid, "cap.bin", &dir);
    let waited = start.elapsed();
    drainer.join().expect("drainer");
    let Some(_) = attach else {
        return;
    };
    assert!(
        waited >= Duration::from_millis(1500),
        "attached after {waited:?}"
    );
    detached(&pid, &dir);
    std::fs::write(dir.join("done"), "").expect("done");
    let end = target.finish();
    assert_eq!(end.status.code(), Some(9), "{end:?}");
    assert_eq!(String::from_utf8_lossy(&end.stdout), "bye\n");
    let s = memtrace_e2e::stats(&dir.join("cap.bin"));
    assert_eq!(s["complete"], true, "{s}");
}
