//! How each part of a finished analysis is stored in the index: everything a report reads of
//! an [`Analysis`] except what the capture gives back at once (its chunk index, by a scan of
//! the chunk headers, and the clock).

use super::codec::{Reader, Store, Writer};
use crate::analysis::buckets::BucketData;
use crate::analysis::objects::{ExitTypes, TypeRow};
use crate::analysis::replay::{Frozen, Replay, Snapshot};
use crate::analysis::series::Series;
use crate::analysis::sets::AllocSet;
use crate::analysis::tables::{Frame, Tables};
use crate::analysis::temporary::Temporary;
use crate::analysis::totals::{Sum, Totals};
use crate::analysis::ThreadStats;
use crate::capture::decode::Module;
use memtrace_format::failed::Failed;
use memtrace_format::objects::ObjectTypes;
use memtrace_format::record::Segment;

/// Implements [`Store`] for a struct by listing its fields, in order.
macro_rules! fields {
    ($t:ty { $($f:ident),* $(,)? }) => {
        impl Store for $t {
            fn put(&self, w: &mut Writer) {
                $(w.put(&self.$f);)*
            }
            fn get(r: &mut Reader) -> Option<$t> {
                Some(Self { $($f: r.get()?),* })
            }
        }
    };
}

fields!(Sum { count, bytes });
fields!(Snapshot {
    tick,
    event_index,
    bytes,
    allocations
});
fields!(AllocSet { groups });
fields!(Frozen {
    peak,
    exit,
    live_bytes,
    live_allocations
});
fields!(Totals {
    allocs,
    frees,
    histogram,
    allocators,
    free_kinds,
    by_stack
});
fields!(Segment {
    vaddr,
    memsz,
    file_offset
});
fields!(Module {
    base,
    path,
    build_id,
    segments
});
fields!(Failed {
    allocator,
    size,
    stack
});
fields!(ObjectTypes { name, addrs });
fields!(ThreadStats {
    serial,
    tid,
    name,
    allocs,
    by_stack
});
fields!(TypeRow {
    name,
    objects,
    blocks
});
/// The types at exit but each block's (`block_types`, per object: a capture with a million
/// objects live at exit had an index of megabytes, over its bound, so it had none). No report
/// reads them from an analysis (the Python reader's records do, and read the capture whole).
impl Store for ExitTypes {
    fn put(&self, w: &mut Writer) {
        w.put(&self.rows);
        w.put(&self.untyped);
        w.put(&self.by_site);
        w.put(&hashbrown::HashMap::<u64, (usize, u64)>::new());
    }
    fn get(r: &mut Reader) -> Option<ExitTypes> {
        Some(ExitTypes {
            rows: r.get()?,
            untyped: r.get()?,
            by_site: r.get()?,
            block_types: r.get()?,
        })
    }
}
fields!(BucketData {
    t0,
    width,
    first,
    maxes,
    histories,
    allocators
});

impl Store for Frame {
    fn put(&self, w: &mut Writer) {
        match *self {
            Frame::Native(addr) => {
                w.u64(0);
                w.u64(addr);
            }
            Frame::Python {
                function,
                file,
                line,
            } => {
                w.u64(1);
                w.put(&(function, file, line));
            }
        }
    }
    fn get(r: &mut Reader) -> Option<Frame> {
        match r.u64()? {
            0 => Some(Frame::Native(r.u64()?)),
            1 => {
                let (function, file, line) = r.get()?;
                Some(Frame::Python {
                    function,
                    file,
                    line,
                })
            }
            _ => None,
        }
    }
}

