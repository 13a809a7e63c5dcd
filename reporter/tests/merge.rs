//! The merged replay against a simple model: random multi-threaded event streams, split into
//! chunks written in random order, read with several batch sizes.

use crate::common::{CaptureBuilder, Chunk};
use hashbrown::HashMap;
use memtrace_reporter::analysis;
use memtrace_reporter::capture::stream::BatchLimits;
use memtrace_reporter::capture::Capture;
use proptest::prelude::*;
use std::collections::VecDeque;

#[derive(Clone, Copy, Debug)]
enum Op {
    Alloc { addr: u64, size: u64 },
    Free { addr: u64 },
}

#[derive(Clone, Debug)]
struct Scenario {
    /// (tick, thread, op), ticks non-decreasing.
    events: Vec<(u64, usize, Op)>,
    threads: usize,
    /// Events per chunk, per thread (cycled).
    chunk_sizes: Vec<usize>,
    /// Seed for the file order of chunks.
    order_seed: u64,
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        1usize..5,
        proptest::collection::vec(
            (
                0u64..3,
                any::<u8>(),
                any::<bool>(),
                any::<u16>(),
                1u64..5000,
            ),
            0..300,
        ),
        proptest::collection::vec(1usize..20, 1..5),
        any::<u64>(),
    )
        .prop_map(|(threads, steps, chunk_sizes, order_seed)| {
            let mut tick = 1u64;
            let mut live: Vec<u64> = Vec::new();
            let mut next_addr = 0x1000u64;
            let mut events = Vec::new();
            for (dt, thread, free, pick, size) in steps {
                tick += dt;
                let thread = thread as usize % threads;
                if free && !live.is_empty() {
                    let addr = live.swap_remove(pick as usize % live.len());
                    events.push((tick, thread, Op::Free { addr }));
                } else {
                    // Reuse a freed address now and then, as allocators do.
                    let addr = if pick % 4 == 0 && next_addr > 0x1000 {
                        0x1000 + u64::from(pick % 8) * 0x10
                    } else {
                        next_addr += 0x10;
                        next_addr
                    };
                    if !live.contains(&addr) {
                        live.push(addr);
                    }
                    events.push((tick, thread, Op::Alloc { addr, size }));
                }
            }
            Scenario {
                events,
                threads,
                chunk_sizes,
                order_seed,
            }
        })
}

/// The model: each thread's events in order; between threads, the earliest tick first, and for
/// equal ticks the event whose chunk comes first in the file. A free removes the oldest live block
/// at its address. `threads[t]` lists thread t's events as (tick, file rank of its chunk, op).
fn model(threads: &[Vec<(u64, usize, Op)>]) -> (u64, u64, u64) {
    let mut pos = vec![0usize; threads.len()];
    let mut live: HashMap<u64, VecDeque<u64>> = HashMap::new();
    let (mut bytes, mut peak, mut count) = (0u64, 0u64, 0u64);
    loop {
        let next = (0..threads.len())
            .filter(|&t| pos[t] < threads[t].len())
            .min_by_key(|&t| (threads[t][pos[t]].0, threads[t][pos[t]].1));
        let Some(t) = next else { break };
        let op = threads[t][pos[t]].2;
        pos[t] += 1;
        match op {
            Op::Alloc { addr, size } => {
                live.entry(addr).or_default().push_back(size);
                bytes += size;
                count += 1;
                peak = peak.max(bytes);
            }
            Op::Free { addr } => {
                if let Some(q) = live.get_mut(&addr) {
                    if let Some(size) = q.pop_front() {
                        bytes -= size;
                        count -= 1;
                    }
                    if q.is_empty() {
                        live.remove(&addr);
                    }
                }
            }
        }
    }
    (peak, bytes, count)
}

/// (thread, seq, events as (tick, op))
type ThreadChunk = (usize, u32, Vec<(u64, Op)>);

fn check(s: &Scenario) -> Result<(), TestCaseError> {
    // Split each thread's events into chunks.
    let mut per_thread: Vec<Vec<(u64, Op)>> = vec![Vec::new(); s.threads];
    for &(tick, t, op) in &s.events {
        per_thread[t].push((tick, op));
    }
    let mut chunks: Vec<ThreadChunk> = Vec::new();
    for (t, evs) in per_thread.iter().enumerate() {
        let mut seq = 0u32;
        let mut rest = &evs[..];
        while !rest.is_empty() {
            let n = s.chunk_sizes[(seq as usize + t) % s.chunk_sizes.len()].min(rest.len());
            chunks.push((t, seq, rest[..n].to_vec()));
            rest = &rest[n..];
            seq += 1;
        }
    }
    // A scrambled file order.
    let mut x = s.order_seed | 1;
    let mut keys: Vec<u64> = chunks
        .iter()
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        })
        .collect();
    let mut order: Vec<usize> = (0..chunks.len()).collect();
    order.sort_by_key(|&i| keys[i]);
    keys.clear();

    let mut b = CaptureBuilder::new();
    let mut rank_of = vec![0usize; chunks.len()];
    for (rank, &i) in order.iter().enumerate() {
        rank_of[i] = rank;
        let (t, seq, evs) = &chunks[i];
        let mut c = Chunk::new();
        for &(tick, op) in evs {
            match op {
                Op::Alloc { addr, size } => c.malloc(tick, addr, size),
                Op::Free { addr } => c.free(tick, addr),
            };
        }
        let last = !chunks.iter().any(|(t2, seq2, _)| t2 == t && seq2 > seq);
        if last && s.order_seed & 1 == 1 {
            // The thread's last events are still in its staging area.
            b.staging(
                *t as u32 + 1,
                *t as u32 + 100,
                *seq,
                &c,
                c.bytes().len() + 64,
                &[],
            );
        } else {
            b.events(*t as u32 + 1, *t as u32 + 100, *seq, &c);
        }
    }
    b.trailer(1 << 30);
    // Chunks were made per thread in sequence order.
    let mut timelines: Vec<Vec<(u64, usize, Op)>> = vec![Vec::new(); s.threads];
    for (i, (t, _, evs)) in chunks.iter().enumerate() {
        timelines[*t].extend(evs.iter().map(|&(tick, op)| (tick, rank_of[i], op)));
    }
    let (peak, live, count) = model(&timelines);

    let capture = Capture::from_bytes("merge.bin", b.bytes()).expect("capture");
    for limits in [
        BatchLimits::default(),
        // The same batches on the pool (these captures are below the default's threshold).
        BatchLimits {
            parallel_from: 0,
            ..BatchLimits::default()
        },
        BatchLimits {
            bytes: 1,
            chunks: 1,
            parallel_from: 0,
        },
        BatchLimits {
            bytes: 1,
            chunks: 2,
            parallel_from: usize::MAX,
        },
        BatchLimits {
            bytes: 64,
            chunks: 3,
            parallel_from: 0,
        },
        BatchLimits {
            bytes: 64,
            chunks: 3,
            parallel_from: usize::MAX,
        },
    ] {
        let a = analysis::analyze_with(&capture, limits);
        prop_assert_eq!(a.replay.peak.bytes, peak, "{:?}", limits);
        let leaked = a.leaked();
        prop_assert_eq!(
            (leaked.bytes, leaked.allocations),
            (live, count),
            "{:?}",
            limits
        );
        prop_assert_eq!(a.replay.events, s.events.len() as u64);
        prop_assert!(a.warnings.is_empty(), "{:?}", a.warnings);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn merged_replay_matches_the_model(s in scenario()) {
        check(&s)?;
    }
}
