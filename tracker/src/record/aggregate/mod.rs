//! Aggregated recording (`memtrace run --aggregate`, MEMTRACE_AGGREGATE=1): no record per
//! allocation and free; sums per (stack, thread) instead, written out as snapshots
//! (memtrace_format::aggregate) so that the capture grows with the distinct stacks and the
//! length of the run, not with the number of events.
//!
//! Under one lock: a table of the live blocks (address -> size, entry), the entries (one per
//! stack and thread: live, at the peak, in all), the histogram and totals, and the memory
//! series of the current window. What was live at the peak is kept lazily and exactly: an
//! entry keeps its value at the last peak when it first changes after that peak (see
//! [`Entry::touch`]), so a new peak costs nothing.
//!
//! A snapshot (the entries changed since the one before) is written into the capture when the
//! heap reaches a peak 10% above the last written one, every [`EVERY_NS`] while the program
//! allocates, at the "live at exit" marker and when the capture ends: a kill loses at most the
//! last few seconds. Snapshots are written by the allocating thread, inside its hook: the
//! memory for them, as for the tables, comes from raw mappings.

mod map;
mod mappings;
mod shadow;
mod snapshot;
#[cfg(test)]
mod tests;

use crate::biased_lock::{BiasedLock, Held};
use crate::{clock, sys};
use map::{Inserted, Map};
use mappings::{Mappings, Taken};
use memtrace_format::aggregate::{ALLOCATORS, BINS};
use memtrace_format::{Allocator, Marker};
use shadow::{Put, Shadow};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

/// Aggregated recording is on.
static ON: AtomicBool = AtomicBool::new(false);
static STATE: BiasedLock<State> = BiasedLock::new(State::new());
/// The live table's slots, for prefetching.
static LIVE_HINT: map::Hint = map::Hint::new();

/// A snapshot at least this often while the program allocates.
const EVERY_NS: u64 = 2_000_000_000;
/// The memory series' resolution.
const WINDOW_NS: u64 = 100_000_000;
/// Points of the series kept between snapshots (a snapshot is written when it is full).
const POINTS: usize = 64;
/// A new peak is written when it is this much above the last written one (and 10% more).
const PEAK_STEP_MIN: u64 = 64 << 10;

/// Buckets of the filter of the large blocks' addresses (4 KiB: stays in the cache).
const LARGE_FILTER: usize = 4096;
/// The largest table of entries a new capture reuses (4.5 MiB: 65,536 entries).
const KEEP_ENTRY_BYTES: usize = 65_536 * core::mem::size_of::<Entry>();

/// The filter bucket of an address.
#[inline(always)]
fn large_bucket(addr: u64) -> usize {
    ((addr >> 4) ^ (addr >> 16)) as usize & (LARGE_FILTER - 1)
}

/// Entries remembered by [`State::entry_of`].
const RECENT: usize = 64;

#[inline(always)]
fn recent_slot(stack: u64, serial: u32) -> usize {
    (stack as usize ^ (serial as usize) << 3) & (RECENT - 1)
}

/// The sums of one (stack, thread).
#[derive(Clone, Copy)]
struct Entry {
    stack: u64,
    serial: u32,
    /// The event that last changed it.
    changed: u64,
    live_count: u64,
    live_bytes: u64,
    /// Its live values at the last peak, once it changed after it.
    peak_count: u64,
    peak_bytes: u64,
    total_count: u64,
    total_bytes: u64,
}

impl Entry {
    /// Before a change at event `now`: keeps the live values as those at the last peak when
    /// this is the first change since it (`peak_event`).
    #[inline(always)]
    fn touch(&mut self, now: u64, peak_event: u64) {
        if self.changed <= peak_event {
            self.peak_count = self.live_count;
            self.peak_bytes = self.live_bytes;
        }
        self.changed = now;
    }

    /// Live at the last peak.
    fn at_peak(&self, peak_event: u64) -> (u64, u64) {
        if self.changed <= peak_event {
            (self.live_count, self.live_bytes)
        } else {
            (self.peak_count, self.peak_bytes)
        }
    }
}

