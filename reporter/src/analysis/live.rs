//! The analysis of a capture that is still being written (`memtrace live`): a [`Follower`]
//! decodes each poll's new events straight into [`LiveSums`], the lean accumulator of what the
//! view shows (the live heap now and at the peak so far by (stack, thread), memory over time),
//! so the view's cost per poll follows what was written since the last one, and its cost per
//! event is a table insert or remove and a few sums (docs/TUI.md, "What the live view costs").

mod blocks;
mod sums;

pub use sums::LiveSums;

use super::replay::{Replay, Snapshot};
use super::sets::AllocSet;
use super::tables::Tables;
use super::totals::{Sum, Totals};
use super::{Analysis, ThreadStats};
use crate::capture::clock::Clock;
use crate::capture::follow::Follower;
use crate::capture::scan::Index;
use crate::report::calltree::CallTree;
use crate::report::view_tree::{self, Resolved, StackResolver};
use crate::report::views::{Selection, View};
use crate::symbols::modules::ModuleMap;
use crate::symbols::Symbolizer;
use hashbrown::HashMap;
use std::path::Path;

/// How the capture at `path` was recorded, from what is written of it so far (the defaults
/// when it cannot be read).
fn recorded_settings(path: &Path) -> memtrace_format::settings::Settings {
    match crate::capture::Capture::open(path) {
        Ok(c) => crate::capture::scan::scan_capture(&c).settings,
        Err(_) => Default::default(),
    }
}

/// Which moment the live tree shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Moment {
    /// What is live now.
    Now,
    /// What was live at the peak so far.
    Peak,
}

/// What one poll read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Polled {
    pub events: usize,
    /// Threads seen for the first time.
    pub new_threads: usize,
    /// More is waiting than a poll takes: poll again at once.
    pub behind: bool,
}

/// A capture followed as it grows, and its analysis so far.
pub struct Live {
    follower: Follower,
    /// The tables, threads, clock and warnings read so far (its `replay` stays empty: the
    /// figures are in `sums`).
    pub analysis: Analysis,
    /// The live heap now and at the peak so far, and memory over time.
    pub sums: LiveSums,
    /// The symbolizer, the number of modules it knows and the stacks resolved so far (all made
    /// again when modules come).
    symbolizer: Option<(usize, Symbolizer, Resolved)>,
}

impl Live {
    /// Opens a capture to follow; `include_startup` counts a Python run's start-up too.
    pub fn open(path: &Path, include_startup: bool) -> Result<Live, String> {
        let follower = Follower::open(path)?;
        // The settings record comes right after the header: an aggregated capture holds sums,
        // not the events this view follows; a sampled one's allocations are weighed.
        let settings = recorded_settings(path);
        if settings.aggregate {
            return Err(format!(
                "{} is an aggregated capture (memtrace run --aggregate): it holds sums, not the \
                 events the live view follows; read it with memtrace stats or memtrace tree",
                path.display()
            ));
        }
        let mut sums = LiveSums::new(include_startup);
        sums.sampling = settings.sampling();
        let analysis = Analysis {
            index: Index::default(),
            clock: Clock::new(&follower.header, None),
            totals: Totals::default(),
            replay: Replay::default(),
            tables: Tables::default(),
            threads: Vec::new(),
            last_tick: None,
            warnings: Vec::new(),
            buckets: None,
            types: None,
            peak_types: None,
        };
        Ok(Live {
            follower,
            analysis,
            sums,
            symbolizer: None,
        })
    }

    /// The capture's byte sampling (0: every allocation).
    pub fn sample_bytes(&self) -> u64 {
        self.sums.sampling.bytes
    }

    pub fn follower(&self) -> &Follower {
        &self.follower
    }

