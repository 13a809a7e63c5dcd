//! Replaying the merged event stream over the live heap: live bytes at every point, the exact
//! peak, and what was live at the exit snapshot.

use super::heap::{Block, LiveHeap};
use super::mappings::{Mapping, Mappings};
use crate::capture::event::{code, Event};
use memtrace_format::{Allocator, Marker};

/// Live memory at one point of the timeline.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// The tick of the event at that point (None: before any event).
    pub tick: Option<u64>,
    /// How many events had been replayed, that one included.
    pub event_index: u64,
    /// Heap blocks plus mapped bytes.
    pub bytes: u64,
    /// Live heap blocks plus live mappings.
    pub allocations: u64,
}

#[derive(Debug, Default)]
pub struct Replay {
    pub heap: LiveHeap,
    pub maps: Mappings,
    /// The highest live bytes seen (the first time it was reached).
    pub peak: Snapshot,
    /// Live memory at the first exit-snapshot marker.
    pub exit: Option<Snapshot>,
    /// Live memory when a Python run's script started (the interpreter's start-up).
    pub script_start: Option<Snapshot>,
    /// Events replayed.
    pub events: u64,
    /// The first half of an mremap moved a tracked mapping: its second half adds the new one.
    remap_pending: bool,
}

impl Replay {
    pub fn live_bytes(&self) -> u64 {
        self.heap.bytes().wrapping_add(self.maps.bytes())
    }

    pub fn live_allocations(&self) -> u64 {
        self.heap.count() + self.maps.count()
    }

    fn snapshot(&self, tick: u64, event_index: u64) -> Snapshot {
        Snapshot {
            tick: Some(tick),
            event_index,
            bytes: self.live_bytes(),
            allocations: self.live_allocations(),
        }
    }

    #[inline]
    fn check_peak(&mut self, tick: u64, event_index: u64) {
        let live = self.live_bytes();
        if live > self.peak.bytes {
            self.peak = self.snapshot(tick, event_index);
        }
    }

    /// Replays a run of events of thread `thread`.
    pub fn events(&mut self, thread: usize, events: &[Event]) {
        let thread = thread as u32;
        let base = self.events;
        for (i, ev) in events.iter().enumerate() {
            let index = base + i as u64 + 1;
            let c = ev.code();
            if c < code::ALLOC_END {
                if c == Allocator::Mmap as u8 {
                    self.maps.add(
                        ev.addr,
                        Mapping {
                            len: ev.size,
                            stack: ev.stack(),
                            thread,
                        },
                    );
                } else {
                    self.heap
                        .alloc(ev.addr, Block::new(ev.size, ev.stack(), thread, c));
                }
                self.check_peak(ev.tick, index);
                continue;
            }
            match c {
                code::FREE | code::PY_FREE => {
                    self.heap.free(ev.addr);
                }
                code::MUNMAP => {
                    self.maps.remove(ev.addr, ev.size);
                }
                code::MREMAP_OLD => {
                    self.remap_pending = self.maps.overlaps(ev.addr, ev.size);
                    if self.remap_pending {
                        self.maps.remove(ev.addr, ev.size);
                    }
                }
                code::MREMAP_NEW if std::mem::take(&mut self.remap_pending) => {
                    self.maps.add(
                        ev.addr,
                        Mapping {
                            len: ev.size,
                            stack: ev.stack(),
                            thread,
                        },
                    );
                    self.check_peak(ev.tick, index);
                }
                code::MARKER
                    if self.exit.is_none()
                        && Marker::from_code(ev.size) == Marker::ExitSnapshot =>
                {
                    self.exit = Some(self.snapshot(ev.tick, index));
                }
                code::MARKER
                    if self.script_start.is_none()
                        && Marker::from_code(ev.size) == Marker::ScriptStart =>
                {
                    self.script_start = Some(self.snapshot(ev.tick, index));
                }
                _ => {}
            }
        }
        self.events = base + events.len() as u64;
    }
}
