//! What was live at each time bucket's high-water mark, by (stack, thread, bucket of
//! allocation), from the replay's one pass: what the HTML report needs to show the heap at any
//! moment and what a time range left live, in bounded space.
//!
//! The run is cut into a fixed number of equal time buckets. For each bucket, the moment its
//! live bytes were highest (its high-water mark, the first time it was reached) is the bucket's
//! snapshot. For every key (stack, thread, bucket the allocation was made in), the bytes and
//! allocations live at each snapshot are kept as a step function: a value only where it
//! changed. An allocation freed before the next snapshot is never stored, so the size follows
//! the keys and buckets, not the events.
//!
//! Exactness: at a new high-water mark of the current bucket, nothing needs undoing; every
//! change after it is kept per key (`since`) and added back at the bucket's end, so the value at
//! the high-water mark is exact. `since` is cleared lazily (an epoch), so a rising heap costs
//! nothing more than a flat one.
//!
//! With [`Buckets::at_moments`] each bucket's snapshot is taken at a moment given instead (a
//! family's, where the sum of its processes' heaps was highest: see [`crate::family`]): what
//! was live after the last event at or before it.

use hashbrown::HashMap;

/// The key of a cell: (stack id, thread index, bucket of allocation).
pub type Key = (u64, u32, u32);

/// A value of a key at a snapshot: (bucket, bytes, allocations).
pub type Change = (u32, u64, u64);

#[derive(Debug, Default, Clone, Copy)]
struct Cell {
    /// Live now.
    bytes: i64,
    count: i64,
    /// Changes after the current bucket's high-water mark (valid while `epoch` is current).
    since_bytes: i64,
    since_count: i64,
    epoch: u64,
    /// The bucket in which the key was last listed as touched (+1; 0: never).
    touched: u32,
    /// The value last recorded.
    rec_bytes: u64,
    rec_count: u64,
    /// Its history's slot in [`Buckets::histories`] (+1; 0: none yet).
    slot: u32,
    /// The allocators of its allocations (bit `Allocator as u8`), told to
    /// [`Buckets::allocators`] at the bucket's end.
    allocators: u16,
}

/// The tracker, fed by the replay.
#[derive(Debug)]
pub struct Buckets {
    t0: u64,
    /// Ticks per bucket (at least 1).
    width: u64,
    n: usize,
    cur: usize,
    opened: bool,
    /// The event index that opened each bucket (the first event at or after its start).
    starts: Vec<u64>,
    /// Each bucket's high-water mark: (tick, live bytes).
    pub maxes: Vec<(u64, u64)>,
    cur_max: u64,
    epoch: u64,
    cells: HashMap<Key, Cell>,
    /// Keys touched in the current bucket.
    touched: Vec<Key>,
    /// Keys whose value at the last snapshot differs from what is live (to look at again).
    pending: Vec<Key>,
    histories: Vec<(Key, Vec<Change>)>,
    /// The first bucket after the script started (the buckets before hold nothing).
    first: usize,
    /// The allocators each stack used: bit `Allocator as u8`.
    allocators: HashMap<u64, u16>,
    /// Each bucket's snapshot moment (ticks), when given ([`Buckets::at_moments`]).
    moments: Option<Vec<u64>>,
    /// The current bucket's moment has passed (its snapshot is taken).
    marked: bool,
}

impl Buckets {
    /// Buckets of `width` ticks from `t0`, one per moment of `moments` (ticks, one in each
    /// bucket): each bucket's snapshot is what was live at its moment.
    pub fn at_moments(t0: u64, width: u64, moments: Vec<u64>) -> Buckets {
        let n = moments.len().max(1);
        let mut b = Buckets::new(n, t0, t0 + width.max(1) * n as u64 - 1);
        b.width = width.max(1);
        b.moments = Some(moments);
        b
    }

    /// With moments: the event at `tick` comes after the current bucket's moment, so the
    /// snapshot is what is live now (changes from here on are undone at the bucket's end).
    #[inline]
    fn mark_if_past(&mut self, tick: u64, live: u64) {
        if self.marked {
            return;
        }
        if let Some(at) = self.moments.as_ref().and_then(|m| m.get(self.cur).copied()) {
            if tick > at {
                self.marked = true;
                self.epoch += 1;
                self.cur_max = live;
                self.maxes[self.cur] = (at, live);
            }
        }
    }

