//! The event stream: chunks decoded in parallel, in bounded batches, and merged into one
//! timeline.
//!
//! Each thread's chunks are read in sequence order; threads are merged by tick, ties broken by
//! file order. Chunks are loaded in order of their first tick (from the chunk headers), so once a
//! batch is loaded every event earlier than the first tick of the next unloaded chunk can be
//! delivered. Memory stays bounded by a batch plus the unfinished chunk of each thread, whatever
//! the size of the capture. While the consumer replays one batch, the next is decoded.

use super::decode::{decode_chunk, ChunkTables, DecodedChunk};
use super::event::Event;
use super::scan::Index;
use memtrace_format::CHUNK_HEADER_LEN;
use rayon::prelude::*;
use std::collections::VecDeque;

/// How much is decoded at a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchLimits {
    /// Raw payload bytes decoded per batch (at least one chunk is).
    pub bytes: usize,
    /// Chunks decoded per batch, at most.
    pub chunks: usize,
    /// Decoded bytes of the whole capture from which batches decode on the thread pool; a
    /// smaller capture is read on the calling thread alone: for a short capture (a test's,
    /// under the pytest plugin) the pool's threads cost more than they save, spinning on two
    /// busy cores while the caller waits for them.
    pub parallel_from: usize,
}

impl Default for BatchLimits {
    fn default() -> BatchLimits {
        BatchLimits {
            bytes: 4 << 20,
            chunks: 256,
            parallel_from: 1 << 20,
        }
    }
}

/// What the stream is delivered to.
pub trait Consumer: Send {
    /// Order-independent results computed from one chunk.
    type Summary: Send;
    /// Runs in parallel on the decoding threads, once per event-bearing chunk.
    fn summarize(chunk: &DecodedChunk) -> Self::Summary;
    /// A chunk was loaded: its table records and summary. Each thread's chunks arrive in sequence
    /// order; `thread` is None for meta chunks (they have no summary then).
    fn chunk_loaded(
        &mut self,
        thread: Option<usize>,
        tables: ChunkTables,
        summary: Option<Self::Summary>,
    );
    /// A run of one thread's events, in merged timeline order.
    fn events(&mut self, thread: usize, events: &[Event]);
    /// The file bytes `range` (a chunk) are decoded and will not be read again.
    fn decoded(&mut self, _range: std::ops::Range<usize>) {}
}

/// What the stream itself found.
#[derive(Clone, Debug, Default)]
pub struct StreamReport {
    /// Damaged chunks and records, in load order.
    pub warnings: Vec<String>,
    /// Event records the damaged chunks' headers count and that could not be read.
    pub lost_records: u64,
    /// Chunks that were damaged (skipped, or read in part), whatever their headers count: a
    /// chunk of table records only counts no event but holds the stacks' names.
    pub damaged_chunks: u64,
    /// Events delivered.
    pub events: u64,
    /// The largest tick delivered.
    pub last_tick: Option<u64>,
}

#[derive(Clone, Copy, Debug)]
struct Planned {
    chunk: usize,
    /// No event of this chunk (nor of the thread's later chunks) is expected before this tick.
    key: u64,
}

/// The load order: by first tick, each thread's chunks in sequence order.
fn plan(index: &Index) -> Vec<Planned> {
    let mut out: Vec<(u64, usize, usize, usize)> = Vec::with_capacity(index.chunks.len());
    for (t, thread) in index.threads.iter().enumerate() {
        let mut key = 0u64;
        for (pos, &c) in thread.chunks.iter().enumerate() {
            key = key.max(index.chunks[c].first_tick);
            out.push((key, t, pos, c));
        }
    }
    out.sort_unstable();
    out.into_iter()
        .map(|(key, _, _, chunk)| Planned { chunk, key })
        .collect()
}

fn next_batch(
    plan: &[Planned],
    index: &Index,
    start: usize,
    limits: BatchLimits,
) -> std::ops::Range<usize> {
    let mut end = start;
    let mut bytes = 0usize;
    while end < plan.len()
        && (end == start || (bytes < limits.bytes && end - start < limits.chunks))
    {
        // What the chunk decodes to (streams or records), not what it takes in the file.
        bytes += index.chunks[plan[end].chunk].decoded_len;
        end += 1;
    }
    start..end
}