pub(super) struct State {
    /// The live small blocks (one allocation each): address -> (bytes, entry index).
    small: Shadow,
    /// The other live blocks: address -> (bytes, entry index | allocations << 32).
    live: Map,
    /// How many of `live`'s keys fall in each bucket ([`large_bucket`]; stuck once at 255):
    /// a free or a small allocation looks in `live` only when its bucket has one.
    large_filter: [u8; LARGE_FILTER],
    /// (stack, serial) key -> entry index.
    keys: Map,
    /// The live mappings (mmap, mremap), as intervals: an unmap may take any part of one.
    maps: Mappings,
    /// Entries looked up lately: (stack, serial (u64::MAX: none), entry index) by stack and
    /// serial modulo [`RECENT`]. A line's allocations come in runs, and a few lines take turns
    /// (one remembered entry missed a quarter of small_objects.py's allocations).
    recent: [(u64, u64, usize); RECENT],
    entries: *mut Entry,
    entries_len: usize,
    entries_cap: usize,
    /// Events counted (each allocation, free or unmap that found its block).
    events: u64,
    /// The event of the last peak.
    peak_event: u64,
    live_bytes: u64,
    live_count: u64,
    peak_bytes: u64,
    peak_count: u64,
    peak_tick: u64,
    allocators: [u64; ALLOCATORS],
    /// Frees by kind (free and the like, pymalloc's, unmaps): all of them, found or not.
    free_kinds: [u64; 3],
    /// Frees that found their block and unmaps that took part of a mapping: the frees a full
    /// capture's reports count.
    found_frees: u64,
    histogram: [(u64, u64); BINS],
    /// `events` when the last snapshot was written (entries changed after it are written).
    written_event: u64,
    /// The allocations and frees (of every kind) when the last snapshot was written.
    written_allocations: u64,
    written_frees: u64,
    seq: u64,
    /// The tick of the last snapshot (the series' points count from it).
    written_tick: u64,
    /// A new peak at or above this is written at once.
    next_peak_write: u64,
    /// A fall of the heap to this is written at once (a program that frees most of what it
    /// holds, then waits to be killed, as a pool's worker is, leaves what it holds then).
    next_fall_write: u64,
    /// The current window of the series: its end (tick), its highest live bytes and when.
    window_end: u64,
    window_max: u64,
    window_tick: u64,
    /// The tick of the last timed event (an allocation, a mapping's change).
    last_tick: u64,
    /// When the heap first fell from the window's highest (0: it has not): a free carries no
    /// time, so the first one after the highest reads the clock. The window's fall is placed
    /// there: placed at the last timed event before it (the allocation of a block held while
    /// the program waited), a chart read the block as gone at once, and a family's combined
    /// peak missed a child holding memory while idle.
    fall_tick: u64,
    points: [(u64, u64); POINTS],
    points_len: usize,
    /// The clock at the start, to turn nanoseconds into ticks.
    start: (u64, u64),
    next_write_ns: u64,
    /// The next snapshot starts afresh (a Python run's script started).
    afresh: bool,
    /// Byte sampling (0: every allocation): an allocation stands for more bytes.
    sample_bytes: u64,
    buf: snapshot::Buffers,
}

// SAFETY: the state is only reached through its lock.
unsafe impl Send for State {}

impl State {
    const fn new() -> State {
        State {
            small: Shadow::new(),
            live: Map::hinted(&LIVE_HINT),
            large_filter: [0; LARGE_FILTER],
            keys: Map::new(),
            maps: Mappings::new(),
            recent: [(0, u64::MAX, 0); RECENT],
            entries: core::ptr::null_mut(),
            entries_len: 0,
            entries_cap: 0,
            events: 0,
            peak_event: 0,
            live_bytes: 0,
            live_count: 0,
            peak_bytes: 0,
            peak_count: 0,
            peak_tick: 0,
            allocators: [0; ALLOCATORS],
            free_kinds: [0; 3],
            found_frees: 0,
            histogram: [(0, 0); BINS],
            written_event: 0,
            written_allocations: 0,
            written_frees: 0,
            seq: 0,
            written_tick: 0,
            next_peak_write: 0,
            next_fall_write: 0,
            window_end: 0,
            window_max: 0,
            fall_tick: 0,
            window_tick: 0,
            last_tick: 0,
            points: [(0, 0); POINTS],
            points_len: 0,
            start: (0, 0),
            next_write_ns: 0,
            afresh: false,
            sample_bytes: 0,
            buf: snapshot::Buffers::new(),
        }
    }

