//! The live view's sums: what `memtrace live` shows, kept up to date event by event at a cost
//! that follows neither the capture's length nor the live heap's size.
//!
//! Per event, only:
//! - the block's address in [`Blocks`] (inserted by an allocation, removed by a free);
//! - the live bytes and count of its group, a (stack, thread) pair numbered densely, but not
//!   for a block in the blocks' nursery (most are freed there): its group counts it when it
//!   leaves the nursery for a slot, or at its free when a new peak came in between, and the
//!   sets add the nursery's blocks;
//! - the heap's total and, when it rises above the peak so far, a new peak.
//!
//! What was live per group at the peak so far is not copied at each new peak (a heap that keeps
//! rising would copy every group at nearly every event). A group copies its own figures at its
//! first change after the peak, stamped with the peak's generation: a new peak bumps the
//! generation, which makes every group's copy stale at once (a group unchanged since the peak
//! has its live figure then). Both sets are exact: the same as the general replay's
//! ([`crate::analysis::replay::Replay`]) live and peak sets on the same events, which the tests
//! check.
//!
//! Mappings (mmap, mremap, munmap: few) go through the replay's own [`Mappings`].

use super::blocks::{Blocks, Freed, Uncounted};
use crate::analysis::mappings::{Mapping, Mappings};
use crate::analysis::replay::Snapshot;
use crate::analysis::series::Series;
use crate::analysis::sets::{AllocSet, Key};
use crate::analysis::totals::{self, Sum};
use crate::capture::event::{code, Event};
use crate::capture::follow::EventSink;
use hashbrown::HashMap;
use memtrace_format::columns::AllocFreed;
use memtrace_format::settings::Sampling;
use memtrace_format::{Allocator, Marker};

/// Stack ids below this find their group through a per-thread array (the tracker numbers
/// stacks from 1 up); larger ones (a damaged capture) through a map.
const DIRECT_STACKS: u64 = 1 << 22;

/// One (stack, thread) pair's figures.
#[derive(Clone, Copy, Debug)]
struct Group {
    key: Key,
    live_bytes: i64,
    live_count: i64,
    /// The figures at the peak, valid when `generation` is the peak's (else: the live ones).
    peak_bytes: i64,
    peak_count: i64,
    generation: u64,
}

/// The live heap now and at the peak so far, by (stack, thread), and live bytes over time.
#[derive(Debug, Default)]
pub struct LiveSums {
    blocks: Blocks,
    maps: Mappings,
    groups: Vec<Group>,
    /// Group index + 1 by thread, then by stack id (0: none yet).
    direct: Vec<Vec<u32>>,
    /// Group index by key, for stack ids beyond [`DIRECT_STACKS`].
    wide: HashMap<Key, u32>,
    heap_bytes: u64,
    heap_count: u64,
    /// Bumped at each new peak: every group's change since the peak is zero then.
    generation: u64,
    /// The highest live bytes seen (the first time it was reached).
    pub peak: Snapshot,
    /// Events taken in.
    pub events: u64,
    /// The largest event tick (when `events` is not 0).
    max_tick: u64,
    /// Live bytes over time (ticks), downsampled.
    pub heap_series: Series,
    /// The series' last bucket, kept here so that an event within it (nearly all) does not
    /// read the series: the first tick past it (0: not known) and its highest value.
    series_end: u64,
    series_high: u64,
    /// When a Python run's script started.
    pub script_start: Option<Snapshot>,
    /// Count what a Python run's interpreter start-up left live too (else the sums start
    /// afresh at the script's start, as the replay does).
    pub include_startup: bool,
    /// The capture's byte sampling: each allocation counts the bytes it stands for.
    pub sampling: Sampling,
    /// In a sampled capture, the allocations each live sample stands for (a 16-byte sample
    /// stands for N/16), drawn as the replay and the totals draw them
    /// (`totals::sample_stands_for`), by address: the older first where two blocks are live at
    /// one address (events of two threads that tie), as a free takes the older.
    counts: HashMap<u64, Vec<u64>>,
}

impl LiveSums {
    pub fn new(include_startup: bool) -> LiveSums {
        LiveSums {
            include_startup,
            ..LiveSums::default()
        }
    }

