//! A terminal for the terminal UI's tests: a tmux server of the test's own (its own socket)
//! that runs one command in a window, types keys into it and reads its screen, so that a test
//! drives `memtrace tree` as a person would.

use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// How long the UI may take to show something.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// Whether tmux runs here; says so on stderr when it does not.
pub fn have_tmux() -> bool {
    let found = Command::new("tmux")
        .arg("-V")
        .stdin(Stdio::null())
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("skipped: tmux is not installed");
    }
    found
}

/// A tmux server of our own, killed when dropped.
pub struct Tmux {
    socket: String,
}

impl Tmux {
    /// Starts `command` in a `width`×`height` window.
    pub fn start(command: &str, width: u32, height: u32) -> Tmux {
        static N: AtomicU32 = AtomicU32::new(0);
        let socket = format!(
            "memtrace-e2e-keys-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let tmux = Tmux { socket };
        let (w, h) = (width.to_string(), height.to_string());
        let out = tmux.run(&["new-session", "-d", "-s", "ui", "-x", &w, "-y", &h, command]);
        assert!(out.status.success(), "tmux new-session: {out:?}");
        tmux
    }

    pub fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .args(["-f", "/dev/null", "-L", &self.socket])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("tmux runs")
    }

    /// Presses one key (a tmux key name: `Up`, `PageDown`, `Enter`, `Space`, `g`, ...).
    pub fn key(&self, key: &str) {
        let out = self.run(&["send-keys", "-t", "ui", key]);
        assert!(out.status.success(), "send-keys {key:?}: {out:?}");
    }

    /// Presses several keys in one go.
    pub fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "ui"];
        args.extend_from_slice(keys);
        let out = self.run(&args);
        assert!(out.status.success(), "send-keys {keys:?}: {out:?}");
    }

    /// Resizes the window (the UI follows its terminal's size).
    pub fn resize(&self, width: u32, height: u32) {
        let (w, h) = (width.to_string(), height.to_string());
        let out = self.run(&["resize-window", "-t", "ui", "-x", &w, "-y", &h]);
        assert!(out.status.success(), "resize-window: {out:?}");
    }

    /// Types text literally (no key names).
    pub fn text(&self, text: &str) {
        let out = self.run(&["send-keys", "-t", "ui", "-l", text]);
        assert!(out.status.success(), "send-keys -l {text:?}: {out:?}");
    }

    pub fn screen(&self) -> Vec<String> {
        let out = self.run(&["capture-pane", "-p", "-t", "ui"]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// The screen once `ready` holds for it; fails showing the last screen after a while.
    pub fn wait(&self, what: &str, ready: impl Fn(&[String]) -> bool) -> Vec<String> {
        let start = Instant::now();
        loop {
            let screen = self.screen();
            // A capture of no line at all (tmux busy on a loaded machine) is no screen yet:
            // the tests' checks read its first lines.
            if !screen.is_empty() && ready(&screen) {
                return screen;
            }
            if start.elapsed() > PATIENCE {
                panic!("waiting for {what}; the screen:\n{}", screen.join("\n"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Tmux {
    /// The screen once some line contains `needle`.
    pub fn wait_for(&self, needle: &str) -> Vec<String> {
        self.wait(needle, |s| s.iter().any(|l| l.contains(needle)))
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}
