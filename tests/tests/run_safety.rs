//! `memtrace run` must not be stopped or fooled by what others put in the shared temporary
//! directory, must keep its own files private whatever the umask, and must pass on to the
//! program the signals another process sends to memtrace (a supervisor's SIGINT, `kill -QUIT`)
//! while a terminal's Ctrl-C, which the program receives itself, reaches it only once.

use memtrace_e2e::python::python;
use memtrace_e2e::tmux::{have_tmux, Tmux};
use memtrace_e2e::watchdog::Watched;
use memtrace_e2e::{compile, memtrace_bin, scratch, stats, workspace};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

/// How long a step may take on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(60);

/// A scratch directory and, inside it, the TMPDIR the run is given.
fn dirs(name: &str) -> (PathBuf, PathBuf) {
    let dir = scratch(name);
    let tmp = dir.join("tmp");
    std::fs::create_dir(&tmp).expect("tmp dir");
    (dir, tmp)
}

/// A tmpfs mounted with `options` on the new directory `dir/name`; None where mounting is not
/// permitted (the caller unmounts it).
fn tmpfs(dir: &Path, name: &str, options: &str) -> Option<PathBuf> {
    let at = dir.join(name);
    std::fs::create_dir(&at).expect("mkdir");
    Command::new("mount")
        .args(["-t", "tmpfs", "-o", options, "tmpfs"])
        .arg(&at)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
        .then_some(at)
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// `memtrace run -f -o <dir>/capture.bin ARGS` started in `dir` with TMPDIR=`tmp`, its stdout
/// read line by line.
struct Running {
    child: Child,
    lines: Receiver<String>,
    stderr: std::thread::JoinHandle<Vec<u8>>,
    seen: Vec<String>,
}

impl Running {
    fn start(dir: &Path, tmp: &Path, args: &[&str]) -> Running {
        Running::spawn(Command::new(memtrace_bin()), dir, tmp, args)
    }

    /// Started as a job would be: memtrace leads a process group of its own.
    fn start_in_group(dir: &Path, tmp: &Path, args: &[&str]) -> Running {
        let mut cmd = Command::new(memtrace_bin());
        cmd.process_group(0);
        Running::spawn(cmd, dir, tmp, args)
    }

    fn spawn(mut cmd: Command, dir: &Path, tmp: &Path, args: &[&str]) -> Running {
        let mut child = cmd
            .args(["run", "-f", "-o", "capture.bin"])
            .args(args)
            .current_dir(dir)
            .env("TMPDIR", tmp)
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("memtrace runs");
        let (tx, lines) = channel();
        let stdout = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut err = child.stderr.take().expect("stderr");
        let stderr = std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = err.read_to_end(&mut buf);
            buf
        });
        Running {
            child,
            lines,
            stderr,
            seen: Vec::new(),
        }
    }

    /// Waits for a stdout line containing `needle`.
    fn expect_line(&mut self, needle: &str) -> String {
        let until = Instant::now() + PATIENCE;
        loop {
            if let Some(l) = self.seen.iter().find(|l| l.contains(needle)) {
                return l.clone();
            }
            let left = until.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(_) => {
                    self.kill_all();
                    panic!("no line with {needle:?}; stdout so far: {:?}", self.seen);
                }
            }
        }
    }

    /// `kill -s SIG` to memtrace's own pid.
    fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args(["-s", sig, &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -s {sig}");
    }

    /// memtrace's exit status, stdout lines and stderr; fails (killing memtrace and the
    /// program) when memtrace does not end in time.
    fn finish(mut self) -> (ExitStatus, Vec<String>, String) {
        let until = Instant::now() + PATIENCE;
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                break s;
            }
            if Instant::now() > until {
                self.kill_all();
                panic!("memtrace did not end; stdout: {:?}", self.seen);
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.seen.push(line);
        }
        let stderr = self.stderr.join().expect("stderr reader");
        (
            status,
            self.seen,
            String::from_utf8_lossy(&stderr).into_owned(),
        )
    }

    /// SIGKILL to memtrace and the program it runs.
    fn kill_all(&mut self) {
        let pid = self.child.id();
        let children =
            std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        for p in children
            .split_whitespace()
            .chain([pid.to_string().as_str()])
        {
            let _ = Command::new("kill").args(["-s", "KILL", p]).status();
        }
        let _ = self.child.wait();
    }
}

/// The capture is finished: a trailer, nothing dropped.
fn assert_complete(dir: &Path) {
    let s = stats(&dir.join("capture.bin"));
    assert_eq!(s["complete"].as_bool(), Some(true), "{s}");
}

// --- temporary files ---

/// What a program running under memtrace plants at the status file's old name,
/// $TMPDIR/memtrace-status-<memtrace's pid>, while memtrace waits for it.
fn plant_old_status(name: &str, plant: &str, quiet: bool) -> (ExitStatus, String, PathBuf) {
    let (dir, tmp) = dirs(name);
    let script = format!("{plant} \"$TMPDIR/memtrace-status-$PPID\"; echo planted");
    let mut args = vec!["--", "/bin/sh", "-c", &script];
    if quiet {
        args.insert(0, "-q");
    }
    let mut run = Running::start(&dir, &tmp, &args);
    run.expect_line("planted");
    let (status, _, stderr) = run.finish();
    (status, stderr, tmp)
}

#[test]
fn a_fifo_at_the_old_status_name_does_not_block_memtrace() {
    let (status, stderr, tmp) = plant_old_status("fifo-status", "mkfifo", true);
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert_eq!(stderr, "");
    // Someone else's file: left alone.
    assert_eq!(entries(&tmp).len(), 1);
}

#[test]
fn a_file_at_the_old_status_name_is_not_shown() {
    let (status, stderr, _) = plant_old_status(
        "file-status",
        "printf '\\033[2J\\033]0;owned\\007PLANTED %0100000d\\n' 0 >",
        false,
    );
    assert_eq!(status.code(), Some(0), "{stderr:.200}");
    assert!(!stderr.contains("PLANTED"), "{stderr:.200}");
    assert!(
        stderr.starts_with("memtrace: wrote capture.bin;"),
        "{stderr:.200}"
    );
}

/// A program that finds memtrace's private directory (it runs as the same user, so it can)
/// and plants a FIFO, then a large file full of escape sequences, at the status path.
const PLANT_IN_PRIVATE_DIR: &str = r#"
import glob, os, sys
[private] = glob.glob(os.path.join(os.environ["TMPDIR"], "memtrace-*"))
status = os.path.join(private, "status")
if sys.argv[1] == "fifo":
    os.mkfifo(status)
else:
    with open(status, "w") as f:
        f.write("\x1b[2J\x1b]0;owned\x07PLANTED " + "x" * 1_000_000 + "\n")
print("planted")
"#;

#[test]
fn the_status_file_is_read_safely_even_when_replaced() {
    for kind in ["fifo", "file"] {
        let (dir, tmp) = dirs(&format!("private-{kind}"));
        let script = write(&dir, "plant.py", PLANT_IN_PRIVATE_DIR);
        let script = script.to_str().expect("utf-8 path");
        let mut run = Running::start(&dir, &tmp, &["--python", &python_str(), script, kind]);
        run.expect_line("planted");
        let (status, _, stderr) = run.finish();
        assert_eq!(status.code(), Some(0), "{kind}: {stderr}");
        assert!(!stderr.contains('\x1b'), "{kind}: escapes printed");
        assert!(
            stderr.len() < 100_000,
            "{kind}: {} bytes shown",
            stderr.len()
        );
        if kind == "file" {
            assert!(stderr.starts_with("memtrace: \\u{1b}[2J"), "{stderr:.200}");
        }
        assert_eq!(entries(&tmp), Vec::<String>::new(), "{kind}: left behind");
    }
}

fn python_str() -> String {
    python().to_str().expect("utf-8 path").to_string()
}

/// Lists, from inside the tracked program, everything under $TMPDIR: type, mode and path.
const LIST_TMPDIR: &str = r#"
import os, stat
top = os.environ["TMPDIR"]
for root, dirs, files in os.walk(top):
    for name in dirs + files:
        path = os.path.join(root, name)
        st = os.lstat(path)
        kind = "d" if stat.S_ISDIR(st.st_mode) else "l" if stat.S_ISLNK(st.st_mode) else "f"
        print(kind, oct(stat.S_IMODE(st.st_mode)), os.path.relpath(path, top))
"#;

#[test]
fn under_umask_0_the_run_s_files_stay_private() {
    let (dir, tmp) = dirs("umask");
    let script = write(&dir, "list.py", LIST_TMPDIR);
    let command = format!(
        "umask 0 && exec '{}' run -q -f -o capture.bin --python '{}' '{}'",
        memtrace_bin().display(),
        python().display(),
        script.display()
    );
    let out = Command::new("/bin/sh")
        .args(["-c", &command])
        .current_dir(&dir)
        .env("TMPDIR", &tmp)
        .stdin(Stdio::null())
        .output_watched();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    let listed: Vec<(&str, u32, &str)> = stdout
        .lines()
        .map(|l| {
            let mut w = l.splitn(3, ' ');
            let kind = w.next().expect("kind");
            let mode = u32::from_str_radix(&w.next().expect("mode")[2..], 8).expect("octal");
            (kind, mode, w.next().expect("path"))
        })
        .collect();
    // One directory of the run, named unpredictably (not after a pid).
    let top: Vec<&str> = listed
        .iter()
        .map(|e| e.2)
        .filter(|p| !p.contains('/'))
        .collect();
    assert_eq!(top.len(), 1, "{stdout}");
    let random = top[0].strip_prefix("memtrace-").expect("memtrace- prefix");
    assert_eq!(random.len(), 12, "{stdout}");
    assert!(random.chars().any(|c| !c.is_ascii_digit()), "{stdout}");
    assert!(
        listed.iter().any(|e| e.2.ends_with("/sitecustomize.py")),
        "{stdout}"
    );
    for (kind, mode, path) in &listed {
        match *kind {
            "d" => assert_eq!(*mode, 0o700, "{path}: {stdout}"),
            "f" => assert_eq!(mode & 0o022, 0, "{path} is writable by others: {stdout}"),
            _ => {}
        }
    }
    assert_eq!(entries(&tmp), Vec::<String>::new(), "left behind");
    assert_complete(&dir);
}

// --- signals ---

/// The exit status of `python -m http.server` stopped by `kill -INT`, without memtrace.
fn untracked_server_interrupted(dir: &Path) -> (ExitStatus, String) {
    let mut child = Command::new(python())
        .args(["-m", "http.server", "0", "--bind", "127.0.0.1"])
        .current_dir(dir)
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("python runs");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut first = String::new();
    out.read_line(&mut first).expect("read");
    assert_serving(&first);
    let _ = Command::new("kill")
        .args(["-s", "INT", &child.id().to_string()])
        .status();
    let mut rest = String::new();
    let _ = out.read_to_string(&mut rest);
    (child.wait().expect("wait"), rest)
}

/// http.server's first line names its port; a request answered there means it is inside
/// serve_forever, where it handles KeyboardInterrupt (not just before, where it does not).
fn assert_serving(first: &str) {
    let port: u16 = first
        .split_whitespace()
        .skip_while(|w| *w != "port")
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {first:?}"));
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    conn.write_all(b"GET / HTTP/1.0\r\n\r\n").expect("request");
    let mut answer = String::new();
    let _ = conn.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.0 200"), "{answer:.200}");
}

