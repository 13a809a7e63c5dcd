//! Allocations grouped by (stack, thread, allocator): those live at one moment of the timeline
//! (the peak, the exit snapshot) and the temporary ones. The reporter's replay gives the exact
//! live set; these passes add the allocator of each block, which its sets do not keep.

use hashbrown::HashMap;
use memtrace_format::Allocator;
use memtrace_reporter::analysis::replay::Replay;
use memtrace_reporter::analysis::sets::AllocSet;
use memtrace_reporter::analysis::totals::Sum;
use memtrace_reporter::capture::decode::{ChunkTables, DecodedChunk};
use memtrace_reporter::capture::event::{code, Event};
use memtrace_reporter::capture::scan::Index;
use memtrace_reporter::capture::stream::{self, BatchLimits, Consumer};

/// The allocations of one stack by one thread (an index into the capture's threads) with one
/// allocator (an `Allocator` code).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Group {
    pub stack: u64,
    pub thread: u32,
    pub allocator: u8,
    /// The type of the objects in these blocks (a row of the capture's types live at exit),
    /// for blocks live at exit whose object is known.
    pub object_type: Option<usize>,
    pub sum: Sum,
}

/// (stack, thread, allocator, object type or NO_TYPE).
type Key = (u64, u32, u8, usize);
const NO_TYPE: usize = usize::MAX;

/// The type (row, block's event index) of each typed block live at exit, by address.
pub type BlockTypes = HashMap<u64, (usize, u64)>;

/// The row of the type each typed free names (see `Shared::freed_types`): by the type's
/// address, and where a class died while the program ran, by the life of the class at that
/// address when the free came (an earlier class is named from the line that made it, as the
/// command's reports name it, not after the class CPython made later in its memory).
#[derive(Debug, Default)]
pub struct FreedTypes {
    /// The row of the type at each address at the end (named by the walk there).
    pub rows: HashMap<u64, usize>,
    /// By type address: the event index of each death of a class there, oldest first, and
    /// the row of the class that died.
    pub lives: HashMap<u64, Vec<(u64, usize)>>,
}

impl FreedTypes {
    /// The type of the object a typed free (event `position`) held: its size field holds the
    /// type's address (0: unknown).
    pub fn of(&self, e: &Event, position: u64) -> Option<usize> {
        let c = e.code();
        if (c != code::FREE && c != code::PY_FREE) || e.size == 0 {
            return None;
        }
        if let Some(deaths) = self.lives.get(&e.size) {
            let life = deaths.partition_point(|&(index, _)| index < position);
            if let Some(&(_, row)) = deaths.get(life) {
                return Some(row);
            }
        }
        self.rows.get(&e.size).copied()
    }
}

/// The groups, largest first (ties: more allocations, then the lower stack, thread, allocator).
fn sorted(groups: HashMap<Key, Sum>) -> Vec<Group> {
    let mut out: Vec<Group> = groups
        .into_iter()
        .filter(|(_, s)| s.count > 0 || s.bytes > 0)
        .map(|((stack, thread, allocator, t), sum)| Group {
            stack,
            thread,
            allocator,
            object_type: (t != NO_TYPE).then_some(t),
            sum,
        })
        .collect();
    out.sort_unstable_by(|a, b| {
        (b.sum.bytes, b.sum.count)
            .cmp(&(a.sum.bytes, a.sum.count))
            .then((a.stack, a.thread, a.allocator, a.object_type).cmp(&(
                b.stack,
                b.thread,
                b.allocator,
                b.object_type,
            )))
    });
    out
}

fn is_heap_alloc(c: u8) -> bool {
    c < code::ALLOC_END && c != Allocator::Mmap as u8
}

/// Blocks live at a moment whose type is still to be found: by address, (group key without its
/// type, the block's bytes and count, the event index that made the block).
type Pending = HashMap<u64, (Key, Sum, u64)>;

