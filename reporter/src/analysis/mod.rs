//! Analyses over the event stream: totals, the live-heap replay and the tables to resolve
//! locations.

pub mod aggregated;
pub mod attached;
pub mod buckets;
pub mod class_deaths;
pub mod escaped;
pub mod heap;
pub mod live;
pub mod mappings;
pub mod objects;
pub mod replay;
pub mod series;
pub mod sets;
pub mod tables;
pub mod temporary;
#[cfg(test)]
pub(crate) mod test_rng;
pub mod totals;

use crate::capture::clock::Clock;
use crate::capture::decode::{ChunkTables, DecodedChunk};
use crate::capture::event::{code, Event};
use crate::capture::scan::{self, Index};
use crate::capture::stream::{self, BatchLimits, Consumer};
use crate::capture::Capture;
use hashbrown::HashMap;
use memtrace_format::settings::Sampling;
use memtrace_format::Marker;
use replay::{Replay, Snapshot};
use sets::AllocSet;
use tables::Tables;
use totals::{Sum, Totals};

/// Per-thread results.
#[derive(Clone, Debug)]
pub struct ThreadStats {
    pub serial: u32,
    pub tid: u32,
    /// The last thread name record of the thread.
    pub name: Option<String>,
    pub allocs: Sum,
    /// The thread's allocations per stack id.
    pub by_stack: HashMap<u64, Sum>,
}

/// Everything the reports need, from one pass over a capture.
#[derive(Debug)]
pub struct Analysis {
    pub index: Index,
    pub clock: Clock,
    pub totals: Totals,
    pub replay: Replay,
    pub tables: Tables,
    pub threads: Vec<ThreadStats>,
    /// What was live at exit by type (a Python run's capture with object-types records).
    pub types: Option<objects::ExitTypes>,
    /// What was live at the peak by type (a capture with typed frees, see
    /// [`objects::peak_types`]).
    pub peak_types: Option<objects::ExitTypes>,
    /// The largest event tick.
    pub last_tick: Option<u64>,
    /// What was live at each time bucket's high-water mark, when asked for
    /// ([`Options::buckets`]).
    pub buckets: Option<buckets::BucketData>,
    /// Problems found while reading, in file then load order.
    pub warnings: Vec<String>,
}

impl Analysis {
    /// Live memory at the exit snapshot, or at the end of the capture without one.
    pub fn leaked(&self) -> Snapshot {
        self.replay.exit.unwrap_or(Snapshot {
            tick: self.last_tick,
            event_index: self.replay.events,
            bytes: self.replay.live_bytes(),
            allocations: self.replay.live_allocations(),
        })
    }

    /// Every allocation of the capture by (stack, thread).
    pub fn all_set(&self) -> AllocSet {
        let mut set = AllocSet::default();
        for (i, t) in self.threads.iter().enumerate() {
            for (&stack, &sum) in &t.by_stack {
                set.groups.insert((stack, i as u32), sum);
            }
        }
        set
    }

    /// Whether the capture ended properly (a trailer, no write failure).
    pub fn complete(&self) -> bool {
        self.index.complete()
    }

    pub fn duration_s(&self) -> f64 {
        self.clock.duration_s(self.last_tick)
    }
}

/// How far a pass has got, for the caller to show: the number of chunks to read, then each
/// chunk read, then the end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    Total(u64),
    Done(u64),
    Finished,
}

/// Called as a pass goes (see [`Step`]); the library shows nothing itself.
pub type ProgressFn = Box<dyn FnMut(Step) + Send>;

