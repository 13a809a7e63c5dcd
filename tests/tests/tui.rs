//! The terminal UI of `memtrace tree FILE`, driven in tmux as a person would: it opens on the
//! biggest path at the peak, moves, searches, hides import frames, follows a resize, and gives
//! the terminal back as it found it on q and on Ctrl-C. Skipped when tmux is missing.

use memtrace_e2e::python::*;
use memtrace_e2e::tmux::{have_tmux, Tmux};
use memtrace_e2e::watchdog::Watched;
use memtrace_e2e::{memtrace_bin, scratch};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// At the peak (after `medium()`): 8 MB from `big` and 3 MB from `medium` in the main thread,
/// 2 MB kept from the `tui-worker` thread.
const SCRIPT: &str = "\
import threading

KEEP = []


def big():
    return b\"\\0\" * 8_000_000


def medium():
    return b\"\\1\" * 3_000_000


def work():
    KEEP.append(b\"\\2\" * 2_000_000)


def main():
    t = threading.Thread(target=work, name=\"tui-worker\")
    t.start()
    t.join()
    a = big()
    b = medium()
    KEEP.clear()
    return len(a) + len(b)


main()
";

/// The line containing `needle`.
fn line<'a>(screen: &'a [String], needle: &str) -> &'a str {
    screen
        .iter()
        .find(|l| l.contains(needle))
        .map(String::as_str)
        .unwrap_or_else(|| panic!("no {needle:?} on the screen:\n{}", screen.join("\n")))
}

/// The capture of SCRIPT, and the script's path.
fn capture(dir: &Path) -> (PathBuf, PathBuf) {
    let script = write(dir, "tui_sites.py", SCRIPT);
    let capture = dir.join("tui_sites.bin");
    let script_arg = script.to_string_lossy().into_owned();
    let out = tracked(python(), &capture, &[&script_arg], dir, b"");
    assert!(out.status.success(), "{out:?}");
    (capture, script)
}

/// `memtrace tree CAPTURE`, then what the shell sees after it: its status and the tty's modes.
fn tree_command(capture: &Path) -> String {
    format!(
        "'{}' tree '{}'; echo \"EXITED $?\"; stty -a | grep -o -E -- '-?icanon|-?echo ' | tr '\\n' ' '; echo; sleep 60",
        memtrace_bin().display(),
        capture.display()
    )
}

/// The shell's report once the UI has quit: status 0, the tree gone, the tty cooked again.
fn assert_quit_cleanly(tmux: &Tmux) {
    assert_quit_cleanly_with(tmux, 0);
}

/// As [`assert_quit_cleanly`], with the exit status the shell saw.
fn assert_quit_cleanly_with(tmux: &Tmux, status: i32) {
    let screen = tmux.wait("the UI to quit", |s| {
        s.iter().any(|l| l.contains("EXITED")) && s.iter().any(|l| l.contains("icanon"))
    });
    let text = screen.join("\n");
    assert!(text.contains(&format!("EXITED {status}")), "{text}");
    assert!(
        !text.contains("-icanon") && !text.contains("-echo"),
        "{text}"
    );
    // The alternate screen is left: none of the tree remains.
    assert!(!text.contains("allocs"), "{text}");
}