    /// Forgets every sum (the snapshot buffers and the snapshot count stay). The tables of a
    /// small capture keep their memory, zeroed, for the next one (Shadow::reset, Map::reset;
    /// entries are written whole when made): the pytest plugin makes one capture per test, and
    /// unmapping the tables and faulting them in again was most of its kernel time.
    fn clear(&mut self) {
        // A fork child gives the parent's tables back: zeroing them would copy each page.
        let keep = !FORKED.swap(false, Ordering::Relaxed);
        if keep {
            self.small.reset();
            self.live.reset();
            self.keys.reset();
            self.maps.reset();
        } else {
            self.small.clear();
            self.live.clear();
            self.keys.clear();
            self.maps.clear();
        }
        let entry_bytes = self.entries_cap * core::mem::size_of::<Entry>();
        let keep_entries = keep && entry_bytes <= KEEP_ENTRY_BYTES;
        if !self.entries.is_null() && !keep_entries {
            sys::unmap(self.entries as *mut u8, entry_bytes);
        }
        let (small, live, keys) = (
            core::mem::replace(&mut self.small, Shadow::new()),
            core::mem::replace(&mut self.live, Map::new()),
            core::mem::replace(&mut self.keys, Map::new()),
        );
        let maps = core::mem::replace(&mut self.maps, Mappings::new());
        let (entries, entries_cap) = (self.entries, self.entries_cap);
        let buf = core::mem::replace(&mut self.buf, snapshot::Buffers::new());
        let (seq, start, next_write_ns, sample_bytes) =
            (self.seq, self.start, self.next_write_ns, self.sample_bytes);
        *self = State::new();
        (self.small, self.live, self.keys) = (small, live, keys);
        self.maps = maps;
        if keep_entries {
            (self.entries, self.entries_cap) = (entries, entries_cap);
        }
        self.buf = buf;
        self.seq = seq;
        self.start = start;
        self.next_write_ns = next_write_ns;
        self.sample_bytes = sample_bytes;
    }

    /// Frees counted (of every kind, their blocks found or not).
    fn frees(&self) -> u64 {
        self.free_kinds.iter().sum()
    }

    /// Allocations and bytes allocated in all: the entries' totals, summed when a snapshot is
    /// written rather than counted again at every allocation.
    fn allocated(&self) -> (u64, u64) {
        (0..self.entries_len).fold((0, 0), |(n, b), i| {
            // SAFETY: i < entries_len <= entries_cap, in the live mapping (the lock is held).
            let e = unsafe { &*self.entries.add(i) };
            (n + e.total_count, b.saturating_add(e.total_bytes))
        })
    }

    #[inline(always)]
    fn entry(&mut self, i: usize) -> &mut Entry {
        // SAFETY: i < entries_len <= entries_cap, in the live mapping (the lock is held).
        unsafe { &mut *self.entries.add(i) }
    }

    /// The index of the entry of (stack, serial), made if new; None when out of memory.
    #[inline]
    fn entry_of(&mut self, stack: u64, serial: u32) -> Option<usize> {
        let (s, t, i) = self.recent[recent_slot(stack, serial)];
        if stack == s && u64::from(serial) == t {
            return Some(i);
        }
        self.look_up(stack, serial)
    }

    /// [`State::entry_of`] of a (stack, serial) not among the recent ones.
    #[inline(never)]
    fn look_up(&mut self, stack: u64, serial: u32) -> Option<usize> {
        let key = (stack << 20 | u64::from(serial & 0xF_FFFF)) | 1 << 63;
        let i = match self.keys.get(key) {
            Some((i, _)) => i as usize,
            None => match self.new_entry(key, stack, serial) {
                Some(i) => i,
                // Memory short: counted without its stack (the sums stay exact, "<unknown>"
                // holds them) rather than dropped, which left totals that disagreed.
                None if stack != 0 => return self.look_up(0, serial),
                None => return None,
            },
        };
        self.recent[recent_slot(stack, serial)] = (stack, u64::from(serial), i);
        Some(i)
    }

    #[cold]
    fn new_entry(&mut self, key: u64, stack: u64, serial: u32) -> Option<usize> {
        // The last free place is kept for an entry of stack 0, which takes the allocations
        // whose own entry cannot be made when memory is short (look_up).
        let spare = usize::from(stack != 0);
        if self.entries_len + spare >= self.entries_cap {
            let cap = (self.entries_cap * 2).max(1024);
            let size = core::mem::size_of::<Entry>();
            match sys::map_anon(cap * size) {
                Some(p) => {
                    let p = p as *mut Entry;
                    if !self.entries.is_null() {
                        // SAFETY: both mappings hold at least entries_len entries; they do not
                        // overlap.
                        unsafe {
                            core::ptr::copy_nonoverlapping(self.entries, p, self.entries_len)
                        };
                        sys::unmap(self.entries as *mut u8, self.entries_cap * size);
                    }
                    self.entries = p;
                    self.entries_cap = cap;
                }
                None if self.entries_len + spare >= self.entries_cap => return None,
                None => {}
            }
        }
        let i = self.entries_len;
        if self.keys.insert(key, i as u64, 0) == Inserted::NoMemory {
            return None;
        }
        self.entries_len += 1;
        *self.entry(i) = Entry {
            stack,
            serial,
            changed: 0,
            live_count: 0,
            live_bytes: 0,
            peak_count: 0,
            peak_bytes: 0,
            total_count: 0,
            total_bytes: 0,
        };
        Some(i)
    }

