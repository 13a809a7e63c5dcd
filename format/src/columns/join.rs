//! Rebuilds raw records from the streams of a columnar chunk.

use super::pairs::{pair_run, Lists};
use super::{block_end, stream, Code};
use crate::record::{
    rtype, Allocator, DecodeError, Encoder, Marker, Record, Segment, MAX_EVENT_LEN,
};
use crate::varint::{get, unzigzag};

/// Reads one stream front to back.
// Copy: no reference to the chunk loop's readers leaves it (the rare records' reader gets
// copies, see `visit_with`), so the compiler may keep them in registers where it has room (an
// escaping reference kept all nine in memory).
#[derive(Clone, Copy)]
pub(super) struct Reader<'a> {
    buf: &'a [u8],
    pub(super) pos: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub(super) fn new(buf: &'a [u8], what: &'static str) -> Reader<'a> {
        Reader { buf, pos: 0, what }
    }

    /// The error of a read past the stream's end (or a damaged value) at the reader's place.
    #[inline(always)]
    pub(super) fn err(&self) -> DecodeError {
        // The values, not the reader: a reference to it passed out of line would keep it in
        // memory for the whole loop.
        overrun(self.pos, self.what)
    }

    // Always inlined: the reader calls it for nearly every field of every record, and a call
    // (the loop around it is large enough that plain `inline` left it out of line) cost as
    // much as its body.
    #[inline(always)]
    pub(super) fn var(&mut self) -> Result<u64, DecodeError> {
        match get(self.buf, &mut self.pos) {
            Some(v) => Ok(v),
            None => Err(self.err()),
        }
    }

    #[inline(always)]
    fn byte(&mut self) -> Result<u8, DecodeError> {
        match self.buf.get(self.pos) {
            Some(&b) => {
                self.pos += 1;
                Ok(b)
            }
            None => Err(self.err()),
        }
    }

    /// The bytes not read yet.
    #[inline(always)]
    pub(super) fn rest(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or(&[])
    }

    fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.var()? as usize;
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        let end = end.ok_or_else(|| self.err())?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    pub(super) fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }
}

#[cold]
#[inline(never)]
fn overrun(offset: usize, what: &'static str) -> DecodeError {
    DecodeError { offset, what }
}

pub(super) fn corrupt(what: &'static str, offset: usize) -> DecodeError {
    DecodeError { offset, what }
}

/// Rebuilds the raw records of a chunk from its streams. Any inconsistency (a stream too short
/// or too long, a distance out of range) is an error.
pub fn join(streams: &[&[u8]; stream::COUNT]) -> Result<Vec<u8>, DecodeError> {
    join_records(streams, true)
}

/// Rebuilds the records of a staging area: every record TYPE names, ignoring bytes the other
/// streams hold beyond them (a record being written when the process died).
pub fn join_prefix(streams: &[&[u8]; stream::COUNT]) -> Result<Vec<u8>, DecodeError> {
    join_records(streams, false)
}

/// What [`each_record`] hands a chunk's records to. Allocations and frees, nearly all of the
/// records, come as plain values (passed in registers: a record written to memory field by field
/// and read back whole stalls the reader on each one); the others as a [`Record`].
pub trait RecordSink<'a> {
    fn alloc(&mut self, tick: u64, allocator: Allocator, addr: u64, size: u64, stack: u64);
    /// `back`: how many allocations ago (in the chunk) the block was allocated, when the streams
    /// say so.
    /// `object_type`: the type of the object the block held, 0 when not known (see
    /// `Record::Free`).
    fn free(&mut self, tick: u64, python: bool, addr: u64, back: Option<u64>, object_type: u64);
    /// Every other record.
    fn other(&mut self, rec: Record<'a>);

    /// Whether the reader takes runs of allocations freed by the next record the short way
    /// (`columns::pairs`): much faster for a sink that takes such pairs at once where most
    /// records are pairs (a native program's temporary buffers, in the live view), but the
    /// record loop that tries them is larger, and reading a Python run's records (few such
    /// runs) took 4% more instructions with it. Off unless a sink asks.
    const PAIR_RUNS: bool = false;

    /// An allocation and, as the chunk's next record, a free at its address (most blocks live
    /// briefly): a sink may take the two at once.
    #[inline(always)]
    fn alloc_freed(&mut self, b: AllocFreed) {
        self.alloc(b.tick, b.allocator, b.addr, b.size, b.stack);
        self.free(b.freed, b.python, b.addr, None, b.object_type);
    }

    /// Hands over a decoded record by its kind.
    #[inline(always)]
    fn record(&mut self, rec: Record<'a>) {
        match rec {
            Record::Alloc {
                tick,
                allocator,
                addr,
                size,
                stack,
            } => self.alloc(tick, allocator, addr, size, stack),
            Record::Free {
                tick,
                python,
                addr,
                object_type,
            } => self.free(tick, python, addr, None, object_type),
            other => self.other(other),
        }
    }
}