#[test]
fn kill_int_of_memtrace_stops_a_python_server() {
    let (dir, tmp) = dirs("kill-int-server");
    let (untracked, untracked_out) = untracked_server_interrupted(&dir);
    let py = python_str();
    let args = [
        "-q",
        "--python",
        &py,
        "-m",
        "http.server",
        "0",
        "--bind",
        "127.0.0.1",
    ];
    let mut run = Running::start(&dir, &tmp, &args);
    let first = run.expect_line("Serving HTTP");
    assert_serving(&first);
    run.signal("INT");
    let (status, lines, stderr) = run.finish();
    assert_eq!(status.code(), untracked.code(), "{stderr}");
    assert_eq!(status.code(), Some(0));
    assert!(
        untracked_out.contains("Keyboard interrupt received, exiting."),
        "{untracked_out}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l == "Keyboard interrupt received, exiting."),
        "{lines:?}"
    );
    assert_complete(&dir);
}

/// A server that does not catch KeyboardInterrupt: Python ends by re-raising SIGINT.
const BARE_SERVER: &str = r#"
import os, socketserver
server = socketserver.TCPServer(("127.0.0.1", 0), socketserver.BaseRequestHandler)
print("serving", os.getpid())
server.serve_forever()
"#;

#[test]
fn kill_int_of_memtrace_ends_a_script_with_keyboard_interrupt() {
    let (dir, tmp) = dirs("kill-int-script");
    let script = write(&dir, "serve.py", BARE_SERVER);
    let py = python_str();
    let mut run = Running::start(
        &dir,
        &tmp,
        &["-q", "--python", &py, script.to_str().expect("utf-8")],
    );
    run.expect_line("serving");
    run.signal("INT");
    let (status, _, stderr) = run.finish();
    // Python's own status after an unhandled KeyboardInterrupt is death by SIGINT, and
    // memtrace dies of it too.
    assert_eq!(status.signal(), Some(libc::SIGINT), "{stderr}");
    assert!(stderr.contains("\nKeyboardInterrupt\n"), "{stderr}");
    assert!(!stderr.contains("memtrace: "), "{stderr}");
    assert_complete(&dir);
}

/// Reports each signal it gets; ends once it has had them all.
const SIGNAL_REPORTER: &str = r#"
import signal, sys, time
names = sys.argv[1:]
got = []
def handler(sig, frame):
    name = signal.Signals(sig).name
    got.append(name)
    print("got", name)
for name in names:
    signal.signal(getattr(signal, name), handler)
print("ready")
# A short sleep, not signal.pause(): a signal that lands between the check and pause() runs
# its handler only after the next signal, which the test sends only once it saw this one.
while len(got) < len(names):
    time.sleep(0.05)
"#;

#[test]
fn signals_sent_to_memtrace_reach_the_program_once() {
    let (dir, tmp) = dirs("kill-signals");
    let script = write(&dir, "signals.py", SIGNAL_REPORTER);
    // Those a supervisor sends too (timers, CPU limit, window size, real-time signals), which
    // once killed memtrace and the program with it, or never reached the program.
    let names = [
        "SIGQUIT",
        "SIGTERM",
        "SIGHUP",
        "SIGUSR1",
        "SIGUSR2",
        "SIGINT",
        "SIGALRM",
        "SIGVTALRM",
        "SIGPROF",
        "SIGXCPU",
        "SIGWINCH",
        "SIGURG",
        "SIGCONT",
        "SIGRTMIN",
    ];
    let py = python_str();
    let mut args = vec!["-q", "--python", &py, script.to_str().expect("utf-8")];
    args.extend_from_slice(&names);
    let mut run = Running::start(&dir, &tmp, &args);
    run.expect_line("ready");
    for name in names {
        run.signal(name.trim_start_matches("SIG"));
        run.expect_line(&format!("got {name}"));
    }
    let (status, lines, stderr) = run.finish();
    assert_eq!(status.code(), Some(0), "{stderr}");
    let got: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("got "))
        .collect();
    assert_eq!(got, names, "each signal exactly once");
    assert_complete(&dir);
}

/// Counts the SIGINTs it gets, waiting a while after the first for a second one.
const CTRL_C_COUNTER: &str = r#"
import signal, time
count = 0
def handler(sig, frame):
    global count
    count += 1
signal.signal(signal.SIGINT, handler)
print("ready", flush=True)
# Not signal.pause(): a SIGINT between the check and pause() would wait for another one.
while count == 0:
    time.sleep(0.05)
time.sleep(2)
print(f"SIGINT x{count}", flush=True)
"#;

#[test]
fn ctrl_c_in_the_terminal_reaches_the_program_once() {
    if !have_tmux() {
        return;
    }
    let (dir, tmp) = dirs("ctrl-c");
    let script = write(&dir, "count.py", CTRL_C_COUNTER);
    let command = format!(
        "cd '{}' && TMPDIR='{}' '{}' run -q -f -o capture.bin --python '{}' '{}'; echo \"EXITED $?\"; sleep 60",
        dir.display(),
        tmp.display(),
        memtrace_bin().display(),
        python().display(),
        script.display()
    );
    let tmux = Tmux::start(&command, 80, 24);
    tmux.wait_for("ready");
    tmux.key("C-c");
    let screen = tmux.wait_for("EXITED").join("\n");
    assert!(screen.contains("SIGINT x1"), "{screen}");
    assert!(screen.contains("EXITED 0"), "{screen}");
    assert_complete(&dir);
}

/// Counts SIGINTs without a terminal: a harness's killpg of memtrace's process group.
#[test]
fn a_signal_to_memtrace_s_whole_group_reaches_the_program_once() {
    let (dir, tmp) = dirs("killpg");
    let script = write(&dir, "count.py", CTRL_C_COUNTER);
    let py = python_str();
    let mut run = Running::start_in_group(
        &dir,
        &tmp,
        &["-q", "--python", &py, script.to_str().expect("utf-8")],
    );
    run.expect_line("ready");
    let group = format!("-{}", run.child.id());
    let status = Command::new("kill")
        .args(["-s", "INT", "--", &group])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let (status, lines, stderr) = run.finish();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert_eq!(lines, ["ready", "SIGINT x1"]);
    assert_complete(&dir);
}

/// Prints its pid, then waits to be killed.
const SLEEPER: &str = r#"
import os, time
print("pid", os.getpid())
time.sleep(120)
"#;

