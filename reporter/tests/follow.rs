//! Following a capture as it grows (`memtrace live`): the file is written step by step as the
//! tracker writes it (a staging area filled in place, flushed as an Events chunk, a second
//! thread, the trailer in its place), and after each poll the live heap is what a model says.
//! A poll with nothing new costs the same however long the capture has grown.

use crate::common::{write_bytes, CaptureBuilder, Chunk};
use memtrace_format::Allocator;
use memtrace_reporter::analysis::live::{Live, Moment};
use memtrace_reporter::analysis::sets::AllocSet;
use memtrace_reporter::capture::follow::TRAILER_SLOT;
use std::collections::{BTreeMap, HashMap, VecDeque};

/// A builder with the trailer's place reserved, as the tracker leaves it.
fn start() -> CaptureBuilder {
    let mut b = CaptureBuilder::new();
    b.zeros(TRAILER_SLOT);
    b
}

#[test]
fn live_follows_staging_flushes_threads_and_the_trailer() {
    // Step 1: thread 1's staging area (4 KiB) holds two mallocs.
    let mut step = Chunk::new();
    step.malloc(10, 0x1000, 100).malloc(20, 0x2000, 200);
    let mut b = start();
    let staging_at = b.staging(1, 101, 0, &step, 4096, &[]);
    let path = write_bytes("follow", &b.bytes());
    let mut live = Live::open(&path, true).expect("opens");
    let p = live.poll().expect("poll");
    assert_eq!(p.events, 2);
    assert_eq!(live.live_bytes(), 300);
    assert!(!live.finished());

    // Step 2: the same area, a free added in place.
    step.free(30, 0x1000);
    let mut b2 = start();
    assert_eq!(b2.staging(1, 101, 0, &step, 4096, &[]), staging_at);
    std::fs::write(&path, b2.bytes()).expect("write");
    assert_eq!(live.poll().expect("poll").events, 1);
    assert_eq!(live.live_bytes(), 200);

    // Step 3: the area is flushed as Events chunk seq 0 (the same records: nothing new) and
    // starts seq 1 empty; thread 2 writes a chunk of its own.
    let mut b3 = start();
    let empty = Chunk::new();
    b3.staging(1, 101, 1, &empty, 4096, &[]);
    b3.events(1, 101, 0, &step);
    let mut other = Chunk::new();
    other.malloc(40, 0x3000, 5000);
    b3.events(2, 102, 0, &other);
    std::fs::write(&path, b3.bytes()).expect("write");
    let p = live.poll().expect("poll");
    assert_eq!((p.events, p.new_threads), (1, 1));
    assert_eq!(live.live_bytes(), 5200);
    assert_eq!(live.peak().bytes, 5200);
    // Thread filter: the second thread alone.
    assert_eq!(live.set(Moment::Now, Some(1)).total().bytes, 5000);

    // Step 4: thread 1 frees 0x2000 in its seq-1 area; the trailer comes.
    let mut seq1 = Chunk::new();
    seq1.free(50, 0x2000);
    let mut file = b3.bytes();
    // The staging area of step 3 rewritten with seq 1's record, and the trailer in its place.
    let mut b5 = start();
    b5.staging(1, 101, 1, &seq1, 4096, &[]);
    let staging_bytes = &b5.file[staging_at..];
    file[staging_at..staging_at + staging_bytes.len()].copy_from_slice(staging_bytes);
    let mut t = CaptureBuilder::new();
    let trailer_at = t.trailer(60);
    let trailer = t.file[trailer_at..].to_vec();
    file[trailer_at..trailer_at + trailer.len()].copy_from_slice(&trailer);
    std::fs::write(&path, &file).expect("write");
    assert_eq!(live.poll().expect("poll").events, 1);
    assert_eq!(live.live_bytes(), 5000);
    assert!(live.finished());
    // Live now: the second thread's block; at the peak: both blocks.
    assert_eq!(live.set(Moment::Now, None).total().bytes, 5000);
    assert_eq!(live.set(Moment::Peak, None).total().bytes, 5200);
}

