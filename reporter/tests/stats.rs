//! Exact stats of synthetic captures.

use crate::common::{CaptureBuilder, Chunk};
use memtrace_format::record::Segment;
use memtrace_format::{trailer_flags, Allocator, Trailer};
use memtrace_reporter::analysis;
use memtrace_reporter::capture::Capture;
use memtrace_reporter::report::stats::{self, HistogramBin, StatsReport};

fn report(b: &CaptureBuilder) -> StatsReport {
    report_bytes(b.bytes())
}

fn report_bytes(bytes: Vec<u8>) -> StatsReport {
    let capture = Capture::from_bytes("test.bin", bytes).expect("a capture");
    let analysis = analysis::analyze(&capture);
    stats::build(&capture, &analysis, 5)
}

fn has_warning(r: &StatsReport, needle: &str) -> bool {
    r.warnings.iter().any(|w| w.contains(needle))
}

#[test]
fn counts_bytes_peak_and_histogram() {
    let mut b = CaptureBuilder::new();
    let mut c = Chunk::new();
    c.malloc(1_000, 0x1000, 100)
        .malloc(2_000, 0x2000, 200)
        .free(3_000, 0x1000)
        .alloc(Allocator::Calloc, 4_000, 0x3000, 50, 0)
        .free(5_000, 0xdead); // allocated before tracking began: neither a free nor live
    b.events(1, 100, 0, &c);
    b.trailer(10_000);
    let r = report(&b);
    assert_eq!(r.total_allocations, 3);
    assert_eq!(r.total_bytes, 350);
    // Frees of allocations the capture saw: the free of 0xdead is not one.
    assert_eq!(r.total_frees, 1);
    assert_eq!(r.peak_bytes, 300);
    assert_eq!(r.peak_allocations, 2);
    assert!((r.peak_time_s - 2e-6).abs() < 1e-12);
    assert_eq!(r.leaked_bytes, 250);
    assert_eq!(r.leaked_allocations, 2);
    assert_eq!(r.leaks_at, "end");
    assert!((r.duration_s - 1e-5).abs() < 1e-12);
    assert_eq!(
        r.histogram,
        vec![
            HistogramBin {
                lo: 32,
                hi: 63,
                count: 1,
                bytes: 50
            },
            HistogramBin {
                lo: 64,
                hi: 127,
                count: 1,
                bytes: 100
            },
            HistogramBin {
                lo: 128,
                hi: 255,
                count: 1,
                bytes: 200
            },
        ]
    );
    assert_eq!(r.allocators["malloc"], 2);
    assert_eq!(r.allocators["calloc"], 1);
    assert_eq!(r.allocators["mmap"], 0);
    // The free calls, the matched one and the one of unknown memory.
    assert_eq!(r.allocators["free"], 2);
    assert_eq!(r.allocators.len(), 10, "the C allocators and free, always");
    assert_eq!(r.command, "./prog --flag");
    assert_eq!(r.pid, 4242);
    assert_eq!(r.format_version, "1.4");
    assert!(r.complete);
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    assert_eq!(r.threads.len(), 1);
    assert_eq!(
        (
            r.threads[0].tid,
            r.threads[0].allocations,
            r.threads[0].bytes
        ),
        (100, 3, 350)
    );
}

#[test]
fn zero_size_and_huge_bins() {
    let mut b = CaptureBuilder::new();
    let mut c = Chunk::new();
    c.malloc(1, 0x10, 0)
        .malloc(2, 0x20, 1)
        .malloc(3, 0x30, 1 << 40);
    b.events(1, 1, 0, &c);
    b.trailer(10);
    let r = report(&b);
    let bins: Vec<(u64, u64, u64)> = r.histogram.iter().map(|h| (h.lo, h.hi, h.count)).collect();
    assert_eq!(
        bins,
        vec![(0, 0, 1), (1, 1, 1), (1 << 40, (1 << 41) - 1, 1)]
    );
}

