//! The chunk index: one pass over the chunk headers (cheap), before any payload is decoded.
//!
//! Damaged headers are skipped by scanning forward in 8-byte steps for the next valid one; a chunk
//! that runs past the end of the file ends the scan (a truncated capture).

use super::holes::{Holes, NextData};
use super::Capture;
use hashbrown::{HashMap, HashSet};
use memtrace_format::chunk::MAX_DECODED;
use memtrace_format::{
    trailer_flags, ChunkCodec, ChunkHeader, ChunkKind, Trailer, CHUNK_ALIGN, CHUNK_HEADER_LEN,
    CHUNK_MAGIC,
};

/// A chunk that carries a thread's events (an Events chunk or a live Staging chunk) or metadata.
#[derive(Clone, Debug)]
pub struct ChunkEntry {
    /// File offset of the chunk header.
    pub offset: usize,
    pub header: ChunkHeader,
    /// Bytes of payload to read after the header: the compressed size for zstd, the record bytes
    /// for raw and staging chunks.
    pub payload_len: usize,
    /// The most bytes the payload decodes to (records, or streams together): what decoding it
    /// may allocate, at most [`MAX_DECODED`] for a thread's chunk.
    pub decoded_len: usize,
    /// Index into `Index::threads` (0 for meta chunks).
    pub thread: usize,
    /// Ticks of the first and last timed record (staging: found by decoding).
    pub first_tick: u64,
    pub last_tick: u64,
}

impl ChunkEntry {
    /// The payload bytes of this chunk within the file.
    pub fn payload<'a>(&self, file: &'a [u8]) -> &'a [u8] {
        let start = self.offset + CHUNK_HEADER_LEN;
        file.get(start..start + self.payload_len).unwrap_or(&[])
    }

    /// "offset X (thread T, seq S)" for messages.
    pub fn describe(&self) -> String {
        format!(
            "offset {} (thread {}, seq {})",
            self.offset, self.header.thread_serial, self.header.seq
        )
    }
}

/// One traced thread: its serial, OS thread id and chunks in sequence order.
#[derive(Clone, Debug)]
pub struct ThreadInfo {
    pub serial: u32,
    pub tid: u32,
    /// Indices into `Index::chunks`, by `seq`.
    pub chunks: Vec<usize>,
}

/// Everything learned from the chunk headers.
#[derive(Clone, Debug, Default)]
pub struct Index {
    /// Event-bearing chunks (Events, and Staging chunks that are not stale), in file order.
    pub chunks: Vec<ChunkEntry>,
    pub threads: Vec<ThreadInfo>,
    /// Meta chunks (module records), in file order.
    pub meta: Vec<ChunkEntry>,
    /// The last trailer in the file.
    pub trailer: Option<Trailer>,
    /// Chunks with a valid header read completely (of every kind).
    pub chunks_read: usize,
    /// Where a chunk ran past the end of the file.
    pub truncated_at: Option<usize>,
    /// Records in the Events and Meta chunks found, by their headers: what the trailer's
    /// `records_written` counts too.
    pub records_found: u64,
    /// Event records in chunks whose header was valid but whose payload could not be read (found
    /// while decoding, after the scan): a capture with any is not complete.
    pub records_damaged: u64,
    /// Chunks found damaged (by the scan, or by the reading of their payloads).
    pub chunks_damaged: u64,
    /// The (tick, monotonic ns) pair read last in time, from chunk headers or the trailer.
    pub latest_pair: Option<(u64, u64)>,
    pub warnings: Vec<String>,
    /// How the capture was recorded (sampling, labels).
    pub settings: memtrace_format::settings::Settings,
}

impl Index {
    /// The payloads of the extended records of `kind` in the raw Meta chunks, in file order,
    /// each with its chunk (a damaged record ends its chunk's records).
    pub fn meta_extended<'a>(
        &'a self,
        file: &'a [u8],
        kind: u64,
    ) -> impl Iterator<Item = (&'a ChunkEntry, &'a [u8])> + 'a {
        self.meta
            .iter()
            .filter(|e| e.header.codec == ChunkCodec::Raw)
            .flat_map(move |entry| {
                memtrace_format::Decoder::new(entry.payload(file))
                    .map_while(Result::ok)
                    .filter_map(move |rec| match rec {
                        memtrace_format::Record::Extended {
                            kind: k, payload, ..
                        } if k == kind => Some((entry, payload)),
                        _ => None,
                    })
            })
    }

    /// A trailer was read, the tracker reported no write failure, and the file holds every
    /// record the trailer counts (a copy cut short keeps its trailer: the trailer's place is
    /// at the start of the file).
    pub fn complete(&self) -> bool {
        self.truncated_at.is_none()
            && self.records_damaged == 0
            && self.chunks_damaged == 0
            && self.trailer.as_ref().is_some_and(|t| {
                t.flags & trailer_flags::WRITE_FAILED == 0
                    && self.records_found >= t.records_written
            })
    }

    /// The trailer's count of records written, when the file holds fewer.
    pub fn records_missing(&self) -> Option<u64> {
        let written = self.trailer.as_ref()?.records_written;
        (self.records_found < written).then_some(written)
    }
}