    /// The largest event tick, if any event came.
    pub fn last_tick(&self) -> Option<u64> {
        (self.events > 0).then_some(self.max_tick)
    }

    /// Heap blocks plus mapped bytes, now.
    pub fn live_bytes(&self) -> u64 {
        self.heap_bytes.wrapping_add(self.maps.bytes())
    }

    /// Live heap blocks plus live mappings, now.
    pub fn live_allocations(&self) -> u64 {
        self.heap_count + self.maps.count()
    }

    /// The group of (stack, thread), made when new. `stack` may be a record's raw stack field
    /// (see [`Event::stack_id`]): ids past the direct range are made valid on the slow way.
    #[inline]
    fn group(&mut self, stack: u64, thread: u32) -> usize {
        if stack < DIRECT_STACKS {
            let t = thread as usize;
            if let Some(&g) = self.direct.get(t).and_then(|s| s.get(stack as usize)) {
                if g != 0 {
                    return g as usize - 1;
                }
            }
        }
        self.new_group(stack, thread)
    }

    #[cold]
    fn new_group(&mut self, stack: u64, thread: u32) -> usize {
        // A raw field that is no valid id (0 for it) may have its group already.
        let id = Event::stack_id(stack);
        if id != stack {
            return self.group(id, thread);
        }
        let key = (stack, thread);
        if stack >= DIRECT_STACKS {
            if let Some(&g) = self.wide.get(&key) {
                return g as usize;
            }
        }
        let g = self.groups.len();
        self.groups.push(Group {
            key,
            live_bytes: 0,
            live_count: 0,
            peak_bytes: 0,
            peak_count: 0,
            generation: self.generation,
        });
        if stack < DIRECT_STACKS {
            let t = thread as usize;
            if self.direct.len() <= t {
                self.direct.resize_with(t + 1, Vec::new);
            }
            let by_stack = &mut self.direct[t];
            if by_stack.len() <= stack as usize {
                by_stack.resize((stack as usize + 1).next_power_of_two(), 0);
            }
            by_stack[stack as usize] = g as u32 + 1;
        } else {
            self.wide.insert(key, g as u32);
        }
        g
    }

    /// Group `g`, its figures at the peak copied at its first change since the peak.
    #[inline]
    fn changing(&mut self, g: usize) -> &mut Group {
        let generation = self.generation;
        let gr = &mut self.groups[g];
        if gr.generation != generation {
            gr.generation = generation;
            gr.peak_bytes = gr.live_bytes;
            gr.peak_count = gr.live_count;
        }
        gr
    }

    /// Adds a change to group `g`, now and since the peak.
    #[inline]
    fn change(&mut self, g: usize, bytes: i64, count: i64) {
        let gr = self.changing(g);
        gr.live_bytes = gr.live_bytes.wrapping_add(bytes);
        gr.live_count += count;
    }

    /// Whether a block from the nursery, allocated at generation `since` and live since, was
    /// live at the peak so far: a new peak came after its allocation.
    #[inline]
    fn at_peak(&self, since: u64) -> bool {
        since != self.generation
    }

    /// The bytes an allocation of `size` stands for: itself, or its weight in a sampled
    /// capture.
    #[inline(always)]
    fn weighed(&self, size: u64) -> u64 {
        self.sampling.weight(size)
    }

    /// The allocations the live block at `addr` stands for: one, or in a sampled capture the
    /// estimate its sample was drawn.
    #[inline(always)]
    fn count_of(&self, addr: u64) -> u64 {
        if self.counts.is_empty() {
            return 1;
        }
        self.counts
            .get(&addr)
            .and_then(|c| c.first())
            .copied()
            .unwrap_or(1)
    }

    /// Counts a block that leaves the nursery live: in its group's figures now, and in those
    /// at the peak when it was live then.
    #[cold]
    fn count_settled(&mut self, u: Uncounted) {
        let count = self.count_of(u.addr) as i64;
        self.change(u.group as usize, u.size as i64, count);
        if self.at_peak(u.since) {
            self.count_at_peak(u);
        }
    }

