//! Property tests: whatever the Encoder writes, the Decoder reads back identically; damaged
//! payloads end in an error or fewer records, never a panic.

use memtrace_format::record::{Segment, MAX_EVENT_LEN};
use memtrace_format::{
    Allocator, ChunkCodec, ChunkHeader, ChunkKind, Decoder, Encoder, FileHeader, Marker, Record,
    TickSource, Trailer, MAJOR, MINOR,
};
use proptest::prelude::*;

/// One thing to encode. Ticks are deltas from the previous timed record.
#[derive(Clone, Debug)]
enum Op {
    Alloc {
        allocator: u8,
        dt: u64,
        addr: u64,
        size: u64,
        stack: u64,
    },
    FreeAddr {
        python: bool,
        dt: u64,
        addr: u64,
    },
    /// A pymalloc_free of a block that held an object of type `ty` (not 0).
    TypedFree {
        dt: u64,
        addr: u64,
        ty: u64,
    },
    /// A free of an earlier allocation of the chunk, `pick` choosing which.
    FreeBack {
        python: bool,
        dt: u64,
        pick: u64,
    },
    Munmap {
        dt: u64,
        addr: u64,
        len: u64,
    },
    Mremap {
        dt: u64,
        old: u64,
        old_len: u64,
        new: u64,
        new_len: u64,
        stack: u64,
    },
    Marker {
        dt: u64,
        code: u64,
    },
    Stack {
        id: u64,
        parent: u64,
        frame: u64,
    },
    NativeFrame {
        id: u64,
        addr: u64,
    },
    PythonFrame {
        id: u64,
        function: u64,
        file: u64,
        line: u64,
    },
    Str {
        id: u64,
        bytes: Vec<u8>,
    },
    ThreadName {
        name: Vec<u8>,
    },
    Module {
        base: u64,
        path: Vec<u8>,
        build_id: Vec<u8>,
        segments: Vec<(u64, u64, u64)>,
    },
}

/// Small and large values, to hit every varint length.
fn val() -> impl Strategy<Value = u64> {
    prop_oneof![
        0u64..8,
        0u64..300,
        any::<u32>().prop_map(u64::from),
        any::<u64>()
    ]
}

fn dt() -> impl Strategy<Value = u64> {
    prop_oneof![0u64..7, 7u64..10_000, 0u64..(1 << 40)]
}

fn addr() -> impl Strategy<Value = u64> {
    prop_oneof![
        0x1000u64..0x2000,
        0x7f00_0000_0000u64..0x7f00_0010_0000,
        any::<u64>()
    ]
}

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..40)
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..12, dt(), addr(), val(), val())
            .prop_map(|(allocator, dt, addr, size, stack)| Op::Alloc { allocator, dt, addr, size, stack }),
        2 => (any::<bool>(), dt(), addr()).prop_map(|(python, dt, addr)| Op::FreeAddr { python, dt, addr }),
        3 => (any::<bool>(), dt(), any::<u64>()).prop_map(|(python, dt, pick)| Op::FreeBack { python, dt, pick }),
        2 => (dt(), addr(), 1u64..).prop_map(|(dt, addr, ty)| Op::TypedFree { dt, addr, ty }),
        1 => (dt(), addr(), val()).prop_map(|(dt, addr, len)| Op::Munmap { dt, addr, len }),
        1 => (dt(), addr(), val(), addr(), val(), val()).prop_map(|(dt, old, old_len, new, new_len, stack)| {
            Op::Mremap { dt, old, old_len, new, new_len, stack }
        }),
        1 => (dt(), val()).prop_map(|(dt, code)| Op::Marker { dt, code }),
        1 => (val(), val(), val()).prop_map(|(id, parent, frame)| Op::Stack { id, parent, frame }),
        1 => (val(), addr()).prop_map(|(id, addr)| Op::NativeFrame { id, addr }),
        1 => (val(), val(), val(), val())
            .prop_map(|(id, function, file, line)| Op::PythonFrame { id, function, file, line }),
        1 => (val(), bytes()).prop_map(|(id, bytes)| Op::Str { id, bytes }),
        1 => bytes().prop_map(|name| Op::ThreadName { name }),
        1 => (addr(), bytes(), bytes(), proptest::collection::vec((val(), val(), val()), 0..4))
            .prop_map(|(base, path, build_id, segments)| Op::Module { base, path, build_id, segments }),
    ]
}

/// A native program's records: new call sites (a frame and its stack, small ids and
/// addresses, a few bytes each) among its allocations and frees.
fn site_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (0u64..3, 0x40_0000u64..0x40_1000, 1u64..300, 0u64..200).prop_map(|(dt, addr, size, stack)| {
            Op::Alloc { allocator: 0, dt, addr: addr << 4, size, stack }
        }),
        1 => (0u64..3, 0x40_0000u64..0x40_1000).prop_map(|(dt, addr)| Op::FreeAddr { python: false, dt, addr: addr << 4 }),
        2 => (0u64..200).prop_map(|id| Op::Stack { id, parent: 0, frame: id }),
        2 => (0u64..200, 0x40_0000u64..0x50_0000).prop_map(|(id, addr)| Op::NativeFrame { id, addr }),
    ]
}

/// An owned copy of a record, to compare with decoded ones.
fn owned(r: &Record<'_>) -> String {
    format!("{r:?}")
}

