//! Following a capture that is still being written (`memtrace live`), reading only what is new.
//!
//! The tracker appends chunks and encodes each thread's newest events in place, in its staging
//! area. A [`Follower`] keeps, between polls, the offset below which every chunk has been read,
//! the staging areas' places and how far each thread has been delivered (its next chunk `seq`
//! and the events of it already handed over). A poll reads the chunk headers appended since,
//! the payloads of the new Events and Meta chunks, and the staging areas whose record count
//! changed: its cost follows what was written since the last poll, not the capture's length.
//!
//! A poll hands its events to an [`EventSink`] in time order. When one thread alone has new
//! events (the common case), each chunk is decoded straight into the sink, event by event, with
//! no buffer in between (`decode_live`); when several have, their events are decoded into
//! buffers, one chunk per thread at a time, and merged by tick.
//!
//! The file is read with `pread`, not mapped: it grows under the reader, and it may live on a
//! network file system (where it is opened again at each poll: see `Follower::reopen`).

mod decode_live;

use super::decode::{decode_chunk, ChunkTables};
use super::event::Event;
use super::holes::NextData;
use super::scan::ChunkEntry;
use decode_live::{decode_into, EventOut};
use hashbrown::HashMap;
use memtrace_format::chunk::MAX_DECODED;
use memtrace_format::columns::AllocFreed;
use memtrace_format::{
    Allocator, ChunkCodec, ChunkHeader, ChunkKind, FileHeader, Trailer, CHUNK_ALIGN,
    CHUNK_HEADER_LEN,
};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// How far past a chunk still being written (zeros where its header will be) a poll looks for
/// the chunks written after it: more than the largest chunk a tracker writes.
const LOOKAHEAD: usize = 2 << 20;

/// Polls a hole may stay unfilled while chunks after it are read before it is taken for
/// damage, or for a chunk whose writer died, and passed over for good.
const HOLE_POLLS: u32 = 20;

/// Finished chunks a poll delivers per thread at most (a few hundred thousand events), so that
/// a view stays responsive while it catches up with a program that writes faster than it reads.
const CHUNKS_PER_POLL: usize = 32;

/// The trailer's place: its header and room for its largest payload.
pub const TRAILER_SLOT: usize =
    CHUNK_HEADER_LEN + Trailer::MAX_LEN.div_ceil(CHUNK_ALIGN) * CHUNK_ALIGN;

/// One thread's progress.
#[derive(Clone, Debug)]
pub struct FollowedThread {
    pub serial: u32,
    pub tid: u32,
    /// The chunk `seq` whose events are delivered next.
    next_seq: u32,
    /// Events of `next_seq` already delivered (from its staging area).
    done: usize,
    /// The staging record count last read for `next_seq` (0: none).
    staged: u32,
    /// Events decoded but not delivered (a merge that stopped at a poll's limit), before those
    /// of `next_seq`: delivered first by the next poll.
    carry: Vec<Event>,
}

/// Takes a poll's new events, merged across threads by tick.
pub trait EventSink {
    /// An event of thread index `thread`.
    fn event(&mut self, thread: usize, ev: Event);

    /// An allocation, as plain values (nearly every other event): a sink may take it without
    /// the [`Event`] in between.
    #[inline(always)]
    fn alloc(
        &mut self,
        thread: usize,
        tick: u64,
        allocator: Allocator,
        addr: u64,
        size: u64,
        stack: u64,
    ) {
        self.event(thread, Event::new(allocator as u8, tick, addr, size, stack));
    }

    /// A free (`python`: pymalloc's), as plain values; `object_type` as in [`Event`]'s size.
    #[inline(always)]
    fn free(&mut self, thread: usize, tick: u64, python: bool, addr: u64, object_type: u64) {
        self.event(
            thread,
            decode_live::free_event(tick, python, addr, object_type),
        );
    }

    /// An allocation and, as the thread's next event, a free at its address (most blocks live
    /// briefly): a sink may take the two at once.
    #[inline(always)]
    fn alloc_freed(&mut self, thread: usize, b: AllocFreed) {
        self.alloc(thread, b.tick, b.allocator, b.addr, b.size, b.stack);
        self.free(thread, b.freed, b.python, b.addr, b.object_type);
    }
}

/// Events handed to a sink, as an [`EventOut`] of one thread.
struct Direct<'s, S> {
    sink: &'s mut S,
    thread: usize,
    events: usize,
}

