//! The aggregate snapshot record (`memtrace run --aggregate`): instead of one record per
//! allocation and free, the tracker keeps sums per (stack, thread) and writes them out now and
//! then as an extended record (kind [`AGGREGATE_KIND`]) alone in a raw Meta chunk. Each
//! snapshot holds the entries that changed since the one before (a delta), so a capture grows
//! with the number of distinct stacks and the length of the run, not with the number of events;
//! a reader applies them in `seq` order, the latest value of an entry winning.
//!
//! Payload (varints): flags ([`flags`]), seq (1, 2, ...), tick (when it was taken), live bytes,
//! live allocations, peak bytes, peak allocations, peak tick, allocations in all, bytes in all,
//! frees in all; the histogram: a count of bins, then per bin its index (0..65, as the
//! reporter's bins: 0 for size 0, k for sizes in [2^(k-1), 2^k)), allocations, bytes (totals
//! since the start: the latest snapshot's is the whole); the allocations per allocator: a
//! count, then one varint per allocator (as the allocation records' types 0..12); the frees by
//! kind: free, pymalloc_free, munmap; the memory series since the snapshot
//! before: a count, then per point the tick delta from the point before (the first: from the
//! snapshot before's tick, or 0) and the highest live bytes of that window; the entries: a
//! count, then per entry stack id, thread serial, live allocations, live bytes, allocations and
//! bytes live at the peak, allocations and bytes in all. Unknown trailing bytes are left for
//! later versions.

use crate::varint;

/// The extended record kind of an aggregate snapshot.
pub const AGGREGATE_KIND: u64 = 6;
/// Histogram bins (as the reporter's).
pub const BINS: usize = 65;

/// Snapshot flags.
pub mod flags {
    /// Taken at the "live at exit" marker: its live values are what was live at exit.
    pub const EXIT: u64 = 1;
    /// The last one, written when the capture ended.
    pub const FINAL: u64 = 2;
    /// Everything before this snapshot is forgotten (a Python run's script started: the
    /// interpreter's start-up is left out, as a full capture's reports do).
    pub const AFRESH: u64 = 4;
}

/// The fixed part of a snapshot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Head {
    pub flags: u64,
    pub seq: u64,
    pub tick: u64,
    pub live_bytes: u64,
    pub live_count: u64,
    pub peak_bytes: u64,
    pub peak_count: u64,
    pub peak_tick: u64,
    pub alloc_count: u64,
    pub alloc_bytes: u64,
    pub frees: u64,
    /// Allocations per allocator (the allocation records' types).
    pub allocators: [u64; ALLOCATORS],
    /// Frees by kind: free (malloc family), pymalloc_free, munmap.
    pub free_kinds: [u64; 3],
    /// Frees that found their block and unmaps that took part of a mapping, as a full
    /// capture's reports count frees (since December 2026: a varint after the entries; None
    /// in older captures).
    pub found_frees: Option<u64>,
}

/// Allocators counted (the allocation records' types 0..12).
pub const ALLOCATORS: usize = 12;

/// The sums of one (stack, thread).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Entry {
    pub stack: u64,
    pub serial: u64,
    pub live_count: u64,
    pub live_bytes: u64,
    pub peak_count: u64,
    pub peak_bytes: u64,
    pub total_count: u64,
    pub total_bytes: u64,
}

/// Room one entry takes at most.
pub const MAX_ENTRY_LEN: usize = 8 * varint::MAX_VARINT_LEN;
/// Room the head and the histogram take at most.
pub const MAX_HEAD_LEN: usize = (11 + 1 + 3 * BINS + 1 + ALLOCATORS + 3) * varint::MAX_VARINT_LEN;

/// Encodes the head and the histogram (`(allocations, bytes)` per bin); returns the position
/// after them. `buf` needs [`MAX_HEAD_LEN`] bytes from `pos`.
pub fn put_head(buf: &mut [u8], pos: usize, h: &Head, histogram: &[(u64, u64); BINS]) -> usize {
    let mut pos = pos;
    for v in [
        h.flags,
        h.seq,
        h.tick,
        h.live_bytes,
        h.live_count,
        h.peak_bytes,
        h.peak_count,
        h.peak_tick,
        h.alloc_count,
        h.alloc_bytes,
        h.frees,
    ] {
        pos = varint::put(buf, pos, v);
    }
    let used = histogram.iter().filter(|b| b.0 > 0).count();
    pos = varint::put(buf, pos, used as u64);
    for (i, &(count, bytes)) in histogram.iter().enumerate() {
        if count > 0 {
            pos = varint::put(buf, pos, i as u64);
            pos = varint::put(buf, pos, count);
            pos = varint::put(buf, pos, bytes);
        }
    }
    pos = varint::put(buf, pos, ALLOCATORS as u64);
    for &n in h.allocators.iter().chain(&h.free_kinds) {
        pos = varint::put(buf, pos, n);
    }
    pos
}

/// Encodes one entry (at most [`MAX_ENTRY_LEN`] bytes).
pub fn put_entry(buf: &mut [u8], mut pos: usize, e: &Entry) -> usize {
    for v in [
        e.stack,
        e.serial,
        e.live_count,
        e.live_bytes,
        e.peak_count,
        e.peak_bytes,
        e.total_count,
        e.total_bytes,
    ] {
        pos = varint::put(buf, pos, v);
    }
    pos
}

