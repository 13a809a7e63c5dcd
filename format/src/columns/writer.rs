//! Writes records straight into the streams of a columnar chunk.
//!
//! The streams live in one buffer (the tracker's staging area in the capture file) as regions
//! laid out by a `Layout` and described by a directory at the buffer's start, so that a reader
//! finds the records of a staging area left behind by a killed process:
//!
//! ```text
//! u32 × 10   offset of each stream's region from the buffer's start
//! u32 × 10   capacity of each region
//! ```
//!
//! Only the number of records is published (by the tracker, in the staging chunk header): a
//! reader takes that many types and reads the other regions from their start, as far as those
//! records need.

use super::model::AddressModel;
use super::{address_code, block_end, stream, stream::COUNT};
use crate::record::{rtype, DecodeError, Decoder, Encoder, Marker, Record, Segment};
use crate::varint::zigzag;
use crate::Allocator;

/// Bytes of the directory at the start of a staging payload.
pub const DIRECTORY_LEN: usize = 2 * 4 * COUNT;

/// The most bytes one event record (allocation, free, munmap, mremap, marker) adds to each
/// stream: a varint is at most 10 bytes, an escaped address code 11.
const EVENT_MAX: [usize; COUNT] = [1, 1, 10, 11, 1, 10, 10, 0, 11, 64];

// A failed request is an extended record the tracker writes after `reserve_event`: its kind,
// length and payload, and a long tick delta, fit OTHER's share of an event.
const _: () = assert!(3 * 10 + crate::failed::MAX_PAYLOAD <= EVENT_MAX[stream::OTHER]);

// `records` counts TYPE's bytes from the directory's end: TYPE's region comes first.
const _: () = assert!(stream::TYPE == 0);

/// Where each stream's region lies in a buffer, and how big it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    offset: [usize; COUNT],
    capacity: [usize; COUNT],
}

impl Layout {
    /// A buffer of `len` bytes shared among the streams by their usual needs (in 64ths: a
    /// record's type and an allocation's address, size and stack, a free's address).
    pub fn for_buffer(len: usize) -> Layout {
        const SHARES: [usize; COUNT] = [8, 4, 3, 12, 6, 6, 8, 0, 10, 7];
        let room = len.saturating_sub(DIRECTORY_LEN) / 64;
        Layout::from_capacities(SHARES.map(|s| s * room))
    }

    /// A buffer of `len` bytes shared among the streams in proportion to `used`, what a chunk
    /// of the same writer needed (workloads differ: Python's stacks, a program that only
    /// allocates), each with some room to spare for a change of pattern.
    pub fn fitted(used: &[usize; COUNT], len: usize) -> Layout {
        const SPARE: [usize; COUNT] = [256, 256, 256, 256, 256, 256, 256, 0, 256, 1024];
        let room = len.saturating_sub(DIRECTORY_LEN);
        let weight: [usize; COUNT] = std::array::from_fn(|s| used[s] + used[s] / 8 + SPARE[s]);
        let total: usize = weight.iter().sum();
        if total == 0 || total > room {
            return Layout::for_buffer(len);
        }
        Layout::from_capacities(weight.map(|w| (w as u128 * room as u128 / total as u128) as usize))
    }

    fn from_capacities(capacity: [usize; COUNT]) -> Layout {
        let mut offset = [0usize; COUNT];
        let mut at = DIRECTORY_LEN;
        for (o, c) in offset.iter_mut().zip(capacity) {
            *o = at;
            at += c;
        }
        Layout { offset, capacity }
    }

    /// Where stream `s`'s region ends in the buffer.
    #[inline]
    const fn end(&self, s: usize) -> usize {
        self.offset[s] + self.capacity[s]
    }

    /// Bytes of buffer this layout needs.
    pub const fn buffer_len(&self) -> usize {
        self.end(COUNT - 1)
    }
}

/// An allocation about to be written and the slots of the writer's index of recent addresses
/// it looks up (see `ColumnWriter::alloc_lookup`).
#[derive(Clone, Copy, Debug)]
pub struct AllocLookup {
    allocator: Allocator,
    addr: u64,
    size: u64,
    /// The slot of the address.
    at: usize,
    /// Where the next block probably starts (`block_end`), and its slot.
    end: u64,
    end_at: usize,
}

