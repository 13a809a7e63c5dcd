//! What a chunk may claim: a thread's chunk decodes to `MAX_DECODED` bytes at most, the streams
//! of a columnar chunk to what its header says; a capture is complete only when its chunks hold
//! every record its trailer counts.

use crate::common::{CaptureBuilder, Chunk};
use memtrace_format::chunk::MAX_DECODED;
use memtrace_format::columns::{self, stream};
use memtrace_format::{ChunkCodec, ChunkHeader, ChunkKind, Trailer};
use memtrace_reporter::analysis;
use memtrace_reporter::capture::Capture;

fn analyze(b: &CaptureBuilder) -> analysis::Analysis {
    let capture = Capture::from_bytes("caps.bin", b.bytes()).expect("a capture");
    analysis::analyze(&capture)
}

fn header(kind: ChunkKind, codec: ChunkCodec, seq: u32, raw_len: usize) -> ChunkHeader {
    ChunkHeader {
        kind,
        codec,
        flags: 0,
        payload_crc: 0,
        thread_serial: 1,
        tid: 1,
        seq,
        stored_len: 0,
        raw_len: raw_len as u32,
        record_count: 1,
        first_tick: 1,
        last_tick: 1,
        flush_mono_ns: 1,
        flush_tick: 1,
    }
}

/// A sane chunk of thread 1, seq 0: one malloc of 100 bytes.
fn sane(b: &mut CaptureBuilder) {
    let mut c = Chunk::new();
    c.malloc(1, 0x1000, 100);
    b.columns_events(1, 1, 0, &c);
}

fn warned(a: &analysis::Analysis, what: &str) -> bool {
    a.warnings.iter().any(|w| w.contains(what))
}

#[test]
fn a_chunk_claiming_more_than_a_tracker_writes_is_skipped() {
    let zeros = vec![0u8; MAX_DECODED + 8];
    let z = zstd::bulk::compress(&zeros, 3).expect("compress");
    for kind in [ChunkKind::Events, ChunkKind::Meta] {
        let mut b = CaptureBuilder::new();
        sane(&mut b);
        b.chunk(header(kind, ChunkCodec::Zstd, 1, zeros.len()), &z, z.len());
        let a = analyze(&b);
        assert!(warned(&a, "more than a tracker writes"), "{:?}", a.warnings);
        assert_eq!(a.totals.allocs.count, 1, "the sane chunk is read");
    }
}

#[test]
fn streams_claiming_more_than_the_header_are_damage() {
    // 1000 mallocs at address 0: 5.5 bytes of streams each, in a chunk that says 100 bytes.
    let n = 1000;
    let mut streams: [Vec<u8>; stream::COUNT] = Default::default();
    streams[stream::TYPE] = vec![0; n];
    streams[stream::DELTA] = vec![0; n / 2];
    streams[stream::ADDR] = vec![0; 2 * n];
    streams[stream::SIZE_LO] = vec![0; n];
    streams[stream::SIZE_HI] = vec![0; n];
    streams[stream::STACK] = vec![0; n];
    let lens: [(usize, usize); stream::COUNT] = std::array::from_fn(|i| {
        let l = streams[i].len();
        (l, l)
    });
    let mut payload = vec![0u8; columns::MAX_FRAME_TABLE];
    let t = columns::write_frame_table(&lens, &mut payload);
    payload.truncate(t);
    for s in &streams {
        payload.extend_from_slice(s);
    }
    let total: usize = streams.iter().map(Vec::len).sum();
    for (raw_len, read) in [(100, false), (total, true)] {
        let mut b = CaptureBuilder::new();
        sane(&mut b);
        let h = header(ChunkKind::Events, ChunkCodec::Columns, 1, raw_len);
        b.chunk(h, &payload, payload.len());
        let a = analyze(&b);
        let expected = if read { 1 + n as u64 } else { 1 };
        assert_eq!(a.totals.allocs.count, expected, "raw_len {raw_len}");
        assert_eq!(
            warned(&a, "claim more than the chunk holds"),
            !read,
            "{:?}",
            a.warnings
        );
    }
}

#[test]
fn the_trailer_count_tells_a_copy_cut_short() {
    let trailer = |written: u64| Trailer {
        end_mono_ns: 100,
        end_tick: 100,
        records_written: written,
        records_dropped: 0,
        flags: 0,
        threads: 1,
    };
    // The trailer first, as the tracker places it, then two chunks of one record each.
    let build = |written: u64, chunks: u32| {
        let mut b = CaptureBuilder::new();
        b.trailer_with(&trailer(written));
        for seq in 0..chunks {
            let mut c = Chunk::new();
            c.malloc(u64::from(seq) + 1, 0x1000 * (u64::from(seq) + 1), 10);
            b.columns_events(1, 1, seq, &c);
        }
        b
    };
    let whole = analyze(&build(2, 2));
    assert!(whole.complete(), "{:?}", whole.warnings);
    assert_eq!(whole.index.records_found, 2);
    assert!(whole.warnings.is_empty(), "{:?}", whole.warnings);
    // The second chunk lost whole: no chunk runs past the end, only the count tells.
    let cut = analyze(&build(2, 1));
    assert!(!cut.complete());
    assert_eq!(cut.index.records_found, 1);
    assert_eq!(cut.totals.allocs.count, 1, "what is left is reported");
    assert!(
        warned(&cut, "its chunks hold 1 of the 2 records"),
        "{:?}",
        cut.warnings
    );
    // A chunk cut in the middle.
    let mut bytes = build(2, 2).bytes();
    bytes.truncate(bytes.len() - 4);
    let capture = Capture::from_bytes("cut.bin", bytes).expect("a capture");
    let a = analysis::analyze(&capture);
    assert!(!a.complete());
    assert_eq!(a.totals.allocs.count, 1);
}