    /// `n` buckets over the ticks `first_tick..=last_tick`.
    pub fn new(n: usize, first_tick: u64, last_tick: u64) -> Buckets {
        let n = n.max(1);
        let span = last_tick.saturating_sub(first_tick) + 1;
        let width = span.div_ceil(n as u64).max(1);
        Buckets {
            t0: first_tick,
            width,
            n,
            cur: 0,
            opened: false,
            starts: Vec::with_capacity(n),
            maxes: vec![(first_tick, 0); n],
            cur_max: 0,
            epoch: 1,
            cells: HashMap::new(),
            touched: Vec::new(),
            pending: Vec::new(),
            histories: Vec::new(),
            first: 0,
            allocators: HashMap::new(),
            moments: None,
            marked: false,
        }
    }

    /// The bucket a tick falls in.
    #[inline]
    fn bucket_of_tick(&self, tick: u64) -> usize {
        ((tick.saturating_sub(self.t0) / self.width) as usize).min(self.n - 1)
    }

    /// Before each event: closes the buckets that ended before `tick`. `live` is the live
    /// bytes before the event, `index` the event's index.
    #[inline]
    pub fn advance(&mut self, tick: u64, live: u64, index: u64) {
        let b = self.bucket_of_tick(tick);
        if !self.opened || b > self.cur {
            self.open(b, tick, live, index);
        }
        if self.moments.is_some() {
            self.mark_if_past(tick, live);
        }
    }

    #[cold]
    fn open(&mut self, b: usize, tick: u64, live: u64, index: u64) {
        if !self.opened {
            self.opened = true;
            while self.starts.len() < b {
                self.starts.push(index);
            }
        } else {
            // Close the current bucket and the empty ones up to `b` (their snapshot: the
            // start, when nothing changed).
            while self.cur < b {
                self.close();
                self.cur += 1;
                self.cur_max = live;
                self.maxes[self.cur] = (self.t0 + self.cur as u64 * self.width, live);
                self.epoch += 1;
            }
        }
        while self.starts.len() <= b {
            self.starts.push(index);
        }
        self.cur = b;
        self.cur_max = live;
        self.maxes[b] = (tick.max(self.t0 + b as u64 * self.width), live);
        self.epoch += 1;
        self.marked = false;
    }

    /// The bucket an allocation of event `index` was made in.
    #[inline]
    fn bucket_of_index(&self, index: u64) -> u32 {
        (self.starts.partition_point(|&s| s <= index).max(1) - 1) as u32
    }

    #[inline]
    fn touch(&mut self, key: Key) -> &mut Cell {
        let cur = self.cur as u32 + 1;
        let cell = self.cells.entry(key).or_default();
        if cell.touched != cur {
            cell.touched = cur;
            self.touched.push(key);
        }
        cell
    }

    /// After an allocation by `allocator` (its code, `Allocator as u8`) made at `tick`: `live`
    /// is the live bytes after it.
    #[inline]
    pub fn allocated(
        &mut self,
        stack: u64,
        thread: u32,
        allocator: u8,
        size: u64,
        tick: u64,
        live: u64,
    ) {
        let key = (stack, thread, self.cur as u32);
        // With moments, the snapshot is taken by the clock (`mark_if_past`), not by the heap.
        let new_max = self.moments.is_none() && live > self.cur_max;
        let epoch = self.epoch;
        let cell = self.touch(key);
        cell.allocators |= 1 << (allocator & 15);
        cell.bytes += size as i64;
        cell.count += 1;
        if !new_max {
            if cell.epoch != epoch {
                cell.epoch = epoch;
                cell.since_bytes = 0;
                cell.since_count = 0;
            }
            cell.since_bytes -= size as i64;
            cell.since_count -= 1;
        } else {
            // A new high-water mark: what came after the last one no longer counts.
            self.epoch += 1;
            self.cur_max = live;
            self.maxes[self.cur] = (tick, live);
        }
    }

    /// After part of an allocation of event `index` went.
    #[inline]
    pub fn freed(&mut self, index: u64, stack: u64, thread: u32, bytes: u64, count: i64) {
        let key = (stack, thread, self.bucket_of_index(index));
        let epoch = self.epoch;
        let cell = self.touch(key);
        cell.bytes -= bytes as i64;
        cell.count -= count;
        if cell.epoch != epoch {
            cell.epoch = epoch;
            cell.since_bytes = 0;
            cell.since_count = 0;
        }
        cell.since_bytes += bytes as i64;
        cell.since_count += count;
    }