    /// A block from the nursery live at the peak: the figures there count it (a block freed
    /// from the nursery counts nowhere else: its allocation and free cancel).
    #[cold]
    fn count_at_peak(&mut self, u: Uncounted) {
        let count = self.count_of(u.addr) as i64;
        let gr = self.changing(u.group as usize);
        gr.peak_bytes = gr.peak_bytes.wrapping_add(u.size as i64);
        gr.peak_count += count;
    }

    fn snapshot(&self, tick: u64) -> Snapshot {
        Snapshot {
            tick: Some(tick),
            event_index: self.events,
            bytes: self.live_bytes(),
            allocations: self.live_allocations(),
        }
    }

    /// After an allocation: a new peak when live bytes rose above it.
    #[inline]
    fn check_peak(&mut self, tick: u64) {
        if self.live_bytes() > self.peak.bytes {
            self.peak = self.snapshot(tick);
            self.generation += 1;
        }
    }

    /// Removes `[addr, addr + len)` from the mappings.
    fn unmap(&mut self, addr: u64, len: u64) {
        let mut gone: Vec<(Mapping, u64, i64)> = Vec::new();
        self.maps
            .remove_each(addr, len, |m, bytes, count| gone.push((*m, bytes, count)));
        for (m, bytes, count) in gone {
            let g = self.group(m.stack, m.thread);
            self.change(g, (bytes as i64).wrapping_neg(), -count);
        }
    }

    /// Adds the mapping of an mmap or of an mremap's new half (replacing what it overlaps).
    fn map(&mut self, ev: &Event, thread: u32) {
        self.unmap(ev.addr, ev.size);
        let before = self.maps.bytes();
        self.maps.add(
            ev.addr,
            Mapping {
                len: ev.size,
                stack: ev.stack(),
                thread,
                index: self.events,
            },
        );
        let added = self.maps.bytes() - before;
        if added > 0 {
            let g = self.group(ev.stack(), thread);
            self.change(g, added as i64, 1);
        }
    }

    /// Records `value` at `tick` in the series.
    #[inline(never)]
    fn record(&mut self, tick: u64, value: u64) {
        self.heap_series.record(tick, value);
        self.note_series();
    }

    /// Notes the series' last bucket (see `series_end`).
    fn note_series(&mut self) {
        let s = &self.heap_series;
        (self.series_end, self.series_high) = match s.points.last() {
            // A series that keeps a tick's last value wants every event.
            Some(&(bucket, _, high)) if !s.steps => {
                let end = (u128::from(bucket) + 1) << s.shift;
                (u64::try_from(end).unwrap_or(u64::MAX), high)
            }
            _ => (0, 0),
        };
    }

    /// Forgets what is live (a Python run's interpreter start-up), as the replay does.
    fn start_afresh(&mut self, tick: u64) {
        let (include_startup, script_start, events, max_tick) = (
            self.include_startup,
            self.script_start,
            self.events,
            self.max_tick,
        );
        let heap_series = std::mem::take(&mut self.heap_series);
        let sampling = self.sampling;
        *self = LiveSums {
            include_startup,
            script_start,
            sampling,
            events,
            max_tick,
            heap_series,
            peak: Snapshot {
                tick: Some(tick),
                event_index: events,
                bytes: 0,
                allocations: 0,
            },
            ..LiveSums::default()
        };
        self.heap_series.clear();
        self.record(tick, 0);
    }

    /// Takes in one event of thread index `thread`. Heap allocations and frees (nearly every
    /// event) take the short way, inlined into the decoder's loop; the rest go apart.
    #[inline(always)]
    pub fn add(&mut self, thread: u32, ev: &Event) {
        self.count(ev.tick);
        let c = ev.code();
        if c < code::ALLOC_END && c != Allocator::Mmap as u8 {
            self.heap_alloc(thread, ev.tick, ev.addr, ev.size, ev.stack());
        } else if c == code::FREE || c == code::PY_FREE {
            self.heap_free(ev.tick, ev.addr);
        } else {
            self.add_other(thread, ev);
        }
    }

    /// Counts an event at `tick`.
    #[inline(always)]
    fn count(&mut self, tick: u64) {
        self.events += 1;
        self.max_tick = self.max_tick.max(tick);
    }

