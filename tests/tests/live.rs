//! `memtrace live` on a capture that grows: a Python program holds 3,000,000 bytes at a known
//! line in its main thread and 1,000,000 in a thread named `worker`, then waits for a file; the
//! view, in tmux, shows the line while the program runs, follows a thread with `t`, switches to
//! the peak with `p`, and says when the program has ended, keeping its final view.

use memtrace_e2e::netfs::{have_sshfs, NetFs};
use memtrace_e2e::python::{python, write};
use memtrace_e2e::tmux::{have_tmux, Tmux};
use memtrace_e2e::watchdog::Watched;
use memtrace_e2e::{memtrace_bin, scratch};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Holds 3,000,000 bytes at line 5 (main thread) and 1,000,000 at line 8 (thread `worker`),
/// waits for `go`, frees them and ends with status 0.
pub const SCRIPT: &str = "import os, threading, time
KEEP = []

def hold():
    KEEP.append(bytearray(3_000_000))

def work():
    KEEP.append(bytearray(1_000_000))
    while not os.path.exists('go'):
        time.sleep(0.05)

t = threading.Thread(target=work, name='worker')
t.start()
hold()
while not os.path.exists('go'):
    time.sleep(0.05)
t.join()
KEEP.clear()
print('done')
";

/// The run, killed if the test fails before it ends.
struct Run(Child);

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Writes `text` as the script `name` in `dir`, starts it under `memtrace run -o out.bin` and
/// waits for its capture to appear.
fn start_script(dir: &Path, name: &str, text: &str) -> Run {
    write(dir, name, text);
    let child = Command::new(memtrace_bin())
        .args(["run", "-q", "-o", "out.bin", "--python"])
        .arg(python())
        .arg(name)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("memtrace run starts");
    let start = Instant::now();
    while !dir.join("out.bin").exists() {
        assert!(start.elapsed() < Duration::from_secs(60), "no capture");
        std::thread::sleep(Duration::from_millis(50));
    }
    Run(child)
}

#[test]
fn live_follows_a_growing_capture_to_its_end() {
    if !have_tmux() {
        return;
    }
    let dir = scratch("live");
    let mut child = start_script(&dir, "grow.py", SCRIPT);
    let cmd = format!(
        "cd {} && {} live out.bin; sleep 60",
        dir.display(),
        memtrace_bin().display()
    );
    let ui = Tmux::start(&cmd, 140, 40);
    // While it runs: the line that holds the memory, in the live view.
    // (The biggest path opens: the main thread's line; the worker's is under its thread's start.)
    // The worker may allocate after the main thread's line shows: wait for both.
    let both_held = |s: &[String]| {
        s.iter()
            .any(|l| l.contains("3.8 MiB") || l.contains("3.9 MiB"))
    };
    let screen = ui.wait("the holding line and both blocks held", |s| {
        s.iter().any(|l| l.contains("hold  grow.py:5")) && both_held(s)
    });
    let head = &screen[0];
    assert!(head.starts_with("● running"), "{head}");
    assert!(head.contains("view: live now"), "{head}");
    // The tree's total: at least the 4,000,000 bytes held.
    assert!(
        screen
            .iter()
            .any(|l| l.contains("3.8 MiB") || l.contains("3.9 MiB")),
        "{}",
        screen.join("\n")
    );
    // t: the first thread (main) alone, then the worker alone.
    ui.key("t");
    let screen = ui.wait("the main thread alone", |s| {
        s[0].contains("thread: MainThread")
    });
    assert!(
        !screen.iter().any(|l| l.contains("work  grow.py:8")),
        "{}",
        screen.join("\n")
    );
    ui.key("t");
    let screen = ui.wait("the worker alone", |s| s[0].contains("thread: worker"));
    assert!(
        screen.iter().any(|l| l.contains("work  grow.py:8")),
        "{}",
        screen.join("\n")
    );
    assert!(
        !screen.iter().any(|l| l.contains("hold  grow.py:5")),
        "{}",
        screen.join("\n")
    );
    ui.key("t");
    ui.wait("all threads", |s| s[0].contains("thread: all"));

    // Let it finish: the view says so and keeps its final state; what was held is freed.
    std::fs::write(dir.join("go"), "").expect("write go");
    let status = child.0.wait().expect("memtrace run ends");
    assert!(status.success(), "{status:?}");
    // The end may show a refresh before the last reads after it (what was written last): the
    // held line goes with them, or the wait fails.
    let screen = ui.wait("the end, the held line freed", |s| {
        s[0].starts_with("■ ended") && !s.iter().any(|l| l.contains("hold  grow.py:5"))
    });
    // Its trailer says how it ended; "the process is gone" was all a finished capture read.
    assert!(
        screen[0].starts_with("■ ended (the program ended)"),
        "{}",
        screen[0]
    );
    // p: the peak so far, where the held lines are.
    ui.key("p");
    let screen = ui.wait("the peak", |s| {
        s[0].contains("view: peak so far") && s.iter().any(|l| l.contains("hold  grow.py:5"))
    });
    assert!(screen[0].starts_with("■ ended"), "{}", screen[0]);
    ui.key("q");
    ui.wait("the view to quit", |s| {
        !s.iter().any(|l| l.contains("view: "))
    });
}