/// The running values of one chunk.
#[derive(Clone, Copy, Default)]
struct ChunkState {
    timed: u64,
    prev_tick: u64,
    prev_alloc: u64,
    prev_free: u64,
    prev_other: u64,
    prev_type: u64,
}

/// One writer thread's encoder into streams. It keeps its address model between chunks
/// (allocated once, on the first chunk) but every chunk decodes on its own.
pub struct ColumnWriter {
    layout: Layout,
    /// Bytes of the buffer (the layouts' rounding may leave a few unused).
    buffer_len: usize,
    /// Where each stream's next byte goes in the buffer (its region's offset plus the bytes
    /// written: a position, not a length, spares an addition per byte). Past the region's end
    /// when its bytes were dropped (see `byte_in`).
    pos: [usize; COUNT],
    /// Event records that surely fit (see `reserve_event`).
    budget: usize,
    /// `reserve_event` vouched for room for the next event record (taken by it).
    reserved: bool,
    model: AddressModel,
    chunk: ChunkState,
}

impl ColumnWriter {
    pub const fn new(layout: Layout) -> ColumnWriter {
        ColumnWriter {
            buffer_len: layout.buffer_len(),
            pos: layout.offset,
            layout,
            budget: 0,
            reserved: false,
            model: AddressModel::new(),
            chunk: ChunkState {
                timed: 0,
                prev_tick: 0,
                prev_alloc: 0,
                prev_free: 0,
                prev_other: 0,
                prev_type: 0,
            },
        }
    }

    /// Starts a chunk in `buf` (at least `layout.buffer_len()` bytes): writes the directory
    /// with empty streams. With `refit`, the regions are first laid out anew over the same
    /// bytes, in proportion to what the previous chunk needed.
    pub fn start(&mut self, buf: &mut [u8], refit: bool) {
        if refit && self.records() > 0 {
            self.layout = Layout::fitted(&self.lens(), self.buffer_len);
        }
        self.pos = self.layout.offset;
        self.budget = 0;
        self.reserved = false;
        self.chunk = ChunkState::default();
        self.model.start_chunk();
        let words = self.layout.offset.iter().chain(self.layout.capacity.iter());
        for (i, &v) in words.enumerate() {
            put_u32(buf, 4 * i, v);
        }
    }

    /// Moves the writer to a buffer of `len` bytes, from the next `start` on: the regions are
    /// laid out over it in proportion to what the chunk so far needed (if it has records).
    pub fn set_buffer_len(&mut self, len: usize) {
        self.buffer_len = len;
        let lens = self.lens();
        self.layout = if self.records() > 0 {
            Layout::fitted(&lens, len)
        } else {
            Layout::for_buffer(len)
        };
        // The streams keep their lengths until `start` (positions follow the regions).
        self.pos = std::array::from_fn(|s| self.layout.offset[s] + lens[s]);
    }

    /// Records written to the chunk (events and table records).
    #[inline]
    pub fn records(&self) -> usize {
        // TYPE's region is the first, right after the directory, in every layout.
        self.pos[stream::TYPE] - DIRECTORY_LEN
    }

    /// The bytes each stream has taken so far (past its capacity when some were dropped).
    fn lens(&self) -> [usize; COUNT] {
        std::array::from_fn(|s| self.pos[s] - self.layout.offset[s])
    }