#[test]
fn peak_in_the_middle_and_at_the_end() {
    let mut b = CaptureBuilder::new();
    let mut c = Chunk::new();
    c.malloc(10, 0x10, 1000)
        .malloc(20, 0x20, 500)
        .free(30, 0x10)
        .malloc(40, 0x30, 100);
    b.events(1, 1, 0, &c);
    b.trailer(100);
    let r = report(&b);
    assert_eq!((r.peak_bytes, r.peak_allocations), (1500, 2));
    assert!((r.peak_time_s - 20e-9).abs() < 1e-15);

    let mut b = CaptureBuilder::new();
    let mut c = Chunk::new();
    c.malloc(10, 0x10, 1000)
        .free(20, 0x10)
        .malloc(30, 0x20, 600)
        .malloc(40, 0x30, 600);
    b.events(1, 1, 0, &c);
    b.trailer(100);
    let r = report(&b);
    assert_eq!(r.peak_bytes, 1200);
    assert!((r.peak_time_s - 40e-9).abs() < 1e-15);
    assert_eq!(r.leaked_bytes, 1200);
}

#[test]
fn threads_merge_by_tick_across_the_file() {
    // Thread 1 allocates 1000 at t=10 and frees it at t=30 (in its second chunk, written last);
    // thread 2 allocates 500 at t=20, in a chunk written before thread 1's first.
    let mut b = CaptureBuilder::new();
    let mut t2 = Chunk::new();
    t2.thread_name("worker")
        .malloc(20, 0x20, 500)
        .free(40, 0x20);
    b.events(2, 202, 0, &t2);
    let mut t1a = Chunk::new();
    t1a.thread_name("main").malloc(10, 0x10, 1000);
    b.events(1, 101, 0, &t1a);
    let mut t1b = Chunk::new();
    t1b.free(30, 0x10).malloc(50, 0x50, 10);
    b.events(1, 101, 1, &t1b);
    b.trailer(100);
    let r = report(&b);
    assert_eq!(r.peak_bytes, 1500);
    assert!((r.peak_time_s - 20e-9).abs() < 1e-15);
    assert_eq!(r.leaked_bytes, 10);
    assert_eq!(r.total_allocations, 3);
    let threads: Vec<(u32, Option<&str>, u64, u64)> = r
        .threads
        .iter()
        .map(|t| (t.tid, t.name.as_deref(), t.allocations, t.bytes))
        .collect();
    assert!(threads.contains(&(202, Some("worker"), 1, 500)));
    assert!(threads.contains(&(101, Some("main"), 2, 1010)));
}

#[test]
fn peak_reached_in_a_second_thread() {
    let mut b = CaptureBuilder::new();
    let mut t1 = Chunk::new();
    t1.malloc(1, 0x100, 64)
        .free(5, 0x100)
        .malloc(6, 0x100, 64)
        .free(9, 0x100);
    b.events(1, 1, 0, &t1);
    let mut t2 = Chunk::new();
    t2.malloc(7, 0x900, 4096).free(8, 0x900);
    b.events(2, 2, 0, &t2);
    b.trailer(10);
    let r = report(&b);
    assert_eq!(r.peak_bytes, 4096 + 64);
    assert!((r.peak_time_s - 7e-9).abs() < 1e-15);
    assert_eq!(r.leaked_bytes, 0);
}