fn decode_batch<C: Consumer>(
    file: &[u8],
    index: &Index,
    batch: &[Planned],
    parallel: bool,
) -> Vec<(DecodedChunk, C::Summary)> {
    if parallel {
        batch
            .par_iter()
            .map(|p| decode_planned::<C>(file, index, p))
            .collect()
    } else {
        batch
            .iter()
            .map(|p| decode_planned::<C>(file, index, p))
            .collect()
    }
}

fn decode_planned<C: Consumer>(
    file: &[u8],
    index: &Index,
    p: &Planned,
) -> (DecodedChunk, C::Summary) {
    let mut chunk = decode_chunk(file, &index.chunks[p.chunk], p.chunk);
    chunk.sampling = index.settings.sampling();
    // The events keep the sizes asked for: a sampled capture's consumers weigh them
    // (analysis::replay, the totals).
    let summary = C::summarize(&chunk);
    (chunk, summary)
}

struct Loaded {
    events: Vec<Event>,
    pos: usize,
    /// File order of the chunk (its index in `Index::chunks`), the tie-breaker.
    rank: u32,
}

/// The merge key of a thread's head event: tick, then file order (the chunk's rank); the low
/// half also names the thread. Kept as two u64 (a u128 written in halves and read whole stalls
/// store forwarding).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    tick: u64,
    low: u64,
}

const MAX_KEY: Key = Key {
    tick: u64::MAX,
    low: u64::MAX,
};

#[inline]
fn key(tick: u64, rank: u32, thread: u32) -> Key {
    Key {
        tick,
        low: (u64::from(rank) << 32) | u64::from(thread),
    }
}

/// A binary min-heap of merge keys (one per thread with loaded events).
#[derive(Default)]
struct KeyHeap(Vec<Key>);

impl KeyHeap {
    fn push(&mut self, k: Key) {
        let h = &mut self.0;
        h.push(k);
        let mut i = h.len() - 1;
        while i > 0 {
            let parent = (i - 1) / 2;
            if h[parent] <= k {
                break;
            }
            h[i] = h[parent];
            i = parent;
        }
        h[i] = k;
    }

    /// Puts `k` at the root and sifts it down.
    #[inline]
    fn replace_top(&mut self, k: Key) {
        let h = &mut self.0;
        let n = h.len();
        let mut i = 0;
        loop {
            let l = 2 * i + 1;
            if l >= n {
                break;
            }
            let r = l + 1;
            let c = if r < n && h[r] < h[l] { r } else { l };
            if k <= h[c] {
                break;
            }
            h[i] = h[c];
            i = c;
        }
        if n > 0 {
            h[i] = k;
        }
    }

    fn pop_top(&mut self) {
        let Some(last) = self.0.pop() else { return };
        if !self.0.is_empty() {
            self.replace_top(last);
        }
    }

    /// The smallest key other than the minimum.
    #[inline]
    fn second(&self) -> Key {
        let h = &self.0;
        match (h.get(1), h.get(2)) {
            (Some(&a), Some(&b)) => a.min(b),
            (Some(&a), None) => a,
            _ => MAX_KEY,
        }
    }
}

/// K-way merge of the threads' loaded events.
struct Merger {
    queues: Vec<VecDeque<Loaded>>,
    heap: KeyHeap,
    in_heap: Vec<bool>,
    events: u64,
    last_tick: Option<u64>,
}

impl Merger {
    fn new(threads: usize) -> Merger {
        Merger {
            queues: (0..threads).map(|_| VecDeque::new()).collect(),
            heap: KeyHeap::default(),
            in_heap: vec![false; threads],
            events: 0,
            last_tick: None,
        }
    }

    fn push(&mut self, thread: usize, events: Vec<Event>, rank: usize) {
        let Some(first) = events.first().map(|e| e.tick) else {
            return;
        };
        let (Some(queue), Ok(t), Ok(rank)) = (
            self.queues.get_mut(thread),
            u32::try_from(thread),
            u32::try_from(rank),
        ) else {
            return;
        };
        queue.push_back(Loaded {
            events,
            pos: 0,
            rank,
        });
        if !self.in_heap[thread] {
            self.in_heap[thread] = true;
            self.heap.push(key(first, rank, t));
        }
    }