/// Bytes between chunk headers: where the next header is, and the non-zero bytes on the way
/// (zeros are space reserved and never written; anything else is damage).
struct Gap {
    next: Option<usize>,
    /// Where the damage starts and ends (None: all zeros).
    damage: Option<(usize, usize)>,
}

/// Where a hole of the file that starts at `pos` ends: `Some(None)` when only holes follow,
/// `Some(Some(at))` for the data after it (8-byte aligned), None when `pos` is not in a hole
/// the file system knows of. Asked only at a zero word that starts a page: the file system's
/// holes are whole pages.
fn past_hole(file: &[u8], pos: usize, holes: Option<&Holes>) -> Option<Option<usize>> {
    let holes = holes?;
    if !pos.is_multiple_of(4096) || file.get(pos..pos + 8)? != [0u8; 8] {
        return None;
    }
    match holes.next_data(pos) {
        NextData::None => Some(None),
        NextData::At(at) if at > pos => Some(Some(at.next_multiple_of(CHUNK_ALIGN))),
        NextData::At(_) | NextData::Unknown => None,
    }
}

/// The next valid chunk header at or after `from` (8-byte steps, holes jumped over). The
/// damage runs from `from` to the next header, as the scan skips it, but a hole on either side
/// of the non-zero bytes is not part of it.
fn next_header(file: &[u8], from: usize, holes: Option<&Holes>) -> Gap {
    let magic = CHUNK_MAGIC.to_le_bytes();
    let mut first: Option<usize> = None;
    let mut start = from;
    let mut last_end = from;
    let mut hole_after_last = false;
    let mut pos = from;
    let mut next = None;
    while pos < file.len() {
        if let Some(after) = past_hole(file, pos, holes) {
            if first.is_some() {
                hole_after_last = true;
            }
            match after {
                Some(at) => {
                    pos = at;
                    if first.is_none() {
                        start = at;
                    }
                    continue;
                }
                None => break,
            }
        }
        if pos + CHUNK_HEADER_LEN <= file.len()
            && file[pos..pos + 4] == magic
            && ChunkHeader::decode(&file[pos..]).is_some()
        {
            next = Some(pos);
            break;
        }
        let end = (pos + CHUNK_ALIGN).min(file.len());
        if file[pos..end].iter().any(|&b| b != 0) {
            first.get_or_insert(pos);
            last_end = end;
            hole_after_last = false;
        }
        pos += CHUNK_ALIGN;
    }
    let end = if hole_after_last {
        last_end
    } else {
        next.unwrap_or(file.len())
    };
    Gap {
        next,
        damage: first.map(|_| (start, end)),
    }
}

/// Scans the chunk headers of `file`, starting at `data_start`; `minor` is the capture's minor
/// format version.
pub fn scan(file: &[u8], data_start: usize, minor: u16) -> Index {
    scan_releasing(file, data_start, minor, |_| {})
}

/// [`scan`] of an open capture, its file's holes jumped over.
pub fn scan_capture(capture: &Capture) -> Index {
    scan_capture_releasing(capture, |_| {})
}

/// [`scan_releasing`] of an open capture, its file's holes jumped over.
pub fn scan_capture_releasing(capture: &Capture, done: impl FnMut(usize)) -> Index {
    scan_with(
        capture.bytes(),
        capture.data_start(),
        capture.header.minor,
        capture.holes(),
        done,
    )
}

