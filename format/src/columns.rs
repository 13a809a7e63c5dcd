//! The columnar chunk codec: a chunk's records split into streams of like fields, each stream
//! compressed on its own.
//!
//! Mixed records defeat a general compressor: a random size next to a random address leaves it
//! no repeats to find. Split into columns (record heads, sizes, addresses, ...) each stream gets
//! its own entropy tables, and two models take out what is predictable:
//! - an allocation's address is usually a block the allocator just had free: an address freed
//!   earlier in the chunk, or the end of a block allocated earlier (allocators carve blocks one
//!   after another). Every free and every allocation adds such a *candidate*; an allocation whose
//!   address is a candidate is written as how many candidates ago it was added.
//! - sizes are split into their low byte and the rest, two streams with very different
//!   statistics.
//!
//! `split` turns a raw payload (records as `record::Encoder` writes them) into the streams and
//! `join` turns the streams back into the identical raw payload, so that the reader decodes
//! records one way only. The compression of each stream and the framing (`write_frame_table`,
//! `read_frames`) are described in docs/FORMAT.md.

use crate::record::{rtype, Allocator, DecodeError, Decoder, Encoder, Marker, Record, Segment};
use crate::varint::{get, put, unzigzag, zigzag, MAX_VARINT_LEN};

/// The streams of a columnar chunk, in the order they are stored.
pub mod stream {
    /// The type of every record (byte 0 >> 3).
    pub const TYPE: usize = 0;
    /// The short tick delta (byte 0 & 7) of every timed record, two to a byte (the first in
    /// the low bits): consecutive deltas are related (a free is often followed at once by an
    /// allocation), which a byte-wise coder sees only in pairs.
    pub const DELTA: usize = 1;
    /// The long tick deltas (delta - 7) of allocations and frees.
    pub const TICK: usize = 2;
    /// Allocation addresses: a candidate distance or a delta.
    pub const ADDR: usize = 3;
    /// The low byte of each allocation size.
    pub const SIZE_LO: usize = 4;
    /// The rest of each allocation size (size >> 8), varints.
    pub const SIZE_HI: usize = 5;
    /// Allocation stack ids.
    pub const STACK: usize = 6;
    /// Frees by distance to their allocation record.
    pub const FREE: usize = 7;
    /// Frees by address: the distance to their allocation when it is in the chunk after all,
    /// else deltas between them (blocks allocated in earlier chunks).
    pub const FREE_ADDR: usize = 8;
    /// The fields of every other record, with these deltas: addresses of munmap and mremap
    /// against each other.
    pub const OTHER: usize = 9;
    pub const COUNT: usize = 10;
}

/// Streams shorter than this are stored as they are: a compressed frame would not be smaller.
pub const MIN_COMPRESSED_STREAM: usize = 64;

const TABLE_BITS: u32 = 14;
const TABLE_LEN: usize = 1 << TABLE_BITS;

/// Where the next block after an allocation of `size` at `addr` probably starts, by allocator:
/// glibc's chunk arithmetic (a 16-byte aligned block with an 8-byte header, at least 32 bytes),
/// pymalloc's 16-byte size classes, whole pages for mappings. Only a guess: a wrong guess costs
/// bytes, never correctness, as both sides compute the same one.
fn block_end(allocator: Allocator, addr: u64, size: u64) -> u64 {
    let len = match allocator {
        Allocator::Mmap => size.wrapping_add(4095) & !4095,
        Allocator::PymallocMalloc | Allocator::PymallocCalloc | Allocator::PymallocRealloc => {
            size.max(1).wrapping_add(15) & !15
        }
        _ => (size.wrapping_add(8 + 15) & !15).max(32),
    };
    addr.wrapping_add(len)
}

/// What the splitter knows about the addresses of one hash slot. Both indexes live in one slot
/// because an allocation and its free look up and add at the same address: one cache line.
#[derive(Clone, Copy, Default)]
#[repr(align(32))]
struct Slot {
    /// The latest candidate at this slot, with its writer-wide serial (those of earlier chunks
    /// are stale).
    candidate: u64,
    candidate_serial: u64,
    /// The latest allocation at this slot, with the serial of its allocation record.
    allocation: u64,
    allocation_serial: u64,
}