#[test]
fn a_quiet_poll_costs_the_same_however_long_the_capture() {
    let mut b = start();
    let add = |b: &mut CaptureBuilder, from: u32, n: u32| {
        for seq in from..from + n {
            let mut c = Chunk::new();
            let t = u64::from(seq) * 10 + 1;
            c.malloc(t, 0x10_0000 + u64::from(seq) * 64, 32)
                .free(t + 1, 0x10_0000 + u64::from(seq) * 64);
            b.events(1, 101, seq, &c);
        }
    };
    add(&mut b, 0, 200);
    let path = write_bytes("follow_quiet", &b.bytes());
    let mut live = Live::open(&path, true).expect("opens");
    // A poll takes a bounded share of a backlog: polls until caught up.
    let drain = |live: &mut Live| {
        let mut events = 0;
        let mut polls = 0;
        loop {
            let p = live.poll().expect("poll");
            events += p.events;
            polls += 1;
            if !p.behind {
                return (events, polls);
            }
        }
    };
    assert_eq!(drain(&mut live), (400, 7));
    let quiet = |live: &mut Live| {
        let before = live.follower().bytes_read;
        assert_eq!(live.poll().expect("poll").events, 0);
        live.follower().bytes_read - before
    };
    let short = quiet(&mut live);
    add(&mut b, 200, 2000);
    std::fs::write(&path, b.bytes()).expect("write");
    let (events, polls) = drain(&mut live);
    assert_eq!(events, 4000);
    assert!(polls > 1, "{polls}");
    let long = quiet(&mut live);
    assert_eq!(short, long);
    assert!(short < 1024, "{short}");
    assert_eq!(live.live_bytes(), 0);
}

/// A small deterministic generator (no dependency needed).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// A group's key (stack, thread index) and its (bytes, count).
type Groups = HashMap<(u64, u32), (u64, u64)>;
/// Live blocks by address, oldest first: (size, group key).
type ByAddress = HashMap<u64, VecDeque<(u64, (u64, u32))>>;

/// The live heap by a plain map: blocks by address (oldest first), live and at-the-peak sums
/// by (stack, thread index), as the live view must show them.
#[derive(Default)]
struct Model {
    blocks: ByAddress,
    groups: Groups,
    total: (u64, u64),
    peak: (u64, u64),
    peak_groups: Groups,
}

impl Model {
    fn alloc(&mut self, thread: u32, addr: u64, size: u64, stack: u64) {
        let key = (stack, thread);
        self.blocks.entry(addr).or_default().push_back((size, key));
        let g = self.groups.entry(key).or_default();
        *g = (g.0 + size, g.1 + 1);
        self.total = (self.total.0 + size, self.total.1 + 1);
        if self.total.0 > self.peak.0 {
            self.peak = self.total;
            self.peak_groups = self.groups.clone();
        }
    }

    fn free(&mut self, addr: u64) {
        let Some((size, key)) = self.blocks.get_mut(&addr).and_then(|q| q.pop_front()) else {
            return;
        };
        let g = self.groups.get_mut(&key).expect("a live block's group");
        *g = (g.0 - size, g.1 - 1);
        self.total = (self.total.0 - size, self.total.1 - 1);
    }

    /// Groups with something live, of one thread when given.
    fn set(groups: &Groups, thread: Option<u32>) -> BTreeMap<(u64, u32), (u64, u64)> {
        groups
            .iter()
            .filter(|&(k, v)| v.1 > 0 && thread.is_none_or(|t| k.1 == t))
            .map(|(&k, &v)| (k, v))
            .collect()
    }
}

/// The live view's set, as the model's.
fn sums(set: AllocSet) -> BTreeMap<(u64, u32), (u64, u64)> {
    set.groups
        .into_iter()
        .map(|(k, s)| (k, (s.bytes, s.count)))
        .collect()
}

/// The program's side of [`the_live_view_matches_a_plain_map_across_threads_chunks_and_reallocs`]:
/// its events, the model they make, the live blocks as it sees them and addresses freed lately.
struct Program {
    rng: Rng,
    model: Model,
    owned: Vec<u64>,
    recent: Vec<u64>,
    tick: u64,
}