    /// A heap allocation (not an mmap), counted.
    #[inline(always)]
    fn heap_alloc(&mut self, thread: u32, tick: u64, addr: u64, size: u64, stack: u64) {
        let (count, size) = if self.sampling.bytes == 0 {
            (1, size)
        } else {
            self.sampled(addr, tick, size)
        };
        let g = self.group(stack, thread);
        let inserted = self.blocks.insert(addr, size, g as u32, self.generation);
        self.heap_bytes = self.heap_bytes.wrapping_add(size);
        self.heap_count += count;
        if !inserted.nursery {
            self.change(g, size as i64, count as i64);
        }
        if let Some(u) = inserted.settled {
            self.count_settled(u);
        }
        self.check_peak(tick);
        let live = self.live_bytes();
        // Within the last bucket, only a new high changes the series.
        if tick >= self.series_end || live > self.series_high {
            self.record(tick, live);
        }
    }

    /// A sampled allocation: the allocations and bytes it stands for, the count noted by
    /// address.
    #[cold]
    fn sampled(&mut self, addr: u64, tick: u64, size: u64) -> (u64, u64) {
        let (count, bytes) = totals::sample_stands_for(addr, tick, size, self.sampling);
        self.counts.entry(addr).or_default().push(count);
        (count, bytes)
    }

    /// The count of the (older) block freed at `addr` leaves the notes.
    #[cold]
    fn forget_count(&mut self, addr: u64) {
        if let Some(c) = self.counts.get_mut(&addr) {
            if c.len() > 1 {
                c.remove(0);
            } else {
                self.counts.remove(&addr);
            }
        }
    }

    /// A free, counted.
    #[inline(always)]
    fn heap_free(&mut self, tick: u64, addr: u64) {
        if let Some(freed) = self.blocks.remove(addr) {
            let count = self.count_of(addr);
            let size = match freed {
                Freed::Counted((size, g)) => {
                    self.change(g as usize, (size as i64).wrapping_neg(), -(count as i64));
                    size
                }
                Freed::Uncounted(u) => {
                    if self.at_peak(u.since) {
                        self.count_at_peak(u);
                    }
                    u.size
                }
            };
            if !self.counts.is_empty() {
                self.forget_count(addr);
            }
            self.heap_bytes = self.heap_bytes.wrapping_sub(size);
            self.heap_count -= count;
            // Live bytes never rise without a point recorded: they are below the last one, and
            // within its bucket they change nothing.
            if tick >= self.series_end {
                self.heap_series.record_fall(tick, self.live_bytes());
                self.note_series();
            }
        }
    }

    /// The series' points for a block allocated at `tick` and freed at `freed` (`high`: live
    /// bytes with it), as [`LiveSums::heap_alloc`] and [`LiveSums::heap_free`] record them.
    #[cold]
    fn series_up_and_down(&mut self, (tick, freed): (u64, u64), high: u64) {
        if tick >= self.series_end || high > self.series_high {
            self.record(tick, high);
        }
        if freed >= self.series_end {
            self.heap_series.record_fall(freed, self.live_bytes());
            self.note_series();
        }
    }

    /// Any event but a heap allocation or a free.
    #[inline(never)]
    fn add_other(&mut self, thread: u32, ev: &Event) {
        match ev.code() {
            c if c == Allocator::Mmap as u8 => {
                self.map(ev, thread);
                self.check_peak(ev.tick);
                self.record(ev.tick, self.live_bytes());
            }
            code::MUNMAP => {
                self.unmap(ev.addr, ev.size);
                self.record(ev.tick, self.live_bytes());
            }
            code::MREMAP_OLD => self.unmap(ev.addr, ev.size),
            // A mapping the capture did not know (made before an attach, or by a raw system
            // call) that is moved or resized counts from here, at the mremap's line, as the
            // totals count it.
            code::MREMAP_NEW => {
                self.map(ev, thread);
                self.check_peak(ev.tick);
                self.record(ev.tick, self.live_bytes());
            }
            code::MARKER
                if self.script_start.is_none()
                    && Marker::from_code(ev.size) == Marker::ScriptStart =>
            {
                self.script_start = Some(self.snapshot(ev.tick));
                if !self.include_startup {
                    self.start_afresh(ev.tick);
                }
            }
            _ => {}
        }
    }