/// An allocation and the free at its address that follows it (see
/// [`RecordSink::alloc_freed`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AllocFreed {
    pub tick: u64,
    pub allocator: Allocator,
    pub addr: u64,
    pub size: u64,
    pub stack: u64,
    /// The free's tick.
    pub freed: u64,
    /// pymalloc's free.
    pub python: bool,
    /// As the free's (see `Record::Free`).
    pub object_type: u64,
}

/// Hands each record of a chunk's streams to `sink`, in order, without rebuilding raw records
/// (what a reader that wants records, not bytes, should call). `exact` as in [`join`] (true)
/// or [`join_prefix`] (false).
pub fn each_record<'a>(
    streams: &[&'a [u8]; stream::COUNT],
    exact: bool,
    sink: &mut impl RecordSink<'a>,
) -> Result<(), DecodeError> {
    visit(streams, exact, sink)
}

/// Rebuilds raw records (as `record::Encoder` writes them).
struct RawRecords {
    out: Vec<u8>,
    pos: usize,
    enc: Encoder,
}

impl RawRecords {
    /// Room for a record of at most `need` bytes.
    #[inline]
    fn room(&mut self, need: usize) {
        if self.out.len() < self.pos + need {
            self.out.resize(self.pos + need, 0);
        }
    }
}

impl<'a> RecordSink<'a> for RawRecords {
    fn alloc(&mut self, tick: u64, allocator: Allocator, addr: u64, size: u64, stack: u64) {
        self.room(MAX_EVENT_LEN);
        self.pos = (self.enc).alloc(&mut self.out, self.pos, allocator, tick, addr, size, stack);
    }

    fn free(&mut self, tick: u64, python: bool, addr: u64, back: Option<u64>, object_type: u64) {
        self.room(MAX_EVENT_LEN);
        let (out, pos) = (&mut self.out, self.pos);
        self.pos = match back {
            Some(d) => self.enc.free_back(out, pos, python, tick, d, addr),
            None => self.enc.any_free(out, pos, python, tick, addr, object_type),
        };
    }

    fn other(&mut self, rec: Record<'a>) {
        // Room for this record (its worst case): bounded by the stream bytes it consumed.
        let need = match &rec {
            Record::Extended { payload, .. } => Encoder::table_record_len(payload.len()),
            Record::String { bytes, .. } => Encoder::table_record_len(bytes.len()),
            Record::ThreadName { name } => Encoder::table_record_len(name.len()),
            Record::Module {
                path,
                build_id,
                segments,
                ..
            } => Encoder::module_len(path, build_id, segments.len()),
            Record::Stack { .. } | Record::NativeFrame { .. } | Record::PythonFrame { .. } => {
                Encoder::table_record_len(0)
            }
            _ => MAX_EVENT_LEN,
        };
        self.room(need);
        self.pos = encode(&mut self.enc, &mut self.out, self.pos, rec);
    }
}

fn join_records(streams: &[&[u8]; stream::COUNT], exact: bool) -> Result<Vec<u8>, DecodeError> {
    // Every record takes at least its type byte; most take a few more.
    let mut raw = RawRecords {
        out: vec![0u8; 4 * streams[stream::TYPE].len() + MAX_EVENT_LEN],
        pos: 0,
        enc: Encoder::new(),
    };
    visit(streams, exact, &mut raw)?;
    raw.out.truncate(raw.pos);
    Ok(raw.out)
}

