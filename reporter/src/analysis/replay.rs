//! Replaying the merged event stream over the live heap: live bytes at every point, the exact
//! peak, and what was live at the exit snapshot.

use super::buckets::Buckets;
use super::class_deaths::ClassDeaths;
use super::heap::{Block, LiveHeap};
use super::mappings::{Mapping, Mappings};
use super::series::Series;
use super::sets::{self, AllocSet, Departed, Departures, TypedDepartures};
use super::temporary::Temporary;
use super::totals::{self, Sum};
use crate::capture::event::{code, Event};
use memtrace_format::settings::Sampling;
use memtrace_format::{Allocator, Marker};

/// The least block a class takes: a heap type object (PyHeapTypeObject) is some 900 bytes on
/// 3.10 to 3.13, so smaller blocks held no class.
const MIN_CLASS_BLOCK: u64 = 512;

const MMAP: u8 = Allocator::Mmap as u8;

/// Live memory at one point of the timeline.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// The tick of the event at that point (None: before any event).
    pub tick: Option<u64>,
    /// How many events had been replayed, that one included.
    pub event_index: u64,
    /// Heap blocks plus mapped bytes.
    pub bytes: u64,
    /// Live heap blocks plus live mappings.
    pub allocations: u64,
}

#[derive(Debug, Default)]
pub struct Replay {
    pub heap: LiveHeap,
    pub maps: Mappings,
    /// The highest live bytes seen (the first time it was reached).
    pub peak: Snapshot,
    /// Live memory at the first exit-snapshot marker.
    pub exit: Option<Snapshot>,
    /// Live memory when a Python run's script started (the interpreter's start-up).
    pub script_start: Option<Snapshot>,
    /// Events replayed.
    pub events: u64,
    /// What was live at the peak and has gone since (emptied at every new peak: bounded by
    /// what was live at the peak).
    peak_departed: Departures,
    /// What was live at the exit snapshot and has gone since.
    exit_departed: Departures,
    /// Of what was live at the peak and has gone since, the blocks whose free named the type
    /// of the object they held (typed frees): by (type address, stack, thread).
    pub peak_typed: TypedDepartures,
    /// Classes freed while the program ran: the lives of the type addresses `peak_typed`
    /// names (its type addresses are [`ClassDeaths::key`]s), or of every typed free's with
    /// `all_class_lives`.
    pub class_deaths: ClassDeaths,
    /// Follow the lives of the types every typed free names, not only those of the blocks
    /// live at the peak, and keep them past [`Replay::freeze`] (a reader that names each
    /// free's type).
    pub all_class_lives: bool,
    /// Temporary allocations, when asked for.
    pub temporary: Option<Temporary>,
    /// Count what a Python run's interpreter start-up left live too (else the replay starts
    /// afresh at the script's start, as memray sees a run).
    pub include_startup: bool,
    /// Frees and unmaps of memory the replay knew (not of blocks from before it started).
    pub frees: u64,
    /// Live bytes over time (ticks), downsampled.
    pub heap_series: Series,
    /// The process's resident size over time (ticks), as the tracker sampled it.
    pub resident_series: Series,
    /// After [`Replay::freeze`]: what the live heap was needed for.
    pub(crate) frozen: Option<Frozen>,
    /// What was live at each time bucket's high-water mark, when asked for (the HTML report).
    pub buckets: Option<Buckets>,
    /// Instead of the highest point, take `peak` at this tick: what is live after the last
    /// event at or before it (a family's combined peak, a moment chosen from outside).
    pub peak_at: Option<u64>,
    /// Instead of the highest point, take `peak` right after this event (its index in the
    /// replay's order; wins over `peak_at`): a tick may hold several events of different
    /// values, and a family's combined peak names the event of each image's value.
    pub peak_at_event: Option<u64>,
    /// `peak` was taken at `peak_at` (the first event after it was seen).
    peak_at_taken: bool,
    /// The tick of the last event replayed (that of `peak_at_event`'s snapshot).
    last_tick: u64,
    /// The capture's byte sampling: the events come as recorded, and each sampled allocation
    /// is weighed here, its bytes and its count (the allocations it stands for) estimates.
    pub sampling: Sampling,
    /// Blocks and mappings live at the peak: `peak.allocations` itself but in a sampled
    /// capture, where it is an estimate and this the number of samples.
    pub peak_samples: u64,
    /// Of `peak_samples`, those that stand for more than themselves (a sampled capture's
    /// requests below the size always recorded): the ones the estimate's error comes from.
    pub peak_weighed: u64,
}