/// Encodes `ops`; returns the payload, the expected records (Debug text) and where each record
/// ends in the payload.
fn encode(ops: &[Op]) -> (Vec<u8>, Vec<String>, Vec<usize>) {
    let mut enc = Encoder::new();
    let mut buf = vec![0u8; 256 + ops.len() * 256];
    let mut pos = 0usize;
    let mut tick = 0u64;
    let mut allocs: Vec<u64> = Vec::new();
    let mut expected = Vec::new();
    let mut ends = Vec::new();
    let mut next_tick = |dt: u64| {
        tick = tick.saturating_add(dt);
        tick
    };
    for op in ops {
        let start = pos;
        // The room the encoder asks callers to keep free for this record.
        let room = match op {
            Op::Str { bytes, .. } => Encoder::table_record_len(bytes.len()),
            Op::ThreadName { name } => Encoder::table_record_len(name.len()),
            Op::Module {
                path,
                build_id,
                segments,
                ..
            } => Encoder::module_len(path, build_id, segments.len()),
            Op::Stack { .. } | Op::NativeFrame { .. } | Op::PythonFrame { .. } => {
                Encoder::table_record_len(0)
            }
            _ => MAX_EVENT_LEN,
        };
        let check_room = |pos: usize| {
            assert!(
                pos - start <= room,
                "{op:?} took {} bytes, room {room}",
                pos - start
            )
        };
        let rec: Record<'_> = match op.clone() {
            Op::Alloc {
                allocator,
                dt,
                addr,
                size,
                stack,
            } => {
                let tick = next_tick(dt);
                let allocator = Allocator::from_u8(allocator).expect("allocator");
                pos = enc.alloc(&mut buf, pos, allocator, tick, addr, size, stack);
                allocs.push(addr);
                Record::Alloc {
                    tick,
                    allocator,
                    addr,
                    size,
                    stack,
                }
            }
            Op::FreeAddr { python, dt, addr } => {
                let tick = next_tick(dt);
                pos = enc.free_addr(&mut buf, pos, python, tick, addr);
                Record::Free {
                    tick,
                    python,
                    addr,
                    object_type: 0,
                }
            }
            Op::TypedFree { dt, addr, ty } => {
                let tick = next_tick(dt);
                pos = enc.typed_free(&mut buf, pos, tick, addr, ty);
                Record::Free {
                    tick,
                    python: true,
                    addr,
                    object_type: ty,
                }
            }
            Op::FreeBack { python, dt, pick } => {
                if allocs.is_empty() {
                    continue;
                }
                let distance = pick % allocs.len() as u64 + 1;
                let addr = allocs[allocs.len() - distance as usize];
                assert_eq!(enc.alloc_count(), allocs.len() as u64);
                let tick = next_tick(dt);
                pos = enc.free_back(&mut buf, pos, python, tick, distance, addr);
                Record::Free {
                    tick,
                    python,
                    addr,
                    object_type: 0,
                }
            }
            Op::Munmap { dt, addr, len } => {
                let tick = next_tick(dt);
                pos = enc.munmap(&mut buf, pos, tick, addr, len);
                Record::Munmap { tick, addr, len }
            }
            Op::Mremap {
                dt,
                old,
                old_len,
                new,
                new_len,
                stack,
            } => {
                let tick = next_tick(dt);
                pos = enc.mremap(&mut buf, pos, tick, old, old_len, new, new_len, stack);
                Record::Mremap {
                    tick,
                    old_addr: old,
                    old_len,
                    new_addr: new,
                    new_len,
                    stack,
                }
            }
            Op::Marker { dt, code } => {
                let tick = next_tick(dt);
                let marker = Marker::from_code(code);
                pos = enc.marker(&mut buf, pos, tick, marker);
                Record::Marker { tick, marker }
            }
            Op::Stack { id, parent, frame } => {
                pos = enc.stack(&mut buf, pos, id, parent, frame);
                Record::Stack { id, parent, frame }
            }
            Op::NativeFrame { id, addr } => {
                pos = enc.native_frame(&mut buf, pos, id, addr);
                Record::NativeFrame { id, addr }
            }
            Op::PythonFrame {
                id,
                function,
                file,
                line,
            } => {
                pos = enc.python_frame(&mut buf, pos, id, function, file, line);
                Record::PythonFrame {
                    id,
                    function,
                    file,
                    line,
                }
            }
            Op::Str { id, bytes } => {
                pos = enc.string(&mut buf, pos, id, &bytes);
                check_room(pos);
                expected.push(owned(&Record::String { id, bytes: &bytes }));
                ends.push(pos);
                continue;
            }
            Op::ThreadName { name } => {
                pos = enc.thread_name(&mut buf, pos, &name);
                check_room(pos);
                expected.push(owned(&Record::ThreadName { name: &name }));
                ends.push(pos);
                continue;
            }
            Op::Module {
                base,
                path,
                build_id,
                segments,
            } => {
                let segments: Vec<Segment> = segments
                    .into_iter()
                    .map(|(vaddr, memsz, file_offset)| Segment {
                        vaddr,
                        memsz,
                        file_offset,
                    })
                    .collect();
                pos = enc.module(&mut buf, pos, base, &path, &build_id, &segments);
                check_room(pos);
                expected.push(owned(&Record::Module {
                    base,
                    path: &path,
                    build_id: &build_id,
                    segments,
                }));
                ends.push(pos);
                continue;
            }
        };
        check_room(pos);
        expected.push(owned(&rec));
        ends.push(pos);
    }
    buf.truncate(pos);
    (buf, expected, ends)
}

