//! The data the interactive page embeds, bounded whatever the capture: the stacks that matter
//! (the others of each thread merged into one "other" stack, its share shown), their frames,
//! and for each (stack, thread) its bytes at the peak, at exit, in temporary allocations, in
//! every allocation, and what was live at each time bucket's high-water mark by bucket of
//! allocation ([`crate::analysis::buckets`]). The page's script computes every view from it.

use super::callers::Callers;
use crate::analysis::buckets::{BucketData, Change};
use crate::analysis::sets::AllocSet;
use crate::analysis::tables::{Frame, FrameView, Tables, MAX_DEPTH};
use crate::analysis::totals::Sum;
use crate::analysis::Analysis;
use crate::capture::Capture;
use crate::report::locations::{self, UNKNOWN};
use crate::report::views::{thread_label, View};
use crate::symbols::modules::ModuleMap;
use crate::symbols::{LoaderCache, Symbolizer};
use hashbrown::HashMap;
use memtrace_format::Allocator;
use serde::Serialize;
use std::collections::BTreeMap;

/// The number of time buckets the page can select.
pub const BUCKETS: usize = 200;

/// At most this many values of the time buckets in the page (about 20 bytes each): the stacks
/// are kept, largest first, until they are used up.
pub const CHANGE_BUDGET: usize = 400_000;

/// At most this many (stack, thread) groups of their own.
pub const MAX_GROUPS: usize = 4_000;

/// A group smaller than this share of every view and of every bucket goes into "other".
pub const MIN_SHARE: f64 = 0.001;

/// At most this many "other" frames under the callers of the merged groups
/// ([`super::callers`]); the deepest caller chain an "other" frame hangs under.
const MAX_OTHERS: usize = 1_000;
const MAX_OTHER_DEPTH: usize = 128;

/// Frame kinds, for the page's filters.
pub mod kind {
    /// A Python frame.
    pub const PYTHON: u8 = 0;
    /// A native frame of the program or a library.
    pub const NATIVE: u8 = 1;
    /// A native frame of the Python interpreter itself (libpython, the evaluation loop).
    pub const INTERPRETER: u8 = 2;
    /// A Python frame of the import machinery (`<frozen importlib._bootstrap>` and the like).
    pub const IMPORT: u8 = 3;
    /// `<unknown>`: a stack with no frame.
    pub const UNKNOWN: u8 = 4;
    /// The merged small stacks.
    pub const OTHER: u8 = 5;
}

/// What `<unknown>` stands for, shown on hover.
pub const UNKNOWN_HELP: &str = "Allocations with no frame recorded: made before the tracked program's first frame (the interpreter or the loader starting up, or exiting), or by native code when the capture has no native stacks (run with --native to see them).";

/// The name of the stack that gathers small ones.
pub const OTHER: &str = "other (small stacks)";

#[derive(Serialize)]
pub struct PageData {
    pub meta: Meta,
    pub buckets: Buckets,
    /// The live heap over time, downsampled (seconds, bytes).
    pub heap: Vec<(f64, u64)>,
    /// The resident size over time, when sampled.
    pub rss: Vec<(f64, u64)>,
    /// Thread labels by thread index.
    pub threads: Vec<String>,
    /// [name, kind, file, line, source line].
    pub frames: Vec<(String, u8, String, u64, String)>,
    /// Frame indexes, outermost first.
    pub stacks: Vec<Vec<u32>>,
    pub groups: Vec<Group>,
    /// How many (stack, thread) groups went into "other".
    pub merged: usize,
    /// The view, inversion and threads the command line asked for.
    pub initial: Initial,
    /// A Python run's object types (null without): the "by type" section.
    pub types: Option<PageTypes>,
}

/// The page's "by type" section: what was live at the peak and at exit by type, each type
/// with the lines that allocated its objects (report::by_type).
#[derive(Serialize)]
pub struct PageTypes {
    /// What is covered (report::types's words).
    pub covered: &'static str,
    /// Null for a capture without typed frees.
    pub peak: Option<Vec<crate::report::by_type::TypeGroup>>,
    pub exit: Vec<crate::report::by_type::TypeGroup>,
}

