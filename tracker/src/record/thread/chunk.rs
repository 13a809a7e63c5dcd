//! The staging area's chunk: a thread encodes its events in place in the capture file (so
//! they survive a crash or a kill), publishes each by bumping the count in the staging header,
//! and compresses the area into an Events chunk when it fills, moving on to a bigger area while
//! it writes more (see `staging`).

use super::model::model_bits;
use super::state::{count_in, ThreadState};
use crate::capture::CAPTURE;
use crate::staging::{self, MAX_CLASS};
use crate::{clock, sys};
use memtrace_format::columns::ColumnWriter;
use memtrace_format::{ChunkCodec, ChunkHeader, ChunkKind, CHUNK_HEADER_LEN};
use std::sync::atomic::{compiler_fence, AtomicU32, Ordering};

impl ThreadState {
    /// Writes the staging header for the chunk `seq` and empties the streams.
    pub(super) fn start_chunk(&mut self) {
        self.record_count = 0;
        self.first_tick = 0;
        self.last_tick = 0;
        let header = ChunkHeader {
            kind: ChunkKind::Staging,
            codec: ChunkCodec::Columns,
            flags: 0,
            payload_crc: 0,
            thread_serial: self.serial,
            tid: self.tid,
            seq: self.seq,
            stored_len: self.cap as u32,
            raw_len: 0,
            record_count: 0,
            first_tick: 0,
            last_tick: 0,
            flush_mono_ns: 0,
            flush_tick: 0,
        };
        let h = header.encode();
        // SAFETY: the slot header is CHUNK_HEADER_LEN bytes of this state's reserved region.
        unsafe { core::ptr::copy_nonoverlapping(h.as_ptr(), self.slot, CHUNK_HEADER_LEN) };
        self.writer.start(self.payload(), true);
    }