/// Replays the stream up to event `target` (the capture's end when None) and groups what is
/// live there.
struct LiveAt<'t> {
    /// With the types of the blocks live at exit: the blocks' types (when `target` is the
    /// exit, or the end of a capture without one).
    types: Option<&'t BlockTypes>,
    replay: Replay,
    /// The allocator of each heap block by address (the replay's blocks do not keep it).
    allocators: HashMap<u64, u8>,
    target: Option<u64>,
    result: Option<HashMap<Key, Sum>>,
    /// With the rows of the types typed frees name: the blocks live at `target` whose type is
    /// found later, by the free that ends each (or at exit): by address, (group key without
    /// its type, size, event index).
    follow: Option<(&'t FreedTypes, Pending)>,
    /// The event index of the last event seen (after `target`, as followed).
    position: u64,
}

impl LiveAt<'_> {
    fn take(&mut self) {
        self.position = self.replay.events;
        let mut groups: HashMap<Key, Sum> = HashMap::new();
        for (addr, b) in self.replay.heap.iter() {
            let allocator = self
                .allocators
                .get(&addr)
                .copied()
                .unwrap_or(Allocator::Malloc as u8);
            let key = (b.stack(), b.thread(), allocator, NO_TYPE);
            if let Some((_, pending)) = &mut self.follow {
                pending.insert(
                    addr,
                    (
                        key,
                        Sum {
                            count: b.count(),
                            bytes: b.size,
                        },
                        b.index(),
                    ),
                );
                continue;
            }
            let t = self.exit_type(addr, b.index());
            groups
                .entry((key.0, key.1, key.2, t))
                .or_default()
                .add_n(b.count(), b.size);
        }
        for (_, m) in self.replay.maps.iter() {
            groups
                .entry((m.stack, m.thread, Allocator::Mmap as u8, NO_TYPE))
                .or_default()
                .add(m.len);
        }
        self.result = Some(groups);
    }

    /// The type of the block made at event `index` at `addr`, if it was live at exit.
    fn exit_type(&self, addr: u64, index: u64) -> usize {
        self.types
            .and_then(|types| types.get(&addr))
            .filter(|&&(_, i)| i == index)
            .map_or(NO_TYPE, |&(t, _)| t)
    }

    /// After `target`: a free of a block live there gives its type (a typed free's).
    fn follow(&mut self, events: &[Event]) {
        let Some((rows, pending)) = &mut self.follow else {
            return;
        };
        let Some(groups) = &mut self.result else {
            return;
        };
        for e in events {
            self.position += 1;
            let c = e.code();
            if c != code::FREE && c != code::PY_FREE {
                continue;
            }
            if let Some((key, sum, _)) = pending.remove(&e.addr) {
                let t = rows.of(e, self.position).unwrap_or(NO_TYPE);
                groups
                    .entry((key.0, key.1, key.2, t))
                    .or_default()
                    .merge(sum);
            }
        }
    }

    /// The blocks still followed at the end: typed by the walk at exit, when they were live then.
    fn finish(&mut self) {
        let Some((_, pending)) = self.follow.take() else {
            return;
        };
        let mut groups = self.result.take().unwrap_or_default();
        for (addr, (key, sum, index)) in pending {
            let t = self.exit_type(addr, index);
            groups
                .entry((key.0, key.1, key.2, t))
                .or_default()
                .merge(sum);
        }
        self.result = Some(groups);
    }

    fn note(&mut self, events: &[Event]) {
        for e in events {
            let c = e.code();
            if is_heap_alloc(c) {
                self.allocators.insert(e.addr, c);
            } else if c == code::FREE || c == code::PY_FREE {
                self.allocators.remove(&e.addr);
            }
        }
    }
}

impl Consumer for LiveAt<'_> {
    type Summary = ();

    fn summarize(_: &DecodedChunk) {}

    fn chunk_loaded(&mut self, _: Option<usize>, _: ChunkTables, _: Option<()>) {}

    fn events(&mut self, thread: usize, events: &[Event]) {
        if self.result.is_some() {
            self.follow(events);
            return;
        }
        let n = match self.target {
            Some(t) => usize::try_from(t.saturating_sub(self.replay.events))
                .unwrap_or(usize::MAX)
                .min(events.len()),
            None => events.len(),
        };
        let now = &events[..n];
        self.note(now);
        self.replay.events(thread, now);
        if self.target == Some(self.replay.events) {
            self.take();
            self.follow(&events[n..]);
        }
    }
}