#[test]
fn many_threads_many_chunks_match_a_simple_replay() {
    // Interleaved threads, several chunks each, written to the file in a scrambled order.
    let threads = 5u32;
    let mut chunks: Vec<(u32, u32, Chunk)> = Vec::new();
    let mut expected_live: i64 = 0;
    let mut expected_peak: i64 = 0;
    let mut events: Vec<(u64, u32, bool, u64, u64)> = Vec::new(); // tick, thread, alloc, addr, size
    for t in 0..threads {
        for seq in 0..4u32 {
            let mut c = Chunk::new();
            for i in 0..50u64 {
                let tick = (u64::from(seq) * 50 + i) * 10 + u64::from(t);
                let addr = 0x10_0000 * u64::from(t + 1) + (u64::from(seq) * 50 + i) * 16;
                let size = 1 + (i * 7 + u64::from(t)) % 300;
                c.malloc(tick, addr, size);
                events.push((tick, t, true, addr, size));
                if i % 3 != 0 {
                    c.free(tick + 5, addr);
                    events.push((tick + 5, t, false, addr, size));
                }
            }
            chunks.push((t, seq, c));
        }
    }
    events.sort_by_key(|e| (e.0, e.1));
    for e in &events {
        expected_live += if e.2 { e.4 as i64 } else { -(e.4 as i64) };
        expected_peak = expected_peak.max(expected_live);
    }
    let mut b = CaptureBuilder::new();
    // Scramble: write later sequences of low threads first.
    chunks.sort_by_key(|(t, seq, _)| ((seq * 7 + t * 3) % 11, *t, *seq));
    for (t, seq, c) in &chunks {
        b.events(t + 1, t + 100, *seq, c);
    }
    b.trailer(1_000_000);
    let r = report(&b);
    assert_eq!(r.peak_bytes as i64, expected_peak);
    assert_eq!(r.leaked_bytes as i64, expected_live);
    assert_eq!(r.total_allocations, 1000);
}

#[test]
fn columnar_chunks_read_like_zstd_chunks() {
    // The same records, stored once per codec, give the same report.
    let mut chunks = Vec::new();
    for seq in 0..3u64 {
        let mut c = Chunk::new();
        for i in 0..400u64 {
            let tick = seq * 1000 + i * 2;
            // Reused addresses, block ends and fresh ones, as an allocator makes them.
            let addr = 0x5000_0000 + ((i * 37) % 128) * 64;
            c.malloc(tick, addr, 1 + (i * 13) % 5000);
            if i % 4 != 3 {
                c.free(tick + 1, addr);
            }
        }
        c.free_back(seq * 1000 + 900, 2, 0x5000_0000 + ((398 * 37) % 128) * 64);
        chunks.push(c);
    }
    let build = |columnar: bool| {
        let mut b = CaptureBuilder::new();
        for (seq, c) in chunks.iter().enumerate() {
            if columnar {
                b.columns_events(1, 7, seq as u32, c);
            } else {
                b.events(1, 7, seq as u32, c);
            }
        }
        b.trailer(10_000);
        report(&b)
    };
    let (z, col) = (build(false), build(true));
    assert!(col.warnings.is_empty(), "{:?}", col.warnings);
    assert_eq!(col.total_allocations, 1200);
    assert_eq!(
        (
            col.total_bytes,
            col.total_frees,
            col.peak_bytes,
            col.leaked_bytes
        ),
        (z.total_bytes, z.total_frees, z.peak_bytes, z.leaked_bytes)
    );
    assert_eq!(
        serde_json::to_string(&col.histogram).ok(),
        serde_json::to_string(&z.histogram).ok()
    );
}

#[test]
fn back_reference_frees() {
    let mut b = CaptureBuilder::new();
    let mut c = Chunk::new();
    c.malloc(1, 0x1000, 10)
        .malloc(2, 0x2000, 20)
        .free_back(3, 2, 0x1000)
        .free_back(4, 1, 0x2000);
    b.events(1, 1, 0, &c);
    b.trailer(10);
    let r = report(&b);
    assert_eq!((r.peak_bytes, r.leaked_bytes, r.total_frees), (30, 0, 2));
}

#[test]
fn realloc_is_a_free_and_an_allocation() {
    let mut b = CaptureBuilder::new();
    let mut c = Chunk::new();
    c.malloc(1, 0x1000, 100)
        .free(2, 0x1000)
        .alloc(Allocator::Realloc, 2, 0x5000, 300, 0)
        .free(3, 0x5000)
        .alloc(Allocator::Realloc, 3, 0x5000, 50, 0);
    b.events(1, 1, 0, &c);
    b.trailer(10);
    let r = report(&b);
    assert_eq!(r.total_allocations, 3);
    assert_eq!(r.total_bytes, 450);
    assert_eq!(r.allocators["realloc"], 2);
    assert_eq!(r.peak_bytes, 300);
    assert_eq!((r.leaked_bytes, r.leaked_allocations), (50, 1));
}

