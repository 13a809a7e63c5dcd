//! An open capture and what the first pass over it found, shared by the reader and its
//! records (which resolve their stacks through it).

use crate::stacks::{FrameTuple, Resolver, StackKind};
use memtrace_format::options;
use memtrace_reporter::analysis::sets::AllocSet;
use memtrace_reporter::analysis::{self, objects, Analysis, Options};
use memtrace_reporter::capture::clock::Clock;
use memtrace_reporter::capture::scan::Index;
use memtrace_reporter::capture::{Capture, CaptureError};
use memtrace_reporter::symbols::modules::ModuleMap;
use memtrace_reporter::symbols::Symbolizer;
use pyo3::prelude::*;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// A thread of the capture.
#[derive(Clone, Debug)]
pub struct ThreadInfo {
    pub tid: u32,
    pub name: Option<String>,
}

/// What a capture says about its run.
#[pyclass(module = "memtrace", frozen, get_all)]
#[derive(Clone, Debug)]
pub struct Metadata {
    /// The command line, words joined by spaces.
    pub command: String,
    pub argv: Vec<String>,
    /// The traced executable (the interpreter in a Python run).
    pub executable: String,
    pub pid: u32,
    pub ppid: u32,
    /// When the capture started, in seconds since the epoch.
    pub start_time: f64,
    /// "3.11" in a Python run (from the interpreter's file names), else None.
    pub python_version: Option<String>,
    /// The options of the run.
    pub native: bool,
    pub python_allocators: bool,
    pub follow_fork: bool,
    pub duration_s: f64,
    pub total_allocations: u64,
    pub total_bytes: u64,
    pub total_frees: u64,
    /// The high-water mark of live bytes, its allocations and when it was reached.
    pub peak_bytes: u64,
    pub peak_allocations: u64,
    pub peak_time_s: f64,
    /// Live at exit (the end of the capture without an exit snapshot).
    pub leaked_bytes: u64,
    pub leaked_allocations: u64,
    /// Whether the capture was finished properly.
    pub complete: bool,
    pub format_version: String,
    pub tool_version: String,
    /// Problems found while reading (damaged chunks, a truncated file).
    pub warnings: Vec<String>,
}

#[pymethods]
impl Metadata {
    fn __repr__(&self) -> String {
        format!(
            "<Metadata command={:?} pid={} peak_bytes={} duration_s={:.3}>",
            self.command, self.pid, self.peak_bytes, self.duration_s
        )
    }
}

pub struct Shared {
    pub capture: Capture,
    pub index: Index,
    pub clock: Clock,
    pub threads: Vec<ThreadInfo>,
    pub metadata: Metadata,
    pub include_startup: bool,
    /// A Python run: the stream has the script's start marker.
    pub has_script_start: bool,
    /// The event index of the peak (0: before any event).
    pub peak_index: u64,
    /// The event index of the exit snapshot, if the capture has one.
    pub exit_index: Option<u64>,
    /// The names of the types of the objects live at exit (rows of analysis::objects).
    pub type_names: Vec<String>,
    /// The type of each typed block live at exit, by address (None: no types in the capture).
    pub block_types: Option<crate::groups::BlockTypes>,
    /// The row in `type_names` of each type that typed frees name, by the type's address.
    pub freed_types: crate::groups::FreedTypes,
    /// An aggregated capture (`memtrace run --aggregate`): what was live at the peak and at
    /// exit, by (stack, thread), from its snapshots (it has no events to replay).
    pub aggregated: Option<(AllocSet, AllocSet)>,
    resolver: Mutex<Resolver>,
}