/// The types of a capture, for the page; the lines of each type are cut at `MAX_TYPE_LINES`.
fn page_types(capture: &Capture, analysis: &Analysis) -> Option<PageTypes> {
    const MAX_TYPE_LINES: usize = 20;
    const MAX_TYPES: usize = 50;
    use crate::report::by_type::groups_of;
    let cut = |mut groups: Vec<crate::report::by_type::TypeGroup>| {
        groups.truncate(MAX_TYPES);
        for g in &mut groups {
            g.lines.truncate(MAX_TYPE_LINES);
        }
        groups
    };
    let exit = analysis.types.as_ref()?;
    let peak = analysis
        .peak_types
        .as_ref()
        .map(|t| cut(groups_of(capture, analysis, t)));
    Some(PageTypes {
        covered: crate::report::types::coverage(analysis, capture.header.options),
        peak,
        exit: cut(groups_of(capture, analysis, exit)),
    })
}

#[derive(Serialize)]
pub struct Meta {
    pub path: String,
    pub command: String,
    pub python: Option<String>,
    pub mode: String,
    pub duration_s: f64,
    pub peak: u64,
    pub peak_allocations: u64,
    pub peak_at_s: f64,
    pub total_bytes: u64,
    pub total_allocations: u64,
    pub leaked: u64,
    pub leaked_allocations: u64,
    pub exit_snapshot: bool,
    pub temporary_threshold: usize,
    pub unknown_help: &'static str,
    /// Allocator names by bit.
    pub allocators: Vec<&'static str>,
    pub version: &'static str,
    pub warnings: Vec<String>,
    /// An aggregated capture (`memtrace run --aggregate`): sums per stack and thread, so no
    /// temporary allocations and nothing live at a moment of the page's choosing.
    pub aggregated: bool,
    /// The cgroup v2 memory limit the process ran under (bytes), drawn on the chart.
    pub memory_limit: Option<u64>,
}

#[derive(Serialize)]
pub struct Buckets {
    pub t0_s: f64,
    pub width_s: f64,
    /// The first bucket after the script's start.
    pub first: usize,
    /// Each bucket's high-water mark, bytes.
    pub hwm: Vec<u64>,
    /// When it was reached, seconds.
    pub at_s: Vec<f64>,
}

#[derive(Serialize)]
pub struct Initial {
    pub view: &'static str,
    pub inverted: bool,
    pub split_threads: bool,
    /// The thread index `--thread` named.
    pub thread: Option<u32>,
}

/// One (stack, thread): `[bytes, allocations]` in each view; `live`: per bucket of
/// allocation, `[bucket, then (snapshot, bytes, allocations) where the value changed]`.
#[derive(Serialize)]
pub struct Group {
    pub s: u32,
    /// Thread index, or -1 for "other" of every thread.
    pub t: i64,
    pub peak: [u64; 2],
    pub leak: [u64; 2],
    pub temp: [u64; 2],
    pub all: [u64; 2],
    /// The allocators of the group's allocations: bit `Allocator as u8` ([`Meta::allocators`]).
    pub a: u16,
    pub live: Vec<Vec<u64>>,
}

/// What the page starts with.
pub struct Start {
    pub view: View,
    pub inverted: bool,
    pub split_threads: bool,
    pub thread: Option<u32>,
}

#[derive(Default)]
struct Acc {
    peak: Sum,
    leak: Sum,
    temp: Sum,
    all: Sum,
    /// Per bucket of allocation, its changes.
    live: BTreeMap<u32, Vec<Change>>,
    score: f64,
    changes: usize,
    allocators: u16,
}

/// The most bytes of embedded data: the groups kept are cut until it fits (deep stacks with
/// long names can outweigh the estimate of [`CHANGE_BUDGET`]).
pub const DATA_LIMIT: usize = 9 << 20;

/// The page's data from a capture read with [`crate::analysis::Options::buckets`] and the
/// temporary allocations, as JSON safe in a `<script>` ([`to_script_json`]), at most
/// [`DATA_LIMIT`] bytes but for a pathological capture.
pub fn build_json(capture: &Capture, analysis: &Analysis, start: &Start) -> String {
    let mut max_groups = MAX_GROUPS;
    // Each try resolves the same modules.
    let symbols = LoaderCache::default();
    loop {
        let (data, kept) = build(capture, analysis, start, max_groups, &symbols);
        let json = to_script_json(&data);
        if json.len() <= DATA_LIMIT || kept == 0 {
            return json;
        }
        max_groups = fewer_groups(kept);
    }
}