#[test]
fn partial_munmap_and_mremap() {
    let page = 4096;
    let mut b = CaptureBuilder::new();
    let mut c = Chunk::new();
    c.alloc(Allocator::Mmap, 1, 0x10000, 3 * page, 0)
        .munmap(2, 0x10000 + page, page) // the middle page
        .alloc(Allocator::Malloc, 3, 0x500, 10, 0);
    b.events(1, 1, 0, &c);
    b.trailer(10);
    let r = report(&b);
    assert_eq!(r.peak_bytes, 3 * page);
    assert_eq!((r.leaked_bytes, r.leaked_allocations), (2 * page + 10, 3));
    assert_eq!(r.allocators["mmap"], 1);
    assert_eq!(r.total_frees, 1);

    let mut b = CaptureBuilder::new();
    let mut c = Chunk::new();
    c.alloc(Allocator::Mmap, 1, 0x10000, page, 0)
        .mremap(2, 0x10000, page, 0x80000, 4 * page) // moves a tracked mapping
        // Of a mapping the capture did not know (made before an attach, or by a raw system
        // call): the new one counts from here, as in the totals (it was in the totals only).
        .mremap(3, 0xf0000, page, 0xa0000, 8 * page)
        .munmap(4, 0x80000 + 3 * page, page); // shrink the tail
    b.events(1, 1, 0, &c);
    b.trailer(10);
    let r = report(&b);
    assert_eq!(r.peak_bytes, 4 * page + 8 * page);
    assert_eq!(r.leaked_bytes, 3 * page + 8 * page);
    assert_eq!(
        r.total_allocations, 3,
        "each mremap counts as an mmap allocation"
    );
    assert_eq!(r.total_bytes, page + 4 * page + 8 * page);
    assert_eq!(r.allocators["mmap"], 3);
}

#[test]
fn leaks_are_taken_at_the_exit_snapshot() {
    let mut b = CaptureBuilder::new();
    let mut c = Chunk::new();
    c.malloc(1, 0x10, 100)
        .malloc(2, 0x20, 200)
        .exit_marker(3)
        .free(4, 0x10)
        .free(5, 0x20)
        .malloc(6, 0x30, 7)
        .exit_marker(7);
    b.events(1, 1, 0, &c);
    b.trailer(10);
    let r = report(&b);
    assert_eq!((r.leaked_bytes, r.leaked_allocations), (300, 2));
    assert_eq!(r.leaks_at, "exit_snapshot");
}

#[test]
fn duplicate_live_address_frees_the_older_block() {
    // Two threads allocate the same address at the same tick; one free removes the older.
    let mut b = CaptureBuilder::new();
    let mut t1 = Chunk::new();
    t1.malloc(5, 0x10, 100);
    b.events(1, 1, 0, &t1);
    let mut t2 = Chunk::new();
    t2.malloc(5, 0x10, 30).free(6, 0x10);
    b.events(2, 2, 0, &t2);
    b.trailer(10);
    let r = report(&b);
    assert_eq!(r.peak_bytes, 130);
    assert_eq!((r.leaked_bytes, r.leaked_allocations), (30, 1));
}

#[test]
fn staging_is_recovered_and_stale_staging_is_ignored() {
    let mut b = CaptureBuilder::new();
    let mut c0 = Chunk::new();
    c0.malloc(1, 0x10, 100).malloc(2, 0x20, 200);
    b.events(1, 1, 0, &c0);
    // A stale copy of seq 0 left in the staging area: not counted twice.
    b.staging(1, 1, 0, &c0, 256, &[]);
    // The live staging area of seq 1, with a record being written past raw_len.
    let mut c1 = Chunk::new();
    c1.free(3, 0x10).malloc(4, 0x30, 50);
    b.staging(1, 1, 1, &c1, 512, &[0x07, 0xff, 0xff]);
    // An empty staging area.
    b.staging(1, 1, 2, &Chunk::new(), 128, &[]);
    // No trailer: killed.
    b.zeros(4096);
    let r = report(&b);
    assert_eq!(r.total_allocations, 3);
    assert_eq!(r.total_bytes, 350);
    assert_eq!(r.total_frees, 1);
    assert_eq!(r.peak_bytes, 300);
    assert_eq!(r.leaked_bytes, 250);
    assert!(!r.complete);
    assert!(has_warning(&r, "incomplete"), "{:?}", r.warnings);
    assert_eq!(r.warnings.len(), 1, "{:?}", r.warnings);
    assert!(
        (r.duration_s - 4e-9).abs() < 1e-15,
        "staging events extend the duration"
    );
}

