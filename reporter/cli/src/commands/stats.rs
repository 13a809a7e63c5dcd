//! `memtrace stats`: a summary of a capture, as text or JSON.

use crate::color::ColorArgs;
use crate::view_args::{self, ViewArgs};
use clap::Args;
use memtrace_reporter::family::report::{self as family_report, FamilyReport};
use memtrace_reporter::report::paths::Paths;
use memtrace_reporter::report::stats::{self, StatsReport};
use memtrace_reporter::report::text::{self, TextOptions};
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
  memtrace stats --all --full-paths out.bin every allocator, also those never called; full paths
  memtrace stats --pid 4242 out.bin         one process of a --follow-fork family

JSON keys: capture, format_version, command, argv, exe, pid, duration_s, total_allocations,
total_bytes, total_frees (of allocations the capture saw), peak_bytes, peak_allocations,
peak_time_s, leaked_bytes, leaked_allocations, leaks_at, startup_bytes and startup_included
(a Python run: what the interpreter's start-up left live, and whether the figures count it:
--include-startup), peak_stops_short_bytes and peak_stops_short_allocations (what is live at
the peak under stacks that stop short of the thread's first frame: native stacks under --native,
Python stacks deeper than the 4,096 frames kept),
histogram [{lo, hi, count, bytes}], allocators {name: count},
top_by_size and top_by_count [{location, function, file, line, bytes, count, stack}],
top_modules [{module, file, bytes, count}], top_at_peak (as top_by_size, live bytes at the
peak), threads [{tid, name, allocations, bytes, peak_bytes, peak_allocations, top_at_peak (with
--threads, else null)}], view (all, leaks, temporary: what top_by_size, top_by_count and
top_modules count), view_bytes, view_allocations, temporary_threshold, complete (a trailer, no
write failure, every record it counts found), records_found and records_written (the trailer's
count, or null), exec (the program this one exec'd: {command, program, argv, next_capture,
next_capture_exists}, whose records are in next_capture; null when it did not exec),
sample_bytes (run --sample-bytes N: N, else 0; bytes are then estimates),
peak_standard_error_bytes (sampled: a bound of the peak's standard error), labels [[key, value]],
memory_limit (the cgroup v2 memory.max the program ran under, or null), failed_requests
[{bytes, allocator, time_s, stack}] (requests the allocator refused), types (a Python run: the
objects live at exit by type, {exit [{type, objects, bytes}], peak (null: no types at the
peak), covered}; null for a capture without types), warnings.
A capture with children (memtrace run --follow-fork; without --pid) adds processes [{pid,
parent_pid, command, peak_bytes, total_bytes, leaked_bytes, start_s, tracked, complete,
damaged, captures}], combined_peak_bytes and combined_peak_time_s (the highest sum of the processes'
live heaps at one moment, seconds after the root's start) and combined_peak_by_process [{pid,
bytes}]; the text report ends with the process tree and the combined peak.
--thread keeps one thread in the lists and threads; totals stay the whole run's. A location's
stack is one of its stacks (top_by_size: the one with the most bytes,
top_by_count: the most allocations), innermost frame first, each {function, file, line} (null
where unknown). A module is the file of the innermost Python frame of a stack as a dotted name
(json.decoder), or the native module of a stack without one (libc.so.6), or <unknown>.")]
pub struct StatsArgs {
    /// The capture file written by `memtrace run`
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// How many entries each top list has (locations by bytes, by count, modules)
    #[arg(short = 'n', long = "top", value_name = "N", default_value_t = 5, value_parser = crate::view_args::list_length)]
    pub top: usize,
    /// Print one JSON object instead of text (warnings go into it, not to stderr)
    #[arg(long = "json")]
    pub json: bool,
    /// List every allocator, also those the program never called, and every thread (by
    /// default the 20 threads, or -n if more, that allocated most)
    #[arg(long = "all")]
    pub all: bool,
    /// Show files with their full paths (by default a file under the script's directory or the
    /// current directory is shown relative to it, whichever is shorter; JSON has full paths)
    #[arg(long = "full-paths")]
    pub full_paths: bool,
    #[command(flatten)]
    pub view: ViewArgs,
    #[command(flatten)]
    pub color: ColorArgs,
}

/// Reads a capture and builds the stats report of a view; errors are the line to print.
pub fn report_view(path: &Path, top: usize, view: &ViewOptions) -> Result<StatsReport, String> {
    let (capture, analysis) = view_args::load(path, view)?;
    stats::build_view(&capture, &analysis, top, view)
}

/// How the text report shows paths: relative to the script's directory or the current one,
/// unless `full`.
pub fn paths_of(r: &StatsReport, full: bool) -> Paths {
    if full {
        return Paths::full();
    }
    let rows = r
        .top_by_size
        .iter()
        .chain(&r.top_by_count)
        .chain(&r.top_at_peak);
    let files = rows
        .flat_map(|row| {
            row.file
                .iter()
                .chain(row.stack.iter().flat_map(|f| &f.file))
        })
        .chain(r.top_modules.iter().flat_map(|m| &m.file))
        .map(String::as_str);
    Paths::relative(&r.argv, files, std::env::current_dir().ok())
}

fn write_report(
    r: &StatsReport,
    family: Option<&FamilyReport>,
    json: bool,
    o: &TextOptions,
    color: bool,
) -> io::Result<()> {
    let stdout = io::stdout();
    let style = if json { Style::Json } else { Style::Text };
    let mut out = Visible::new(io::BufWriter::new(stdout.lock()), style).colored(color && !json);
    if json {
        let mut v = serde_json::to_value(r).map_err(io::Error::other)?;
        if let (Some(f), Some(obj)) = (family, v.as_object_mut()) {
            // The family's keys beside the root process's own.
            if let Ok(serde_json::Value::Object(extra)) = serde_json::to_value(f) {
                obj.extend(extra);
            }
        }
        serde_json::to_writer_pretty(&mut out, &v).map_err(io::Error::from)?;
        writeln!(out)?;
    } else {
        text::render_with(r, &mut out, o)?;
        if let Some(f) = family {
            family_report::render(f, &mut out)?;
        }
    }
    out.flush()
}

/// Runs `memtrace stats`.
pub fn execute(args: StatsArgs) -> Result<(), String> {
    let view = args.view.options(View::All);
    let (file, notes) = args.view.capture_noted(&args.file)?;
    let (capture, analysis) = view_args::load(&file, &view)?;
    let mut r = stats::build_view(&capture, &analysis, args.top, &view)?;
    r.warnings.extend(notes);
    // The family's tree and combined peak, unless --pid asked for one process.
    let family = match args.view.pid {
        Some(_) => None,
        None => {
            let (family, left_out) = family_report::build_read(
                &args.file,
                &capture,
                &analysis.index,
                view.include_startup,
            )?;
            r.warnings.extend(left_out);
            family
        }
    };
    if let Some(f) = &family {
        r.warnings.extend(f.warnings.iter().cloned());
    }
    if !args.json {
        view_args::warn(&r.warnings);
    }
    let o = TextOptions {
        all_allocators: args.all,
        paths: paths_of(&r, args.full_paths),
        threads: (!args.all)
            .then_some(args.top.max(memtrace_reporter::report::text::THREADS_SHOWN)),
    };
    view_args::written(write_report(
        &r,
        family.as_ref(),
        args.json,
        &o,
        args.color.enabled(),
    ))
}
