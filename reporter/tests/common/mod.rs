//! `CaptureBuilder`: writes synthetic capture files with the format crate, for tests.
#![allow(dead_code)]

use memtrace_format::record::Segment;
use memtrace_format::{
    Allocator, ChunkCodec, ChunkHeader, ChunkKind, Encoder, FileHeader, Marker, TickSource,
    Trailer, CHUNK_ALIGN, MAJOR, MINOR,
};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The records of one chunk, encoded as they are added.
#[derive(Default)]
pub struct Chunk {
    enc: Encoder,
    buf: Vec<u8>,
    records: u32,
    first_tick: Option<u64>,
    last_tick: u64,
}

impl Chunk {
    pub fn new() -> Chunk {
        Chunk::default()
    }

    fn room(&mut self, n: usize) -> usize {
        let pos = self.buf.len();
        self.buf.resize(pos + n, 0);
        pos
    }

    fn done(&mut self, end: usize, tick: Option<u64>) -> &mut Chunk {
        self.buf.truncate(end);
        self.records += 1;
        if let Some(t) = tick {
            self.first_tick.get_or_insert(t);
            self.last_tick = self.last_tick.max(t);
        }
        self
    }

    pub fn alloc(
        &mut self,
        a: Allocator,
        tick: u64,
        addr: u64,
        size: u64,
        stack: u64,
    ) -> &mut Chunk {
        let pos = self.room(64);
        let end = self
            .enc
            .alloc(&mut self.buf, pos, a, tick, addr, size, stack);
        self.done(end, Some(tick))
    }

    pub fn malloc(&mut self, tick: u64, addr: u64, size: u64) -> &mut Chunk {
        self.alloc(Allocator::Malloc, tick, addr, size, 0)
    }

    pub fn free(&mut self, tick: u64, addr: u64) -> &mut Chunk {
        let pos = self.room(64);
        let end = self.enc.free_addr(&mut self.buf, pos, false, tick, addr);
        self.done(end, Some(tick))
    }

    pub fn free_back(&mut self, tick: u64, distance: u64, addr: u64) -> &mut Chunk {
        let pos = self.room(64);
        let end = self
            .enc
            .free_back(&mut self.buf, pos, false, tick, distance, addr);
        self.done(end, Some(tick))
    }

    pub fn munmap(&mut self, tick: u64, addr: u64, len: u64) -> &mut Chunk {
        let pos = self.room(64);
        let end = self.enc.munmap(&mut self.buf, pos, tick, addr, len);
        self.done(end, Some(tick))
    }

    pub fn mremap(
        &mut self,
        tick: u64,
        old: u64,
        old_len: u64,
        new: u64,
        new_len: u64,
    ) -> &mut Chunk {
        let pos = self.room(80);
        let end = self
            .enc
            .mremap(&mut self.buf, pos, tick, old, old_len, new, new_len, 0);
        self.done(end, Some(tick))
    }

    pub fn exit_marker(&mut self, tick: u64) -> &mut Chunk {
        let pos = self.room(64);
        let end = self
            .enc
            .marker(&mut self.buf, pos, tick, Marker::ExitSnapshot);
        self.done(end, Some(tick))
    }

    pub fn stack(&mut self, id: u64, parent: u64, frame: u64) -> &mut Chunk {
        let pos = self.room(64);
        let end = self.enc.stack(&mut self.buf, pos, id, parent, frame);
        self.done(end, None)
    }

    pub fn native_frame(&mut self, id: u64, addr: u64) -> &mut Chunk {
        let pos = self.room(64);
        let end = self.enc.native_frame(&mut self.buf, pos, id, addr);
        self.done(end, None)
    }

    pub fn python_frame(&mut self, id: u64, function: u64, file: u64, line: u64) -> &mut Chunk {
        let pos = self.room(64);
        let end = self
            .enc
            .python_frame(&mut self.buf, pos, id, function, file, line);
        self.done(end, None)
    }

    pub fn string(&mut self, id: u64, s: &str) -> &mut Chunk {
        let pos = self.room(Encoder::table_record_len(s.len()));
        let end = self.enc.string(&mut self.buf, pos, id, s.as_bytes());
        self.done(end, None)
    }