/// What a frozen replay keeps of its live heap.
#[derive(Debug)]
pub(crate) struct Frozen {
    pub(crate) peak: AllocSet,
    pub(crate) exit: AllocSet,
    pub(crate) live_bytes: u64,
    pub(crate) live_allocations: u64,
}

impl Replay {
    pub fn live_bytes(&self) -> u64 {
        match &self.frozen {
            Some(f) => f.live_bytes,
            None => self.heap.bytes().wrapping_add(self.maps.bytes()),
        }
    }

    pub fn live_allocations(&self) -> u64 {
        match &self.frozen {
            Some(f) => f.live_allocations,
            None => self.heap.count() + self.maps.count(),
        }
    }

    /// Once the capture is read: keeps the sets live at the peak and at exit and the live
    /// totals, and frees the live heap (the largest memory of the replay). Replaying more
    /// events afterwards is not meaningful.
    pub fn freeze(&mut self) {
        if self.frozen.is_some() {
            return;
        }
        let frozen = Frozen {
            peak: self.peak_set(),
            exit: self.exit_set(),
            live_bytes: self.live_bytes(),
            live_allocations: self.live_allocations(),
        };
        self.heap = LiveHeap::default();
        self.maps = Mappings::default();
        self.peak_departed = Departures::default();
        self.exit_departed = Departures::default();
        self.peak_typed = TypedDepartures::default();
        if !self.all_class_lives {
            self.class_deaths = ClassDeaths::default();
        }
        self.frozen = Some(frozen);
    }

    /// The sums of an aggregated capture (crate::analysis::aggregated) in place of a replay:
    /// the peak and exit snapshots and sets, what is live at the end, the live series.
    pub fn set_aggregated(
        &mut self,
        peak: Snapshot,
        peak_set: AllocSet,
        exit: Option<Snapshot>,
        exit_set: AllocSet,
        (live_bytes, live_allocations): (u64, u64),
        heap_series: Series,
    ) {
        self.peak = peak;
        self.exit = exit.map(|e| Snapshot {
            tick: self.exit.and_then(|m| m.tick).or(e.tick),
            ..e
        });
        self.heap_series = heap_series;
        self.frozen = Some(Frozen {
            peak: peak_set,
            exit: exit_set,
            live_bytes,
            live_allocations,
        });
    }

    /// A replay that also finds the temporary allocations (see [`Temporary`]).
    pub fn with_temporary(threshold: Option<usize>) -> Replay {
        Replay {
            temporary: threshold.map(Temporary::new),
            ..Replay::default()
        }
    }

    /// The allocations live at the peak (exactly those: their total is `peak`).
    pub fn peak_set(&self) -> AllocSet {
        if let Some(f) = &self.frozen {
            return f.peak.clone();
        }
        sets::live_at(
            self.peak.event_index,
            &self.heap,
            &self.maps,
            &self.peak_departed,
        )
    }

    /// The allocations live now, after the last event replayed (`memtrace live`).
    pub fn live_set(&self) -> AllocSet {
        sets::live_at(u64::MAX, &self.heap, &self.maps, &Departures::default())
    }