/// The groups to keep at most next time, when `kept` made data too large: fewer each time
/// (it was the groups less the threads' "other" groups, which are not always one a thread:
/// the count stayed put and a family's page never finished).
pub fn fewer_groups(kept: usize) -> usize {
    kept * 7 / 10
}

/// The page's data, keeping at most `max_groups` (stack, thread) groups of their own, and
/// how many it kept of their own (those besides the "other" groups); native frames resolved
/// with the debug data in `symbols`.
pub fn build(
    capture: &Capture,
    analysis: &Analysis,
    start: &Start,
    max_groups: usize,
    symbols: &LoaderCache,
) -> (PageData, usize) {
    let empty = BucketData::default();
    let bd = analysis.buckets.as_ref().unwrap_or(&empty);
    let mut groups: HashMap<(u64, u32), Acc> = HashMap::new();
    let mut add_set = |set: &AllocSet, f: fn(&mut Acc) -> &mut Sum| {
        for (&k, &s) in &set.groups {
            f(groups.entry(k).or_default()).merge(s);
        }
    };
    let peak_set = analysis.replay.peak_set();
    let exit_set = analysis.replay.exit_set();
    add_set(&peak_set, |a| &mut a.peak);
    add_set(&exit_set, |a| &mut a.leak);
    if let Some(t) = &analysis.replay.temporary {
        add_set(&t.set, |a| &mut a.temp);
    }
    add_set(&analysis.all_set(), |a| &mut a.all);
    for ((stack, _), acc) in groups.iter_mut() {
        acc.allocators = bd.allocators.get(stack).copied().unwrap_or(0);
    }
    for ((stack, thread, a), h) in &bd.histories {
        let acc = groups.entry((*stack, *thread)).or_default();
        acc.changes += h.len() + 1;
        acc.live.insert(*a, h.clone());
    }
    // Each group's largest share of a view or of a bucket.
    let totals = |f: fn(&Acc) -> u64| groups.values().map(f).sum::<u64>().max(1) as f64;
    let (tp, tl, tt, ta) = (
        totals(|a| a.peak.bytes),
        totals(|a| a.leak.bytes),
        totals(|a| a.temp.bytes),
        totals(|a| a.all.bytes),
    );
    let floor = (analysis.replay.peak.bytes / 100).max(1);
    let scale: Vec<f64> = bd.maxes.iter().map(|m| m.1.max(floor) as f64).collect();
    for acc in groups.values_mut() {
        let mut score = (acc.peak.bytes as f64 / tp)
            .max(acc.leak.bytes as f64 / tl)
            .max(acc.temp.bytes as f64 / tt)
            .max(acc.all.bytes as f64 / ta);
        for (b, v) in series(&acc.live) {
            if let Some(s) = scale.get(b as usize) {
                score = score.max(v as f64 / s);
            }
        }
        acc.score = score;
    }
    let mut order: Vec<((u64, u32), Acc)> = groups.into_iter().collect();
    order.sort_by(|a, b| b.1.score.total_cmp(&a.1.score).then(a.0.cmp(&b.0)));
    let mut kept: Vec<((u64, u32), Acc)> = Vec::new();
    let mut left: Vec<((u64, u32), Acc)> = Vec::new();
    let mut used = 0usize;
    for (key, acc) in order {
        if acc.score >= MIN_SHARE
            && kept.len() < max_groups
            && used + acc.changes <= CHANGE_BUDGET * 9 / 10
        {
            used += acc.changes;
            kept.push((key, acc));
        } else {
            left.push((key, acc));
        }
    }
    let merged = left.len();
    let totals = [tp, tl, tt, ta];
    let mut other_groups = others(&analysis.tables, left, totals, CHANGE_BUDGET - used);
    // Of every thread at once at the root when that would not fit.
    let other_changes: usize = other_groups.iter().map(|g| g.3.changes).sum();
    if used + other_changes > CHANGE_BUDGET && other_groups.len() > 1 {
        let all = merge(other_groups.into_iter().map(|g| g.3).collect());
        other_groups = vec![(Vec::new(), Tail::Other, -1, all)];
    }
    let own_groups = kept.len();
    let mut frames = Frames::new(capture, analysis, symbols);
    let mut out_groups = Vec::with_capacity(kept.len() + other_groups.len());
    for ((stack, thread), acc) in &kept {
        let s = frames.stack(*stack);
        out_groups.push(group(s, *thread as i64, acc));
    }
    for (chain, tail, t, acc) in &other_groups {
        let s = frames.other_under(chain, *tail);
        out_groups.push(group(s, *t, acc));
    }
    let clock = &analysis.clock;
    let seconds = |tick: u64| clock.seconds(tick).max(0.0);
    let buckets = Buckets {
        t0_s: seconds(bd.t0),
        width_s: clock.seconds(bd.t0 + bd.width) - clock.seconds(bd.t0),
        first: bd.first,
        hwm: bd.maxes.iter().map(|m| m.1).collect(),
        at_s: bd.maxes.iter().map(|m| seconds(m.0)).collect(),
    };
    let leaked = analysis.leaked();
    let argv = capture.argv();
    let native = capture.header.options & memtrace_format::options::NATIVE != 0;
    let data = PageData {
        meta: Meta {
            path: visible(&capture.path().display().to_string()),
            command: visible(&argv.join(" ")),
            python: crate::capture::python_version::of_capture(capture, analysis),
            mode: mode(
                native,
                analysis.index.settings.sample_bytes,
                analysis.index.settings.aggregate,
            ),
            duration_s: analysis.duration_s(),
            peak: analysis.replay.peak.bytes,
            peak_allocations: analysis.replay.peak.allocations,
            peak_at_s: analysis.replay.peak.tick.map_or(0.0, seconds),
            total_bytes: analysis.totals.allocs.bytes,
            total_allocations: analysis.totals.allocs.count,
            leaked: leaked.bytes,
            leaked_allocations: leaked.allocations,
            exit_snapshot: analysis.replay.exit.is_some(),
            temporary_threshold: analysis
                .replay
                .temporary
                .as_ref()
                .map_or(1, |t| t.threshold()),
            unknown_help: UNKNOWN_HELP,
            allocators: Allocator::ALL.iter().map(|a| a.name()).collect(),
            version: env!("CARGO_PKG_VERSION"),
            warnings: analysis.warnings.clone(),
            aggregated: analysis.index.settings.aggregate,
            memory_limit: Some(analysis.index.settings.memory_limit).filter(|&l| l > 0),
        },
        buckets,
        heap: downsample(&super::page::heap_line(analysis)),
        rss: downsample(&super::page::seconds(
            analysis,
            &analysis.replay.resident_series,
        )),
        threads: analysis
            .threads
            .iter()
            .map(|t| visible(&thread_label(t)))
            .collect(),
        frames: frames.table,
        stacks: frames.stacks,
        groups: out_groups,
        merged,
        initial: Initial {
            view: match start.view {
                View::All => "all",
                View::Peak => "peak",
                View::Leaks => "leaks",
                View::Temporary => "temporary",
            },
            inverted: start.inverted,
            split_threads: start.split_threads,
            thread: start.thread,
        },
        types: page_types(capture, analysis),
    };
    (data, own_groups)
}

