//! A panic while the terminal UI holds the terminal: the panic hook gives the terminal back (raw
//! mode off, the alternate screen left) before the panic is printed. The test runs itself again
//! in tmux as the panicking child. Skipped when tmux is missing.

use memtrace_cli::tui::terminal::Session;
use memtrace_e2e::tmux::{have_tmux, Tmux};
use std::time::Duration;

/// Set in the child's environment: be the program that panics.
const CHILD: &str = "MEMTRACE_TUI_PANIC_CHILD";
const MESSAGE: &str = "a panic on purpose, inside the terminal UI";

#[test]
fn a_panic_restores_the_terminal() {
    if std::env::var_os(CHILD).is_some() {
        let session = Session::start().expect("a terminal");
        // Only the panic hook is left to restore the terminal: no destructor runs.
        std::mem::forget(session);
        std::thread::sleep(Duration::from_millis(300));
        panic!("{MESSAGE}");
    }
    if !have_tmux() {
        return;
    }
    let exe = std::env::current_exe().expect("the test's own path");
    let command = format!(
        "{CHILD}=1 '{}' --exact tui_panic::a_panic_restores_the_terminal --nocapture --test-threads=1; \
         echo \"EXITED $?\"; stty -a | grep -o -E -- '-?icanon|-?echo ' | tr '\\n' ' '; echo; \
         sleep 60",
        exe.display()
    );
    let tmux = Tmux::start(&command, 100, 40);
    let screen = tmux.wait("the child to finish", |s| {
        s.iter().any(|l| l.contains("icanon"))
    });
    let screen = screen.join("\n");
    // The panic was printed on the normal screen (not lost with the alternate one), the child
    // failed, and the terminal is cooked again.
    assert!(screen.contains(MESSAGE), "{screen}");
    assert!(!screen.contains("EXITED 0"), "{screen}");
    assert!(
        !screen.contains("-icanon") && !screen.contains("-echo"),
        "{screen}"
    );
}