    /// The staging payload: the streams' directory and regions.
    #[inline]
    pub(super) fn payload(&self) -> &'static mut [u8] {
        // SAFETY: the slot reserves CHUNK_HEADER_LEN + cap bytes of the mapping for this state,
        // never unmapped, and nothing else writes there while the owner holds it.
        unsafe { core::slice::from_raw_parts_mut(self.slot.add(CHUNK_HEADER_LEN), self.cap) }
    }

    /// Publishes the records written so far: their count, in the staging header (a reader
    /// trusts the records it counts, and reads their fields from the regions).
    #[inline]
    pub(super) fn publish(&mut self) {
        compiler_fence(Ordering::Release);
        // SAFETY: the raw_len field of this state's staging header; 4-byte aligned.
        unsafe {
            let f = self.slot.add(memtrace_format::chunk::STAGING_USED_OFFSET) as *const AtomicU32;
            (*f).store(self.writer.records() as u32, Ordering::Release);
        }
    }

    /// Publishes an event record written at `tick`.
    #[inline]
    pub(super) fn commit(&mut self, tick: u64) {
        if self.record_count == 0 {
            self.first_tick = tick;
        }
        self.record_count += 1;
        self.last_tick = tick;
        self.publish();
        if crate::rss::due(tick) {
            self.sample_rss(tick);
        }
    }

    /// Records the process's resident size (the sample due now, if this thread claims it).
    #[cold]
    pub(super) fn sample_rss(&mut self, tick: u64) {
        let Some(bytes) = crate::rss::take(tick) else {
            return;
        };
        let mut payload = [0u8; 10];
        let n = memtrace_format::varint::put(&mut payload, 0, bytes);
        if self.room_for_table(ColumnWriter::table_len(n)) {
            let buf = self.payload();
            self.writer
                .extended(buf, tick, crate::rss::RECORD_KIND, &payload[..n]);
            self.publish();
        }
    }

    /// Makes room for one event record, flushing if needed. False when there is none (the
    /// capture takes no more): the caller's event is dropped, and counted.
    #[inline]
    pub(super) fn room(&mut self) -> bool {
        if self.writer.reserve_event() || self.flush_for_room(|w| w.reserve_event()) {
            return true;
        }
        count_in(&self.dropped);
        false
    }

    /// Makes room for a table record with `n` bytes of fields, flushing if needed.
    pub(super) fn room_for_table(&mut self, n: usize) -> bool {
        self.room_for_tables(1, n)
    }

    /// Makes room for `records` table records with `n` bytes of fields in all, flushing if
    /// needed (see `ColumnWriter::reserve_tables`).
    pub(super) fn room_for_tables(&mut self, records: usize, n: usize) -> bool {
        if self.writer.reserve_tables(records, n) {
            return true;
        }
        self.flush_for_room(|w| w.reserve_tables(records, n))
    }

    /// The area is full: its records go to the capture and the thread moves on to a bigger
    /// area (if it is not the largest), where the next chunk starts; then bigger still while
    /// the record does not fit an empty one.
    #[cold]
    pub(super) fn flush_for_room(&mut self, reserve: impl Fn(&mut ColumnWriter) -> bool) -> bool {
        if !(CAPTURE.is_open() && self.flush_and_grow(true)) {
            return false;
        }
        if reserve(&mut self.writer) {
            return true;
        }
        while self.writer.records() == 0 && self.grow() {
            self.start_chunk();
            if reserve(&mut self.writer) {
                return true;
            }
        }
        false
    }

    /// Gives back the memory the state's thread made it use (the index of recent addresses, the
    /// compressor's, the staging area's pages): the thread exited, and the state may wait long
    /// for another. Its records are all in the capture.
    pub(super) fn release_memory(&mut self) {
        self.writer.release_model();
        self.compressor.release();
        // The whole pages of the area (madvise takes page-aligned addresses); they come back
        // from the file when touched.
        let start = (self.slot as usize).next_multiple_of(4096);
        let end = (self.slot as usize + CHUNK_HEADER_LEN + self.cap) & !4095;
        if end > start {
            sys::release_shared(start as *mut u8, end - start);
        }
    }

    /// Moves the thread to an area of the next size, leaving the current one (which holds no
    /// records the capture lacks) to other threads. The caller starts a chunk there. False at
    /// the largest size, or when the capture has no room for a bigger area.
    pub(super) fn grow(&mut self) -> bool {
        if self.class >= MAX_CLASS {
            return false;
        }
        let Some(area) = staging::take(self.class + 1, self.generation) else {
            return false;
        };
        let (old, old_class) = (self.slot, self.class);
        self.slot = area;
        self.class += 1;
        self.cap = staging::capacity(self.class);
        self.writer.set_buffer_len(self.cap);
        self.writer.set_model_bits(model_bits(self.class));
        // SAFETY: the raw_len field of the old area's staging header; 4-byte aligned.
        unsafe {
            let f = old.add(memtrace_format::chunk::STAGING_USED_OFFSET) as *const AtomicU32;
            (*f).store(0, Ordering::Release);
        }
        staging::give(old, old_class, self.generation);
        true
    }

    /// Compresses the buffered records into an Events chunk and starts the next one. False when
    /// the records could not be written (they stay in the staging area).
    pub(super) fn flush(&mut self) -> bool {
        self.flush_and_grow(false)
    }

    /// As `flush`; with `grow`, the next chunk starts in a bigger area (see `grow`).
    pub(super) fn flush_and_grow(&mut self, grow: bool) -> bool {
        if self.stuck && !self.unstuck_after_a_child() {
            return false;
        }
        if self.writer.records() == 0 {
            // An aggregated thread may have sums and no record at all (no table its stacks
            // needed): a chunk's header ties the serial its sums carry to its id and name, so
            // one that allocated and wrote no chunk yet writes one with its name.
            let unnamed = self.seq == 0 && self.allocated.load(Ordering::Relaxed) > 0;
            if !(unnamed && crate::aggregate::on() && CAPTURE.in_its_process()) {
                return true;
            }
            self.update_name();
            if self.writer.records() == 0 {
                return true;
            }
        }
        let _errno = sys::ErrnoGuard::new();
        if !CAPTURE.in_its_process() {
            return self.not_this_process();
        }
        self.update_name();
        crate::modules::refresh();
        let (flush_tick, flush_mono_ns) = clock::pair();
        let mut header = ChunkHeader {
            kind: ChunkKind::Events,
            codec: ChunkCodec::Columns,
            flags: 0,
            payload_crc: 0,
            thread_serial: self.serial,
            tid: self.tid,
            seq: self.seq,
            stored_len: 0,
            raw_len: self.writer.total_len() as u32,
            record_count: self.record_count,
            first_tick: self.first_tick,
            last_tick: self.last_tick,
            flush_mono_ns,
            flush_tick,
        };
        let streams = self.writer.streams(self.payload());
        let written = match self.compressor.compress(&streams, staging::MAX_CAPACITY) {
            Some(stored) => {
                header.stored_len = stored.len() as u32;
                CAPTURE.write_chunk(&header, stored)
            }
            None => false,
        };
        if written {
            self.seq += 1;
            if grow {
                // The area keeps a stale copy of the chunk just written: no reader uses it.
                self.grow();
            }
            self.start_chunk();
        } else {
            // The capture cannot take more: the events stay in the staging area, complete (its
            // header's raw_len counts them). Later events find no room and are dropped.
            self.stuck = true;
        }
        written
    }

    /// The thread is in a child made without fork() (a raw clone system call: no fork handler
    /// ran): the capture is the parent's, so this thread writes no more to it. Its events are
    /// dropped from here on.
    #[cold]
    fn not_this_process(&mut self) -> bool {
        self.stuck = true;
        self.stuck_by = sys::getpid();
        false
    }

    /// In the capture's process, a state that a child sharing its memory left stuck (a vfork
    /// child that allocated before its exec or _exit, which shells do; the parent's thread is
    /// the same state): it records again once that child no longer shares this memory (it
    /// exec'd or ended). Else every later event of the parent's thread was dropped. A child
    /// that still runs in this memory (clone with CLONE_VM) keeps it stuck: the two would write
    /// into one staging area at once.
    #[cold]
    fn unstuck_after_a_child(&mut self) -> bool {
        if self.stuck_by == 0 || !CAPTURE.in_its_process() || sys::shares_memory(self.stuck_by) {
            return false;
        }
        self.stuck = false;
        self.stuck_by = 0;
        true
    }
}