    /// An object-types record (extended kind 40): objects of type `name` at `addrs` (ascending).
    pub fn object_types(&mut self, tick: u64, name: &str, addrs: &[u64]) -> &mut Chunk {
        let mut payload = vec![0u8; memtrace_format::objects::MAX_PAYLOAD];
        let n = memtrace_format::objects::encode(&mut payload, name.as_bytes(), addrs);
        let pos = self.room(Encoder::table_record_len(n));
        let end = self.enc.extended(
            &mut self.buf,
            pos,
            tick,
            memtrace_format::objects::OBJECT_TYPES_KIND,
            &payload[..n],
        );
        self.done(end, None)
    }

    pub fn thread_name(&mut self, name: &str) -> &mut Chunk {
        let pos = self.room(Encoder::table_record_len(name.len()));
        let end = self.enc.thread_name(&mut self.buf, pos, name.as_bytes());
        self.done(end, None)
    }

    pub fn module(
        &mut self,
        base: u64,
        path: &str,
        build_id: &[u8],
        segments: &[Segment],
    ) -> &mut Chunk {
        let pos = self.room(Encoder::module_len(
            path.as_bytes(),
            build_id,
            segments.len(),
        ));
        let end = self.enc.module(
            &mut self.buf,
            pos,
            base,
            path.as_bytes(),
            build_id,
            segments,
        );
        self.done(end, None)
    }

    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }
}

/// A capture file under construction. Ticks are monotonic nanoseconds from 0.
pub struct CaptureBuilder {
    pub header: FileHeader,
    pub file: Vec<u8>,
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

impl CaptureBuilder {
    pub fn new() -> CaptureBuilder {
        CaptureBuilder::with_header(FileHeader {
            major: MAJOR,
            minor: MINOR,
            pid: 4242,
            ppid: 1,
            start_realtime_ns: 1_700_000_000_000_000_000,
            start_mono_ns: 0,
            start_tick: 0,
            tick_source: TickSource::MonotonicNs,
            options: 0,
            argv: vec![b"./prog".to_vec(), b"--flag".to_vec()],
            exe: b"/nonexistent/prog".to_vec(),
            tool_version: b"test".to_vec(),
        })
    }

    pub fn with_header(header: FileHeader) -> CaptureBuilder {
        let mut file = header.encode();
        file.resize(FileHeader::data_start(file.len()), 0);
        CaptureBuilder { header, file }
    }

    /// Appends a chunk; returns its offset.
    pub fn chunk(&mut self, mut h: ChunkHeader, payload: &[u8], stored_len: usize) -> usize {
        let offset = self.file.len();
        h.stored_len = stored_len as u32;
        self.file.extend_from_slice(&h.encode());
        let mut p = payload.to_vec();
        p.resize(stored_len.div_ceil(CHUNK_ALIGN) * CHUNK_ALIGN, 0);
        self.file.extend_from_slice(&p);
        offset
    }

    fn header_for(
        kind: ChunkKind,
        codec: ChunkCodec,
        serial: u32,
        tid: u32,
        seq: u32,
        c: &Chunk,
    ) -> ChunkHeader {
        ChunkHeader {
            kind,
            codec,
            flags: 0,
            payload_crc: 0,
            thread_serial: serial,
            tid,
            seq,
            stored_len: 0,
            raw_len: c.buf.len() as u32,
            record_count: c.records,
            first_tick: c.first_tick.unwrap_or(0),
            last_tick: c.last_tick,
            flush_mono_ns: c.last_tick,
            flush_tick: c.last_tick,
        }
    }

    /// A zstd Events chunk of thread `serial`; returns its offset.
    pub fn events(&mut self, serial: u32, tid: u32, seq: u32, c: &Chunk) -> usize {
        let h = Self::header_for(ChunkKind::Events, ChunkCodec::Zstd, serial, tid, seq, c);
        let z = zstd::bulk::compress(&c.buf, 1).expect("compress");
        self.chunk(h, &z, z.len())
    }

    /// An Events chunk in the columns codec (streams of 64 bytes or more compressed).
    pub fn columns_events(&mut self, serial: u32, tid: u32, seq: u32, c: &Chunk) -> usize {
        use memtrace_format::columns::{self, stream};
        let mut h = Self::header_for(ChunkKind::Events, ChunkCodec::Columns, serial, tid, seq, c);
        let streams = columns::split(&c.buf).expect("the builder's records split");
        h.raw_len = streams.iter().map(|s| s.len() as u32).sum();
        let mut lens = [(0usize, 0usize); stream::COUNT];
        let mut body = Vec::new();
        for (s, len) in streams.iter().zip(lens.iter_mut()) {
            let z = zstd::bulk::compress(s, 1).expect("compress");
            let stored = if s.len() >= columns::MIN_COMPRESSED_STREAM && z.len() < s.len() {
                z
            } else {
                s.clone()
            };
            *len = (s.len(), stored.len());
            body.extend_from_slice(&stored);
        }
        let mut payload = vec![0u8; columns::MAX_FRAME_TABLE];
        let n = columns::write_frame_table(&lens, &mut payload);
        payload.truncate(n);
        payload.extend_from_slice(&body);
        self.chunk(h, &payload, payload.len())
    }

