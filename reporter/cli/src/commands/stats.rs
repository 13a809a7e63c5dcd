//! `memtrace stats`: a summary of a capture, as text or JSON.

use crate::view_args::{self, ViewArgs};
use clap::Args;
use memtrace_reporter::report::stats::{self, StatsReport};
use memtrace_reporter::report::text;
use memtrace_reporter::report::views::{View, ViewOptions};
use memtrace_reporter::report::visible::{Style, Visible};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
#[command(after_help = "\
Examples:
  memtrace stats out.bin
  memtrace stats -n 20 out.bin
  memtrace stats --json out.bin | jq .peak_bytes
  memtrace stats --leaks out.bin            top lists of what is still live at exit
  memtrace stats --temporary out.bin        top lists of temporary allocations
  memtrace stats --threads out.bin          each thread's top locations at the peak
  memtrace stats --thread worker-1 out.bin  one thread's allocations

JSON keys: capture, format_version, command, argv, exe, pid, duration_s, total_allocations,
total_bytes, total_frees (of allocations the capture saw), peak_bytes, peak_allocations,
peak_time_s, leaked_bytes, leaked_allocations, leaks_at, startup_bytes and startup_included
(a Python run: what the interpreter's start-up left live, and whether the figures count it:
--include-startup), peak_stops_short_bytes and peak_stops_short_allocations (--native: what is
live at the peak under native stacks that stop short of the thread's first frame),
histogram [{lo, hi, count, bytes}], allocators {name: count},
top_by_size and top_by_count [{location, function, file, line, bytes, count, stack}],
top_modules [{module, file, bytes, count}], top_at_peak (as top_by_size, live bytes at the
peak), threads [{tid, name, allocations, bytes, peak_bytes, peak_allocations, top_at_peak (with
--threads, else null)}], view (all, leaks, temporary: what top_by_size, top_by_count and
top_modules count), view_bytes, view_allocations, temporary_threshold, complete (a trailer, no
write failure, every record it counts found), records_found and records_written (the trailer's
count, or null), exec (the program this one exec'd: {command, program, argv, next_capture,
next_capture_exists}, whose records are in next_capture; null when it did not exec), types (a
Python run: the objects live at exit by type, {exit [{type, objects, bytes}], peak (null: no
types at the peak), covered}; null for a capture without types), warnings.
--thread keeps one thread in the lists and threads; totals stay the whole run's. A location's stack is one of its stacks (top_by_size: the one with the most bytes,
top_by_count: the most allocations), innermost frame first, each {function, file, line} (null
where unknown). A module is the file of the innermost Python frame of a stack as a dotted name
(json.decoder), or the native module of a stack without one (libc.so.6), or <unknown>.")]
pub struct StatsArgs {
    /// The capture file written by `memtrace run`
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// How many entries each top list has (locations by bytes, by count, modules)
    #[arg(short = 'n', long = "top", value_name = "N", default_value_t = 5)]
    pub top: usize,
    /// Print one JSON object instead of text (warnings go into it, not to stderr)
    #[arg(long = "json")]
    pub json: bool,
    #[command(flatten)]
    pub view: ViewArgs,
}

/// Reads a capture and builds the stats report of a view; errors are the line to print.
pub fn report_view(path: &Path, top: usize, view: &ViewOptions) -> Result<StatsReport, String> {
    let (capture, analysis) = view_args::load(path, view)?;
    stats::build_view(&capture, &analysis, top, view)
}

fn write_report(r: &StatsReport, json: bool) -> io::Result<()> {
    let stdout = io::stdout();
    let style = if json { Style::Json } else { Style::Text };
    let mut out = Visible::new(io::BufWriter::new(stdout.lock()), style);
    if json {
        serde_json::to_writer_pretty(&mut out, r).map_err(io::Error::other)?;
        writeln!(out)?;
    } else {
        text::render(r, &mut out)?;
    }
    out.flush()
}

/// Runs `memtrace stats`.
pub fn execute(args: StatsArgs) -> Result<(), String> {
    let r = report_view(&args.file, args.top, &args.view.options(View::All))?;
    if !args.json {
        view_args::warn(&r.warnings);
    }
    view_args::written(write_report(&r, args.json))
}