/// Splits raw payloads into streams. One per writer thread: it keeps its tables between chunks
/// (allocated once) but every chunk is encoded on its own.
pub struct Splitter {
    /// Candidates and allocations by hash, most recent wins: a lossy index is enough for a
    /// guess.
    table: Vec<Slot>,
    /// Serial of the last candidate added (writer-wide).
    serial: u64,
    /// Serial of the last allocation record (writer-wide).
    alloc_serial: u64,
    allocs: Vec<u64>,
}

impl Default for Splitter {
    fn default() -> Splitter {
        Splitter::new()
    }
}

#[inline]
fn slot(addr: u64) -> usize {
    ((addr >> 4).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - TABLE_BITS)) as usize
}

#[inline]
fn push_var(out: &mut Vec<u8>, mut v: u64) {
    // Byte by byte: a copy of a few bytes through extend_from_slice costs a memmove call.
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn push_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    push_var(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Deltas below this fit a code; 0 escapes to a second varint, so no bit of a 64-bit delta is
/// lost.
const MISS_LIMIT: u64 = 1 << 62;

/// An address as a code: `distance * 2 + 1` when the model found it, else `(zigzag(delta) + 1)
/// * 2` (or 0 and then the zigzag delta).
#[inline]
fn push_code(out: &mut Vec<u8>, found: Option<u64>, delta: u64) {
    let code = match found {
        Some(distance) => distance * 2 + 1,
        None => {
            let zz = zigzag(delta as i64);
            if zz < MISS_LIMIT {
                (zz + 1) * 2
            } else {
                push_var(out, 0);
                zz
            }
        }
    };
    push_var(out, code);
}

enum Code {
    Found(u64),
    Delta(u64),
}

fn read_code(r: &mut Reader) -> Result<Code, DecodeError> {
    let code = r.var()?;
    Ok(if code & 1 == 1 {
        Code::Found(code / 2)
    } else if code == 0 {
        Code::Delta(unzigzag(r.var()?) as u64)
    } else {
        Code::Delta(unzigzag(code / 2 - 1) as u64)
    })
}

impl Splitter {
    pub fn new() -> Splitter {
        Splitter {
            table: Vec::new(),
            serial: 0,
            alloc_serial: 0,
            allocs: Vec::new(),
        }
    }

    /// Splits the records of `raw` into `out` (cleared first). Fails on a payload that does not
    /// decode; `out` is then meaningless.
    pub fn split(
        &mut self,
        raw: &[u8],
        out: &mut [Vec<u8>; stream::COUNT],
    ) -> Result<(), DecodeError> {
        if self.table.is_empty() {
            self.table = vec![Slot::default(); TABLE_LEN];
        }
        for s in out.iter_mut() {
            s.clear();
        }
        let mut state = SplitState {
            base: self.serial,
            alloc_base: self.alloc_serial,
            ..SplitState::default()
        };
        let mut dec = Decoder::with_allocs(raw, std::mem::take(&mut self.allocs));
        let result = loop {
            let start = dec.position();
            match dec.next() {
                None => break Ok(()),
                Some(Err(e)) => break Err(e),
                Some(Ok(rec)) => {
                    let distance = dec.last_distance();
                    if let Err(e) = self.put(raw[start], distance, rec, &mut state, out) {
                        break Err(e);
                    }
                }
            }
        };
        self.allocs = dec.into_allocs();
        result
    }

    /// Writes one record (whose byte 0 is `head`) to the streams.
    fn put(
        &mut self,
        head: u8,
        distance: Option<u64>,
        rec: Record,
        st: &mut SplitState,
        out: &mut [Vec<u8>; stream::COUNT],
    ) -> Result<(), DecodeError> {
        let event = matches!(rec, Record::Alloc { .. } | Record::Free { .. });
        if rec.tick().is_none() && head & 7 != 0 {
            // The encoder writes none; keep such a payload out of this codec.
            return Err(DecodeError {
                offset: 0,
                what: "a table record with a tick delta",
            });
        }
        self.put_head(head, rec.tick(), event, st, out);
        match rec {
            Record::Alloc {
                allocator,
                addr,
                size,
                stack,
                ..
            } => self.put_alloc(allocator, addr, size, stack, st, out),
            Record::Free { addr, .. } => self.put_free(addr, distance, st, out),
            other => encode_other(&other, &mut st.prev_other, &mut out[stream::OTHER]),
        }
        Ok(())
    }

    /// The type, the tick delta of a timed record and its long part (in TICK for allocations
    /// and frees, else in OTHER).
    #[inline]
    fn put_head(
        &mut self,
        head: u8,
        tick: Option<u64>,
        event: bool,
        st: &mut SplitState,
        out: &mut [Vec<u8>; stream::COUNT],
    ) {
        out[stream::TYPE].push(head >> 3);
        let Some(tick) = tick else { return };
        if st.timed.is_multiple_of(2) {
            out[stream::DELTA].push(head & 7);
        } else if let Some(last) = out[stream::DELTA].last_mut() {
            *last |= (head & 7) << 3;
        }
        st.timed += 1;
        let delta = tick.wrapping_sub(st.prev_tick);
        st.prev_tick = tick;
        if head & 7 == 7 {
            let s = if event { stream::TICK } else { stream::OTHER };
            push_var(&mut out[s], delta - 7);
        }
    }

    #[inline]
    fn put_alloc(
        &mut self,
        allocator: Allocator,
        addr: u64,
        size: u64,
        stack: u64,
        st: &mut SplitState,
        out: &mut [Vec<u8>; stream::COUNT],
    ) {
        let at = &mut self.table[slot(addr)];
        let found = (at.candidate == addr && at.candidate_serial > st.base)
            .then(|| self.serial - at.candidate_serial);
        self.alloc_serial += 1;
        at.allocation = addr;
        at.allocation_serial = self.alloc_serial;
        push_code(
            &mut out[stream::ADDR],
            found,
            addr.wrapping_sub(st.prev_alloc),
        );
        st.prev_alloc = addr;
        self.add(block_end(allocator, addr, size));
        out[stream::SIZE_LO].push(size as u8);
        push_var(&mut out[stream::SIZE_HI], size >> 8);
        push_var(&mut out[stream::STACK], stack);
    }

    #[inline]
    fn put_free(
        &mut self,
        addr: u64,
        distance: Option<u64>,
        st: &mut SplitState,
        out: &mut [Vec<u8>; stream::COUNT],
    ) {
        match distance {
            Some(d) => push_var(&mut out[stream::FREE], d),
            None => {
                // The tracker writes frees by address: find the allocation here.
                let at = &self.table[slot(addr)];
                let found = (at.allocation == addr && at.allocation_serial > st.alloc_base)
                    .then(|| self.alloc_serial - at.allocation_serial + 1);
                let delta = addr.wrapping_sub(st.prev_free);
                push_code(&mut out[stream::FREE_ADDR], found, delta);
                st.prev_free = addr;
            }
        }
        self.add(addr);
    }

    #[inline]
    fn add(&mut self, addr: u64) {
        self.serial += 1;
        let at = &mut self.table[slot(addr)];
        at.candidate = addr;
        at.candidate_serial = self.serial;
    }
}

/// The running values of one chunk's split.
#[derive(Default)]
struct SplitState {
    /// Candidates and allocations of earlier chunks have serials at or below these.
    base: u64,
    alloc_base: u64,
    timed: usize,
    prev_tick: u64,
    prev_alloc: u64,
    prev_free: u64,
    prev_other: u64,
}

/// The fields of a record that is neither an allocation nor a free (its head and long tick are
/// written by the caller).
fn encode_other(rec: &Record, prev: &mut u64, out: &mut Vec<u8>) {
    let mut addr = |out: &mut Vec<u8>, a: u64| {
        push_var(out, zigzag(a.wrapping_sub(*prev) as i64));
        *prev = a;
    };
    match *rec {
        Record::Munmap { addr: a, len, .. } => {
            addr(out, a);
            push_var(out, len);
        }
        Record::Mremap {
            old_addr,
            old_len,
            new_addr,
            new_len,
            stack,
            ..
        } => {
            addr(out, old_addr);
            push_var(out, old_len);
            addr(out, new_addr);
            push_var(out, new_len);
            push_var(out, stack);
        }
        Record::Marker { marker, .. } => push_var(out, marker.code()),
        Record::Extended { kind, payload, .. } => {
            push_var(out, kind);
            push_bytes(out, payload);
        }
        Record::Stack { id, parent, frame } => {
            for v in [id, parent, frame] {
                push_var(out, v);
            }
        }
        Record::NativeFrame { id, addr: a } => {
            push_var(out, id);
            push_var(out, a);
        }
        Record::PythonFrame {
            id,
            function,
            file,
            line,
        } => {
            for v in [id, function, file, line] {
                push_var(out, v);
            }
        }
        Record::String { id, bytes } => {
            push_var(out, id);
            push_bytes(out, bytes);
        }
        Record::ThreadName { name } => push_bytes(out, name),
        Record::Module {
            base,
            path,
            build_id,
            ref segments,
        } => {
            push_var(out, base);
            push_bytes(out, path);
            push_bytes(out, build_id);
            push_var(out, segments.len() as u64);
            for s in segments {
                for v in [s.vaddr, s.memsz, s.file_offset] {
                    push_var(out, v);
                }
            }
        }
        Record::Alloc { .. } | Record::Free { .. } => {}
    }
}

/// Reads one stream front to back.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8], what: &'static str) -> Reader<'a> {
        Reader { buf, pos: 0, what }
    }

    fn err(&self) -> DecodeError {
        DecodeError {
            offset: self.pos,
            what: self.what,
        }
    }

    fn var(&mut self) -> Result<u64, DecodeError> {
        get(self.buf, &mut self.pos).ok_or_else(|| self.err())
    }

    fn byte(&mut self) -> Result<u8, DecodeError> {
        let b = *self.buf.get(self.pos).ok_or_else(|| self.err())?;
        self.pos += 1;
        Ok(b)
    }

    fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.var()? as usize;
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        let end = end.ok_or_else(|| self.err())?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }
}