    /// The allocations live now.
    pub fn live_set(&self) -> AllocSet {
        self.set(|g| (g.live_bytes, g.live_count), |_| true)
    }

    /// The allocations live at the peak so far (their total is `peak`).
    pub fn peak_set(&self) -> AllocSet {
        self.set(
            |g| {
                if g.generation == self.generation {
                    (g.peak_bytes, g.peak_count)
                } else {
                    (g.live_bytes, g.live_count)
                }
            },
            |u| self.at_peak(u.since),
        )
    }

    /// The groups with something live by `figures` (bytes, count) and the nursery's blocks
    /// that `counts` (uncounted in the figures), as the replay's sets keep them.
    fn set(
        &self,
        figures: impl Fn(&Group) -> (i64, i64),
        counts: impl Fn(&Uncounted) -> bool,
    ) -> AllocSet {
        let mut by_group: Vec<(i64, i64)> = self.groups.iter().map(figures).collect();
        for u in self.blocks.uncounted().filter(|u| counts(u)) {
            let (bytes, count) = &mut by_group[u.group as usize];
            *bytes = bytes.wrapping_add(u.size as i64);
            *count += self.count_of(u.addr) as i64;
        }
        AllocSet {
            groups: self
                .groups
                .iter()
                .zip(by_group)
                .map(|(g, figures)| (g.key, figures))
                .filter(|&(_, (b, c))| c > 0 || b > 0)
                .map(|(k, (b, c))| {
                    (
                        k,
                        Sum {
                            count: c.max(0) as u64,
                            bytes: b.max(0) as u64,
                        },
                    )
                })
                .collect(),
        }
    }
}

impl EventSink for LiveSums {
    #[inline(always)]
    fn event(&mut self, thread: usize, ev: Event) {
        self.add(thread as u32, &ev);
    }

    /// As [`LiveSums::add`] of the allocation's event, without the event.
    #[inline(always)]
    fn alloc(
        &mut self,
        thread: usize,
        tick: u64,
        allocator: Allocator,
        addr: u64,
        size: u64,
        stack: u64,
    ) {
        if allocator == Allocator::Mmap {
            let ev = Event::new(allocator as u8, tick, addr, size, stack);
            return self.add(thread as u32, &ev);
        }
        self.count(tick);
        // The raw stack field: `group` makes it valid when it is past the direct range.
        self.heap_alloc(thread as u32, tick, addr, size, stack);
    }

    /// A block freed right after its allocation, where no block was live (most are): when it
    /// makes no new peak, it leaves the blocks, the groups and the heap's total as they were,
    /// so only the series sees it (as the two events would).
    #[inline(always)]
    fn alloc_freed(&mut self, thread: usize, b: AllocFreed) {
        let size = self.weighed(b.size);
        let high = self.live_bytes().wrapping_add(size);
        if high <= self.peak.bytes
            && b.allocator != Allocator::Mmap
            && self.blocks.free_here(b.addr)
        {
            let last = b.tick.max(b.freed);
            self.events += 2;
            self.max_tick = self.max_tick.max(last);
            if last >= self.series_end || high > self.series_high {
                self.series_up_and_down((b.tick, b.freed), high);
            }
            return;
        }
        self.alloc(thread, b.tick, b.allocator, b.addr, b.size, b.stack);
        self.free(thread, b.freed, b.python, b.addr, b.object_type);
    }

