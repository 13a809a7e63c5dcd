//! The reader's short way through a run of allocations each freed by the next record.
//!
//! Most blocks live briefly: a chunk is mostly allocations, each followed by a free coded by
//! address, whose fields are one byte each (a short tick delta, a reused address found a few
//! candidates back, a size below 32 KiB, a stack id below 128). Read record by record, each
//! field moves its own stream's reader: nine readers, more than the registers hold, so every
//! read loads and stores a position. In such a run every one-byte stream moves by one byte a
//! pair and the delta stream by one byte (two deltas) a pair, so one count stands for all of
//! them; the address and stack streams keep their own places (their values take one or two
//! bytes). The run ends at the first pair that does not fit (a record of another kind, a
//! longer value, a long tick delta, an escape, a distance the lists do not hold): the general
//! loop takes it from there, and reports any damage, as it would have without this way.

use super::join::{hand_over, is_plain_addr_free, AllocFreed, Readers, Running, NO_DELTA};
use super::{block_end, Code};
use crate::record::Allocator;
use crate::varint::get_short;

/// The chunk's address lists and how much of each is written (see `join::visit_with`).
pub(super) struct Lists<'l> {
    pub(super) candidates: &'l mut [u64],
    pub(super) allocs: &'l mut [u64],
    pub(super) nc: usize,
    pub(super) na: usize,
}

/// Reads the pairs that start at record `start` (an allocation: `heads[start]`), as many as
/// fit, handing each to `sink` as the general loop would; moves the readers, the running
/// values and the lists past them. Returns how many pairs it read (0: the first does not fit).
// Out of the loop: a function of its own gets registers of its own (inlined into the record
// loop, its values were kept on the stack).
#[inline(never)]
pub(super) fn pair_run<'a, S: crate::columns::RecordSink<'a>>(
    heads: &[u8],
    start: usize,
    r: &mut Readers<'a>,
    run: &mut Running,
    lists: &mut Lists,
    sink: &mut S,
) -> usize {
    // An odd number of timed records so far leaves the second delta of the last byte waiting:
    // then a pair's allocation takes that one and its free the first of the next byte.
    match run.pending == NO_DELTA {
        true => pairs::<false, S>(heads, start, r, run, lists, sink),
        false => pairs::<true, S>(heads, start, r, run, lists, sink),
    }
}

/// [`pair_run`], with a delta waiting at the start (`SHIFTED`) or not.
#[inline(always)]
fn pairs<'a, const SHIFTED: bool, S: crate::columns::RecordSink<'a>>(
    heads: &[u8],
    start: usize,
    r: &mut Readers<'a>,
    run: &mut Running,
    lists: &mut Lists,
    sink: &mut S,
) -> usize {
    let types = heads.get(start..).unwrap_or(&[]);
    let (addrs, stacks) = (r.addrs.rest(), r.stacks.rest());
    let mut waiting = run.pending;
    // The running values in locals (registers), written back at the end.
    let (mut tick, mut prev_alloc, mut prev_free) = (run.tick, run.prev_alloc, run.prev_free);
    let (mut pa, mut ps) = (0usize, 0usize);
    let (mut nc, mut na) = (lists.nc, lists.na);
    let mut n = 0;
    // One step for the one-byte streams (the run ends before a longer value).
    let steps = types
        .chunks_exact(2)
        .zip(r.deltas.rest())
        .zip(r.lows.rest())
        .zip(r.highs.rest())
        .zip(r.free_addrs.rest());
    for ((((heads, &pair), &lo), &hi), &fa) in steps {
        let (ta, tf) = (heads[0], heads[1]);
        let Some(&allocator) = Allocator::ALL.get(usize::from(ta)) else {
            break;
        };
        // One-byte sizes' high parts and free codes, and a delta byte as written.
        if !is_plain_addr_free(tf) || (hi | fa | pair) & 0x80 != 0 || pair >> 6 != 0 {
            break;
        }
        let (first, second) = (u64::from(pair & 7), u64::from(pair >> 3));
        let (to_alloc, to_free) = match SHIFTED {
            false => (first, second),
            true => (waiting, first),
        };
        // A long delta (7) is read from the tick stream: the general loop's.
        if to_alloc == 7 || to_free == 7 {
            break;
        }
        let (mut pa2, mut ps2) = (pa, ps);
        let (Some(a), Some(stack)) = (get_short(addrs, &mut pa2), get_short(stacks, &mut ps2))
        else {
            break;
        };
        let addr = match Code::without_escape(a) {
            // The candidate `d + 1` back, when the list holds it.
            Some(Code::Found(d)) if d < nc as u64 => lists.candidates[nc - 1 - d as usize],
            Some(Code::Delta(delta)) => prev_alloc.wrapping_add(delta),
            _ => break,
        };
        let freed = match Code::without_escape(u64::from(fa)) {
            // The allocation `d` back, counting this pair's (1).
            Some(Code::Found(1)) => addr,
            Some(Code::Found(d)) if d >= 2 && d <= na as u64 + 1 => {
                lists.allocs[na + 1 - d as usize]
            }
            Some(Code::Delta(delta)) => prev_free.wrapping_add(delta),
            _ => break,
        };
        // The pair fits: take it.
        (pa, ps) = (pa2, ps2);
        if SHIFTED {
            waiting = second;
        }
        let size = (u64::from(hi) << 8) | u64::from(lo);
        // (nc + 1, na < the records so far: within the lists, sized one entry per record.)
        lists.candidates[nc] = block_end(allocator, addr, size);
        lists.candidates[nc + 1] = freed;
        lists.allocs[na] = addr;
        (nc, na) = (nc + 2, na + 1);
        (prev_alloc, prev_free) = (addr, freed);
        let allocated = tick.wrapping_add(to_alloc);
        tick = allocated.wrapping_add(to_free);
        let b = AllocFreed {
            tick: allocated,
            allocator,
            addr,
            size,
            stack,
            freed: tick,
            python: tf != crate::record::rtype::FREE_ADDR,
            object_type: 0,
        };
        hand_over(sink, b, freed);
        n += 1;
    }
    if n > 0 {
        (run.tick, run.prev_alloc, run.prev_free) = (tick, prev_alloc, prev_free);
        run.pending = waiting;
        (lists.nc, lists.na) = (nc, na);
        for reader in [&mut r.deltas, &mut r.lows, &mut r.highs, &mut r.free_addrs] {
            reader.pos += n;
        }
        r.addrs.pos += pa;
        r.stacks.pos += ps;
    }
    n
}