/// A series' points as differences from the point before (they grow, mostly by little):
/// a tenth of the bytes once compressed.
impl Store for Series {
    fn put(&self, w: &mut Writer) {
        w.put(&self.capacity);
        w.put(&self.shift);
        w.u64(self.points.len() as u64);
        let mut prev = (0u64, 0u64, 0u64);
        for &p in &self.points {
            w.u64(p.0.wrapping_sub(prev.0));
            w.u64(p.1.wrapping_sub(prev.1));
            w.put(&(p.2.wrapping_sub(prev.2) as i64));
            prev = p;
        }
        w.put(&self.steps);
        // Events rise with the points: by their differences.
        w.u64(self.events.len() as u64);
        let mut prev = 0u64;
        for &e in &self.events {
            w.put(&(e.wrapping_sub(prev) as i64));
            prev = e;
        }
    }
    fn get(r: &mut Reader) -> Option<Series> {
        let capacity = r.get()?;
        let shift = r.get()?;
        let n = r.count()?;
        let mut points = Vec::with_capacity(n);
        let mut prev = (0u64, 0u64, 0u64);
        for _ in 0..n {
            let bucket = prev.0.wrapping_add(r.u64()?);
            let tick = prev.1.wrapping_add(r.u64()?);
            let value = prev.2.wrapping_add(r.get::<i64>()? as u64);
            prev = (bucket, tick, value);
            points.push(prev);
        }
        let steps = r.get()?;
        // A series of steps' points carry their events (none for the others).
        let n = r.count()?;
        let mut events = Vec::with_capacity(n);
        let mut prev = 0u64;
        for _ in 0..n {
            prev = prev.wrapping_add(r.get::<i64>()? as u64);
            events.push(prev);
        }
        Some(Series {
            capacity,
            shift,
            points,
            events,
            steps,
        })
    }
}

impl Store for Temporary {
    fn put(&self, w: &mut Writer) {
        w.put(&self.threshold());
        w.put(&self.set);
    }
    fn get(r: &mut Reader) -> Option<Temporary> {
        let mut t = Temporary::new(r.get()?);
        t.set = r.get()?;
        Some(t)
    }
}

/// The tables but their frame view, which the report chooses, and the object-types records:
/// the analysis reads them once, into [`ExitTypes`] (their addresses, one per object live at
/// exit, were most of an index, too large for its bound).
impl Store for Tables {
    fn put(&self, w: &mut Writer) {
        w.put(&self.stacks);
        w.put(&self.frames);
        w.put(&self.strings);
        w.put(&self.modules);
        w.put(&self.failed);
        w.put(&Vec::<ObjectTypes>::new());
        w.put(&self.type_names);
    }
    fn get(r: &mut Reader) -> Option<Tables> {
        Some(Tables {
            stacks: r.get()?,
            frames: r.get()?,
            strings: r.get()?,
            modules: r.get()?,
            failed: r.get()?,
            objects: r.get()?,
            type_names: r.get()?,
            frame_view: Default::default(),
        })
    }
}

/// A frozen replay: its moments, series and the sets it kept (never a live heap: the index is
/// written after [`Replay::freeze`]).
impl Store for Replay {
    fn put(&self, w: &mut Writer) {
        w.put(&self.peak);
        w.put(&self.exit);
        w.put(&self.script_start);
        w.put(&self.events);
        w.put(&self.frees);
        w.put(&self.include_startup);
        w.put(&self.heap_series);
        w.put(&self.resident_series);
        w.put(&self.temporary);
        w.put(&self.frozen);
        w.put(&self.peak_samples);
        w.put(&self.peak_weighed);
    }
    fn get(r: &mut Reader) -> Option<Replay> {
        let mut replay = Replay::default();
        replay.peak = r.get()?;
        replay.exit = r.get()?;
        replay.script_start = r.get()?;
        replay.events = r.get()?;
        replay.frees = r.get()?;
        replay.include_startup = r.get()?;
        replay.heap_series = r.get()?;
        replay.resident_series = r.get()?;
        replay.temporary = r.get()?;
        replay.frozen = r.get::<Option<Frozen>>()?;
        replay.frozen.as_ref()?;
        replay.peak_samples = r.get()?;
        replay.peak_weighed = r.get()?;
        Some(replay)
    }
}
