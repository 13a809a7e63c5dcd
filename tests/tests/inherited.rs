//! A program run under `memtrace run` starts with what memtrace was started with, as in a plain
//! run: its standard descriptors closed or open, its ignored and blocked signals, and its
//! environment in the same order. A launcher (Python, `os.execve`) sets up each state and then
//! execs either the program or memtrace running it; both must see the same.

use memtrace_e2e::python::python;
use memtrace_e2e::watchdog;
use memtrace_e2e::{compile, memtrace_bin, scratch, stats};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// `launch.py STATE PROGRAM ARGS...`: sets the state named STATE up, then execs PROGRAM.
const LAUNCHER: &str = r#"
import os, signal, sys
state, program = sys.argv[1], sys.argv[2:]
# Python itself starts with SIGPIPE and SIGXFSZ ignored: a plain state has them default.
signal.signal(signal.SIGPIPE, signal.SIG_DFL)
signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
env = {"ZED": "first", "PATH": os.environ["PATH"], "ALPHA": "a=b", "MIDDLE": "", "HOME": "/"}
if state == "odd":
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR2, signal.SIGTERM, signal.SIGRTMIN + 2})
    for s in (signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGPIPE, signal.SIGUSR1,
              signal.SIGALRM, signal.SIGCHLD, signal.SIGWINCH):
        signal.signal(s, signal.SIG_IGN)
    os.close(0)
    os.close(2)
os.execve(program[0], program, env)
"#;

fn launcher(dir: &Path) -> PathBuf {
    let path = dir.join("launch.py");
    std::fs::write(&path, LAUNCHER).expect("write launcher");
    path
}

/// Runs `program` through the launcher in `state`, plainly or under `memtrace run`.
fn launch(dir: &Path, state: &str, tracked: bool, mut program: &[&str]) -> Output {
    let mut cmd = Command::new(python());
    cmd.arg(launcher(dir)).arg(state);
    if tracked {
        cmd.arg(memtrace_bin())
            .args(["run", "-q", "-f", "-o", "run.bin"]);
        // `python script.py` is run as memtrace runs a script: `--python python script.py`.
        if Path::new(program[0]) == python() {
            cmd.arg("--python").arg(python());
            program = &program[1..];
        }
        cmd.arg("--");
    }
    cmd.args(program)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    watchdog::output_within(&mut cmd, watchdog::LIMIT)
}

/// What the program wrote about its start, plainly and under memtrace; both runs succeeded and
/// the tracked one left a complete capture.
fn both(dir: &Path, state: &str, program: &[&str], report: &str) -> (String, String) {
    let read = |out: &Output, how: &str| {
        assert!(out.status.success(), "{how}, {state} {program:?}: {out:?}");
        std::fs::read_to_string(dir.join(report)).expect("the program's report")
    };
    let plain = read(&launch(dir, state, false, program), "plain");
    let tracked = read(&launch(dir, state, true, program), "tracked");
    let s = stats(&dir.join("run.bin"));
    assert_eq!(s["complete"].as_bool(), Some(true), "{s}");
    (plain, tracked)
}

/// The environment the launcher passes, in its order, as the program printed it (a Python
/// program may add LC_CTYPE: PEP 538's locale coercion).
fn assert_launcher_environment(lines: &[&str], added: &[&str]) {
    let names: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("env "))
        .map(|e| e.split('=').next().unwrap_or_default())
        .collect();
    let launched = ["ZED", "PATH", "ALPHA", "MIDDLE", "HOME"];
    assert_eq!(names, [&launched[..], added].concat());
}

#[test]
fn a_native_program_starts_with_the_descriptors_signals_and_environment_memtrace_was_given() {
    let dir = scratch("inherited-native");
    let program = compile("start_state", &dir);
    let program = program.to_str().expect("utf-8 path");
    for state in ["odd", "plain"] {
        let (plain, tracked) = both(&dir, state, &[program, "state.txt"], "state.txt");
        let lines: Vec<&str> = plain.lines().collect();
        // The launcher did set the state up.
        let odd = state == "odd";
        let closed = if odd { "closed" } else { "open" };
        assert_eq!(
            lines[..3],
            [
                format!("fd 0 {closed}"),
                "fd 1 open".into(),
                format!("fd 2 {closed}")
            ]
        );
        // SigBlk: USR2 (12), TERM (15), SIGRTMIN+2 (36); SigIgn: HUP, INT, QUIT, USR1, PIPE,
        // ALRM, CHLD, WINCH (1, 2, 3, 10, 13, 14, 17, 28).
        let (blocked, ignored) = if odd {
            ("0000000800004800", 0x8013207)
        } else {
            ("0000000000000000", 0)
        };
        assert_eq!(lines[3], format!("SigBlk:\t{blocked}"), "{plain}");
        // Leaving out glibc's two internal signals, which its posix_spawn (the test's own
        // Command) leaves ignored; the comparison with the tracked run below includes them.
        let ignored_seen = lines[4]
            .strip_prefix("SigIgn:\t")
            .and_then(|hex| u64::from_str_radix(hex, 16).ok())
            .map(|bits| bits & !(3 << 31));
        assert_eq!(ignored_seen, Some(ignored), "{plain}");
        assert_launcher_environment(&lines, &[]);
        assert_eq!(tracked, plain, "{state}");
    }
}