#[test]
fn the_program_does_not_outlive_a_killed_memtrace() {
    let (dir, tmp) = dirs("sigkill");
    let script = write(&dir, "sleep.py", SLEEPER);
    let py = python_str();
    let mut run = Running::start(
        &dir,
        &tmp,
        &["-q", "--python", &py, script.to_str().expect("utf-8")],
    );
    let line = run.expect_line("pid ");
    let pid = line.trim_start_matches("pid ").to_string();
    run.signal("KILL");
    let _ = run.child.wait();
    let until = Instant::now() + PATIENCE;
    // Gone, or a zombie until its new parent reaps it.
    let alive = || {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
            !s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
    };
    while alive() {
        if Instant::now() > until {
            let _ = Command::new("kill").args(["-s", "KILL", &pid]).status();
            panic!("the program {pid} outlived memtrace");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A `memtrace run` killed with SIGKILL cannot remove its private directory; the next run of
/// the same user removes it (and leaves a live run's alone).
#[test]
fn a_killed_run_s_private_directory_is_removed_by_the_next_run() {
    let (dir, tmp) = dirs("sigkill-leftover");
    let script = write(&dir, "sleep.py", SLEEPER);
    let py = python_str();
    let private = |tmp: &Path| -> Vec<String> {
        entries(tmp)
            .into_iter()
            .filter(|n| n.starts_with("memtrace-"))
            .collect()
    };
    let mut killed = Running::start(
        &dir,
        &tmp,
        &["-q", "--python", &py, script.to_str().expect("utf-8")],
    );
    killed.expect_line("pid ");
    // In a directory of its own: its capture.bin is another file.
    let second = dir.join("second");
    std::fs::create_dir(&second).expect("mkdir");
    let mut live = Running::start(
        &second,
        &tmp,
        &["-q", "--python", &py, script.to_str().expect("utf-8")],
    );
    live.expect_line("pid ");
    let both = private(&tmp);
    assert_eq!(both.len(), 2, "{both:?}");
    killed.signal("KILL");
    let _ = killed.child.wait();
    assert_eq!(
        private(&tmp),
        both,
        "nothing removes the killed run's directory at once"
    );
    let next = Command::new(memtrace_bin())
        .args(["run", "-q", "-f", "-o", "next.bin", "true"])
        .current_dir(&dir)
        .env("TMPDIR", &tmp)
        .stdin(Stdio::null())
        .output()
        .expect("memtrace runs");
    assert!(next.status.success(), "{next:?}");
    let left = private(&tmp);
    assert_eq!(
        left.len(),
        1,
        "the killed run's directory is gone, the live run's stays: {left:?}"
    );
    assert!(both.contains(&left[0]), "{left:?}");
    live.signal("INT");
    let status = live.child.wait().expect("wait");
    assert!(status.code().is_some() || status.signal().is_some());
    assert!(private(&tmp).is_empty(), "{:?}", private(&tmp));
}

/// Fills its stderr pipe exactly, so that memtrace's own last line on it blocks.
const FILL_STDERR: &str = r#"
import fcntl, os
F_GETPIPE_SZ = 1032
size = fcntl.fcntl(2, F_GETPIPE_SZ)
written = 0
while written < size:
    written += os.write(2, b"x" * (size - written))
"#;

#[test]
fn a_sigterm_after_the_program_ended_ends_memtrace() {
    let (dir, tmp) = dirs("late-term");
    let script = write(&dir, "fill.py", FILL_STDERR);
    let mut child = Command::new(memtrace_bin())
        .args(["run", "-f", "-o", "capture.bin", "--python"])
        .arg(python())
        .arg(&script)
        .current_dir(&dir)
        .env("TMPDIR", &tmp)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("memtrace runs");
    let pid = child.id();
    // The program is reaped (after memtrace has restored its signals): memtrace is writing
    // its report, blocked on the full pipe.
    let children = format!("/proc/{pid}/task/{pid}/children");
    let until = Instant::now() + PATIENCE;
    let mut started = false;
    loop {
        let list = std::fs::read_to_string(&children).unwrap_or_default();
        // Seen running, or (a short run between two looks) its capture made.
        started |= !list.trim().is_empty() || dir.join("capture.bin").exists();
        if started && list.trim().is_empty() {
            break;
        }
        if Instant::now() > until {
            let _ = child.kill();
            panic!("the program did not end (started: {started})");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = Command::new("kill")
        .args(["-s", "TERM", &pid.to_string()])
        .status();
    let until = Instant::now() + PATIENCE;
    let status = loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            break s;
        }
        if Instant::now() > until {
            let _ = child.kill();
            let _ = child.wait();
            panic!("SIGTERM did not end memtrace");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.signal(), Some(libc::SIGTERM), "{status:?}");
}

/// The status file still works: the tracker's reason for not recording reaches the user.
#[test]
fn the_tracker_s_status_reaches_the_user() {
    let (dir, tmp) = dirs("status");
    // /proc exists, but no file can be created in it, not even by root.
    let out = Command::new(memtrace_bin())
        .args([
            "run",
            "-o",
            "/proc/memtrace-run-safety.bin",
            "--",
            "/bin/true",
        ])
        .current_dir(&dir)
        .env("TMPDIR", &tmp)
        .stdin(Stdio::null())
        .output_watched();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    // The tracker's reason, and no second guess after it ("statically linked?").
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].starts_with("memtrace: cannot create the capture /proc/memtrace-run-safety.bin: "),
        "{stderr}"
    );
    assert_eq!(entries(&tmp), Vec::<String>::new(), "left behind");
}

#[test]
fn memtrace_runs_where_a_signal_it_passes_on_cannot_be_caught() {
    // valgrind keeps a real-time signal for itself: memtrace refused to run under it ("cannot
    // set up signal handling") since it passes the real-time signals on. The program runs
    // natively (valgrind does not follow memtrace's child).
    let (dir, tmp) = dirs("valgrind");
    let out = Command::new("valgrind")
        .args(["-q", "--tool=none"])
        .arg(memtrace_bin())
        .args(["run", "-q", "-f", "-o", "capture.bin", "/bin/echo", "hello"])
        .current_dir(&dir)
        .env("TMPDIR", &tmp)
        .output_watched();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello\n");
    assert_complete(&dir);
}

#[test]
fn a_missing_or_unwritable_tmpdir_does_not_keep_the_program_from_running() {
    // memtrace refused to run ("cannot create a private directory in ...") where the program
    // itself runs.
    let (dir, _) = dirs("tmpdir-missing");
    let script = write(&dir, "hello.py", "print('hello from python')\n");
    for tmpdir in [dir.join("no-such-dir"), PathBuf::from("/proc")] {
        for program in [
            vec!["/bin/echo".to_string(), "hello".to_string()],
            vec![
                "--python".to_string(),
                python_str(),
                script.to_string_lossy().into_owned(),
            ],
        ] {
            let out = Command::new(memtrace_bin())
                .args(["run", "-q", "-f", "-o", "capture.bin"])
                .args(&program)
                .current_dir(&dir)
                .env("TMPDIR", &tmpdir)
                .output_watched();
            assert_eq!(
                out.status.code(),
                Some(0),
                "{tmpdir:?} {program:?}: {out:?}"
            );
            assert!(
                String::from_utf8_lossy(&out.stdout).starts_with("hello"),
                "{out:?}"
            );
            assert_complete(&dir);
        }
    }
}

/// `sh -c WORDS` as the leader of a process group of its own (a job), memtrace or the program
/// a command of it: not a leader.
fn in_a_script(dir: &Path, words: &str) -> std::process::Output {
    let mut cmd = Command::new("/bin/sh");
    cmd.args(["-c", words])
        .current_dir(dir)
        .process_group(0)
        .stdin(Stdio::null());
    cmd.output_watched()
}

#[test]
fn a_program_started_by_a_script_keeps_the_script_s_process_group() {
    // Without a terminal the program was made the leader of a group of its own: setsid()
    // failed with EPERM, and `kill 0` reached its own group instead of the script's.
    let (dir, _) = dirs("script-group");
    let script = write(
        &dir,
        "group.py",
        "import os\nprint('leader', os.getpgrp() == os.getpid(), flush=True)\nos.setsid()\nprint('setsid ok')\n",
    );
    let py = python_str();
    let memtrace = memtrace_bin();
    let tracked = format!(
        "{} run -q -f -o capture.bin --python {py}",
        memtrace.display()
    );
    let alone = in_a_script(&dir, &format!("{py} {}", script.display()));
    let under = in_a_script(&dir, &format!("{tracked} {}", script.display()));
    assert_eq!(
        String::from_utf8_lossy(&alone.stdout),
        "leader False\nsetsid ok\n",
        "{alone:?}"
    );
    assert_eq!(under.stdout, alone.stdout, "{under:?}");
    assert_eq!(under.status.code(), Some(0), "{under:?}");
    assert_complete(&dir);

    // `kill 0` from the program ends the script, whose group it is in.
    let killer = write(
        &dir,
        "kill0.py",
        "import os, signal\nos.kill(0, signal.SIGTERM)\nimport time\ntime.sleep(30)\n",
    );
    for words in [
        format!("{py} {}; echo survived", killer.display()),
        format!("{tracked} {}; echo survived", killer.display()),
    ] {
        let out = in_a_script(&dir, &words);
        assert_eq!(out.status.signal(), Some(libc::SIGTERM), "{words}: {out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "", "{words}");
    }
}

/// An -o memtrace cannot write (a directory, a read-only file system) is one line and status 1
/// before the program starts, as a missing directory is: the program ran without a capture and
/// the run said "wrote DIR, but it cannot be read".
#[test]
fn an_output_that_cannot_be_written_is_refused_before_the_program_starts() {
    let (dir, tmp) = dirs("bad-output");
    let run = |out: &str| {
        Command::new(memtrace_bin())
            .args(["run", "-f", "-o", out, "--", "/bin/echo", "ran"])
            .current_dir(&dir)
            .env("TMPDIR", &tmp)
            .stdin(Stdio::null())
            .output_watched()
    };
    std::fs::create_dir(dir.join("adir")).expect("mkdir");
    let out = run("adir");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(out.stdout.is_empty(), "the program ran: {out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("it is a directory"), "{err}");
    // A read-only file system, where this test may mount one.
    let Some(ro) = tmpfs(&dir, "ro", "ro,size=1m") else {
        eprintln!("skipped the read-only file system: mount is not permitted here");
        return;
    };
    let out = run("ro/cap.bin");
    let _ = Command::new("umount").arg(&ro).status();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(out.stdout.is_empty(), "the program ran: {out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("Read-only file system"), "{err}");
}

/// memtrace's own messages cannot change a run's status: with a stderr that takes no write
/// (/dev/full; a pipe to `head` that closed is the same) the program's status still passes
/// through, a report's error is still status 1, and a reader that stops reading a report early
/// is no error.
#[test]
fn a_stderr_that_cannot_be_written_changes_no_status() {
    let dir = scratch("stderr-full");
    let full = || {
        std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .expect("/dev/full")
    };
    let cap = dir.join("sh.bin");
    let out = Command::new(memtrace_bin())
        .args(["run", "-f", "-o"])
        .arg(&cap)
        .args(["/bin/sh", "-c", "echo one; exit 7"])
        .current_dir(&dir)
        .stderr(full())
        .output()
        .expect("memtrace run");
    assert_eq!(out.status.code(), Some(7), "{out:?}");
    assert_eq!(out.stdout, b"one\n");
    assert_complete_capture(&cap);
    let missing = Command::new(memtrace_bin())
        .args(["stats", "no-such.bin"])
        .current_dir(&dir)
        .stderr(full())
        .status()
        .expect("memtrace stats");
    assert_eq!(missing.code(), Some(1), "{missing:?}");
    let help = Command::new(memtrace_bin())
        .arg("--help")
        .stdout(full())
        .output()
        .expect("memtrace --help");
    assert_eq!(help.status.code(), Some(1), "{help:?}");
    assert!(
        String::from_utf8_lossy(&help.stderr).contains("cannot write the help"),
        "{help:?}"
    );
    // Reports longer than a pipe holds: 3,000 lines, each its own location.
    let lines: String = (0..3000)
        .map(|i| format!("x{i} = bytearray({})\n", 100 + i))
        .collect();
    let script = write(&dir, "many.py", &lines);
    let many = dir.join("many.bin");
    let run = Command::new(memtrace_bin())
        .args(["run", "-q", "-o"])
        .arg(&many)
        .args(["--python", &python_str()])
        .arg(&script)
        .current_dir(&dir)
        .status()
        .expect("memtrace run");
    assert!(run.success(), "{run:?}");
    for json in [
        &["stats", "--json", "-n", "3000"][..],
        &["summary", "--json", "-n", "3000"],
        &["tree", "--text"],
    ] {
        let mut report = Command::new(memtrace_bin())
            .args(json)
            .arg(&many)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("a report");
        let mut first = [0u8; 1];
        let mut stdout = report.stdout.take().expect("stdout");
        stdout.read_exact(&mut first).expect("one byte");
        drop(stdout);
        let done = report.wait_with_output().expect("the report ends");
        assert_eq!(done.status.code(), Some(0), "{json:?}: {done:?}");
        assert!(done.stderr.is_empty(), "{json:?}: {done:?}");
    }
}

fn assert_complete_capture(cap: &Path) {
    let s = stats(cap);
    assert_eq!(s["complete"].as_bool(), Some(true), "{s}");
}

/// The program's LD_PRELOAD is the one it was given, to the byte (unset, empty, with spaces or
/// a trailing `:`), in the program memtrace starts and in an image it execs.
#[test]
fn the_program_sees_its_own_ld_preload() {
    let (dir, _) = dirs("own-ld-preload");
    let show = "printf '[%s]' \"${LD_PRELOAD-unset}\"";
    let exec_show = format!("exec /bin/sh -c '{}'", show.replace('\'', "'\\''"));
    for value in [
        None,
        Some(""),
        Some("libz.so.1:"),
        Some(" libz.so.1"),
        Some("libz.so.1 libm.so.6"),
    ] {
        for script in [show, exec_show.as_str()] {
            let run = |tracked: bool| {
                let mut cmd = if tracked {
                    let mut c = Command::new(memtrace_bin());
                    c.args(["run", "-q", "-f", "-o"])
                        .arg(dir.join("preload.bin"))
                        .args(["/bin/sh", "-c", script]);
                    c
                } else {
                    let mut c = Command::new("/bin/sh");
                    c.args(["-c", script]);
                    c
                };
                match value {
                    Some(v) => cmd.env("LD_PRELOAD", v),
                    None => cmd.env_remove("LD_PRELOAD"),
                };
                let out = cmd.current_dir(&dir).output_watched();
                assert!(out.status.success(), "{value:?}: {out:?}");
                String::from_utf8_lossy(&out.stdout).into_owned()
            };
            let plain = run(false);
            assert_eq!(run(true), plain, "{value:?} {script}");
        }
    }
}

/// Counts the signals `SIG` it gets, waiting a while after the first for a second one.
fn counter(sig: &str) -> String {
    CTRL_C_COUNTER
        .replace("SIGINT", &format!("SIG{sig}"))
        .replace(
            "global count\n",
            "global count\n    print(\"got\", flush=True)\n",
        )
}

/// `timeout` signals its child (memtrace) and then its whole group, where the program stays:
/// the program gets each signal once (passed on as well, it got a second one: a second
/// KeyboardInterrupt in the middle of its clean-up). Without memtrace, the program is the
/// child and in the group: it gets one, or two when it handled the first before the second
/// came (on a busy machine), so the untracked run is not compared.
#[test]
fn timeout_s_signal_reaches_the_program_once() {
    let (dir, tmp) = dirs("timeout-signal");
    let py = python_str();
    for sig in ["INT", "TERM"] {
        let script = write(&dir, &format!("count_{sig}.py"), &counter(sig));
        let script = script.to_str().expect("utf-8");
        // `timeout` expires once the program says it is ready (its handler set), however slow
        // the machine: SIGALRM is timeout's own expiry (a fixed 1 s came before the handler on
        // a loaded one).
        let run = |tracked: bool| {
            let program = if tracked {
                format!(
                    "'{}' run -q -f -o timeout.bin --python '{py}'",
                    memtrace_bin().display()
                )
            } else {
                format!("'{py}'")
            };
            let line = format!(
                "rm -f out.txt; timeout --preserve-status -s {sig} 120 {program} '{script}' > out.txt & t=$!; \
                 until grep -q ready out.txt; do sleep 0.02; done; kill -ALRM $t; wait $t; echo \"status $?\""
            );
            let out = Command::new("sh")
                .args(["-c", &line])
                .current_dir(&dir)
                .env("TMPDIR", &tmp)
                .stdin(Stdio::null())
                .output_watched();
            let said = String::from_utf8_lossy(&out.stdout).into_owned();
            let status = said
                .trim()
                .strip_prefix("status ")
                .and_then(|s| s.parse::<i32>().ok());
            let printed = std::fs::read_to_string(dir.join("out.txt")).unwrap_or_default();
            (status, printed)
        };
        let expected = (Some(0), format!("ready\ngot\nSIG{sig} x1\n"));
        let (status, plain) = run(false);
        assert_eq!(status, Some(0), "untracked: {plain}");
        assert!(plain.starts_with("ready\ngot\n"), "untracked: {plain}");
        for round in 0..3 {
            assert_eq!(run(true), expected, "SIG{sig}, round {round}");
        }
    }
}

/// A process of the program's group that leads it (as `timeout` does) and signals memtrace
/// alone: the signal is passed on, once.
#[test]
fn a_signal_to_memtrace_alone_from_its_group_s_leader_is_passed_on() {
    let (dir, tmp) = dirs("leader-signal");
    let script = write(&dir, "count.py", &counter("TERM"));
    let line = format!(
        "'{}' run -q -f -o leader.bin --python '{}' '{}' > out.txt & pid=$!; until grep -q ready out.txt; do sleep 0.02; done; kill -TERM $pid; wait $pid; echo \"exit $?\" >> out.txt; cat out.txt",
        memtrace_bin().display(),
        python_str(),
        script.display()
    );
    let out = Command::new("setsid")
        .args(["-w", "sh", "-c", &line])
        .current_dir(&dir)
        .env("TMPDIR", &tmp)
        .stdin(Stdio::null())
        .output_watched();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "ready\ngot\nSIGTERM x1\nexit 0\n"
    );
}

/// A shell under job control in a terminal, in `dir`, that runs `command`, says its status,
/// then runs `tail`.
fn job_control(dir: &Path, command: &str, tail: &str) -> Tmux {
    let line = format!(
        "cd '{}' && PS1='sh> ' bash --norc --noprofile -i; sleep 60",
        dir.display()
    );
    let tmux = Tmux::start(&line, 120, 30);
    tmux.wait_for("sh>");
    // Quoted apart, so that the typed line does not read as the output.
    tmux.text(&format!("{command}; echo \"SH\"\"ELL status=$?\"; {tail}"));
    tmux.key("Enter");
    tmux
}

#[test]
fn a_program_that_stops_itself_gives_the_terminal_back() {
    // raise(SIGSTOP) or raise(SIGTSTP) stops the program alone: memtrace stops with it (its
    // shell saw it stopped as it sees the program untracked: 128 + the signal), and `fg`
    // continues both.
    if !have_tmux() {
        return;
    }
    let (dir, _) = dirs("stop-self");
    let program = memtrace_e2e::compile("stop_self", &dir);
    let source = std::fs::read_to_string(workspace().join("tests/programs/stop_self.c"))
        .expect("stop_self.c");
    let malloc_line = 1 + source
        .lines()
        .position(|l| l.contains("malloc(1234)"))
        .expect("the program's malloc");
    for (how, status) in [("stop", 147), ("tstp", 148)] {
        let command = format!(
            "'{}' run -q -f -o capture.bin '{}' {how}",
            memtrace_bin().display(),
            program.display()
        );
        let tmux = job_control(&dir, &command, "fg; echo \"F\"\"G status=$?\"");
        let screen = tmux.wait_for("FG status=").join("\n");
        assert!(
            screen.contains(&format!("SHELL status={status}")),
            "{how}: {screen}"
        );
        assert!(screen.contains("went on"), "{how}: {screen}");
        assert!(screen.contains("FG status=0"), "{how}: {screen}");
        let s = stats(&dir.join("capture.bin"));
        assert_eq!(s["complete"], true, "{how}: {s}");
        let line = malloc_line;
        let mine = s["top_by_size"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|t| t["function"] == "main" && t["line"] == line && t["bytes"] == 1234);
        assert!(mine, "{how}: its 1234 bytes at line {line}: {s}");
        drop(tmux);
    }
}

#[test]
fn ctrl_z_stops_and_fg_continues_the_program_and_memtrace_together() {
    if !have_tmux() {
        return;
    }
    let (dir, _) = dirs("ctrl-z");
    let program = memtrace_e2e::compile("stop_self", &dir);
    let command = format!(
        "'{}' run -q -f -o capture.bin '{}' wait",
        memtrace_bin().display(),
        program.display()
    );
    let tmux = job_control(&dir, &command, "sleep 0.5; fg; echo \"F\"\"G status=$?\"");
    tmux.wait_for("ready");
    tmux.key("C-z");
    let screen = tmux.wait_for("FG status=").join("\n");
    assert!(screen.contains("SHELL status=148"), "{screen}");
    assert!(screen.contains("went on"), "{screen}");
    assert!(screen.contains("FG status=0"), "{screen}");
    assert_eq!(stats(&dir.join("capture.bin"))["complete"], true);
}

#[test]
fn a_program_at_the_argument_limit_is_refused_in_one_line_saying_why() {
    // memtrace adds a few hundred bytes of variables: a command within them of the limit
    // starts memtrace but not the program. Under a 512 KiB stack the limit is 128 KiB in all;
    // the second argument grows until the program no longer starts.
    let (dir, _) = dirs("arg-limit");
    let first = "a".repeat(60_000);
    let mut refused = None;
    for n in (60_000..80_000).step_by(50) {
        let mut cmd = Command::new(memtrace_bin());
        cmd.args(["run", "-q", "-f", "-o", "capture.bin", "/bin/true", &first])
            .arg("b".repeat(n))
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .current_dir(&dir);
        // SAFETY: setrlimit in the child before exec, with a valid struct.
        unsafe {
            cmd.pre_exec(|| {
                let small = libc::rlimit {
                    rlim_cur: 512 << 10,
                    rlim_max: libc::RLIM_INFINITY,
                };
                libc::setrlimit(libc::RLIMIT_STACK, &small);
                Ok(())
            });
        }
        let Ok(out) = cmd.output() else {
            break; // memtrace itself no longer starts
        };
        if !out.status.success() {
            refused = Some((
                out.status.code(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            ));
            break;
        }
    }
    let (code, err) = refused.expect("a size that starts memtrace but not the program");
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(
        err.trim_end(),
        "memtrace: cannot run /bin/true: its arguments and environment exceed the system's \
         limit (E2BIG: 128 KiB for one argument or variable, ARG_MAX for all; memtrace adds a \
         few hundred bytes of variables of its own)"
    );
}

/// `memtrace run -o capture.bin ./malloc_loop` in `dir`, started and seen ready (it allocates
/// until a file `done` appears, then prints "bye" and exits 7).
fn start_malloc_loop(dir: &Path, flags: &[&str]) -> (Child, BufReader<std::process::ChildStdout>) {
    let prog = memtrace_e2e::compile("malloc_loop", dir);
    let mut child = Command::new(memtrace_bin())
        .args(["run", "-o", "capture.bin"])
        .args(flags)
        .arg(&prog)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("memtrace runs");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    out.read_line(&mut line).expect("ready");
    assert_eq!(line, "ready\n");
    (child, out)
}

/// Lets the loop allocate a while longer (into its capture's mapping), ends it, and returns
/// its exit status, the rest of its output and memtrace's messages.
fn end_malloc_loop(
    dir: &Path,
    mut child: Child,
    mut out: impl Read,
) -> (ExitStatus, String, String) {
    std::thread::sleep(Duration::from_millis(300));
    std::fs::write(dir.join("done"), "").expect("done");
    let until = Instant::now() + PATIENCE;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > until {
            let _ = child.kill();
            panic!("the program did not end");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut rest = String::new();
    out.read_to_string(&mut rest).expect("output");
    let mut err = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut err)
        .expect("stderr");
    (status, rest, err)
}

#[test]
fn a_second_run_with_f_of_the_same_output_leaves_the_first_program_unharmed() {
    // The second run's -f used to truncate the file the first run's tracker had mapped: the
    // first program died of SIGBUS at its next allocation. Now the name goes to the second
    // run, a new file, and the first run says its capture is not there.
    let dir = scratch("same-output-forced");
    let (first, out) = start_malloc_loop(&dir, &[]);
    let second = Command::new(memtrace_bin())
        .args(["run", "-f", "-o", "capture.bin", "/bin/true"])
        .current_dir(&dir)
        .output_watched();
    assert!(second.status.success(), "{second:?}");
    let err = end_unharmed_without_its_capture(&dir, first, out);
    let s = stats(&dir.join("capture.bin"));
    assert_eq!(s["command"].as_str(), Some("/bin/true"), "{s} {err}");
}

#[test]
fn a_capture_replaced_while_the_program_ran_is_not_called_its_own() {
    // Another run creating the same -o between memtrace's check and the tracker's create is
    // the same as this: the file at the name is not the program's when it ends.
    let dir = scratch("same-output-replaced");
    let other = Command::new(memtrace_bin())
        .args(["run", "-o", "other.bin", "/bin/true"])
        .current_dir(&dir)
        .output_watched();
    assert!(other.status.success(), "{other:?}");
    let (first, out) = start_malloc_loop(&dir, &[]);
    std::fs::rename(dir.join("other.bin"), dir.join("capture.bin")).expect("rename");
    end_unharmed_without_its_capture(&dir, first, out);
}

/// Ends the loop of [`start_malloc_loop`], which must end as untracked, its memtrace saying
/// that the capture at its name is another process's; returns memtrace's messages.
fn end_unharmed_without_its_capture(dir: &Path, first: Child, out: impl Read) -> String {
    let (status, rest, err) = end_malloc_loop(dir, first, out);
    assert_eq!(status.code(), Some(7), "{status:?} {err}");
    assert_eq!(rest, "bye\n");
    assert!(
        err.contains(
            "no capture of this run is at capture.bin: the file there is another process's"
        ),
        "{err}"
    );
    assert!(!err.contains("wrote capture.bin"), "{err}");
    err
}

#[test]
fn an_output_that_is_not_a_regular_file_is_refused_and_left_alone() {
    // `-f -o /dev/null` replaced the device with the capture (run, attach): a FIFO stands for
    // it here.
    let dir = scratch("output-not-a-file");
    let fifo = dir.join("fifo");
    let made = Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo runs");
    assert!(made.success());
    let sleeper = Command::new("sleep").arg("30").spawn().expect("sleep runs");
    let pid = sleeper.id().to_string();
    for words in [
        vec!["run", "-f", "-o", "fifo", "/bin/true"],
        vec!["run", "-o", "fifo", "/bin/true"],
        vec!["attach", "-f", "-o", "fifo", pid.as_str()],
    ] {
        let out = Command::new(memtrace_bin())
            .args(&words)
            .current_dir(&dir)
            .output_watched();
        assert_eq!(out.status.code(), Some(1), "{words:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            err.trim_end(),
            format!(
                "memtrace: cannot write the capture to {}: it is not a regular file (a device, \
                 a FIFO or a socket); a capture is a file of its own: name one with -o",
                if words[0] == "run" {
                    "fifo".to_string()
                } else {
                    fifo.display().to_string()
                }
            ),
            "{words:?}"
        );
        let kind = std::fs::symlink_metadata(&fifo).expect("still there");
        assert!(
            std::os::unix::fs::FileTypeExt::is_fifo(&kind.file_type()),
            "{words:?}"
        );
    }
    let mut sleeper = sleeper;
    let _ = sleeper.kill();
    let _ = sleeper.wait();
}

/// A supervisor (untracked) that counts the SIGUSR1s it gets and runs its arguments.
const SUPERVISOR: &str = "\
import signal, subprocess, sys
got = []
signal.signal(signal.SIGUSR1, lambda s, f: got.append(s))
rc = subprocess.call(sys.argv[1:])
print('child', rc, 'signals', len(got))
";

/// The child tells its parent it is ready (Xvfb's and many daemons' way), and goes on.
const READY: &str = "\
import os, signal, time
os.kill(os.getppid(), signal.SIGUSR1)
time.sleep(0.3)
print('still here')
";

#[test]
fn a_signal_the_program_sends_its_parent_reaches_memtrace_s_parent() {
    // memtrace is the program's parent: it passed the signal back to the program (killed by
    // its own SIGUSR1, the supervisor never told).
    let (dir, _) = dirs("signal-to-parent");
    let supervisor = write(&dir, "supervisor.py", SUPERVISOR);
    let child = write(&dir, "ready.py", READY);
    let py = python().to_str().expect("utf-8").to_string();
    let alone = Command::new(&py)
        .arg(&supervisor)
        .arg(&py)
        .arg(&child)
        .output_watched();
    assert_eq!(
        String::from_utf8_lossy(&alone.stdout),
        "still here\nchild 0 signals 1\n"
    );
    let tracked = Command::new(&py)
        .arg(&supervisor)
        .arg(memtrace_bin())
        .args(["run", "-q", "-f", "-o"])
        .arg(dir.join("ready.bin"))
        .arg("--python")
        .arg(&py)
        .arg(&child)
        .output_watched();
    assert_eq!(
        String::from_utf8_lossy(&tracked.stdout),
        "still here\nchild 0 signals 1\n",
        "{tracked:?}"
    );
}

fn run_in(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(memtrace_bin())
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output_watched()
}

#[test]
fn the_capture_never_replaces_the_program_it_runs() {
    // `-f -o app.py app.py` made the script a capture (and `-o ./tool ./tool` the program).
    let (dir, _) = dirs("output-is-program");
    let script = write(&dir, "app.py", "print('mine')\n");
    let out = run_in(&dir, &["run", "-f", "-o", "app.py", "app.py"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "memtrace: app.py is the program this runs (app.py): the capture needs another name\n"
    );
    assert_eq!(
        std::fs::read_to_string(&script).expect("kept"),
        "print('mine')\n"
    );
    std::fs::copy("/bin/true", dir.join("tool")).expect("copy");
    let out = run_in(&dir, &["run", "-q", "-f", "-o", "tool", "./tool"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        std::fs::read(dir.join("tool")).expect("kept"),
        std::fs::read("/bin/true").expect("true")
    );
}

#[test]
fn the_live_view_s_output_file_is_not_overwritten_without_force() {
    let (dir, _) = dirs("live-out-kept");
    write(&dir, "s.py", "print('hello')\n");
    write(&dir, "lv.bin.out", "my notes\n");
    // In a terminal (`script` gives it one): the view needs it.
    let command = format!("{} run --live -o lv.bin s.py", memtrace_bin().display());
    let out = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .current_dir(&dir)
        .stdin(Stdio::null())
        .output_watched();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("lv.bin.out already exists"),
        "{out:?}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("lv.bin.out")).expect("kept"),
        "my notes\n"
    );
    assert!(!dir.join("lv.bin").exists());
}

#[test]
fn an_executable_py_file_of_another_interpreter_runs_as_its_path_would() {
    // `./bashy.py` runs bash, as its #! line says; it ran with python3 (a SyntaxError).
    let (dir, _) = dirs("foreign-shebang");
    let script = write(&dir, "bashy.py", "#!/bin/bash\necho \"bash here $0 $1\"\n");
    memtrace_e2e::make_executable(&script);
    let alone = Command::new("./bashy.py")
        .arg("a")
        .current_dir(&dir)
        .output_watched();
    assert_eq!(
        String::from_utf8_lossy(&alone.stdout),
        "bash here ./bashy.py a\n"
    );
    let out = run_in(&dir, &["run", "-q", "-o", "b.bin", "./bashy.py", "a"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(out.stdout, alone.stdout);
    assert!(dir.join("b.bin").exists());
}

#[test]
fn a_default_capture_in_a_directory_that_cannot_be_written_is_refused_before_the_run() {
    // The whole program ran unrecorded, and the reason came at its end, with exit status 0.
    let (dir, _) = dirs("cwd-read-only");
    let ro = dir.join("ro");
    std::fs::create_dir(&ro).expect("dir");
    let marker = dir.join("ran");
    let script = format!("touch {}", marker.display());
    // As user nobody (root writes anywhere): a directory of mode 555.
    std::fs::set_permissions(&ro, std::os::unix::fs::PermissionsExt::from_mode(0o555))
        .expect("chmod");
    let as_root =
        std::fs::metadata("/proc/self").is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0);
    if !as_root {
        eprintln!("not root: the run as another user is not tried");
        return;
    }
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o777))
        .expect("chmod");
    let out = Command::new(memtrace_bin())
        .args(["run", "/bin/sh", "-c", &script])
        .current_dir(&ro)
        .uid(65534)
        .gid(65534)
        .stdin(Stdio::null())
        .output_watched();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .starts_with("memtrace: cannot write the capture in the current directory"),
        "{out:?}"
    );
    assert!(!marker.exists(), "the program ran");
}

#[test]
fn a_run_the_tracker_could_not_join_says_so_even_quiet_and_leaves_no_old_capture() {
    // A program whose loader fails (a library gone) runs no constructor: no capture. With -q
    // nothing was said, and with -f the old capture stayed at the name, as if this run's.
    let (dir, _) = dirs("tracker-never-loads");
    write(&dir, "gone.c", "int gone(void) { return 1; }\n");
    write(
        &dir,
        "main.c",
        "int gone(void);\nint main(void) { return gone(); }\n",
    );
    let gcc = |args: &[&str]| {
        let ok = Command::new("gcc")
            .args(args)
            .current_dir(&dir)
            .status()
            .expect("gcc runs")
            .success();
        assert!(ok, "gcc {args:?}");
    };
    gcc(&["-shared", "-fPIC", "-o", "libgone.so", "gone.c"]);
    gcc(&[
        "-o",
        "needs_gone",
        "main.c",
        "-L.",
        "-lgone",
        "-Wl,-rpath,$ORIGIN",
    ]);
    std::fs::remove_file(dir.join("libgone.so")).expect("remove");
    write(&dir, "old.bin", "OLD\n");
    let out = run_in(&dir, &["run", "-q", "-f", "-o", "old.bin", "./needs_gone"]);
    assert_eq!(out.status.code(), Some(127), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("libgone.so"), "{err}");
    assert!(err.contains("memtrace: no capture was written"), "{err}");
    assert!(!dir.join("old.bin").exists(), "the old capture stayed");
}

#[test]
fn a_run_in_a_new_pid_namespace_never_names_an_earlier_run_s_capture() {
    // Every run in a fresh pid namespace gets the same pid, so the same default name: the
    // second run said "wrote memtrace-echo.3.bin" of the first run's capture.
    let (dir, _) = dirs("pid-namespace");
    let unshare = |word: &str| {
        Command::new("unshare")
            .args(["-fp", "--mount-proc"])
            .arg(memtrace_bin())
            .args(["run", "/bin/echo", word])
            .current_dir(&dir)
            .stdin(Stdio::null())
            .output_watched()
    };
    let first = unshare("first");
    if !first.status.success() {
        eprintln!("no pid namespace here (unshare: {first:?}): not tried");
        return;
    }
    let names = entries(&dir);
    let second = unshare("second");
    assert_eq!(second.stdout, b"second\n");
    let err = String::from_utf8_lossy(&second.stderr);
    if entries(&dir) == names {
        // The same name: this run wrote nothing, and says whose the file is.
        assert!(!err.contains("memtrace: wrote"), "{err}");
        assert!(err.contains("is an earlier run's"), "{err}");
    }
}

#[test]
fn a_capture_path_that_is_not_utf8_is_found_at_the_end() {
    // The end of the run looked for the capture under a lossy copy of its name and said "no
    // capture was written" of one that was.
    use std::os::unix::ffi::OsStrExt;
    let (dir, _) = dirs("non-utf8-output");
    let name = std::ffi::OsStr::from_bytes(b"cap\xff.bin");
    let out = Command::new(memtrace_bin())
        .arg("run")
        .arg("-o")
        .arg(name)
        .args(["/bin/echo", "hi"])
        .current_dir(&dir)
        .stdin(Stdio::null())
        .output_watched();
    assert!(out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("memtrace: wrote 'cap"), "{err}");
    assert!(!err.contains("no capture was written"), "{err}");
    assert!(dir.join(name).is_file());
}

#[test]
fn a_removed_current_directory_does_not_stop_a_run_with_an_absolute_output() {
    let (dir, _) = dirs("removed-cwd");
    let gone = dir.join("gone");
    std::fs::create_dir(&gone).expect("dir");
    let capture = dir.join("del.bin");
    let command = format!(
        "cd '{}' && rmdir '{}' && exec '{}' run -q -o '{}' /bin/echo hi",
        gone.display(),
        gone.display(),
        memtrace_bin().display(),
        capture.display()
    );
    let out = Command::new("/bin/sh")
        .args(["-c", &command])
        .stdin(Stdio::null())
        .output_watched();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout, b"hi\n");
    assert!(capture.is_file());
}

#[test]
fn a_full_tmpdir_falls_back_to_another_temporary_directory() {
    // A full $TMPDIR took the private directory and refused the start-up hook's files: every
    // Python run stopped ("No space left on device").
    let (dir, _) = dirs("full-tmpdir");
    let Some(full) = tmpfs(&dir, "full", "size=256k") else {
        eprintln!("no tmpfs can be mounted here: not tried");
        return;
    };
    // Fill it.
    let _ = std::fs::write(full.join("fill"), vec![0u8; 1 << 20]);
    let script = write(&dir, "s.py", "print('ran')\n");
    let out = Command::new(memtrace_bin())
        .args(["run", "-q", "-o"])
        .arg(dir.join("s.bin"))
        .arg("--python")
        .arg(python())
        .arg(&script)
        .env("TMPDIR", &full)
        .stdin(Stdio::null())
        .output_watched();
    let _ = Command::new("umount").arg(&full).status();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout, b"ran\n");
    // A Python run, its start-up hook in place: the script's start was marked.
    let s = stats(&dir.join("s.bin"));
    assert!(s["startup_bytes"].as_u64().is_some(), "{s}");
}

#[test]
fn a_full_disk_without_fallocate_never_breaks_the_program() {
    // On file systems without fallocate (ext2, vfat, NFSv3, some FUSE ones) the capture grew
    // as a sparse file, and once the disk was full the tracker's next store into the mapping
    // killed the program with SIGBUS. Here a seccomp filter refuses fallocate
    // (tests/programs/no_fallocate.c), on a 4 MiB tmpfs with some 1.5 MiB free.
    let (dir, _) = dirs("full-no-fallocate");
    let Some(small) = tmpfs(&dir, "small", "size=4m") else {
        eprintln!("no tmpfs can be mounted here: not tried");
        return;
    };
    let filled = std::fs::write(small.join("fill"), vec![0u8; 2_600_000]);
    let launcher = memtrace_e2e::compile("no_fallocate", &dir);
    let script = write(
        &dir,
        "big.py",
        "import random\nkeep = []\nfor r in range(20):\n    keep = [str(random.random()) for i in range(200_000)]\nprint('done', len(keep))\n",
    );
    let cap = small.join("cap.bin");
    let out = Command::new(&launcher)
        .arg(memtrace_bin())
        .args(["run", "-o"])
        .arg(&cap)
        .arg("--python")
        .arg(python())
        .arg(&script)
        .stdin(Stdio::null())
        .output_watched();
    // Read outside the tmpfs, unmounted first whatever the outcome.
    let kept = dir.join("cap.bin");
    let copied = std::fs::copy(&cap, &kept);
    let _ = Command::new("umount").arg(&small).status();
    filled.expect("fill");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(out.stdout, b"done 200000\n");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("incomplete"), "{err}");
    copied.expect("a capture");
    let s = stats(&kept);
    assert_eq!(s["complete"].as_bool(), Some(false), "{s}");
    assert!(
        s["total_allocations"].as_u64().is_some_and(|n| n > 0),
        "{s}"
    );
}

#[test]
fn a_signal_sent_with_sigqueue_reaches_the_program_with_its_value() {
    // memtrace passed every signal on with kill(2): the program's handler read `code 0 value
    // 0`, from memtrace's pid, where it should read sigqueue's code, value and sender.
    let dir = scratch("sigqueue");
    let prog = compile("sigqueue_receiver", &dir);
    let mut run = Command::new(memtrace_bin())
        .args(["run", "-q", "-f", "-o", "q.bin"])
        .arg(&prog)
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("memtrace starts");
    let mut stdout = BufReader::new(run.stdout.take().expect("stdout"));
    let mut line = String::new();
    stdout.read_line(&mut line).expect("ready");
    assert_eq!(line, "ready\n");
    let value = libc::sigval {
        sival_ptr: 7 as *mut libc::c_void,
    };
    // SAFETY: sigqueue(3) of a plain signal to our own child (memtrace), which waits for it.
    let r = unsafe { libc::sigqueue(run.id() as libc::pid_t, libc::SIGUSR1, value) };
    assert_eq!(r, 0, "sigqueue: {}", std::io::Error::last_os_error());
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).expect("the rest");
    let status = run.wait().expect("memtrace ends");
    assert_eq!(status.code(), Some(0), "{rest}");
    assert_eq!(
        rest,
        format!(
            "code {} value 7 sender {}\n",
            libc::SI_QUEUE,
            std::process::id()
        )
    );
}