    /// Records the current bucket's snapshot of every key that may have changed.
    fn close(&mut self) {
        if self.moments.is_some() && !self.marked {
            // The moment came after the bucket's last event: the snapshot is what is live at
            // its end.
            self.epoch += 1;
            self.marked = true;
        }
        let b = self.cur as u32;
        let mut keys = std::mem::take(&mut self.touched);
        keys.append(&mut self.pending);
        for key in keys {
            let Some(cell) = self.cells.get_mut(&key) else {
                continue;
            };
            if cell.allocators != 0 {
                *self.allocators.entry(key.0).or_default() |= std::mem::take(&mut cell.allocators);
            }
            let (sb, sc) = if cell.epoch == self.epoch {
                (cell.since_bytes, cell.since_count)
            } else {
                (0, 0)
            };
            let bytes = (cell.bytes + sb).max(0) as u64;
            let count = (cell.count + sc).max(0) as u64;
            if (bytes, count) != (cell.rec_bytes, cell.rec_count) {
                if cell.slot == 0 {
                    self.histories.push((key, Vec::new()));
                    cell.slot = self.histories.len() as u32;
                }
                self.histories[cell.slot as usize - 1]
                    .1
                    .push((b, bytes, count));
                cell.rec_bytes = bytes;
                cell.rec_count = count;
            }
            let live = (cell.bytes.max(0) as u64, cell.count.max(0) as u64);
            cell.epoch = 0;
            if live != (cell.rec_bytes, cell.rec_count) {
                // Listed again at the next bucket's end (once).
                if cell.touched != b + 2 {
                    cell.touched = b + 2;
                    self.pending.push(key);
                }
            } else if live == (0, 0) {
                // Gone for good: its bucket of allocation is past.
                self.cells.remove(&key);
            }
        }
        // The pending keys are the next bucket's touched ones.
        self.touched = std::mem::take(&mut self.pending);
    }

    /// The replay forgot what was live (a Python script's start): the buckets so far hold
    /// nothing, and the keys start afresh.
    pub fn start_afresh(&mut self, tick: u64, index: u64) {
        self.advance(tick, 0, index);
        self.cells.clear();
        self.touched.clear();
        self.pending.clear();
        self.histories.clear();
        self.epoch += 1;
        self.cur_max = 0;
        for m in &mut self.maxes[..self.cur] {
            m.1 = 0;
        }
        self.maxes[self.cur] = (tick, 0);
        self.first = self.cur;
    }

    /// Closes the last bucket and the empty ones after it.
    pub fn finish(mut self) -> BucketData {
        if self.opened {
            loop {
                self.close();
                if self.cur + 1 >= self.n {
                    break;
                }
                self.cur += 1;
                let live = self.cur_max_live();
                self.maxes[self.cur] = (self.t0 + self.cur as u64 * self.width, live);
                self.epoch += 1;
                self.marked = false;
            }
        }
        BucketData {
            t0: self.t0,
            width: self.width,
            first: self.first,
            maxes: self.maxes,
            histories: self.histories,
            allocators: self.allocators,
        }
    }

    /// What is live now (at the end), by the cells.
    fn cur_max_live(&self) -> u64 {
        self.cells.values().map(|c| c.bytes.max(0) as u64).sum()
    }
}

/// The result: each bucket's high-water mark and each key's values at the snapshots.
#[derive(Debug, Default, Clone)]
pub struct BucketData {
    /// The first bucket's start, in ticks.
    pub t0: u64,
    /// Ticks per bucket.
    pub width: u64,
    /// The first bucket after the script's start.
    pub first: usize,
    /// Each bucket's high-water mark: (tick, live bytes).
    pub maxes: Vec<(u64, u64)>,
    /// Each key's value at every snapshot where it changed (zero before the first).
    pub histories: Vec<(Key, Vec<Change>)>,
    /// The allocators each stack used: bit `Allocator as u8`.
    pub allocators: HashMap<u64, u16>,
}

impl BucketData {
    /// The bytes and allocations of `key`'s history at snapshot `b`.
    pub fn value_at(history: &[Change], b: u32) -> (u64, u64) {
        let i = history.partition_point(|c| c.0 <= b);
        if i == 0 {
            (0, 0)
        } else {
            (history[i - 1].1, history[i - 1].2)
        }
    }

