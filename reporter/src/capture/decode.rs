//! Decoding one chunk: decompressing its payload and turning records into events and table rows.

use super::event::{code, Event};
use super::scan::ChunkEntry;
use memtrace_format::chunk::MAX_DECODED;
use memtrace_format::columns::RecordSink;
use memtrace_format::record::Segment;
use memtrace_format::{
    columns, Allocator, ChunkCodec, ChunkHeader, ChunkKind, Decoder, Record, CHUNK_HEADER_LEN,
};
use std::borrow::Cow;
use std::cell::RefCell;

/// The extended record kind of a resident-size sample (varint bytes).
pub const RESIDENT_SIZE: u64 = 1;

/// A loaded module, from a Module record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Module {
    pub base: u64,
    pub path: Vec<u8>,
    pub build_id: Vec<u8>,
    pub segments: Vec<Segment>,
}

/// A Python frame row: function and file string ids, and the line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PyFrameRow {
    pub id: u64,
    pub function: u64,
    pub file: u64,
    pub line: u64,
}

/// The table records of one chunk.
#[derive(Clone, Debug, Default)]
pub struct ChunkTables {
    /// (id, parent, frame)
    pub stacks: Vec<(u64, u64, u64)>,
    /// (frame id, return address)
    pub native_frames: Vec<(u64, u64)>,
    pub python_frames: Vec<PyFrameRow>,
    pub strings: Vec<(u64, Box<[u8]>)>,
    /// The last thread name record of the chunk.
    pub thread_name: Option<Box<[u8]>>,
    pub modules: Vec<Module>,
    /// Allocations the allocator refused: (tick, request).
    pub failed: Vec<(u64, memtrace_format::failed::Failed)>,
    /// Object-types records (live Python objects by type, at the script's end).
    pub objects: Vec<memtrace_format::objects::ObjectTypes>,
    /// Type-names records: (type address, name) of the types alive at the script's end.
    pub type_names: Vec<(u64, Vec<u8>)>,
}

impl ChunkTables {
    pub fn is_empty(&self) -> bool {
        self.stacks.is_empty()
            && self.native_frames.is_empty()
            && self.python_frames.is_empty()
            && self.strings.is_empty()
            && self.thread_name.is_none()
            && self.modules.is_empty()
            && self.failed.is_empty()
            && self.objects.is_empty()
            && self.type_names.is_empty()
    }
}

/// A decoded chunk.
#[derive(Debug, Default)]
pub struct DecodedChunk {
    /// Index of the chunk in `Index::chunks` (or `Index::meta`).
    pub entry: usize,
    /// Index of the thread in `Index::threads`.
    pub thread: usize,
    /// File offset, the tie-breaker between threads' events of equal tick.
    pub offset: usize,
    pub events: Vec<Event>,
    pub tables: ChunkTables,
    /// What was wrong with the chunk, if anything (damaged chunks have no events).
    pub warning: Option<String>,
    /// The capture's byte sampling: its allocations' sizes are the sizes asked for until the
    /// stream weighs them, after `Consumer::summarize`.
    pub sampling: memtrace_format::settings::Sampling,
}

thread_local! {
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
}

fn decompress(src: &[u8], raw_len: usize) -> Result<Vec<u8>, String> {
    DECOMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(zstd::bulk::Decompressor::new().map_err(|e| e.to_string())?);
        }
        let Some(d) = slot.as_mut() else {
            return Err("no decompressor".to_string());
        };
        let out = d.decompress(src, raw_len).map_err(|e| e.to_string())?;
        if out.len() != raw_len {
            return Err(format!(
                "decompressed to {} bytes instead of {raw_len}",
                out.len()
            ));
        }
        Ok(out)
    })
}