/// `dir`/prog.c built with `-fsanitize=FLAG` as `dir`/prog-FLAG; None where gcc cannot (said).
fn built_with_a_sanitizer(dir: &Path, flag: &str) -> Option<PathBuf> {
    let bin = dir.join(format!("prog-{flag}"));
    let built = Command::new("gcc")
        .arg(format!("-fsanitize={flag}"))
        .arg("-o")
        .arg(&bin)
        .arg(dir.join("prog.c"))
        .status()
        .is_ok_and(|s| s.success());
    if !built {
        eprintln!("gcc cannot build with -fsanitize={flag} here: not tried");
    }
    built.then_some(bin)
}

/// A sanitizer-built program that a tracked program execs (a test runner, `make check`) runs as
/// it would alone: untracked, its environment as given. With the tracker preloaded ahead of its
/// runtime, AddressSanitizer's refused to start (exit 1) and ThreadSanitizer's crashed.
#[test]
fn a_sanitizer_built_program_a_tracked_program_execs_runs_as_alone() {
    let (dir, _) = dirs("sanitizer-exec");
    write(
        &dir,
        "prog.c",
        "#include <stdio.h>\n#include <stdlib.h>\nint main(void) { free(malloc(10)); puts(\"sanitized ok\"); return 3; }\n",
    );
    for flag in ["address", "thread"] {
        let Some(bin) = built_with_a_sanitizer(&dir, flag) else {
            continue;
        };
        let command = format!("exec {}", bin.display());
        let out = run_in(
            &dir,
            &["run", "-f", "-o", "e.bin", "--", "/bin/sh", "-c", &command],
        );
        assert_eq!(out.status.code(), Some(3), "{flag}: {out:?}");
        assert_eq!(out.stdout, b"sanitized ok\n", "{flag}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("which wrote no capture (") && err.contains("built with a sanitizer"),
            "{flag}: {err}"
        );
        assert!(
            !err.contains("ASan runtime") && !err.contains("ThreadSanitizer"),
            "{err}"
        );
    }
    // A sanitizer runtime the program's environment preloads itself must come first too.
    let runtime = Command::new("gcc")
        .arg("-print-file-name=libasan.so")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|p| p.starts_with('/') && Path::new(p).exists());
    let plain = dir.join("prog-plain");
    let built = Command::new("gcc")
        .arg("-o")
        .arg(&plain)
        .arg(dir.join("prog.c"))
        .status()
        .is_ok_and(|s| s.success());
    let Some(runtime) = runtime.filter(|_| built) else {
        eprintln!("no libasan.so to preload here: not tried");
        return;
    };
    let command = format!("LD_PRELOAD={runtime} exec {}", plain.display());
    let out = run_in(
        &dir,
        &["run", "-f", "-o", "p.bin", "--", "/bin/sh", "-c", &command],
    );
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert_eq!(out.stdout, b"sanitized ok\n", "{out:?}");
}