/// The capture on a network file system, written through one sshfs mount and followed through
/// another (two clients of one server, as two machines on NFS): the view shows the holding line
/// while the program runs, then its end.
#[test]
fn live_follows_a_capture_on_a_network_file_system() {
    if !have_tmux() || !have_sshfs() {
        return;
    }
    let dir = scratch("live-netfs");
    let mut net = match NetFs::start(&dir) {
        Ok(net) => net,
        Err(why) => {
            eprintln!("skipped: no network file system here: {why}");
            return;
        }
    };
    let (writer, reader) = match (net.mount("writer"), net.mount("reader")) {
        (Ok(w), Ok(r)) => (w, r),
        (w, r) => {
            eprintln!("skipped: cannot mount sshfs here: {w:?} {r:?}");
            return;
        }
    };
    let mut child = start_script(&writer, "grow.py", SCRIPT);
    let cmd = format!(
        "{} live {}; sleep 60",
        memtrace_bin().display(),
        reader.join("out.bin").display()
    );
    let ui = Tmux::start(&cmd, 140, 40);
    let screen = ui.wait("the holding line, read over the network", |s| {
        s.iter().any(|l| l.contains("hold  grow.py:5"))
    });
    assert!(screen[0].starts_with("● running"), "{}", screen[0]);
    std::fs::write(writer.join("go"), "").expect("write go");
    let status = child.0.wait().expect("memtrace run ends");
    assert!(status.success(), "{status:?}");
    // The end, with what was held freed: the view has read the capture's last writes.
    ui.wait("the end, the held line freed", |s| {
        s[0].starts_with("■ ended") && !s.iter().any(|l| l.contains("hold  grow.py:5"))
    });
    ui.key("q");
    drop(net);
}

#[test]
fn live_refuses_a_missing_file_and_a_pipe() {
    let dir = scratch("live_refuse");
    let out = Command::new(memtrace_bin())
        .args(["live", "nothing.bin"])
        .current_dir(&dir)
        .output_watched();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    // A named pipe: refused at once (opening it waited for a writer for ever).
    let fifo = dir.join("fifo");
    let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(made.success());
    let started = Instant::now();
    let out = Command::new(memtrace_bin())
        .args(["live", "fifo"])
        .current_dir(&dir)
        .output_watched();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
}

/// An aggregated capture holds sums, not the events the live view follows: one line, exit 1
/// (the view showed 0 B everywhere).
#[test]
fn live_refuses_an_aggregated_capture() {
    let dir = scratch("live_aggregate");
    let script = write(&dir, "a.py", "x = [bytearray(1000) for _ in range(100)]\n");
    let out = Command::new(memtrace_bin())
        .args(["run", "-q", "-f", "--aggregate", "-o", "a.bin", "--python"])
        .arg(python())
        .arg(&script)
        .current_dir(&dir)
        .output_watched();
    assert!(out.status.success(), "{out:?}");
    let out = Command::new(memtrace_bin())
        .args(["live", "a.bin"])
        .current_dir(&dir)
        .output_watched();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("aggregated capture"), "{err}");
}