#[test]
fn a_columnar_staging_area_is_recovered_up_to_its_record_count() {
    // As the tracker leaves it at a SIGKILL: the records the header counts, and the fields of
    // one more record it had begun (not counted, so not read).
    let mut b = CaptureBuilder::new();
    let mut c0 = Chunk::new();
    c0.malloc(1, 0x1000, 100).malloc(2, 0x2000, 200);
    b.events(1, 1, 0, &c0);
    let mut c1 = Chunk::new();
    c1.free(3, 0x1000)
        .malloc(4, 0x3000, 50)
        .malloc(5, 0x3040, 7);
    let mut begun = Chunk::new();
    begun.malloc(6, 0x9000, 1 << 20);
    b.columns_staging(1, 1, 1, &c1, &begun, 4096);
    b.zeros(4096);
    let r = report(&b);
    assert_eq!(r.total_allocations, 4);
    assert_eq!(r.total_bytes, 357);
    assert_eq!(r.total_frees, 1);
    assert_eq!(r.peak_bytes, 300);
    assert_eq!(r.leaked_bytes, 257);
    assert!(!r.complete);
    assert_eq!(r.warnings.len(), 1, "{:?}", r.warnings);
    assert!(
        (r.duration_s - 5e-9).abs() < 1e-15,
        "staging events extend the duration"
    );
}

#[test]
fn raw_events_chunks_are_read() {
    let mut b = CaptureBuilder::new();
    let mut c = Chunk::new();
    c.malloc(1, 0x10, 100);
    b.raw_events(1, 1, 0, &c);
    b.trailer(10);
    assert_eq!(report(&b).total_bytes, 100);
}

fn three_chunks() -> (CaptureBuilder, Vec<usize>) {
    three_chunks_in(false)
}

/// Three chunks of one allocation and its free each, zstd or columnar; the offsets of the
/// chunks and the trailer.
fn three_chunks_in(columnar: bool) -> (CaptureBuilder, Vec<usize>) {
    let mut b = CaptureBuilder::new();
    let mut offsets = Vec::new();
    for seq in 0..3u32 {
        let mut c = Chunk::new();
        let t = u64::from(seq) * 100;
        c.malloc(t + 1, 0x1000 + t, 10 + u64::from(seq))
            .free(t + 2, 0x1000 + t);
        offsets.push(if columnar {
            b.columns_events(1, 1, seq, &c)
        } else {
            b.events(1, 1, seq, &c)
        });
    }
    offsets.push(b.trailer(1000));
    (b, offsets)
}

#[test]
fn truncated_file_reads_the_complete_chunks() {
    let (b, offsets) = three_chunks();
    let mut bytes = b.bytes();
    bytes.truncate(offsets[2] + 80);
    let r = report_bytes(bytes);
    assert_eq!(r.total_allocations, 2);
    assert_eq!(r.total_bytes, 21);
    assert!(
        has_warning(
            &r,
            &format!(
                "capture is truncated at offset {}; read 2 complete chunks",
                offsets[2]
            )
        ),
        "{:?}",
        r.warnings
    );
    assert!(!r.complete);
}

#[test]
fn damaged_chunk_header_is_skipped_with_its_offset() {
    let (b, offsets) = three_chunks();
    let mut bytes = b.bytes();
    bytes[offsets[1] + 10] ^= 0x40;
    let r = report_bytes(bytes);
    assert_eq!(r.total_allocations, 2);
    assert_eq!(r.total_bytes, 10 + 12);
    let expect = format!(
        "skipped {} bytes of damaged data at offset {}",
        offsets[2] - offsets[1],
        offsets[1]
    );
    assert!(has_warning(&r, &expect), "{:?}", r.warnings);
    assert!(r.complete);
}