/// What a pass computes besides the defaults, and how it shows progress.
pub struct Options {
    /// Find the temporary allocations with this threshold (see [`temporary::Temporary`]).
    pub temporary: Option<usize>,
    pub limits: BatchLimits,
    /// Told of the chunks read, if given.
    pub progress: Option<ProgressFn>,
    /// Free the live heap once read, keeping the sets at the peak and at exit
    /// ([`replay::Replay::freeze`]).
    pub freeze: bool,
    /// In a Python run, count the interpreter's start-up too (by default a report starts at
    /// the script's start, as memray's do).
    pub include_startup: bool,
    /// Keep what was live at the high-water mark of each of this many time buckets
    /// ([`buckets::Buckets`]).
    pub buckets: Option<usize>,
    /// Points kept of the live heap's series (`replay.heap_series`): its time resolution.
    pub heap_points: usize,
    /// The live heap's series follows every step ([`series::Series::steps`]) rather than
    /// keeping each tick's highest value.
    pub heap_steps: bool,
    /// Take the "peak" at this moment (CLOCK_MONOTONIC ns) instead of at the highest point:
    /// what was live then (a family's combined peak, see [`crate::family`]).
    pub peak_at_mono_ns: Option<u64>,
    /// Take the "peak" right after this event (its index in the replay's order; wins over
    /// `peak_at_mono_ns`): one nanosecond may hold several ticks, and one tick several events,
    /// of different values; a family's combined peak names the event of each image's value
    /// ([`crate::family::combined::Peak::by_image_event`]).
    pub peak_at_event: Option<u64>,
    /// Time buckets on a grid given in CLOCK_MONOTONIC ns, each bucket's snapshot at its
    /// moment (a family's buckets, common to its captures); replaces [`Options::buckets`].
    pub bucket_moments: Option<BucketMoments>,
    /// Follow the lives of every type a typed free names ([`replay::Replay::all_class_lives`]).
    pub all_class_lives: bool,
}

/// A grid of time buckets and the moment of each one's snapshot, in CLOCK_MONOTONIC ns.
#[derive(Clone, Debug, Default)]
pub struct BucketMoments {
    pub start_mono_ns: u64,
    pub width_ns: u64,
    /// One per bucket.
    pub moments_mono_ns: Vec<u64>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            temporary: None,
            // Small batches: what is decoded and waiting stays small next to the live heap
            // (256 KiB of records: some 50 thousand events, 1.6 MiB, per batch).
            limits: BatchLimits {
                bytes: 256 << 10,
                ..BatchLimits::default()
            },
            progress: None,
            freeze: false,
            include_startup: false,
            buckets: None,
            heap_points: series::MAX_POINTS,
            heap_steps: false,
            peak_at_mono_ns: None,
            peak_at_event: None,
            bucket_moments: None,
            all_class_lives: false,
        }
    }
}

struct Analyzer<'a> {
    capture: &'a Capture,
    progress: Option<ProgressFn>,
    totals: Totals,
    tables: Tables,
    replay: Replay,
    threads: Vec<ThreadStats>,
    /// Collecting the totals before the script's start (until it is seen).
    startup: Option<Startup>,
    /// Those totals, once the start was seen.
    startup_cut: Option<Startup>,
    /// File bytes decoded and not released yet.
    unreleased: Option<std::ops::Range<usize>>,
}

/// The totals of the events before a Python script's start, kept to be taken away from the
/// whole run's once the start is seen.
struct Startup {
    totals: Totals,
    threads: Vec<Totals>,
    events: u64,
    started: bool,
    sampling: Sampling,
}

/// A Python run's start-up is some ten thousand events: no start marker by this many events
/// means a run without one (a native program).
const STARTUP_EVENTS_MAX: u64 = 5_000_000;

impl Startup {
    /// Adds the events of `thread` before the script's start; true once it is seen.
    fn add(&mut self, thread: usize, events: &[Event]) {
        let start = events.iter().position(|e| {
            e.code() == code::MARKER && Marker::from_code(e.size) == Marker::ScriptStart
        });
        let before = &events[..start.unwrap_or(events.len())];
        let t = Totals::from_sampled(before, self.sampling);
        if let Some(slot) = self.threads.get_mut(thread) {
            slot.merge(t.clone());
        }
        self.totals.merge(t);
        self.events += before.len() as u64;
        self.started = start.is_some();
    }
}