#[test]
fn a_python_script_starts_with_the_descriptors_signals_and_environment_memtrace_was_given() {
    let dir = scratch("inherited-python");
    let script = dir.join("state.py");
    std::fs::write(
        &script,
        r#"import os, sys
closed = []
for fd in (0, 1, 2):
    try:
        os.fstat(fd)
    except OSError:
        closed.append(fd)
with open(sys.argv[1], "w") as out:
    print("closed", closed, file=out)
    for line in open("/proc/self/status"):
        if line.startswith(("SigIgn", "SigBlk")):
            out.write(line)
    for name, value in os.environ.items():
        print(f"env {name}={value}", file=out)
"#,
    )
    .expect("write script");
    let py = python().to_str().expect("utf-8 path");
    for state in ["odd", "plain"] {
        let (plain, tracked) = both(&dir, state, &[py, "state.py", "state.txt"], "state.txt");
        let lines: Vec<&str> = plain.lines().collect();
        let closed = if state == "odd" { "[0, 2]" } else { "[]" };
        assert_eq!(lines[0], format!("closed {closed}"), "{plain}");
        assert_launcher_environment(&lines, &["LC_CTYPE"]);
        assert_eq!(tracked, plain, "{state}");
    }
}

#[test]
fn a_program_s_exit_status_passes_through_when_memtrace_was_started_with_sigchld_ignored() {
    // With SIGCHLD ignored the kernel reaps children at once: memtrace lost its program
    // ("No child processes") and exited 1 instead of with the program's status.
    let dir = scratch("inherited-sigchld");
    for tracked in [false, true] {
        let out = launch(&dir, "odd", tracked, &["/bin/sh", "-c", "exit 7"]);
        assert_eq!(out.status.code(), Some(7), "tracked {tracked}: {out:?}");
    }
}

#[test]
fn a_program_fails_on_its_closed_stdout_as_it_would_without_memtrace() {
    // Rust's start-up would put /dev/null on memtrace's closed stdout, and the program would
    // write into it and succeed.
    let dir = scratch("inherited-closed-stdout");
    let run = |tracked: bool| {
        let mut cmd = Command::new("/bin/sh");
        let memtrace = memtrace_bin();
        let words = if tracked {
            format!(
                "exec {} run -q -f -o run.bin /bin/echo hello >&-",
                memtrace.display()
            )
        } else {
            "exec /bin/echo hello >&-".to_string()
        };
        cmd.args(["-c", &words])
            .current_dir(&dir)
            .stdin(Stdio::null());
        watchdog::output_within(&mut cmd, watchdog::LIMIT)
    };
    let plain = run(false);
    let tracked = run(true);
    assert_eq!(plain.status.code(), Some(1), "{plain:?}");
    assert!(
        String::from_utf8_lossy(&plain.stderr).contains("write error"),
        "{plain:?}"
    );
    assert_eq!(tracked.status.code(), plain.status.code(), "{tracked:?}");
    assert_eq!(tracked.stderr, plain.stderr);
}

/// errno when main starts is 0 (C11 7.5), and a fork child finds the errno it had: the
/// tracker's start-up (its failed lookups) and a followed child's start leaked ENOENT into both.
#[test]
fn a_program_starts_with_errno_zero_and_a_fork_child_keeps_its_errno() {
    let dir = scratch("errno-start");
    let prog = compile("errno_start", &dir);
    let alone = Command::new(&prog).output().expect("run");
    assert_eq!(String::from_utf8_lossy(&alone.stdout), "start 0\nchild 0\n");
    let p = prog.to_str().expect("utf-8 path");
    for opts in [
        &[][..],
        &["--follow-fork"][..],
        &["--native"][..],
        &["--aggregate"][..],
    ] {
        let cap = dir.join("errno.bin");
        let mut cmd = Command::new(memtrace_bin());
        cmd.args(["run", "-q", "-f", "-o"])
            .arg(&cap)
            .args(opts)
            .args(["--", p]);
        let out =
            watchdog::output_within(cmd.current_dir(&dir).stdin(Stdio::null()), watchdog::LIMIT);
        assert_eq!(out.status.code(), Some(0), "{opts:?}: {out:?}");
        assert_eq!(out.stdout, alone.stdout, "{opts:?}");
    }
}