/// Writes `rec` as a raw record at `pos`.
fn encode(enc: &mut Encoder, out: &mut [u8], pos: usize, rec: Record) -> usize {
    match rec {
        Record::Alloc {
            tick,
            allocator,
            addr,
            size,
            stack,
        } => enc.alloc(out, pos, allocator, tick, addr, size, stack),
        Record::Free {
            tick,
            python,
            addr,
            object_type,
        } => enc.any_free(out, pos, python, tick, addr, object_type),
        Record::Munmap { tick, addr, len } => enc.munmap(out, pos, tick, addr, len),
        Record::Mremap {
            tick,
            old_addr,
            old_len,
            new_addr,
            new_len,
            stack,
        } => enc.mremap(out, pos, tick, old_addr, old_len, new_addr, new_len, stack),
        Record::Marker { tick, marker } => enc.marker(out, pos, tick, marker),
        Record::Extended {
            tick,
            kind,
            payload,
        } => enc.extended(out, pos, tick, kind, payload),
        Record::Stack { id, parent, frame } => enc.stack(out, pos, id, parent, frame),
        Record::NativeFrame { id, addr } => enc.native_frame(out, pos, id, addr),
        Record::PythonFrame {
            id,
            function,
            file,
            line,
        } => enc.python_frame(out, pos, id, function, file, line),
        Record::String { id, bytes } => enc.string(out, pos, id, bytes),
        Record::ThreadName { name } => enc.thread_name(out, pos, name),
        Record::Module {
            base,
            path,
            build_id,
            segments,
        } => enc.module(out, pos, base, path, build_id, &segments),
    }
}

/// Reads the streams record by record.
// Generic rather than `dyn`: the sink's calls are inlined into the loop.
fn visit<'a, S: RecordSink<'a>>(
    streams: &[&'a [u8]; stream::COUNT],
    exact: bool,
    sink: &mut S,
) -> Result<(), DecodeError> {
    // The address lists of the previous chunk read on this thread (their entries are stale:
    // `visit_with` reads only those it wrote): lists this large (one entry per record) would
    // otherwise be mapped and unmapped afresh for every chunk.
    let (mut candidates, mut allocs) = SCRATCH.take();
    let result = visit_with(streams, exact, sink, &mut candidates, &mut allocs);
    SCRATCH.set((candidates, allocs));
    result
}

thread_local! {
    /// [`visit`]'s address lists, kept between chunks.
    static SCRATCH: std::cell::Cell<(Vec<u64>, Vec<u64>)> = const { std::cell::Cell::new((Vec::new(), Vec::new())) };
}

/// The readers of a chunk's streams.
#[derive(Clone, Copy)]
pub(super) struct Readers<'a> {
    pub(super) deltas: Reader<'a>,
    ticks: Reader<'a>,
    pub(super) addrs: Reader<'a>,
    pub(super) lows: Reader<'a>,
    pub(super) highs: Reader<'a>,
    pub(super) stacks: Reader<'a>,
    frees: Reader<'a>,
    pub(super) free_addrs: Reader<'a>,
    other: Reader<'a>,
}

/// Pairs read in a row, at their addresses and freed without a type, before the reader tries
/// a run (see `pairs`).
const STREAK: u32 = 4;

/// No short tick delta is waiting (the second of a pair's byte).
pub(super) const NO_DELTA: u64 = u64::MAX;

/// The running values a chunk's records are read against.
#[derive(Clone, Copy)]
pub(super) struct Running {
    pub(super) tick: u64,
    /// The second short delta of the last pair's byte, or [`NO_DELTA`].
    pub(super) pending: u64,
    pub(super) prev_alloc: u64,
    pub(super) prev_free: u64,
    prev_other: u64,
    prev_type: u64,
}