impl Consumer for Analyzer<'_> {
    type Summary = Totals;

    fn summarize(chunk: &DecodedChunk) -> Totals {
        Totals::from_sampled(&chunk.events, chunk.sampling)
    }

    fn chunk_loaded(
        &mut self,
        thread: Option<usize>,
        tables: ChunkTables,
        summary: Option<Totals>,
    ) {
        if let Some(p) = &mut self.progress {
            p(Step::Done(1));
        }
        let name = self.tables.absorb(tables);
        let Some(t) = thread.and_then(|t| self.threads.get_mut(t)) else {
            return;
        };
        if let Some(name) = name {
            t.name = Some(String::from_utf8_lossy(&name).into_owned());
        }
        if let Some(s) = summary {
            t.allocs.merge(s.allocs);
            for (&stack, &sum) in &s.by_stack {
                t.by_stack.entry(stack).or_default().merge(sum);
            }
            self.totals.merge(s);
        }
    }

    fn events(&mut self, thread: usize, events: &[Event]) {
        if let Some(s) = &mut self.startup {
            s.add(thread, events);
            if s.started {
                let s = self.startup.take();
                self.startup_cut = s;
            } else if s.events > STARTUP_EVENTS_MAX {
                self.startup = None;
            }
        }
        self.replay.events(thread, events);
    }

    fn decoded(&mut self, range: std::ops::Range<usize>) {
        // Released a few chunks at a time: each release interrupts the other threads to flush
        // their address translations.
        const SPAN: usize = 1 << 20;
        let pending = match self.unreleased.take() {
            Some(p) => p.start.min(range.start)..p.end.max(range.end),
            None => range,
        };
        if pending.len() >= SPAN {
            self.release(pending);
        } else {
            self.unreleased = Some(pending);
        }
    }
}

impl Analyzer<'_> {
    /// Lets the file pages of decoded chunks go.
    fn release(&self, range: std::ops::Range<usize>) {
        // A page fault maps the pages around it too (64 KiB by default): release those with
        // the chunks, or they stay mapped once their own chunks are gone.
        const AROUND: usize = 64 << 10;
        self.capture
            .release(range.start.saturating_sub(AROUND)..range.end.saturating_add(AROUND));
    }
}

/// Reads the whole capture once.
pub fn analyze(capture: &Capture) -> Analysis {
    analyze_with(capture, BatchLimits::default())
}

/// Reads the whole capture once, decoding `limits` at a time.
pub fn analyze_with(capture: &Capture, limits: BatchLimits) -> Analysis {
    analyze_options(
        capture,
        Options {
            limits,
            ..Options::default()
        },
    )
}