/// A chunk's payload, ready to be read record by record.
// One lives on the stack per chunk decoded: its size does not matter.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Payload<'a> {
    /// Raw records.
    Records(Cow<'a, [u8]>),
    /// The streams of a columnar chunk (`exact`: a finished chunk, not a staging area).
    Streams {
        owned: [Option<Vec<u8>>; columns::stream::COUNT],
        frames: [&'a [u8]; columns::stream::COUNT],
        exact: bool,
    },
}

impl Payload<'_> {
    /// Hands each record to `sink`; stops at the first bad one.
    pub(crate) fn each_record<'s>(
        &'s self,
        sink: &mut impl RecordSink<'s>,
    ) -> Result<(), memtrace_format::DecodeError> {
        match self {
            Payload::Records(bytes) => {
                for rec in Decoder::new(bytes) {
                    sink.record(rec?);
                }
                Ok(())
            }
            Payload::Streams {
                owned,
                frames,
                exact,
            } => {
                let streams: [&[u8]; columns::stream::COUNT] =
                    std::array::from_fn(|i| owned[i].as_deref().unwrap_or(frames[i]));
                columns::each_record(&streams, *exact, sink)
            }
        }
    }
}

/// The payload of a chunk: decompressed, and for a staging chunk cut to its complete records.
pub(crate) fn payload<'a>(file: &'a [u8], entry: &ChunkEntry) -> Result<Payload<'a>, String> {
    let stored = entry.payload(file);
    let header = &entry.header;
    if header.kind == ChunkKind::Staging {
        return staging_payload(stored, header);
    }
    if !payload_intact(header, stored) {
        return Err(PAYLOAD_CHANGED.to_string());
    }
    let raw_len = header.raw_len as usize;
    if !super::scan::unbounded(header) && entry.decoded_len > MAX_DECODED {
        return Err(format!(
            "it claims {} bytes of records, more than a tracker writes",
            entry.decoded_len
        ));
    }
    match header.codec {
        ChunkCodec::Raw => Ok(Payload::Records(Cow::Borrowed(stored))),
        ChunkCodec::Zstd => decompress(stored, raw_len).map(|b| Payload::Records(Cow::Owned(b))),
        ChunkCodec::Columns => column_streams(stored, entry.decoded_len),
    }
}

/// Why a chunk whose payload fails its checksum is skipped.
pub(crate) const PAYLOAD_CHANGED: &str = "its payload does not match its checksum";

/// Whether a finished chunk's payload (`payload`: the bytes `ChunkHeader::checked_len`
/// counts) is what its writer checksummed; true for a chunk written without a checksum
/// (before 1.4).
pub(crate) fn payload_intact(header: &ChunkHeader, payload: &[u8]) -> bool {
    !header.has_payload_crc()
        || (payload.len() == header.checked_len() && crc32fast::hash(payload) == header.payload_crc)
}

/// The trailer a Trailer chunk's payload holds; None when it fails its checksum or does not
/// decode.
pub(crate) fn trailer(header: &ChunkHeader, payload: &[u8]) -> Option<memtrace_format::Trailer> {
    Some(payload)
        .filter(|p| payload_intact(header, p))
        .and_then(memtrace_format::Trailer::decode)
}

/// The complete records of a staging chunk's payload: raw records up to `raw_len`, or the
/// streams of a columnar staging area up to the record count in `raw_len`.
fn staging_payload<'a>(stored: &'a [u8], header: &ChunkHeader) -> Result<Payload<'a>, String> {
    let records = header.raw_len as usize;
    if header.codec == ChunkCodec::Columns {
        let frames = columns::staging_streams(stored, records).map_err(|e| e.to_string())?;
        return Ok(Payload::Streams {
            owned: Default::default(),
            frames,
            exact: false,
        });
    }
    Ok(Payload::Records(Cow::Borrowed(
        &stored[..records.min(stored.len())],
    )))
}

/// The first and last tick of a staging chunk's complete records (`payload` its stored bytes).
pub fn staging_tick_range(payload: &[u8], header: &ChunkHeader) -> Option<(u64, u64)> {
    let staging = ChunkHeader {
        kind: ChunkKind::Staging,
        ..*header
    };
    let records = staging_payload(payload, &staging).ok()?;
    let mut range = TickRange(None);
    // A bad record ends the range: the ticks before it stand.
    let _ = records.each_record(&mut range);
    range.0
}

/// The first and last tick of the records handed over.
struct TickRange(Option<(u64, u64)>);

impl TickRange {
    fn add(&mut self, t: u64) {
        self.0 = Some(self.0.map_or((t, t), |(a, b)| (a.min(t), b.max(t))));
    }
}