impl<'a> Readers<'a> {
    fn new(streams: &[&'a [u8]; stream::COUNT]) -> Readers<'a> {
        Readers {
            deltas: Reader::new(streams[stream::DELTA], "columns: tick deltas run short"),
            ticks: Reader::new(streams[stream::TICK], "columns: tick stream runs short"),
            addrs: Reader::new(streams[stream::ADDR], "columns: address stream runs short"),
            lows: Reader::new(streams[stream::SIZE_LO], "columns: size stream runs short"),
            highs: Reader::new(streams[stream::SIZE_HI], "columns: size stream runs short"),
            stacks: Reader::new(streams[stream::STACK], "columns: stack stream runs short"),
            frees: Reader::new(streams[stream::FREE], "columns: free stream runs short"),
            free_addrs: Reader::new(
                streams[stream::FREE_ADDR],
                "columns: free stream runs short",
            ),
            other: Reader::new(streams[stream::OTHER], "columns: record stream runs short"),
        }
    }

    /// Adds the tick delta of a timed record to `run.tick`: the short one from DELTA, a long
    /// one (short delta 7) from TICK (`long`: an allocation or an untyped free) or OTHER.
    #[inline(always)]
    fn advance(&mut self, run: &mut Running, long: bool) -> Result<(), DecodeError> {
        let delta = if run.pending != NO_DELTA {
            core::mem::replace(&mut run.pending, NO_DELTA)
        } else {
            let pair = self.deltas.byte()?;
            if pair >> 6 != 0 {
                return Err(self.deltas.err());
            }
            run.pending = u64::from(pair >> 3);
            u64::from(pair & 7)
        };
        let delta = if delta == 7 {
            let r = if long {
                &mut self.ticks
            } else {
                &mut self.other
            };
            match r.var()?.checked_add(7) {
                Some(d) => d,
                None => return Err(r.err()),
            }
        } else {
            delta
        };
        run.tick = run.tick.wrapping_add(delta);
        Ok(())
    }
}

/// The block `d` back in `list` (1: the last), if there is one.
#[inline(always)]
fn back(list: &[u64], d: u64) -> Option<u64> {
    // d = 0 or past the start wraps to an index the list does not have.
    let i = (list.len() as u64).wrapping_sub(d);
    if d == 0 {
        return None;
    }
    list.get(i as usize).copied()
}

/// Whether a record type is a free coded by its address (FREE_ADDR's family).
#[inline(always)]
fn is_addr_free(rt: u8) -> bool {
    matches!(
        rt,
        rtype::FREE_ADDR | rtype::PYFREE_ADDR | rtype::TYPED_FREE
    )
}

/// Whether a record type is a free coded by its address that carries no object type.
#[inline(always)]
pub(super) fn is_plain_addr_free(rt: u8) -> bool {
    rt == rtype::FREE_ADDR || rt == rtype::PYFREE_ADDR
}

/// Hands an allocation and the free that follows it to `sink`: as a pair when the free is at
/// the allocation's address, else as the two records.
#[inline(always)]
pub(super) fn hand_over<'a, S: RecordSink<'a>>(sink: &mut S, b: AllocFreed, freed: u64) {
    if freed == b.addr {
        sink.alloc_freed(b);
    } else {
        sink.alloc(b.tick, b.allocator, b.addr, b.size, b.stack);
        sink.free(b.freed, b.python, freed, None, b.object_type);
    }
}

/// Reads a free coded by its address (type `rt`, see [`is_addr_free`]), against the chunk's
/// allocations so far: its address and the type of the object it held (0: not known).
#[inline(always)]
fn read_addr_free(
    rt: u8,
    r: &mut Readers,
    run: &mut Running,
    allocs: &[u64],
) -> Result<(u64, u64), DecodeError> {
    r.advance(run, rt != rtype::TYPED_FREE)?;
    let first = r.free_addrs.var()?;
    run.prev_free = match Code::read(first, || r.free_addrs.var())? {
        Code::Found(d) => match back(allocs, d) {
            Some(a) => a,
            None => {
                return Err(corrupt(
                    "columns: free names no allocation",
                    r.free_addrs.pos,
                ))
            }
        },
        Code::Delta(delta) => run.prev_free.wrapping_add(delta),
    };
    let object_type = if rt == rtype::TYPED_FREE {
        run.prev_type = run.prev_type.wrapping_add(unzigzag(r.other.var()?) as u64);
        run.prev_type
    } else {
        0
    };
    Ok((run.prev_free, object_type))
}

/// [`visit`] with its address lists: the candidates (freed blocks and block ends) and the
/// allocations of the chunk, each in record order. Allocations and frees (nearly every
/// record) are read in the loop itself; the other records apart ([`other_record`]).
fn visit_with<'a, S: RecordSink<'a>>(
    streams: &[&'a [u8]; stream::COUNT],
    exact: bool,
    sink: &mut S,
    candidates: &mut Vec<u64>,
    allocs: &mut Vec<u64>,
) -> Result<(), DecodeError> {
    let mut r = Readers::new(streams);
    let mut run = Running {
        tick: 0,
        pending: NO_DELTA,
        prev_alloc: 0,
        prev_free: 0,
        prev_other: 0,
        prev_type: 0,
    };
    // At most one entry per record in each list: sized once (the lists are kept from chunk
    // to chunk), then written by index, without a push's test of the capacity.
    let records = streams[stream::TYPE].len();
    for list in [&mut *candidates, &mut *allocs] {
        if list.len() < records {
            list.resize(records, 0);
        }
    }
    let (mut nc, mut na) = (0usize, 0usize);
    let heads = streams[stream::TYPE];
    let mut i = 0;
    // Pairs the short way could have taken read in a row (see `STREAK`).
    let mut streak = 0u32;
    while let Some(&rt) = heads.get(i) {
        i += 1;
        if let Some(&allocator) = Allocator::ALL.get(usize::from(rt)) {
            // After a few pairs in a row, the next ones may take the short way as a run. (Tried
            // at every pair, runs that come out short, as where blocks are freed in batches,
            // cost more than they save.)
            if S::PAIR_RUNS
                && streak >= STREAK
                && heads.get(i).is_some_and(|&t| is_plain_addr_free(t))
            {
                streak = 0;
                let (candidates, allocs) = (&mut candidates[..], &mut allocs[..]);
                let mut lists = Lists {
                    candidates,
                    allocs,
                    nc,
                    na,
                };
                // Copies in and out, as for `other_record`.
                let (mut r2, mut run2) = (r, run);
                let n = pair_run(heads, i - 1, &mut r2, &mut run2, &mut lists, sink);
                (r, run) = (r2, run2);
                (nc, na) = (lists.nc, lists.na);
                if n > 0 {
                    // (This pair's allocation is counted in `i` already.)
                    i += 2 * n - 1;
                    continue;
                }
            }
            r.advance(&mut run, true)?;
            let first = r.addrs.var()?;
            let addr = match Code::read(first, || r.addrs.var())? {
                Code::Found(d) => match back(&candidates[..nc], d.wrapping_add(1)) {
                    Some(a) => a,
                    None => {
                        return Err(corrupt("columns: address names no candidate", r.addrs.pos))
                    }
                },
                Code::Delta(delta) => run.prev_alloc.wrapping_add(delta),
            };
            run.prev_alloc = addr;
            let size = (r.highs.var()? << 8) | u64::from(r.lows.byte()?);
            // (nc, na <= i < records: within the lists.)
            candidates[nc] = block_end(allocator, addr, size);
            allocs[na] = addr;
            (nc, na) = (nc + 1, na + 1);
            let stack = r.stacks.var()?;
            let tick = run.tick;
            // The next record a free of this block (most live briefly): both at once.
            match heads.get(i) {
                Some(&next) if is_addr_free(next) => {
                    i += 1;
                    let (freed, object_type) =
                        match read_addr_free(next, &mut r, &mut run, &allocs[..na]) {
                            Ok(f) => f,
                            Err(e) => {
                                // The allocation before the damage is kept.
                                sink.alloc(tick, allocator, addr, size, stack);
                                return Err(e);
                            }
                        };
                    candidates[nc] = freed;
                    nc += 1;
                    let b = AllocFreed {
                        tick,
                        allocator,
                        addr,
                        size,
                        stack,
                        freed: run.tick,
                        python: next != rtype::FREE_ADDR,
                        object_type,
                    };
                    hand_over(sink, b, freed);
                    streak = match freed == addr && next != rtype::TYPED_FREE {
                        true => streak + 1,
                        false => 0,
                    };
                }
                _ => {
                    sink.alloc(tick, allocator, addr, size, stack);
                    streak = 0;
                }
            }
        } else if is_addr_free(rt) {
            let (addr, object_type) = read_addr_free(rt, &mut r, &mut run, &allocs[..na])?;
            candidates[nc] = addr;
            nc += 1;
            streak = 0;
            sink.free(run.tick, rt != rtype::FREE_ADDR, addr, None, object_type);
        } else if matches!(rt, rtype::FREE_BACK | rtype::PYFREE_BACK) {
            r.advance(&mut run, true)?;
            let d = r.frees.var()?;
            let Some(addr) = back(&allocs[..na], d) else {
                return Err(corrupt("columns: free names no allocation", r.frees.pos));
            };
            candidates[nc] = addr;
            nc += 1;
            sink.free(run.tick, rt == rtype::PYFREE_BACK, addr, Some(d), 0);
        } else {
            // Copies in and out: a reference to the loop's own would keep them in memory.
            let (mut r2, mut run2) = (r, run);
            let read = other_record(rt, i - 1, &mut r2, &mut run2, sink);
            (r, run) = (r2, run2);
            read?;
        }
    }
    if exact {
        let readers = [
            r.deltas,
            r.ticks,
            r.addrs,
            r.lows,
            r.highs,
            r.stacks,
            r.frees,
            r.free_addrs,
            r.other,
        ];
        if let Some(left) = readers.iter().find(|r| !r.done()) {
            return Err(corrupt("columns: a stream has bytes left over", left.pos));
        }
        if run.pending != NO_DELTA && run.pending != 0 {
            return Err(corrupt("columns: a tick delta left over", r.deltas.pos));
        }
    }
    Ok(())
}

/// A record other than an allocation or a free (of type `rt`, its type byte read).
#[inline(never)]
fn other_record<'a, S: RecordSink<'a>>(
    rt: u8,
    at: usize,
    r: &mut Readers<'a>,
    run: &mut Running,
    sink: &mut S,
) -> Result<(), DecodeError> {
    if matches!(
        rt,
        rtype::MUNMAP | rtype::MREMAP | rtype::MARKER | rtype::EXTENDED
    ) {
        r.advance(run, false)?;
    }
    let tick = run.tick;
    let other = &mut r.other;
    let mut other_addr = |r: &mut Reader| -> Result<u64, DecodeError> {
        run.prev_other = run.prev_other.wrapping_add(unzigzag(r.var()?) as u64);
        Ok(run.prev_other)
    };
    match rt {
        rtype::MUNMAP => {
            let addr = other_addr(other)?;
            let len = other.var()?;
            sink.other(Record::Munmap { tick, addr, len });
        }
        rtype::MREMAP => {
            let old_addr = other_addr(other)?;
            let old_len = other.var()?;
            let new_addr = other_addr(other)?;
            let new_len = other.var()?;
            let stack = other.var()?;
            let rec = Record::Mremap {
                tick,
                old_addr,
                old_len,
                new_addr,
                new_len,
                stack,
            };
            sink.other(rec);
        }
        rtype::MARKER => {
            let marker = Marker::from_code(other.var()?);
            sink.other(Record::Marker { tick, marker });
        }
        rtype::EXTENDED => {
            let kind = other.var()?;
            let payload = other.bytes()?;
            let rec = Record::Extended {
                tick,
                kind,
                payload,
            };
            sink.other(rec);
        }
        rtype::STACK => {
            let (id, parent, frame) = (other.var()?, other.var()?, other.var()?);
            sink.other(Record::Stack { id, parent, frame });
        }
        rtype::NATIVE_FRAME => {
            let (id, addr) = (other.var()?, other.var()?);
            sink.other(Record::NativeFrame { id, addr });
        }
        rtype::PYTHON_FRAME => {
            let (id, function) = (other.var()?, other.var()?);
            let (file, line) = (other.var()?, other.var()?);
            let rec = Record::PythonFrame {
                id,
                function,
                file,
                line,
            };
            sink.other(rec);
        }
        rtype::STRING => {
            let id = other.var()?;
            let bytes = other.bytes()?;
            sink.other(Record::String { id, bytes });
        }
        rtype::THREAD_NAME => {
            let name = other.bytes()?;
            sink.other(Record::ThreadName { name });
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
            let rec = Record::Module {
                base,
                path,
                build_id,
                segments,
            };
            sink.other(rec);
        }
        _ => return Err(corrupt("columns: unknown record type", at)),
    }
    Ok(())
}