    /// Reads what was written since the last poll and adds it to the sums.
    pub fn poll(&mut self) -> Result<Polled, String> {
        let up = self
            .follower
            .poll(&mut self.sums)
            .map_err(|e| format!("{}: {e}", self.follower.path().display()))?;
        let events = up.events;
        let behind = up.behind;
        let a = &mut self.analysis;
        for &t in &up.new_threads {
            let f = &self.follower.threads[t];
            a.threads.push(ThreadStats {
                serial: f.serial,
                tid: f.tid,
                name: None,
                allocs: Sum::default(),
                by_stack: HashMap::new(),
            });
        }
        for (thread, tables) in up.tables {
            let name = a.tables.absorb(tables);
            if let (Some(t), Some(name)) = (thread.and_then(|t| a.threads.get_mut(t)), name) {
                t.name = Some(String::from_utf8_lossy(&name).into_owned());
            }
        }
        a.last_tick = self.sums.last_tick();
        a.warnings.extend(up.warnings);
        a.clock = Clock::new(&self.follower.header, self.follower.latest_pair);
        Ok(Polled {
            events,
            new_threads: up.new_threads.len(),
            behind,
        })
    }

    /// Whether the tracked process finished its capture.
    pub fn finished(&self) -> bool {
        self.follower.finished()
    }

    /// Heap blocks plus mapped bytes live now.
    pub fn live_bytes(&self) -> u64 {
        self.sums.live_bytes()
    }

    /// The peak so far: its bytes, allocations and tick.
    pub fn peak(&self) -> Snapshot {
        self.sums.peak
    }

    /// The allocations live at `moment`, of thread index `thread` (all threads when None).
    pub fn set(&self, moment: Moment, thread: Option<u32>) -> AllocSet {
        let set = match moment {
            Moment::Now => self.sums.live_set(),
            Moment::Peak => self.sums.peak_set(),
        };
        match thread {
            Some(keep) => set.filter_threads(|t| t == keep),
            None => set,
        }
    }

    /// The call tree of the allocations live at `moment` (of one thread, if given).
    pub fn tree(&mut self, moment: Moment, thread: Option<u32>) -> CallTree {
        let set = self.set(moment, thread);
        let selection = Selection {
            view: match moment {
                Moment::Now => View::Leaks,
                Moment::Peak => View::Peak,
            },
            total: set.total(),
            set,
            threads: thread.map(|t| vec![t]),
            threshold: None,
        };
        let modules = self.analysis.tables.modules.len();
        // Made again, with nothing resolved, when modules came: a native frame may resolve
        // otherwise now.
        let (symbolizer, resolved) = match self.symbolizer.take() {
            Some((n, s, r)) if n == modules => (s, r),
            _ => (
                Symbolizer::new(ModuleMap::new(
                    self.analysis.tables.modules.clone(),
                    &self.follower.header.exe,
                )),
                Resolved::default(),
            ),
        };
        let mut resolver = StackResolver::with(&self.analysis.tables, symbolizer, resolved);
        let tree = view_tree::build(&self.analysis, &selection, &mut resolver, false);
        let (symbolizer, resolved) = resolver.into_parts();
        self.symbolizer = Some((modules, symbolizer, resolved));
        tree
    }

    /// Live bytes over time, as (seconds since the start, bytes).
    pub fn series(&self) -> Vec<(f64, u64)> {
        let clock = &self.analysis.clock;
        self.sums
            .heap_series
            .points()
            .map(|(tick, bytes)| (clock.seconds(tick), bytes))
            .collect()
    }

    /// Seconds from the start of the capture to its last event.
    pub fn elapsed_s(&self) -> f64 {
        self.analysis.duration_s()
    }

    /// Seconds since the capture started, for a program that still runs: the wall clock now
    /// against the capture's start (the header's, so a capture followed from another machine
    /// keeps it), and never less than the last event's time. An idle program makes no event:
    /// the view stood still at its last allocation.
    pub fn running_s(&self) -> f64 {
        let last = self.elapsed_s();
        let start = self.follower.header.start_realtime_ns;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        if start == 0 || now <= start {
            return last;
        }
        ((now - start) as f64 / 1e9).max(last)
    }
}