/// Decodes everything; returns the good records and whether decoding ended in an error.
fn decode(buf: &[u8]) -> (Vec<String>, bool) {
    let mut out = Vec::new();
    let mut failed = false;
    let mut n = 0usize;
    for r in Decoder::new(buf) {
        n += 1;
        assert!(n <= buf.len() + 1, "the decoder must consume bytes");
        match r {
            Ok(r) => out.push(owned(&r)),
            Err(_) => failed = true,
        }
    }
    (out, failed)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn records_round_trip(ops in proptest::collection::vec(op(), 0..200)) {
        let (buf, expected, _) = encode(&ops);
        let (got, failed) = decode(&buf);
        prop_assert!(!failed);
        prop_assert_eq!(got, expected);
    }

    #[test]
    fn truncated_payloads_give_a_prefix(ops in proptest::collection::vec(op(), 1..100),
                                        cut in any::<prop::sample::Index>()) {
        let (buf, expected, ends) = encode(&ops);
        let keep = cut.index(buf.len() + 1);
        let (got, failed) = decode(&buf[..keep]);
        let complete = ends.iter().filter(|&&e| e <= keep).count();
        // Every record that fits is read back; a record cut short is an error, never a wrong record.
        prop_assert_eq!(&got[..], &expected[..complete]);
        prop_assert_eq!(failed, keep != ends.get(complete.wrapping_sub(1)).copied().unwrap_or(0));
    }

    #[test]
    fn corrupted_payloads_never_panic(ops in proptest::collection::vec(op(), 1..100),
                                      flips in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..8)) {
        let (mut buf, expected, ends) = encode(&ops);
        prop_assume!(!buf.is_empty());
        let mut first = buf.len();
        for (at, x) in flips {
            let i = at.index(buf.len());
            first = first.min(i);
            buf[i] ^= x;
        }
        let (got, _) = decode(&buf);
        // Records that end before the first damaged byte are intact.
        let intact = ends.iter().filter(|&&e| e <= first).count();
        prop_assert!(got.len() >= intact);
        prop_assert_eq!(&got[..intact], &expected[..intact]);
    }

    #[test]
    fn random_payloads_never_panic(buf in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode(&buf);
        let _ = Trailer::decode(&buf);
        let _ = ChunkHeader::decode(&buf);
        let _ = FileHeader::decode(&buf);
    }

    #[test]
    fn trailer_round_trip(v in proptest::array::uniform6(any::<u64>())) {
        let t = Trailer {
            end_mono_ns: v[0],
            end_tick: v[1],
            records_written: v[2],
            records_dropped: v[3],
            flags: v[4],
            threads: v[5],
        };
        let mut buf = [0u8; Trailer::MAX_LEN];
        let n = t.encode(&mut buf);
        prop_assert_eq!(Trailer::decode(&buf[..n]), Some(t));
    }

    #[test]
    fn chunk_header_round_trip(kind in 1u8..=4, zstd in any::<bool>(), a in any::<[u32; 6]>(),
                               t in any::<[u64; 4]>(), flags in any::<u16>(), crc in any::<u32>()) {
        let h = ChunkHeader {
            kind: ChunkKind::from_u8(kind).expect("kind"),
            codec: if zstd { ChunkCodec::Zstd } else { ChunkCodec::Raw },
            flags,
            payload_crc: crc,
            thread_serial: a[0],
            tid: a[1],
            seq: a[2],
            stored_len: a[3] % (64 << 20),
            raw_len: a[4] % (64 << 20),
            record_count: a[5],
            first_tick: t[0],
            last_tick: t[1],
            flush_mono_ns: t[2],
            flush_tick: t[3],
        };
        let b = h.encode();
        prop_assert_eq!(ChunkHeader::decode(&b), Some(h));
        // Any single flipped bit of a covered field is caught.
        for i in 0..64usize {
            if h.kind == ChunkKind::Staging && (24..48).contains(&i) {
                continue;
            }
            let mut c = b;
            c[i] ^= 1 << (i % 8);
            prop_assert_eq!(ChunkHeader::decode(&c), None);
        }
    }

    #[test]
    fn file_header_round_trip(pid in any::<u32>(), ppid in any::<u32>(), v in any::<[u64; 4]>(),
                              tsc in proptest::option::of(0u8..64),
                              argv in proptest::collection::vec(bytes(), 0..6), exe in bytes()) {
        let h = FileHeader {
            major: MAJOR,
            minor: MINOR,
            pid,
            ppid,
            start_realtime_ns: v[0],
            start_mono_ns: v[1],
            start_tick: v[2],
            tick_source: match tsc {
                Some(shift) => TickSource::Tsc { shift },
                None => TickSource::MonotonicNs,
            },
            options: v[3],
            argv,
            exe,
            tool_version: b"1.2.3".to_vec(),
        };
        let bytes = h.encode();
        let (back, len) = FileHeader::decode(&bytes).expect("decodes");
        prop_assert_eq!(back, h);
        prop_assert_eq!(len, bytes.len());
        for cut in 0..bytes.len() {
            prop_assert!(FileHeader::decode(&bytes[..cut]).is_err());
        }
    }
}

/// The worked example of docs/FORMAT.md, byte for byte.
#[test]
fn documented_example() {
    let mut buf = [0u8; 64];
    let mut e = Encoder::new();
    let p = e.alloc(&mut buf, 0, Allocator::Malloc, 1000, 0x5000, 32, 1);
    let p = e.free_back(&mut buf, p, false, 1003, 1, 0x5000);
    let p = e.free_addr(&mut buf, p, false, 1003, 0x5040);
    let p = e.marker(&mut buf, p, 1010, Marker::ExitSnapshot);
    let p = e.stack(&mut buf, p, 1, 0, 1);
    let p = e.native_frame(&mut buf, p, 1, 0x401136);
    assert_eq!(
        &buf[..p],
        &[
            0x07, 0xe1, 0x07, 0x80, 0xc0, 0x02, 0x20, 0x01, // alloc
            0x83, 0x01, // free by back-reference
            0x88, 0x80, 0x01, // free by address
            0xf7, 0x00, 0x01, // exit-snapshot marker
            0xc0, 0x01, 0x00, 0x01, // stack
            0xc8, 0x01, 0xb6, 0xa2, 0x80, 0x02, // native frame
        ]
    );
}