/// Bytes a chunk of a thread decodes to at most (see [`ChunkEntry::decoded_len`]), for a
/// capture of minor version `minor`; `used` is its payload in the file.
fn decoded_len(header: &ChunkHeader, used: usize, minor: u16) -> usize {
    let raw_len = header.raw_len as usize;
    match (header.kind, header.codec) {
        (ChunkKind::Staging, _) | (_, ChunkCodec::Raw) => used,
        (_, ChunkCodec::Zstd) => raw_len,
        // Since 1.2 `raw_len` is the streams' total length. Before, it was the raw records',
        // which a stream can exceed: an munmap's address is a delta against another munmap's
        // in its stream, against the record before in raw records.
        (_, ChunkCodec::Columns) if minor >= 2 => raw_len,
        (_, ChunkCodec::Columns) => raw_len.saturating_mul(4).saturating_add(64),
    }
}

/// How far the scan goes between calls of its `done` callback.
const RELEASE_EVERY: usize = 8 << 20;

/// [`scan`], calling `done(offset)` every few MiB once the bytes before `offset` are read.
pub fn scan_releasing(
    file: &[u8],
    data_start: usize,
    minor: u16,
    done: impl FnMut(usize),
) -> Index {
    scan_with(file, data_start, minor, None, done)
}

