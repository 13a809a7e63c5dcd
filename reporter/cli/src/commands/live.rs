//! `memtrace live`: the tree of a capture that is still being written, followed like `tail -f`.

use crate::tui::live::{self, LiveSetup};
use crate::view_args;
use clap::Args;
use memtrace_reporter::analysis::live::Live;
use std::io::IsTerminal;
use std::path::PathBuf;

#[derive(Args, Debug)]
#[command(after_help = "\
Opens the call tree of what the program holds now, read from its capture as the tracker writes
it (refreshed 2.5 times a second, reading only what was written since), with the live heap now,
its peak so far and a sparkline of live memory over time. It works from another terminal, on
another user's capture you may read, and on a network file system. When the program ends the
view says so and keeps its final state.

Keys: those of `memtrace tree` (see docs/TUI.md), and
  p   switch between what is live now and what was live at the peak so far
  t   show one thread after the other (all, then each thread)
  q   quit (the program goes on)

Examples:
  memtrace run -o out.bin script.py &   then, in another terminal:
  memtrace live out.bin
  memtrace run --live script.py          the program and its live view in one terminal
  memtrace attach --live 1234            a running process")]
pub struct LiveArgs {
    /// The capture file, still being written by `memtrace run` (or already finished)
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// In a Python run, count the interpreter's start-up too
    #[arg(long = "include-startup")]
    pub include_startup: bool,
}

/// Runs `memtrace live`.
pub fn execute(args: LiveArgs) -> Result<(), String> {
    let live = Live::open(&args.file, args.include_startup)?;
    if !std::io::stdout().is_terminal() {
        return Err("live needs a terminal (for a report of a capture, use memtrace stats or memtrace tree --text)".to_string());
    }
    let header = &live.follower().header;
    let command = header
        .argv
        .iter()
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    let pid = header.pid;
    let setup = LiveSetup {
        command,
        note: None,
        ended: Box::new(move || process_gone(pid).then(|| "the process is gone".to_string())),
    };
    view_args::written(live::run(live, setup))
}

/// Whether no process `pid` runs here (a capture read from another machine, over a network
/// file system, has a pid that means nothing here: its trailer says when it ends).
pub fn process_gone(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: kill with signal 0 sends nothing; it only checks that the process exists.
    let r = unsafe { libc::kill(pid, 0) };
    r != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
}
