//! The `stats` report: one structure, rendered as text or JSON.

use super::locations::{self, LocationTotals};
use super::modules::{self, ModuleTotals};
use super::short_stacks;
use super::stack::{self, StackFrame};
use super::views::{self, View, ViewOptions};
use crate::analysis::sets::AllocSet;
use crate::analysis::tables::{Frame, Tables};
use crate::analysis::totals::Sum;
use crate::analysis::totals::{bin_range, BINS};
use crate::analysis::Analysis;
use crate::capture::{Capture, CaptureError};
use crate::symbols::modules::ModuleMap;
use crate::symbols::Symbolizer;
use hashbrown::HashMap;
use memtrace_format::Allocator;
use serde::Serialize;
use std::collections::BTreeMap;

/// One non-empty histogram bin: allocations of `lo..=hi` bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HistogramBin {
    pub lo: u64,
    pub hi: u64,
    pub count: u64,
    pub bytes: u64,
}

/// An allocation site in a top list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LocationRow {
    /// `function at file:line`, or `libfoo.so+0x1234` when unresolved.
    pub location: String,
    pub function: Option<String>,
    pub file: Option<String>,
    pub line: Option<u64>,
    pub bytes: u64,
    pub count: u64,
    /// The frames of one stack of the location, innermost (the location itself) first: in
    /// `top_by_size` the stack with the most bytes, in `top_by_count` the one with the most
    /// allocations.
    pub stack: Vec<StackFrame>,
}

impl LocationRow {
    fn new(l: LocationTotals, stack: Vec<StackFrame>) -> LocationRow {
        LocationRow {
            location: l.location.label,
            function: l.location.function,
            file: l.location.file,
            line: l.location.line,
            bytes: l.sum.bytes,
            count: l.sum.count,
            stack,
        }
    }
}

/// A module in the top list of modules.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ModuleRow {
    /// A dotted Python module name (`json.decoder`), a native module's file name (`libc.so.6`),
    /// or `<unknown>`.
    pub module: String,
    /// The full path of the module's file, when known.
    pub file: Option<String>,
    pub bytes: u64,
    pub count: u64,
}