    /// The allocations live at the exit snapshot, or at the end without one.
    pub fn exit_set(&self) -> AllocSet {
        if let Some(f) = &self.frozen {
            return f.exit.clone();
        }
        match self.exit {
            Some(e) => sets::live_at(e.event_index, &self.heap, &self.maps, &self.exit_departed),
            None => sets::live_at(u64::MAX, &self.heap, &self.maps, &Departures::default()),
        }
    }

    /// Records that part of an allocation made at event `index` went, for the moments it was
    /// live at. Inlined whole: it is on every free's path.
    #[inline(always)]
    fn departed(&mut self, index: u64, d: Departed) {
        if let Some(b) = &mut self.buckets {
            b.freed(index, d.stack, d.thread, d.bytes, d.count);
        }
        self.departed_since(index, d);
    }

    /// [`Replay::departed`] but for the buckets: what the peak and the exit sets need.
    #[inline(always)]
    fn departed_since(&mut self, index: u64, d: Departed) {
        if index <= self.peak.event_index {
            self.peak_departed.push(d);
        }
        if let Some(e) = &self.exit {
            if index <= e.event_index {
                self.exit_departed.push(d);
            }
        }
    }

    /// Unmaps `[addr, addr + len)`.
    fn unmap(&mut self, addr: u64, len: u64) {
        let mut gone: Vec<(u64, Departed)> = Vec::new();
        self.maps.remove_each(addr, len, |m, bytes, count| {
            gone.push((
                m.index,
                Departed {
                    stack: m.stack,
                    thread: m.thread,
                    bytes,
                    count,
                },
            ))
        });
        for (index, d) in gone {
            self.departed(index, d);
        }
    }

    /// Blocks and mappings live (samples, in a sampled capture).
    fn live_samples(&self) -> u64 {
        self.heap.blocks() + self.maps.count()
    }

    fn snapshot(&self, tick: u64, event_index: u64) -> Snapshot {
        Snapshot {
            tick: Some(tick),
            event_index,
            bytes: self.live_bytes(),
            allocations: self.live_allocations(),
        }
    }

    /// With `peak_at`: takes `peak` before the first event after it (`index`: the last event
    /// replayed before that one).
    #[cold]
    fn take_peak_at(&mut self, tick: u64, index: u64) {
        self.peak = self.snapshot(tick, index);
        self.peak_samples = self.live_samples();
        self.peak_weighed = self.heap.weighed_blocks();
        self.peak_departed.clear();
        self.peak_typed.clear();
        self.peak_at_taken = true;
    }

    /// With `peak_at` or `peak_at_event`, once every event is replayed: nothing came after
    /// it, so `peak` is what is live at the end.
    pub fn finish_peak_at(&mut self, last_tick: Option<u64>) {
        if self.peak_chosen() && !self.peak_at_taken {
            let tick = last_tick.or(self.peak_at).unwrap_or(0);
            self.take_peak_at(tick, self.events);
        }
    }

    /// The peak is taken at a moment chosen from outside, not at the highest point.
    fn peak_chosen(&self) -> bool {
        self.peak_at.is_some() || self.peak_at_event.is_some()
    }

    #[inline]
    fn check_peak(&mut self, tick: u64, event_index: u64) {
        if self.peak_chosen() {
            return;
        }
        self.check_highest(tick, event_index, self.live_bytes());
    }

    /// Takes the peak here when `live` (the live bytes now) is the highest yet.
    #[inline(always)]
    fn check_highest(&mut self, tick: u64, event_index: u64, live: u64) {
        if live > self.peak.bytes {
            self.peak = self.snapshot(tick, event_index);
            self.peak_samples = self.live_samples();
            self.peak_weighed = self.heap.weighed_blocks();
            self.peak_departed.clear();
            self.peak_typed.clear();
        }
    }