/// What was live after event `target` (1 for the first event; at the end when None), grouped;
/// with `types`, by the type of their objects live at exit too, and with `freed` (the rows of
/// the types typed frees name) by the type a later free of each block names.
pub fn live_at(
    file: &[u8],
    index: &Index,
    include_startup: bool,
    target: Option<u64>,
    types: Option<&BlockTypes>,
    freed: Option<&FreedTypes>,
) -> Vec<Group> {
    let mut replay = Replay::default();
    replay.include_startup = include_startup;
    replay.sampling = index.settings.sampling();
    let mut live = LiveAt {
        types,
        replay,
        allocators: HashMap::new(),
        target,
        result: None,
        follow: freed.map(|rows| (rows, HashMap::new())),
        position: 0,
    };
    if target == Some(0) {
        return Vec::new();
    }
    stream::run(file, index, &mut live, BatchLimits::default());
    if live.result.is_none() {
        live.take();
    }
    live.finish();
    sorted(live.result.unwrap_or_default())
}

/// The groups of an aggregated capture's set (its sums keep no allocator: each group is
/// given malloc's).
pub fn of_set(set: &AllocSet) -> Vec<Group> {
    let groups = set
        .groups
        .iter()
        .map(|(&(stack, thread), &sum)| ((stack, thread, Allocator::Malloc as u8, NO_TYPE), sum))
        .collect();
    sorted(groups)
}

/// Finds the temporary allocations with the reporter's replay, noting each one's allocator.
struct Temporaries {
    replay: Replay,
    /// The script's start was passed (the replay forgets the start-up's temporaries there,
    /// unless they are included, and so are they forgotten here).
    started: bool,
    /// Each live heap block's (allocator, stack, thread) by address.
    blocks: HashMap<u64, (u8, u64, u32)>,
    groups: HashMap<Key, Sum>,
}

impl Temporaries {
    /// Forgets the start-up's temporaries once the replay passed the script's start.
    fn after_replay(&mut self) {
        if !self.started && self.replay.script_start.is_some() {
            self.started = true;
            if !self.replay.include_startup {
                self.groups.clear();
            }
        }
    }

    fn count_of(&self, stack: u64, thread: u32) -> Sum {
        self.replay
            .temporary
            .as_ref()
            .and_then(|t| t.set.groups.get(&(stack, thread)).copied())
            .unwrap_or_default()
    }
}

impl Consumer for Temporaries {
    type Summary = ();

    fn summarize(_: &DecodedChunk) {}

    fn chunk_loaded(&mut self, _: Option<usize>, _: ChunkTables, _: Option<()>) {}

    fn events(&mut self, thread: usize, events: &[Event]) {
        // Runs without a free of a known block go to the replay whole.
        let mut run = 0;
        for (i, e) in events.iter().enumerate() {
            let c = e.code();
            if is_heap_alloc(c) {
                self.blocks.insert(e.addr, (c, e.stack(), thread as u32));
                continue;
            }
            if c != code::FREE && c != code::PY_FREE {
                continue;
            }
            let Some((allocator, stack, owner)) = self.blocks.remove(&e.addr) else {
                continue;
            };
            self.replay.events(thread, &events[run..i]);
            self.after_replay();
            let before = self.count_of(stack, owner);
            self.replay.events(thread, &events[i..=i]);
            let after = self.count_of(stack, owner);
            run = i + 1;
            if after.count > before.count {
                let g = self
                    .groups
                    .entry((stack, owner, allocator, NO_TYPE))
                    .or_default();
                g.count += after.count - before.count;
                g.bytes += after.bytes.saturating_sub(before.bytes);
            }
        }
        self.replay.events(thread, &events[run..]);
        self.after_replay();
    }
}

/// The temporary allocations (freed by their thread before it made `threshold` more), grouped.
pub fn temporary(
    file: &[u8],
    index: &Index,
    include_startup: bool,
    threshold: usize,
) -> Vec<Group> {
    let mut replay = Replay::with_temporary(Some(threshold.max(1)));
    replay.include_startup = include_startup;
    replay.sampling = index.settings.sampling();
    let mut t = Temporaries {
        replay,
        started: false,
        blocks: HashMap::new(),
        groups: HashMap::new(),
    };
    stream::run(file, index, &mut t, BatchLimits::default());
    sorted(t.groups)
}