fn scan_with(
    file: &[u8],
    data_start: usize,
    minor: u16,
    holes: Option<&Holes>,
    mut done: impl FnMut(usize),
) -> Index {
    let mut index = Index::default();
    let mut released = 0usize;
    let len = file.len();
    let mut pos = data_start.min(len);
    // Bytes no chunk header describes: (index of the warning, offset, length).
    let mut gaps: Vec<(usize, usize, usize)> = Vec::new();
    // Raw candidate chunks, before staging deduplication.
    let mut events: Vec<ChunkEntry> = Vec::new();
    let mut staging: Vec<ChunkEntry> = Vec::new();
    let note_pair = |index: &mut Index, tick: u64, mono: u64| {
        if mono != 0 && index.latest_pair.is_none_or(|(_, m)| mono > m) {
            index.latest_pair = Some((tick, mono));
        }
    };

    while pos < len {
        if pos - released >= RELEASE_EVERY {
            done(pos);
            released = pos;
        }
        let Some(header) = file.get(pos..).and_then(ChunkHeader::decode) else {
            // Not a valid header: resume at the next one. Zeros are space that was reserved and
            // never written (the trailer's place in a capture of a killed process, the end of a
            // preallocated file); anything else is damage worth a warning.
            let gap = next_header(file, pos, holes);
            if let Some((first, end)) = gap.damage {
                gaps.push((index.warnings.len(), first, end - first));
                index.warnings.push(format!(
                    "skipped {} bytes of damaged data at offset {first}",
                    end - first
                ));
            }
            match gap.next {
                Some(n) => {
                    pos = n;
                    continue;
                }
                None => break,
            }
        };
        let total = header.total_len();
        let payload_start = pos + CHUNK_HEADER_LEN;
        if pos + total > len {
            // A staging chunk holds complete records: keep them if they are here.
            let used = staging_len(&header);
            if header.kind == ChunkKind::Staging
                && payload_start + used <= len
                && header.raw_len > 0
            {
                match bounded(&header, used, minor, pos) {
                    Ok(decoded) => staging.push(entry_for(pos, header, used, decoded, file)),
                    Err(w) => index.warnings.push(w),
                }
            }
            index.truncated_at = Some(pos);
            index.warnings.push(format!(
                "capture is truncated at offset {pos}; read {} complete chunk{}",
                index.chunks_read,
                if index.chunks_read == 1 { "" } else { "s" }
            ));
            break;
        }
        index.chunks_read += 1;
        note_pair(&mut index, header.flush_tick, header.flush_mono_ns);
        let stored = header.stored_len as usize;
        match header.kind {
            ChunkKind::Events | ChunkKind::Meta => {
                let payload_len = match header.codec {
                    ChunkCodec::Zstd | ChunkCodec::Columns => stored,
                    ChunkCodec::Raw => {
                        if header.raw_len as usize > stored {
                            index.warnings.push(format!(
                                "skipped damaged chunk at offset {pos}: its length fields disagree"
                            ));
                            pos += total;
                            continue;
                        }
                        header.raw_len as usize
                    }
                };
                // A raw Meta chunk (modules, as the tracker writes them) is read where it lies;
                // anything that decodes to more is bounded as a thread's chunk is.
                let decoded_len = if unbounded(&header) {
                    payload_len
                } else {
                    match bounded(&header, payload_len, minor, pos) {
                        Ok(d) => d,
                        Err(w) => {
                            index.warnings.push(w);
                            pos += total;
                            continue;
                        }
                    }
                };
                let entry = ChunkEntry {
                    offset: pos,
                    header,
                    payload_len,
                    decoded_len,
                    thread: 0,
                    first_tick: header.first_tick,
                    last_tick: header.last_tick,
                };
                if header.kind == ChunkKind::Events {
                    events.push(entry);
                } else if !super::decode::payload_intact(&header, entry.payload(file)) {
                    // Read where it lies by every report (modules, settings, children): checked
                    // here, once. Its records count as missing.
                    index.chunks_damaged += 1;
                    index.warnings.push(format!(
                        "skipped damaged chunk at offset {pos}: {}",
                        super::decode::PAYLOAD_CHANGED
                    ));
                } else {
                    index.records_found += u64::from(header.record_count);
                    index.meta.push(entry);
                }
            }
            ChunkKind::Staging if header.codec == ChunkCodec::Columns => {
                if header.raw_len > 0 {
                    match bounded(&header, stored, minor, pos) {
                        Ok(decoded) => staging.push(entry_for(pos, header, stored, decoded, file)),
                        Err(w) => index.warnings.push(w),
                    }
                }
            }
            ChunkKind::Staging => {
                let mut used = header.raw_len as usize;
                if used > stored {
                    index.warnings.push(format!(
                        "staging chunk at offset {pos} claims {used} bytes of records in {stored} bytes; reading {stored}"
                    ));
                    used = stored;
                }
                if used > 0 {
                    match bounded(&header, used, minor, pos) {
                        Ok(decoded) => staging.push(entry_for(pos, header, used, decoded, file)),
                        Err(w) => index.warnings.push(w),
                    }
                }
            }
            ChunkKind::Trailer => {
                let n = (header.raw_len as usize).min(stored);
                match super::decode::trailer(&header, &file[payload_start..payload_start + n]) {
                    Some(t) => {
                        note_pair(&mut index, t.end_tick, t.end_mono_ns);
                        index.trailer = Some(t);
                    }
                    None => index
                        .warnings
                        .push(format!("skipped a damaged trailer at offset {pos}")),
                }
            }
        }
        pos += total;
    }

    // Staging chunks superseded by an Events chunk of the same (thread, seq) are stale copies.
    let mut seen: HashSet<(u32, u32)> = HashSet::with_capacity(events.len());
    let mut chunks: Vec<ChunkEntry> = Vec::with_capacity(events.len() + staging.len());
    // Chunks seen twice (a capture appended to itself has all of them): one line says so.
    let mut second: Vec<usize> = Vec::new();
    for e in events {
        if seen.insert((e.header.thread_serial, e.header.seq)) {
            index.records_found += u64::from(e.header.record_count);
            chunks.push(e);
        } else {
            second.push(e.offset);
        }
    }
    match second[..] {
        [] => {}
        [at] => index
            .warnings
            .push(format!("ignored a second copy of a chunk at offset {at}")),
        [first, ..] => index.warnings.push(format!(
            "ignored {} chunks that were second copies of others (the first at offset {first})",
            second.len()
        )),
    }
    for s in staging {
        if seen.insert((s.header.thread_serial, s.header.seq)) {
            chunks.push(s);
        }
    }
    chunks.sort_by_key(|c| c.offset);

    // Threads, by serial, in order of first appearance.
    let mut by_serial: HashMap<u32, usize> = HashMap::new();
    for (i, c) in chunks.iter_mut().enumerate() {
        let t = *by_serial.entry(c.header.thread_serial).or_insert_with(|| {
            index.threads.push(ThreadInfo {
                serial: c.header.thread_serial,
                tid: c.header.tid,
                chunks: Vec::new(),
            });
            index.threads.len() - 1
        });
        c.thread = t;
        index.threads[t].chunks.push(i);
    }
    for t in &mut index.threads {
        t.chunks
            .sort_by_key(|&i| (chunks[i].header.seq, chunks[i].offset));
    }
    index.chunks = chunks;

    // The tracker reserves the trailer's place right after the header when it starts, before
    // any chunk: a file that ends inside it was cut (a partial copy), not left by a process.
    let trailer_end =
        data_start + CHUNK_HEADER_LEN + Trailer::MAX_LEN.div_ceil(CHUNK_ALIGN) * CHUNK_ALIGN;
    if index.trailer.is_none() && len < trailer_end {
        index.warnings.clear();
        index.warnings.push(format!(
            "capture is cut short: the file ends at byte {len}, inside the place the tracker \
             reserved for its trailer when it started (byte {trailer_end}); it holds no event \
             (a partial copy?)"
        ));
        return index;
    }
    if index.trailer.is_none() {
        // The process ended abruptly, most likely while writing such a chunk (payload first,
        // header last): its records are still in the thread's staging area, read as such.
        for (i, pos, len) in gaps {
            index.warnings[i] =
                format!("skipped {len} bytes at offset {pos}: a chunk the process was writing when it ended");
        }
    }
    match &index.trailer {
        None => index.warnings.push(
            "capture is incomplete (no trailer): the process was killed, exec'd a program by a \
             raw system call, or is still running; reporting what was recovered"
                .to_string(),
        ),
        Some(t) => {
            if let Some(why) = trailer_flags::write_failure(t.flags) {
                index.warnings.push(format!(
                    "writing the capture failed, some events are missing: {why}"
                ));
            }
            if let Some(why) = trailer_flags::size_limit(t.flags) {
                index
                    .warnings
                    .push(format!("{why}: later events were dropped"));
            }
            if let Some(why) = trailer_flags::hook_left(t.flags) {
                index.warnings.push(why.to_string());
            }
            if let Some(why) = trailer_flags::own_operator_new(t.flags) {
                index.warnings.push(why.to_string());
            }
            if let Some(why) = trailer_flags::early_blocks_left_out(t.flags) {
                index.warnings.push(why.to_string());
            }
            if t.records_dropped > 0 {
                index
                    .warnings
                    .push(format!("the tracker dropped {} records", t.records_dropped));
            }
        }
    }
    index.settings = super::settings::read(file, &index);
    if index.settings.sample_bytes > 0 {
        index
            .warnings
            .push(super::settings::sampled_note(index.settings.sample_bytes));
    }
    if let Some(written) = index.records_missing() {
        // The trailer's place is at the start of the file: a copy cut short (a partial copy, a
        // full disk) keeps it and loses chunks after the cut, whole ones included.
        index
            .warnings
            .push(records_missing_note(index.records_found, written));
    }
    index
}

