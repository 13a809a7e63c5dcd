//! A panic while the terminal UI holds the terminal: the panic hook gives the terminal back (raw
//! mode off, the alternate screen left) before the panic is printed. The test runs itself again
//! in tmux as the panicking child. Skipped when tmux is missing.

use memtrace_cli::tui::terminal::Session;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Set in the child's environment: be the program that panics.
const CHILD: &str = "MEMTRACE_TUI_PANIC_CHILD";
const MESSAGE: &str = "a panic on purpose, inside the terminal UI";

fn tmux(socket: &str, args: &[&str]) -> Output {
    Command::new("tmux")
        .args(["-f", "/dev/null", "-L", socket])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("tmux runs")
}

struct Server(String);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = tmux(&self.0, &["kill-server"]);
    }
}

#[test]
fn a_panic_restores_the_terminal() {
    if std::env::var_os(CHILD).is_some() {
        let session = Session::start().expect("a terminal");
        // Only the panic hook is left to restore the terminal: no destructor runs.
        std::mem::forget(session);
        std::thread::sleep(Duration::from_millis(300));
        panic!("{MESSAGE}");
    }
    let found = Command::new("tmux")
        .arg("-V")
        .stdin(Stdio::null())
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("skipped: tmux is not installed");
        return;
    }
    let exe = std::env::current_exe().expect("the test's own path");
    let command = format!(
        "{CHILD}=1 '{}' --exact tui_panic::a_panic_restores_the_terminal --nocapture --test-threads=1; \
         echo \"EXITED $?\"; stty -a | grep -o -E -- '-?icanon|-?echo ' | tr '\\n' ' '; echo; \
         sleep 60",
        exe.display()
    );
    let server = Server(format!("memtrace-tui-panic-{}", std::process::id()));
    let out = tmux(
        &server.0,
        &[
            "new-session",
            "-d",
            "-s",
            "ui",
            "-x",
            "100",
            "-y",
            "40",
            &command,
        ],
    );
    assert!(out.status.success(), "tmux new-session: {out:?}");
    let start = Instant::now();
    let screen = loop {
        let out = tmux(&server.0, &["capture-pane", "-p", "-t", "ui"]);
        let screen = String::from_utf8_lossy(&out.stdout).into_owned();
        if screen.contains("icanon") {
            break screen;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the child did not finish; the screen:\n{screen}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    // The panic was printed on the normal screen (not lost with the alternate one), the child
    // failed, and the terminal is cooked again.
    assert!(screen.contains(MESSAGE), "{screen}");
    assert!(!screen.contains("EXITED 0"), "{screen}");
    assert!(
        !screen.contains("-icanon") && !screen.contains("-echo"),
        "{screen}"
    );
}
