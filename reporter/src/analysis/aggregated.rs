//! The analysis of an aggregated capture (`memtrace run --aggregate`): its few events (markers,
//! tables, resident sizes) are read as usual; the peak, what was live at exit, the totals, the
//! histogram and the memory series come from its last snapshots instead of the replay
//! (crate::capture::aggregate), so every report built on [`super::Analysis`] works on it.

use super::buckets::Buckets;
use super::replay::{Replay, Snapshot};
use super::series::Series;
use super::sets::AllocSet;
use super::totals::{Sum, Totals};
use super::ThreadStats;
use crate::capture::aggregate::Aggregated;
use hashbrown::HashMap;

/// The line every report of an aggregated capture shows (`python`: of a Python run, whose
/// interpreter's start-up the sums leave out).
pub fn note(python: bool) -> String {
    let startup = match python {
        true => ", and the interpreter's start-up is left out",
        false => "",
    };
    format!(
        "aggregated capture (memtrace run --aggregate): sums per stack and thread from its last \
         snapshot; no temporary allocations, no time-range selection, no object types{startup}"
    )
}

/// What an aggregated capture that has no final snapshot (its run was killed, or still runs)
/// holds: its last snapshot's figures, taken `at_s` seconds into the run.
pub fn cut_short(at_s: f64) -> String {
    format!(
        "aggregated capture without its final snapshot (the run was killed, or still runs): the \
         figures are those of its last snapshot, taken at {at_s:.3} s; what changed after it is \
         not in them (a snapshot is written every 2 s while the program allocates, and at its \
         next allocation after a pause: changes made just before it went idle wait for it)"
    )
}

/// The one line for a view an aggregated capture cannot give.
pub fn unsupported(what: &str) -> String {
    format!(
        "{what}: not recorded in an aggregated capture (memtrace run --aggregate keeps sums per \
         stack and thread, not each allocation); record the run without --aggregate"
    )
}

/// Puts the snapshots' sums in place of what the events would have given. `heap_points`: the
/// series' resolution; `sampled`: the capture is sampled. Returns the last snapshot's tick.
pub fn apply(
    a: &Aggregated,
    totals: &mut Totals,
    replay: &mut Replay,
    threads: &mut [ThreadStats],
    heap_points: usize,
    sampled: bool,
) -> u64 {
    let thread_of: HashMap<u64, u32> = threads
        .iter()
        .enumerate()
        .map(|(i, t)| (u64::from(t.serial), i as u32))
        .collect();
    // A thread that never wrote a table record has no chunk: its sums go to the first thread.
    let thread = |serial: u64| thread_of.get(&serial).copied().unwrap_or(0);
    let h = &a.head;
    let mut t = Totals {
        allocs: Sum {
            count: h.alloc_count,
            bytes: h.alloc_bytes,
        },
        frees: h.frees,
        ..Totals::default()
    };
    for &(bin, count, bytes) in &a.histogram {
        if let Some(slot) = t.histogram.get_mut(bin) {
            *slot = Sum { count, bytes };
        }
    }
    for (slot, &n) in t.allocators.iter_mut().zip(&h.allocators) {
        *slot = n;
    }
    t.free_kinds = h.free_kinds;
    for th in threads.iter_mut() {
        th.allocs = Sum::default();
        th.by_stack.clear();
    }
    let mut peak_set = AllocSet::default();
    let mut live_set = AllocSet::default();
    for (&(stack, serial), e) in &a.entries {
        let ti = thread(serial);
        let total = Sum {
            count: e.total_count,
            bytes: e.total_bytes,
        };
        if total.count > 0 {
            t.by_stack.entry(stack).or_default().merge(total);
            if let Some(th) = threads.get_mut(ti as usize) {
                th.allocs.merge(total);
                th.by_stack.entry(stack).or_default().merge(total);
            }
        }
        if e.peak_count > 0 || e.peak_bytes > 0 {
            peak_set.groups.entry((stack, ti)).or_default().merge(Sum {
                count: e.peak_count,
                bytes: e.peak_bytes,
            });
        }
        if e.live_count > 0 || e.live_bytes > 0 {
            live_set.groups.entry((stack, ti)).or_default().merge(Sum {
                count: e.live_count,
                bytes: e.live_bytes,
            });
        }
    }
    *totals = t;
    let peak = Snapshot {
        // None when nothing was ever allocated (the tracker's peak tick stays 0), as a full
        // capture's before any event: a time of tick 0 read as minus the machine's uptime.
        tick: (h.peak_tick != 0).then_some(h.peak_tick),
        event_index: 0,
        bytes: h.peak_bytes,
        allocations: h.peak_count,
    };
    let (exit, exit_set) = match &a.exit {
        Some((eh, live)) => {
            let mut set = AllocSet::default();
            for (&(stack, serial), &(count, bytes)) in live {
                set.groups
                    .entry((stack, thread(serial)))
                    .or_default()
                    .merge(Sum { count, bytes });
            }
            let snap = Snapshot {
                tick: Some(eh.tick),
                event_index: 0,
                bytes: eh.live_bytes,
                allocations: eh.live_count,
            };
            (Some(snap), set)
        }
        None => (None, live_set),
    };
    let mut series = Series::with_capacity(heap_points);
    let mut points = a.series.clone();
    points.push((h.peak_tick, h.peak_bytes));
    points.push((h.tick, h.live_bytes));
    points.sort_by_key(|p| p.0);
    for &(tick, bytes) in &points {
        series.record(tick, bytes);
    }
    // The memory-over-time chart (the HTML page's buckets): from the snapshots' points, the
    // only times this capture has (its chunks hold no timed record, so the buckets spanned
    // tick 0 to the end and stayed empty).
    if let Some(n) = replay.buckets.as_ref().map(Buckets::count) {
        replay.buckets = Some(Buckets::from_series(n, &points));
    }
    // The frees that found their block (and unmaps that took part of a mapping), as a full
    // capture counts them; a tracker before December 2026 wrote none: every allocation not
    // live now was freed (a mapping unmapped in two calls counted once, an mremap's move as a
    // free). A sampled capture's sums are estimates: so is this.
    replay.frees = match h.found_frees {
        Some(n) if !sampled => n,
        _ => h.alloc_count.saturating_sub(h.live_count),
    };
    replay.set_aggregated(
        peak,
        peak_set,
        exit,
        exit_set,
        (h.live_bytes, h.live_count),
        series,
    );
    h.tick
}
