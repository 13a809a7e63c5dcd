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
//!
//! Speed: the replay tells every event, so the per-event path avoids hashing where it can. The
//! cells live in a slab (dense, reused once gone); a small direct-mapped memo in front of the
//! key map finds the cell of a recently used key (allocation sites repeat) without hashing the
//! whole key, and a free's bucket of allocation is the current one without a search when the
//! block is that recent.

use hashbrown::HashMap;

/// The key of a cell: (stack id, thread index, bucket of allocation).
pub type Key = (u64, u32, u32);

/// A value of a key at a snapshot: (bucket, bytes, allocations).
pub type Change = (u32, u64, u64);

#[derive(Debug, Clone, Copy)]
struct Cell {
    /// Its key (the slab is indexed by slot, not by key).
    key: Key,
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

impl Cell {
    fn new(key: Key) -> Cell {
        Cell {
            key,
            bytes: 0,
            count: 0,
            since_bytes: 0,
            since_count: 0,
            epoch: 0,
            touched: 0,
            rec_bytes: 0,
            rec_count: 0,
            slot: 0,
            allocators: 0,
        }
    }
}

/// Entries of the memo in front of the key map (a power of two).
const MEMO: usize = 512;

/// A memo entry that matches no key (no stack id has all 64 bits set).
const NO_KEY: Key = (u64::MAX, u32::MAX, u32::MAX);

/// The memo entry of a key: a multiplicative hash of its three parts.
#[inline]
fn memo_of(key: Key) -> usize {
    let mixed = key.0 ^ (u64::from(key.1) << 32) ^ (u64::from(key.2) << 48);
    (mixed.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - MEMO.trailing_zeros())) as usize
}

/// The cells by key: a slab of cells, the map from key to slot, and the memo of recent keys.
#[derive(Debug)]
struct Cells {
    slab: Vec<Cell>,
    /// Slots of the slab whose cell is gone, to reuse.
    vacant: Vec<u32>,
    slots: HashMap<Key, u32>,
    /// (key, slot) of recently used keys, at [`memo_of`] of the key.
    memo: Vec<(Key, u32)>,
}

impl Default for Cells {
    fn default() -> Cells {
        Cells {
            slab: Vec::new(),
            vacant: Vec::new(),
            slots: HashMap::new(),
            memo: vec![(NO_KEY, 0); MEMO],
        }
    }
}

impl Cells {
    /// The slot of `key`'s cell, made when it has none.
    #[inline]
    fn slot(&mut self, key: Key) -> usize {
        let m = memo_of(key);
        let (k, slot) = self.memo[m];
        if k == key {
            return slot as usize;
        }
        self.slot_slow(key, m)
    }

    #[inline(never)]
    fn slot_slow(&mut self, key: Key, m: usize) -> usize {
        let slot = match self.slots.entry(key) {
            hashbrown::hash_map::Entry::Occupied(o) => *o.get(),
            hashbrown::hash_map::Entry::Vacant(v) => {
                let slot = match self.vacant.pop() {
                    Some(s) => {
                        self.slab[s as usize] = Cell::new(key);
                        s
                    }
                    None => {
                        self.slab.push(Cell::new(key));
                        (self.slab.len() - 1) as u32
                    }
                };
                *v.insert(slot)
            }
        };
        self.memo[m] = (key, slot);
        slot as usize
    }

    /// Removes the cell at `slot`.
    fn remove(&mut self, slot: usize) {
        let key = self.slab[slot].key;
        self.slots.remove(&key);
        self.vacant.push(slot as u32);
        let m = memo_of(key);
        if self.memo[m].0 == key {
            self.memo[m] = (NO_KEY, 0);
        }
    }

    fn clear(&mut self) {
        self.slab.clear();
        self.vacant.clear();
        self.slots.clear();
        self.memo.fill((NO_KEY, 0));
    }

