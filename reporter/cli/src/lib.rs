//! The `memtrace` command on top of the reporter library: the command line and the terminal.
//!
//! - [`color`]: `--color` for the text reports
//! - [`commands`]: the report commands (stats, tree, summary, diff, flamegraph, export)
//! - [`run`]: `memtrace run`, a program under the tracker
//! - [`inherited`]: what memtrace was started with, handed on to the program unchanged
//! - [`tui`]: the interactive terminal UI of a call tree
//! - [`progress`]: a progress bar on stderr for the library's progress callback
//! - [`view_args`]: the options every report shares
//! - [`usage`]: usage errors as one line with an example

/// `eprintln!` that never panics: memtrace's own messages are dropped when stderr cannot take
/// them (a pipe to `head` that closed, /dev/full), since a panic would end a run with status
/// 134 instead of the program's own.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let line = format!($($arg)*);
        let _ = writeln!(std::io::stderr(), "{}", $crate::shown(&line));
    }};
}

/// A message of memtrace's as it may reach a terminal: the file names and the names from a
/// capture it holds (`memtrace stats evil*.bin`, where a file name holds `\x1b]52;...`) have
/// their control characters escaped, as the reports escape them; its own line breaks stay.
pub fn shown(message: &str) -> std::borrow::Cow<'_, str> {
    use memtrace_reporter::report::visible::is_unsafe;
    if !message.chars().any(is_unsafe) {
        return std::borrow::Cow::Borrowed(message);
    }
    let mut out = String::with_capacity(message.len() + 16);
    for line in message.split_inclusive('\n') {
        let (text, end) = match line.strip_suffix('\n') {
            Some(text) => (text, "\n"),
            None => (line, ""),
        };
        out.push_str(&memtrace_reporter::report::visible::escape(text));
        out.push_str(end);
    }
    std::borrow::Cow::Owned(out)
}

pub mod attach;
pub mod by_type_view;
pub mod color;
pub mod commands;
pub mod inherited;
pub mod proc_stat;
pub mod progress;
pub mod run;
pub mod tui;
pub mod usage;
pub mod view_args;
