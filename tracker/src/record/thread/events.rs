//! The recording entry points, called by the hooks with the re-entrancy flag set: each claims
//! the calling thread's state, encodes one event and publishes it. A thread whose state was
//! already given back (after its exit destructors) writes a one-record chunk of its own.

use super::allocated;
use super::owner::{acquire, release};
use super::state::{count_in, prefetch, ThreadState};
use crate::capture::CAPTURE;
use crate::{aggregate, clock, sample, sys, tls};
use memtrace_format::columns::ColumnWriter;
use memtrace_format::record::MAX_EVENT_LEN;
use memtrace_format::{Allocator, ChunkCodec, ChunkHeader, ChunkKind, Encoder, Marker};
use std::sync::atomic::Ordering;

impl ThreadState {
    #[inline]
    fn alloc(&mut self, t: &mut tls::Tls, allocator: Allocator, addr: u64, size: u64, ret: u64) {
        let lookup = self.writer.alloc_lookup(allocator, addr, size);
        for p in self.writer.alloc_lookups(&lookup) {
            prefetch(p);
        }
        allocated::add(self, size);
        let stack = self.stack_of(t, ret);
        if !self.room() {
            return;
        }
        let tick = clock::event_tick(t);
        self.writer
            .alloc_looked_up(self.payload(), lookup, tick, stack);
        self.commit(tick);
    }

    #[inline]
    fn free(&mut self, python: bool, addr: u64, tick: u64) {
        if self.room() {
            self.writer.free(self.payload(), python, tick, addr);
            self.commit(tick);
        }
    }

    /// An event other than an allocation or a free, written by `f`.
    pub(super) fn event(&mut self, tick: u64, f: impl FnOnce(&mut ColumnWriter, &mut [u8])) {
        if self.room() {
            let buf = self.payload();
            f(&mut self.writer, buf);
            self.commit(tick);
        }
    }
}

/// An allocation: sampling's countdown in the hook itself (an allocation sampling leaves out
/// costs no call), the record out of line.
#[inline(always)]
pub fn record_alloc(t: &mut tls::Tls, allocator: Allocator, addr: u64, size: u64, ret: u64) {
    if sample::take_alloc(t, allocator, addr, size) {
        record_alloc_taken(t, allocator, addr, size, ret);
    }
}

#[inline(never)]
fn record_alloc_taken(t: &mut tls::Tls, allocator: Allocator, addr: u64, size: u64, ret: u64) {
    if aggregate::on() {
        return aggregate_alloc(t, allocator, addr, size, ret);
    }
    if let Some(s) = acquire(t) {
        s.alloc(t, allocator, addr, size, ret);
        release(s);
    } else {
        allocated::add_stateless(size);
        dead_thread_event(t, |enc, buf, tick| {
            enc.alloc(buf, 0, allocator, tick, addr, size, 0)
        });
    }
}

/// An allocation of an aggregated capture: its stack (whose table records the thread writes
/// as usual) and sums instead of an event.
#[inline]
fn aggregate_alloc(t: &mut tls::Tls, allocator: Allocator, addr: u64, size: u64, ret: u64) {
    // Its slot is loaded while the stack is walked.
    prefetch(aggregate::slot_hint(addr));
    let Some(s) = acquire(t) else {
        if !CAPTURE.is_open() {
            // Writing failed and recording stopped: counted as dropped, as a full capture's
            // events are (the sums since the last written snapshot are counted at the end).
            return count_dropped(t);
        }
        // The thread's state was given back (its last key destructors run): counted without a
        // stack, as a full capture records it.
        if t.exited != 0 && t.serial != 0 {
            allocated::add_stateless(size);
            let serial = t.serial;
            let tick = aggregate::now();
            aggregate::alloc(
                aggregate::identity(t),
                serial,
                0,
                allocator,
                addr,
                size,
                tick,
            );
        }
        return;
    };
    allocated::add(s, size);
    let stack = s.stack_of(t, ret);
    let serial = s.serial;
    let tick = aggregate::now();
    if crate::rss::due(tick) {
        s.sample_rss(tick);
    }
    release(s);
    aggregate::alloc(
        aggregate::identity(t),
        serial,
        stack,
        allocator,
        addr,
        size,
        tick,
    );
}

