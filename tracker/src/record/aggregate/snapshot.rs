//! Writing one aggregate snapshot (memtrace_format::aggregate) into the capture as a raw Meta
//! chunk: the head, the histogram, the series' points since the last snapshot and the entries
//! changed since then. Encoded into buffers mapped with raw system calls, kept for the next one.

use super::State;
use crate::capture::CAPTURE;
use crate::sys;
use memtrace_format::aggregate::{self, Entry, Head, AGGREGATE_KIND, MAX_ENTRY_LEN, MAX_HEAD_LEN};
use memtrace_format::varint::{self, MAX_VARINT_LEN};

/// The payload buffer and the record buffer (the payload wrapped in an extended record).
pub struct Buffers {
    payload: *mut u8,
    record: *mut u8,
    len: usize,
}

impl Buffers {
    pub const fn new() -> Buffers {
        Buffers {
            payload: core::ptr::null_mut(),
            record: core::ptr::null_mut(),
            len: 0,
        }
    }

    /// Room for `need` bytes of payload (and its record); false when memory could not be had.
    fn reserve(&mut self, need: usize) -> bool {
        if need <= self.len {
            return true;
        }
        let len = need.next_power_of_two().max(64 << 10);
        let Some(payload) = sys::map_anon(len) else {
            return false;
        };
        let Some(record) = sys::map_anon(len + 64) else {
            sys::unmap(payload, len);
            return false;
        };
        if !self.payload.is_null() {
            sys::unmap(self.payload, self.len);
            sys::unmap(self.record, self.len + 64);
        }
        *self = Buffers {
            payload,
            record,
            len,
        };
        true
    }
}

/// Writes the snapshot `s.seq` taken at `tick`: the allocations in all it holds, None when it
/// could not be written (no memory for its buffers, no room left in the capture).
pub(super) fn write(s: &mut State, tick: u64, flags: u64) -> Option<u64> {
    let since = s.written_event;
    let changed = (0..s.entries_len)
        .filter(|&i| s.entry(i).changed > since)
        .count();
    let need = MAX_HEAD_LEN + (3 + 2 * s.points_len) * MAX_VARINT_LEN + changed * MAX_ENTRY_LEN;
    if !s.buf.reserve(need) {
        return None;
    }
    // SAFETY: the buffer is `len >= need` bytes, mapped for this state alone (lock held).
    let buf = unsafe { core::slice::from_raw_parts_mut(s.buf.payload, s.buf.len) };
    let (alloc_count, alloc_bytes) = s.allocated();
    let head = Head {
        flags,
        seq: s.seq,
        tick,
        live_bytes: s.live_bytes,
        live_count: s.live_count,
        peak_bytes: s.peak_bytes,
        peak_count: s.peak_count,
        peak_tick: s.peak_tick,
        alloc_count,
        alloc_bytes,
        frees: s.frees(),
        allocators: s.allocators,
        free_kinds: s.free_kinds,
        found_frees: Some(s.found_frees),
    };
    let mut pos = aggregate::put_head(buf, 0, &head, &s.histogram);
    pos = varint::put(buf, pos, s.points_len as u64);
    let mut prev = s.written_tick;
    for &(t, bytes) in &s.points[..s.points_len] {
        pos = varint::put(buf, pos, t.wrapping_sub(prev));
        pos = varint::put(buf, pos, bytes);
        prev = t;
    }
    pos = varint::put(buf, pos, changed as u64);
    let peak_event = s.peak_event;
    for i in 0..s.entries_len {
        let e = *s.entry(i);
        if e.changed <= since {
            continue;
        }
        let (peak_count, peak_bytes) = e.at_peak(peak_event);
        pos = aggregate::put_entry(
            buf,
            pos,
            &Entry {
                stack: e.stack,
                serial: u64::from(e.serial),
                live_count: e.live_count,
                live_bytes: e.live_bytes,
                peak_count,
                peak_bytes,
                total_count: e.total_count,
                total_bytes: e.total_bytes,
            },
        );
    }
    // After the entries (an older reader stops before it).
    pos = varint::put(buf, pos, s.found_frees);
    // SAFETY: the record buffer is len + 64 bytes, mapped for this state alone.
    let record = unsafe { core::slice::from_raw_parts_mut(s.buf.record, s.buf.len + 64) };
    let used =
        memtrace_format::Encoder::new().extended(record, 0, tick, AGGREGATE_KIND, &buf[..pos]);
    CAPTURE
        .write_meta(s.seq as u32, 1, &record[..used])
        .then_some(alloc_count)
}