    /// As [`LiveSums::add`] of the free's event, without the event.
    #[inline(always)]
    fn free(&mut self, _: usize, tick: u64, _: bool, addr: u64, _: u64) {
        self.count(tick);
        self.heap_free(tick, addr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::replay::Replay;
    use crate::analysis::test_rng::Rng;

    /// Events of three threads: mallocs and frees (some of unknown blocks, some at an address
    /// two threads share), mmaps, partial munmaps, mremaps, and a heap that rises and falls.
    /// Without `ties`, no two blocks are ever live at one address (none is kept aside, and
    /// more pairs are taken at once).
    fn events(seed: u64, n: usize, ties: bool) -> Vec<(u32, Event)> {
        let mut rng = Rng(seed);
        let mut live: Vec<u64> = Vec::new();
        let mut out = Vec::new();
        for i in 0..n as u64 {
            let thread = rng.below(3) as u32;
            let tick = i + 1;
            let stack = 1 + rng.below(12);
            // A block freed at once (most are): at an address where a block may be live, now
            // and then large enough to make a new peak.
            if rng.below(3) == 0 {
                // Mostly the last such block's address (as an allocator hands a freed block
                // out again), where no block is live.
                let addr = match rng.below(4) {
                    0 => 0x10_0000 + rng.below(5000) * 16,
                    _ => 0x30_0000 + rng.below(2) * 16,
                };
                let size = if rng.below(20) == 0 {
                    rng.below(200_000)
                } else {
                    rng.below(512)
                };
                let a = Event::new(Allocator::Malloc as u8, tick, addr, size, stack);
                out.push((thread, a));
                out.push((thread, Event::new(code::FREE, tick + 1, addr, 0, 0)));
                // (The free takes the older block at that address, if one is live: the same
                // address stays in `live` once.)
                continue;
            }
            // Phases: mostly allocating, then mostly freeing.
            let allocating = (i / 2000) % 2 == 0;
            let ev = match rng.below(100) {
                0..=59 if allocating || live.is_empty() => {
                    let addr = 0x10_0000 + rng.below(5000) * 16;
                    live.push(addr);
                    Event::new(Allocator::Malloc as u8, tick, addr, rng.below(4096), stack)
                }
                0..=89 if !live.is_empty() => {
                    let k = rng.below(live.len() as u64) as usize;
                    Event::new(code::FREE, tick, live.swap_remove(k), 0, 0)
                }
                90..=91 => Event::new(code::FREE, tick, 0xdead_0000 + rng.below(4) * 16, 0, 0),
                92..=94 => {
                    let addr = 0x7000_0000 + rng.below(8) * 0x10000;
                    Event::new(
                        Allocator::Mmap as u8,
                        tick,
                        addr,
                        0x1000 * (1 + rng.below(8)),
                        stack,
                    )
                }
                95..=97 => {
                    let addr = 0x7000_0000 + rng.below(8) * 0x10000 + rng.below(4) * 0x1000;
                    Event::new(code::MUNMAP, tick, addr, 0x1000 * (1 + rng.below(3)), 0)
                }
                98 => {
                    let old = 0x7000_0000 + rng.below(8) * 0x10000;
                    out.push((thread, Event::new(code::MREMAP_OLD, tick, old, 0x2000, 0)));
                    let new = 0x7800_0000 + rng.below(8) * 0x10000;
                    Event::new(code::MREMAP_NEW, tick, new, 0x3000, stack)
                }
                _ if ties => {
                    // Two blocks at one address: a second thread's allocation before the free.
                    let addr = 0x20_0000 + rng.below(8) * 16;
                    live.push(addr);
                    Event::new(Allocator::Calloc as u8, tick, addr, 24, stack)
                }
                _ => continue,
            };
            out.push((thread, ev));
        }
        out
    }

    /// Replays `evs` through both, checking after each `step` events. The sums take an
    /// allocation and a free at its address as the thread's next event at once, as the
    /// decoder hands them over.
    fn compare(evs: &[(u32, Event)], step: usize) -> (LiveSums, Replay) {
        compare_sampled(evs, step, Sampling::NONE)
    }

    /// [`compare`] of the events as the samples of a capture sampled as `sampling` says.
    fn compare_sampled(
        evs: &[(u32, Event)],
        step: usize,
        sampling: Sampling,
    ) -> (LiveSums, Replay) {
        let mut sums = LiveSums::new(false);
        sums.sampling = sampling;
        let mut replay = Replay::default();
        replay.sampling = sampling;
        let mut pairs = 0;
        for part in evs.chunks(step) {
            let mut i = 0;
            while let Some(&(t, ev)) = part.get(i) {
                i += 1;
                replay.events(t as usize, &[ev]);
                let alloc = ev.code() < code::ALLOC_END;
                match part.get(i) {
                    Some(&(t2, f))
                        if alloc && t2 == t && f.code() == code::FREE && f.addr == ev.addr =>
                    {
                        i += 1;
                        replay.events(t as usize, &[f]);
                        pairs += 1;
                        let b = AllocFreed {
                            tick: ev.tick,
                            allocator: Allocator::ALL[usize::from(ev.code())],
                            addr: ev.addr,
                            size: ev.size,
                            stack: ev.stack(),
                            freed: f.tick,
                            python: false,
                            object_type: 0,
                        };
                        EventSink::alloc_freed(&mut sums, t as usize, b);
                    }
                    _ => sums.add(t, &ev),
                }
            }
            assert_eq!(sums.live_bytes(), replay.live_bytes());
            assert_eq!(sums.live_allocations(), replay.live_allocations());
            assert_eq!(sums.peak, replay.peak);
            assert_eq!(sums.live_set(), replay.live_set());
            assert_eq!(sums.peak_set(), replay.peak_set());
            for t in 0..3 {
                let only = |s: AllocSet| s.filter_threads(|x| x == t);
                assert_eq!(only(sums.peak_set()), only(replay.peak_set()));
                assert_eq!(only(sums.live_set()), only(replay.live_set()));
            }
            assert_eq!(
                sums.heap_series.points().collect::<Vec<_>>(),
                replay.heap_series.points().collect::<Vec<_>>()
            );
            assert_eq!(sums.events, replay.events);
        }
        assert!(
            pairs > 0 || evs.len() < 10_000,
            "no pair in {} events",
            evs.len()
        );
        (sums, replay)
    }

    #[test]
    fn the_sums_match_the_replay_now_and_at_the_peak() {
        for seed in [1, 7, 42, 1234] {
            let evs = events(seed, 20_000, true);
            let (sums, _) = compare(&evs, 997);
            assert!(sums.peak.bytes > 0 && sums.peak_set() != sums.live_set());
        }
    }

    /// A sampled capture's live blocks count the allocations each sample stands for (a
    /// 16-byte sample at 4 KiB stands for 256), drawn as the replay draws them: the live view's
    /// counts now, at the peak and by group are the replay's (they were counts of samples).
    #[test]
    fn sampled_counts_match_the_replay() {
        let sampling = Sampling::current(4096);
        for seed in [5, 77, 3030] {
            let evs = events(seed, 20_000, true);
            let (sums, _) = compare_sampled(&evs, 997, sampling);
            // The same events as blocks of a full capture: most are far below 4 KiB, and
            // stand for several allocations each.
            let (blocks, _) = compare(&evs, 997);
            let (estimated, counted) = (sums.peak_set().total(), blocks.peak_set().total());
            assert!(
                estimated.count > 4 * counted.count,
                "{estimated:?} {counted:?}"
            );
            assert_eq!(sums.peak.allocations, estimated.count);
        }
    }

    /// A sampled Python run's sums start afresh at the script's start and still weigh what
    /// comes after (they counted samples' own sizes from there on).
    #[test]
    fn a_sampled_run_is_weighed_after_the_script_starts() {
        let sampling = Sampling::current(4096);
        let mut s = LiveSums::new(false);
        s.sampling = sampling;
        s.add(0, &Event::new(Allocator::Malloc as u8, 1, 0x100, 1000, 1));
        s.add(
            0,
            &Event::new(code::MARKER, 2, 0, Marker::ScriptStart.code(), 0),
        );
        s.add(0, &Event::new(Allocator::Malloc as u8, 3, 0x200, 64, 1));
        assert_eq!(s.live_bytes(), 4096);
        let (count, _) = totals::sample_stands_for(0x200, 3, 64, sampling);
        assert_eq!(s.live_allocations(), count);
        assert!(count > 1);
    }

    #[test]
    fn blocks_freed_at_once_match_the_replay() {
        // No two blocks at one address: most pairs are taken at once, some making a new peak,
        // some a new high of the series' last point, some crossing into its next bucket.
        for seed in [3, 99, 2024] {
            let evs = events(seed, 30_000, false);
            let (sums, _) = compare(&evs, 499);
            assert!(sums.peak.bytes > 0 && sums.peak_set() != sums.live_set());
        }
    }

    /// A sampled capture's allocations count the bytes they stand for, as every other report
    /// weighs them (the live view added the samples' own sizes).
    #[test]
    fn a_sampled_capture_s_allocations_are_weighed() {
        let sample = Sampling::current(64 << 10);
        let mut s = LiveSums::new(false);
        s.sampling = sample;
        s.add(0, &Event::new(Allocator::Malloc as u8, 1, 0x100, 1000, 1));
        s.add(
            0,
            &Event::new(Allocator::Malloc as u8, 2, 0x200, 100_000, 1),
        );
        // 1000 bytes stand for 64 KiB; 100,000 (above half of it) are always recorded.
        let weighed = (64 << 10) + 100_000;
        assert_eq!(sample.weight(1000) + sample.weight(100_000), weighed);
        assert_eq!(s.live_bytes(), weighed);
        assert_eq!(s.peak.bytes, weighed);
        s.add(0, &Event::new(code::FREE, 3, 0x100, 0, 0));
        assert_eq!(s.live_bytes(), 100_000);
    }

    #[test]
    fn a_known_peak_breakdown_and_thread_filter() {
        let malloc =
            |tick, addr, size, stack| Event::new(Allocator::Malloc as u8, tick, addr, size, stack);
        let free = |tick, addr| Event::new(code::FREE, tick, addr, 0, 0);
        let mut s = LiveSums::new(false);
        s.add(0, &malloc(1, 0x100, 100, 1));
        s.add(1, &malloc(2, 0x200, 50, 2));
        s.add(1, &malloc(3, 0x300, 30, 1)); // peak: 180 in three
        s.add(0, &free(4, 0x100));
        s.add(0, &malloc(5, 0x400, 60, 3));
        s.add(1, &free(6, 0x200));
        assert_eq!(
            (s.peak.bytes, s.peak.allocations, s.peak.tick),
            (180, 3, Some(3))
        );
        let peak = s.peak_set();
        let sum = |set: &AllocSet, k: Key| set.groups.get(&k).map(|s| (s.bytes, s.count));
        assert_eq!(sum(&peak, (1, 0)), Some((100, 1)));
        assert_eq!(sum(&peak, (2, 1)), Some((50, 1)));
        assert_eq!(sum(&peak, (1, 1)), Some((30, 1)));
        assert_eq!(sum(&peak, (3, 0)), None);
        let now = s.live_set();
        assert_eq!(
            now.total(),
            Sum {
                count: 2,
                bytes: 90
            }
        );
        assert_eq!(sum(&now.filter_threads(|t| t == 1), (1, 1)), Some((30, 1)));
        assert_eq!(now.filter_threads(|t| t == 0).total().bytes, 60);
        assert_eq!(
            peak.filter_threads(|t| t == 1).total(),
            Sum {
                count: 2,
                bytes: 80
            }
        );
    }

    #[test]
    fn a_heap_that_only_rises_and_the_script_start() {
        // Every allocation a new peak: the breakdown at the peak is the live one.
        let mut evs: Vec<(u32, Event)> = (0..5000u64)
            .map(|i| {
                (
                    0,
                    Event::new(
                        Allocator::Malloc as u8,
                        i + 1,
                        0x1000 + i * 32,
                        8 + i % 7,
                        1 + i % 5,
                    ),
                )
            })
            .collect();
        evs.push((
            0,
            Event::new(code::MARKER, 6000, 0, Marker::ScriptStart.code(), 0),
        ));
        evs.extend(
            (0..300u64).map(|i| (0, Event::new(code::FREE, 7000 + i, 0x1000 + i * 32, 0, 0))),
        );
        evs.push((
            0,
            Event::new(Allocator::Malloc as u8, 8000, 0x9000_0000, 77, 9),
        ));
        let (sums, _) = compare(&evs, 100);
        assert_eq!(sums.peak.bytes, 77);
        assert_eq!(
            sums.live_set().total(),
            Sum {
                count: 1,
                bytes: 77
            }
        );
    }
}