/// A decoded snapshot.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub head: Head,
    pub histogram: Vec<(usize, u64, u64)>,
    /// (tick, highest live bytes) points, ticks absolute.
    pub series: Vec<(u64, u64)>,
    pub entries: Vec<Entry>,
}

impl Snapshot {
    /// Encodes the whole snapshot (the tracker writes the same bytes piece by piece).
    pub fn encode(&self, series_base: u64) -> Vec<u8> {
        let mut hist = [(0u64, 0u64); BINS];
        for &(i, c, b) in &self.histogram {
            if let Some(slot) = hist.get_mut(i) {
                *slot = (c, b);
            }
        }
        let len = MAX_HEAD_LEN
            + (1 + 2 * self.series.len() + 1) * varint::MAX_VARINT_LEN
            + self.entries.len() * MAX_ENTRY_LEN;
        let mut buf = vec![0u8; len];
        let mut pos = put_head(&mut buf, 0, &self.head, &hist);
        pos = varint::put(&mut buf, pos, self.series.len() as u64);
        let mut prev = series_base;
        for &(tick, bytes) in &self.series {
            pos = varint::put(&mut buf, pos, tick.wrapping_sub(prev));
            pos = varint::put(&mut buf, pos, bytes);
            prev = tick;
        }
        pos = varint::put(&mut buf, pos, self.entries.len() as u64);
        for e in &self.entries {
            pos = put_entry(&mut buf, pos, e);
        }
        if let Some(n) = self.head.found_frees {
            buf.resize(buf.len() + varint::MAX_VARINT_LEN, 0);
            pos = varint::put(&mut buf, pos, n);
        }
        buf.truncate(pos);
        buf
    }
}

/// Decodes a payload; `series_base` is the tick the first series point's delta counts from
/// (the snapshot before's tick, 0 for the first). None when it is damaged.
pub fn decode(payload: &[u8], series_base: u64) -> Option<Snapshot> {
    let mut pos = 0;
    let mut next = || varint::get(payload, &mut pos);
    let mut head = Head {
        flags: next()?,
        seq: next()?,
        tick: next()?,
        live_bytes: next()?,
        live_count: next()?,
        peak_bytes: next()?,
        peak_count: next()?,
        peak_tick: next()?,
        alloc_count: next()?,
        alloc_bytes: next()?,
        frees: next()?,
        ..Head::default()
    };
    let bins = next()?;
    let mut histogram = Vec::new();
    for _ in 0..bins.min(BINS as u64) {
        let i = next()? as usize;
        let c = next()?;
        let b = next()?;
        if i < BINS {
            histogram.push((i, c, b));
        }
    }
    let allocators = next()?;
    if allocators > payload.len() as u64 {
        return None;
    }
    for i in 0..allocators as usize {
        let n = next()?;
        if let Some(slot) = head.allocators.get_mut(i) {
            *slot = n;
        }
    }
    for slot in &mut head.free_kinds {
        *slot = next()?;
    }
    let points = next()?;
    // Each point takes at least two bytes: a count beyond that is damage.
    if points > payload.len() as u64 {
        return None;
    }
    let mut series = Vec::with_capacity(points as usize);
    let mut tick = series_base;
    for _ in 0..points {
        tick = tick.wrapping_add(next()?);
        series.push((tick, next()?));
    }
    let n = next()?;
    if n > payload.len() as u64 {
        return None;
    }
    let mut entries = Vec::with_capacity(n as usize);
    for _ in 0..n {
        entries.push(Entry {
            stack: next()?,
            serial: next()?,
            live_count: next()?,
            live_bytes: next()?,
            peak_count: next()?,
            peak_bytes: next()?,
            total_count: next()?,
            total_bytes: next()?,
        });
    }
    // Written by later trackers only: absent, the payload ends here.
    head.found_frees = next();
    Some(Snapshot {
        head,
        histogram,
        series,
        entries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let s = Snapshot {
            head: Head {
                flags: flags::EXIT,
                seq: 3,
                tick: 1_000_000,
                live_bytes: 4096,
                live_count: 2,
                peak_bytes: 1 << 33,
                peak_count: 70,
                peak_tick: 999_000,
                alloc_count: 1 << 40,
                alloc_bytes: u64::MAX,
                frees: 12,
                allocators: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12],
                free_kinds: [5, 6, 1],
                found_frees: None,
            },
            histogram: vec![(0, 1, 0), (5, 10, 200), (64, 1, 1 << 63)],
            series: vec![(500_000, 10), (600_000, 1 << 33), (700_000, 4096)],
            entries: vec![
                Entry {
                    stack: 7,
                    serial: 1,
                    live_count: 1,
                    live_bytes: 16,
                    peak_count: 3,
                    peak_bytes: 48,
                    total_count: 9,
                    total_bytes: 144,
                },
                Entry::default(),
            ],
        };
        let bytes = s.encode(400_000);
        assert_eq!(decode(&bytes, 400_000), Some(s.clone()));
        assert_eq!(decode(&bytes[..bytes.len() - 1], 400_000), None);
        // The frees that found their block, after the entries: an older reader stops before.
        let mut later = s;
        later.head.found_frees = Some(300);
        let bytes = later.encode(400_000);
        assert_eq!(bytes.len(), s_len(&later) + 2);
        assert_eq!(decode(&bytes, 400_000), Some(later));
    }

    fn s_len(s: &Snapshot) -> usize {
        let mut older = s.clone();
        older.head.found_frees = None;
        older.encode(400_000).len()
    }
}