fn corrupt(what: &'static str, offset: usize) -> DecodeError {
    DecodeError { offset, what }
}

/// Rebuilds the raw payload of `raw_len` bytes from its streams. Any inconsistency (a stream
/// too short or too long, a distance out of range, a payload longer than `raw_len`) is an error.
pub fn join(streams: &[&[u8]; stream::COUNT], raw_len: usize) -> Result<Vec<u8>, DecodeError> {
    let mut out = vec![0u8; raw_len + crate::record::MAX_EVENT_LEN];
    let mut pos = 0usize;
    let mut enc = Encoder::new();
    let mut heads = Reader::new(streams[stream::TYPE], "columns: record types run short");
    let mut deltas = Reader::new(streams[stream::DELTA], "columns: tick deltas run short");
    let mut ticks = Reader::new(streams[stream::TICK], "columns: tick stream runs short");
    let mut addrs = Reader::new(streams[stream::ADDR], "columns: address stream runs short");
    let mut lows = Reader::new(streams[stream::SIZE_LO], "columns: size stream runs short");
    let mut highs = Reader::new(streams[stream::SIZE_HI], "columns: size stream runs short");
    let mut stacks = Reader::new(streams[stream::STACK], "columns: stack stream runs short");
    let mut frees = Reader::new(streams[stream::FREE], "columns: free stream runs short");
    let mut free_addrs = Reader::new(
        streams[stream::FREE_ADDR],
        "columns: free stream runs short",
    );
    let mut other = Reader::new(streams[stream::OTHER], "columns: record stream runs short");
    let mut candidates: Vec<u64> = Vec::new();
    let mut allocs: Vec<u64> = Vec::new();
    let mut pending_delta: Option<u64> = None;
    let (mut tick, mut prev_alloc, mut prev_free, mut prev_other) = (0u64, 0u64, 0u64, 0u64);
    while !heads.done() {
        let rt = heads.byte()?;
        // Room for this record (its worst case); the length check after it keeps the payload
        // within `raw_len`.
        let room = |out: &mut Vec<u8>, need: usize, pos: usize| {
            if out.len() < pos + need {
                out.resize(pos + need, 0);
            }
        };
        let timed = matches!(rt, 0..=11 | 16..=21 | rtype::MARKER | rtype::EXTENDED);
        if timed {
            let mut delta = match pending_delta.take() {
                Some(d) => d,
                None => {
                    let pair = deltas.byte()?;
                    if pair >> 6 != 0 {
                        return Err(deltas.err());
                    }
                    pending_delta = Some(u64::from(pair >> 3));
                    u64::from(pair & 7)
                }
            };
            if delta == 7 {
                let r = if matches!(rt, 0..=11 | 16..=19) {
                    &mut ticks
                } else {
                    &mut other
                };
                delta = r.var()?.checked_add(7).ok_or_else(|| r.err())?;
            }
            tick = tick.wrapping_add(delta);
        }
        let mut other_addr = |r: &mut Reader| -> Result<u64, DecodeError> {
            prev_other = prev_other.wrapping_add(unzigzag(r.var()?) as u64);
            Ok(prev_other)
        };
        match rt {
            0..=11 => {
                let allocator = Allocator::from_u8(rt).ok_or_else(|| heads.err())?;
                let addr = match read_code(&mut addrs)? {
                    Code::Found(d) => {
                        let n = candidates.len() as u64;
                        if d >= n {
                            return Err(corrupt("columns: address names no candidate", addrs.pos));
                        }
                        candidates[(n - 1 - d) as usize]
                    }
                    Code::Delta(delta) => prev_alloc.wrapping_add(delta),
                };
                prev_alloc = addr;
                let size = (highs.var()? << 8) | u64::from(lows.byte()?);
                candidates.push(block_end(allocator, addr, size));
                allocs.push(addr);
                let stack = stacks.var()?;
                room(&mut out, crate::record::MAX_EVENT_LEN, pos);
                pos = enc.alloc(&mut out, pos, allocator, tick, addr, size, stack);
            }
            rtype::FREE_BACK | rtype::PYFREE_BACK => {
                let d = frees.var()?;
                let n = allocs.len() as u64;
                if d == 0 || d > n {
                    return Err(corrupt("columns: free names no allocation", frees.pos));
                }
                let addr = allocs[(n - d) as usize];
                candidates.push(addr);
                room(&mut out, crate::record::MAX_EVENT_LEN, pos);
                pos = enc.free_back(&mut out, pos, rt == rtype::PYFREE_BACK, tick, d, addr);
            }
            rtype::FREE_ADDR | rtype::PYFREE_ADDR => {
                prev_free = match read_code(&mut free_addrs)? {
                    Code::Found(d) => {
                        let n = allocs.len() as u64;
                        if d == 0 || d > n {
                            return Err(corrupt(
                                "columns: free names no allocation",
                                free_addrs.pos,
                            ));
                        }
                        allocs[(n - d) as usize]
                    }
                    Code::Delta(delta) => prev_free.wrapping_add(delta),
                };
                candidates.push(prev_free);
                room(&mut out, crate::record::MAX_EVENT_LEN, pos);
                pos = enc.free_addr(&mut out, pos, rt == rtype::PYFREE_ADDR, tick, prev_free);
            }
            rtype::MUNMAP => {
                let addr = other_addr(&mut other)?;
                let len = other.var()?;
                room(&mut out, crate::record::MAX_EVENT_LEN, pos);
                pos = enc.munmap(&mut out, pos, tick, addr, len);
            }
            rtype::MREMAP => {
                let old_addr = other_addr(&mut other)?;
                let old_len = other.var()?;
                let new_addr = other_addr(&mut other)?;
                let new_len = other.var()?;
                let stack = other.var()?;
                room(&mut out, crate::record::MAX_EVENT_LEN, pos);
                pos = enc.mremap(
                    &mut out, pos, tick, old_addr, old_len, new_addr, new_len, stack,
                );
            }
            rtype::MARKER => {
                let code = other.var()?;
                room(&mut out, crate::record::MAX_EVENT_LEN, pos);
                pos = enc.marker(&mut out, pos, tick, Marker::from_code(code));
            }
            rtype::EXTENDED => {
                let kind = other.var()?;
                let payload = other.bytes()?;
                room(&mut out, Encoder::table_record_len(payload.len()), pos);
                pos = enc.extended(&mut out, pos, tick, kind, payload);
            }
            rtype::STACK => {
                let (id, parent, frame) = (other.var()?, other.var()?, other.var()?);
                room(&mut out, Encoder::table_record_len(0), pos);
                pos = enc.stack(&mut out, pos, id, parent, frame);
            }
            rtype::NATIVE_FRAME => {
                let (id, addr) = (other.var()?, other.var()?);
                room(&mut out, Encoder::table_record_len(0), pos);
                pos = enc.native_frame(&mut out, pos, id, addr);
            }
            rtype::PYTHON_FRAME => {
                let (id, function) = (other.var()?, other.var()?);
                let (file, line) = (other.var()?, other.var()?);
                room(&mut out, Encoder::table_record_len(0), pos);
                pos = enc.python_frame(&mut out, pos, id, function, file, line);
            }
            rtype::STRING => {
                let id = other.var()?;
                let bytes = other.bytes()?;
                room(&mut out, Encoder::table_record_len(bytes.len()), pos);
                pos = enc.string(&mut out, pos, id, bytes);
            }
            rtype::THREAD_NAME => {
                let name = other.bytes()?;
                room(&mut out, Encoder::table_record_len(name.len()), pos);
                pos = enc.thread_name(&mut out, pos, name);
            }
            rtype::MODULE => {
                let base = other.var()?;
                let path = other.bytes()?;
                let build_id = other.bytes()?;
                let n = other.var()?;
                if n > 4096 {
                    return Err(corrupt("columns: too many segments", other.pos));
                }
                let mut segments = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    segments.push(Segment {
                        vaddr: other.var()?,
                        memsz: other.var()?,
                        file_offset: other.var()?,
                    });
                }
                room(
                    &mut out,
                    Encoder::module_len(path, build_id, segments.len()),
                    pos,
                );
                pos = enc.module(&mut out, pos, base, path, build_id, &segments);
            }
            _ => return Err(corrupt("columns: unknown record type", heads.pos - 1)),
        }
        if pos > raw_len {
            return Err(corrupt("columns: records longer than the chunk says", pos));
        }
    }
    let readers = [
        &deltas,
        &ticks,
        &addrs,
        &lows,
        &highs,
        &stacks,
        &frees,
        &free_addrs,
        &other,
    ];
    if let Some(r) = readers.iter().find(|r| !r.done()) {
        return Err(corrupt("columns: a stream has bytes left over", r.pos));
    }
    if pending_delta.is_some_and(|d| d != 0) {
        return Err(corrupt("columns: a tick delta left over", deltas.pos));
    }
    if pos != raw_len {
        return Err(corrupt("columns: records shorter than the chunk says", pos));
    }
    out.truncate(pos);
    Ok(out)
}