impl<S: EventSink> EventOut for Direct<'_, S> {
    #[inline(always)]
    fn push(&mut self, ev: Event) {
        self.sink.event(self.thread, ev);
    }

    #[inline(always)]
    fn alloc(&mut self, tick: u64, allocator: Allocator, addr: u64, size: u64, stack: u64) {
        self.sink
            .alloc(self.thread, tick, allocator, addr, size, stack);
    }

    #[inline(always)]
    fn free(&mut self, tick: u64, python: bool, addr: u64, object_type: u64) {
        self.sink.free(self.thread, tick, python, addr, object_type);
    }

    #[inline(always)]
    fn alloc_freed(&mut self, b: AllocFreed) {
        self.sink.alloc_freed(self.thread, b);
    }

    fn delivered(&mut self, n: usize) {
        self.events += n;
    }
}

/// The first `len` bytes of the scratch buffer `buf`, grown when shorter (never shrunk: the
/// look-ahead and the staging areas take turns with it at every poll, and growing it again
/// each time would zero megabytes).
fn scratch_of(buf: &mut Vec<u8>, len: usize) -> &mut [u8] {
    if buf.len() < len {
        buf.resize(len, 0);
    }
    &mut buf[..len]
}

/// What one poll found.
#[derive(Debug, Default)]
pub struct Update {
    /// New events handed to the sink.
    pub events: usize,
    /// Table records read (thread index; None for a Meta chunk). Staging areas read again give
    /// their table records again: absorbing them twice changes nothing.
    pub tables: Vec<(Option<usize>, ChunkTables)>,
    /// Threads seen for the first time, as indexes into [`Follower::threads`].
    pub new_threads: Vec<usize>,
    /// Damage found.
    pub warnings: Vec<String>,
    /// More was written than one poll takes: poll again at once.
    pub behind: bool,
}

/// An incremental reader of a growing capture.
pub struct Follower {
    path: PathBuf,
    file: File,
    pub header: FileHeader,
    pub header_len: usize,
    /// The trailer's place.
    trailer_at: u64,
    /// Every chunk before this offset has been read.
    settled: u64,
    /// Chunks after `settled` already read, found past a hole.
    read_beyond: BTreeSet<u64>,
    /// The hole at `settled`, and the polls it has stayed while chunks after it were read.
    hole: Option<(u64, u32)>,
    /// Staging areas: offset → payload capacity.
    staging: BTreeMap<u64, u32>,
    pub threads: Vec<FollowedThread>,
    by_serial: HashMap<u32, usize>,
    /// Events chunks read but not delivered yet: (serial, seq) → (entry at offset 0, bytes).
    pending: HashMap<(u32, u32), (ChunkEntry, Vec<u8>)>,
    /// The last trailer read: the capture is finished.
    pub trailer: Option<Trailer>,
    /// The trailer read is the one in the trailer's place.
    trailer_in_slot: bool,
    /// The (tick, monotonic ns) pair read last in time.
    pub latest_pair: Option<(u64, u64)>,
    /// File bytes read by polls so far (headers, payloads, staging areas).
    pub bytes_read: u64,
    /// Buffers for the look past a hole and for staging areas, kept from poll to poll: a fresh
    /// one of a few MB at each read is pages faulted in and handed back every time.
    scratch: Vec<u8>,
    /// Each staging area's (thread serial, seq, record count), as this poll read it.
    staged_now: HashMap<u32, (u32, u32)>,
    /// Records of the Events and Meta chunks read (the trailer counts those the tracker wrote).
    records_found: u64,
    /// The capture was said to hold fewer records than its trailer counts.
    told_missing: bool,
}