/// `run --live`: the view and the program in one terminal; the program's output goes to
/// `out.bin.out` (named in the view) and its exit status passes through.
#[test]
fn run_live_shows_the_view_and_passes_the_output_and_status_through() {
    if !have_tmux() {
        return;
    }
    let dir = scratch("run_live");
    write(
        &dir,
        "prog.py",
        "import os, sys, time
print('to stdout', flush=True)
print('to stderr', file=sys.stderr, flush=True)
KEEP = bytearray(2_000_000)
while not os.path.exists('go'):
    time.sleep(0.05)
sys.exit(3)
",
    );
    let cmd = format!(
        "cd {} && {} run --live -o out.bin --python {} prog.py; echo status=$? > status.tmp; mv status.tmp status.txt; sleep 60",
        dir.display(),
        memtrace_bin().display(),
        python().display()
    );
    let ui = Tmux::start(&cmd, 140, 40);
    let screen = ui.wait("the holding line and both blocks held", |s| {
        s.iter().any(|l| l.contains("<module>  prog.py:4"))
    });
    assert!(screen[0].starts_with("● running"), "{}", screen[0]);
    assert!(
        screen
            .iter()
            .any(|l| l.contains("output: ") && l.contains("out.bin.out")),
        "{}",
        screen.join("\n")
    );
    std::fs::write(dir.join("go"), "").expect("write go");
    ui.wait("the end", |s| s[0].contains("ended (exited with status 3)"));
    ui.key("q");
    wait_for_status(&dir);
    std::thread::sleep(Duration::from_millis(100));
    let status = std::fs::read_to_string(dir.join("status.txt")).expect("status");
    assert_eq!(status.trim(), "status=3");
    let output = std::fs::read_to_string(dir.join("out.bin.out")).expect("the output file");
    assert_eq!(output, "to stdout\nto stderr\n");
    ui.wait_for("the program's output is in out.bin.out");
    // The capture is whole: the line is in it.
    let tree = memtrace_e2e::report(&["tree", "--json"], &dir.join("out.bin"));
    let (bytes, _) = memtrace_e2e::node_sum(&tree["tree"], "<module>");
    assert!(bytes >= 2_000_000, "{bytes}");
}

/// `run --live -f` over an earlier capture shows the new program's, never the earlier one's
/// figures under the new program's name (it opened the old file before the tracker replaced
/// it: "the program ended", the old tree, no exit status).
#[test]
fn run_live_over_an_earlier_capture_shows_the_new_program() {
    if !have_tmux() {
        return;
    }
    let dir = scratch("run_live_over_old");
    write(&dir, "old.py", "KEEP = bytearray(3_000_000)\n");
    let old = memtrace_e2e::memtrace(
        &[
            "run",
            "-q",
            "-o",
            "out.bin",
            "--python",
            python().to_str().expect("utf-8"),
            "old.py",
        ],
        &dir,
    );
    assert!(old.status.success(), "{old:?}");
    let cmd = format!(
        "cd {} && {} run --live -f -o out.bin /bin/false; echo status=$? > status.tmp; mv status.tmp status.txt; sleep 60",
        dir.display(),
        memtrace_bin().display(),
    );
    let ui = Tmux::start(&cmd, 140, 40);
    // The trailer's "the program ended" shows first, for a refresh or so: the exit status
    // replaces it once the run has reaped the program.
    let screen = ui.wait("the end", |s| s[0].contains("ended (exited"));
    assert!(
        screen[0].contains("ended (exited with status 1)"),
        "{}",
        screen.join("\n")
    );
    assert!(
        !screen.iter().any(|l| l.contains("old.py")),
        "{}",
        screen.join("\n")
    );
    ui.key("q");
    wait_for_status(&dir);
}