#[test]
fn browses_the_peak_in_tmux() {
    if !have_tmux() {
        return;
    }
    let dir = scratch("tui-browse");
    let (capture, script) = capture(&dir);
    let tmux = Tmux::start(&tree_command(&capture), 80, 24);

    // Opens on the biggest path: <module> → main (calling big) → big, big selected, the panel
    // below; main calling medium is a sibling (a node per line), folded.
    let screen = tmux.wait_for("│big");
    assert_eq!(screen.len(), 24, "{}", screen.join("\n"));
    assert!(line(&screen, "▾ <module>").contains("tui_sites.py:28"));
    assert!(line(&screen, "▾ main").contains("tui_sites.py:22"));
    let big = line(&screen, "  big  ");
    assert!(big.contains("tui_sites.py:7"), "{big}");
    assert!(big.trim_start().starts_with("7.6 MiB"), "{big}");
    let medium_caller = line(&screen, "▸ main");
    assert!(medium_caller.contains("tui_sites.py:23"), "{medium_caller}");
    assert!(
        medium_caller.trim_start().starts_with("2.9 MiB"),
        "{medium_caller}"
    );
    let at = format!("at {}:7", script.display());
    assert!(line(&screen, "│at ").contains(&at), "{}", screen.join("\n"));
    assert!(line(&screen, "allocation").contains("(8,000,033 B)"));
    // The panel's source line (a tree row may hold " │ " too, above it).
    assert!(
        screen
            .iter()
            .any(|l| l.contains(" │ ") && l.contains("return b\"\\0\" * 8_000_000")),
        "{}",
        screen.join("\n")
    );

    // Up to main, whose panel shows it.
    tmux.keys(&["k"]);
    let screen = tmux.wait_for("│main");
    assert!(line(&screen, "│at ").contains("tui_sites.py:22"));

    // Collapse it: big folds away.
    tmux.keys(&["Left"]);
    tmux.wait("main to collapse", |s| {
        s.iter().any(|l| l.contains("▸ main  tui_sites.py:22"))
            && !s.iter().any(|l| l.contains("  big  "))
    });

    // Search the worker's function: the path to it expands, its thread is named.
    tmux.keys(&["/"]);
    tmux.text("work");
    tmux.wait_for("/work");
    tmux.keys(&["Enter"]);
    // The whole frame: tmux may show one half drawn (the panel's name before the tree's line).
    let screen = tmux.wait("the worker's function selected and shown", |s| {
        s.iter().any(|l| l.contains("│work")) && s.iter().any(|l| l.contains("  work  "))
    });
    assert!(line(&screen, "match 1 of").contains("match 1 of"));
    assert!(line(&screen, "│thread").contains("tui-worker"));
    assert!(line(&screen, "  work  ").contains("tui_sites.py:15"));

    // i hides import machinery (and says so); i again shows it.
    tmux.keys(&["i"]);
    tmux.wait_for("imports hidden");
    tmux.keys(&["i"]);
    tmux.wait("import frames shown again", |s| {
        !s.iter().any(|l| l.contains("imports hidden")) && s.iter().any(|l| l.contains("│work"))
    });

    // Wider: the panel moves right of the tree; narrower again: below.
    tmux.resize(130, 30);
    let screen = tmux.wait("the panel on the right", |s| {
        s.len() == 30
            && s.iter()
                .any(|l| l.find("┌ selected").is_some_and(|x| x > 40))
    });
    assert!(line(&screen, "  work  ").contains("tui_sites.py:15"));
    assert!(line(&screen, "│work").find("│work").is_some_and(|x| x > 40));
    tmux.resize(80, 24);
    tmux.wait("the panel below", |s| {
        s.len() == 24 && s.iter().any(|l| l.starts_with("┌ selected"))
    });

    tmux.keys(&["q"]);
    assert_quit_cleanly(&tmux);
}

#[test]
fn ctrl_c_quits_and_restores_the_terminal() {
    if !have_tmux() {
        return;
    }
    let dir = scratch("tui-ctrl-c");
    let (capture, _) = capture(&dir);
    let tmux = Tmux::start(&tree_command(&capture), 80, 24);
    tmux.wait_for("│big");
    tmux.keys(&["C-c"]);
    assert_quit_cleanly(&tmux);
}

#[test]
fn a_termination_signal_quits_and_restores_the_terminal() {
    if !have_tmux() {
        return;
    }
    let dir = scratch("tui-sigterm");
    let (capture, _) = capture(&dir);
    let tmux = Tmux::start(&tree_command(&capture), 80, 24);
    tmux.wait_for("│big");
    let pid = ui_process(&tmux);
    // SAFETY: kill(2) on the one process this test started in its pane.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    // The terminal restored, memtrace dies of the signal (it exited 0: a script could not
    // tell it was killed).
    assert_quit_cleanly_with(&tmux, 128 + libc::SIGTERM);
}

/// The memtrace process running in the pane: the child of its shell.
fn ui_process(tmux: &Tmux) -> i32 {
    let out = tmux.run(&["display-message", "-p", "-t", "ui", "#{pane_pid}"]);
    let shell = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let out = Command::new("ps")
        .args(["-o", "pid=", "--ppid", &shell])
        .output_watched();
    let children: Vec<i32> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect();
    assert_eq!(
        children.len(),
        1,
        "children of the pane's shell {shell}: {children:?}"
    );
    children[0]
}

#[test]
fn a_terminal_that_goes_away_ends_the_ui() {
    if !have_tmux() {
        return;
    }
    let dir = scratch("tui-hangup");
    let (capture, _) = capture(&dir);
    // SIGHUP ignored, as under nohup: the UI must notice the hang-up itself, not spin on it.
    let command = format!(
        "trap '' HUP; '{}' tree '{}'; sleep 60",
        memtrace_bin().display(),
        capture.display()
    );
    let tmux = Tmux::start(&command, 80, 24);
    tmux.wait_for("│big");
    let pid = ui_process(&tmux);
    let _ = tmux.run(&["kill-server"]);
    let start = Instant::now();
    let alive = || Path::new(&format!("/proc/{pid}")).exists();
    while alive() && start.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(50));
    }
    if alive() {
        // SAFETY: kill(2) on the process this test started, left running.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        panic!("memtrace tree {pid} still runs 30 s after its terminal went away");
    }
}