#[test]
fn the_closing_hint_is_a_command_to_paste() {
    // "memtrace tree my capture.bin" named two files to a shell.
    let (dir, _) = dirs("hint-quoted");
    let out = run_in(&dir, &["run", "-o", "my capture.bin", "/bin/true"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "memtrace: wrote 'my capture.bin'; view it with: memtrace stats 'my capture.bin'\n"
    );
}

#[test]
fn an_output_of_dash_is_refused() {
    // `-o -` wrote a file named `-`, where `-` usually means standard output.
    let (dir, _) = dirs("output-dash");
    let out = run_in(&dir, &["run", "-o", "-", "/bin/true"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .starts_with("memtrace: a capture is a file, not a stream"),
        "{out:?}"
    );
    assert!(!dir.join("-").exists());
}

/// A program built with AddressSanitizer or ThreadSanitizer, whose runtime must be loaded
/// before any other library: refused in one line naming the sanitizer, before it runs (ASan's
/// refused to start after the preloaded tracker, TSan's crashed, and memtrace then said the
/// program "may be statically linked").
#[test]
fn a_program_built_with_a_sanitizer_is_refused_by_name() {
    let (dir, _) = dirs("sanitizer");
    write(
        &dir,
        "prog.c",
        "#include <stdlib.h>\nint main(void) { free(malloc(10)); return 0; }\n",
    );
    for (flag, name) in [
        ("address", "AddressSanitizer"),
        ("thread", "ThreadSanitizer"),
    ] {
        let Some(bin) = built_with_a_sanitizer(&dir, flag) else {
            continue;
        };
        let out = run_in(
            &dir,
            &["run", "-q", "-o", "s.bin", bin.to_str().expect("utf-8")],
        );
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(&format!("is built with {name}")), "{err}");
        assert!(!dir.join("s.bin").exists());
    }
}

/// A program that removes its own capture (it cleans its directory: `rm -f ./*`) runs as alone,
/// and memtrace's last line allows for that (it named only static linking and LD_PRELOAD).
#[test]
fn a_capture_the_program_removed_is_not_blamed_on_static_linking() {
    let (dir, _) = dirs("removed-capture");
    write(&dir, "a.txt", "mine\n");
    let out = run_in(
        &dir,
        &[
            "run",
            "-o",
            "cap.bin",
            "/bin/sh",
            "-c",
            "rm -f ./*; echo done",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "done\n");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("memtrace: no capture was written, or the program removed it"),
        "{err}"
    );
    assert!(!dir.join("cap.bin").exists());
}

/// memtrace installed under a path with a space or a colon (a virtual environment in "My
/// Projects"): LD_PRELOAD split the tracker's path there, the loader wrote an error on the
/// program's stderr (and each followed child's) and no capture was written. The tracker is
/// preloaded through a link without them now.
#[test]
fn memtrace_installed_under_a_path_with_a_space_or_a_colon_tracks_the_program() {
    let dir = scratch("install-path-space");
    for (round, installed) in ["my projects/bin", "a:b/bin"].into_iter().enumerate() {
        let bin = dir.join(installed);
        std::fs::create_dir_all(&bin).expect("mkdir");
        for file in ["memtrace", "libmemtrace_tracker.so"] {
            std::fs::copy(memtrace_bin().with_file_name(file), bin.join(file)).expect("copy");
        }
        let script = dir.join("family.py");
        std::fs::write(
            &script,
            "import subprocess, sys\nkept = bytearray(3_000_000)\nsubprocess.run([sys.executable, '-c', 'y = bytearray(2_000_000)'], check=True)\nprint('done')\n",
        )
        .expect("write");
        let cap = dir.join(format!("family{round}.bin"));
        let out = Command::new(bin.join("memtrace"))
            .args(["run", "-q", "-f", "--follow-fork", "-o"])
            .arg(&cap)
            .arg("--python")
            .arg(python())
            .arg(&script)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .output_watched();
        assert_eq!(out.status.code(), Some(0), "{installed}: {out:?}");
        assert_eq!(out.stdout, b"done\n", "{installed}");
        assert_eq!(String::from_utf8_lossy(&out.stderr), "", "{installed}");
        let s = stats(&cap);
        let procs = s["processes"].as_array().expect("a family");
        assert_eq!(procs.len(), 2, "{installed}: {}", s["processes"]);
        let total = |p: &serde_json::Value| p["total_bytes"].as_u64().unwrap_or(0);
        assert!(total(&procs[0]) >= 3_000_000, "{installed}: {}", procs[0]);
        assert!(total(&procs[1]) >= 2_000_000, "{installed}: {}", procs[1]);
    }
}

/// A program that stops itself (waiting for a debugger) and is continued by another process
/// than memtrace's parent (the debugger, `kill -CONT PID`): memtrace, stopped with it so that
/// its parent saw the stop, stayed stopped for ever, and the parent never got the exit status.
#[test]
fn a_stopped_program_continued_by_another_process_ends_the_run() {
    let dir = scratch("stop-continued-elsewhere");
    let src = dir.join("stops.c");
    std::fs::write(
        &src,
        "#include <signal.h>\n#include <stdio.h>\n#include <unistd.h>\n\
         int main(void) {\n\
             FILE *f = fopen(\"pid\", \"w\"); fprintf(f, \"%d\\n\", getpid()); fclose(f);\n\
             printf(\"stopping\\n\"); fflush(stdout);\n\
             raise(SIGSTOP);\n\
             printf(\"continued\\n\");\n\
             return 9;\n\
         }\n",
    )
    .expect("write");
    let prog = memtrace_e2e::compile_file(&src, &dir);
    let mut run = Command::new(memtrace_bin())
        .args(["run", "-q", "-f", "-o", "stops.bin"])
        .arg(&prog)
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("memtrace starts");
    // The program has stopped itself (state T), and memtrace with it.
    let deadline = Instant::now() + Duration::from_secs(30);
    let pid = loop {
        let pid = std::fs::read_to_string(dir.join("pid")).unwrap_or_default();
        if let Ok(pid) = pid.trim().parse::<i32>() {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            if stat
                .rsplit_once(')')
                .is_some_and(|(_, r)| r.trim_start().starts_with('T'))
            {
                break pid;
            }
        }
        assert!(Instant::now() < deadline, "the program never stopped");
        std::thread::sleep(Duration::from_millis(20));
    };
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: kill(2) of the test's own grandchild.
    unsafe { libc::kill(pid, libc::SIGCONT) };
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = run.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = run.kill();
            panic!("memtrace run is still waiting 30 s after its program was continued");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut out = String::new();
    run.stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut out)
        .expect("read");
    assert_eq!(status.code(), Some(9), "{out}");
    assert_eq!(out, "stopping\ncontinued\n");
    let s = stats(&dir.join("stops.bin"));
    assert_eq!(s["complete"], true, "{s}");
}

