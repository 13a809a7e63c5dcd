//! The `stats` report: one structure, rendered as text or JSON.

use super::locations::{self, LocationTotals};
use crate::analysis::totals::{bin_range, BINS};
use crate::analysis::Analysis;
use crate::capture::Capture;
use crate::symbols::modules::ModuleMap;
use crate::symbols::Symbolizer;
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
}

impl From<LocationTotals> for LocationRow {
    fn from(l: LocationTotals) -> LocationRow {
        LocationRow {
            location: l.location.label,
            function: l.location.function,
            file: l.location.file,
            line: l.location.line,
            bytes: l.sum.bytes,
            count: l.sum.count,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ThreadRow {
    pub tid: u32,
    pub name: Option<String>,
    pub allocations: u64,
    pub bytes: u64,
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
    /// Live allocations at the peak.
    pub peak_allocations: u64,
    pub peak_time_s: f64,
    pub leaked_bytes: u64,
    pub leaked_allocations: u64,
    /// Where the leaks were taken: "exit_snapshot" (the program's exit marker) or "end".
    pub leaks_at: &'static str,
    pub histogram: Vec<HistogramBin>,
    pub allocators: BTreeMap<String, u64>,
    pub top_by_size: Vec<LocationRow>,
    pub top_by_count: Vec<LocationRow>,
    pub threads: Vec<ThreadRow>,
    /// A trailer was written and no write failed.
    pub complete: bool,
    pub warnings: Vec<String>,
}

/// Allocators always listed, even with no allocations: the C ones.
const ALWAYS_LISTED: usize = 9;

/// Builds the report, resolving the top locations.
pub fn build(capture: &Capture, analysis: &Analysis, top: usize) -> StatsReport {
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

    let allocators = Allocator::ALL
        .iter()
        .enumerate()
        .filter(|&(i, _)| i < ALWAYS_LISTED || totals.allocators[i] > 0)
        .map(|(i, a)| (a.name().to_string(), totals.allocators[i]))
        .collect();

    let map = ModuleMap::new(analysis.tables.modules.clone(), &header.exe);
    let mut symbolizer = Symbolizer::new(map);
    let locs = locations::by_location(&totals.by_stack, &analysis.tables, &mut symbolizer);
    let top_by_size = locations::top_by_bytes(&locs, top)
        .into_iter()
        .map(LocationRow::from)
        .collect();
    let top_by_count = locations::top_by_count(&locs, top)
        .into_iter()
        .map(LocationRow::from)
        .collect();

    let threads = analysis
        .threads
        .iter()
        .map(|t| ThreadRow {
            tid: t.tid,
            name: t.name.clone(),
            allocations: t.allocs.count,
            bytes: t.allocs.bytes,
        })
        .collect();

    let peak = analysis.replay.peak;
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
        duration_s: analysis.duration_s(),
        total_allocations: totals.allocs.count,
        total_bytes: totals.allocs.bytes,
        total_frees: totals.frees,
        peak_bytes: peak.bytes,
        peak_allocations: peak.allocations,
        peak_time_s: peak.tick.map_or(0.0, |t| analysis.clock.seconds(t)),
        leaked_bytes: leaked.bytes,
        leaked_allocations: leaked.allocations,
        leaks_at: if analysis.replay.exit.is_some() {
            "exit_snapshot"
        } else {
            "end"
        },
        histogram,
        allocators,
        top_by_size,
        top_by_count,
        threads,
        complete: analysis.complete(),
        warnings,
    }
}
