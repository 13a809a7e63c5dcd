//! `memtrace stats`: a summary of a capture, as text or JSON.

use crate::analysis;
use crate::capture::{Capture, CaptureError};
use crate::report::stats::{self, StatsReport};
use crate::report::text;
use clap::Args;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  memtrace stats out.bin\n  memtrace stats -n 20 out.bin\n  memtrace stats --json out.bin | jq .peak_bytes"
)]
pub struct StatsArgs {
    /// The capture file written by `memtrace run`
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// How many locations to list in the top lists
    #[arg(short = 'n', long = "top", value_name = "N", default_value_t = 5)]
    pub top: usize,
    /// Print one JSON object instead of text (warnings go into it, not to stderr)
    #[arg(long = "json")]
    pub json: bool,
}

/// Reads a capture and builds its stats report.
pub fn report(path: &Path, top: usize) -> Result<StatsReport, CaptureError> {
    let capture = Capture::open(path)?;
    let analysis = analysis::analyze(&capture);
    Ok(stats::build(&capture, &analysis, top))
}

fn write_report(r: &StatsReport, json: bool) -> io::Result<()> {
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    if json {
        serde_json::to_writer_pretty(&mut out, r).map_err(io::Error::other)?;
        writeln!(out)?;
    } else {
        text::render(r, &mut out)?;
    }
    out.flush()
}

/// Runs `memtrace stats`; returns the exit status.
pub fn execute(args: StatsArgs) -> i32 {
    let r = match report(&args.file, args.top) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("memtrace: {e}");
            return 1;
        }
    };
    if !args.json {
        for w in &r.warnings {
            eprintln!("memtrace: warning: {w}");
        }
    }
    match write_report(&r, args.json) {
        Ok(()) => 0,
        // The reader went away (`memtrace stats out.bin | head`): nothing more to say.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => 0,
        Err(e) => {
            eprintln!("memtrace: cannot write the report: {e}");
            1
        }
    }
}