/// What an "other" frame of merged groups has below it on the page.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Tail {
    /// Nothing: the merged groups' own frames are too small to show.
    Other,
    /// The innermost frame (frame id) the merged groups share, when that location holds a
    /// share of some view: a line reached from thousands of small stacks (callers, recursion
    /// depths) is still a location of its own in the table, the search and the inverted view.
    OtherThen(u64),
    /// No "other" frame: the caller chain is the groups' whole stack.
    Whole,
}

/// The groups not kept on their own, merged under their callers ([`super::callers`]): (the
/// caller chain's frame ids, what comes below it, the thread, the merged sums). The chains
/// are cut higher until at most [`MAX_OTHERS`] of them and `room` values of the time buckets
/// are used; at worst each thread's merged groups sit at its root.
fn others(
    tables: &Tables,
    left: Vec<((u64, u32), Acc)>,
    totals: [f64; 4],
    room: usize,
) -> Vec<(Vec<u64>, Tail, i64, Acc)> {
    let mut callers = Callers::new(MAX_OTHER_DEPTH);
    if tables.frame_view == FrameView::Merged {
        // At most every stack id of the table, once per thread that uses it: mostly once.
        let max_id = tables.stacks.keys().copied().max().unwrap_or(0);
        callers.reserve(
            tables.stacks.len().min(left.len() * MAX_OTHER_DEPTH),
            max_id,
        );
    }
    // Each group's innermost frame id (None: no frame), and the views' bytes of each.
    let mut leaves: Vec<Option<u64>> = Vec::with_capacity(left.len());
    let mut by_leaf: HashMap<u64, [u64; 4]> = HashMap::new();
    for ((stack, thread), acc) in &left {
        let views = [
            acc.peak.bytes,
            acc.leak.bytes,
            acc.temp.bytes,
            acc.all.bytes,
        ];
        let leaf = if tables.frame_view == FrameView::Merged {
            // Every frame shown: the stack table's chains are the callers.
            let link = |id: u64| tables.stacks.get(&id).copied();
            callers.add_stack(*thread, *stack, views, MAX_DEPTH, link);
            tables.stacks.get(stack).map(|&(_, frame)| frame)
        } else {
            let frames = tables.shown_frame_ids(*stack);
            callers.add_frames(*thread, &frames, views);
            frames.last().copied()
        };
        if let Some(l) = leaf {
            let sum = by_leaf.entry(l).or_default();
            for (s, v) in sum.iter_mut().zip(views) {
                *s += v;
            }
        }
        leaves.push(leaf);
    }
    let shown_leaf = |leaf: Option<u64>| {
        leaf.filter(|l| {
            by_leaf
                .get(l)
                .is_some_and(|v| (0..4).any(|i| v[i] as f64 / totals[i] >= MIN_SHARE))
        })
    };
    let mut threshold = MIN_SHARE;
    let cuts = loop {
        let cuts = callers.cuts(totals, threshold);
        let keys: Vec<(u32, Tail)> = cuts.iter().map(|&n| (n, Tail::Other)).collect();
        let fits = merged_values(&keys, &left) <= room
            && cuts.iter().collect::<hashbrown::HashSet<_>>().len() <= MAX_OTHERS;
        // Above 1, no caller qualifies: the thread's root.
        if fits || threshold > 1.0 {
            break cuts;
        }
        threshold *= 4.0;
    };
    let tail = |i: usize, n: u32, keep_leaf: bool| match shown_leaf(leaves[i]) {
        _ if callers.is_whole(i, n) => Tail::Whole,
        Some(l) if keep_leaf => Tail::OtherThen(l),
        _ => Tail::Other,
    };
    let mut keys: Vec<(u32, Tail)> = cuts
        .iter()
        .enumerate()
        .map(|(i, &n)| (n, tail(i, n, true)))
        .collect();
    // The locations kept below "other" split its values: without them when they do not fit.
    if merged_values(&keys, &left) > room {
        keys = cuts
            .iter()
            .enumerate()
            .map(|(i, &n)| (n, tail(i, n, false)))
            .collect();
    }
    let mut by_key: BTreeMap<(u32, Tail), (i64, Vec<Acc>)> = BTreeMap::new();
    for (key, ((_, thread), acc)) in keys.into_iter().zip(left) {
        by_key
            .entry(key)
            .or_insert((thread as i64, Vec::new()))
            .1
            .push(acc);
    }
    by_key
        .into_iter()
        .map(|((n, tail), (thread, accs))| (callers.chain(n), tail, thread, merge(accs)))
        .collect()
}