/// What a report of a capture whose chunks hold `found` of the `written` records its trailer
/// counts says (a copy cut short keeps its trailer: the trailer's place is at the file's start).
pub fn records_missing_note(found: u64, written: u64) -> String {
    format!(
        "capture is truncated or damaged: its chunks hold {found} of the {written} records the \
         tracker wrote; reporting what is left"
    )
}

/// A raw Meta chunk: bounded by the file alone.
pub fn unbounded(header: &ChunkHeader) -> bool {
    header.kind == ChunkKind::Meta && header.codec == ChunkCodec::Raw
}

/// The decoded length of a thread's chunk at `pos` (`used` payload bytes), or the warning that
/// skips it: it claims more than a tracker writes.
fn bounded(header: &ChunkHeader, used: usize, minor: u16, pos: usize) -> Result<usize, String> {
    let n = decoded_len(header, used, minor);
    if n > MAX_DECODED {
        return Err(format!(
            "skipped damaged chunk at offset {pos}: it claims {n} bytes of records, more than a \
             tracker writes ({MAX_DECODED} at most)"
        ));
    }
    Ok(n)
}

/// Bytes of payload a staging chunk needs present: all of a columnar one (its streams are
/// spread over it), the complete records of a raw one.
fn staging_len(header: &ChunkHeader) -> usize {
    let stored = header.stored_len as usize;
    if header.codec == ChunkCodec::Columns {
        stored
    } else {
        (header.raw_len as usize).min(stored)
    }
}

/// An entry for a staging chunk with `used` bytes of payload (`decoded_len` decoded); its ticks
/// come from decoding its records, since the header's live tick fields are not checksummed.
fn entry_for(
    pos: usize,
    header: ChunkHeader,
    used: usize,
    decoded_len: usize,
    file: &[u8],
) -> ChunkEntry {
    let start = pos + CHUNK_HEADER_LEN;
    let (first_tick, last_tick) = file
        .get(start..start + used)
        .and_then(|p| super::decode::staging_tick_range(p, &header))
        .unwrap_or((0, 0));
    ChunkEntry {
        offset: pos,
        header,
        payload_len: used,
        decoded_len,
        thread: 0,
        first_tick,
        last_tick,
    }
}