impl From<ModuleTotals> for ModuleRow {
    fn from(m: ModuleTotals) -> ModuleRow {
        ModuleRow {
            module: m.module.name,
            file: m.module.file,
            bytes: m.sum.bytes,
            count: m.sum.count,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ThreadRow {
    pub tid: u32,
    pub name: Option<String>,
    pub allocations: u64,
    pub bytes: u64,
    /// Bytes and allocations of the thread live at the peak.
    pub peak_bytes: u64,
    pub peak_allocations: u64,
    /// With --threads: the thread's top locations at the peak; null otherwise.
    pub top_at_peak: Option<Vec<LocationRow>>,
}

/// Everything `memtrace stats` shows. Field names are the JSON keys.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StatsReport {
    /// Path of the capture file.
    pub capture: String,
    /// "MAJOR.MINOR" of the capture format.
    pub format_version: String,
    /// The arguments joined by spaces.
    pub command: String,
    pub argv: Vec<String>,
    /// The executable the tracker saw.
    pub exe: String,
    pub pid: u32,
    pub duration_s: f64,
    pub total_allocations: u64,
    pub total_bytes: u64,
    pub total_frees: u64,
    pub peak_bytes: u64,
    /// Live allocations at the peak (a sampled capture's: estimates).
    pub peak_allocations: u64,
    /// Blocks and mappings live at the peak: `peak_allocations`, but in a sampled capture the
    /// samples its estimate comes from; null for an aggregated capture (it keeps sums).
    pub peak_samples: Option<u64>,
    pub peak_time_s: f64,
    pub leaked_bytes: u64,
    pub leaked_allocations: u64,
    /// Where the leaks were taken: "exit_snapshot" (the program's exit marker) or "end".
    pub leaks_at: &'static str,
    /// A Python run: bytes live when the script started (the interpreter's start-up); null
    /// for other programs. Not part of the other figures unless `startup_included`.
    pub startup_bytes: Option<u64>,
    /// The figures count the interpreter's start-up too (--include-startup).
    pub startup_included: bool,
    /// Bytes and allocations live at the peak whose native stacks stop short of the thread's
    /// first frame (`--native`: too deep, at JIT code, at a frame the unwinder could not follow).
    pub peak_stops_short_bytes: u64,
    pub peak_stops_short_allocations: u64,
    pub histogram: Vec<HistogramBin>,
    pub allocators: BTreeMap<String, u64>,
    pub top_by_size: Vec<LocationRow>,
    pub top_by_count: Vec<LocationRow>,
    /// Modules by bytes allocated: the file of the innermost Python frame of each allocation's
    /// stack, or the native module of a stack without Python frames.
    pub top_modules: Vec<ModuleRow>,
    pub threads: Vec<ThreadRow>,
    /// Live bytes by location at the peak (the high-water mark), the largest first, each with
    /// its stack with the most bytes then.
    pub top_at_peak: Vec<LocationRow>,
    /// What the top lists (by size, by count, modules) count: "all" allocations, "leaks" (live
    /// at exit) or "temporary" allocations.
    pub view: View,
    /// The bytes and allocations of the view (with --thread: of that thread).
    pub view_bytes: u64,
    pub view_allocations: u64,
    /// --temporary: the threshold; null otherwise.
    pub temporary_threshold: Option<usize>,
    /// A trailer was written, no write failed and the file holds every record it counts.
    pub complete: bool,
    /// Records (events and table records) in the chunks found, by their headers.
    pub records_found: u64,
    /// Records the tracker wrote, by the trailer; null without one.
    pub records_written: Option<u64>,
    /// The program exec'd another one, recorded in another capture; null otherwise.
    pub exec: Option<ExecRow>,
    /// Byte sampling (`run --sample-bytes N`): N, or 0 for a full capture. When sampled, bytes
    /// and allocation totals are estimates (see `warnings`).
    pub sample_bytes: u64,
    /// An aggregated capture (`run --aggregate`): sums per stack and thread (see `warnings`).
    pub aggregated: bool,
    /// A sampled capture: an upper bound of the standard error of `peak_bytes` (N times the
    /// square root of the samples live at the peak; samples of N bytes or more add none; in an
    /// aggregated capture, which keeps no samples, the root of N times the peak); 0 for a full
    /// capture.
    pub peak_standard_error_bytes: u64,
    /// The labels the capture was recorded with (`run --label key=value`), in order.
    pub labels: Vec<(String, String)>,
    /// The cgroup v2 memory limit the program ran under (`memory.max`), null without one.
    pub memory_limit: Option<u64>,
    /// Allocations the allocator refused (a `MemoryError` under `ulimit -v`), the last ones
    /// last (at most 10).
    pub failed_requests: Vec<FailedRow>,
    /// A Python run: objects live at exit by type (report::types); null otherwise.
    pub types: Option<super::types::TypesReport>,
    /// A Python run without types: why (the script did not finish, or types were off); null
    /// otherwise.
    pub types_missing: Option<&'static str>,
    pub warnings: Vec<String>,
}

/// A request the allocator refused.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FailedRow {
    pub bytes: u64,
    pub allocator: String,
    pub time_s: f64,
    /// Where it was made, innermost frame first.
    pub stack: Vec<StackFrame>,
}

/// The exec that ended a capture.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ExecRow {
    /// The new program's command line, arguments joined by spaces.
    pub command: String,
    /// The file given to exec.
    pub program: String,
    pub argv: Vec<String>,
    /// The capture of the new program.
    pub next_capture: String,
    /// Whether that capture exists (a program that cannot be traced writes none).
    pub next_capture_exists: bool,
}

impl From<crate::capture::exec::Exec> for ExecRow {
    fn from(e: crate::capture::exec::Exec) -> ExecRow {
        ExecRow {
            command: e.command(),
            next_capture_exists: e.next.is_file(),
            next_capture: e.next.display().to_string(),
            program: e.program,
            argv: e.argv,
        }
    }
}

/// Allocators always listed, even with no allocations: the C ones.
const ALWAYS_LISTED: usize = 9;

/// Reads a capture and builds its stats report (everything, the default view).
pub fn report(path: &std::path::Path, top: usize) -> Result<StatsReport, CaptureError> {
    let capture = Capture::open(path)?;
    let analysis = crate::analysis::analyze(&capture);
    Ok(build(&capture, &analysis, top))
}

/// Builds the report of every allocation, resolving the top locations.
pub fn build(capture: &Capture, analysis: &Analysis, top: usize) -> StatsReport {
    build_threads(capture, analysis, top, View::All, None, false)
}