/// Waits (20 s at most) for the status.txt a test's terminal command writes when memtrace ends.
fn wait_for_status(dir: &Path) {
    let start = Instant::now();
    while std::fs::read_to_string(dir.join("status.txt")).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "memtrace did not end"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn reports_of_a_capture_being_written_call_nothing_damaged() {
    // A report maps the capture; a thread's live staging area it read could be flushed and
    // started afresh by the tracker meanwhile, and the mixed bytes read as damage ("damaged
    // records in chunk ..."; 4 to 10 reads of 18 before).
    let dir = scratch("live-reads-while-written");
    let script = write(
        &dir,
        "slow.py",
        "import os, time\nkeep = []\nfor i in range(200):\n    keep.append(bytearray(100000))\n    \
         x = [str(j) for j in range(2000)]\n    time.sleep(0.01)\n\
         while not os.path.exists('stop'):\n    x = [str(j) for j in range(2000)]\n    time.sleep(0.01)\n",
    );
    let cap = dir.join("w.bin");
    let mut run = Command::new(memtrace_bin())
        .args(["run", "-q", "-f", "-o"])
        .arg(&cap)
        .arg("--python")
        .arg(python())
        .arg(&script)
        .current_dir(&dir)
        .stdout(Stdio::null())
        .spawn()
        .expect("memtrace runs");
    let start = Instant::now();
    let mut reads = 0;
    while run.try_wait().expect("wait").is_none() {
        assert!(start.elapsed() < Duration::from_secs(120), "the run hangs");
        if cap.exists() {
            let out = Command::new(memtrace_bin())
                .args(["stats", "--json"])
                .arg(&cap)
                .output_watched();
            if out.status.success() {
                let s: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
                let warnings = s["warnings"].as_array().cloned().unwrap_or_default();
                assert!(
                    warnings
                        .iter()
                        .all(|w| !w.as_str().unwrap_or_default().contains("damaged")),
                    "read {reads}: {warnings:?}"
                );
                reads += 1;
                // The program allocates until told to stop, after enough reads.
                if reads == 8 {
                    std::fs::write(dir.join("stop"), "").expect("stop");
                }
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(reads >= 8, "only {reads} reads while the program ran");
}

#[test]
fn run_live_quit_before_the_end_says_the_program_goes_on() {
    // `q` cleared the screen and left it blank while the program ran on: the terminal looked
    // hung.
    if !have_tmux() {
        return;
    }
    let dir = scratch("run_live_quit");
    write(
        &dir,
        "prog.py",
        "import os, sys, time
KEEP = bytearray(2_000_000)
while not os.path.exists('go'):
    time.sleep(0.05)
sys.exit(4)
",
    );
    let cmd = format!(
        "cd {} && {} run --live -o out.bin --python {} prog.py; echo status=$? > status.tmp; mv status.tmp status.txt; sleep 60",
        dir.display(),
        memtrace_bin().display(),
        python().display()
    );
    let ui = Tmux::start(&cmd, 160, 40);
    ui.wait("the block held", |s| {
        s.iter().any(|l| l.contains("<module>  prog.py:2"))
    });
    ui.key("q");
    ui.wait_for("the view is closed; the program goes on");
    assert!(
        !dir.join("status.txt").exists(),
        "memtrace ended before the program"
    );
    std::fs::write(dir.join("go"), "").expect("write go");
    wait_for_status(&dir);
    std::thread::sleep(Duration::from_millis(100));
    let status = std::fs::read_to_string(dir.join("status.txt")).expect("status");
    assert_eq!(status.trim(), "status=4");
}

/// `run --live` with the default capture (`memtrace-NAME.PID.bin`) named its output without the
/// pid (`memtrace-NAME.bin.out`): the same command a second time in that directory was refused
/// ("already exists"). Each run's output is its capture's name with `.out` now.
#[test]
fn run_live_twice_with_the_default_capture_keeps_both_outputs() {
    if !have_tmux() {
        return;
    }
    let dir = scratch("run_live_twice");
    write(&dir, "twice.py", "print('hello', flush=True)\n");
    let cmd = format!(
        "cd {} && for i in 1 2; do {} run --live --python {} twice.py; echo status$i=$? >> status.txt; done; sleep 60",
        dir.display(),
        memtrace_bin().display(),
        python().display()
    );
    let ui = Tmux::start(&cmd, 140, 40);
    for round in 1..=2 {
        ui.wait("the program's end", |s| {
            s[0].contains("ended (exited with status 0)")
        });
        ui.key("q");
        let done = format!("status{round}=0");
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while !std::fs::read_to_string(dir.join("status.txt")).is_ok_and(|s| s.contains(&done)) {
            assert!(
                std::time::Instant::now() < deadline,
                "round {round}: no status"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let mut outputs: Vec<String> = std::fs::read_dir(&dir)
        .expect("read dir")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".out") || n.contains(".part"))
        .collect();
    outputs.sort();
    assert_eq!(outputs.len(), 2, "{outputs:?}");
    for out in &outputs {
        let capture = out.strip_suffix(".out").expect("a capture's output");
        assert!(dir.join(capture).exists(), "{outputs:?}");
        assert_eq!(
            std::fs::read_to_string(dir.join(out)).expect("output"),
            "hello\n"
        );
    }
}

/// The capture's trailer is written a moment before the process ends (the destructors of the
/// libraries loaded after the tracker run after it): `run --live` then said "the program
/// ended" for good, never the exit status, whenever it looked in between (one run in a few,
/// and always for a program whose library's destructor takes a while).
#[test]
fn run_live_shows_the_exit_status_of_a_program_that_ends_slowly() {
    if !have_tmux() {
        return;
    }
    let dir = scratch("run_live_slow_end");
    write(
        &dir,
        "slow.c",
        "#include <unistd.h>
__attribute__((destructor)) static void slow(void) { usleep(1500000); }
int slow_linked(void) { return 1; }
",
    );
    write(
        &dir,
        "slow_end.c",
        "#include <stdio.h>
#include <stdlib.h>
int slow_linked(void);
int main(void) {
    char *keep = malloc(1 << 20);
    keep[0] = slow_linked();
    puts(\"done\");
    return 5;
}
",
    );
    for args in [
        "gcc -shared -fPIC -o libslow.so slow.c",
        "gcc -o slow_end slow_end.c -L. -lslow -Wl,-rpath,'$ORIGIN'",
    ] {
        let built = Command::new("sh")
            .args(["-c", args])
            .current_dir(&dir)
            .status()
            .expect("gcc runs");
        assert!(built.success(), "{args}");
    }
    let cmd = format!(
        "cd {} && {} run --live -o out.bin ./slow_end; echo status=$? > status.tmp; mv status.tmp status.txt; sleep 60",
        dir.display(),
        memtrace_bin().display(),
    );
    let ui = Tmux::start(&cmd, 140, 40);
    ui.wait("the exit status", |s| {
        s[0].contains("ended (exited with status 5)")
    });
    ui.key("q");
    wait_for_status(&dir);
    std::thread::sleep(Duration::from_millis(100));
    let status = std::fs::read_to_string(dir.join("status.txt")).expect("status");
    assert_eq!(status.trim(), "status=5");
    let output = std::fs::read_to_string(dir.join("out.bin.out")).expect("the output file");
    assert_eq!(output, "done\n");
}

/// `live` without a terminal on a capture not written yet waited (10 s) before refusing, and on
/// a terminal it waited with nothing on the screen.
#[test]
fn live_without_a_terminal_is_refused_before_any_wait() {
    let dir = scratch("live_empty_pipe");
    std::fs::write(dir.join("empty.bin"), b"").expect("write");
    let started = std::time::Instant::now();
    let out = Command::new(memtrace_bin())
        .args(["live", "empty.bin"])
        .current_dir(&dir)
        .stdin(std::process::Stdio::null())
        .output_watched();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("live needs a terminal"),
        "{out:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(9),
        "{:?}",
        started.elapsed()
    );
}

/// A program that allocates and then sleeps 8 s: the view's clock goes on (it showed the time
/// of the last allocation, `running 0.0 s`, for as long as the program idled).
#[test]
fn live_counts_the_time_of_an_idle_program() {
    if !have_tmux() {
        return;
    }
    let dir = scratch("live-idle");
    let mut child = start_script(
        &dir,
        "idle.py",
        "import time\nKEEP = bytearray(2_000_000)\ntime.sleep(8)\n",
    );
    let cmd = format!(
        "cd {} && {} live out.bin; sleep 60",
        dir.display(),
        memtrace_bin().display()
    );
    let ui = Tmux::start(&cmd, 140, 40);
    // Its clock passes 3 s while the program sleeps (it allocates nothing then).
    let running = |s: &[String]| -> Option<f64> {
        let rest = s.first()?.strip_prefix("● running ")?;
        rest.split(' ').next()?.trim_end_matches('s').parse().ok()
    };
    let screen = ui.wait("the clock past 3 s", |s| {
        running(s).is_some_and(|t| t >= 3.0)
    });
    assert!(screen[0].starts_with("● running"), "{}", screen[0]);
    let status = child.0.wait().expect("memtrace run ends");
    assert!(status.success(), "{status:?}");
    ui.wait("the end", |s| s[0].starts_with("■ ended"));
}

/// The live view of a sampled capture counts the allocations its samples stand for, as every
/// other report does (it showed 98 for 100,000 blocks of 64 bytes: the samples).
#[test]
fn live_counts_a_sampled_capture_s_allocations_as_estimates() {
    if !have_tmux() {
        return;
    }
    let dir = scratch("live-sampled");
    let prog = memtrace_e2e::compile("patterns", &dir);
    let cap = dir.join("out.bin");
    let out = memtrace_e2e::memtrace(
        &[
            "run",
            "-q",
            "-f",
            "--sample-bytes",
            "64K",
            "-o",
            cap.to_str().expect("utf-8"),
            "--",
            prog.to_str().expect("utf-8"),
            "leak",
            "100000",
            "64",
        ],
        &dir,
    );
    assert!(out.status.success(), "{out:?}");
    let stats = memtrace_e2e::stats(&cap);
    let live = memtrace_e2e::num(&stats, "leaked_allocations");
    let samples = memtrace_e2e::num(&stats, "peak_samples");
    // 6.4 MB of 64-byte blocks at one sample per 64 KiB: about a hundred samples, each
    // standing for some thousand blocks.
    assert!((80_000..120_000).contains(&live), "{live}");
    assert!(samples < 200, "{samples}");
    let cmd = format!(
        "cd {} && {} live out.bin; sleep 60",
        dir.display(),
        memtrace_bin().display()
    );
    let ui = Tmux::start(&cmd, 160, 40);
    let shown = format!(
        "{} allocations",
        memtrace_reporter::report::human::count(live as u64)
    );
    let screen = ui.wait(&shown, |s| s.iter().any(|l| l.contains(&shown)));
    assert!(screen[0].starts_with("■ ended"), "{}", screen[0]);
}