mod columns {
    use super::*;
    use memtrace_format::columns::{
        self, join, join_prefix, read_frames, split, staging_streams, stream, write_frame_table,
        ColumnWriter, Layout,
    };

    fn refs(streams: &[Vec<u8>; stream::COUNT]) -> [&[u8]; stream::COUNT] {
        std::array::from_fn(|i| streams[i].as_slice())
    }

    /// The records of a raw payload, as Debug text.
    fn records(raw: &[u8]) -> Vec<String> {
        Decoder::new(raw)
            .map(|r| owned(&r.expect("joined records decode")))
            .collect()
    }

    /// Writes the records of each raw payload as one chunk of a single writer (as a tracker
    /// thread does); returns each chunk's streams.
    fn write_chunks(raws: &[&[u8]], buffer: usize) -> Vec<[Vec<u8>; stream::COUNT]> {
        let mut w = ColumnWriter::new(Layout::for_buffer(buffer));
        let mut buf = vec![0u8; buffer];
        raws.iter()
            .map(|raw| {
                w.start(&mut buf, true);
                for rec in Decoder::new(raw) {
                    assert!(w.record(&mut buf, &rec.expect("raw decodes")), "room");
                }
                w.streams(&buf).map(|s| s.to_vec())
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn written_streams_join_into_the_same_records(a in proptest::collection::vec(op(), 0..200),
                                                      b in proptest::collection::vec(op(), 0..200)) {
            // One writer for two chunks: the second chunk must not lean on the first one's
            // candidates or allocations.
            let (ra, ea, _) = encode(&a);
            let (rb, eb, _) = encode(&b);
            let chunks = write_chunks(&[&ra, &rb], 1 << 20);
            for (streams, expected) in chunks.iter().zip([ea, eb]) {
                let joined = join(&refs(streams)).expect("written streams join");
                prop_assert_eq!(records(&joined), expected);
            }
        }

        #[test]
        fn any_index_size_keeps_the_records(a in proptest::collection::vec(op(), 0..300),
                                            b in proptest::collection::vec(op(), 0..300),
                                            bits in proptest::collection::vec(0u32..24, 2)) {
            // The index of recent addresses only guesses: whatever part of it is used, even
            // changed between chunks (entries then sit at other slots), the records are the same.
            let mut w = ColumnWriter::new(Layout::for_buffer(1 << 20));
            let mut buf = vec![0u8; 1 << 20];
            for (ops, bits) in [a, b].iter().zip(bits) {
                let (raw, expected, _) = encode(ops);
                w.set_model_bits(bits);
                w.start(&mut buf, true);
                for rec in Decoder::new(&raw) {
                    prop_assert!(w.record(&mut buf, &rec.expect("raw decodes")), "room");
                }
                let joined = join(&w.streams(&buf)).expect("written streams join");
                prop_assert_eq!(records(&joined), expected);
            }
        }

        #[test]
        fn a_writer_moved_to_other_buffers_keeps_the_records(
                ops in proptest::collection::vec(op(), 1..400),
                sizes in proptest::collection::vec(600usize..70_000, 1..6)) {
            // As a tracker thread whose staging area grows: each time the buffer is full the
            // chunk ends and the writer moves to the next buffer size, laid out from what the
            // chunk so far used; every record lands in exactly one chunk, in order.
            let (raw, expected, _) = encode(&ops);
            let mut w = ColumnWriter::new(Layout::for_buffer(sizes[0]));
            let mut buf = vec![0u8; sizes[0]];
            let mut next = sizes.iter().cycle().skip(1);
            let mut got = Vec::new();
            w.start(&mut buf, true);
            let mut recs = Decoder::new(&raw).peekable();
            let mut empty_starts = 0;
            while let Some(rec) = recs.peek() {
                let rec = rec.as_ref().expect("raw decodes");
                if w.record(&mut buf, rec) {
                    recs.next();
                    empty_starts = 0;
                    continue;
                }
                // Full: keep the chunk, move to the next size (a record larger than a whole
                // buffer would come back here with the chunk empty each time).
                got.extend(records(&join(&w.streams(&buf)).expect("written streams join")));
                empty_starts += 1;
                prop_assume!(empty_starts <= sizes.len());
                let &len = next.next().expect("cycle");
                w.set_buffer_len(len);
                buf = vec![0u8; len];
                w.start(&mut buf, true);
            }
            got.extend(records(&join(&w.streams(&buf)).expect("written streams join")));
            prop_assert_eq!(got, expected);
        }

        #[test]
        fn a_full_staging_area_keeps_every_record_written(ops in proptest::collection::vec(op(), 1..400),
                                                          size in 600usize..4000,
                                                          cut in any::<prop::sample::Index>()) {
            // A small area fills: the writer refuses the record that would not fit, and what it
            // took reads back from the directory, also with TYPE cut short as after a kill in
            // the middle of a record.
            let (raw, expected, _) = encode(&ops);
            let layout = Layout::for_buffer(size);
            let mut buf = vec![0u8; layout.buffer_len()];
            let mut w = ColumnWriter::new(layout);
            w.start(&mut buf, false);
            let mut taken = 0;
            for rec in Decoder::new(&raw) {
                if !w.record(&mut buf, &rec.expect("raw decodes")) {
                    break;
                }
                taken += 1;
            }
            prop_assert_eq!(w.records(), taken);
            let streams = staging_streams(&buf, taken).expect("directory reads");
            prop_assert_eq!(records(&join_prefix(&streams).expect("joins")), &expected[..taken]);
            let written = w.streams(&buf);
            prop_assert_eq!(records(&join(&written).expect("joins")), &expected[..taken]);
            let k = cut.index(taken + 1);
            let streams = staging_streams(&buf, k).expect("directory reads");
            prop_assert_eq!(records(&join_prefix(&streams).expect("joins")), &expected[..k]);
        }

        #[test]
        fn table_records_reserved_together_all_fit_or_none_is_written(
                ops in proptest::collection::vec(prop_oneof![1 => op(), 4 => site_op()], 1..1500),
                chunks in proptest::collection::vec(
                    (proptest::array::uniform10(0usize..400), 3500usize..6000), 1..6),
                runs in proptest::collection::vec(1usize..4, 1..8)) {
            // The tracker writes some table records after one reservation for all of them (a
            // native call site's frame and stack): runs of consecutive table records go in
            // together or wait for the next chunk, and every chunk joins exactly, whichever
            // stream fills first (each chunk's regions sized as if a chunk before had used
            // `chunks[i].0`).
            let (raw, expected, _) = encode(&ops);
            let recs: Vec<Record> = Decoder::new(&raw).map(|r| r.expect("raw decodes")).collect();
            // TYPE's region the smallest in some chunks: it fills while the others have room.
            let mut layouts = chunks.iter().enumerate().cycle().map(|(k, (used, len))| {
                let mut used = *used;
                if k % 2 == 0 {
                    used[stream::TYPE] = 0;
                }
                Layout::fitted(&used, *len)
            });
            let mut next_run = runs.iter().cycle();
            let start = |layout: Layout| {
                let mut w = ColumnWriter::new(layout);
                let mut buf = vec![0u8; layout.buffer_len()];
                w.start(&mut buf, false);
                (w, buf)
            };
            let (mut w, mut buf) = start(layouts.next().expect("cycle"));
            let mut got = Vec::new();
            let (mut i, mut empty_starts) = (0, 0);
            while i < recs.len() {
                // The run of table records starting here (an event alone).
                let want = *next_run.next().expect("cycle");
                let run = recs[i..]
                    .iter()
                    .take(want)
                    .take_while(|r| ColumnWriter::table_room(r).is_some())
                    .count();
                let fits = if run == 0 {
                    w.record(&mut buf, &recs[i])
                } else {
                    let n = recs[i..i + run].iter().filter_map(ColumnWriter::table_room).sum();
                    w.reserve_tables(run, n) && {
                        for r in &recs[i..i + run] {
                            w.write(&mut buf, r);
                        }
                        true
                    }
                };
                if fits {
                    i += run.max(1);
                    empty_starts = 0;
                    continue;
                }
                got.extend(records(&join(&w.streams(&buf)).expect("written streams join")));
                empty_starts += 1;
                prop_assume!(empty_starts <= chunks.len());
                (w, buf) = start(layouts.next().expect("cycle"));
            }
            got.extend(records(&join(&w.streams(&buf)).expect("written streams join")));
            prop_assert_eq!(got, expected);
        }

        #[test]
        fn damaged_streams_never_panic(ops in proptest::collection::vec(op(), 1..100),
                                       which in 0..stream::COUNT,
                                       flips in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..4),
                                       cut in any::<prop::sample::Index>()) {
            let (raw, _, _) = encode(&ops);
            let mut streams = split(&raw).expect("an encoder's payload splits");
            let mut damaged = streams.clone();
            if !damaged[which].is_empty() {
                for (at, x) in flips {
                    let i = at.index(damaged[which].len());
                    damaged[which][i] ^= x;
                }
            }
            let _ = join(&refs(&damaged));
            let _ = join_prefix(&refs(&damaged));
            let keep = cut.index(streams[which].len() + 1);
            streams[which].truncate(keep);
            let _ = join(&refs(&streams));
        }

        #[test]
        fn random_directories_never_panic(buf in proptest::collection::vec(any::<u8>(), 0..400),
                                          records in 0usize..500) {
            if let Ok(streams) = staging_streams(&buf, records) {
                let _ = join_prefix(&streams);
            }
        }

        #[test]
        fn random_frame_tables_never_panic(buf in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = read_frames(&buf, 1 << 16);
        }
    }

    /// A sink that logs what it is handed, pairs apart when `pairs` (else as the default: an
    /// allocation, then a free).
    struct Log {
        pairs: bool,
        lines: Vec<String>,
    }

    impl<'a> columns::RecordSink<'a> for Log {
        fn alloc(&mut self, tick: u64, allocator: Allocator, addr: u64, size: u64, stack: u64) {
            let a = allocator as u8;
            self.lines
                .push(format!("alloc {tick} {a} {addr:#x} {size} {stack}"));
        }
        fn free(&mut self, tick: u64, python: bool, addr: u64, back: Option<u64>, ty: u64) {
            self.lines
                .push(format!("free {tick} {python} {addr:#x} {back:?} {ty}"));
        }
        fn other(&mut self, rec: Record<'a>) {
            self.lines.push(owned(&rec));
        }
        fn alloc_freed(&mut self, b: columns::AllocFreed) {
            if !self.pairs {
                self.alloc(b.tick, b.allocator, b.addr, b.size, b.stack);
                return self.free(b.freed, b.python, b.addr, None, b.object_type);
            }
            let (t, a, f, p, ty) = (b.tick, b.allocator as u8, b.freed, b.python, b.object_type);
            let (addr, size, stack) = (b.addr, b.size, b.stack);
            self.lines.push(format!(
                "pair {t} {a} {addr:#x} {size} {stack} {f} {p} {ty}"
            ));
        }
    }

    /// A sink that asks for runs of pairs the short way (`RecordSink::PAIR_RUNS`), handing all
    /// on to `Log`.
    struct Runs(Log);

    impl<'a> columns::RecordSink<'a> for Runs {
        const PAIR_RUNS: bool = true;
        fn alloc(&mut self, tick: u64, allocator: Allocator, addr: u64, size: u64, stack: u64) {
            self.0.alloc(tick, allocator, addr, size, stack);
        }
        fn free(&mut self, tick: u64, python: bool, addr: u64, back: Option<u64>, ty: u64) {
            self.0.free(tick, python, addr, back, ty);
        }
        fn other(&mut self, rec: Record<'a>) {
            self.0.other(rec);
        }
        fn alloc_freed(&mut self, b: columns::AllocFreed) {
            self.0.alloc_freed(b);
        }
    }

    #[test]
    fn an_allocation_freed_by_the_next_record_comes_as_a_pair() {
        // Most blocks are freed right after their allocation: the reader hands the two over at
        // once when the next record is a free coded by address at the same address, and as two
        // records otherwise.
        let (a, b, c) = (
            0x7f00_0000_1000u64,
            0x7f00_0000_2000u64,
            0x7f00_0000_3000u64,
        );
        let mut enc = Encoder::new();
        let mut raw = vec![0u8; 1024];
        let mut pos = enc.alloc(&mut raw, 0, Allocator::Malloc, 1, a, 100, 1);
        pos = enc.free_addr(&mut raw, pos, false, 2, a); // a pair
        pos = enc.alloc(&mut raw, pos, Allocator::Calloc, 3, b, 40, 2);
        pos = enc.free_addr(&mut raw, pos, false, 4, c); // another address: two records
        pos = enc.alloc(&mut raw, pos, Allocator::PymallocMalloc, 5, c, 56, 3);
        pos = enc.typed_free(&mut raw, pos, 9, c, 77); // a pair, with the object's type
        pos = enc.alloc(&mut raw, pos, Allocator::PymallocCalloc, 10, a, 24, 4);
        pos = enc.free_addr(&mut raw, pos, true, 11, a); // pymalloc's free: a pair
        pos = enc.alloc(&mut raw, pos, Allocator::Malloc, 12, b, 8, 5);
        pos = enc.free_back(&mut raw, pos, false, 13, 1, b); // in columns, by address: a pair
        pos = enc.alloc(&mut raw, pos, Allocator::Malloc, 14, a, 16, 6);
        pos = enc.marker(&mut raw, pos, 15, Marker::ScriptStart);
        pos = enc.free_addr(&mut raw, pos, false, 16, a); // not the next record: two
        pos = enc.alloc(&mut raw, pos, Allocator::Malloc, 17, c, 32, 7); // the last record
        raw.truncate(pos);
        let streams = split(&raw).expect("splits");
        let mut log = Log {
            pairs: true,
            lines: Vec::new(),
        };
        columns::each_record(&refs(&streams), true, &mut log).expect("reads");
        let (m, cl, pyo, pym) = (
            Allocator::Malloc as u8,
            Allocator::Calloc as u8,
            Allocator::PymallocMalloc as u8,
            Allocator::PymallocCalloc as u8,
        );
        let want = vec![
            format!("pair 1 {m} {a:#x} 100 1 2 false 0"),
            format!("alloc 3 {cl} {b:#x} 40 2"),
            format!("free 4 false {c:#x} None 0"),
            format!("pair 5 {pyo} {c:#x} 56 3 9 true 77"),
            format!("pair 10 {pym} {a:#x} 24 4 11 true 0"),
            format!("pair 12 {m} {b:#x} 8 5 13 false 0"),
            format!("alloc 14 {m} {a:#x} 16 6"),
            owned(&Record::Marker {
                tick: 15,
                marker: Marker::ScriptStart,
            }),
            format!("free 16 false {a:#x} None 0"),
            format!("alloc 17 {m} {c:#x} 32 7"),
        ];
        assert_eq!(log.lines, want);
        // Taken apart (the default), the pairs are the records as written.
        let mut apart = Log {
            pairs: false,
            lines: Vec::new(),
        };
        columns::each_record(&refs(&streams), true, &mut apart).expect("reads");
        let mut plain = Log {
            pairs: false,
            lines: Vec::new(),
        };
        for rec in Decoder::new(&raw) {
            columns::RecordSink::record(&mut plain, rec.expect("decodes"));
        }
        assert_eq!(apart.lines, plain.lines);
        assert_eq!(apart.lines.len(), 14);
    }

    /// The sink calls a reader should make for raw records: an allocation followed at once by
    /// a free at its address is a pair (what `each_record` hands over in columns, where frees
    /// by distance are written by address too).
    fn expected_calls(raw: &[u8]) -> Vec<String> {
        let recs: Vec<Record> = Decoder::new(raw).map(|r| r.expect("decodes")).collect();
        let mut log = Log {
            pairs: true,
            lines: Vec::new(),
        };
        let mut i = 0;
        while i < recs.len() {
            if let (
                Record::Alloc {
                    tick,
                    allocator,
                    addr,
                    size,
                    stack,
                },
                Some(Record::Free {
                    tick: freed,
                    python,
                    addr: at,
                    object_type,
                }),
            ) = (&recs[i], recs.get(i + 1))
            {
                if at == addr {
                    columns::RecordSink::alloc_freed(
                        &mut log,
                        columns::AllocFreed {
                            tick: *tick,
                            allocator: *allocator,
                            addr: *addr,
                            size: *size,
                            stack: *stack,
                            freed: *freed,
                            python: *python,
                            object_type: *object_type,
                        },
                    );
                    i += 2;
                    continue;
                }
            }
            columns::RecordSink::record(&mut log, recs[i].clone());
            i += 1;
        }
        log.lines
    }

    /// Runs of allocations each freed by the next record, with what ends a run: another
    /// record between (a marker, an allocation kept, a free of another block), one timed
    /// record alone (the next pairs' deltas start mid-byte), a long tick delta, an address or
    /// stack that takes two bytes or more, a size of 32 KiB or more, a free found further
    /// back, a typed free, an escaped address delta.
    fn pair_ops() -> impl Strategy<Value = Vec<Op>> {
        let dt = prop_oneof![8 => 0u64..7, 1 => 7u64..300];
        let addr = prop_oneof![
            8 => (0u64..48).prop_map(|k| 0x5555_0000_1000 + 48 * k),
            1 => 0x7f00_0000_0000u64..0x7f00_0100_0000,
            1 => any::<u64>(),
        ];
        let size = prop_oneof![8 => 1u64..600, 1 => 600u64..40_000, 1 => val()];
        let stack = prop_oneof![8 => 0u64..128, 1 => 128u64..20_000, 1 => val()];
        let pair = (
            0u8..12,
            dt.clone(),
            addr.clone(),
            size,
            stack,
            any::<bool>(),
            dt.clone(),
        )
            .prop_map(|(allocator, dt, addr, size, stack, python, dt2)| {
                vec![
                    Op::Alloc {
                        allocator,
                        dt,
                        addr,
                        size,
                        stack,
                    },
                    Op::FreeAddr {
                        python,
                        dt: dt2,
                        addr,
                    },
                ]
            });
        let piece = prop_oneof![
            12 => pair,
            1 => (0u8..12, dt.clone(), addr.clone(), 1u64..600, 0u64..128).prop_map(
                |(allocator, dt, addr, size, stack)| vec![Op::Alloc { allocator, dt, addr, size, stack }]
            ),
            1 => (any::<bool>(), dt.clone(), addr.clone())
                .prop_map(|(python, dt, addr)| vec![Op::FreeAddr { python, dt, addr }]),
            1 => (any::<bool>(), dt.clone(), any::<u64>())
                .prop_map(|(python, dt, pick)| vec![Op::FreeBack { python, dt, pick }]),
            1 => (dt.clone(), addr, 1u64..1000).prop_map(|(dt, addr, ty)| vec![Op::TypedFree { dt, addr, ty }]),
            1 => (dt, 0u64..4).prop_map(|(dt, code)| vec![Op::Marker { dt, code }]),
        ];
        proptest::collection::vec(piece, 0..120)
            .prop_map(|pieces| pieces.into_iter().flatten().collect())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        #[test]
        fn runs_of_pairs_read_as_their_records(ops in pair_ops()) {
            let (raw, expected, _) = encode(&ops);
            let streams = split(&raw).expect("an encoder's payload splits");
            // Raw records rebuilt: every field of every record as written.
            let joined = join(&refs(&streams)).expect("streams join");
            prop_assert_eq!(records(&joined), expected);
            // Handed over: pairs as pairs, the rest one by one, in order, whether runs of
            // pairs take the short way or not.
            let mut log = Log { pairs: true, lines: Vec::new() };
            columns::each_record(&refs(&streams), true, &mut log).expect("reads");
            prop_assert_eq!(&log.lines, &expected_calls(&raw));
            let mut runs = Runs(Log { pairs: true, lines: Vec::new() });
            columns::each_record(&refs(&streams), true, &mut runs).expect("reads");
            prop_assert_eq!(runs.0.lines, log.lines);
            // Every stream cut short anywhere: an error, never a panic or a record made up.
            for s in 0..stream::COUNT {
                for cut in [1, 2, 5] {
                    let mut short = streams.clone();
                    let len = short[s].len();
                    if len < cut {
                        continue;
                    }
                    short[s].truncate(len - cut);
                    let mut log = Runs(Log { pairs: false, lines: Vec::new() });
                    let read = columns::each_record(&refs(&short), true, &mut log);
                    prop_assert!(read.is_err(), "stream {} cut by {}", s, cut);
                    let want = expected_calls_apart(&raw);
                    prop_assert!(want.starts_with(&log.0.lines), "stream {} cut by {}: a record made up", s, cut);
                }
            }
        }
    }

    /// The sink calls for raw records, each on its own.
    fn expected_calls_apart(raw: &[u8]) -> Vec<String> {
        let mut log = Log {
            pairs: false,
            lines: Vec::new(),
        };
        for rec in Decoder::new(raw) {
            columns::RecordSink::record(&mut log, rec.expect("decodes"));
        }
        log.lines
    }

    #[test]
    fn reused_addresses_take_one_byte() {
        // malloc(100) at A, free(A), malloc(40) at A again, then one at the end of that block.
        let a = 0x5555_0000_1000u64;
        let mut enc = Encoder::new();
        let mut raw = vec![0u8; 256];
        let mut pos = enc.alloc(&mut raw, 0, Allocator::Malloc, 1, a, 100, 1);
        pos = enc.free_addr(&mut raw, pos, false, 2, a);
        pos = enc.alloc(&mut raw, pos, Allocator::Malloc, 3, a, 40, 1);
        pos = enc.alloc(&mut raw, pos, Allocator::Malloc, 4, a + 48, 40, 1);
        raw.truncate(pos);
        let streams = split(&raw).expect("splits");
        // The first address is a delta; the second names the freed block (distance 0, the
        // latest candidate); the third the end of the second block (glibc: 40 + 8 → 48). The
        // free names the latest allocation (distance 1, code 3).
        let addr = &streams[stream::ADDR];
        assert_eq!(&addr[addr.len() - 2..], &[1, 1]);
        assert_eq!(streams[stream::FREE_ADDR], vec![3]);
        assert_eq!(streams[stream::SIZE_LO], vec![100, 40, 40]);
        assert_eq!(streams[stream::SIZE_HI], vec![0, 0, 0]);
        assert_eq!(streams[stream::DELTA], vec![1 | 1 << 3, 1 | 1 << 3]);
        assert_eq!(join(&refs(&streams)), Ok(raw));
    }

    #[test]
    fn frees_by_address_find_their_allocation() {
        let (a, b) = (0x7000_0000u64, 0x7100_0000u64);
        let mut enc = Encoder::new();
        let mut raw = vec![0u8; 256];
        let mut pos = enc.alloc(&mut raw, 0, Allocator::Malloc, 1, a, 10, 1);
        pos = enc.alloc(&mut raw, pos, Allocator::Calloc, 2, b, 20, 1);
        pos = enc.free_addr(&mut raw, pos, false, 3, a);
        pos = enc.free_addr(&mut raw, pos, true, 4, 0x1234);
        raw.truncate(pos);
        let streams = split(&raw).expect("splits");
        // a is the second most recent allocation: distance 2, code 5; 0x1234 is unknown: the
        // zigzag delta from a, plus one, doubled.
        let unknown = (((0x1234i64 - a as i64) << 1) ^ ((0x1234i64 - a as i64) >> 63)) as u64;
        let mut expected = vec![5u8];
        let mut v = (unknown + 1) * 2;
        while v >= 0x80 {
            expected.push(v as u8 | 0x80);
            v >>= 7;
        }
        expected.push(v as u8);
        assert_eq!(streams[stream::FREE_ADDR], expected);
        assert_eq!(streams[stream::TYPE], vec![0, 1, 17, 19]);
        assert_eq!(join(&refs(&streams)), Ok(raw));
    }

    #[test]
    fn an_exact_join_refuses_bytes_its_records_leave_over() {
        // Three timed records: DELTA's second byte holds one delta, its upper half empty.
        let mut enc = Encoder::new();
        let mut raw = vec![0u8; 256];
        let mut pos = enc.alloc(&mut raw, 0, Allocator::Malloc, 1, 0x7000_0000, 10, 1);
        pos = enc.alloc(&mut raw, pos, Allocator::Malloc, 2, 0x7100_0000, 300, 2);
        pos = enc.free_addr(&mut raw, pos, false, 3, 0x7000_0000);
        raw.truncate(pos);
        let streams = split(&raw).expect("splits");
        assert_eq!(join(&refs(&streams)), Ok(raw.clone()));
        for s in [
            stream::ADDR,
            stream::SIZE_HI,
            stream::STACK,
            stream::FREE_ADDR,
        ] {
            let mut more = streams.clone();
            more[s].push(0);
            let err = join(&refs(&more)).expect_err("a byte left over");
            assert_eq!(
                err.what, "columns: a stream has bytes left over",
                "stream {s}"
            );
            // The prefix join of a staging area reads past them.
            assert_eq!(join_prefix(&refs(&more)), Ok(raw.clone()));
        }
        let mut half = streams.clone();
        *half[stream::DELTA].last_mut().expect("a delta byte") |= 1 << 3;
        let err = join(&refs(&half)).expect_err("a delta left over");
        assert_eq!(err.what, "columns: a tick delta left over");
        let mut short = streams.clone();
        short[stream::STACK].pop();
        let err = join(&refs(&short)).expect_err("a stack short");
        assert_eq!(err.what, "columns: stack stream runs short");
    }

    #[test]
    fn a_staging_directory_outside_its_buffer_is_refused() {
        let layout = Layout::for_buffer(4096);
        let mut buf = vec![0u8; layout.buffer_len()];
        let mut w = ColumnWriter::new(layout);
        w.start(&mut buf, false);
        assert!(w.reserve_event());
        w.alloc(&mut buf, Allocator::Malloc, 5, 0x1000, 24, 1);
        let streams = staging_streams(&buf, 1).expect("reads");
        let joined = join_prefix(&streams).expect("joins");
        let expected = Record::Alloc {
            tick: 5,
            allocator: Allocator::Malloc,
            addr: 0x1000,
            size: 24,
            stack: 1,
        };
        assert_eq!(records(&joined), vec![owned(&expected)]);
        assert!(staging_streams(&buf[..buf.len() / 2], 1).is_err());
    }

    #[test]
    fn frame_tables_round_trip() {
        let lens: [(usize, usize); stream::COUNT] = std::array::from_fn(|i| (i * 3, i * 2));
        let mut buf = vec![0u8; columns::MAX_FRAME_TABLE];
        let n = write_frame_table(&lens, &mut buf);
        buf.truncate(n);
        let total: usize = lens.iter().map(|l| l.1).sum();
        buf.extend((0..total).map(|i| i as u8));
        let frames = read_frames(&buf, 1 << 16).expect("a table just written reads");
        let mut at = n;
        for (f, &(raw, stored)) in frames.iter().zip(lens.iter()) {
            assert_eq!(f.raw_len, raw);
            assert_eq!(f.stored, &buf[at..at + stored]);
            assert_eq!(f.is_compressed(), raw != stored);
            at += stored;
        }
        assert!(read_frames(&buf[..buf.len() - 1], 1 << 16).is_err());
        assert!(
            read_frames(&buf, 10).is_err(),
            "raw lengths above the limit are refused"
        );
        // The limit is on the streams together: each under it is not enough.
        let raw_total: usize = lens.iter().map(|l| l.0).sum();
        assert!(read_frames(&buf, raw_total).is_ok());
        assert!(read_frames(&buf, raw_total - 1).is_err());
    }
}
