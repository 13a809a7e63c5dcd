//! Termination requests while the UI runs (`kill`): they end the UI normally, so the terminal is
//! restored, instead of killing the process in raw mode. SIGHUP keeps its default: the terminal
//! is gone, there is nothing to restore.

use signal_hook::consts::{SIGINT, SIGQUIT, SIGTERM};
use signal_hook::SigId;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Arc;

/// The last termination signal a view ended on (0: none).
static QUIT_BY: AtomicI32 = AtomicI32::new(0);

/// A standalone view (`memtrace tree`, `memtrace live`) that a signal ended, its terminal
/// restored: memtrace dies of that signal, so that a script sees the kill (it exited 0).
pub fn die_of_the_quit_signal() {
    let sig = QUIT_BY.swap(0, Ordering::SeqCst);
    if sig != 0 {
        let _ = signal_hook::low_level::emulate_default_handler(sig);
    }
}

/// Set when one of the signals arrives; the handlers go away when dropped. SIGTSTP (`kill
/// -TSTP`, Ctrl-Z in a terminal not in raw mode) is noted apart: the UI gives the terminal back
/// and stops ([`super::terminal::Session::suspend`]), where stopping at once left the shell
/// with the UI's screen and modes.
pub struct QuitSignals {
    raised: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    ids: Vec<SigId>,
}

impl QuitSignals {
    pub fn register() -> std::io::Result<QuitSignals> {
        QuitSignals::register_also(&[])
    }

    /// As `register`, with `more` signals (SIGHUP, for a view whose end must be seen: an
    /// attached process is detached when its live view ends, and a closed terminal's SIGHUP
    /// ended memtrace and left the process tracked).
    pub fn register_also(more: &[libc::c_int]) -> std::io::Result<QuitSignals> {
        let raised = Arc::new(AtomicBool::new(false));
        let mut signals = QuitSignals {
            raised,
            stop: Arc::new(AtomicBool::new(false)),
            ids: Vec::new(),
        };
        for &sig in [SIGTERM, SIGINT, SIGQUIT].iter().chain(more) {
            let id = signal_hook::flag::register(sig, Arc::clone(&signals.raised))?;
            signals.ids.push(id);
            // SAFETY: the action only stores to an atomic (async-signal-safe).
            let id = unsafe {
                signal_hook::low_level::register(sig, move || QUIT_BY.store(sig, Ordering::SeqCst))
            }?;
            signals.ids.push(id);
        }
        let id = signal_hook::flag::register(libc::SIGTSTP, Arc::clone(&signals.stop))?;
        signals.ids.push(id);
        Ok(signals)
    }

    pub fn raised(&self) -> bool {
        self.raised.load(Ordering::SeqCst)
    }

    /// Whether a SIGTSTP came since the last call.
    pub fn take_stop(&self) -> bool {
        self.stop.swap(false, Ordering::SeqCst)
    }
}

impl Drop for QuitSignals {
    fn drop(&mut self) {
        for id in self.ids.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signal_is_noted_not_fatal() {
        let signals = QuitSignals::register().expect("handlers install");
        assert!(!signals.raised());
        assert!(signal_hook::low_level::raise(SIGTERM).is_ok());
        assert!(signals.raised());
    }
}