    /// Forgets what is live (the interpreter's start-up): from here on only what the script
    /// allocates counts, and frees of the forgotten blocks are of unknown memory.
    fn start_afresh(&mut self, tick: u64, index: u64) {
        self.heap = LiveHeap::default();
        self.maps = Mappings::default();
        self.peak_departed.clear();
        self.peak_typed.clear();
        self.peak = Snapshot {
            tick: Some(tick),
            event_index: index,
            bytes: 0,
            allocations: 0,
        };
        self.peak_samples = 0;
        self.peak_weighed = 0;
        self.frees = 0;
        if let Some(b) = &mut self.buckets {
            b.start_afresh(tick, index);
        }
        if let Some(t) = &mut self.temporary {
            t.start_afresh();
        }
        self.heap_series.clear();
        self.heap_series.record_event(tick, 0, index);
    }

    /// Adds the mapping of an mmap or of an mremap's new half (replacing what it overlaps).
    fn map(&mut self, ev: &Event, thread: u32, index: u64) {
        self.unmap(ev.addr, ev.size);
        self.maps.add(
            ev.addr,
            Mapping {
                len: ev.size,
                stack: ev.stack(),
                thread,
                index,
            },
        );
    }

    /// Tells the buckets of an allocation (once the heap holds it).
    #[inline]
    fn allocated(&mut self, ev: &Event, thread: u32, count: u64) {
        if let Some(b) = &mut self.buckets {
            let live = self.heap.bytes().wrapping_add(self.maps.bytes());
            // The new half of an mremap is a mapping.
            let c = ev.code();
            let allocator = if c < code::ALLOC_END {
                c
            } else {
                Allocator::Mmap as u8
            };
            b.allocated(ev.stack(), thread, allocator, ev.size, count, ev.tick, live);
        }
    }

    /// Replays a run of events of thread `thread`.
    pub fn events(&mut self, thread: usize, events: &[Event]) {
        // Most replays (every text report) want none of the extras: their loop leaves out the
        // checks for them, on the path of every event.
        let plain = !self.peak_chosen()
            && !self.sampling.is_sampled()
            && self.buckets.is_none()
            && self.temporary.is_none()
            && self.frozen.is_none();
        if plain {
            self.replay::<false>(thread, events);
        } else {
            self.replay::<true>(thread, events);
        }
    }

    /// Live bytes while replaying: what [`Replay::live_bytes`] says, without its check for a
    /// frozen replay where `EXTRAS` says there is none.
    #[inline(always)]
    fn live_now<const EXTRAS: bool>(&self) -> u64 {
        if EXTRAS {
            self.live_bytes()
        } else {
            self.heap.bytes().wrapping_add(self.maps.bytes())
        }
    }

