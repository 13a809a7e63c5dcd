//! Decoding one chunk: decompressing its payload and turning records into events and table rows.

use super::event::{code, Event};
use super::scan::ChunkEntry;
use memtrace_format::record::Segment;
use memtrace_format::{columns, ChunkCodec, ChunkHeader, ChunkKind, Decoder, Record};
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
}

impl ChunkTables {
    pub fn is_empty(&self) -> bool {
        self.stacks.is_empty()
            && self.native_frames.is_empty()
            && self.python_frames.is_empty()
            && self.strings.is_empty()
            && self.thread_name.is_none()
            && self.modules.is_empty()
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

/// The decoded payload bytes of a chunk.
pub fn payload<'a>(file: &'a [u8], entry: &ChunkEntry) -> Result<Cow<'a, [u8]>, String> {
    let stored = entry.payload(file);
    if entry.header.kind == ChunkKind::Staging {
        return staging_records(stored, &entry.header);
    }
    let raw_len = entry.header.raw_len as usize;
    match entry.header.codec {
        ChunkCodec::Raw => Ok(Cow::Borrowed(stored)),
        ChunkCodec::Zstd => decompress(stored, raw_len).map(Cow::Owned),
        ChunkCodec::Columns => join_columns(stored, raw_len).map(Cow::Owned),
    }
}

/// The complete records of a staging chunk's payload: raw records up to `raw_len`, or the
/// streams of a columnar staging area up to the record count in `raw_len`.
pub fn staging_records<'a>(
    stored: &'a [u8],
    header: &ChunkHeader,
) -> Result<Cow<'a, [u8]>, String> {
    let records = header.raw_len as usize;
    if header.codec == ChunkCodec::Columns {
        let streams = columns::staging_streams(stored, records).map_err(|e| e.to_string())?;
        return columns::join_prefix(&streams)
            .map(Cow::Owned)
            .map_err(|e| e.to_string());
    }
    Ok(Cow::Borrowed(&stored[..records.min(stored.len())]))
}

/// Decompresses the streams of a columnar payload and rebuilds the raw records from them.
fn join_columns(stored: &[u8], raw_len: usize) -> Result<Vec<u8>, String> {
    // Since format 1.2 `raw_len` is the streams' total length; 1.1 writers stored the records'
    // length, which a stream never exceeds by more than a few times.
    let frames = columns::read_frames(stored, 4 * raw_len + 64).map_err(|e| e.to_string())?;
    let mut owned: [Option<Vec<u8>>; columns::stream::COUNT] = Default::default();
    for (slot, f) in owned.iter_mut().zip(frames.iter()) {
        if f.is_compressed() {
            *slot = Some(decompress(f.stored, f.raw_len)?);
        }
    }
    let streams: [&[u8]; columns::stream::COUNT] =
        std::array::from_fn(|i| owned[i].as_deref().unwrap_or(frames[i].stored));
    columns::join(&streams).map_err(|e| e.to_string())
}

/// Decodes the chunk `entry` (number `entry_idx` of its list) of `file`.
pub fn decode_chunk(file: &[u8], entry: &ChunkEntry, entry_idx: usize) -> DecodedChunk {
    let mut out = DecodedChunk {
        entry: entry_idx,
        thread: entry.thread,
        offset: entry.offset,
        ..DecodedChunk::default()
    };
    let bytes = match payload(file, entry) {
        Ok(b) => b,
        Err(e) => {
            out.warning = Some(format!(
                "skipped damaged chunk at {}: cannot decompress it: {e}",
                entry.describe()
            ));
            return out;
        }
    };
    let timed = entry.header.kind != ChunkKind::Meta;
    // Every record takes at least one byte; the header's count is only a hint.
    let hint = (entry.header.record_count as usize).min(bytes.len());
    if timed {
        out.events = super::pool::take();
        out.events.reserve(hint);
    }
    if let Err(e) = decode_records(&bytes, timed, &mut out.events, &mut out.tables) {
        out.warning = Some(format!(
            "damaged records in chunk at {}: {e}; kept the {} events before it",
            entry.describe(),
            out.events.len()
        ));
    }
    out
}

/// Decodes records into `events` (when `timed`) and `tables`; stops at the first bad record.
pub fn decode_records(
    bytes: &[u8],
    timed: bool,
    events: &mut Vec<Event>,
    tables: &mut ChunkTables,
) -> Result<(), memtrace_format::DecodeError> {
    for rec in Decoder::new(bytes) {
        match rec? {
            Record::Alloc {
                tick,
                allocator,
                addr,
                size,
                stack,
            } => {
                if timed {
                    events.push(Event::new(allocator as u8, tick, addr, size, stack));
                }
            }
            Record::Free { tick, python, addr } => {
                if timed {
                    let c = if python { code::PY_FREE } else { code::FREE };
                    events.push(Event::new(c, tick, addr, 0, 0));
                }
            }
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
                if let (true, Some(bytes)) =
                    (timed, memtrace_format::varint::get(payload, &mut pos))
                {
                    events.push(Event::new(code::RESIDENT, tick, 0, bytes, 0));
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
    Ok(())
}