    /// Takes a live block away (freed, unmapped, replaced).
    #[inline]
    fn release(&mut self, bytes: u64, packed: u64) {
        let i = (packed & 0xFFFF_FFFF) as usize;
        let count = packed >> 32;
        self.events += 1;
        let (now, peak_event) = (self.events, self.peak_event);
        if i < self.entries_len {
            let e = self.entry(i);
            e.touch(now, peak_event);
            e.live_count = e.live_count.saturating_sub(count);
            e.live_bytes = e.live_bytes.saturating_sub(bytes);
        }
        self.live_count = self.live_count.saturating_sub(count);
        self.live_bytes = self.live_bytes.saturating_sub(bytes);
    }

    /// Records the block at `addr` as live; false when out of memory. A block already live
    /// there (its free raced with this allocation in another thread) goes.
    #[inline(always)]
    fn make_live(&mut self, i: usize, addr: u64, bytes: u64, count: u64) -> bool {
        if count == 1 && i < shadow::ENTRIES && Shadow::fits(addr, bytes) {
            match self.small.put(addr, bytes, i as u32) {
                Put::Stored => {
                    if self.large_filter[large_bucket(addr)] != 0 {
                        self.drop_stale_large(addr);
                    }
                    return true;
                }
                Put::Replaced(old, entry) => {
                    self.release(old, u64::from(entry) | 1 << 32);
                    return true;
                }
                Put::Elsewhere => {}
            }
        }
        if let Some((old, entry)) = self.small.take(addr) {
            self.release(old, u64::from(entry) | 1 << 32);
        }
        match self.live.insert(addr, bytes, i as u64 | count << 32) {
            Inserted::New => {
                let n = &mut self.large_filter[large_bucket(addr)];
                *n = n.saturating_add(1);
                true
            }
            Inserted::Replaced(old, packed) => {
                self.release(old, packed);
                true
            }
            Inserted::NoMemory => false,
        }
    }

    /// A large block left live at an address a small one now has (its free raced).
    #[cold]
    fn drop_stale_large(&mut self, addr: u64) {
        if let Some((old, packed)) = self.take_large(addr) {
            self.release(old, packed);
        }
    }

    /// Takes the large block at `addr` away, when there is one.
    #[inline]
    fn take_large(&mut self, addr: u64) -> Option<(u64, u64)> {
        let b = large_bucket(addr);
        if self.large_filter[b] == 0 {
            return None;
        }
        let found = self.live.remove(addr);
        if found.is_some() && self.large_filter[b] != u8::MAX {
            self.large_filter[b] -= 1;
        }
        found
    }

    /// A free of a block not in the shadow: a large one, or one not known.
    #[inline(never)]
    /// Whether the block was found.
    fn free_large(&mut self, addr: u64) -> bool {
        let Some((bytes, packed)) = self.take_large(addr) else {
            return false;
        };
        self.release(bytes, packed);
        true
    }

    /// A mapping of `[addr, addr + size)` (an mmap, or an mremap's new half) made live and
    /// counted, in place of whatever it overlaps (MAP_FIXED); whether it made a new peak.
    fn add_mapping(&mut self, i: usize, addr: u64, size: u64, tick: u64) -> bool {
        self.unmap_range(addr, size);
        if !self.maps.insert(addr, size, i as u32) {
            return false;
        }
        self.count(i, Allocator::Mmap, size, 1, size, tick)
    }

    /// Takes `[addr, addr + len)` out of the live mappings.
    fn unmap_range(&mut self, addr: u64, len: u64) {
        let mut maps = core::mem::replace(&mut self.maps, Mappings::new());
        maps.remove_each(addr, len, |t| self.release_piece(t));
        self.maps = maps;
    }

    /// Takes a piece of a mapping (or a part of it) away.
    fn release_piece(&mut self, t: Taken) {
        let fewer = |count: u64| {
            if t.fewer < 0 {
                count + 1
            } else {
                count.saturating_sub(t.fewer as u64)
            }
        };
        self.events += 1;
        let (now, peak_event) = (self.events, self.peak_event);
        let i = t.entry as usize;
        if i < self.entries_len {
            let e = self.entry(i);
            e.touch(now, peak_event);
            e.live_count = fewer(e.live_count);
            e.live_bytes = e.live_bytes.saturating_sub(t.bytes);
        }
        self.live_count = fewer(self.live_count);
        self.live_bytes = self.live_bytes.saturating_sub(t.bytes);
    }