#[test]
fn damaged_compressed_payload_is_skipped() {
    // zstd: break the frame magic of chunk 1's payload; columns: make its stream table name a
    // layout this reader does not know.
    for (columnar, flip) in [(false, 0xff), (true, 0x40)] {
        let (b, offsets) = three_chunks_in(columnar);
        let mut bytes = b.bytes();
        bytes[offsets[1] + 72] ^= flip;
        let r = report_bytes(bytes);
        assert_eq!(r.total_allocations, 2);
        assert!(
            has_warning(
                &r,
                &format!("skipped damaged chunk at offset {}", offsets[1])
            ),
            "{:?}",
            r.warnings
        );
        // Its records are not in the figures: the capture does not pass for complete.
        assert!(
            has_warning(&r, "event records in damaged chunks could not be read"),
            "{:?}",
            r.warnings
        );
        assert!(!r.complete);
    }
}

#[test]
fn trailer_flags_are_reported() {
    let mut b = CaptureBuilder::new();
    let mut c = Chunk::new();
    c.malloc(1, 0x10, 100);
    b.events(1, 1, 0, &c);
    b.trailer_with(&Trailer {
        end_mono_ns: 50,
        end_tick: 50,
        records_written: 1,
        records_dropped: 3,
        flags: trailer_flags::WRITE_FAILED,
        threads: 1,
    });
    let r = report(&b);
    assert!(!r.complete);
    assert!(has_warning(&r, "writing the capture failed"));
    assert!(has_warning(&r, "dropped 3 records"));
}

#[test]
fn python_locations_resolve_from_tables_anywhere() {
    let mut b = CaptureBuilder::new();
    // Events first, tables later in another thread's chunk.
    let mut c = Chunk::new();
    c.alloc(Allocator::PymallocMalloc, 1, 0x10, 100, 2)
        .alloc(Allocator::PymallocMalloc, 2, 0x20, 100, 3)
        .alloc(Allocator::Malloc, 3, 0x30, 1000, 4)
        .alloc(Allocator::Malloc, 4, 0x40, 1, 0)
        .alloc(Allocator::Malloc, 5, 0x50, 1, 0)
        .alloc(Allocator::Malloc, 6, 0x60, 1, 0);
    b.events(1, 1, 0, &c);
    let mut t = Chunk::new();
    t.string(1, "compute")
        .string(2, "script.py")
        .python_frame(10, 1, 2, 42)
        .python_frame(11, 1, 2, 42) // the same line reached through another frame id
        .stack(1, 0, 10)
        .stack(2, 1, 10)
        .stack(3, 0, 11)
        .native_frame(12, 0x7000_0000_1234)
        .stack(4, 1, 12);
    b.events(2, 2, 0, &t);
    let mut m = Chunk::new();
    m.module(
        0x7000_0000_0000,
        "/nonexistent/libfoo.so",
        b"\x01\x02",
        &[Segment {
            vaddr: 0,
            memsz: 0x10000,
            file_offset: 0,
        }],
    );
    b.meta(&m);
    b.trailer(10);
    let r = report(&b);
    let top: Vec<(&str, u64, u64)> = r
        .top_by_size
        .iter()
        .map(|l| (l.location.as_str(), l.bytes, l.count))
        .collect();
    assert_eq!(
        top,
        vec![
            ("libfoo.so+0x1234", 1000, 1),
            ("compute at script.py:42", 200, 2),
            ("<unknown>", 3, 3),
        ]
    );
    let py = &r.top_by_size[1];
    assert_eq!(py.function.as_deref(), Some("compute"));
    assert_eq!(py.file.as_deref(), Some("script.py"));
    assert_eq!(py.line, Some(42));
    assert_eq!(r.top_by_size[0].function, None);
    assert_eq!(r.top_by_count[0].location, "<unknown>");
    assert_eq!(r.allocators["pymalloc_malloc"], 2);
    assert!(!r.allocators.contains_key("pymalloc_calloc"));
}