/// Starts loading what recording a free of `addr` will look at, for a caller that records it
/// after the real free (with the tick it read before): the real free hides the cache miss.
#[inline]
pub fn prefetch_free(t: &tls::Tls, addr: u64) {
    if aggregate::on() {
        return prefetch(aggregate::slot_hint(addr));
    }
    let p = t.state as *const ThreadState;
    if p.is_null() {
        return;
    }
    // SAFETY: states live forever and only this thread writes its own; only the address of a
    // table slot is computed, for a hint.
    let s = unsafe { &*p };
    prefetch(s.writer.free_lookup(addr));
}

/// The time of a free, read before the real free (see [`record_free_taken`]); an aggregated
/// capture orders nothing by it and does without it (aggregate::now).
#[inline(always)]
pub fn free_tick(t: &mut tls::Tls) -> u64 {
    if aggregate::on() {
        0
    } else {
        clock::event_tick(t)
    }
}

/// A free of `addr`; `tick` is when it happened if the caller read the clock already (before
/// calling the real function: then another thread's reuse of the block is after it), else now.
#[inline]
pub fn record_free(t: &mut tls::Tls, python: bool, addr: u64, tick: Option<u64>) {
    if sample::take_free(addr) {
        prefetch_free(t, addr);
        record_free_taken(t, python, addr, tick);
    }
}

/// Whether a free of `addr` is to be recorded, asked before the real free (and then recorded
/// with [`record_free_taken`]): with sampling, a free of a block that was not sampled costs
/// the hook nothing more, not even the clock.
#[inline(always)]
pub fn take_free(addr: u64) -> bool {
    sample::take_free(addr)
}

/// Whether a free of `addr` is surely not recorded (sampling, and no sample near it): the
/// hook passes it on at once.
#[inline(always)]
pub fn surely_unrecorded_free(addr: u64) -> bool {
    sample::surely_unsampled(addr)
}

/// [`record_free`] of a free that [`take_free`] said is to be recorded (the caller prefetched
/// what it looks at: [`prefetch_free`]). An aggregated capture's free is a call of its own:
/// it needs few registers, where the full one saves and restores the writer's many.
#[inline(always)]
pub fn record_free_taken(t: &mut tls::Tls, python: bool, addr: u64, tick: Option<u64>) {
    if aggregate::on() {
        return aggregate::free(aggregate::identity(t), python, addr);
    }
    record_free_written(t, python, addr, tick);
}

/// A free of a full capture, written as an event.
#[inline(never)]
fn record_free_written(t: &mut tls::Tls, python: bool, addr: u64, tick: Option<u64>) {
    let tick = tick.unwrap_or_else(|| clock::event_tick(t));
    if let Some(s) = acquire(t) {
        s.free(python, addr, tick);
        release(s);
    } else {
        dead_thread_event(t, |enc, buf, _| enc.free_addr(buf, 0, python, tick, addr));
    }
}

/// A free of a block of the object domain that held an object of type `object_type` (0: not
/// known), taken by [`take_free`]; `tick` read before the real free.
#[inline]
pub fn record_typed_free(t: &mut tls::Tls, addr: u64, object_type: u64, tick: u64) {
    if let Some(s) = acquire(t) {
        if s.room() {
            if object_type != 0 {
                s.writer.typed_free(s.payload(), tick, addr, object_type);
            } else {
                s.writer.free(s.payload(), true, tick, addr);
            }
            s.commit(tick);
        }
        release(s);
    } else {
        dead_thread_event(t, |enc, buf, _| {
            enc.any_free(buf, 0, true, tick, addr, object_type)
        });
    }
}

/// An allocation the allocator refused (it returned NULL): the request, where it was made
/// (memtrace_format::failed). Always recorded, sampling or not: it is rare and it is what a
/// program that runs out of memory died of.
#[cold]
pub fn record_failed(t: &mut tls::Tls, allocator: Allocator, size: u64, ret: u64) {
    use memtrace_format::failed::{self, Failed};
    // The program reads errno (ENOMEM) next.
    let _errno = sys::ErrnoGuard::new();
    let tick = clock::event_tick(t);
    let Some(s) = acquire(t) else {
        return;
    };
    let stack = s.stack_of(t, ret);
    let mut payload = [0u8; failed::MAX_PAYLOAD];
    let n = failed::encode(
        &mut payload,
        Failed {
            allocator: allocator as u64,
            size,
            stack,
        },
    );
    s.event(tick, |w, buf| {
        w.extended(buf, tick, failed::FAILED_KIND, &payload[..n])
    });
    release(s);
}