impl Program {
    /// Writes one event (two for a realloc) of thread index `ti` into `c` and the model.
    fn event(&mut self, ti: u32, c: &mut Chunk) {
        let Program {
            rng,
            model,
            owned,
            recent,
            tick,
        } = self;
        *tick += 1 + rng.below(3);
        let tick = *tick;
        let stack = 1 + rng.below(12);
        match rng.below(100) {
            0..=44 => {
                // A new block: most at an address just freed, some fresh, some at a live one
                // (a second block there).
                let addr = match rng.below(10) {
                    0..=5 if !recent.is_empty() => {
                        recent.swap_remove(rng.below(recent.len() as u64) as usize)
                    }
                    6 if !owned.is_empty() => owned[rng.below(owned.len() as u64) as usize],
                    _ => 0x4000_0000 + rng.below(40_000) * 16,
                };
                let size = 1 + rng.below(600);
                let a = [Allocator::Malloc, Allocator::Calloc][rng.below(2) as usize];
                c.alloc(a, tick, addr, size, stack);
                model.alloc(ti, addr, size, stack);
                owned.push(addr);
            }
            45..=84 if !owned.is_empty() => {
                // A free: of a recent block mostly (this chunk's), else any.
                let n = owned.len() as u64;
                let k = if rng.below(4) > 0 {
                    n - 1 - rng.below(n.min(20))
                } else {
                    rng.below(n)
                };
                let addr = owned.swap_remove(k as usize);
                c.free(tick, addr);
                model.free(addr);
                recent.push(addr);
            }
            85..=94 if !owned.is_empty() => {
                // A realloc: the old block freed, the new one allocated (in place sometimes).
                let k = rng.below(owned.len() as u64) as usize;
                let old = owned.swap_remove(k);
                let new = if rng.below(2) == 0 {
                    old
                } else {
                    0x4000_0000 + rng.below(40_000) * 16
                };
                let size = 1 + rng.below(2000);
                c.free(tick, old);
                model.free(old);
                c.alloc(Allocator::Realloc, tick, new, size, stack);
                model.alloc(ti, new, size, stack);
                owned.push(new);
            }
            _ => {
                // A free of a block never seen.
                let addr = 0x7000_0000 + rng.below(1000) * 16;
                c.free(tick, addr);
            }
        }
    }
}