    /// The bytes of each stream so far.
    pub fn streams<'a>(&self, buf: &'a [u8]) -> [&'a [u8]; COUNT] {
        std::array::from_fn(|s| buf.get(self.layout.offset[s]..self.pos[s]).unwrap_or(&[]))
    }

    /// Total bytes in the streams.
    pub fn total_len(&self) -> usize {
        self.lens().iter().sum()
    }

    /// Room for one more event record. False when the chunk is full: start a new one.
    #[inline]
    pub fn reserve_event(&mut self) -> bool {
        if self.budget == 0 {
            self.budget = self.events_that_fit();
            if self.budget == 0 {
                return false;
            }
        }
        self.budget -= 1;
        self.reserved = true;
        true
    }

    /// Room for a table record with `n` bytes of fields. False when the chunk is full.
    pub fn reserve_table(&mut self, n: usize) -> bool {
        self.reserve_tables(1, n)
    }

    /// Room for `records` table records with `n` bytes of fields in all: each takes a byte of
    /// TYPE, so two records written after one reservation need two there. False when the
    /// chunk is full.
    pub fn reserve_tables(&mut self, records: usize, n: usize) -> bool {
        // The table records take from the room the event budget counted on: count again.
        self.budget = 0;
        self.reserved = false;
        self.room_in(stream::TYPE) >= records
            && self.room_in(stream::DELTA) >= 1
            && self.room_in(stream::OTHER) >= n
    }

    fn room_in(&self, s: usize) -> usize {
        self.layout.end(s).saturating_sub(self.pos[s])
    }

    #[cold]
    fn events_that_fit(&self) -> usize {
        (0..COUNT)
            .filter(|&s| EVENT_MAX[s] > 0)
            .map(|s| self.room_in(s) / EVENT_MAX[s])
            .min()
            .unwrap_or(0)
    }

    #[inline]
    fn byte(&mut self, buf: &mut [u8], s: usize, b: u8) {
        self.byte_in::<false>(buf, s, b)
    }

    /// A byte of stream `s`; `ROOM`: `reserve_event` vouched for this event's bytes. A region
    /// never overflows when the caller reserved room; if it did, the bytes are dropped (the
    /// reader then finds the stream damaged) rather than written elsewhere.
    #[inline(always)]
    fn byte_in<const ROOM: bool>(&mut self, buf: &mut [u8], s: usize, b: u8) {
        let at = self.pos[s];
        if ROOM || at < self.layout.end(s) {
            if let Some(p) = buf.get_mut(at) {
                *p = b;
            }
        }
        self.pos[s] = at + 1;
    }

    #[inline]
    fn var(&mut self, buf: &mut [u8], s: usize, v: u64) {
        self.var_in::<false>(buf, s, v)
    }

    #[inline(always)]
    fn var_in<const ROOM: bool>(&mut self, buf: &mut [u8], s: usize, mut v: u64) {
        while v >= 0x80 {
            self.byte_in::<ROOM>(buf, s, v as u8 | 0x80);
            v >>= 7;
        }
        self.byte_in::<ROOM>(buf, s, v as u8);
    }

    fn bytes(&mut self, buf: &mut [u8], s: usize, bytes: &[u8]) {
        self.var(buf, s, bytes.len() as u64);
        for &b in bytes {
            self.byte(buf, s, b);
        }
    }

    #[inline(always)]
    fn code<const ROOM: bool>(&mut self, buf: &mut [u8], s: usize, found: Option<u64>, delta: u64) {
        let (escape, code) = address_code(found, delta);
        if let Some(e) = escape {
            self.var_in::<ROOM>(buf, s, e);
        }
        self.var_in::<ROOM>(buf, s, code);
    }

    /// The type and tick delta of a timed record; long deltas of allocations and frees go to
    /// TICK, those of other records to OTHER. Ticks never go backwards within a chunk.
    #[inline]
    fn head(&mut self, buf: &mut [u8], rtype: u8, tick: u64) {
        self.reserved = false;
        self.head_in::<false>(buf, rtype, tick)
    }

    #[inline(always)]
    fn head_in<const ROOM: bool>(&mut self, buf: &mut [u8], rtype: u8, tick: u64) {
        self.byte_in::<ROOM>(buf, stream::TYPE, rtype);
        let tick = tick.max(self.chunk.prev_tick);
        let delta = tick - self.chunk.prev_tick;
        self.chunk.prev_tick = tick;
        let d = delta.min(7) as u8;
        if self.chunk.timed.is_multiple_of(2) {
            self.byte_in::<ROOM>(buf, stream::DELTA, d);
        } else {
            // The pair's byte, if it was written: a full region dropped it (and the byte past
            // the region is the next stream's).
            let at = self.pos[stream::DELTA];
            if ROOM || at <= self.layout.end(stream::DELTA) {
                if let Some(p) = buf.get_mut(at - 1) {
                    *p |= d << 3;
                }
            }
        }
        self.chunk.timed += 1;
        if d == 7 {
            let s = if rtype <= rtype::PYFREE_ADDR {
                stream::TICK
            } else {
                stream::OTHER
            };
            self.var_in::<ROOM>(buf, s, delta - 7);
        }
    }

    fn untimed(&mut self, buf: &mut [u8], rtype: u8) {
        self.byte(buf, stream::TYPE, rtype);
    }

    fn other_addr(&mut self, buf: &mut [u8], addr: u64) {
        let d = zigzag(addr.wrapping_sub(self.chunk.prev_other) as i64);
        self.chunk.prev_other = addr;
        self.var(buf, stream::OTHER, d);
    }

    /// Sizes the part of the writer's index of recent addresses in use (log2 of its slots; see
    /// `model::DEFAULT_TABLE_BITS`): smaller stays in cache beside a busy program, larger finds
    /// more frees of blocks allocated long ago in the chunk. The table's allocation never
    /// changes size, so the traced program's memory layout does not either.
    pub fn set_model_bits(&mut self, bits: u32) {
        self.model.set_bits(bits);
    }

    /// Frees the index of recent addresses until the next `start` (which allocates it again,
    /// empty): for a writer that may stay idle a long time. Records are unaffected (a chunk
    /// never uses an earlier chunk's entries; without the table, nothing is found).
    pub fn release_model(&mut self) {
        self.model.release();
    }

    /// An allocation about to be written, with the slots of the writer's index it will look
    /// up: computed once, for the caller to prefetch them (`alloc_lookups`) while it does other
    /// work (they miss the cache on most allocations), and for the write (`alloc_looked_up`).
    #[inline]
    pub fn alloc_lookup(&self, allocator: Allocator, addr: u64, size: u64) -> AllocLookup {
        let end = block_end(allocator, addr, size);
        AllocLookup {
            allocator,
            addr,
            size,
            at: self.model.slot_of(addr),
            end,
            end_at: self.model.slot_of(end),
        }
    }

    /// The memory an allocation about to be written will look at (see `alloc_lookup`).
    #[inline]
    pub fn alloc_lookups(&self, lookup: &AllocLookup) -> [*const u8; 2] {
        [
            self.model.slot_ptr(lookup.at),
            self.model.slot_ptr(lookup.end_at),
        ]
    }

    /// The memory a free about to be written will look at (see `alloc_lookup`).
    #[inline]
    pub fn free_lookup(&self, addr: u64) -> *const u8 {
        self.model.slot_ptr(self.model.slot_of(addr))
    }

    /// An allocation (after `reserve_event`).
    #[inline]
    #[allow(clippy::too_many_arguments)]
    pub fn alloc(
        &mut self,
        buf: &mut [u8],
        allocator: Allocator,
        tick: u64,
        addr: u64,
        size: u64,
        stack: u64,
    ) {
        let lookup = self.alloc_lookup(allocator, addr, size);
        self.alloc_looked_up(buf, lookup, tick, stack)
    }

    /// The allocation of `lookup` (after `reserve_event`); a change of the index's size since
    /// the lookup (`set_model_bits`) costs at most bytes, never correctness.
    #[inline]
    pub fn alloc_looked_up(&mut self, buf: &mut [u8], lookup: AllocLookup, tick: u64, stack: u64) {
        if core::mem::take(&mut self.reserved) {
            self.alloc_in::<true>(buf, lookup, tick, stack)
        } else {
            self.alloc_in::<false>(buf, lookup, tick, stack)
        }
    }

    /// `alloc`; `ROOM`: the event's room was reserved (its writes need no check of their
    /// regions' capacity, only of the buffer's bounds).
    #[inline(always)]
    fn alloc_in<const ROOM: bool>(
        &mut self,
        buf: &mut [u8],
        lookup: AllocLookup,
        tick: u64,
        stack: u64,
    ) {
        let AllocLookup {
            allocator,
            addr,
            size,
            at,
            end,
            end_at,
        } = lookup;
        self.head_in::<ROOM>(buf, allocator as u8, tick);
        let found = self.model.allocate(addr, at);
        let delta = addr.wrapping_sub(self.chunk.prev_alloc);
        self.chunk.prev_alloc = addr;
        self.code::<ROOM>(buf, stream::ADDR, found, delta);
        self.model.add(end, end_at);
        self.byte_in::<ROOM>(buf, stream::SIZE_LO, size as u8);
        self.var_in::<ROOM>(buf, stream::SIZE_HI, size >> 8);
        self.var_in::<ROOM>(buf, stream::STACK, stack);
    }

    /// A free by address (after `reserve_event`); `python` for pymalloc_free.
    #[inline]
    pub fn free(&mut self, buf: &mut [u8], python: bool, tick: u64, addr: u64) {
        let t = if python {
            rtype::PYFREE_ADDR
        } else {
            rtype::FREE_ADDR
        };
        if core::mem::take(&mut self.reserved) {
            self.free_in::<true>(buf, t, tick, addr)
        } else {
            self.free_in::<false>(buf, t, tick, addr)
        }
    }

    /// `free` as a record of type `t` (see `alloc_in` for `ROOM`).
    #[inline(always)]
    fn free_in<const ROOM: bool>(&mut self, buf: &mut [u8], t: u8, tick: u64, addr: u64) {
        self.head_in::<ROOM>(buf, t, tick);
        let found = self.model.free(addr);
        let delta = addr.wrapping_sub(self.chunk.prev_free);
        self.chunk.prev_free = addr;
        self.code::<ROOM>(buf, stream::FREE_ADDR, found, delta);
    }

    /// A pymalloc_free by address of a block that held an object of type `object_type` (after
    /// `reserve_event`): as `free`, and the type's zigzag delta from the chunk's previous one
    /// in OTHER.
    #[inline]
    pub fn typed_free(&mut self, buf: &mut [u8], tick: u64, addr: u64, object_type: u64) {
        if core::mem::take(&mut self.reserved) {
            self.typed_free_in::<true>(buf, tick, addr, object_type)
        } else {
            self.typed_free_in::<false>(buf, tick, addr, object_type)
        }
    }

    /// `typed_free` (see `alloc_in` for `ROOM`: its bytes are within [`EVENT_MAX`], the
    /// type's delta in OTHER's share).
    #[inline(always)]
    fn typed_free_in<const ROOM: bool>(
        &mut self,
        buf: &mut [u8],
        tick: u64,
        addr: u64,
        object_type: u64,
    ) {
        self.free_in::<ROOM>(buf, rtype::TYPED_FREE, tick, addr);
        let d = zigzag(object_type.wrapping_sub(self.chunk.prev_type) as i64);
        self.chunk.prev_type = object_type;
        self.var_in::<ROOM>(buf, stream::OTHER, d);
    }

    /// An munmap (after `reserve_event`).
    pub fn munmap(&mut self, buf: &mut [u8], tick: u64, addr: u64, len: u64) {
        self.head(buf, rtype::MUNMAP, tick);
        self.other_addr(buf, addr);
        self.var(buf, stream::OTHER, len);
    }

    /// An mremap (after `reserve_event`).
    pub fn mremap(
        &mut self,
        buf: &mut [u8],
        tick: u64,
        old: (u64, u64),
        new: (u64, u64),
        stack: u64,
    ) {
        self.head(buf, rtype::MREMAP, tick);
        self.other_addr(buf, old.0);
        self.var(buf, stream::OTHER, old.1);
        self.other_addr(buf, new.0);
        self.var(buf, stream::OTHER, new.1);
        self.var(buf, stream::OTHER, stack);
    }

    /// A marker (after `reserve_event`).
    pub fn marker(&mut self, buf: &mut [u8], tick: u64, marker: Marker) {
        self.head(buf, rtype::MARKER, tick);
        self.var(buf, stream::OTHER, marker.code());
    }

    /// Room a table record (or an extended record) with `n` bytes of text needs in OTHER: at
    /// most what its raw encoding takes.
    pub fn table_len(n: usize) -> usize {
        Encoder::table_record_len(n)
    }

    /// An extended record (after `reserve_table(table_len(payload.len()))`).
    pub fn extended(&mut self, buf: &mut [u8], tick: u64, kind: u64, payload: &[u8]) {
        self.head(buf, rtype::EXTENDED, tick);
        self.var(buf, stream::OTHER, kind);
        self.bytes(buf, stream::OTHER, payload);
    }

    /// Stack `id` = `frame` called from `parent` (after `reserve_table(table_len(0))`).
    pub fn stack(&mut self, buf: &mut [u8], id: u64, parent: u64, frame: u64) {
        self.untimed(buf, rtype::STACK);
        for v in [id, parent, frame] {
            self.var(buf, stream::OTHER, v);
        }
    }

    /// Native frame `id` at `addr` (after `reserve_table(table_len(0))`).
    pub fn native_frame(&mut self, buf: &mut [u8], id: u64, addr: u64) {
        self.untimed(buf, rtype::NATIVE_FRAME);
        self.var(buf, stream::OTHER, id);
        self.var(buf, stream::OTHER, addr);
    }

    /// Python frame `id` (after `reserve_table(table_len(0))`).
    pub fn python_frame(&mut self, buf: &mut [u8], id: u64, function: u64, file: u64, line: u64) {
        self.untimed(buf, rtype::PYTHON_FRAME);
        for v in [id, function, file, line] {
            self.var(buf, stream::OTHER, v);
        }
    }

    /// String `id` (after `reserve_table(table_len(bytes.len()))`).
    pub fn string(&mut self, buf: &mut [u8], id: u64, bytes: &[u8]) {
        self.untimed(buf, rtype::STRING);
        self.var(buf, stream::OTHER, id);
        self.bytes(buf, stream::OTHER, bytes);
    }

    /// The thread's name (after `reserve_table(table_len(name.len()))`).
    pub fn thread_name(&mut self, buf: &mut [u8], name: &[u8]) {
        self.untimed(buf, rtype::THREAD_NAME);
        self.bytes(buf, stream::OTHER, name);
    }

    /// A loaded module (after `reserve_table(Encoder::module_len(..))`).
    pub fn module(
        &mut self,
        buf: &mut [u8],
        base: u64,
        path: &[u8],
        build_id: &[u8],
        segments: &[Segment],
    ) {
        self.untimed(buf, rtype::MODULE);
        self.var(buf, stream::OTHER, base);
        self.bytes(buf, stream::OTHER, path);
        self.bytes(buf, stream::OTHER, build_id);
        self.var(buf, stream::OTHER, segments.len() as u64);
        for s in segments {
            for v in [s.vaddr, s.memsz, s.file_offset] {
                self.var(buf, stream::OTHER, v);
            }
        }
    }

    /// The room `rec` takes in OTHER when it is reserved as a table record (`reserve_table`:
    /// tables, thread names, modules, extended records); None for an event (`reserve_event`).
    pub fn table_room(rec: &Record) -> Option<usize> {
        match *rec {
            Record::Alloc { .. }
            | Record::Free { .. }
            | Record::Munmap { .. }
            | Record::Mremap { .. }
            | Record::Marker { .. } => None,
            Record::Extended { payload: b, .. }
            | Record::String { bytes: b, .. }
            | Record::ThreadName { name: b } => Some(Self::table_len(b.len())),
            Record::Module {
                path,
                build_id,
                ref segments,
                ..
            } => Some(Encoder::module_len(path, build_id, segments.len())),
            Record::Stack { .. } | Record::NativeFrame { .. } | Record::PythonFrame { .. } => {
                Some(Self::table_len(0))
            }
        }
    }

    /// Writes any decoded record, reserving room first; false when the chunk is full. Frees
    /// are written by address whatever their raw form.
    pub fn record(&mut self, buf: &mut [u8], rec: &Record) -> bool {
        let room = match Self::table_room(rec) {
            Some(n) => self.reserve_table(n),
            None => self.reserve_event(),
        };
        if room {
            self.write(buf, rec);
        }
        room
    }

    /// Writes any decoded record whose room was reserved (see `record`).
    pub fn write(&mut self, buf: &mut [u8], rec: &Record) {
        match *rec {
            Record::Alloc {
                tick,
                allocator,
                addr,
                size,
                stack,
            } => self.alloc(buf, allocator, tick, addr, size, stack),
            Record::Free {
                tick,
                python,
                addr,
                object_type,
            } => {
                if python && object_type != 0 {
                    self.typed_free(buf, tick, addr, object_type)
                } else {
                    self.free(buf, python, tick, addr)
                }
            }
            Record::Munmap { tick, addr, len } => self.munmap(buf, tick, addr, len),
            Record::Mremap {
                tick,
                old_addr,
                old_len,
                new_addr,
                new_len,
                stack,
            } => self.mremap(buf, tick, (old_addr, old_len), (new_addr, new_len), stack),
            Record::Marker { tick, marker } => self.marker(buf, tick, marker),
            Record::Extended {
                tick,
                kind,
                payload,
            } => self.extended(buf, tick, kind, payload),
            Record::Stack { id, parent, frame } => self.stack(buf, id, parent, frame),
            Record::NativeFrame { id, addr } => self.native_frame(buf, id, addr),
            Record::PythonFrame {
                id,
                function,
                file,
                line,
            } => self.python_frame(buf, id, function, file, line),
            Record::String { id, bytes } => self.string(buf, id, bytes),
            Record::ThreadName { name } => self.thread_name(buf, name),
            Record::Module {
                base,
                path,
                build_id,
                ref segments,
            } => self.module(buf, base, path, build_id, segments),
        }
    }
}