    /// Live bytes at snapshot `b`, over every key.
    pub fn live_at(&self, b: u32) -> u64 {
        self.histories
            .iter()
            .map(|(_, h)| Self::value_at(h, b).0)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Replays (tick, +size stack | -index) by hand.
    struct Sim {
        b: Buckets,
        live: u64,
        index: u64,
        blocks: HashMap<u64, (u64, u64)>,
    }

    impl Sim {
        fn alloc(&mut self, tick: u64, stack: u64, size: u64) -> u64 {
            self.index += 1;
            self.b.advance(tick, self.live, self.index);
            self.live += size;
            self.blocks.insert(self.index, (stack, size));
            self.b.allocated(stack, 0, 0, size, tick, self.live);
            self.index
        }
        fn free(&mut self, tick: u64, which: u64) {
            self.index += 1;
            self.b.advance(tick, self.live, self.index);
            let (stack, size) = self.blocks.remove(&which).expect("live");
            self.live -= size;
            self.b.freed(which, stack, 0, size, 1);
        }
    }

    fn at(d: &BucketData, stack: u64, abucket: u32, b: u32) -> (u64, u64) {
        d.histories
            .iter()
            .find(|(k, _)| *k == (stack, 0, abucket))
            .map(|(_, h)| BucketData::value_at(h, b))
            .unwrap_or_default()
    }

    #[test]
    fn each_bucket_keeps_what_was_live_at_its_high_water_mark() {
        // Four buckets of 10 ticks.
        let mut s = Sim {
            b: Buckets::new(4, 0, 39),
            live: 0,
            index: 0,
            blocks: HashMap::new(),
        };
        let a = s.alloc(1, 1, 100); // bucket 0
        let t = s.alloc(2, 2, 1000); // a spike: the high-water mark of bucket 0 (1100)
        s.free(3, t);
        let c = s.alloc(4, 3, 50); // after the mark: not live at it
        s.free(12, a); // bucket 1: its mark is its start (150)
        let _d = s.alloc(13, 4, 10);
        s.free(25, c); // bucket 2
        let d = s.b.finish();
        assert_eq!(d.maxes[0], (2, 1100));
        assert_eq!(d.maxes[1].1, 150);
        assert_eq!(d.maxes[2].1, 60);
        assert_eq!(d.maxes[3].1, 10);
        assert_eq!(at(&d, 1, 0, 0), (100, 1));
        assert_eq!(at(&d, 2, 0, 0), (1000, 1));
        assert_eq!(at(&d, 3, 0, 0), (0, 0), "allocated after the mark");
        assert_eq!(at(&d, 2, 0, 1), (0, 0));
        assert_eq!(at(&d, 1, 0, 1), (100, 1), "freed after bucket 1's mark");
        assert_eq!(at(&d, 3, 0, 1), (50, 1));
        assert_eq!(at(&d, 1, 0, 2), (0, 0));
        assert_eq!(at(&d, 4, 1, 2), (10, 1));
        assert_eq!(at(&d, 3, 0, 2), (50, 1), "freed after bucket 2's mark");
        assert_eq!(at(&d, 3, 0, 3), (0, 0));
        assert_eq!(at(&d, 4, 1, 3), (10, 1));
        for b in 0..4 {
            assert_eq!(d.live_at(b), d.maxes[b as usize].1, "bucket {b}");
        }
    }

    #[test]
    fn a_rising_heap_and_empty_buckets() {
        let mut s = Sim {
            b: Buckets::new(10, 0, 999),
            live: 0,
            index: 0,
            blocks: HashMap::new(),
        };
        for i in 0..100 {
            s.alloc(i, i % 3, 10);
        }
        s.alloc(950, 7, 5);
        let d = s.b.finish();
        assert_eq!(d.maxes[0].1, 1000);
        for b in 0..10 {
            assert_eq!(d.live_at(b), d.maxes[b as usize].1, "bucket {b}");
        }
        assert_eq!(d.maxes[9].1, 1005);
        assert_eq!(d.maxes[5].1, 1000);
    }

    #[test]
    fn with_moments_each_snapshot_is_what_was_live_at_its_moment() {
        // Four buckets of 10 ticks; moments at 5, 15, 25 and 35.
        let mut s = Sim {
            b: Buckets::at_moments(0, 10, vec![5, 15, 25, 35]),
            live: 0,
            index: 0,
            blocks: HashMap::new(),
        };
        let a = s.alloc(1, 1, 100);
        let spike = s.alloc(2, 2, 1000); // a high-water mark before the moment: not kept
        s.free(3, spike);
        let c = s.alloc(5, 3, 50); // at the moment: live at it
        let _late = s.alloc(7, 4, 7); // after it
        s.free(12, a); // bucket 1: before its moment
        s.free(16, c); // after it
        s.alloc(21, 5, 3); // bucket 2: its moment is after its last event
        let d = s.b.finish();
        assert_eq!(d.live_at(0), 150);
        assert_eq!(at(&d, 2, 0, 0), (0, 0));
        assert_eq!(at(&d, 4, 0, 0), (0, 0), "after the moment");
        assert_eq!(d.live_at(1), 57);
        assert_eq!(at(&d, 3, 0, 1), (50, 1), "freed after bucket 1's moment");
        assert_eq!(d.live_at(2), 10);
        assert_eq!(d.live_at(3), 10, "an empty bucket");
    }
}