#[test]
fn the_live_view_matches_a_plain_map_across_threads_chunks_and_reallocs() {
    // Columnar chunks of three threads written one or two at a time, polled after each step
    // (one thread's chunk: decoded straight into the sums; two: merged by tick). Their frees
    // take blocks of the chunk (written by distance), of earlier chunks, of other threads,
    // and none; reallocs free and allocate; an address may hold two blocks at once (the older
    // goes first); addresses are reused as an allocator's are, and spread enough that the
    // live view's nursery places collide. Some steps interleave two threads' events, closely
    // or in bursts, over several chunks of each (merged chunk by chunk).
    let mut b = start();
    let path = write_bytes("follow_model", &b.bytes());
    let mut live = Live::open(&path, true).expect("opens");
    let mut p = Program {
        rng: Rng(0x2545_F491_4F6C_DD1D),
        model: Model::default(),
        owned: Vec::new(),
        recent: Vec::new(),
        tick: 1,
    };
    let mut seqs = [0u32; 3];
    let mut index_of: Vec<u32> = Vec::new();
    let mut interleaved = 0;
    for step in 0..60 {
        if step % 7 == 5 && index_of.len() == 3 {
            // Two threads at once, their events interleaved (switching at one event in two,
            // or in bursts), each thread's cut into chunks of 20 to 220 events.
            interleaved += 1;
            let pair = [(step % 3) as u32, ((step + 1) % 3) as u32];
            let switch = [2, 40][step % 2];
            let mut chunks = [Chunk::new(), Chunk::new()];
            let mut left = [0u64; 2];
            let mut k = 0;
            for _ in 0..1500 {
                if p.rng.below(switch) == 0 {
                    k = 1 - k;
                }
                let t = pair[k];
                if left[k] == 0 {
                    left[k] = 20 + p.rng.below(200);
                }
                let ti = index_of.iter().position(|&x| x == t).expect("known") as u32;
                p.event(ti, &mut chunks[k]);
                left[k] -= 1;
                if left[k] == 0 {
                    let c = std::mem::replace(&mut chunks[k], Chunk::new());
                    b.columns_events(t + 1, 100 + t, seqs[t as usize], &c);
                    seqs[t as usize] += 1;
                }
            }
            for (k, c) in chunks.iter().enumerate() {
                if left[k] > 0 {
                    let t = pair[k];
                    b.columns_events(t + 1, 100 + t, seqs[t as usize], c);
                    seqs[t as usize] += 1;
                }
            }
        } else {
            let threads: Vec<u32> = if step % 7 == 3 {
                vec![(step % 3) as u32, ((step + 1) % 3) as u32]
            } else {
                vec![p.rng.below(3) as u32]
            };
            for &t in &threads {
                if !index_of.contains(&t) {
                    index_of.push(t);
                }
                let ti = index_of.iter().position(|&x| x == t).expect("known") as u32;
                let mut c = Chunk::new();
                for _ in 0..400 {
                    p.event(ti, &mut c);
                }
                b.columns_events(t + 1, 100 + t, seqs[t as usize], &c);
                seqs[t as usize] += 1;
            }
        }
        std::fs::write(&path, b.bytes()).expect("write");
        while live.poll().expect("poll").behind {}
        let model = &p.model;
        assert_eq!(live.live_bytes(), model.total.0, "step {step}");
        assert_eq!(
            (live.peak().bytes, live.peak().allocations),
            model.peak,
            "step {step}"
        );
        for thread in [None, Some(0), Some(1), Some(2)] {
            assert_eq!(
                sums(live.set(Moment::Now, thread)),
                Model::set(&model.groups, thread),
                "step {step}, thread {thread:?}"
            );
            assert_eq!(
                sums(live.set(Moment::Peak, thread)),
                Model::set(&model.peak_groups, thread),
                "step {step}, thread {thread:?}"
            );
        }
    }
    assert!(interleaved >= 6, "{interleaved}");
    assert!(p.model.total.1 > 100 && p.model.peak.0 > p.model.total.0);
}

#[test]
fn a_poll_s_limit_keeps_the_merge_in_tick_order_across_polls() {
    // Thread 1 allocates a block every other tick, in many small chunks (more than a poll
    // takes of one thread); thread 2 frees each block on the next tick, in two large chunks.
    // A poll that stopped thread 1 at its limit went on merging thread 2's frees past it:
    // frees of blocks not allocated yet (unknown), then those blocks live for ever (a finished
    // multi-threaded capture showed 96 MiB live where 82 MiB were).
    let mut b = start();
    let blocks = 2000u64;
    let mut allocs = Chunk::new();
    let mut seq = 0;
    for i in 0..blocks {
        allocs.malloc(2 * i + 2, 0x10_0000 + 16 * i, 100);
        if (i + 1) % 20 == 0 {
            b.columns_events(1, 101, seq, &allocs);
            seq += 1;
            allocs = Chunk::new();
        }
    }
    let mut frees = Chunk::new();
    let mut free_seq = 0;
    for i in 0..blocks {
        frees.free(2 * i + 3, 0x10_0000 + 16 * i);
        if (i + 1) % 1000 == 0 {
            b.columns_events(2, 102, free_seq, &frees);
            free_seq += 1;
            frees = Chunk::new();
        }
    }
    let path = write_bytes("follow_limit", &b.bytes());
    let mut live = Live::open(&path, true).expect("opens");
    let mut polls = 0;
    let mut events = 0;
    loop {
        let p = live.poll().expect("poll");
        polls += 1;
        events += p.events;
        // Never more than the one block allocated and not yet freed.
        assert!(
            live.live_bytes() <= 100,
            "poll {polls}: {}",
            live.live_bytes()
        );
        if !p.behind {
            break;
        }
    }
    assert!(polls > 2, "the limit was not reached: {polls} polls");
    assert_eq!(events as u64, 2 * blocks);
    assert_eq!(live.live_bytes(), 0);
    assert_eq!((live.peak().bytes, live.peak().allocations), (100, 1));
}