    /// An allocation of `size` bytes at `addr` made live and counted; whether it made a new
    /// peak. The usual one (a small block, no sampling) goes straight to the shadow.
    #[inline(always)]
    fn add(&mut self, i: usize, allocator: Allocator, addr: u64, size: u64, tick: u64) -> bool {
        if self.sample_bytes == 0 && Shadow::fits(addr, size) && i < shadow::ENTRIES {
            match self.small.put(addr, size, i as u32) {
                Put::Stored => {
                    if self.large_filter[large_bucket(addr)] != 0 {
                        self.drop_stale_large(addr);
                    }
                }
                Put::Replaced(old, entry) => self.release(old, u64::from(entry) | 1 << 32),
                Put::Elsewhere => return self.add_other(i, allocator, addr, size, tick),
            }
            return self.count(i, allocator, size, 1, size, tick);
        }
        self.add_other(i, allocator, addr, size, tick)
    }

    /// [`State::add`] of a block that is not the usual one: sampled, large or unaligned.
    #[inline(never)]
    fn add_other(
        &mut self,
        i: usize,
        allocator: Allocator,
        addr: u64,
        size: u64,
        tick: u64,
    ) -> bool {
        let (count, bytes) = if self.sample_bytes == 0 || allocator == Allocator::Mmap || size == 0
        {
            (1, size)
        } else {
            let w = memtrace_format::settings::Sampling::current(self.sample_bytes).weight(size);
            let seed = addr ^ tick.rotate_left(32);
            (memtrace_format::settings::sampled_count(size, w, seed), w)
        };
        if !self.make_live(i, addr, bytes, count) {
            return false;
        }
        self.count(i, allocator, size, count, bytes, tick)
    }

    /// Counts a block of `bytes` standing for `count` allocations of `size` made live; whether
    /// it made a new peak.
    #[inline(always)]
    fn count(
        &mut self,
        i: usize,
        allocator: Allocator,
        size: u64,
        count: u64,
        bytes: u64,
        tick: u64,
    ) -> bool {
        self.events += 1;
        self.last_tick = tick;
        let (now, peak_event) = (self.events, self.peak_event);
        let e = self.entry(i);
        e.touch(now, peak_event);
        e.live_count += count;
        e.live_bytes += bytes;
        e.total_count += count;
        e.total_bytes = e.total_bytes.saturating_add(bytes);
        self.live_count += count;
        self.live_bytes += bytes;
        let bin = (64 - size.leading_zeros()) as usize;
        self.histogram[bin].0 += count;
        self.histogram[bin].1 = self.histogram[bin].1.saturating_add(bytes);
        if let Some(n) = self.allocators.get_mut(allocator as usize) {
            *n += 1;
        }
        // The peak is at least the window's highest.
        if self.live_bytes <= self.window_max {
            return false;
        }
        self.window_max = self.live_bytes;
        self.window_tick = tick;
        self.fall_tick = 0;
        if self.live_bytes <= self.peak_bytes {
            return false;
        }
        // The first allocation of a climb to a new peak reads the clock (the time given may
        // be from before a pause); the next ones, while the climb goes on, need not.
        let tick = if self.peak_event + 1 != now && clock_stale() {
            clock::tick()
        } else {
            tick
        };
        self.peak_bytes = self.live_bytes;
        self.peak_count = self.live_count;
        self.peak_event = now;
        self.peak_tick = tick;
        true
    }

    /// Closes the series' window when `tick` is past it, and writes a snapshot when one is
    /// due (a new high peak, the time, the series full).
    #[inline]
    fn after_event(&mut self, tick: u64) {
        self.last_tick = self.last_tick.max(tick);
        self.note_fall(|| tick);
        if tick >= self.window_end {
            self.close_window(tick);
        }
        if (self.peak_bytes >= self.next_peak_write && self.peak_event == self.events)
            || self.live_bytes < self.next_fall_write
        {
            self.write(tick, 0);
        }
    }

