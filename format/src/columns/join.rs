//! Rebuilds raw records from the streams of a columnar chunk.

use super::{block_end, stream, Code};
use crate::record::{
    rtype, Allocator, DecodeError, Encoder, Marker, Record, Segment, MAX_EVENT_LEN,
};
use crate::varint::{get, unzigzag};

/// Reads one stream front to back.
pub(super) struct Reader<'a> {
    buf: &'a [u8],
    pub(super) pos: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub(super) fn new(buf: &'a [u8], what: &'static str) -> Reader<'a> {
        Reader { buf, pos: 0, what }
    }

    pub(super) fn err(&self) -> DecodeError {
        DecodeError {
            offset: self.pos,
            what: self.what,
        }
    }

    // Inlined: the reader calls it for nearly every field of every record.
    #[inline]
    pub(super) fn var(&mut self) -> Result<u64, DecodeError> {
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

    pub(super) fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }
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
    // The address lists of the previous chunk read on this thread, emptied: lists this large
    // (one entry per record) would otherwise be mapped and unmapped afresh for every chunk.
    let (mut candidates, mut allocs) = SCRATCH.take();
    candidates.clear();
    allocs.clear();
    let result = visit_with(streams, exact, sink, &mut candidates, &mut allocs);
    SCRATCH.set((candidates, allocs));
    result
}

thread_local! {
    /// [`visit`]'s address lists, kept between chunks.
    static SCRATCH: std::cell::Cell<(Vec<u64>, Vec<u64>)> = const { std::cell::Cell::new((Vec::new(), Vec::new())) };
}

/// [`visit`] with its address lists: the candidates (freed blocks and block ends) and the
/// allocations of the chunk, each in record order.
fn visit_with<'a, S: RecordSink<'a>>(
    streams: &[&'a [u8]; stream::COUNT],
    exact: bool,
    sink: &mut S,
    candidates: &mut Vec<u64>,
    allocs: &mut Vec<u64>,
) -> Result<(), DecodeError> {
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
    let mut pending_delta: Option<u64> = None;
    let (mut tick, mut prev_alloc, mut prev_free, mut prev_other) = (0u64, 0u64, 0u64, 0u64);
    let mut prev_type = 0u64;
    while !heads.done() {
        let rt = heads.byte()?;
        let timed = matches!(rt, 0..=11 | 16..=22 | rtype::MARKER | rtype::EXTENDED);
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
                let first = addrs.var()?;
                let addr = match Code::read(first, || addrs.var())? {
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
                sink.alloc(tick, allocator, addr, size, stack);
            }
            rtype::FREE_BACK | rtype::PYFREE_BACK => {
                let d = frees.var()?;
                let n = allocs.len() as u64;
                if d == 0 || d > n {
                    return Err(corrupt("columns: free names no allocation", frees.pos));
                }
                let addr = allocs[(n - d) as usize];
                candidates.push(addr);
                sink.free(tick, rt == rtype::PYFREE_BACK, addr, Some(d), 0);
            }
            rtype::FREE_ADDR | rtype::PYFREE_ADDR | rtype::TYPED_FREE => {
                let first = free_addrs.var()?;
                prev_free = match Code::read(first, || free_addrs.var())? {
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
                let object_type = if rt == rtype::TYPED_FREE {
                    prev_type = prev_type.wrapping_add(unzigzag(other.var()?) as u64);
                    prev_type
                } else {
                    0
                };
                sink.free(tick, rt != rtype::FREE_ADDR, prev_free, None, object_type);
            }
            rtype::MUNMAP => {
                let addr = other_addr(&mut other)?;
                let len = other.var()?;
                sink.other(Record::Munmap { tick, addr, len });
            }
            rtype::MREMAP => {
                let old_addr = other_addr(&mut other)?;
                let old_len = other.var()?;
                let new_addr = other_addr(&mut other)?;
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
            _ => return Err(corrupt("columns: unknown record type", heads.pos - 1)),
        }
    }
    if exact {
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
    }
    Ok(())
}