/// The values of the time buckets the groups `left` take once merged at their `cuts`: per
/// "other" group, a history per bucket of allocation and a value per bucket where it changes,
/// at most one per (bucket of allocation, bucket) whatever the groups merged there ([`merge`]).
/// (Summing the groups' own counts gave the same total at every cut: past the room, every
/// group went to the thread's root.)
fn merged_values(keys: &[(u32, Tail)], left: &[((u64, u32), Acc)]) -> usize {
    let mut histories: hashbrown::HashSet<((u32, Tail), u32)> = hashbrown::HashSet::new();
    let mut values: hashbrown::HashSet<((u32, Tail), u32, u32)> = hashbrown::HashSet::new();
    for (&n, (_, acc)) in keys.iter().zip(left) {
        for (&a, h) in &acc.live {
            histories.insert((n, a));
            values.extend(h.iter().map(|&(b, _, _)| (n, a, b)));
        }
    }
    histories.len() + values.len()
}

fn downsample(points: &[(f64, u64)]) -> Vec<(f64, u64)> {
    super::timeline::downsample(points, super::timeline::MAX_POINTS)
}

fn group(s: u32, t: i64, acc: &Acc) -> Group {
    let pair = |s: Sum| [s.bytes, s.count];
    Group {
        s,
        t,
        peak: pair(acc.peak),
        leak: pair(acc.leak),
        temp: pair(acc.temp),
        all: pair(acc.all),
        a: acc.allocators,
        live: acc
            .live
            .iter()
            .map(|(&a, h)| {
                let mut v = Vec::with_capacity(1 + 3 * h.len());
                v.push(a as u64);
                for &(b, bytes, count) in h {
                    v.extend([b as u64, bytes, count]);
                }
                v
            })
            .collect(),
    }
}