    /// Delivers every loaded event with a tick below `bound` (all of them when None).
    fn drain<C: Consumer>(&mut self, bound: Option<u64>, consumer: &mut C) {
        let bound = bound.map_or(MAX_KEY, |b| Key { tick: b, low: 0 });
        while let Some(&top) = self.heap.0.first() {
            if top >= bound {
                break;
            }
            let t = (top.low & 0xffff_ffff) as usize;
            // This thread goes on while its events come before every other thread's head.
            let cut = self.heap.second().min(bound);
            let queue = &mut self.queues[t];
            let Some(front) = queue.front_mut() else {
                self.in_heap[t] = false;
                self.heap.pop_top();
                continue;
            };
            let evs = &front.events;
            let start = front.pos;
            // The head is the earliest event of all: it goes in any case. Ticks equal to the
            // cut's go on only when this chunk comes first in the file. A thread's ticks never
            // decrease, so the run ends where a binary search says (a single-threaded capture
            // would otherwise read every tick once more here).
            let rest = &evs[start + 1..];
            let run = if top.low < cut.low {
                rest.partition_point(|e| e.tick <= cut.tick)
            } else {
                rest.partition_point(|e| e.tick < cut.tick)
            };
            let end = start + 1 + run;
            consumer.events(t, &evs[start..end]);
            self.events += (end - start) as u64;
            let last = evs[end - 1].tick;
            self.last_tick = Some(self.last_tick.map_or(last, |l| l.max(last)));
            front.pos = end;
            if end == front.events.len() {
                if let Some(done) = queue.pop_front() {
                    super::pool::give(done.events);
                }
            }
            match queue.front() {
                Some(f) => self
                    .heap
                    .replace_top(key(f.events[f.pos].tick, f.rank, t as u32)),
                None => {
                    self.in_heap[t] = false;
                    self.heap.pop_top();
                }
            }
        }
    }
}

/// Streams the capture's events to `consumer`, decoding `limits` at a time.
pub fn run<C: Consumer>(
    file: &[u8],
    index: &Index,
    consumer: &mut C,
    limits: BatchLimits,
) -> StreamReport {
    let decoded: usize = index.chunks.iter().map(|c| c.decoded_len).sum();
    if decoded < limits.parallel_from {
        return run_here(file, index, consumer, limits, false);
    }
    // On a thread of the pool: each batch's join then stays among its threads, instead of
    // waking this one and the pool once per batch.
    rayon::scope(|_| run_here(file, index, consumer, limits, true))
}

fn run_here<C: Consumer>(
    file: &[u8],
    index: &Index,
    consumer: &mut C,
    limits: BatchLimits,
    parallel: bool,
) -> StreamReport {
    let mut report = StreamReport::default();
    for (i, entry) in index.meta.iter().enumerate() {
        let chunk = decode_chunk(file, entry, i);
        if let Some(w) = chunk.warning {
            report.warnings.push(w);
            report.damaged_chunks += 1;
        }
        consumer.chunk_loaded(None, chunk.tables, None);
    }

    let plan = plan(index);
    let mut merger = Merger::new(index.threads.len());
    let first = next_batch(&plan, index, 0, limits);
    let mut loaded_to = first.end;
    let mut pending =
        (!first.is_empty()).then(|| decode_batch::<C>(file, index, &plan[first], parallel));
    while let Some(batch) = pending.take() {
        let mut loaded = Vec::with_capacity(batch.len());
        for (chunk, summary) in batch {
            if let Some(w) = chunk.warning {
                report.warnings.push(w);
                report.damaged_chunks += 1;
                if let Some(e) = index.chunks.get(chunk.entry) {
                    let kept = chunk.events.len() as u64;
                    report.lost_records += u64::from(e.header.record_count).saturating_sub(kept);
                }
            }
            if let Some(e) = index.chunks.get(chunk.entry) {
                consumer.decoded(e.offset..e.offset + CHUNK_HEADER_LEN + e.payload_len);
            }
            merger.push(chunk.thread, chunk.events, chunk.entry);
            loaded.push((chunk.thread, chunk.tables, summary));
        }
        let bound = plan.get(loaded_to).map(|p| p.key);
        let range = next_batch(&plan, index, loaded_to, limits);
        loaded_to = range.end;
        // The consumer takes the batch (tables, summaries, events) while the next one decodes.
        let take = || {
            for (thread, tables, summary) in loaded {
                consumer.chunk_loaded(Some(thread), tables, Some(summary));
            }
            merger.drain(bound, consumer)
        };
        let decode_next = || {
            (!range.is_empty())
                .then(|| decode_batch::<C>(file, index, &plan[range.clone()], parallel))
        };
        pending = if parallel {
            rayon::join(take, decode_next).1
        } else {
            take();
            decode_next()
        };
    }
    merger.drain(None, consumer);
    report.events = merger.events;
    report.last_tick = merger.last_tick;
    report
}