fn put_u32(buf: &mut [u8], at: usize, v: usize) {
    if let Some(p) = buf.get_mut(at..at + 4) {
        p.copy_from_slice(&(v as u32).to_le_bytes());
    }
}

fn get_u32(buf: &[u8], at: usize) -> Option<usize> {
    let b = buf.get(at..at + 4)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
}

/// The streams of a staging payload (a directory and its regions): TYPE cut to the `records`
/// the staging header vouches for, the others whole regions, whose bytes beyond those records
/// are left over from earlier chunks or a record being written: read them with `join_prefix`.
pub fn staging_streams(payload: &[u8], records: usize) -> Result<[&[u8]; COUNT], DecodeError> {
    let damaged = |what| DecodeError { offset: 0, what };
    let mut out: [&[u8]; COUNT] = [&[]; COUNT];
    for (s, o) in out.iter_mut().enumerate() {
        let field = |i: usize| get_u32(payload, 4 * (i * COUNT + s));
        let (off, cap) = match (field(0), field(1)) {
            (Some(o), Some(c)) => (o, c),
            _ => return Err(damaged("staging: directory cut short")),
        };
        let len = if s == stream::TYPE { records } else { cap };
        if len > cap || off < DIRECTORY_LEN {
            return Err(damaged("staging: a stream outgrows its region"));
        }
        *o = off
            .checked_add(len)
            .and_then(|end| payload.get(off..end))
            .ok_or_else(|| damaged("staging: a region lies outside the chunk"))?;
    }
    Ok(out)
}