    /// Every cell there is.
    fn iter(&self) -> impl Iterator<Item = &Cell> + '_ {
        self.slots.values().map(|&s| &self.slab[s as usize])
    }
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
    /// The bucket [`Buckets::bucket_of_index`] found last by a search.
    found: u32,
    /// Each bucket's high-water mark: (tick, live bytes).
    pub maxes: Vec<(u64, u64)>,
    cur_max: u64,
    epoch: u64,
    cells: Cells,
    /// The first tick after the current bucket (u64::MAX for the last one): [`Buckets::advance`]
    /// opens a bucket only from there.
    next_tick: u64,
    /// Slots of the cells touched in the current bucket.
    touched: Vec<u32>,
    /// Slots of the cells whose value at the last snapshot differs from what is live (to look
    /// at again).
    pending: Vec<u32>,
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

    /// How many buckets there are.
    pub fn count(&self) -> usize {
        self.n
    }

    /// `n` buckets over a memory series alone, `points` (tick, live bytes) in tick order: an
    /// aggregated capture's, which has no event to replay. Each bucket's high-water mark is its
    /// highest point, or the level the last point before it left (memory stays where it was
    /// between points); no key has a history (its values over time were not recorded).
    pub fn from_series(n: usize, points: &[(u64, u64)]) -> Buckets {
        let first = points.first().map_or(0, |p| p.0);
        let last = points.last().map_or(first, |p| p.0);
        let mut b = Buckets::new(n, first, last);
        let mut level = 0;
        let mut next = 0;
        for &(tick, bytes) in points {
            let i = b.bucket_of_tick(tick);
            // Buckets without a point of their own keep the level.
            while next < i {
                next += 1;
                b.maxes[next] = (b.t0 + next as u64 * b.width, level);
            }
            if bytes > b.maxes[i].1 {
                b.maxes[i] = (tick, bytes);
            }
            level = bytes;
        }
        for k in next + 1..b.n {
            b.maxes[k] = (b.t0 + k as u64 * b.width, level);
        }
        b
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
            found: 0,
            maxes: vec![(first_tick, 0); n],
            cur_max: 0,
            epoch: 1,
            cells: Cells::default(),
            next_tick: 0,
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
        if tick >= self.next_tick || !self.opened {
            let b = self.bucket_of_tick(tick);
            if !self.opened || b > self.cur {
                self.open(b, tick, live, index);
            }
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
        self.next_tick = if b + 1 < self.n {
            self.t0
                .saturating_add((b as u64 + 1).saturating_mul(self.width))
        } else {
            u64::MAX
        };
    }

    /// The bucket an allocation of event `index` was made in.
    #[inline]
    fn bucket_of_index(&mut self, index: u64) -> u32 {
        // Most blocks go soon (made in the latest bucket opened), or in runs made together
        // (the bucket found last): no search then.
        let starts = &self.starts;
        let n = starts.len();
        if let Some(&s) = starts.last() {
            if index >= s {
                return (n - 1) as u32;
            }
        }
        let f = self.found as usize;
        if f + 1 < n && starts[f] <= index && index < starts[f + 1] {
            return f as u32;
        }
        let b = (starts.partition_point(|&s| s <= index).max(1) - 1) as u32;
        self.found = b;
        b
    }

    #[inline]
    fn touch(&mut self, key: Key) -> &mut Cell {
        let cur = self.cur as u32 + 1;
        let slot = self.cells.slot(key);
        let cell = &mut self.cells.slab[slot];
        if cell.touched != cur {
            cell.touched = cur;
            self.touched.push(slot as u32);
        }
        cell
    }

    /// After an allocation by `allocator` (its code, `Allocator as u8`) of `size` bytes standing
    /// for `count` allocations (1 but in a sampled capture) made at `tick`: `live` is the live
    /// bytes after it.
    #[inline]
    #[allow(clippy::too_many_arguments)]
    pub fn allocated(
        &mut self,
        stack: u64,
        thread: u32,
        allocator: u8,
        size: u64,
        count: u64,
        tick: u64,
        live: u64,
    ) {
        let count = count as i64;
        let key = (stack, thread, self.cur as u32);
        // With moments, the snapshot is taken by the clock (`mark_if_past`), not by the heap.
        let new_max = self.moments.is_none() && live > self.cur_max;
        let epoch = self.epoch;
        let cell = self.touch(key);
        cell.allocators |= 1 << (allocator & 15);
        cell.bytes += size as i64;
        cell.count += count;
        if !new_max {
            if cell.epoch != epoch {
                cell.epoch = epoch;
                cell.since_bytes = 0;
                cell.since_count = 0;
            }
            cell.since_bytes -= size as i64;
            cell.since_count -= count;
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
        let mut slots = std::mem::take(&mut self.touched);
        slots.append(&mut self.pending);
        for &slot in &slots {
            let slot = slot as usize;
            let cell = &mut self.cells.slab[slot];
            let key = cell.key;
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
                    self.pending.push(slot as u32);
                }
            } else if live == (0, 0) {
                // Gone for good: its bucket of allocation is past.
                self.cells.remove(slot);
            }
        }
        // The list's memory serves again (a cell is listed once per close: no slot is both
        // removed and listed again before it ends).
        slots.clear();
        self.touched = slots;
        // The pending keys are the next bucket's touched ones.
        std::mem::swap(&mut self.touched, &mut self.pending);
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
        self.cells.iter().map(|c| c.bytes.max(0) as u64).sum()
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
            self.b.allocated(stack, 0, 0, size, 1, tick, self.live);
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

    /// The slab and its memo against a plain map, over keys that collide in the memo.
    #[test]
    fn cells_find_the_same_cell_as_a_map_through_removals_and_reuse() {
        let mut cells = Cells::default();
        let mut model: HashMap<Key, i64> = HashMap::new();
        let mut rng = crate::analysis::test_rng::Rng(0x2545_f491_4f6c_dd1d);
        for step in 0..200_000u64 {
            let x = rng.next();
            // Few keys (the memo hits and collides), some sharing a stack or a bucket.
            let key: Key = (x % 700, (x >> 20) as u32 % 3, (x >> 30) as u32 % 5);
            if x.is_multiple_of(11) {
                if model.remove(&key).is_some() {
                    let slot = cells.slots[&key] as usize;
                    cells.remove(slot);
                }
            } else {
                let slot = cells.slot(key);
                assert_eq!(cells.slab[slot].key, key);
                cells.slab[slot].bytes += step as i64;
                *model.entry(key).or_default() += step as i64;
            }
            if step % 50_000 == 0 {
                cells.clear();
                model.clear();
            }
        }
        let mut got: Vec<(Key, i64)> = cells.iter().map(|c| (c.key, c.bytes)).collect();
        let mut want: Vec<(Key, i64)> = model.into_iter().collect();
        got.sort_unstable();
        want.sort_unstable();
        assert_eq!(got, want);
        assert!(cells.slab.len() <= 700 * 3 * 5, "slots are reused");
    }

    #[test]
    fn the_bucket_of_an_allocation_with_and_without_a_search() {
        let mut b = Buckets::new(8, 0, 79);
        b.starts = vec![1, 5, 5, 9, 20];
        let search =
            |starts: &[u64], i: u64| (starts.partition_point(|&s| s <= i).max(1) - 1) as u32;
        let starts = b.starts.clone();
        for i in [0, 1, 4, 5, 6, 8, 9, 19, 20, 25, 3, 3, 12, 0, 7, 7] {
            assert_eq!(b.bucket_of_index(i), search(&starts, i), "index {i}");
        }
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