    /// A raw Events chunk.
    pub fn raw_events(&mut self, serial: u32, tid: u32, seq: u32, c: &Chunk) -> usize {
        let h = Self::header_for(ChunkKind::Events, ChunkCodec::Raw, serial, tid, seq, c);
        self.chunk(h, &c.buf, c.buf.len())
    }

    /// A staging chunk of `capacity` bytes holding the chunk's records, then `tail` (bytes of a
    /// record being written, beyond raw_len).
    pub fn staging(
        &mut self,
        serial: u32,
        tid: u32,
        seq: u32,
        c: &Chunk,
        capacity: usize,
        tail: &[u8],
    ) -> usize {
        let mut h = Self::header_for(ChunkKind::Staging, ChunkCodec::Raw, serial, tid, seq, c);
        // The live fields of a staging header hold no ticks.
        h.first_tick = 0;
        h.last_tick = 0;
        let mut p = c.buf.clone();
        p.extend_from_slice(tail);
        assert!(p.len() <= capacity);
        self.chunk(h, &p, capacity)
    }

    /// A columnar staging chunk of `capacity` bytes, as the tracker leaves one: the chunk's
    /// records counted in the header, then `extra` more records written but not counted (a
    /// record being written when the process died).
    pub fn columns_staging(
        &mut self,
        serial: u32,
        tid: u32,
        seq: u32,
        c: &Chunk,
        extra: &Chunk,
        capacity: usize,
    ) -> usize {
        use memtrace_format::columns::{ColumnWriter, Layout};
        use memtrace_format::Decoder;
        let mut h = Self::header_for(ChunkKind::Staging, ChunkCodec::Columns, serial, tid, seq, c);
        h.first_tick = 0;
        h.last_tick = 0;
        let mut payload = vec![0u8; capacity];
        let mut w = ColumnWriter::new(Layout::for_buffer(capacity));
        w.start(&mut payload, false);
        for rec in Decoder::new(&c.buf) {
            assert!(w.record(&mut payload, &rec.expect("records")), "room");
        }
        h.raw_len = w.records() as u32;
        for rec in Decoder::new(&extra.buf) {
            assert!(w.record(&mut payload, &rec.expect("records")), "room");
        }
        self.chunk(h, &payload, capacity)
    }

    /// A Meta chunk (modules), raw.
    pub fn meta(&mut self, c: &Chunk) -> usize {
        let mut h = Self::header_for(ChunkKind::Meta, ChunkCodec::Raw, 0, 0, 0, c);
        h.flush_mono_ns = 0;
        h.flush_tick = 0;
        self.chunk(h, &c.buf, c.buf.len())
    }

    pub fn trailer_with(&mut self, t: &Trailer) -> usize {
        let mut buf = [0u8; Trailer::MAX_LEN];
        let n = t.encode(&mut buf);
        let h = ChunkHeader::trailer(t, n);
        self.chunk(h, &buf[..n], n)
    }

    /// A trailer ending at `end_ns`.
    pub fn trailer(&mut self, end_ns: u64) -> usize {
        self.trailer_with(&Trailer {
            end_mono_ns: end_ns,
            end_tick: end_ns,
            records_written: 0,
            records_dropped: 0,
            flags: 0,
            threads: 1,
        })
    }

    pub fn zeros(&mut self, n: usize) {
        self.file.resize(self.file.len() + n, 0);
    }

    pub fn bytes(&self) -> Vec<u8> {
        self.file.clone()
    }

    /// Writes the file into the test's temporary directory.
    pub fn write(&self, name: &str) -> PathBuf {
        write_bytes(name, &self.file)
    }

    /// Writes the capture at `path` (replacing a file there); returns the path.
    pub fn write_to(&self, path: &std::path::Path) -> PathBuf {
        std::fs::write(path, &self.file).expect("write capture");
        path.to_path_buf()
    }
}

pub fn write_bytes(name: &str, bytes: &[u8]) -> PathBuf {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("memtrace-tests");
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(format!("{name}-{}-{n}.bin", std::process::id()));
    std::fs::write(&path, bytes).expect("write capture");
    path
}
