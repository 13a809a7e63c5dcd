//! Writes a large synthetic capture, for benchmarking the reporter:
//! `cargo run --release -p memtrace-reporter --example synth_capture -- OUT EVENTS THREADS`
//!
//! Each thread allocates and frees with a working set of a few thousand blocks, in 64 KiB chunks
//! compressed with zstd level 1, as the tracker does; threads' chunks are interleaved in the file.

use memtrace_format::{
    Allocator, ChunkCodec, ChunkHeader, ChunkKind, Encoder, FileHeader, TickSource, Trailer,
    CHUNK_ALIGN, MAJOR, MINOR,
};
use std::io::Write;

const CHUNK: usize = 64 * 1024;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

struct Thread {
    serial: u32,
    seq: u32,
    enc: Encoder,
    buf: Vec<u8>,
    records: u32,
    first: u64,
    last: u64,
    live: Vec<u64>,
    next_addr: u64,
    rng: Rng,
    /// Addresses allocated in the current chunk, for frees by back-reference.
    chunk_allocs: Vec<u64>,
}

fn write_chunk(out: &mut impl Write, t: &mut Thread) -> std::io::Result<()> {
    let z = zstd::bulk::compress(&t.buf, 1)?;
    let h = ChunkHeader {
        kind: ChunkKind::Events,
        codec: ChunkCodec::Zstd,
        flags: 0,
        payload_crc: 0,
        thread_serial: t.serial,
        tid: 1000 + t.serial,
        seq: t.seq,
        stored_len: z.len() as u32,
        raw_len: t.buf.len() as u32,
        record_count: t.records,
        first_tick: t.first,
        last_tick: t.last,
        flush_mono_ns: t.last * 256 / 3,
        flush_tick: t.last,
    };
    out.write_all(&h.encode())?;
    out.write_all(&z)?;
    let pad = z.len().div_ceil(CHUNK_ALIGN) * CHUNK_ALIGN - z.len();
    out.write_all(&[0u8; 8][..pad])?;
    t.seq += 1;
    t.buf.clear();
    t.records = 0;
    t.enc.reset();
    t.chunk_allocs.clear();
    Ok(())
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let path = args.get(1).map(String::as_str).unwrap_or("synth.bin");
    let events: u64 = args
        .get(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(36_000_000);
    let nthreads: u32 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(4);
    let header = FileHeader {
        major: MAJOR,
        minor: MINOR,
        pid: 1,
        ppid: 0,
        start_realtime_ns: 0,
        start_mono_ns: 0,
        start_tick: 0,
        tick_source: TickSource::Tsc { shift: 8 },
        options: 0,
        argv: vec![b"synthetic".to_vec()],
        exe: b"/bin/synthetic".to_vec(),
        tool_version: b"synth".to_vec(),
    };
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut h = header.encode();
    h.resize(FileHeader::data_start(h.len()), 0);
    out.write_all(&h)?;
    let mut threads: Vec<Thread> = (0..nthreads)
        .map(|i| Thread {
            serial: i + 1,
            seq: 0,
            enc: Encoder::new(),
            buf: Vec::with_capacity(CHUNK + 128),
            records: 0,
            first: 0,
            last: 0,
            live: Vec::new(),
            next_addr: 0x7f00_0000_0000 + (u64::from(i) << 36),
            rng: Rng(0x9e37_79b9_7f4a_7c15 ^ u64::from(i + 1)),
            chunk_allocs: Vec::new(),
        })
        .collect();
    let mut tick = 1000u64;
    let mut scratch = [0u8; 128];
    for n in 0..events {
        let t = &mut threads[(n % u64::from(nthreads)) as usize];
        tick += 1 + t.rng.next() % 8;
        let r = t.rng.next();
        let pos = 0;
        let end;
        if t.live.len() < 2000 || (r % 100 < 50 && t.live.len() < 20000) {
            let size = match r % 10 {
                0..=6 => 8 + (r >> 8) % 120,
                7 | 8 => 128 + (r >> 8) % 4000,
                _ => 4096 + (r >> 8) % 100_000,
            };
            let addr = t.next_addr;
            t.next_addr += (size + 15) & !15;
            let stack = 1 + (r >> 32) % 500;
            end = t.enc.alloc(
                &mut scratch,
                pos,
                Allocator::Malloc,
                tick,
                addr,
                size,
                stack,
            );
            t.live.push(addr);
            t.chunk_allocs.push(addr);
        } else {
            // Free a recent block (often of this chunk: a back-reference) or an old one.
            let len = t.live.len();
            let i = if !r.is_multiple_of(4) {
                len - 1 - (r >> 16) as usize % 16.min(len)
            } else {
                (r >> 16) as usize % len
            };
            let addr = t.live.swap_remove(i);
            match t.chunk_allocs.iter().rev().position(|&a| a == addr) {
                Some(d) => {
                    end = t
                        .enc
                        .free_back(&mut scratch, pos, false, tick, d as u64 + 1, addr)
                }
                None => end = t.enc.free_addr(&mut scratch, pos, false, tick, addr),
            }
        }
        if t.records == 0 {
            t.first = tick;
        }
        t.last = tick;
        t.records += 1;
        t.buf.extend_from_slice(&scratch[..end]);
        if t.buf.len() >= CHUNK - 64 {
            write_chunk(&mut out, t)?;
        }
    }
    for t in &mut threads {
        if !t.buf.is_empty() {
            write_chunk(&mut out, t)?;
        }
    }
    let trailer = Trailer {
        end_mono_ns: (tick + 10) * 256 / 3,
        end_tick: tick + 10,
        records_written: events,
        records_dropped: 0,
        flags: 0,
        threads: u64::from(nthreads),
    };
    let mut buf = [0u8; Trailer::MAX_LEN];
    let n = trailer.encode(&mut buf);
    let h = ChunkHeader::trailer(&trailer, n);
    out.write_all(&h.encode())?;
    out.write_all(&buf[..n])?;
    let pad = n.div_ceil(CHUNK_ALIGN) * CHUNK_ALIGN - n;
    out.write_all(&[0u8; 8][..pad])?;
    out.flush()
}