impl Follower {
    /// Opens `path` and reads its file header. Errors are one line, naming the file.
    pub fn open(path: &Path) -> Result<Follower, String> {
        let named = |e: String| format!("{}: {e}", path.display());
        let meta =
            std::fs::metadata(path).map_err(|e| named(super::OpenError::Io(e).to_string()))?;
        if meta.is_dir() {
            return Err(named(super::OpenError::IsDirectory.to_string()));
        }
        if !meta.is_file() {
            return Err(named(super::OpenError::NotRegular.to_string()));
        }
        let file = File::open(path).map_err(|e| named(super::OpenError::Io(e).to_string()))?;
        let mut head = vec![0u8; memtrace_format::header::MAX_HEADER_LEN + 64];
        let n = read_at(&file, &mut head, 0).map_err(|e| named(e.to_string()))?;
        head.truncate(n);
        let (header, header_len) = FileHeader::decode(&head)
            .map_err(|e| named(super::OpenError::Header(e).to_string()))?;
        // The first chunk place is the trailer's, zeros until the capture is finished: read it
        // apart at every poll, never taken for a hole.
        let trailer_at = FileHeader::data_start(header_len) as u64;
        let settled = trailer_at + TRAILER_SLOT as u64;
        Ok(Follower {
            trailer_at,
            path: path.to_path_buf(),
            file,
            header,
            header_len,
            settled,
            read_beyond: BTreeSet::new(),
            hole: None,
            staging: BTreeMap::new(),
            threads: Vec::new(),
            by_serial: HashMap::new(),
            pending: HashMap::new(),
            trailer: None,
            trailer_in_slot: false,
            latest_pair: None,
            bytes_read: 0,
            scratch: Vec::new(),
            records_found: 0,
            told_missing: false,
            staged_now: HashMap::new(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads what was written since the last poll, handing its events to `sink`.
    pub fn poll(&mut self, sink: &mut impl EventSink) -> io::Result<Update> {
        self.reopen();
        let mut up = Update::default();
        self.scan(&mut up)?;
        self.staged_threads(&mut up)?;
        let busy: Vec<usize> = (0..self.threads.len())
            .filter(|&t| self.has_new(t))
            .collect();
        if let [t] = busy[..] {
            let mut direct = Direct {
                sink,
                thread: t,
                events: 0,
            };
            self.deliver(t, &mut direct, &mut up)?;
            up.events = direct.events;
        } else {
            self.deliver_merged(&busy, sink, &mut up)?;
        }
        self.check_complete(&mut up);
        Ok(up)
    }

    /// Once a finished capture is read to its end: says so when its chunks hold fewer records
    /// than its trailer counts (a copy cut short keeps its trailer, at the file's start), as
    /// the reports of a whole read do.
    fn check_complete(&mut self, up: &mut Update) {
        let Some(t) = &self.trailer else { return };
        if self.told_missing || up.behind || !self.pending.is_empty() || self.hole.is_some() {
            return;
        }
        if self.records_found < t.records_written {
            self.told_missing = true;
            up.warnings.push(super::scan::records_missing_note(
                self.records_found,
                t.records_written,
            ));
        }
    }

    /// Delivers the new events of the threads `busy` (several) into `sink`, merged by tick,
    /// one chunk per thread at a time: a thread's next chunk is decoded when the merge has used
    /// up its last, so the events merged are still in the cache (decoding all of a poll's
    /// chunks first made the merge wait on memory).
    // Apart from `poll`: the one-thread path inlined there keeps its own code.
    #[inline(never)]
    fn deliver_merged(
        &mut self,
        busy: &[usize],
        sink: &mut impl EventSink,
        up: &mut Update,
    ) -> io::Result<()> {
        let mut streams: Vec<Stream> = busy
            .iter()
            .map(|&thread| {
                let mut events = super::pool::take();
                events.append(&mut self.threads[thread].carry);
                Stream {
                    thread,
                    events,
                    head: 0,
                    chunks: 0,
                    more: true,
                }
            })
            .collect();
        let result = self.merge_streams(&mut streams, sink, up);
        for s in streams {
            super::pool::give(s.events);
        }
        result
    }

    /// The merge of [`Follower::deliver_merged`].
    #[inline(always)]
    fn merge_streams(
        &mut self,
        streams: &mut [Stream],
        sink: &mut impl EventSink,
        up: &mut Update,
    ) -> io::Result<()> {
        for s in streams.iter_mut() {
            self.refill(s, up)?;
        }
        loop {
            if up.behind {
                // A thread reached the poll's limit with chunks left: the others' events past
                // its last one delivered could come before its next ones. They wait, decoded,
                // for the next poll (the merge stays in tick order across polls).
                self.carry_over(streams);
                return Ok(());
            }
            let Some((i, len)) = next_run(streams.iter().map(|s| &s.events[s.head..])) else {
                return Ok(());
            };
            let s = &mut streams[i];
            let run = &s.events[s.head..s.head + len];
            up.events += len;
            for &ev in run {
                sink.event(s.thread, ev);
            }
            s.head += len;
            // Only this thread's events were used.
            self.refill(s, up)?;
        }
    }

    /// Keeps the events the merge decoded and did not deliver, each thread's for its next poll.
    fn carry_over(&mut self, streams: &[Stream]) {
        for s in streams {
            let left = &s.events[s.head..];
            if !left.is_empty() {
                self.threads[s.thread].carry = left.to_vec();
            }
        }
    }

    /// Decodes the next chunk of a thread whose events the merge has used up, if it has more.
    #[inline(always)]
    fn refill(&mut self, s: &mut Stream, up: &mut Update) -> io::Result<()> {
        while s.head == s.events.len() && s.more {
            s.events.clear();
            s.head = 0;
            s.more = self.deliver_step(s.thread, &mut s.chunks, &mut s.events, up)?;
        }
        Ok(())
    }

    /// Opens the file again by its path: a network file system shows another machine's writes
    /// to a reader at open (NFS's close-to-open consistency; FUSE file systems such as sshfs
    /// drop their cached pages at open), while an open descriptor may go on reading cached
    /// pages. Only the same file (device and inode) is taken: a capture replaced under the same
    /// name is not followed. Costs an open and a close per poll.
    fn reopen(&mut self) {
        use std::os::unix::fs::MetadataExt;
        let Ok(file) = File::open(&self.path) else {
            return;
        };
        let id = |f: &File| f.metadata().map(|m| (m.dev(), m.ino())).ok();
        if id(&file).is_some() && id(&file) == id(&self.file) {
            self.file = file;
        }
    }

    /// Whether thread `t` may have events not delivered: a chunk of it read, or its staging
    /// area changed since it was last read.
    fn has_new(&self, t: usize) -> bool {
        let th = &self.threads[t];
        !th.carry.is_empty()
            || self.pending.keys().any(|&(s, _)| s == th.serial)
            || self
                .staged_now
                .get(&th.serial)
                .is_some_and(|&(seq, n)| n != 0 && (seq, n) != (th.next_seq, th.staged))
    }

    fn read(&mut self, buf: &mut [u8], at: u64) -> io::Result<usize> {
        let n = read_at(&self.file, buf, at)?;
        self.bytes_read += n as u64;
        Ok(n)
    }

    /// Reads the chunk headers from `settled` on, and the payloads of new chunks.
    fn scan(&mut self, up: &mut Update) -> io::Result<()> {
        self.read_trailer(up)?;
        let mut pos = self.settled;
        let mut behind_hole = false;
        let mut found_past_hole = false;
        let mut head = [0u8; CHUNK_HEADER_LEN];
        loop {
            let n = self.read(&mut head, pos)?;
            let header = (n == CHUNK_HEADER_LEN)
                .then(|| ChunkHeader::decode(&head))
                .flatten();
            let Some(header) = header else {
                // A chunk being written (zeros until its header comes), the end of what was
                // written, or damage: look a little further for chunks written after it.
                match self.look_ahead(pos)? {
                    Some(next) => {
                        if !behind_hole {
                            behind_hole = true;
                            self.hole = match self.hole {
                                Some((at, polls)) if at == pos => Some((at, polls)),
                                _ => Some((pos, 0)),
                            };
                        }
                        pos = next;
                        continue;
                    }
                    None => break,
                }
            };
            let total = header.total_len() as u64;
            if self.read_beyond.contains(&pos) {
                pos += total;
                continue;
            }
            // A header whose payload is not all in the file yet: wait for it.
            let len = self.file.metadata()?.len();
            if pos + total > len && header.kind != ChunkKind::Staging {
                break;
            }
            self.chunk(pos, header, up)?;
            if behind_hole {
                found_past_hole = true;
                self.read_beyond.insert(pos);
            } else {
                self.settled = pos + total;
            }
            pos += total;
        }
        if !behind_hole {
            self.hole = None;
        } else if let Some((at, polls)) = self.hole {
            // A hole that stays while later chunks come is no chunk in progress: pass over it.
            let polls = if found_past_hole { polls + 1 } else { polls };
            self.hole = Some((at, polls));
            if polls >= HOLE_POLLS || self.trailer.is_some() {
                if let Some(&next) = self.read_beyond.range(at..).next() {
                    up.warnings
                        .push(format!("skipped unreadable bytes at offset {at}"));
                    self.settled = next;
                    self.hole = None;
                }
            }
        }
        // Chunks read past a hole that is now behind `settled` need no memory.
        let settled = self.settled;
        self.read_beyond.retain(|&o| o >= settled);
        Ok(())
    }

    /// Reads the trailer's place: a trailer there says the capture is finished (and one that
    /// went, after an exec that failed, that it is not).
    fn read_trailer(&mut self, up: &mut Update) -> io::Result<()> {
        let mut head = [0u8; CHUNK_HEADER_LEN];
        let header = (self.read(&mut head, self.trailer_at)? == CHUNK_HEADER_LEN)
            .then(|| ChunkHeader::decode(&head))
            .flatten();
        match header {
            Some(h) if h.kind == ChunkKind::Trailer => {
                self.trailer_in_slot = true;
                self.chunk(self.trailer_at, h, up)
            }
            _ => {
                if std::mem::take(&mut self.trailer_in_slot) {
                    self.trailer = None;
                }
                Ok(())
            }
        }
    }

    /// The next valid chunk header within [`LOOKAHEAD`] bytes after `pos`.
    fn look_ahead(&mut self, pos: u64) -> io::Result<Option<u64>> {
        if let Some(at) = self.look_in_window(pos, CHUNK_ALIGN)? {
            return Ok(Some(at));
        }
        // A finished capture has all its chunks written: one past a longer stretch of zeros (a
        // hole made by hand, a zeroed range) is looked for up to the file's end, the file
        // system's holes jumped over, as a whole read does. Once: the chunk found moves the
        // reading past the stretch.
        if self.trailer.is_none() {
            return Ok(None);
        }
        let len = self.file.metadata()?.len();
        let holes = super::holes::Holes::new(self.file.try_clone()?);
        let mut from = pos;
        loop {
            let next = from + LOOKAHEAD as u64;
            if next >= len {
                return Ok(None);
            }
            from = match holes.next_data(next as usize) {
                NextData::None => return Ok(None),
                NextData::At(at) => (at as u64).max(next) / CHUNK_ALIGN as u64 * CHUNK_ALIGN as u64,
                NextData::Unknown => next,
            };
            if let Some(at) = self.look_in_window(from, 0)? {
                return Ok(Some(at));
            }
        }
    }

    /// The first chunk header in the window of [`LOOKAHEAD`] bytes from `pos`, at `first` or
    /// after (`CHUNK_ALIGN` steps).
    fn look_in_window(&mut self, pos: u64, first: usize) -> io::Result<Option<u64>> {
        let mut buf = std::mem::take(&mut self.scratch);
        let read = self.read(scratch_of(&mut buf, LOOKAHEAD + CHUNK_HEADER_LEN), pos);
        let found = read.map(|n| {
            let magic = memtrace_format::CHUNK_MAGIC.to_le_bytes();
            let mut at = first;
            while at + CHUNK_HEADER_LEN <= n {
                if buf[at..at + 4] == magic && ChunkHeader::decode(&buf[at..]).is_some() {
                    return Some(pos + at as u64);
                }
                at += CHUNK_ALIGN;
            }
            None
        });
        self.scratch = buf;
        found
    }

    /// Takes in a chunk found at `pos`.
    fn chunk(&mut self, pos: u64, header: ChunkHeader, up: &mut Update) -> io::Result<()> {
        if header.flush_mono_ns != 0
            && self
                .latest_pair
                .is_none_or(|(_, m)| header.flush_mono_ns > m)
        {
            self.latest_pair = Some((header.flush_tick, header.flush_mono_ns));
        }
        match header.kind {
            ChunkKind::Staging => {
                self.staging.insert(pos, header.stored_len);
            }
            ChunkKind::Trailer => {
                let mut buf = vec![0u8; header.stored_len as usize];
                let n = self.read(&mut buf, pos + CHUNK_HEADER_LEN as u64)?;
                let n = n.min(header.raw_len as usize);
                match super::decode::trailer(&header, &buf[..n]) {
                    Some(t) => {
                        if t.end_mono_ns != 0 {
                            self.latest_pair = Some((t.end_tick, t.end_mono_ns));
                        }
                        self.trailer = Some(t);
                    }
                    None => up
                        .warnings
                        .push(format!("skipped a damaged trailer at offset {pos}")),
                }
            }
            ChunkKind::Events | ChunkKind::Meta => {
                let Some((entry, bytes)) = self.load(pos, header, up)? else {
                    return Ok(());
                };
                self.records_found += u64::from(header.record_count);
                if header.kind == ChunkKind::Meta {
                    let chunk = decode_chunk(&bytes, &entry, 0);
                    if let Some(w) = chunk.warning {
                        up.warnings.push(w);
                    }
                    up.tables.push((None, chunk.tables));
                } else {
                    self.thread_of(header.thread_serial, header.tid, up);
                    self.pending
                        .insert((header.thread_serial, header.seq), (entry, bytes));
                }
            }
        }
        Ok(())
    }

    /// The bytes of a whole chunk (header and payload) and its entry at offset 0, or None when
    /// it is damaged (a warning says so).
    fn load(
        &mut self,
        pos: u64,
        header: ChunkHeader,
        up: &mut Update,
    ) -> io::Result<Option<(ChunkEntry, Vec<u8>)>> {
        let stored = header.stored_len as usize;
        let payload_len = match header.codec {
            ChunkCodec::Raw if header.raw_len as usize > stored => {
                up.warnings.push(format!(
                    "skipped damaged chunk at offset {pos}: its length fields disagree"
                ));
                return Ok(None);
            }
            ChunkCodec::Raw => header.raw_len as usize,
            ChunkCodec::Zstd | ChunkCodec::Columns => stored,
        };
        let decoded_len = match (header.kind, header.codec) {
            (_, ChunkCodec::Raw) => payload_len,
            _ => header.raw_len as usize,
        };
        if !super::scan::unbounded(&header) && decoded_len > MAX_DECODED {
            up.warnings.push(format!(
                "skipped damaged chunk at offset {pos}: it claims {decoded_len} bytes of records"
            ));
            return Ok(None);
        }
        let mut bytes = vec![0u8; CHUNK_HEADER_LEN + payload_len];
        let n = self.read(&mut bytes, pos)?;
        bytes.truncate(n);
        let entry = ChunkEntry {
            offset: 0,
            header,
            payload_len,
            decoded_len,
            thread: 0,
            first_tick: header.first_tick,
            last_tick: header.last_tick,
        };
        Ok(Some((entry, bytes)))
    }

    /// The index of the thread of `serial`, added when new.
    fn thread_of(&mut self, serial: u32, tid: u32, up: &mut Update) -> usize {
        if let Some(&t) = self.by_serial.get(&serial) {
            return t;
        }
        let t = self.threads.len();
        self.threads.push(FollowedThread {
            serial,
            tid,
            next_seq: 0,
            done: 0,
            staged: 0,
            carry: Vec::new(),
        });
        self.by_serial.insert(serial, t);
        up.new_threads.push(t);
        t
    }

    /// Delivers thread `t`'s new events into `out`: its finished chunks in `seq` order, then
    /// the part of its staging area not delivered yet.
    fn deliver(&mut self, t: usize, out: &mut impl EventOut, up: &mut Update) -> io::Result<()> {
        let carry = std::mem::take(&mut self.threads[t].carry);
        out.delivered(carry.len());
        for ev in carry {
            out.push(ev);
        }
        let mut chunks = 0;
        while self.deliver_step(t, &mut chunks, out, up)? {}
        Ok(())
    }

    /// Delivers thread `t`'s next finished chunk into `out` (`chunks`: those delivered by this
    /// poll so far), or when none is left, the part of its staging area not delivered yet.
    /// Returns whether more may follow.
    fn deliver_step(
        &mut self,
        t: usize,
        chunks: &mut usize,
        out: &mut impl EventOut,
        up: &mut Update,
    ) -> io::Result<bool> {
        let serial = self.threads[t].serial;
        loop {
            let seq = self.threads[t].next_seq;
            if *chunks == CHUNKS_PER_POLL && self.pending.contains_key(&(serial, seq)) {
                up.behind = true;
                return Ok(false);
            }
            if let Some((entry, bytes)) = self.pending.remove(&(serial, seq)) {
                *chunks += 1;
                let mut entry = entry;
                entry.thread = t;
                let mut tables = ChunkTables::default();
                let skip = self.threads[t].done;
                let (_, warning) = decode_into(&bytes, &entry, skip, out, &mut tables);
                up.warnings.extend(warning);
                up.tables.push((Some(t), tables));
                let th = &mut self.threads[t];
                th.next_seq += 1;
                th.done = 0;
                th.staged = 0;
                return Ok(true);
            }
            // A later chunk of this thread with this one missing for good (a chunk lost to a
            // write failure or damage): go on from the next one there is.
            if self.hole.is_none() {
                let later = self
                    .pending
                    .keys()
                    .filter(|&&(s, q)| s == serial && q > seq)
                    .map(|&(_, q)| q)
                    .min();
                if let Some(q) = later {
                    let staged = self.staging_has(serial, seq)?;
                    // In a finished capture a staging area that still holds it is its last
                    // copy (the chunk itself was lost): its records, then the next chunk.
                    if staged && self.trailer.is_some() {
                        self.read_staging(t, out, up)?;
                    }
                    if !staged || self.trailer.is_some() {
                        let th = &mut self.threads[t];
                        th.next_seq = q;
                        th.done = 0;
                        th.staged = 0;
                        continue;
                    }
                }
            }
            break;
        }
        self.read_staging(t, out, up)?;
        Ok(false)
    }

    /// Reads every staging area's header: what each holds now, and the threads known so far
    /// only by their staging area (they have not filled one yet).
    fn staged_threads(&mut self, up: &mut Update) -> io::Result<()> {
        self.staged_now.clear();
        let offsets: Vec<u64> = self.staging.keys().copied().collect();
        let mut head = [0u8; CHUNK_HEADER_LEN];
        for at in offsets {
            if self.read(&mut head, at)? != CHUNK_HEADER_LEN {
                continue;
            }
            if let Some(h) = ChunkHeader::decode(&head) {
                if h.kind == ChunkKind::Staging && h.raw_len > 0 && h.thread_serial != 0 {
                    self.thread_of(h.thread_serial, h.tid, up);
                    self.staged_now.insert(h.thread_serial, (h.seq, h.raw_len));
                }
            }
        }
        Ok(())
    }

    /// Whether a staging area holds (serial, seq) now.
    fn staging_has(&mut self, serial: u32, seq: u32) -> io::Result<bool> {
        let offsets: Vec<u64> = self.staging.keys().copied().collect();
        let mut head = [0u8; CHUNK_HEADER_LEN];
        for at in offsets {
            if self.read(&mut head, at)? == CHUNK_HEADER_LEN {
                if let Some(h) = ChunkHeader::decode(&head) {
                    if h.kind == ChunkKind::Staging && h.thread_serial == serial && h.seq == seq {
                        return Ok(true);
                    }
                }
            }
        }
        Ok(false)
    }

    /// Reads thread `t`'s staging area when it holds records of its next chunk not delivered.
    fn read_staging(
        &mut self,
        t: usize,
        out: &mut impl EventOut,
        up: &mut Update,
    ) -> io::Result<()> {
        let (serial, seq, staged) = {
            let th = &self.threads[t];
            (th.serial, th.next_seq, th.staged)
        };
        let offsets: Vec<(u64, u32)> = self.staging.iter().map(|(&o, &c)| (o, c)).collect();
        let mut head = [0u8; CHUNK_HEADER_LEN];
        for (at, capacity) in offsets {
            if self.read(&mut head, at)? != CHUNK_HEADER_LEN {
                continue;
            }
            let Some(h) = ChunkHeader::decode(&head) else {
                continue;
            };
            if h.kind != ChunkKind::Staging || h.thread_serial != serial || h.seq != seq {
                continue;
            }
            if h.raw_len == 0 || h.raw_len == staged || h.stored_len != capacity {
                return Ok(());
            }
            let mut bytes = std::mem::take(&mut self.scratch);
            let len = CHUNK_HEADER_LEN + capacity as usize;
            let n = self.read(scratch_of(&mut bytes, len), at);
            let result =
                n.and_then(|n| self.staged_events(t, &bytes[..n.min(len)], (at, h), out, up));
            self.scratch = bytes;
            return result;
        }
        Ok(())
    }

    /// Takes the new events of thread `t` from the staging area whose header `h` was read at
    /// `at` and whose bytes (header and payload) are `bytes`.
    fn staged_events(
        &mut self,
        t: usize,
        bytes: &[u8],
        (at, h): (u64, ChunkHeader),
        out: &mut impl EventOut,
        up: &mut Update,
    ) -> io::Result<()> {
        let (serial, seq) = {
            let th = &self.threads[t];
            (th.serial, th.next_seq)
        };
        let capacity = h.stored_len;
        // Read again: the area may have been flushed and refilled while its payload was read.
        let mut again = [0u8; CHUNK_HEADER_LEN];
        self.read(&mut again, at)?;
        match ChunkHeader::decode(&again) {
            Some(a) if a.thread_serial == serial && a.seq == seq && a.raw_len >= h.raw_len => {}
            _ => return Ok(()),
        }
        let used = if h.codec == ChunkCodec::Columns {
            capacity as usize
        } else {
            (h.raw_len as usize).min(capacity as usize)
        };
        if used > MAX_DECODED || bytes.len() < CHUNK_HEADER_LEN + used {
            return Ok(());
        }
        let entry = ChunkEntry {
            offset: 0,
            header: h,
            payload_len: used,
            decoded_len: used,
            thread: t,
            first_tick: 0,
            last_tick: 0,
        };
        let mut tables = ChunkTables::default();
        // Damage in an area still being written is not reported (as before): the records
        // before it are taken, the rest when it is flushed.
        let (seen, _) = decode_into(bytes, &entry, self.threads[t].done, out, &mut tables);
        let th = &mut self.threads[t];
        th.done = th.done.max(seen);
        th.staged = h.raw_len;
        up.tables.push((Some(t), tables));
        Ok(())
    }

    /// Whether the capture was finished (a trailer was read).
    pub fn finished(&self) -> bool {
        self.trailer.is_some()
    }
}

/// Reads as much of `buf` as the file holds at `at`.
fn read_at(file: &File, buf: &mut [u8], at: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], at + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// How many of `evs` (one thread's, in tick order) make the run that starts with the first:
/// the first and those after it before tick `second`. A walk over the first few (runs are
/// short when threads interleave), a binary search past them (long runs).
#[inline(always)]
fn run_len(evs: &[Event], second: u64) -> usize {
    const WALK: usize = 8;
    let near = &evs[1..evs.len().min(1 + WALK)];
    let walked = near.iter().take_while(|e| e.tick < second).count();
    if walked < WALK {
        return 1 + walked;
    }
    1 + WALK + evs[1 + WALK..].partition_point(|e| e.tick < second)
}

/// One thread's events in a merge: its chunk decoded last, and how far the merge has used it.
struct Stream {
    thread: usize,
    events: Vec<Event>,
    head: usize,
    /// Chunks of it delivered by this poll.
    chunks: usize,
    /// More of it may follow (a chunk or its staging area).
    more: bool,
}

/// The next run of a merge by tick (ties: the lower thread first) of threads' events not
/// merged yet, `heads` (each in tick order): the thread's position among them and how many of
/// its first events make the run. None when all are empty. Runs are not copied: threads whose
/// events interleave closely make runs of an event or two, see [`run_len`].
#[inline(always)]
fn next_run<'e>(heads: impl Iterator<Item = &'e [Event]>) -> Option<(usize, usize)> {
    // Few threads: a linear pick of the earliest head is enough.
    let mut best: Option<(u64, usize, &[Event])> = None;
    let mut second = u64::MAX;
    for (t, evs) in heads.enumerate() {
        if let Some(e) = evs.first() {
            match best {
                Some((tick, _, _)) if tick <= e.tick => second = second.min(e.tick),
                _ => {
                    if let Some((tick, _, _)) = best {
                        second = second.min(tick);
                    }
                    best = Some((e.tick, t, evs));
                }
            }
        }
    }
    let (_, t, evs) = best?;
    Some((t, run_len(evs, second)))
}

/// Merges threads' events by tick (ties: the lower thread first), handing each run of one
/// thread's events to `run`.
#[cfg(test)]
fn merge(per_thread: &[Vec<Event>], mut run: impl FnMut(usize, &[Event])) {
    let mut heads: Vec<usize> = vec![0; per_thread.len()];
    while let Some((t, len)) = next_run(per_thread.iter().zip(&heads).map(|(e, &h)| &e[h..])) {
        run(t, &per_thread[t][heads[t]..heads[t] + len]);
        heads[t] += len;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(tick: u64) -> Event {
        Event::new(0, tick, tick, 1, 0)
    }

    /// The runs `merge` hands on: each thread's index and its events' ticks.
    fn merged(threads: &[Vec<Event>]) -> Vec<(usize, Vec<u64>)> {
        let mut order = Vec::new();
        merge(threads, |t, evs| {
            order.push((t, evs.iter().map(|e| e.tick).collect()))
        });
        order
    }

    #[test]
    fn merges_threads_by_tick() {
        let threads = vec![vec![ev(1), ev(2), ev(5), ev(9)], vec![ev(3), ev(4), ev(6)]];
        let order = merged(&threads);
        assert_eq!(
            order,
            vec![
                (0, vec![1, 2]),
                (1, vec![3, 4]),
                (0, vec![5]),
                (1, vec![6]),
                (0, vec![9])
            ]
        );
    }

    #[test]
    fn merges_long_runs_and_ties() {
        // A run longer than the walk (the binary search's part), ties to the lower thread.
        let a: Vec<Event> = (1..=20).chain([30, 30]).map(ev).collect();
        let b: Vec<Event> = [12, 30, 31].into_iter().map(ev).collect();
        let threads = vec![a, b];
        let order = merged(&threads);
        assert_eq!(
            order,
            vec![
                (0, (1..=11).collect()),
                (0, vec![12]),
                (1, vec![12]),
                (0, (13..=20).collect()),
                (0, vec![30]),
                (0, vec![30]),
                (1, vec![30, 31]),
            ]
        );
    }
}