    /// Adds the closing window's points to the series: its highest live bytes when they were
    /// reached, then, when the heap fell from there, what it fell to, at the window's last
    /// timed event (the frees after it have no time of their own). Without the fall a chart,
    /// or a family's combined peak, would read the window's high as held until the next
    /// window's, however long the program went without allocating. Needs room for two.
    fn add_window_points(&mut self, live: u64) {
        if self.window_tick == 0 || self.points_len + 2 > POINTS {
            return;
        }
        self.points[self.points_len] = (self.window_tick, self.window_max);
        self.points_len += 1;
        if live < self.window_max {
            let fell = if self.fall_tick > self.window_tick {
                self.fall_tick
            } else {
                self.last_tick.max(self.window_tick + 1)
            };
            self.points[self.points_len] = (fell, live);
            self.points_len += 1;
        }
    }

    /// The heap is below the window's highest now: the first time, that is when it fell
    /// (`now` is read only then: a free has no time of its own).
    #[inline(always)]
    fn note_fall(&mut self, now: impl FnOnce() -> u64) {
        if self.fall_tick == 0 && self.live_bytes < self.window_max {
            self.fall_tick = now();
        }
    }

    /// The process forks: its window closes there (points only, nothing written), so that
    /// the series has what the parent held when the child began.
    fn close_window_at_fork(&mut self, tick: u64) {
        if tick < self.window_tick {
            return;
        }
        self.add_window_points(self.live_bytes);
        self.window_max = self.live_bytes;
        self.window_tick = tick;
        self.last_tick = tick;
        self.fall_tick = 0;
    }

    #[cold]
    fn close_window(&mut self, tick: u64) {
        // An allocation closes it before it is counted (it is the next window's); a mapping's
        // change, after (its time is known).
        self.add_window_points(self.live_bytes);
        let (now_tick, now_ns) = clock::pair();
        let (t0, ns0) = self.start;
        let elapsed = now_ns.saturating_sub(ns0);
        // Ticks per window, from the clock since the start (a guess until 10 ms have passed).
        let window = if elapsed >= 10_000_000 {
            ((now_tick.saturating_sub(t0)) as u128 * WINDOW_NS as u128 / elapsed as u128) as u64
        } else {
            1 << 20
        };
        self.window_end = tick.saturating_add(window.max(1));
        self.window_max = self.live_bytes;
        self.window_tick = tick;
        self.fall_tick = 0;
        if now_ns >= self.next_write_ns || self.points_len + 2 > POINTS {
            self.write(tick, 0);
        }
    }

    /// Writes a snapshot of what changed since the last one.
    #[cold]
    fn write(&mut self, tick: u64, flags: u64) {
        let afresh = std::mem::take(&mut self.afresh);
        let flags = if afresh {
            flags | memtrace_format::aggregate::flags::AFRESH
        } else {
            flags
        };
        self.seq += 1;
        let written = snapshot::write(self, tick, flags);
        // Tried again at the next due time either way (not at every allocation).
        self.next_peak_write = self
            .peak_bytes
            .saturating_add((self.peak_bytes / 10).max(PEAK_STEP_MIN));
        let step = (self.live_bytes / 10).max(PEAK_STEP_MIN);
        self.next_fall_write = self.live_bytes.saturating_sub(step);
        self.next_write_ns = clock::pair().1.saturating_add(EVERY_NS);
        if let Some(allocations) = written {
            self.written_event = self.events;
            self.written_frees = self.frees();
            self.written_allocations = allocations;
            self.written_tick = tick;
            self.points_len = 0;
            return;
        }
        if flags & memtrace_format::aggregate::flags::FINAL != 0 {
            // No later snapshot will carry them: the allocations and frees since the last
            // written one are lost, and counted as dropped (read plus dropped is every event).
            let lost = self.allocated().0.saturating_sub(self.written_allocations)
                + self.frees().saturating_sub(self.written_frees);
            crate::capture::CAPTURE
                .records_dropped
                .fetch_add(lost, Ordering::Relaxed);
        }
        // Not written (memory short for its buffers, or no room left in the capture): the
        // next one, under the same number, carries every change since the last written one.
        // (Each snapshot holds only what changed since the one before: these changes were lost
        // for good, and the capture read as complete with totals that disagreed.)
        self.seq -= 1;
        self.afresh |= afresh;
        if self.points_len + 2 > POINTS {
            // The series' points wait for the next one; a full list starts again (fewer
            // points, the sums unharmed).
            self.points_len = 0;
        }
    }
}

/// The address of the slot of the block at `addr`, to prefetch (a hint: may be stale).
#[inline(always)]
pub fn slot_hint(addr: u64) -> *const u8 {
    let p = shadow::hint(addr);
    if p.is_null() {
        LIVE_HINT.slot(addr)
    } else {
        p
    }
}