/// Under a file size limit below 64 KiB (`ulimit -f 32`), memtrace's probe of its run
/// directory's room (a 64 KiB file) got SIGXFSZ and killed memtrace before the program
/// started (exit 153, nothing said). The program runs, and the capture stops at the limit.
#[test]
fn a_small_file_size_limit_lets_the_program_run() {
    let dir = scratch("small-fsize");
    for (name, words) in [
        ("native", vec!["/bin/echo", "hello"]),
        (
            "python",
            vec![
                "--python",
                python().to_str().expect("utf-8"),
                "-c",
                "print('hello')",
            ],
        ),
    ] {
        let cap = format!("{name}.bin");
        let mut cmd = Command::new(memtrace_bin());
        cmd.args(["run", "-q", "-f", "-o", &cap])
            .args(&words)
            .current_dir(&dir)
            .stdin(Stdio::null());
        // SAFETY: setrlimit(2) with a valid struct, in the child before exec.
        unsafe {
            cmd.pre_exec(|| {
                let limit = libc::rlimit {
                    rlim_cur: 32 * 1024,
                    rlim_max: libc::RLIM_INFINITY,
                };
                libc::setrlimit(libc::RLIMIT_FSIZE, &limit);
                Ok(())
            });
        }
        let out = cmd.output_watched();
        assert_eq!(out.status.code(), Some(0), "{name}: {out:?}");
        assert_eq!(out.stdout, b"hello\n", "{name}: {out:?}");
        let s = stats(&dir.join(&cap));
        assert!(s["total_allocations"].as_u64() > Some(0), "{name}: {s}");
    }
}