impl<'a> RecordSink<'a> for TickRange {
    fn alloc(&mut self, tick: u64, _: Allocator, _: u64, _: u64, _: u64) {
        self.add(tick);
    }

    fn free(&mut self, tick: u64, _: bool, _: u64, _: Option<u64>, _: u64) {
        self.add(tick);
    }

    fn other(&mut self, rec: Record<'a>) {
        if let Some(t) = rec.tick() {
            self.add(t);
        }
    }
}

/// Decompresses the streams of a columnar payload, `max_total` bytes of them at most (the
/// chunk's decoded length).
fn column_streams(stored: &[u8], max_total: usize) -> Result<Payload<'_>, String> {
    let frames = columns::read_frames(stored, max_total).map_err(|e| e.to_string())?;
    let mut owned: [Option<Vec<u8>>; columns::stream::COUNT] = Default::default();
    for (slot, f) in owned.iter_mut().zip(frames.iter()) {
        if f.is_compressed() {
            *slot = Some(decompress(f.stored, f.raw_len)?);
        }
    }
    Ok(Payload::Streams {
        owned,
        frames: std::array::from_fn(|i| frames[i].stored),
        exact: true,
    })
}

/// Decodes the chunk `entry` (number `entry_idx` of its list) of `file`.
pub fn decode_chunk(file: &[u8], entry: &ChunkEntry, entry_idx: usize) -> DecodedChunk {
    let mut out = DecodedChunk {
        entry: entry_idx,
        thread: entry.thread,
        offset: entry.offset,
        ..DecodedChunk::default()
    };
    // A live staging area the tracker flushed since the scan now holds its thread's next
    // chunk (or another thread's): what it held is in an Events chunk this read does not
    // know. Not damage: the capture is being written.
    let staging = entry.header.kind == ChunkKind::Staging;
    let held = (entry.header.thread_serial, entry.header.seq);
    if staging && staging_now(file, entry) != Some(held) {
        return out;
    }
    let payload = match payload(file, entry) {
        Ok(b) => b,
        Err(_) if staging && staging_now(file, entry) != Some(held) => return out,
        Err(e) => {
            let why = if e == PAYLOAD_CHANGED {
                e
            } else {
                format!("cannot decompress it: {e}")
            };
            out.warning = Some(format!(
                "skipped damaged chunk at {}: {why}",
                entry.describe()
            ));
            return out;
        }
    };
    let timed = entry.header.kind != ChunkKind::Meta;
    if timed {
        // The header's count is only a hint: never reserve more than the payload could hold
        // (a record takes two bytes at least).
        let hint = (entry.header.record_count as usize).min(entry.decoded_len / 2);
        out.events = super::pool::take();
        out.events.reserve(hint);
    }
    let mut sink = EventSink {
        timed,
        events: &mut out.events,
        tables: &mut out.tables,
    };
    let decoded = payload.each_record(&mut sink);
    // Flushed while it was read: what was read may mix two chunks' records.
    if staging && staging_now(file, entry) != Some(held) {
        out.events.clear();
        out.tables = ChunkTables::default();
        return out;
    }
    if let Err(e) = decoded {
        out.warning = Some(format!(
            "damaged records in chunk at {}: {e}; kept the {} events before it",
            entry.describe(),
            out.events.len()
        ));
    }
    out
}

/// The thread and sequence number a live staging area holds now (the tracker starts the
/// thread's next chunk there when it flushes one); None when it is no staging area any more.
fn staging_now(file: &[u8], entry: &ChunkEntry) -> Option<(u32, u32)> {
    let head = file.get(entry.offset..entry.offset + CHUNK_HEADER_LEN)?;
    let h = ChunkHeader::decode(head)?;
    (h.kind == ChunkKind::Staging).then_some((h.thread_serial, h.seq))
}

/// Decodes records into `events` (when `timed`) and `tables`; stops at the first bad record.
pub fn decode_records(
    bytes: &[u8],
    timed: bool,
    events: &mut Vec<Event>,
    tables: &mut ChunkTables,
) -> Result<(), memtrace_format::DecodeError> {
    let mut sink = EventSink {
        timed,
        events,
        tables,
    };
    for rec in Decoder::new(bytes) {
        sink.record(rec?);
    }
    Ok(())
}