/// The clock as last read by [`now`].
static LAST_TICK: AtomicU64 = AtomicU64::new(0);
/// Allocations left that take [`LAST_TICK`] without reading the clock.
static CLOCK_SKIP: AtomicU32 = AtomicU32::new(0);
/// While allocations come faster than this many ticks (TSC cycles >> 8: some 50 µs) for
/// [`CLOCK_EVERY`] of them, the clock is read once per [`CLOCK_EVERY`].
const FAST_TICKS: u64 = 1 << 9;
const CLOCK_EVERY: u32 = 16;

/// The time of an allocation, for the series and the snapshots' timing: reading the CPU's
/// time-stamp counter costs some 11-20 ns here (as much as the rest of an event), so it is read
/// once per kernel timer tick where the kernel's coarse clock word is known (`now_by_word`).
/// Elsewhere, while allocations come fast it is read once per 16 of them: after a pause, at
/// most 15 allocations take the time from before it (and a new peak reads the clock: see
/// `add`). Frees take the time of the last allocation (they close no window of their own).
#[inline]
pub fn now() -> u64 {
    if let Some(word) = crate::coarse::read() {
        return now_by_word(word);
    }
    let skip = CLOCK_SKIP.load(Ordering::Relaxed);
    if skip != 0 {
        CLOCK_SKIP.store(skip - 1, Ordering::Relaxed);
        return LAST_TICK.load(Ordering::Relaxed);
    }
    let tick = clock::tick();
    let last = LAST_TICK.swap(tick, Ordering::Relaxed);
    if tick.wrapping_sub(last) < FAST_TICKS {
        CLOCK_SKIP.store(CLOCK_EVERY - 1, Ordering::Relaxed);
    }
    tick
}

/// The coarse clock word (coarse.rs, plus one) when [`LAST_TICK`] was read.
static LAST_WORD: AtomicU64 = AtomicU64::new(0);

/// [`now`] where the kernel's coarse clock word is known: the clock is read once per kernel
/// timer tick (1-10 ms), so no time is off by more than one, after a pause as well.
#[inline(always)]
fn now_by_word(word: u64) -> u64 {
    if LAST_WORD.load(Ordering::Acquire) == word {
        return LAST_TICK.load(Ordering::Relaxed);
    }
    let tick = clock::tick();
    LAST_TICK.store(tick, Ordering::Relaxed);
    LAST_WORD.store(word, Ordering::Release);
    tick
}

/// Whether [`now`] gave a time read before this allocation, possibly before a pause (with the
/// coarse clock word it never is: see `now_by_word`).
#[inline(always)]
fn clock_stale() -> bool {
    crate::coarse::word().is_null() && CLOCK_SKIP.load(Ordering::Relaxed) != 0
}

#[inline(always)]
pub fn on() -> bool {
    ON.load(Ordering::Relaxed)
}

/// Starts (or not) aggregated recording for the capture starting now, from nothing.
/// The lock is biased to the calling thread (the one that starts the capture: a Python run's
/// main thread) until another thread records.
pub fn configure(on: bool, sample_bytes: u64) {
    let mut s = if on {
        STATE.lock_and_bias(me())
    } else {
        STATE.lock(me())
    };
    s.clear();
    s.seq = 0;
    s.sample_bytes = sample_bytes;
    // The clock is read afresh: a fork child's first allocations took its parent's last
    // time, from before the child began (its family's combined peak then summed the parent's
    // high with the child's).
    LAST_WORD.store(0, Ordering::Release);
    LAST_TICK.store(0, Ordering::Relaxed);
    CLOCK_SKIP.store(0, Ordering::Relaxed);
    s.start = clock::pair();
    s.next_write_ns = s.start.1.saturating_add(EVERY_NS);
    ON.store(on, Ordering::Release);
}

/// An allocation of `size` bytes at `addr` from `stack` in the thread of `serial`.
#[inline]
pub fn alloc(
    me: usize,
    serial: u32,
    stack: u64,
    allocator: Allocator,
    addr: u64,
    size: u64,
    tick: u64,
) {
    let mut s = STATE.lock(me);
    if let Some(i) = s.entry_of(stack, serial) {
        if tick >= s.window_end {
            s.close_window(tick);
        }
        let peak = if allocator == Allocator::Mmap {
            s.add_mapping(i, addr, size, tick)
        } else {
            s.add(i, allocator, addr, size, tick)
        };
        if peak && s.peak_bytes >= s.next_peak_write {
            s.write(tick, 0);
        }
    }
}