pub fn record_munmap(t: &mut tls::Tls, addr: u64, len: u64, tick: u64) {
    if aggregate::on() {
        return aggregate::munmap(aggregate::identity(t), addr, len, tick);
    }
    if let Some(s) = acquire(t) {
        s.event(tick, |w, buf| w.munmap(buf, tick, addr, len));
        release(s);
    } else {
        dead_thread_event(t, |enc, buf, _| enc.munmap(buf, 0, tick, addr, len));
    }
}

pub fn record_mremap(t: &mut tls::Tls, old: (u64, u64), new: (u64, u64), ret: u64, tick: u64) {
    if let Some(s) = acquire(t) {
        // The new mapping's stack is an mmap's: the Python stack (or the native one with
        // --native), not only the call site (`mmap.resize` showed as the mmap module's code).
        let stack = s.stack_of(t, ret);
        allocated::add(s, new.1);
        if aggregate::on() {
            let serial = s.serial;
            release(s);
            return aggregate::mremap(aggregate::identity(t), serial, stack, old, new, tick);
        }
        s.event(tick, |w, buf| w.mremap(buf, tick, old, new, stack));
        release(s);
    } else {
        allocated::add_stateless(new.1);
        dead_thread_event(t, |enc, buf, _| {
            enc.mremap(buf, 0, tick, old.0, old.1, new.0, new.1, 0)
        });
    }
}

pub fn record_marker(t: &mut tls::Tls, marker: Marker) {
    if aggregate::on() {
        aggregate::marker(marker);
    }
    let tick = clock::event_tick(t);
    if let Some(s) = acquire(t) {
        s.event(tick, |w, buf| w.marker(buf, tick, marker));
        release(s);
    } else {
        dead_thread_event(t, |enc, buf, _| enc.marker(buf, 0, tick, marker));
    }
}

/// An event of a thread whose state was already released (after its exit destructors): written
/// straight to the capture as a one-record chunk continuing the thread's sequence.
#[cold]
fn dead_thread_event(t: &mut tls::Tls, f: impl FnOnce(&mut Encoder, &mut [u8], u64) -> usize) {
    if t.exited == 0 || t.serial == 0 || !CAPTURE.is_open() {
        // Once recording has stopped (the capture is being finished), a late event is after
        // the end, not lost.
        if crate::ACTIVE.load(Ordering::Acquire) {
            count_dropped(t);
        }
        return;
    }
    let _errno = sys::ErrnoGuard::new();
    let mut buf = [0u8; MAX_EVENT_LEN];
    let mut enc = Encoder::new();
    let tick = clock::event_tick(t);
    let n = f(&mut enc, &mut buf, tick);
    let (flush_tick, flush_mono_ns) = clock::pair();
    let header = ChunkHeader {
        kind: ChunkKind::Events,
        codec: ChunkCodec::Raw,
        flags: 0,
        payload_crc: 0,
        thread_serial: t.serial,
        tid: sys::gettid(),
        seq: t.next_seq,
        stored_len: n as u32,
        raw_len: n as u32,
        record_count: 1,
        first_tick: tick,
        last_tick: tick,
        flush_mono_ns,
        flush_tick,
    };
    if CAPTURE.write_chunk(&header, &buf[..n]) {
        t.next_seq += 1;
    } else {
        count_dropped(t);
    }
}

/// One event of the calling thread lost: counted in its own state when it has one (after a
/// write failure every thread counts this way, at full speed), else process-wide.
fn count_dropped(t: &tls::Tls) {
    let p = t.state as *const ThreadState;
    if p.is_null() {
        CAPTURE.records_dropped.fetch_add(1, Ordering::Relaxed);
    } else {
        // SAFETY: states live forever; `dropped` is this thread's own counter.
        count_in(unsafe { &(*p).dropped });
    }
}