#[test]
fn a_finished_capture_holding_fewer_records_than_its_trailer_counts_says_so_once() {
    // A copy cut short keeps its trailer (its place is at the file's start) and loses chunks:
    // `stats` said "truncated or damaged", the live view showed what was left as complete.
    let mut chunk = Chunk::new();
    chunk.malloc(10, 0x1000, 100).malloc(20, 0x2000, 200);
    let build = |written: u64| {
        let mut b = start();
        let mut t = CaptureBuilder::new();
        let trailer_at = t.trailer_with(&memtrace_format::record::Trailer {
            end_mono_ns: 60,
            end_tick: 60,
            records_written: written,
            records_dropped: 0,
            flags: 0,
            threads: 1,
        });
        b.events(1, 101, 0, &chunk);
        let mut file = b.bytes();
        let trailer = t.file[trailer_at..].to_vec();
        file[trailer_at..trailer_at + trailer.len()].copy_from_slice(&trailer);
        file
    };
    for (written, said) in [(2, false), (50, true)] {
        let path = write_bytes("follow_cut", &build(written));
        let mut live = Live::open(&path, true).expect("opens");
        while live.poll().expect("poll").behind {}
        live.poll().expect("poll");
        assert!(live.finished());
        assert_eq!(live.live_bytes(), 300);
        let told: Vec<&String> = live
            .analysis
            .warnings
            .iter()
            .filter(|w| w.contains("truncated or damaged"))
            .collect();
        let expected = "capture is truncated or damaged: its chunks hold 2 of the 50 records the tracker wrote; reporting what is left";
        if said {
            assert_eq!(told, vec![expected], "{:?}", live.analysis.warnings);
        } else {
            assert!(told.is_empty(), "{told:?}");
        }
    }
}

/// A finished capture with a trailer in its place (as the tracker leaves it at the end).
fn finished(mut b: CaptureBuilder) -> Vec<u8> {
    let mut file = b.bytes();
    let mut t = CaptureBuilder::new();
    let trailer_at = t.trailer(1_000);
    let trailer = t.file[trailer_at..].to_vec();
    file[trailer_at..trailer_at + trailer.len()].copy_from_slice(&trailer);
    b.file = file;
    b.bytes()
}

#[test]
fn a_finished_capture_is_followed_past_a_long_stretch_of_zeros_and_a_lost_chunk() {
    // Zeros longer than the look past a chunk in progress (2 MiB): a finished capture's later
    // chunks were never read (the view showed 81 KiB where stats showed 12.8 MiB). And a chunk
    // lost but for its staging area's copy: the thread waited for it for ever (67.7 KiB shown
    // for 5.7 MiB).
    let mut b = start();
    let mut c0 = Chunk::new();
    c0.malloc(10, 0x1000, 100);
    b.events(1, 101, 0, &c0);
    let mut c1 = Chunk::new();
    c1.malloc(20, 0x2000, 200);
    // Seq 1's Events chunk is lost: its staging area still holds it.
    b.staging(1, 101, 1, &c1, 4096, &[]);
    b.zeros(5 << 20);
    let mut c2 = Chunk::new();
    c2.malloc(30, 0x3000, 400).free(40, 0x1000);
    b.events(1, 101, 2, &c2);
    let mut other = Chunk::new();
    other.malloc(35, 0x4000, 8000);
    b.events(2, 102, 0, &other);
    let path = write_bytes("follow_far", &finished(b));
    let mut live = Live::open(&path, true).expect("opens");
    for _ in 0..3 {
        while live.poll().expect("poll").behind {}
    }
    assert!(live.finished());
    assert_eq!(live.live_bytes(), 200 + 400 + 8000);
    assert_eq!(live.peak().bytes, 100 + 200 + 400 + 8000);
}