/// A free (`python`: pymalloc_free) of `addr`. Nothing is due after it: a free makes no new
/// peak, and it would close a window at the time of the last allocation, which closed it.
#[inline(never)]
pub fn free(me: usize, python: bool, addr: u64) {
    let mut s = STATE.lock(me);
    s.free_kinds[usize::from(python)] += 1;
    let found = if let Some((bytes, entry)) = s.small.take(addr) {
        s.release(bytes, u64::from(entry) | 1 << 32);
        true
    } else {
        s.free_large(addr)
    };
    s.found_frees += u64::from(found);
    // The first fall from the window's highest is timed (one clock read per highest).
    s.note_fall(now);
    if s.live_bytes < s.next_fall_write {
        s.write(now(), 0);
    }
}

/// An unmap of `[addr, addr + len)`: every mapping it overlaps loses that part.
pub fn munmap(me: usize, addr: u64, len: u64, tick: u64) {
    let mut s = STATE.lock(me);
    s.free_kinds[2] += 1;
    if s.maps.overlaps(addr, len) {
        s.found_frees += 1;
        s.unmap_range(addr, len);
        s.after_event(tick);
    }
}

/// An mremap of a mapping: the old range goes (none of it with an old length of 0: the old
/// mapping stays), the new one (from `stack`) comes, when the old one was known.
pub fn mremap(me: usize, serial: u32, stack: u64, old: (u64, u64), new: (u64, u64), tick: u64) {
    let mut s = STATE.lock(me);
    if s.maps.overlaps(old.0, old.1) {
        s.unmap_range(old.0, old.1);
        if let Some(i) = s.entry_of(stack, serial) {
            s.add_mapping(i, new.0, new.1, tick);
        }
        s.after_event(tick);
    }
}

/// A marker: the "live at exit" point is written at once; a Python script's start forgets
/// the interpreter's start-up (as a full capture's reports do).
pub fn marker(marker: Marker) {
    let tick = clock::tick();
    let mut s = STATE.lock(me());
    match marker {
        Marker::ExitSnapshot => s.write(tick, memtrace_format::aggregate::flags::EXIT),
        Marker::ScriptStart => {
            s.clear();
            s.afresh = true;
            s.write(tick, 0);
        }
        _ => {}
    }
}

/// The capture ends: the last snapshot.
pub fn finish() {
    if !on() {
        return;
    }
    let tick = clock::tick();
    let mut s = STATE.lock(me());
    let live = s.live_bytes;
    s.add_window_points(live);
    s.write(tick, memtrace_format::aggregate::flags::FINAL);
}

/// Before a fork (ahead of every lock the fork takes) or a spawn: the series' window closes
/// there, so that it holds what the parent held when the child began.
pub fn at_fork() {
    // Not from a signal handler that interrupted this thread inside the tracker (a fork
    // there, or _Fork): the state may be half changed, and its lock held by this thread.
    if !on() || crate::tls::get().in_tracker != 0 {
        return;
    }
    let tick = clock::tick();
    STATE.lock(me()).close_window_at_fork(tick);
}

/// How the forking thread holds the lock between fork_prepare and fork_parent (Held as 1 or 2).
static FORK_HELD: AtomicU32 = AtomicU32::new(0);

/// Around fork: the lock is taken so that no thread holds it while the process is copied.
pub fn lock_for_fork() {
    let held = STATE.raw_lock(me());
    FORK_HELD.store(1 + u32::from(held == Held::Locked), Ordering::Relaxed);
}

pub fn unlock_in_parent() {
    match FORK_HELD.swap(0, Ordering::Relaxed) {
        1 => STATE.raw_unlock(Held::Biased),
        2 => STATE.raw_unlock(Held::Locked),
        _ => {}
    }
}

/// In the child: free, and biased to no one until its capture starts (configure).
pub fn reset_in_child() {
    FORK_HELD.store(0, Ordering::Relaxed);
    FORKED.store(true, Ordering::Relaxed);
    STATE.reset_in_child();
}

/// This process is a fork child whose tables (the parent's, copy on write) were not cleared
/// yet: its next clear gives them back rather than zeroing them.
static FORKED: AtomicBool = AtomicBool::new(false);

/// The calling thread's identity for the lock: its thread-local block's address (unique among
/// live threads; a new thread that reuses a dead owner's address inherits a bias no one uses).
#[inline(always)]
pub fn me() -> usize {
    identity(crate::tls::get())
}

/// [`me`] from the thread's block.
#[inline(always)]
pub fn identity(t: &crate::tls::Tls) -> usize {
    t as *const crate::tls::Tls as usize
}