/// A group's live bytes at each snapshot where it changed (its buckets of allocation added).
fn series(live: &BTreeMap<u32, Vec<Change>>) -> Vec<(u32, u64)> {
    let mut deltas: BTreeMap<u32, i64> = BTreeMap::new();
    for h in live.values() {
        let mut prev = 0i64;
        for &(b, bytes, _) in h {
            *deltas.entry(b).or_default() += bytes as i64 - prev;
            prev = bytes as i64;
        }
    }
    let mut v = 0i64;
    deltas
        .into_iter()
        .map(|(b, d)| {
            v += d;
            (b, v.max(0) as u64)
        })
        .collect()
}

/// Several groups as one: sums, and the step functions of each bucket of allocation added.
fn merge(accs: Vec<Acc>) -> Acc {
    let mut out = Acc::default();
    let mut deltas: BTreeMap<(u32, u32), (i64, i64)> = BTreeMap::new();
    for acc in accs {
        out.peak.merge(acc.peak);
        out.leak.merge(acc.leak);
        out.temp.merge(acc.temp);
        out.all.merge(acc.all);
        out.allocators |= acc.allocators;
        for (a, h) in acc.live {
            let mut prev = (0i64, 0i64);
            for (b, bytes, count) in h {
                let d = deltas.entry((a, b)).or_default();
                d.0 += bytes as i64 - prev.0;
                d.1 += count as i64 - prev.1;
                prev = (bytes as i64, count as i64);
            }
        }
    }
    let mut current: Option<(u32, (i64, i64))> = None;
    for ((a, b), (db, dc)) in deltas {
        let v = match &mut current {
            Some((ca, v)) if *ca == a => v,
            _ => {
                current = Some((a, (0, 0)));
                &mut current.as_mut().expect("just set").1
            }
        };
        v.0 += db;
        v.1 += dc;
        let value = (b, v.0.max(0) as u64, v.1.max(0) as u64);
        let h = out.live.entry(a).or_default();
        if h.last().map(|l| (l.1, l.2)) != Some((value.1, value.2)) {
            h.push(value);
        }
    }
    out.changes = out.live.values().map(|h| h.len() + 1).sum();
    out
}

/// The frames table, each frame once, and the stacks as frame indexes.
struct Frames<'a> {
    analysis: &'a Analysis,
    symbolizer: Symbolizer,
    table: Vec<(String, u8, String, u64, String)>,
    index: HashMap<(String, u8), u32>,
    /// A frame id's frame indexes, innermost first.
    resolved: HashMap<u64, Vec<u32>>,
    stacks: Vec<Vec<u32>>,
    stack_index: HashMap<u64, u32>,
    sources: HashMap<String, Option<Vec<String>>>,
    exe: String,
}

