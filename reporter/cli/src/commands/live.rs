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
    let needs_a_terminal = || {
        "live needs a terminal (for a report of a capture, use memtrace stats or memtrace tree --text)"
            .to_string()
    };
    let terminal = std::io::stdout().is_terminal();
    // A capture not written yet is waited for on a terminal only: without one the view is
    // refused at once (what is there is judged first: an aggregated capture says so).
    if terminal {
        wait_for_header(&args.file);
    } else if !header_written(&args.file) {
        return Err(needs_a_terminal());
    }
    let live = Live::open(&args.file, args.include_startup)?;
    if !terminal {
        return Err(needs_a_terminal());
    }
    let header = &live.follower().header;
    let command = header
        .argv
        .iter()
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    let pid = header.pid;
    let sampled = live.sample_bytes();
    let setup = LiveSetup {
        command,
        note: (sampled > 0).then(|| memtrace_reporter::capture::settings::sampled_note(sampled)),
        quit_on_hangup: false,
        // A finished capture's own words ("the program ended") are more than "gone" (a pid
        // that may be another's by now); one without its end is of a process killed.
        ended: Box::new(move |finished| {
            (!finished && process_gone(pid)).then(|| "the process is gone".to_string())
        }),
    };
    let shown = live::run(live, setup);
    crate::tui::signals::die_of_the_quit_signal();
    view_args::written(shown)
}

/// How long a capture's file may show no header yet before `live` gives up on it.
const HEADER_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Waits while `path` exists but its header is not there yet: a run that has just started, or
/// a capture on a network file system, where the tracker's first write-back comes within half a
/// second (see the tracker's capture::netfs). Anything else is left to `Live::open` to judge.
fn wait_for_header(path: &std::path::Path) {
    // Only a regular file is waited for: opening a FIFO would block for ever (Live::open
    // refuses what is not a regular file).
    if !std::fs::metadata(path).is_ok_and(|m| m.is_file()) {
        return;
    }
    let started = std::time::Instant::now();
    let mut said = false;
    while started.elapsed() < HEADER_WAIT {
        // A wait the user sees is named (a blank terminal looked stuck).
        if !said && started.elapsed() >= std::time::Duration::from_millis(500) {
            crate::say!(
                "memtrace: waiting for {} to be written (up to {} s; Ctrl-C to stop)",
                path.display(),
                HEADER_WAIT.as_secs()
            );
            said = true;
        }
        if header_written(path) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Whether `path` is not a capture whose header is still to come: empty, or zeros where the
/// magic number goes (a short file of something else, or no regular file, is judged at once).
fn header_written(path: &std::path::Path) -> bool {
    if !std::fs::metadata(path).is_ok_and(|m| m.is_file()) {
        return true;
    }
    let mut head = [0u8; 8];
    let read = std::fs::File::open(path).and_then(|f| {
        use std::os::unix::fs::FileExt;
        f.read_at(&mut head, 0)
    });
    !matches!(read, Ok(n) if n == 0 || (n == head.len() && head == [0; 8]))
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