/// A capture on a file system with less room than one step of its growth (4 MiB) stopped at
/// the first refused step ("the disk is full") while megabytes were still free. Smaller steps
/// are tried first now: a 1.8 MB capture fits on a 4 MiB tmpfs.
#[test]
fn a_capture_grows_in_smaller_steps_when_the_disk_is_nearly_full() {
    let (dir, _) = dirs("small-disk");
    let small = dir.join("small");
    std::fs::create_dir(&small).expect("dir");
    let src = dir.join("pairs.c");
    std::fs::write(
        &src,
        "#include <stdio.h>\n#include <stdlib.h>\n\
         int main(void) {\n\
             void *ring[256] = {0};\n\
             unsigned long x = 88172645463325252UL, total = 0;\n\
             for (long i = 0; i < 300000; i++) {\n\
                 x ^= x << 13; x ^= x >> 7; x ^= x << 17;\n\
                 free(ring[x % 256]);\n\
                 size_t size = 1 + (x >> 20) % 5000;\n\
                 ring[x % 256] = malloc(size);\n\
                 total += size;\n\
             }\n\
             for (int i = 0; i < 256; i++) free(ring[i]);\n\
             printf(\"%lu\\n\", total);\n\
             return 0;\n\
         }\n",
    )
    .expect("write");
    let prog = memtrace_e2e::compile_file(&src, &dir);
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
        .arg(&small)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("no tmpfs can be mounted here: not tried");
        return;
    }
    let cap = small.join("pairs.bin");
    let out = Command::new(memtrace_bin())
        .args(["run", "-q", "-o"])
        .arg(&cap)
        .arg(&prog)
        .stdin(Stdio::null())
        .output_watched();
    let s = memtrace_e2e::report(&["stats", "--json"], &cap);
    let _ = Command::new("umount").arg(&small).status();
    assert!(out.status.success(), "{out:?}");
    let total: u64 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("the program's total");
    assert_eq!(s["complete"], true, "{}", s["warnings"]);
    // The program's 300,000 and stdout's buffer.
    assert_eq!(s["total_allocations"], 300_001, "{}", s["warnings"]);
    assert!(
        s["total_bytes"].as_u64() > Some(total),
        "{}",
        s["total_bytes"]
    );
}

/// An address-space limit lowered from outside the process (`prlimit --pid PID --as=...`, as
/// batch schedulers and admins do): the capture's mapping still held the room taken without
/// it, every large allocation of the program failed (0 of 20 succeeded, 20 untracked), and a
/// Python program got a MemoryError, then died of an allocation of the tracker's (SIGABRT).
/// A refused allocation makes the capture give back its unused room, and is made again.
#[test]
fn an_address_space_limit_lowered_from_outside_leaves_the_program_its_room() {
    let dir = scratch("rlimit-as-outside");
    let src = dir.join("big.c");
    std::fs::write(
        &src,
        "#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n#include <unistd.h>\n\
         int main(void) {\n\
             FILE *f = fopen(\"pid\", \"w\"); fprintf(f, \"%d\\n\", getpid()); fclose(f);\n\
             while (access(\"go\", F_OK) != 0) usleep(10000);\n\
             int ok = 0;\n\
             for (int i = 0; i < 20; i++) {\n\
                 char *p = malloc(50 << 20);\n\
                 if (p) { memset(p, 1, 4096); ok++; free(p); }\n\
             }\n\
             printf(\"ok %d\\n\", ok);\n\
             return 0;\n\
         }\n",
    )
    .expect("write");
    let prog = memtrace_e2e::compile_file(&src, &dir);
    let script = dir.join("big.py");
    std::fs::write(
        &script,
        "import os, time\n\
         open('pid', 'w').write(f'{os.getpid()}\\n')\n\
         while not os.path.exists('go'):\n    time.sleep(0.01)\n\
         total = 0\n\
         for i in range(20):\n    b = bytearray(50 << 20)\n    total += len(b)\n    del b\n    x = [str(j) for j in range(100000)]\n\
         print('ok', total >> 20)\n",
    )
    .expect("write");
    let python = python();
    let runs: [(&str, Vec<&std::ffi::OsStr>, &str); 2] = [
        ("native", vec![prog.as_os_str()], "ok 20\n"),
        (
            "python",
            vec!["--python".as_ref(), python.as_os_str(), script.as_os_str()],
            "ok 1000\n",
        ),
    ];
    for (name, words, expected) in runs {
        let _ = std::fs::remove_file(dir.join("pid"));
        let _ = std::fs::remove_file(dir.join("go"));
        let run = Command::new(memtrace_bin())
            .args(["run", "-q", "-f", "-o", "big.bin"])
            .args(&words)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("memtrace starts");
        let deadline = Instant::now() + Duration::from_secs(30);
        let pid = loop {
            let text = std::fs::read_to_string(dir.join("pid")).unwrap_or_default();
            if let Ok(pid) = text.trim().parse::<i32>() {
                break pid;
            }
            assert!(
                Instant::now() < deadline,
                "{name}: the program never started"
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        let limit = libc::rlimit {
            rlim_cur: 600_000_000,
            rlim_max: libc::RLIM_INFINITY,
        };
        // SAFETY: prlimit(2) of the test's grandchild with a valid struct.
        let set = unsafe { libc::prlimit(pid, libc::RLIMIT_AS, &limit, std::ptr::null_mut()) };
        assert_eq!(set, 0, "{name}: prlimit");
        std::fs::write(dir.join("go"), "").expect("go");
        let out = run.wait_with_output().expect("wait");
        assert_eq!(out.status.code(), Some(0), "{name}: {out:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            expected,
            "{name}: {out:?}"
        );
        assert_eq!(String::from_utf8_lossy(&out.stderr), "", "{name}");
    }
}

/// Under a umask that takes the owner's own permissions away (`umask 0777`, as some services
/// set), the capture is still its owner's to read and write: it was made with mode 000, and a
/// user who is not root could not read what the run recorded. The group and others keep what
/// the umask left them.
#[test]
fn under_umask_0777_the_capture_stays_readable_by_its_owner() {
    use std::os::unix::fs::PermissionsExt;
    let (dir, _tmp) = dirs("umask-0777");
    for (mask, want) in [("0777", 0o600), ("0027", 0o640)] {
        let command = format!(
            "umask {mask} && exec '{}' run -q -f -o capture.bin /bin/true",
            memtrace_bin().display()
        );
        let out = Command::new("/bin/sh")
            .args(["-c", &command])
            .current_dir(&dir)
            .stdin(Stdio::null())
            .output_watched();
        assert!(out.status.success(), "{out:?}");
        let mode = std::fs::metadata(dir.join("capture.bin"))
            .expect("the capture")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, want, "umask {mask}: {mode:o}");
    }
}

#[test]
fn a_program_that_failed_beside_a_full_capture_disk_is_told_why_it_may_have() {
    // The capture takes the space of the file system it shares with the program's output: a
    // program that failed for want of space got no word from memtrace, whose capture was whole
    // (review 3). Now the run says the capture's file system is full, and where to put it.
    let (dir, _) = dirs("full-disk-note");
    let prog = compile("fills_disk", &dir);
    let Some(small) = tmpfs(&dir, "small", "size=4m") else {
        eprintln!("no tmpfs can be mounted here: not tried");
        return;
    };
    let plain = Command::new(&prog)
        .arg(small.join("plain.txt"))
        .stdin(Stdio::null())
        .output_watched();
    let _ = std::fs::remove_file(small.join("plain.txt"));
    let out = run_in(
        &dir,
        &[
            "run",
            "-o",
            small.join("cap.bin").to_str().expect("utf-8"),
            "--",
            prog.to_str().expect("utf-8"),
            small.join("out.txt").to_str().expect("utf-8"),
        ],
    );
    let _ = Command::new("umount").arg(&small).status();
    assert_eq!(plain.status.code(), Some(1), "{plain:?}");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("write failed: No space left on device\n"),
        "{stderr}"
    );
    assert!(
        stderr.contains("memtrace: the capture's file system is full ("),
        "{stderr}"
    );
    assert!(
        stderr.contains("write the capture elsewhere (-o)"),
        "{stderr}"
    );
    // A program that succeeds hears nothing of it.
    let fine = run_in(&dir, &["run", "-o", "fine.bin", "/bin/true"]);
    assert!(
        !String::from_utf8_lossy(&fine.stderr).contains("file system is full"),
        "{fine:?}"
    );
}

/// A program that lowers its own file size limit: a write of the tracker's past it (the status
/// file where an exec'd image says it could not record, a followed Python child's hook) raised
/// SIGXFSZ, which killed the program (exit 153, or a child killed by signal 25), in every mode.
#[test]
fn a_program_that_lowers_its_file_size_limit_is_never_killed_for_it() {
    let dir = scratch("file-size-limit");
    let prog = compile("file_size_limit", &dir);
    let modes: [&[&str]; 5] = [
        &[],
        &["--follow-fork"],
        &["--native", "--follow-fork"],
        &["--sample-bytes", "512K", "--follow-fork"],
        &["--aggregate", "--follow-fork"],
    ];
    for (limit, what) in [("0", "exec"), ("50", "exec"), ("0", "fork"), ("50", "fork")] {
        let alone = Command::new(&prog)
            .args([limit, what])
            .current_dir(&dir)
            .output_watched();
        for opts in modes {
            let out = Command::new(memtrace_bin())
                .args(["run", "-q", "-f", "-o", "cap.bin"])
                .args(opts)
                .arg("--")
                .arg(&prog)
                .args([limit, what])
                .current_dir(&dir)
                .output_watched();
            let case = format!("{limit} {what} {opts:?}");
            assert_eq!(out.status.code(), alone.status.code(), "{case}: {out:?}");
            assert_eq!(out.stdout, alone.stdout, "{case}");
        }
    }
    // A Python program's followed Python child: its hook (some 7.7 KB) did not fit.
    let script = dir.join("limited.py");
    std::fs::write(
        &script,
        "import resource, subprocess, sys\n\
         resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))\n\
         p = subprocess.run([sys.executable, '-c', 'x = [bytes(100) for i in range(10000)]; \
         print(len(x))'], capture_output=True, text=True)\n\
         print(p.returncode, p.stdout.strip())\n",
    )
    .expect("write the script");
    let py = python();
    let alone = Command::new(py).arg(&script).output_watched();
    assert_eq!(String::from_utf8_lossy(&alone.stdout), "0 10000\n");
    let out = Command::new(memtrace_bin())
        .args([
            "run",
            "-q",
            "-f",
            "--follow-fork",
            "-o",
            "py.bin",
            "--python",
        ])
        .arg(py)
        .arg(&script)
        .current_dir(&dir)
        .output_watched();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(out.stdout, alone.stdout);
}

