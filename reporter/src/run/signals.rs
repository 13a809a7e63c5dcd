//! While the program runs, memtrace itself must not die of the terminal's Ctrl-C or Ctrl-\
//! (the program gets them too and decides), and passes on a SIGTERM or SIGHUP sent to it.

use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};
use signal_hook::iterator::{Handle, Signals};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;

pub struct Forwarder {
    handle: Handle,
    child: Arc<AtomicI32>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Forwarder {
    /// Installs handlers (not SIG_IGN, so the program starts with default dispositions).
    pub fn install() -> std::io::Result<Forwarder> {
        let mut signals = Signals::new([SIGINT, SIGQUIT, SIGTERM, SIGHUP])?;
        let handle = signals.handle();
        let child = Arc::new(AtomicI32::new(0));
        let target = Arc::clone(&child);
        let thread = std::thread::spawn(move || {
            for sig in signals.forever() {
                let pid = target.load(Ordering::Acquire);
                if pid > 0 && (sig == SIGTERM || sig == SIGHUP) {
                    // SAFETY: kill(2) on the child's pid with a plain signal number.
                    unsafe { libc::kill(pid, sig) };
                }
            }
        });
        Ok(Forwarder {
            handle,
            child,
            thread: Some(thread),
        })
    }

    pub fn forward_to(&self, pid: u32) {
        self.child.store(pid as i32, Ordering::Release);
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.handle.close();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
