//! Progress of a long report on stderr: shown once the work has taken a second, never when
//! stderr is not a terminal.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use memtrace_reporter::analysis::{ProgressFn, Step};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// How long a report runs before its progress shows.
const DELAY: Duration = Duration::from_secs(1);

pub struct Progress {
    bar: Option<ProgressBar>,
    start: Instant,
    shown: bool,
}

impl Progress {
    /// Progress on stderr if it is a terminal (the length is set later).
    pub fn stderr(what: &str) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(Some(1), ProgressDrawTarget::hidden());
            let style = ProgressStyle::with_template(
                "memtrace: {msg} {wide_bar} {percent:>3}% (eta {eta})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar.set_message(what.to_string());
            bar
        });
        Progress {
            bar,
            start: Instant::now(),
            shown: false,
        }
    }

    /// The library's progress callback drawing this bar; none when there is no bar.
    pub fn callback(mut self) -> Option<ProgressFn> {
        self.bar.as_ref()?;
        Some(Box::new(move |step| match step {
            Step::Total(n) => self.set_length(n),
            Step::Done(n) => self.inc(n),
            Step::Finished => self.finish(),
        }))
    }

    /// Sets the number of steps.
    pub fn set_length(&mut self, total: u64) {
        if let Some(bar) = &self.bar {
            bar.set_length(total);
        }
    }

    /// `n` more steps done.
    pub fn inc(&mut self, n: u64) {
        let Some(bar) = &self.bar else { return };
        bar.inc(n);
        if !self.shown && self.start.elapsed() >= DELAY {
            self.shown = true;
            bar.set_draw_target(ProgressDrawTarget::stderr());
        }
    }

    /// Clears the bar.
    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}
