//! An open capture and what the first pass over it found, shared by the reader and its
//! records (which resolve their stacks through it).

use crate::stacks::{FrameTuple, Resolver, StackKind};
use crate::version;
use memtrace_format::options;
use memtrace_reporter::analysis::{self, Options};
use memtrace_reporter::capture::clock::Clock;
use memtrace_reporter::capture::scan::Index;
use memtrace_reporter::capture::{Capture, CaptureError};
use memtrace_reporter::symbols::modules::ModuleMap;
use memtrace_reporter::symbols::Symbolizer;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// A thread of the capture.
#[derive(Clone, Debug)]
pub struct ThreadInfo {
    pub tid: u32,
    pub name: Option<String>,
}

/// The facts of a capture (header and whole-run figures).
#[derive(Clone, Debug)]
pub struct Facts {
    pub argv: Vec<String>,
    pub exe: String,
    pub pid: u32,
    pub ppid: u32,
    pub start_time: f64,
    pub python_version: Option<String>,
    pub native: bool,
    pub python_allocators: bool,
    pub follow_fork: bool,
    pub duration_s: f64,
    pub total_allocations: u64,
    pub total_bytes: u64,
    pub total_frees: u64,
    pub peak_bytes: u64,
    pub peak_allocations: u64,
    pub peak_time_s: f64,
    pub leaked_bytes: u64,
    pub leaked_allocations: u64,
    pub complete: bool,
    pub format_version: String,
    pub tool_version: String,
    pub warnings: Vec<String>,
}

pub struct Shared {
    pub capture: Capture,
    pub index: Index,
    pub clock: Clock,
    pub threads: Vec<ThreadInfo>,
    pub facts: Facts,
    pub include_startup: bool,
    /// A Python run: the stream has the script's start marker.
    pub has_script_start: bool,
    /// The event index of the peak (0: before any event).
    pub peak_index: u64,
    /// The event index of the exit snapshot, if the capture has one.
    pub exit_index: Option<u64>,
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
                ..Options::default()
            },
        );
        let header = &capture.header;
        let leaked = analysis.leaked();
        let peak = analysis.replay.peak;
        let names = std::iter::once(header.exe.as_slice())
            .chain(analysis.tables.modules.iter().map(|m| m.path.as_slice()));
        let python_version = version::python_version(names);
        let facts = Facts {
            argv: capture.argv(),
            exe: String::from_utf8_lossy(&header.exe).into_owned(),
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
        let tables = std::mem::take(&mut analysis.tables);
        let map = ModuleMap::new(tables.modules.clone(), &header.exe);
        Ok(Shared {
            index: analysis.index,
            clock: analysis.clock,
            threads,
            facts,
            include_startup,
            has_script_start: analysis.replay.script_start.is_some(),
            peak_index: peak.event_index,
            exit_index: analysis.replay.exit.map(|e| e.event_index),
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