impl<'a> Frames<'a> {
    fn new(capture: &Capture, analysis: &'a Analysis, symbols: &LoaderCache) -> Frames<'a> {
        let map = ModuleMap::new(analysis.tables.modules.clone(), &capture.header.exe);
        Frames {
            analysis,
            symbolizer: Symbolizer::with_cache(map, symbols.clone()),
            table: Vec::new(),
            index: HashMap::new(),
            resolved: HashMap::new(),
            stacks: Vec::new(),
            stack_index: HashMap::new(),
            sources: HashMap::new(),
            exe: basename(&String::from_utf8_lossy(&capture.header.exe)).to_string(),
        }
    }

    fn intern(&mut self, name: String, kind: u8, file: Option<&str>, line: Option<u64>) -> u32 {
        if let Some(&i) = self.index.get(&(name.clone(), kind)) {
            return i;
        }
        let src = match (kind, file, line) {
            (kind::PYTHON | kind::IMPORT, Some(f), Some(l)) => self.source(f, l),
            _ => String::new(),
        };
        self.table.push((
            visible(&name),
            kind,
            visible(file.unwrap_or_default()),
            line.unwrap_or(0),
            visible(&src),
        ));
        let i = (self.table.len() - 1) as u32;
        self.index.insert((name, kind), i);
        i
    }

    /// Line `line` of a source file, read once per file (empty when unreadable).
    fn source(&mut self, file: &str, line: u64) -> String {
        let lines = self.sources.entry(file.to_string()).or_insert_with(|| {
            // Not a source file to read whole (a FIFO, a device, a huge generated file): none.
            let text = crate::report::source_file::read(std::path::Path::new(file))?;
            Some(crate::report::source_file::lines(&text))
        });
        let Some(lines) = lines else {
            return String::new();
        };
        let text = lines
            .get((line as usize).wrapping_sub(1))
            .map(|l| l.trim())
            .unwrap_or_default();
        text.chars().take(240).collect()
    }

    /// The page's index of a stack: the frames of the caller chain `chain` (frame ids,
    /// outermost first), then "other" and what `tail` keeps below it.
    fn other_under(&mut self, chain: &[u64], tail: Tail) -> u32 {
        let mut out = self.resolve(chain);
        match tail {
            Tail::Whole if !out.is_empty() => {}
            Tail::OtherThen(leaf) => {
                out.push(self.intern(OTHER.to_string(), kind::OTHER, None, None));
                out.extend(self.resolve(&[leaf]));
            }
            _ => out.push(self.intern(OTHER.to_string(), kind::OTHER, None, None)),
        }
        self.stacks.push(out);
        (self.stacks.len() - 1) as u32
    }

    /// The page's index of a stack.
    fn stack(&mut self, stack: u64) -> u32 {
        if let Some(&i) = self.stack_index.get(&stack) {
            return i;
        }
        let ids = self.analysis.tables.shown_frame_ids(stack);
        let mut out = self.resolve(&ids);
        if out.is_empty() {
            out.push(self.intern(UNKNOWN.to_string(), kind::UNKNOWN, None, None));
        }
        self.stacks.push(out);
        let i = (self.stacks.len() - 1) as u32;
        self.stack_index.insert(stack, i);
        i
    }

    /// The frames of frame ids `ids` (outermost first), inlined functions expanded.
    fn resolve(&mut self, ids: &[u64]) -> Vec<u32> {
        let mut out: Vec<u32> = Vec::with_capacity(ids.len());
        for &id in ids {
            let frames = match self.resolved.get(&id) {
                Some(f) => f.clone(),
                None => {
                    let f = self.frame(id);
                    self.resolved.insert(id, f.clone());
                    f
                }
            };
            out.extend(frames.iter().rev());
        }
        out
    }

    /// A frame id's frames, innermost first (inlined functions expanded).
    fn frame(&mut self, id: u64) -> Vec<u32> {
        let tables = &self.analysis.tables;
        let Some(&frame) = tables.frames.get(&id) else {
            return vec![self.intern(UNKNOWN.to_string(), kind::UNKNOWN, None, None)];
        };
        let locs = locations::resolve_all(frame, tables, &mut self.symbolizer);
        let k = match frame {
            Frame::Python { .. } => {
                let file = locs.first().and_then(|l| l.file.as_deref()).unwrap_or("");
                if is_import_machinery(file) {
                    kind::IMPORT
                } else {
                    kind::PYTHON
                }
            }
            Frame::Native(addr) => {
                let module = self.symbolizer.resolve(addr).module.clone();
                let function = locs.first().and_then(|l| l.function.clone());
                if is_interpreter(module.as_deref(), function.as_deref(), &self.exe) {
                    kind::INTERPRETER
                } else {
                    kind::NATIVE
                }
            }
        };
        locs.into_iter()
            .map(|l| self.intern(l.label, k, l.file.as_deref(), l.line))
            .collect()
    }
}

/// Python's import system: `<frozen importlib._bootstrap>`, `<frozen
/// importlib._bootstrap_external>`, `<frozen zipimport>`, and importlib's own files.
pub fn is_import_machinery(file: &str) -> bool {
    file.starts_with("<frozen importlib")
        || file.starts_with("<frozen zipimport")
        || file.contains("/importlib/_bootstrap")
}

/// A native frame of the interpreter: in libpython or the python executable, or its
/// evaluation loop.
pub fn is_interpreter(module: Option<&str>, function: Option<&str>, exe: &str) -> bool {
    if function.is_some_and(|f| f.starts_with("_PyEval_") || f.starts_with("_PyFunction_")) {
        return true;
    }
    let Some(m) = module.map(basename) else {
        return false;
    };
    m.starts_with("libpython") || (m.starts_with("python") && (m == exe || exe.is_empty()))
}

/// A name from the capture with its control and bidirectional characters shown as escapes
/// (`\x1b`, `\u{202e}`), as every report shows them.
fn visible(s: &str) -> String {
    crate::report::visible::escape(s).into_owned()
}

fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// The data as JSON that is safe inside a `<script>` element: `<` never appears as such (so
/// neither `</script>` nor `<!--` can end or change the element).
pub fn to_script_json(data: &PageData) -> String {
    let json = serde_json::to_string(data).unwrap_or_else(|_| "{}".to_string());
    json.replace('<', "\\u003c")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

/// How the capture was recorded, for the page's summary: full or sampled (`run
/// --sample-bytes N`: figures are estimates), with native stacks or not.
fn mode(native: bool, sample_bytes: u64, aggregated: bool) -> String {
    let base = match (sample_bytes, aggregated) {
        (0, false) => "full".to_string(),
        (0, true) => "aggregated (sums per stack and thread)".to_string(),
        (n, aggregated) => format!(
            "{}sampled every {} (estimates)",
            if aggregated { "aggregated, " } else { "" },
            crate::report::human::size(n)
        ),
    };
    if native {
        format!("{base}, --native")
    } else {
        base
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mode_names_sampling_and_native_stacks() {
        assert_eq!(mode(false, 0, false), "full");
        assert_eq!(
            mode(false, 0, true),
            "aggregated (sums per stack and thread)"
        );
        assert_eq!(mode(true, 0, false), "full, --native");
        assert_eq!(
            mode(false, 512 * 1024, false),
            "sampled every 512.0 KiB (estimates)"
        );
        assert_eq!(
            mode(true, 4096, false),
            "sampled every 4.0 KiB (estimates), --native"
        );
    }

    #[test]
    fn merged_groups_add_up_at_every_snapshot() {
        let mut a = Acc::default();
        a.live.insert(0, vec![(0, 100, 1), (3, 40, 1), (5, 0, 0)]);
        a.peak = Sum {
            count: 1,
            bytes: 100,
        };
        let mut b = Acc::default();
        b.live.insert(0, vec![(2, 10, 2)]);
        b.live.insert(4, vec![(4, 7, 1)]);
        let m = merge(vec![a, b]);
        assert_eq!(m.peak.bytes, 100);
        assert_eq!(
            m.live[&0],
            vec![(0, 100, 1), (2, 110, 3), (3, 50, 3), (5, 10, 2)]
        );
        assert_eq!(m.live[&4], vec![(4, 7, 1)]);
        assert_eq!(
            series(&m.live),
            vec![(0, 100), (2, 110), (3, 50), (4, 57), (5, 17)]
        );
    }

    #[test]
    fn frame_kinds() {
        assert!(is_import_machinery("<frozen importlib._bootstrap>"));
        assert!(is_import_machinery(
            "<frozen importlib._bootstrap_external>"
        ));
        assert!(!is_import_machinery("/app/main.py"));
        assert!(is_interpreter(
            Some("/usr/lib/libpython3.12.so.1.0"),
            Some("PyList_Append"),
            "python3"
        ));
        assert!(is_interpreter(
            Some("/usr/bin/python3.12"),
            None,
            "python3.12"
        ));
        assert!(is_interpreter(None, Some("_PyEval_EvalFrameDefault"), "x"));
        assert!(!is_interpreter(
            Some("/usr/lib/libc.so.6"),
            Some("malloc"),
            "python3"
        ));
    }

    #[test]
    fn the_json_cannot_close_its_script() {
        let s = "</script><script>alert(1)</script>\u{2028}";
        let json = serde_json::to_string(s).unwrap_or_default();
        let safe = json.replace('<', "\\u003c").replace('\u{2028}', "\\u2028");
        assert!(!safe.contains('<'));
        assert_eq!(
            serde_json::from_str::<String>(&safe).ok().as_deref(),
            Some(s)
        );
    }
}