// Plain operators only: a call to an inlined library function would make the innermost
// (inlined) frame at these addresses that function's, as an optimized build shows.
#[inline(never)]
fn a_function_to_find(x: u64) -> u64 {
    (x ^ 0x5a5a_5a5a) | 1
}

/// Base and first segment of this test executable, from /proc/self/maps.
fn own_module() -> Option<(u64, String)> {
    let exe = std::fs::read_link("/proc/self/exe").ok()?;
    let exe = exe.to_str()?.to_string();
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    for line in maps.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() >= 6 && fields[5] == exe && fields[2] == "00000000" {
            let start = u64::from_str_radix(fields[0].split('-').next()?, 16).ok()?;
            return Some((start, exe));
        }
    }
    None
}

#[test]
fn native_frames_are_symbolized_when_the_module_matches() {
    let Some((base, exe)) = own_module() else {
        eprintln!("no /proc/self/maps: skipped");
        return;
    };
    std::hint::black_box(a_function_to_find(3));
    let f = a_function_to_find as fn(u64) -> u64 as usize as u64;
    let build_id = memtrace_reporter::symbols::elf::build_id(std::path::Path::new(&exe))
        .ok()
        .flatten()
        .unwrap_or_default();
    let make = |id: &[u8]| {
        let mut b = CaptureBuilder::new();
        let mut c = Chunk::new();
        c.alloc(Allocator::Malloc, 1, 0x10, 64, 1)
            .native_frame(5, f + 4)
            .stack(1, 0, 5);
        b.events(1, 1, 0, &c);
        let mut m = Chunk::new();
        m.module(
            base,
            &exe,
            id,
            &[Segment {
                vaddr: 0,
                memsz: 1 << 40,
                file_offset: 0,
            }],
        );
        b.meta(&m);
        b.trailer(10);
        report(&b)
    };
    let r = make(&build_id);
    let top = &r.top_by_size[0];
    assert!(
        top.function
            .as_deref()
            .is_some_and(|f| f.contains("a_function_to_find")),
        "{top:?}"
    );
    assert!(
        top.file.as_deref().is_some_and(|f| f.ends_with("stats.rs")),
        "{top:?}"
    );
    assert!(top.line.is_some());

    // A different build-id: the file is not the one that was loaded.
    let r = make(b"not the same build id");
    let top = &r.top_by_size[0];
    assert_eq!(top.function, None);
    assert!(top.location.contains('+'), "{top:?}");
}

#[test]
fn tracker_layout_of_a_killed_process() {
    // As the tracker lays out a file: the trailer's place reserved (zeros) right after the header,
    // a staging area per thread, Events chunks after; killed: no trailer, a preallocated zero tail.
    let mut b = CaptureBuilder::new();
    b.zeros(72 + 64);
    let mut c1 = Chunk::new();
    c1.malloc(30, 0x30, 7);
    let staging_at = b.staging(1, 1, 1, &c1, 1024, &[]);
    let mut c0 = Chunk::new();
    c0.malloc(10, 0x10, 100).malloc(20, 0x20, 200);
    b.events(1, 1, 0, &c0);
    b.zeros(1 << 16);
    let r = report(&b);
    assert_eq!(r.total_allocations, 3);
    assert_eq!(r.leaked_bytes, 307);
    assert_eq!(r.warnings.len(), 1, "{:?}", r.warnings);
    assert!(has_warning(&r, "incomplete"));
    assert!(staging_at > 0);

    // The same capture finished: the trailer sits in its reserved place.
    let mut t = CaptureBuilder::new();
    let trailer_at = t.file.len();
    t.trailer(100);
    let mut bytes = b.bytes();
    let tb = t.bytes();
    bytes[trailer_at..tb.len()].copy_from_slice(&tb[trailer_at..]);
    let r = report_bytes(bytes);
    assert!(r.complete);
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    assert_eq!(r.total_allocations, 3);
}