/// The top locations of a set by live bytes, each with its heaviest stack.
fn top_rows(
    set: &HashMap<u64, Sum>,
    tables: &Tables,
    symbolizer: &mut Symbolizer,
    top: usize,
) -> Vec<LocationRow> {
    let locs = locations::by_location(set, tables, symbolizer);
    locations::top_by_bytes(&locs, top)
        .into_iter()
        .map(|l| {
            let frames = stack::frames_from_location(l.heaviest.stack, tables, symbolizer);
            LocationRow::new(l, frames)
        })
        .collect()
}

/// Builds the report of a view (all allocations, leaks, temporary ones; a thread), resolving
/// the top locations. The error is a thread that is not in the capture.
pub fn build_view(
    capture: &Capture,
    analysis: &Analysis,
    top: usize,
    opts: &ViewOptions,
) -> Result<StatsReport, String> {
    let threads = views::kept_threads(analysis, opts)?;
    Ok(build_threads(
        capture,
        analysis,
        top,
        opts.view,
        threads,
        opts.split_threads,
    ))
}

/// Builds the report of `view` for the threads `threads` (all when None); `split_threads`: with
/// each thread's top locations at the peak.
fn build_threads(
    capture: &Capture,
    analysis: &Analysis,
    top: usize,
    view: View,
    threads: Option<Vec<u32>>,
    split_threads: bool,
) -> StatsReport {
    let peak_set: AllocSet = views::select_threads(analysis, View::Peak, threads.clone()).set;
    let selection = views::select_threads(analysis, view, threads);
    let view_stacks = selection.set.by_stack();
    let header = &capture.header;
    let totals = &analysis.totals;
    let argv = capture.argv();

    let histogram = (0..BINS)
        .filter(|&b| totals.histogram[b].count > 0)
        .map(|b| {
            let (lo, hi) = bin_range(b);
            HistogramBin {
                lo,
                hi,
                count: totals.histogram[b].count,
                bytes: totals.histogram[b].bytes,
            }
        })
        .collect();

    let mut allocators: BTreeMap<String, u64> = Allocator::ALL
        .iter()
        .enumerate()
        .filter(|&(i, _)| i < ALWAYS_LISTED || totals.allocators[i] > 0)
        .map(|(i, a)| (a.name().to_string(), totals.allocators[i]))
        .collect();
    // The deallocators' calls, beside the allocators' (free records, matched or not).
    for (name, n) in ["free", "pymalloc_free", "munmap"]
        .iter()
        .zip(totals.free_kinds)
    {
        if n > 0 || *name == "free" {
            allocators.insert(name.to_string(), n);
        }
    }

    let map = ModuleMap::new(analysis.tables.modules.clone(), &header.exe);
    let mut symbolizer = Symbolizer::new(map);
    let tables = &analysis.tables;
    let peak_stacks = peak_set.by_stack();
    // The locations below resolve the innermost frame of every stack of both sets.
    symbolizer.preload(
        view_stacks
            .keys()
            .chain(peak_stacks.keys())
            .filter_map(|&stack| match tables.innermost_shown(stack) {
                Some((_, Frame::Native(addr))) => Some(addr),
                _ => None,
            }),
    );
    let locs = locations::by_location(&view_stacks, tables, &mut symbolizer);
    let top_by_size = top_rows(&view_stacks, tables, &mut symbolizer, top);
    let top_by_count = locations::top_by_count(&locs, top)
        .into_iter()
        .map(|l| {
            let frames = stack::frames_from_location(l.busiest.stack, tables, &mut symbolizer);
            LocationRow::new(l, frames)
        })
        .collect();
    let mods = modules::by_module(&view_stacks, tables, &mut symbolizer);
    let top_at_peak = top_rows(&peak_stacks, tables, &mut symbolizer, top);
    let top_modules = modules::top_by_bytes(&mods, top)
        .into_iter()
        .map(ModuleRow::from)
        .collect();

    let mut threads = Vec::new();
    for (i, t) in analysis.threads.iter().enumerate() {
        let i = i as u32;
        if selection
            .threads
            .as_ref()
            .is_some_and(|keep| !keep.contains(&i))
        {
            continue;
        }
        let mine = peak_set.filter_threads(|x| x == i);
        let at_peak = mine.total();
        let top_at_peak =
            split_threads.then(|| top_rows(&mine.by_stack(), tables, &mut symbolizer, top));
        threads.push(ThreadRow {
            tid: t.tid,
            name: t.name.clone(),
            allocations: t.allocs.count,
            bytes: t.allocs.bytes,
            peak_bytes: at_peak.bytes,
            peak_allocations: at_peak.count,
            top_at_peak,
        });
    }

    let mut failed = analysis.tables.failed.clone();
    failed.sort_by_key(|&(tick, _)| tick);
    let failed_requests = failed
        .iter()
        .rev()
        .take(10)
        .rev()
        .map(|&(tick, f)| FailedRow {
            bytes: f.size,
            allocator: Allocator::from_u8(f.allocator.min(255) as u8)
                .map_or("unknown", |a| a.name())
                .to_string(),
            time_s: analysis.clock.seconds(tick),
            stack: stack::frames_from_location(f.stack, tables, &mut symbolizer),
        })
        .collect();
    let peak = analysis.replay.peak;
    let stops_short = short_stacks::under_short_stacks(&peak_stacks, tables);
    let leaked = analysis.leaked();
    let mut warnings = analysis.warnings.clone();
    warnings.extend(symbolizer.warnings);

    StatsReport {
        capture: capture.path().display().to_string(),
        format_version: capture.format_version(),
        command: argv.join(" "),
        argv,
        exe: String::from_utf8_lossy(&header.exe).into_owned(),
        pid: header.pid,
        sample_bytes: analysis.index.settings.sample_bytes,
        aggregated: analysis.index.settings.aggregate,
        peak_standard_error_bytes: peak_standard_error(analysis),
        labels: analysis.index.settings.labels.clone(),
        memory_limit: Some(analysis.index.settings.memory_limit).filter(|&l| l > 0),
        failed_requests,
        duration_s: analysis.duration_s(),
        total_allocations: totals.allocs.count,
        total_bytes: totals.allocs.bytes,
        total_frees: analysis.replay.frees,
        peak_bytes: peak.bytes,
        peak_allocations: peak.allocations,
        peak_samples: (!analysis.index.settings.aggregate).then_some(analysis.replay.peak_samples),
        peak_time_s: peak.tick.map_or(0.0, |t| analysis.clock.seconds(t)),
        leaked_bytes: leaked.bytes,
        leaked_allocations: leaked.allocations,
        leaks_at: if analysis.replay.exit.is_some() {
            "exit_snapshot"
        } else {
            "end"
        },
        // Not known in an aggregated capture (its sums start afresh at the script's start);
        // none where nothing was live at the start (a Tracker's, an attach's: tracking and the
        // "script" start together).
        startup_bytes: analysis
            .replay
            .script_start
            .filter(|s| s.allocations > 0)
            .map(|s| s.bytes)
            .filter(|_| !analysis.index.settings.aggregate),
        startup_included: analysis.replay.include_startup,
        peak_stops_short_bytes: stops_short.bytes,
        peak_stops_short_allocations: stops_short.count,
        histogram,
        allocators,
        top_by_size,
        top_by_count,
        top_modules,
        threads,
        top_at_peak,
        view: selection.view,
        view_bytes: selection.total.bytes,
        view_allocations: selection.total.count,
        temporary_threshold: selection.threshold,
        complete: analysis.complete(),
        records_found: analysis.index.records_found,
        records_written: analysis.index.trailer.as_ref().map(|t| t.records_written),
        exec: crate::capture::exec::of(capture.path(), capture.bytes(), &analysis.index)
            .map(ExecRow::from),
        types_missing: super::types::missing(analysis),
        types: super::types::report(analysis, capture.header.options),
        warnings,
    }
}

/// A bound of the standard error of a sampled capture's peak: each sample of a request below
/// the size always recorded (N/2, or N in a capture with exponential gaps) stands for about N
/// bytes with a variance below N², so N times the root of those samples live at the peak (the
/// blocks always recorded are exact: a peak of 16 such blocks read "at most 44%"). An
/// aggregated capture keeps estimated counts, not
/// samples (the bound took them for samples: 355 MB on a peak of 24 MB): there the samples
/// number at most about the peak's bytes over N, which gives the root of N times the peak.
fn peak_standard_error(analysis: &Analysis) -> u64 {
    let n = analysis.index.settings.sample_bytes as f64;
    let peak = &analysis.replay.peak;
    let bound = if analysis.index.settings.aggregate {
        (n * peak.bytes as f64).sqrt()
    } else {
        // Blocks of N/2 bytes and more are recorded exactly: no error of theirs.
        n * (analysis.replay.peak_weighed as f64).sqrt()
    };
    bound.round() as u64
}
