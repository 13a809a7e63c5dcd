//! The terminal while the UI runs: raw mode, the alternate screen, no cursor. Restored when the
//! session ends, when it is dropped, and by a panic hook before the panic is printed (the release
//! build aborts on panic, so no destructor would run).

use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::cursor::{Hide, Show};
use ratatui::crossterm::execute;
use ratatui::crossterm::terminal::{
    disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen,
};
use ratatui::Terminal;
use std::io::{stdout, Stdout};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Once;

/// Whether the terminal is in the UI's modes now (so the panic hook knows to restore it).
static ACTIVE: AtomicBool = AtomicBool::new(false);

/// A terminal set up for the UI.
pub struct Session {
    terminal: Terminal<CrosstermBackend<Stdout>>,
}

impl Session {
    pub fn start() -> std::io::Result<Session> {
        install_panic_hook();
        enable_raw_mode()?;
        ACTIVE.store(true, Ordering::SeqCst);
        let setup = execute!(stdout(), EnterAlternateScreen, Hide)
            .and_then(|_| Terminal::new(CrosstermBackend::new(stdout())));
        match setup {
            Ok(terminal) => Ok(Session { terminal }),
            Err(e) => {
                restore();
                Err(e)
            }
        }
    }

    pub fn terminal(&mut self) -> &mut Terminal<CrosstermBackend<Stdout>> {
        &mut self.terminal
    }

    /// Ctrl-Z (a key in raw mode) or a SIGTSTP: gives the terminal back as it was, stops the
    /// process group as Ctrl-Z would have, and at `fg` takes the terminal again and draws all
    /// of the screen anew. The caller has a SIGTSTP handler (`QuitSignals`): the group's
    /// signal only notes it here, and the caller forgets that note after.
    pub fn suspend(&mut self) -> std::io::Result<()> {
        // Without a job-control shell above (`sh -c`, `ssh -t host memtrace ...`, `tmux new
        // memtrace ...`: an orphaned group), the kernel drops the group's SIGTSTP and nothing
        // would ever continue a stop: Ctrl-Z is ignored there, as a terminal ignores it.
        if !under_job_control() {
            return Ok(());
        }
        restore();
        // SAFETY: kill(2) of this process's group with a plain signal number.
        unsafe { libc::kill(0, libc::SIGTSTP) };
        signal_hook::low_level::emulate_default_handler(libc::SIGTSTP)?;
        // Continued.
        enable_raw_mode()?;
        ACTIVE.store(true, Ordering::SeqCst);
        execute!(stdout(), EnterAlternateScreen, Hide)?;
        self.terminal.clear()
    }

    /// Restores the terminal, reporting a failure.
    pub fn finish(self) -> std::io::Result<()> {
        let result = try_restore();
        // Drop finds nothing left to do.
        drop(self);
        result
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        restore();
    }
}

/// Whether a shell with job control runs this process's group: the parent is in another
/// group of the same session (a group that is not orphaned), as a shell's job is.
fn under_job_control() -> bool {
    // SAFETY: plain system calls on this process and its parent, no pointers.
    unsafe {
        let parent = libc::getppid();
        let group = libc::getpgrp();
        parent > 1 && libc::getpgid(parent) != group && libc::getsid(parent) == libc::getsid(0)
    }
}

/// Leaves raw mode and the alternate screen, once, whoever asks first.
fn try_restore() -> std::io::Result<()> {
    if !ACTIVE.swap(false, Ordering::SeqCst) {
        return Ok(());
    }
    // Raw mode first: without it the rest still works and a shell behaves again.
    let raw = disable_raw_mode();
    let screen = execute!(stdout(), LeaveAlternateScreen, Show);
    raw.and(screen)
}

fn restore() {
    let _ = try_restore();
}

/// Chains a hook that restores the terminal before the previous hook prints the panic.
fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
        }));
    });
}