/// Puts timed records into `events` (when `timed`), table records into `tables`.
struct EventSink<'e> {
    timed: bool,
    events: &'e mut Vec<Event>,
    tables: &'e mut ChunkTables,
}

impl<'a> RecordSink<'a> for EventSink<'_> {
    #[inline(always)]
    fn alloc(&mut self, tick: u64, allocator: Allocator, addr: u64, size: u64, stack: u64) {
        if self.timed {
            self.events
                .push(Event::new(allocator as u8, tick, addr, size, stack));
        }
    }

    #[inline(always)]
    fn free(&mut self, tick: u64, python: bool, addr: u64, _: Option<u64>, object_type: u64) {
        if self.timed {
            let c = if python { code::PY_FREE } else { code::FREE };
            // A free's size field carries the type of the object the block held (0: none).
            self.events.push(Event::new(c, tick, addr, object_type, 0));
        }
    }

    #[inline(never)]
    fn other(&mut self, rec: Record<'a>) {
        add_other_record(rec, self.timed, self.events, self.tables);
    }
}

/// A record other than an allocation or a free, into `events` (when `timed`) or `tables`.
pub(crate) fn add_other_record(
    rec: Record<'_>,
    timed: bool,
    events: &mut Vec<Event>,
    tables: &mut ChunkTables,
) {
    match rec {
        Record::Alloc { .. } | Record::Free { .. } => EventSink {
            timed,
            events,
            tables,
        }
        .record(rec),
        Record::Munmap { tick, addr, len } => {
            if timed {
                events.push(Event::new(code::MUNMAP, tick, addr, len, 0));
            }
        }
        Record::Mremap {
            tick,
            old_addr,
            old_len,
            new_addr,
            new_len,
            stack,
        } => {
            if timed {
                events.push(Event::new(code::MREMAP_OLD, tick, old_addr, old_len, 0));
                events.push(Event::new(code::MREMAP_NEW, tick, new_addr, new_len, stack));
            }
        }
        Record::Marker { tick, marker } => {
            if timed {
                events.push(Event::new(code::MARKER, tick, 0, marker.code(), 0));
            }
        }
        Record::Extended {
            tick,
            kind: RESIDENT_SIZE,
            payload,
        } => {
            let mut pos = 0;
            if let (true, Some(bytes)) = (timed, memtrace_format::varint::get(payload, &mut pos)) {
                events.push(Event::new(code::RESIDENT, tick, 0, bytes, 0));
            }
        }
        Record::Extended {
            tick,
            kind: memtrace_format::failed::FAILED_KIND,
            payload,
        } => {
            if let Some(f) = memtrace_format::failed::decode(payload) {
                tables.failed.push((tick, f));
            }
        }
        Record::Extended {
            kind: memtrace_format::objects::OBJECT_TYPES_KIND,
            payload,
            ..
        } => {
            // A damaged record is left out: its objects show as untyped.
            if let Some(o) = memtrace_format::objects::decode(payload) {
                tables.objects.push(o);
            }
        }
        Record::Extended {
            kind: memtrace_format::objects::TYPE_NAMES_KIND,
            payload,
            ..
        } => {
            if let Some(names) = memtrace_format::objects::decode_type_names(payload) {
                tables.type_names.extend(names);
            }
        }
        Record::Extended { .. } => {}
        Record::Stack { id, parent, frame } => tables.stacks.push((id, parent, frame)),
        Record::NativeFrame { id, addr } => tables.native_frames.push((id, addr)),
        Record::PythonFrame {
            id,
            function,
            file,
            line,
        } => tables.python_frames.push(PyFrameRow {
            id,
            function,
            file,
            line,
        }),
        Record::String { id, bytes } => tables.strings.push((id, bytes.into())),
        Record::ThreadName { name } => tables.thread_name = Some(name.into()),
        Record::Module {
            base,
            path,
            build_id,
            segments,
        } => tables.modules.push(Module {
            base,
            path: path.to_vec(),
            build_id: build_id.to_vec(),
            segments,
        }),
    }
}