impl Shared {
    /// Opens a capture and reads it once.
    pub fn open(path: &Path, include_startup: bool) -> Result<Shared, CaptureError> {
        let capture = Capture::open(path)?;
        let mut analysis = analysis::analyze_options(
            &capture,
            Options {
                include_startup,
                freeze: true,
                all_class_lives: true,
                ..Options::default()
            },
        );
        let header = &capture.header;
        let leaked = analysis.leaked();
        let peak = analysis.replay.peak;
        let names = std::iter::once(header.exe.as_slice())
            .chain(analysis.tables.modules.iter().map(|m| m.path.as_slice()));
        let python_version = memtrace_reporter::capture::python_version::of_names(names);
        let argv = capture.argv();
        let metadata = Metadata {
            command: argv.join(" "),
            argv,
            executable: String::from_utf8_lossy(&header.exe).into_owned(),
            pid: header.pid,
            ppid: header.ppid,
            start_time: header.start_realtime_ns as f64 / 1e9,
            python_version,
            native: header.options & options::NATIVE != 0,
            python_allocators: header.options & options::PYTHON_ALLOCATORS != 0,
            follow_fork: header.options & options::FOLLOW_FORK != 0,
            duration_s: analysis.duration_s(),
            total_allocations: analysis.totals.allocs.count,
            total_bytes: analysis.totals.allocs.bytes,
            total_frees: analysis.replay.frees,
            peak_bytes: peak.bytes,
            peak_allocations: peak.allocations,
            peak_time_s: peak
                .tick
                .map_or(0.0, |t| analysis.clock.seconds(t).max(0.0)),
            leaked_bytes: leaked.bytes,
            leaked_allocations: leaked.allocations,
            complete: analysis.complete(),
            format_version: capture.format_version(),
            tool_version: String::from_utf8_lossy(&header.tool_version).into_owned(),
            warnings: analysis.warnings.clone(),
        };
        let threads = analysis
            .threads
            .iter()
            .map(|t| ThreadInfo {
                tid: t.tid,
                name: t.name.clone(),
            })
            .collect();
        let types = analysis.types.take();
        let type_names = types
            .as_ref()
            .map(|t| t.rows.iter().map(|r| r.name.clone()).collect())
            .unwrap_or_default();
        let mut type_names: Vec<String> = type_names;
        let block_types = types.map(|t| t.block_types);
        let freed_types = freed_types(&analysis, &mut type_names);
        let aggregated = analysis
            .index
            .settings
            .aggregate
            .then(|| (analysis.replay.peak_set(), analysis.replay.exit_set()));
        let tables = std::mem::take(&mut analysis.tables);
        let map = ModuleMap::new(tables.modules.clone(), &header.exe);
        Ok(Shared {
            index: analysis.index,
            clock: analysis.clock,
            threads,
            metadata,
            include_startup,
            has_script_start: analysis.replay.script_start.is_some(),
            peak_index: peak.event_index,
            exit_index: analysis.replay.exit.map(|e| e.event_index),
            type_names,
            block_types,
            freed_types,
            aggregated,
            resolver: Mutex::new(Resolver::new(tables, Symbolizer::new(map))),
            capture,
        })
    }

    /// The frames of a stack, innermost first.
    pub fn frames(&self, stack: u64, kind: StackKind) -> Arc<[FrameTuple]> {
        match self.resolver.lock() {
            Ok(mut r) => r.frames(stack, kind),
            Err(poisoned) => poisoned.into_inner().frames(stack, kind),
        }
    }
}

/// The rows of the types that typed frees name (type address -> name in the capture; a class
/// that died before the end by the line that made it), added to `names` (the types live at
/// exit) where a name is not there yet.
fn freed_types(analysis: &Analysis, names: &mut Vec<String>) -> crate::groups::FreedTypes {
    let mut row_of: hashbrown::HashMap<String, usize> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.clone(), i))
        .collect();
    let mut row = |name: String| {
        *row_of.entry(name.clone()).or_insert_with(|| {
            names.push(name);
            names.len() - 1
        })
    };
    let tables = &analysis.tables;
    let mut freed = crate::groups::FreedTypes::default();
    for (&addr, name) in &tables.type_names {
        freed.rows.insert(addr, row(name.to_string()));
    }
    for (addr, deaths) in analysis.replay.class_deaths.lives() {
        let lives = deaths
            .into_iter()
            .map(|(index, made_at)| (index, row(objects::freed_class(tables, made_at))))
            .collect();
        freed.lives.insert(addr, lives);
    }
    freed
}