/// Largest encoded frame table.
pub const MAX_FRAME_TABLE: usize = 1 + 2 * stream::COUNT * MAX_VARINT_LEN;

/// Writes the frame table of a columnar payload: the stream count, then each stream's raw and
/// stored length. Returns its length.
pub fn write_frame_table(lens: &[(usize, usize); stream::COUNT], buf: &mut [u8]) -> usize {
    let mut pos = put(buf, 0, stream::COUNT as u64);
    for &(raw, stored) in lens {
        pos = put(buf, pos, raw as u64);
        pos = put(buf, pos, stored as u64);
    }
    pos
}

/// One stream of a columnar payload as stored: `stored` is a zstd frame unless its length
/// equals `raw_len` (then it is the stream itself).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    pub raw_len: usize,
    pub stored: &'a [u8],
}

impl Frame<'_> {
    pub fn is_compressed(&self) -> bool {
        self.stored.len() != self.raw_len
    }
}

/// Splits a stored columnar payload into its frames. Every raw length is at most `max_raw`.
pub fn read_frames(
    payload: &[u8],
    max_raw: usize,
) -> Result<[Frame<'_>; stream::COUNT], DecodeError> {
    let mut r = Reader::new(payload, "columns: damaged frame table");
    if r.var()? != stream::COUNT as u64 {
        return Err(corrupt("columns: unknown stream layout", 0));
    }
    let mut lens = [(0usize, 0usize); stream::COUNT];
    for l in lens.iter_mut() {
        let raw = r.var()?;
        let stored = r.var()?;
        if raw > max_raw as u64 || stored > payload.len() as u64 {
            return Err(r.err());
        }
        *l = (raw as usize, stored as usize);
    }
    let mut pos = r.pos;
    let mut frames = [Frame {
        raw_len: 0,
        stored: &[],
    }; stream::COUNT];
    for (f, &(raw_len, stored)) in frames.iter_mut().zip(lens.iter()) {
        let end = pos
            .checked_add(stored)
            .filter(|&e| e <= payload.len())
            .ok_or_else(|| corrupt("columns: a stream runs past the chunk", pos))?;
        *f = Frame {
            raw_len,
            stored: &payload[pos..end],
        };
        pos = end;
    }
    if pos != payload.len() {
        return Err(corrupt("columns: bytes after the last stream", pos));
    }
    Ok(frames)
}