/// Reads the whole capture once, as `options` say. Progress counts chunks.
pub fn analyze_options(capture: &Capture, options: Options) -> Analysis {
    let file = capture.bytes();
    // The scan brings in pages all over the file (the system maps neighbours of each page
    // read): let them go as it goes; decoding reads each chunk again once.
    let index = scan::scan_capture_releasing(capture, |upto| capture.release(0..upto));
    capture.release(0..file.len());
    let clock = Clock::new(&capture.header, index.latest_pair);
    let mut progress = options.progress;
    if let Some(p) = &mut progress {
        p(Step::Total(index.chunks.len() as u64));
    }
    let limits = options.limits;
    let mut analyzer = Analyzer {
        capture,
        progress,
        totals: Totals::default(),
        tables: Tables::default(),
        replay: {
            let mut r = Replay::with_temporary(options.temporary);
            r.include_startup = options.include_startup;
            r.buckets = options.buckets.map(|n| {
                let first = index.chunks.iter().map(|c| c.first_tick).min().unwrap_or(0);
                let last = index.chunks.iter().map(|c| c.last_tick).max().unwrap_or(0);
                buckets::Buckets::new(n, first, last)
            });
            // The last tick of a moment: a family's moments are event times floored to the
            // nanosecond (family::combined), so every tick of that nanosecond is in.
            let start = capture.header.start_mono_ns as f64;
            let last_tick_of = |ns: u64| clock.tick_at(ns as f64 + 1.0 - start);
            if let Some(g) = &options.bucket_moments {
                let tick = |ns: u64| clock.tick_at(ns as f64 - start);
                let t0 = tick(g.start_mono_ns);
                let width = tick(g.start_mono_ns + g.width_ns).saturating_sub(t0);
                let moments = g.moments_mono_ns.iter().map(|&m| last_tick_of(m)).collect();
                r.buckets = Some(buckets::Buckets::at_moments(t0, width, moments));
            }
            r.heap_series = if options.heap_steps {
                series::Series::steps(options.heap_points)
            } else {
                series::Series::with_capacity(options.heap_points)
            };
            r.peak_at = options.peak_at_mono_ns.map(last_tick_of);
            r.peak_at_event = options.peak_at_event;
            r.sampling = index.settings.sampling();
            r.all_class_lives = options.all_class_lives;
            r
        },
        threads: index
            .threads
            .iter()
            .map(|t| ThreadStats {
                serial: t.serial,
                tid: t.tid,
                name: None,
                allocs: Sum::default(),
                by_stack: HashMap::new(),
            })
            .collect(),
        startup: (!options.include_startup).then(|| Startup {
            totals: Totals::default(),
            threads: vec![Totals::default(); index.threads.len()],
            events: 0,
            started: false,
            sampling: index.settings.sampling(),
        }),
        startup_cut: None,
        unreleased: None,
    };
    let report = stream::run(file, &index, &mut analyzer, limits);
    if let Some(rest) = analyzer.unreleased.take() {
        analyzer.release(rest);
    }
    if let Some(cut) = analyzer.startup_cut.take() {
        analyzer.totals.subtract(&cut.totals);
        for (t, before) in analyzer.threads.iter_mut().zip(&cut.threads) {
            t.allocs.subtract(before.allocs);
            totals::subtract_by_stack(&mut t.by_stack, &before.by_stack);
        }
    }
    analyzer.replay.finish_peak_at(report.last_tick);
    let mut last_tick = report.last_tick;
    let mut aggregate_warnings: Vec<String> = Vec::new();
    if index.settings.aggregate {
        let (sums, w) = crate::capture::aggregate::read(file, &index);
        let python = analyzer.replay.script_start.is_some();
        aggregate_warnings.push(aggregated::note(python));
        aggregate_warnings.extend(w);
        match sums {
            Some(a) => {
                // Killed (no final snapshot): the figures stop at the last one written.
                if a.head.flags & memtrace_format::aggregate::flags::FINAL == 0 {
                    aggregate_warnings.push(aggregated::cut_short(clock.seconds(a.head.tick)));
                }
                let t = aggregated::apply(
                    &a,
                    &mut analyzer.totals,
                    &mut analyzer.replay,
                    &mut analyzer.threads,
                    options.heap_points,
                    index.settings.sample_bytes > 0,
                );
                last_tick = Some(last_tick.map_or(t, |l| l.max(t)));
            }
            None => aggregate_warnings.push(
                "aggregated capture without a snapshot: the run ended (or was killed) before the first one was written"
                    .to_string(),
            ),
        }
    }
    if let Some(p) = &mut analyzer.progress {
        p(Step::Finished);
    }
    let buckets = analyzer.replay.buckets.take().map(buckets::Buckets::finish);
    let types = {
        let exit = analyzer.replay.exit;
        let (bytes, allocations) = match exit {
            Some(e) => (e.bytes, e.allocations),
            None => (
                analyzer.replay.live_bytes(),
                analyzer.replay.live_allocations(),
            ),
        };
        objects::exit_types(&analyzer.replay, &analyzer.tables, bytes, allocations)
    };
    let peak_types = objects::peak_types(
        &analyzer.replay,
        &analyzer.tables,
        types.as_ref(),
        analyzer.replay.peak,
    );
    if options.freeze {
        analyzer.replay.freeze();
    }
    // Records in chunks that turned out damaged are not in the figures: the capture is not
    // complete (the scan counted them from the chunks' headers).
    let mut index = index;
    index.records_found = index.records_found.saturating_sub(report.lost_records);
    index.records_damaged = report.lost_records;
    index.chunks_damaged += report.damaged_chunks;
    let mut warnings = index.warnings.clone();
    warnings.extend(attached::note(
        capture.header.options,
        capture.header.start_realtime_ns,
    ));
    warnings.extend(report.warnings);
    if report.lost_records > 0 {
        warnings.push(format!(
            "{} event records in damaged chunks could not be read: the figures leave them out (a lost free leaves its block live: the live and peak figures may be too high)",
            report.lost_records
        ));
    }
    warnings.extend(aggregate_warnings);
    if clock.guessed && report.events > 0 {
        warnings.push(
            "the capture has no clock reference besides its start: times assume a 3 GHz time-stamp counter"
                .to_string(),
        );
    }
    Analysis {
        index,
        clock,
        totals: analyzer.totals,
        replay: analyzer.replay,
        tables: analyzer.tables,
        threads: analyzer.threads,
        types,
        peak_types,
        last_tick,
        buckets,
        warnings,
    }
}