/// A program that lowers its open-file limit to its three standard descriptors and then execs:
/// the new image's loader had no descriptor to open the preloaded tracker with and wrote
/// "ERROR: ld.so: object ... cannot be preloaded" on the program's stderr, a line the program
/// alone never shows (the shell it execs fails either way: its loader cannot open libc).
#[test]
fn an_exec_with_no_descriptor_free_shows_the_program_s_stderr_alone() {
    let dir = scratch("exec-without-descriptors");
    let prog = compile("exec_without_descriptors", &dir);
    let alone = Command::new(&prog).current_dir(&dir).output_watched();
    assert!(
        String::from_utf8_lossy(&alone.stderr).contains("error while loading shared libraries"),
        "{alone:?}"
    );
    for opts in [&[][..], &["--follow-fork"][..], &["--native"][..]] {
        let out = Command::new(memtrace_bin())
            .args(["run", "-q", "-f", "-o", "cap.bin"])
            .args(opts)
            .arg("--")
            .arg(&prog)
            .current_dir(&dir)
            .output_watched();
        assert_eq!(out.status.code(), alone.status.code(), "{opts:?}: {out:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&alone.stderr),
            "{opts:?}"
        );
        assert_eq!(out.stdout, alone.stdout, "{opts:?}");
    }
}

/// A signal handler that allocates, delivered to a thread while it forks (a SIGCHLD of an
/// earlier child, during the next fork): it came into a hook while the fork handlers held the
/// tracker's locks on that thread, and waited for them for ever (10 runs of 10 hung, in every
/// mode). The signals now wait until the fork's locks are let go.
#[test]
fn a_signal_handler_that_allocates_during_a_fork_never_hangs_the_program() {
    let dir = scratch("fork-signal-alloc");
    let prog = compile("fork_signal_alloc", &dir);
    let modes: [&[&str]; 5] = [
        &[],
        &["--follow-fork"],
        &["--native"],
        &["--aggregate", "--follow-fork"],
        &["--sample-bytes", "4K"],
    ];
    for round in 0..3 {
        for opts in modes {
            let out = Command::new(memtrace_bin())
                .args(["run", "-q", "-f", "-o", "cap.bin"])
                .args(opts)
                .arg("--")
                .arg(&prog)
                .arg("200")
                .current_dir(&dir)
                .output_watched();
            let case = format!("round {round} {opts:?}");
            assert_eq!(out.status.code(), Some(0), "{case}: {out:?}");
            assert_eq!(
                String::from_utf8_lossy(&out.stdout),
                "reaped 200\n",
                "{case}"
            );
        }
    }
}

/// A signal sent by name (`killall memtrace`, `pkill -f 'memtrace run'`) to memtrace in a
/// script (not its group's leader): the process memtrace leaves in the group to tell a
/// signal to the group from one to memtrace alone bore memtrace's name and command line, so
/// it got the signal too, memtrace took it for the group's, and the program never got it
/// (it ran on). That process goes by a name of its own. (Only this test's memtrace is named:
/// the other tests' run beside it.)
#[test]
fn a_signal_sent_to_memtrace_by_name_reaches_the_program() {
    let (dir, tmp) = dirs("signal-by-name");
    let script = write(&dir, "count.py", &counter("TERM"));
    let mt = memtrace_bin().display().to_string();
    let line = format!(
        "'{mt}' run -q -f -o byname.bin --python '{py}' '{script}' > out.txt & pid=$!; \
         until grep -q ready out.txt; do sleep 0.02; done; \
         for d in /proc/[0-9]*; do p=${{d#/proc/}}; [ \"$p\" = \"$$\" ] && continue; \
           case \"$(tr '\\0' ' ' < $d/cmdline 2>/dev/null)\" in \"{mt} run -q -f -o byname.bin \"*) kill -TERM $p;; esac; done; \
         for i in $(seq 200); do kill -0 $pid 2>/dev/null || break; sleep 0.05; done; \
         kill -KILL $pid 2>/dev/null; wait $pid; echo \"exit $?\" >> out.txt; cat out.txt",
        py = python_str(),
        script = script.display()
    );
    let out = Command::new("setsid")
        .args(["-w", "sh", "-c", &line])
        .current_dir(&dir)
        .env("TMPDIR", &tmp)
        .stdin(Stdio::null())
        .output_watched();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "ready\ngot\nSIGTERM x1\nexit 0\n",
        "{out:?}"
    );
}

/// `-o` naming a symbolic link: one that leads nowhere was looked through (nothing there), so
/// the program ran and the capture then could not be made ("File exists"); with `-f` the file
/// a link led to was truncated and rewritten in place. Without `-f` a link is refused before
/// the program starts; `-f` gives the name to a new file and leaves the link's file alone.
#[test]
fn a_capture_named_by_a_symbolic_link_never_writes_through_it() {
    let (dir, _) = dirs("output-symlink");
    std::fs::write(dir.join("target.txt"), "important\n").expect("write");
    std::os::unix::fs::symlink("target.txt", dir.join("link.bin")).expect("link");
    std::os::unix::fs::symlink("nowhere.bin", dir.join("dangling.bin")).expect("link");
    let run = |extra: &[&str], name: &str| {
        Command::new(memtrace_bin())
            .args(["run", "-q"])
            .args(extra)
            .args(["-o", name, "--", "sh", "-c", "echo ran"])
            .current_dir(&dir)
            .stdin(Stdio::null())
            .output_watched()
    };
    for name in ["link.bin", "dangling.bin"] {
        let out = run(&[], name);
        assert_eq!(out.status.code(), Some(1), "{name}: {out:?}");
        assert_eq!(out.stdout, b"", "{name}: the program ran");
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            format!("memtrace: {name} already exists (use -f to overwrite it)\n")
        );
        let forced = run(&["-f"], name);
        assert_eq!(forced.status.code(), Some(0), "{name}: {forced:?}");
        let meta = std::fs::symlink_metadata(dir.join(name)).expect("the capture");
        assert!(meta.is_file(), "{name}: still a link");
        assert!(stats(&dir.join(name))["total_allocations"].is_u64());
    }
    assert_eq!(
        std::fs::read_to_string(dir.join("target.txt")).expect("read"),
        "important\n"
    );
    assert!(!dir.join("nowhere.bin").exists());
}

/// A script whose `#!` line names an interpreter that is not there (a carriage return at its
/// end, as a file saved with Windows line ends has): the kernel says ENOENT, and memtrace said
/// "No such file or directory" of a script that is there.
#[test]
fn a_script_with_a_bad_interpreter_is_named_as_such() {
    let (dir, _) = dirs("bad-interpreter");
    std::fs::write(dir.join("crlf.sh"), "#!/bin/sh\r\necho hi\r\n").expect("write");
    std::fs::write(dir.join("none.sh"), "#!/nonexistent/interp -x\necho hi\n").expect("write");
    for (name, said) in [
        (
            "crlf.sh",
            "bad interpreter \"/bin/sh\\r\" in its #! line (the line ends with a carriage return: the file has Windows line ends)",
        ),
        (
            "none.sh",
            "bad interpreter \"/nonexistent/interp\" in its #! line (no such file)",
        ),
    ] {
        let path = dir.join(name);
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod");
        let out = Command::new(memtrace_bin())
            .args(["run", "-q", "-o", "x.bin"])
            .arg(&path)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .output_watched();
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            format!("memtrace: cannot run {}: {said}\n", path.display())
        );
        assert!(!dir.join("x.bin").exists());
    }
}

/// A library the program links runs a command from its constructor, before the tracker's own
/// constructor cleans the environment: the command inherited the variable by which memtrace's
/// direct child asks to die with memtrace, saw a parent that is not memtrace and killed itself
/// (the library read nothing, the program exited 1) whenever memtrace ran without a terminal.
#[test]
fn a_command_run_by_a_linked_library_s_constructor_runs() {
    let (dir, _) = dirs("ctor-popen");
    let lib = memtrace_e2e::compile_shared("ctor_popen", &dir, &["-O0"]);
    let main = dir.join("ctor_popen_main");
    let built = Command::new("gcc")
        .args(["-O0", "-g", "-o"])
        .arg(&main)
        .arg(workspace().join("tests/programs/ctor_popen_main.c"))
        .arg(&lib)
        .arg(format!("-Wl,-rpath,{}", dir.display()))
        .status()
        .expect("gcc runs");
    assert!(built.success());
    let plain = Command::new(&main).output_watched();
    assert!(plain.status.success(), "{plain:?}");
    assert_eq!(
        String::from_utf8_lossy(&plain.stdout),
        "main: probed-by-constructor\n"
    );
    let cap = dir.join("ctor.bin");
    for mode in [
        &[][..],
        &["--follow-fork"],
        &["--native"],
        &["--aggregate"],
        &["--sample-bytes", "64K"],
    ] {
        let out = Command::new(memtrace_bin())
            .args(["run", "-q", "-f", "-o"])
            .arg(&cap)
            .args(mode)
            .arg(&main)
            .stdin(Stdio::null())
            .current_dir(&dir)
            .output_watched();
        assert_eq!(out.status.code(), Some(0), "{mode:?}: {out:?}");
        assert_eq!(out.stdout, plain.stdout, "{mode:?}");
        if mode.contains(&"--sample-bytes") {
            continue;
        }
        // The program's own allocation is recorded, at its line.
        let s = stats(&cap);
        let at_main = s["top_by_size"].as_array().and_then(|rows| {
            rows.iter().find(|r| {
                r["line"] == 9
                    && r["file"]
                        .as_str()
                        .is_some_and(|f| f.ends_with("ctor_popen_main.c"))
            })
        });
        let row = at_main.unwrap_or_else(|| panic!("{mode:?}: no row at main.c:9 in {s}"));
        assert_eq!((&row["bytes"], &row["count"]), (&100.into(), &1.into()));
    }
}

/// An exec whose environment holds LD_PRELOAD twice: the loader takes the last entry, and the
/// exec'd program keeps both (memtrace put its own entry in the first and dropped the rest,
/// so the program's library was never loaded).
#[test]
fn an_exec_with_two_ld_preload_entries_keeps_the_loader_s() {
    let (dir, _) = dirs("two-preloads");
    let lib = memtrace_e2e::compile_shared("says_preloaded", &dir, &["-O0"]);
    let prog = compile("exec_two_preloads", &dir);
    let cmd = "env | grep -E '^(LD_PRELOAD|C)=' ; echo done";
    let args = [lib.to_str().expect("utf-8"), cmd];
    let plain = Command::new(&prog).args(args).output_watched();
    assert!(plain.status.success(), "{plain:?}");
    let text = String::from_utf8_lossy(&plain.stdout).into_owned();
    assert!(text.starts_with("preloaded\n"), "{text}");
    let cap = dir.join("two.bin");
    for mode in [&[][..], &["--follow-fork"], &["--native"]] {
        let out = Command::new(memtrace_bin())
            .args(["run", "-q", "-f", "-o"])
            .arg(&cap)
            .args(mode)
            .arg(&prog)
            .args(args)
            .current_dir(&dir)
            .output_watched();
        assert_eq!(out.status.code(), Some(0), "{mode:?}: {out:?}");
        // Followed children keep the tracker in LD_PRELOAD (its entry first), as documented.
        let tracker = memtrace_bin().with_file_name("libmemtrace_tracker.so");
        let shown =
            String::from_utf8_lossy(&out.stdout).replace(&format!("{}:", tracker.display()), "");
        assert_eq!(shown, text, "{mode:?}");
    }
}
