//! Colour on a real terminal (tmux): `memtrace stats` colours the peak when stdout is a
//! terminal, and not when NO_COLOR is set. (Pipes and `--color`: reporter/cli/tests/color.rs.)

use memtrace_e2e::memtrace_bin;
use memtrace_e2e::python::{python, track_script, KNOWN_SITE};
use memtrace_e2e::scratch;
use memtrace_e2e::tmux::{have_tmux, Tmux};

/// The screen of `memtrace stats CAPTURE` run on a tmux terminal with `env` before it, with
/// its escape sequences, once it printed its last line.
fn stats_on_a_terminal(capture: &std::path::Path, env: &str) -> String {
    let command = format!(
        "env {env} '{}' stats -n 1 '{}'; echo DONE; sleep 60",
        memtrace_bin().display(),
        capture.display()
    );
    // Tall enough for the whole report (its types tables included).
    let tmux = Tmux::start(&command, 200, 150);
    tmux.wait_for("DONE");
    let out = tmux.run(&["capture-pane", "-e", "-p", "-t", "ui"]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_terminal_gets_colour_unless_no_color() {
    if !have_tmux() {
        return;
    }
    let dir = scratch("color-terminal");
    let (capture, out) = track_script(python(), &dir, "known.py", KNOWN_SITE);
    assert!(out.status.success(), "{out:?}");

    let screen = stats_on_a_terminal(&capture, "-u NO_COLOR");
    let peak = screen
        .lines()
        .find(|l| l.starts_with("Peak memory:"))
        .unwrap_or_else(|| panic!("{screen}"));
    // tmux redraws the bold red peak with its own sequences: some style starts before it.
    assert!(peak.contains("\x1b["), "{peak:?}");
    assert!(screen.contains("known.py:2"), "{screen}");

    let screen = stats_on_a_terminal(&capture, "NO_COLOR=1");
    assert!(screen.contains("Peak memory:"), "{screen}");
    assert!(!screen.contains("\x1b["), "{screen:?}");
}