/// Splits a raw payload (records as `record::Encoder` writes them) into streams, for tools and
/// tests. Frees come out by address whatever their raw form.
pub fn split(raw: &[u8]) -> Result<[Vec<u8>; COUNT], DecodeError> {
    let mut records = 0usize;
    for rec in Decoder::new(raw) {
        rec?;
        records += 1;
    }
    // Enough for every record at its largest; table records take at most their raw bytes.
    let capacity = std::array::from_fn(|s| EVENT_MAX[s].max(1) * (records + 1) + raw.len());
    let layout = Layout::from_capacities(capacity);
    let mut buf = vec![0u8; layout.buffer_len()];
    let mut w = ColumnWriter::new(layout);
    w.start(&mut buf, false);
    for rec in Decoder::new(raw) {
        let rec = rec?;
        if !w.record(&mut buf, &rec) {
            return Err(DecodeError {
                offset: 0,
                what: "columns: a record did not fit its stream",
            });
        }
    }
    Ok(w.streams(&buf).map(|s| s.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer started on a small buffer (4 KiB of regions), with its layout and buffer.
    fn small_writer() -> (Layout, Vec<u8>, ColumnWriter) {
        let layout = Layout::for_buffer(4096);
        let mut buf = vec![0u8; layout.buffer_len()];
        let mut w = ColumnWriter::new(layout);
        w.start(&mut buf, false);
        (layout, buf, w)
    }

    #[test]
    fn an_event_written_without_room_stays_in_its_regions() {
        // Fill a small buffer with reserved events, then write more without reserving: their
        // bytes land only in the free part of each stream's region; a full region drops them.
        let (layout, mut buf, mut w) = small_writer();
        let mut events = 0u64;
        while w.reserve_event() {
            events += 1;
            w.alloc(&mut buf, Allocator::Malloc, events, 0x1000 * events, 24, 1);
        }
        assert!(events > 0);
        let (before, len_before) = (buf.clone(), w.lens());
        for i in 1..=60 {
            w.alloc(
                &mut buf,
                Allocator::Malloc,
                i << 40,
                i << 45,
                i << 30,
                i << 50,
            );
        }
        for (i, (&new, &old)) in buf.iter().zip(&before).enumerate() {
            if new != old {
                let s = (0..COUNT)
                    .find(|&s| i >= layout.offset[s] && i < layout.end(s))
                    .expect("a changed byte lies in a region");
                // (DELTA's last byte may take the second half of its pair.)
                let kept = len_before[s] - usize::from(s == stream::DELTA);
                assert!(i - layout.offset[s] >= kept, "stream {s} rewritten");
            }
        }
        // The streams count every byte the event needed, so a reader finds a full one damaged.
        assert!((0..COUNT).any(|s| w.lens()[s] > layout.capacity[s]));
    }

    #[test]
    fn an_allocation_looked_up_before_the_index_changed_size_is_written_exactly() {
        // The tracker looks an allocation up (for its prefetch) before it makes room, and
        // making room may start a chunk with the index at another size: the slots computed
        // before then must still give the right records, whatever they find.
        let (_, mut buf, mut w) = small_writer();
        let mut want = Vec::new();
        let mut addr = 0x7f00_0000_1000u64;
        for i in 0..40u64 {
            let (lookup, stack) = (
                w.alloc_lookup(Allocator::PymallocMalloc, addr, 24),
                1 + i % 5,
            );
            if i % 3 == 0 {
                w.set_model_bits(4 + (i % 11) as u32);
            }
            assert!(w.reserve_event());
            w.alloc_looked_up(&mut buf, lookup, i, stack);
            want.push(Record::Alloc {
                tick: i,
                allocator: Allocator::PymallocMalloc,
                addr,
                size: 24,
                stack,
            });
            assert!(w.reserve_event());
            w.free(&mut buf, true, i, addr - 32 * (i % 2));
            want.push(Record::Free {
                tick: i,
                python: true,
                addr: addr - 32 * (i % 2),
                object_type: 0,
            });
            addr += 32;
        }
        let raw = super::super::join(&w.streams(&buf)).expect("the streams decode");
        let got: Vec<Record> = Decoder::new(&raw).map(|r| r.expect("a record")).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn two_table_records_are_reserved_only_where_both_types_fit() {
        // A native call site's frame and stack are written after one reservation: with one
        // byte of TYPE left, the second record's type would be dropped and the chunk damaged.
        // TYPE's region is the one that fills (a run of table records, OTHER ample).
        let mut capacity = [64usize; COUNT];
        capacity[stream::TYPE] = 10;
        capacity[stream::OTHER] = 4096;
        let layout = Layout::from_capacities(capacity);
        let mut buf = vec![0u8; layout.buffer_len()];
        let mut w = ColumnWriter::new(layout);
        w.start(&mut buf, false);
        let mut id = 0;
        while w.reserve_table(ColumnWriter::table_len(0))
            && layout.capacity[stream::TYPE] - w.lens()[stream::TYPE] > 1
        {
            id += 1;
            w.stack(&mut buf, id, 0, id);
        }
        assert_eq!(layout.capacity[stream::TYPE] - w.lens()[stream::TYPE], 1);
        assert!(!w.reserve_tables(2, 2 * ColumnWriter::table_len(0)));
        assert!(w.reserve_tables(1, ColumnWriter::table_len(0)));
        w.native_frame(&mut buf, id + 1, 0x4000);
        let raw = super::super::join(&w.streams(&buf)).expect("the streams decode");
        let got: Vec<Record> = Decoder::new(&raw).map(|r| r.expect("a record")).collect();
        assert_eq!(got.len(), id as usize + 1);
        assert_eq!(
            got.last(),
            Some(&Record::NativeFrame {
                id: id + 1,
                addr: 0x4000
            })
        );
    }

    #[test]
    fn a_tick_delta_past_a_full_delta_region_is_dropped_not_merged_into_the_next() {
        // Without reservations the pair's second delta (ORed into the pair's byte) must stay
        // in DELTA's region too: past its end, that byte was the next stream's (TICK's).
        let (layout, mut buf, mut w) = small_writer();
        assert!(w.reserve_event());
        // A long tick delta: TICK holds 993 (its first byte 0xe1, bit 3 clear).
        w.alloc(&mut buf, Allocator::Malloc, 1000, 0x1000, 24, 1);
        let start = layout.offset[stream::TICK];
        let tick = start..start + w.lens()[stream::TICK];
        let kept = buf[tick.clone()].to_vec();
        for i in 1..=(2 * layout.capacity[stream::DELTA] as u64 + 4) {
            w.alloc(&mut buf, Allocator::Malloc, 1000 + i, 0x1000, 24, 1);
        }
        assert!(w.lens()[stream::DELTA] > layout.capacity[stream::DELTA] + 1);
        assert_eq!(buf[tick], kept[..]);
    }
}