    /// [`Replay::events`]; `EXTRAS` false when there is no `peak_at`, no buckets, no temporary
    /// allocations to find, no frozen heap and no sampling.
    #[inline(always)]
    fn replay<const EXTRAS: bool>(&mut self, thread: usize, events: &[Event]) {
        let thread = thread as u32;
        let base = self.events;
        for (i, ev) in events.iter().enumerate() {
            let index = base + i as u64 + 1;
            if EXTRAS {
                if let Some(after) = self.peak_at_event {
                    if index > after && !self.peak_at_taken {
                        let tick = if i > 0 {
                            events[i - 1].tick
                        } else {
                            self.last_tick
                        };
                        self.take_peak_at(tick, index - 1);
                    }
                } else if let Some(at) = self.peak_at {
                    if ev.tick > at && !self.peak_at_taken {
                        self.take_peak_at(at, index - 1);
                    }
                }
                if let Some(b) = &mut self.buckets {
                    b.advance(
                        ev.tick,
                        self.heap.bytes().wrapping_add(self.maps.bytes()),
                        index,
                    );
                }
            }
            let c = ev.code();
            if c < code::ALLOC_END {
                // A sampled capture's heap allocation stands for more (mappings are always
                // recorded): the event weighed, its count beside.
                let asked = ev.size;
                let mut weighed = *ev;
                let count = if EXTRAS && self.sampling.is_sampled() && c != MMAP {
                    let (count, bytes) = totals::stands_for(ev, self.sampling);
                    weighed.size = bytes;
                    count
                } else {
                    1
                };
                let ev = &weighed;
                if c == MMAP {
                    self.map(ev, thread, index);
                } else {
                    let block = Block::new(asked, ev.stack(), thread, index);
                    self.heap.alloc(ev.addr, block.weighed(ev.size, count));
                    if EXTRAS {
                        if let Some(t) = &mut self.temporary {
                            t.allocated(thread, ev.addr, index);
                        }
                    }
                }
                if EXTRAS {
                    self.check_peak(ev.tick, index);
                    self.allocated(ev, thread, count);
                } else {
                    self.check_highest(ev.tick, index, self.live_now::<false>());
                }
                self.heap_series
                    .record_event(ev.tick, self.live_now::<EXTRAS>(), index);
                continue;
            }
            match c {
                code::FREE | code::PY_FREE => {
                    let Some(b) = self.heap.free(ev.addr) else {
                        // A typed free of a block from before the capture knew of it may be
                        // a class's.
                        if ev.size != 0 {
                            self.class_deaths.freed(ev.addr, None, index);
                        }
                        continue;
                    };
                    {
                        self.frees += b.count();
                        // A typed free's size is the type of the object the block held; the
                        // block may have held a class.
                        if ev.size != 0 {
                            if b.index() <= self.peak.event_index {
                                let ty = self.class_deaths.key(ev.size);
                                let sum = Sum {
                                    count: b.count(),
                                    bytes: b.size,
                                };
                                self.peak_typed.push(ty, b.stack(), b.thread(), sum);
                            } else if self.all_class_lives {
                                self.class_deaths.named(ev.size);
                            }
                            if b.asked() >= MIN_CLASS_BLOCK {
                                self.class_deaths.freed(ev.addr, Some(b.stack()), index);
                            }
                        }
                        let d = Departed {
                            stack: b.stack(),
                            thread: b.thread(),
                            bytes: b.size,
                            count: b.count() as i64,
                        };
                        if EXTRAS {
                            self.departed(b.index(), d);
                            if let Some(t) = &mut self.temporary {
                                t.freed(thread, ev.addr, &b);
                            }
                        } else {
                            self.departed_since(b.index(), d);
                        }
                        // Live bytes fell: only a new bucket of the series can take them.
                        self.heap_series.record_fall_event(
                            ev.tick,
                            self.live_now::<EXTRAS>(),
                            index,
                        );
                    }
                }
                code::MUNMAP => {
                    if self.maps.overlaps(ev.addr, ev.size) {
                        self.frees += 1;
                    }
                    self.unmap(ev.addr, ev.size);
                    self.heap_series
                        .record_event(ev.tick, self.live_bytes(), index);
                }
                code::RESIDENT => self.resident_series.record(ev.tick, ev.size),
                code::MREMAP_OLD => self.unmap(ev.addr, ev.size),
                // A mapping the capture did not know (made before an attach, or by a raw
                // system call) that is moved or resized counts from here, at the mremap's
                // line, as the totals count it.
                code::MREMAP_NEW => {
                    self.map(ev, thread, index);
                    self.check_peak(ev.tick, index);
                    self.allocated(ev, thread, 1);
                    self.heap_series
                        .record_event(ev.tick, self.live_bytes(), index);
                }
                code::MARKER
                    if self.exit.is_none()
                        && Marker::from_code(ev.size) == Marker::ExitSnapshot =>
                {
                    self.exit = Some(self.snapshot(ev.tick, index));
                }
                code::MARKER
                    if self.script_start.is_none()
                        && Marker::from_code(ev.size) == Marker::ScriptStart =>
                {
                    self.script_start = Some(self.snapshot(ev.tick, index));
                    if !self.include_startup {
                        self.start_afresh(ev.tick, index);
                    }
                }
                _ => {}
            }
        }
        if let Some(last) = events.last() {
            self.last_tick = last.tick;
        }
        self.events = base + events.len() as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::totals::Sum;

    fn alloc(addr: u64, size: u64, stack: u64) -> Event {
        Event::new(Allocator::Malloc as u8, 0, addr, size, stack)
    }
    fn free(addr: u64) -> Event {
        Event::new(code::FREE, 0, addr, 0, 0)
    }
    fn mmap(addr: u64, size: u64, stack: u64) -> Event {
        Event::new(Allocator::Mmap as u8, 0, addr, size, stack)
    }
    fn munmap(addr: u64, size: u64) -> Event {
        Event::new(code::MUNMAP, 0, addr, size, 0)
    }
    fn sum(set: &AllocSet, stack: u64, thread: u32) -> (u64, u64) {
        let s = set
            .groups
            .get(&(stack, thread))
            .copied()
            .unwrap_or_default();
        (s.bytes, s.count)
    }

    #[test]
    fn the_series_follow_live_bytes_and_resident_size() {
        let at = |tick: u64, mut e: Event| {
            e.tick = tick;
            e
        };
        let mut r = Replay::default();
        r.events(
            0,
            &[
                at(10, alloc(0x100, 100, 1)),
                at(20, alloc(0x200, 50, 2)),
                at(25, Event::new(code::RESIDENT, 25, 0, 4096, 0)),
                at(30, free(0x100)),
                at(40, mmap(0x10000, 4096, 3)),
                at(50, munmap(0x10000, 4096)),
            ],
        );
        assert_eq!(
            r.heap_series.points().collect::<Vec<_>>(),
            vec![(10, 100), (20, 150), (30, 50), (40, 4146), (50, 50)]
        );
        assert_eq!(
            r.resident_series.points().collect::<Vec<_>>(),
            vec![(25, 4096)]
        );
        let top = r.heap_series.points().map(|p| p.1).max();
        assert_eq!(top, Some(r.peak.bytes));
    }

    #[test]
    fn a_peak_taken_after_an_event_holds_that_event_s_value_within_its_tick() {
        // Three events in tick 10 (150, then 100, then 148) and one in tick 20: a snapshot at
        // tick 10 holds what its last event left (148); one after event 1 holds 150, the
        // series' value there, and the series names that event.
        let at = |tick: u64, mut e: Event| {
            e.tick = tick;
            e
        };
        let events = [
            at(10, alloc(0x100, 150, 1)),
            at(10, free(0x100)),
            at(10, alloc(0x200, 148, 2)),
            at(20, alloc(0x300, 1, 3)),
        ];
        let mut by_tick = Replay {
            peak_at: Some(10),
            ..Replay::default()
        };
        by_tick.events(0, &events[..2]);
        by_tick.events(1, &events[2..]);
        assert_eq!(by_tick.peak.bytes, 148);
        let mut by_event = Replay {
            peak_at: Some(10),
            peak_at_event: Some(1),
            ..Replay::default()
        };
        by_event.events(0, &events[..2]);
        by_event.events(1, &events[2..]);
        assert_eq!((by_event.peak.bytes, by_event.peak.event_index), (150, 1));
        assert_eq!(by_event.peak.tick, Some(10));
        assert_eq!(sum(&by_event.peak_set(), 1, 0), (150, 1));
        // After event 2, the first of the second run: the tick is the run before's last.
        let mut across = Replay {
            peak_at_event: Some(2),
            ..Replay::default()
        };
        across.events(0, &events[..2]);
        across.events(1, &events[2..]);
        assert_eq!((across.peak.bytes, across.peak.tick), (0, Some(10)));
        // After the last event: taken at the end.
        let mut last = Replay {
            peak_at_event: Some(4),
            ..Replay::default()
        };
        last.events(0, &events);
        last.finish_peak_at(Some(20));
        assert_eq!((last.peak.bytes, last.peak.event_index), (149, 4));
        // A steps series names the event of each point's value: its tick's last.
        let mut free_run = Replay {
            heap_series: Series::steps(8),
            ..Replay::default()
        };
        free_run.events(0, &events);
        assert_eq!(
            free_run
                .heap_series
                .points_with_events()
                .collect::<Vec<_>>(),
            vec![(10, 148, 3), (20, 149, 4)]
        );
    }

    #[test]
    fn the_peak_set_is_what_was_live_at_the_peak() {
        let mut r = Replay::default();
        r.events(0, &[alloc(0x100, 100, 1), alloc(0x200, 50, 2)]);
        r.events(1, &[alloc(0x300, 30, 3)]); // peak: 180 in three
        r.events(0, &[free(0x100), alloc(0x400, 60, 4), free(0x200)]);
        r.events(1, &[free(0x300), alloc(0x500, 10, 5)]);
        assert_eq!(
            (r.peak.bytes, r.peak.allocations, r.peak.event_index),
            (180, 3, 3)
        );
        let set = r.peak_set();
        assert_eq!(
            set.total(),
            Sum {
                count: 3,
                bytes: 180
            }
        );
        assert_eq!(sum(&set, 1, 0), (100, 1));
        assert_eq!(sum(&set, 3, 1), (30, 1));
        assert_eq!(sum(&set, 4, 0), (0, 0));
        // At the end, exit set is the live heap.
        assert_eq!(
            r.exit_set().total(),
            Sum {
                count: 2,
                bytes: 70
            }
        );
    }

    #[test]
    fn a_peak_at_the_very_end_and_a_realloc_in_place() {
        let mut r = Replay::default();
        r.events(
            0,
            &[alloc(0x100, 100, 1), free(0x100), alloc(0x100, 150, 2)],
        );
        r.events(0, &[free(0x100), alloc(0x100, 20, 3), alloc(0x200, 200, 4)]);
        assert_eq!(r.peak.bytes, 220);
        let set = r.peak_set();
        assert_eq!(
            set.total(),
            Sum {
                count: 2,
                bytes: 220
            }
        );
        assert_eq!(sum(&set, 3, 0), (20, 1));
    }

    #[test]
    fn partial_unmaps_before_and_after_the_peak() {
        let mut r = Replay::default();
        r.events(
            0,
            &[
                mmap(0x10000, 0x4000, 1),
                munmap(0x11000, 0x1000),  // split: two pieces, 0x3000
                mmap(0x20000, 0x2000, 2), // peak 0x5000 in three pieces
                munmap(0x10000, 0x1000),
                munmap(0x21000, 0x800),
                munmap(0x20000, 0x1000),
            ],
        );
        assert_eq!((r.peak.bytes, r.peak.allocations), (0x5000, 3));
        let set = r.peak_set();
        assert_eq!(sum(&set, 1, 0), (0x3000, 2));
        assert_eq!(sum(&set, 2, 0), (0x2000, 1));
        assert_eq!(
            r.exit_set().total(),
            Sum {
                count: 2,
                bytes: 0x2800
            }
        );
    }

    #[test]
    fn the_exit_snapshot_set_and_temporaries() {
        let mut r = Replay::with_temporary(Some(1));
        let exit = Event::new(code::MARKER, 0, 0, 1, 0);
        r.events(
            0,
            &[
                alloc(0x100, 8, 1),
                free(0x100), // temporary
                alloc(0x200, 16, 2),
                alloc(0x300, 32, 3),
                free(0x200), // not: one allocation in between
                exit,
                free(0x300), // temporary: still the latest allocation
            ],
        );
        let set = r.exit_set();
        assert_eq!(
            set.total(),
            Sum {
                count: 1,
                bytes: 32
            }
        );
        let t = r.temporary.as_ref().map(|t| t.set.total());
        assert_eq!(
            t,
            Some(Sum {
                count: 2,
                bytes: 40
            })
        );
    }
}
