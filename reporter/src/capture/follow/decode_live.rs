//! Decoding a chunk for the live view: its events handed one by one to an [`EventOut`] as the
//! streams are read (no buffer of events in between, no copy), after skipping those an earlier
//! poll delivered (a staging area is read again from its start as it fills).

use super::super::decode::{add_other_record, payload, ChunkTables};
use super::super::event::{code, Event};
use super::super::scan::ChunkEntry;
use memtrace_format::columns::{AllocFreed, RecordSink};
use memtrace_format::{Allocator, Record};

/// Where decoded events go.
pub trait EventOut {
    fn push(&mut self, ev: Event);

    /// An allocation (see [`super::EventSink::alloc`]).
    #[inline(always)]
    fn alloc(&mut self, tick: u64, allocator: Allocator, addr: u64, size: u64, stack: u64) {
        self.push(Event::new(allocator as u8, tick, addr, size, stack));
    }

    /// A free (see [`super::EventSink::free`]).
    #[inline(always)]
    fn free(&mut self, tick: u64, python: bool, addr: u64, object_type: u64) {
        self.push(free_event(tick, python, addr, object_type));
    }

    /// An allocation and the free at its address right after it (see
    /// [`super::EventSink::alloc_freed`]).
    #[inline(always)]
    fn alloc_freed(&mut self, b: AllocFreed) {
        self.alloc(b.tick, b.allocator, b.addr, b.size, b.stack);
        self.free(b.freed, b.python, b.addr, b.object_type);
    }

    /// `n` events of a chunk were handed over (counted once per chunk, not per event).
    fn delivered(&mut self, _n: usize) {}
}

/// The event of a free: as the general decoder's, its size field carries the type of the
/// object the block held.
#[inline(always)]
pub fn free_event(tick: u64, python: bool, addr: u64, object_type: u64) -> Event {
    let c = if python { code::PY_FREE } else { code::FREE };
    Event::new(c, tick, addr, object_type, 0)
}

impl EventOut for Vec<Event> {
    #[inline(always)]
    fn push(&mut self, ev: Event) {
        Vec::push(self, ev);
    }
}

/// Decodes the chunk `entry` of `bytes` (header and payload): its table records into `tables`,
/// its timed events after the first `skip` into `out`. Returns the timed events the chunk holds
/// (up to damage) and what was wrong with it, if anything: the events before damage are kept.
pub fn decode_into(
    bytes: &[u8],
    entry: &ChunkEntry,
    skip: usize,
    out: &mut impl EventOut,
    tables: &mut ChunkTables,
) -> (usize, Option<String>) {
    let payload = match payload(bytes, entry) {
        Ok(p) => p,
        Err(e) => {
            let w = format!(
                "skipped damaged chunk at {}: cannot decompress it: {e}",
                entry.describe()
            );
            return (0, Some(w));
        }
    };
    let mut sink = Skipping {
        skip,
        seen: 0,
        out,
        tables,
        others: Vec::new(),
    };
    // Nothing to skip (a finished chunk, a staging area read for the first time): no test
    // per event.
    let result = if skip == 0 {
        payload.each_record(&mut sink.all())
    } else {
        payload.each_record(&mut sink)
    };
    let warning = result.err().map(|e| {
        format!(
            "damaged records in chunk at {}: {e}; kept the {} events before it",
            entry.describe(),
            sink.seen
        )
    });
    sink.out.delivered(sink.seen.saturating_sub(skip));
    (sink.seen, warning)
}

/// A [`Skipping`] that skips nothing.
struct All<'s, 'o, O>(&'s mut Skipping<'o, O>);

impl<'o, O> Skipping<'o, O> {
    fn all(&mut self) -> All<'_, 'o, O> {
        All(self)
    }
}

impl<'a, O: EventOut> RecordSink<'a> for All<'_, '_, O> {
    // The live view's events: most pairs of a native program's are taken at once.
    const PAIR_RUNS: bool = true;

    #[inline(always)]
    fn alloc(&mut self, tick: u64, allocator: Allocator, addr: u64, size: u64, stack: u64) {
        self.0.seen += 1;
        self.0.out.alloc(tick, allocator, addr, size, stack);
    }

    #[inline(always)]
    fn free(&mut self, tick: u64, python: bool, addr: u64, _: Option<u64>, object_type: u64) {
        self.0.seen += 1;
        self.0.out.free(tick, python, addr, object_type);
    }

    #[inline(always)]
    fn alloc_freed(&mut self, b: AllocFreed) {
        self.0.seen += 2;
        self.0.out.alloc_freed(b);
    }

    #[inline(never)]
    fn other(&mut self, rec: Record<'a>) {
        self.0.other(rec);
    }
}

/// Passes the timed events after the first `skip` on, table records to `tables`.
struct Skipping<'o, O> {
    skip: usize,
    /// Timed events read so far.
    seen: usize,
    out: &'o mut O,
    tables: &'o mut ChunkTables,
    /// The events of a record other than an allocation or a free (an mremap makes two).
    others: Vec<Event>,
}

impl<O: EventOut> Skipping<'_, O> {
    /// Counts a timed event: whether it is new (to be passed on).
    #[inline(always)]
    fn fresh(&mut self) -> bool {
        self.seen += 1;
        self.seen > self.skip
    }

    #[inline(always)]
    fn pass(&mut self, ev: Event) {
        if self.fresh() {
            self.out.push(ev);
        }
    }
}

impl<'a, O: EventOut> RecordSink<'a> for Skipping<'_, O> {
    // The live view's events: most pairs of a native program's are taken at once.
    const PAIR_RUNS: bool = true;

    #[inline(always)]
    fn alloc(&mut self, tick: u64, allocator: Allocator, addr: u64, size: u64, stack: u64) {
        if self.fresh() {
            self.out.alloc(tick, allocator, addr, size, stack);
        }
    }

    #[inline(always)]
    fn free(&mut self, tick: u64, python: bool, addr: u64, _: Option<u64>, object_type: u64) {
        if self.fresh() {
            self.out.free(tick, python, addr, object_type);
        }
    }

    #[inline(never)]
    fn other(&mut self, rec: Record<'a>) {
        let mut others = std::mem::take(&mut self.others);
        add_other_record(rec, true, &mut others, self.tables);
        for ev in others.drain(..) {
            self.pass(ev);
        }
        self.others = others;
    }
}
