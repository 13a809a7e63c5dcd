//! Byte sampling (`memtrace run --sample-bytes N`): each byte a thread allocates is sampled
//! with probability 1/N, as tcmalloc and jemalloc sample their heap profiles, so that a
//! long-running program pays for one event per N bytes instead of one per call.
//!
//! Each thread counts down the bytes to its next sample (in its TLS block: no lock, no
//! allocation). The gaps between samples are drawn uniformly between N/2 and 3N/2, the
//! thread's first one from the distribution that makes every byte's chance exactly 1/N
//! (memtrace_format::settings::Gaps::Uniform). A request smaller than N/2 then holds at most
//! one sample, with probability s/N, and stands for N bytes; requests of N/2 bytes or more,
//! and mappings, are always recorded. Exponential gaps (tcmalloc's) would make each request's
//! chance independent of the others'; these spread the samples evenly over the bytes
//! allocated, which halves the error of the memory estimated live at a moment
//! (docs/TRACKER.md, "Byte sampling on the hot path", has the figures).
//!
//! Only the frees of sampled blocks are recorded: their addresses are kept in a lock-free
//! open-addressing set of fixed size (mapped once, touched as used), probed over a short
//! window. Should the set ever be full (millions of live samples), every free is recorded from
//! then on: readers ignore frees of blocks they do not know, so the capture stays right, only
//! larger.

use crate::{sys, tls};
use memtrace_format::Allocator;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicU8, Ordering};

/// N, or 0 when every allocation is recorded.
static SAMPLE_BYTES: AtomicU64 = AtomicU64::new(0);
/// MEMTRACE_SAMPLE_SEED: fixed random streams (tests); 0 seeds from the clock.
static SEED: AtomicU64 = AtomicU64::new(0);
/// Threads seeded so far (each gets its own stream of the fixed seed).
static SEEDED: AtomicU64 = AtomicU64::new(0);
/// Which process of a family this is (0 for the first), mixed into a fixed seed so that each
/// process has its own streams: a fork child's own line of forks and the image's exec count.
static LINEAGE: AtomicU64 = AtomicU64::new(0);
/// Forks this process made, so that each child's lineage differs from its siblings'.
static FORKS: AtomicU64 = AtomicU64::new(0);

const SET_BITS: u32 = 20;
const SET_SLOTS: usize = 1 << SET_BITS;
/// Slots probed from an address's home slot.
const WINDOW: usize = 64;
const EMPTY: u64 = 0;
/// A slot whose address was freed (addresses are never 0 or 1).
const GONE: u64 = 1;

static SET: AtomicPtr<AtomicU64> = AtomicPtr::new(core::ptr::null_mut());

/// A counting filter in front of the set: how many live samples hash to each counter. A free
/// (nearly always of a block that was not sampled) reads one byte of this small table, which
/// stays in the cache, instead of a slot of the large set. A counter that reached 255 stays
/// there (it only costs a probe of the set).
const FILTER_BITS: u32 = 16;
const FILTER_LEN: usize = 1 << FILTER_BITS;
/// The address bytes each counter stands for.
const FILTER_SPAN_BITS: u32 = 8;
static FILTER: AtomicPtr<AtomicU8> = AtomicPtr::new(core::ptr::null_mut());
/// The set was full once: every free is recorded.
static OVERFLOW: AtomicBool = AtomicBool::new(false);

/// Turns sampling on (n > 0) for the capture starting now, in the `exec`th image of the
/// process.
pub fn configure(n: u64, seed: u64, exec: u32) {
    if exec > 0 {
        LINEAGE.store(
            memtrace_format::settings::splitmix(
                LINEAGE.load(Ordering::Relaxed) ^ u64::from(exec) << 32,
            ),
            Ordering::Relaxed,
        );
    }
    if n > 0 && SET.load(Ordering::Acquire).is_null() {
        match sys::map_anon(SET_SLOTS * 8 + FILTER_LEN) {
            Some(p) => {
                // SAFETY: the filter is the last FILTER_LEN bytes of the same mapping.
                let filter = unsafe { p.add(SET_SLOTS * 8) };
                FILTER.store(filter as *mut AtomicU8, Ordering::Release);
                SET.store(p as *mut AtomicU64, Ordering::Release);
            }
            None => OVERFLOW.store(true, Ordering::Relaxed),
        }
    }
    SEED.store(seed, Ordering::Relaxed);
    SAMPLE_BYTES.store(n, Ordering::Relaxed);
}

/// Before a fork, in the parent: the child to come gets the next number.
pub fn fork_prepare() {
    FORKS.fetch_add(1, Ordering::Relaxed);
}

/// In a fork child: the forking thread's countdown and random state came from the parent (as
/// its siblings' did), so all of them would sample the same requests; they start afresh, as a
/// new thread's do, in a stream of the child's own.
pub fn fork_child(t: &mut tls::Tls) {
    let line = LINEAGE.load(Ordering::Relaxed) ^ FORKS.load(Ordering::Relaxed);
    LINEAGE.store(memtrace_format::settings::splitmix(line), Ordering::Relaxed);
    FORKS.store(0, Ordering::Relaxed);
    SEEDED.store(0, Ordering::Relaxed);
    t.sample_rng = 0;
    t.sample_left = 0;
}

/// Whether an allocation of `size` bytes is recorded; when sampling, a recorded block's
/// address joins the set (after the real allocation, so its free finds it).
#[inline(always)]
pub fn take_alloc(t: &mut tls::Tls, allocator: Allocator, addr: u64, size: u64) -> bool {
    let n = SAMPLE_BYTES.load(Ordering::Relaxed);
    if n == 0 || allocator == Allocator::Mmap {
        return true;
    }
    // Below half of N: at most one sample in the request (a gap is at least N/2).
    if size < n >> 1 {
        t.sample_left -= size as i64;
        if t.sample_left > 0 {
            return false;
        }
        if !crossed(t, n, size) {
            return false;
        }
    }
    insert(addr);
    true
}

/// Whether a free of `addr` is recorded: when sampling, only that of a sampled block.
#[inline(always)]
pub fn take_free(addr: u64) -> bool {
    if SAMPLE_BYTES.load(Ordering::Relaxed) == 0 {
        return true;
    }
    remove(addr) || OVERFLOW.load(Ordering::Relaxed)
}

/// Whether a free of `addr` is surely not to be recorded: sampling is on and no live sample
/// is counted near the address. Asked before anything else on a free (no thread state, no
/// re-entry mark): nearly every free of a sampled run ends here. False says nothing: ask
/// [`take_free`].
#[inline(always)]
pub fn surely_unsampled(addr: u64) -> bool {
    if SAMPLE_BYTES.load(Ordering::Relaxed) == 0 || OVERFLOW.load(Ordering::Relaxed) {
        return false;
    }
    counter(addr).is_some_and(|c| c.load(Ordering::Acquire) == 0)
}

/// The countdown reached zero (or the thread's first allocation): `sample_left` counts the
/// bytes up to and with the next sample, so at zero or below the sample is in this request
/// and the next one lies a gap further on. Returns whether this allocation is a sample (not so
/// for a thread's first countdown that it does not exhaust).
#[cold]
fn crossed(t: &mut tls::Tls, n: u64, size: u64) -> bool {
    if t.sample_rng == 0 {
        let seed = match SEED.load(Ordering::Relaxed) {
            0 => crate::clock::tick() ^ (u64::from(sys::gettid()) << 32),
            // A base of the seed's own (seeds 1 and 2 share no thread's stream), then one
            // stream a thread.
            s => memtrace_format::settings::splitmix(s ^ LINEAGE.load(Ordering::Relaxed))
                .wrapping_add(SEEDED.fetch_add(1, Ordering::Relaxed)),
        };
        t.sample_rng = memtrace_format::settings::splitmix(seed) | 1;
        t.sample_left = first_gap(t, n) - size as i64;
        if t.sample_left > 0 {
            return false;
        }
    }
    t.sample_left += gap(t, n);
    true
}

/// A uniform draw in [0, 1).
fn uniform(t: &mut tls::Tls) -> f64 {
    let mut x = t.sample_rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    t.sample_rng = x;
    (x >> 11) as f64 / (1u64 << 53) as f64
}

/// Bytes from one sample to the next: uniform between n/2 and 3n/2 (mean n).
fn gap(t: &mut tls::Tls, n: u64) -> i64 {
    let n = n as f64;
    ((n / 2.0 + uniform(t) * n) as i64).max(1)
}

/// Bytes to a thread's first sample, counting it (at least 1): the distance from a point
/// chosen at random to the next sample of a long run of gaps, whose density is
/// P(gap > x) / n: flat below n/2 (half the mass), falling straight to 0 at 3n/2 (the other
/// half). So every byte, the thread's first ones too, is sampled with probability 1/n.
fn first_gap(t: &mut tls::Tls, n: u64) -> i64 {
    let n = n as f64;
    let before = if uniform(t) < 0.5 {
        uniform(t) * n / 2.0
    } else {
        1.5 * n - n * uniform(t).sqrt()
    };
    before as i64 + 1
}

#[inline(always)]
fn home(addr: u64) -> usize {
    ((addr >> 3).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - SET_BITS)) as usize
}

#[inline(always)]
fn counter(addr: u64) -> Option<&'static AtomicU8> {
    let filter = FILTER.load(Ordering::Relaxed);
    if filter.is_null() {
        return None;
    }
    // By address, not by a hash of it: the blocks of one 256-byte stretch share a counter and
    // those of 16 KiB (a pymalloc pool) one cache line, so the frees of a program that frees
    // near where it allocates read few lines. A hashed index read a random line of the 64 KiB
    // at every free, which pushed the allocator's own lines out of the first-level cache.
    let i = ((addr >> FILTER_SPAN_BITS) as usize) & (FILTER_LEN - 1);
    // SAFETY: the filter is FILTER_LEN bytes, mapped once with the set and never unmapped.
    Some(unsafe { &*filter.add(i) })
}

#[inline(always)]
fn slot(set: *mut AtomicU64, i: usize) -> &'static AtomicU64 {
    // SAFETY: the set is SET_SLOTS slots, mapped once and never unmapped; i is masked into it.
    unsafe { &*set.add(i & (SET_SLOTS - 1)) }
}

fn insert(addr: u64) {
    let set = SET.load(Ordering::Acquire);
    if set.is_null() {
        return;
    }
    if let Some(c) = counter(addr) {
        // Counted before the address goes in: a free that finds it also finds the count.
        let _ = c.fetch_update(Ordering::AcqRel, Ordering::Relaxed, |n| {
            (n < u8::MAX).then_some(n + 1)
        });
    }
    let h = home(addr);
    for i in 0..WINDOW {
        let s = slot(set, h + i);
        let v = s.load(Ordering::Relaxed);
        if (v == EMPTY || v == GONE)
            && s.compare_exchange(v, addr, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            return;
        }
    }
    OVERFLOW.store(true, Ordering::Relaxed);
}

/// Removes `addr`; true when it was there. The same address may be in twice for a moment (a
/// block freed and reused by another thread before the free is recorded): one goes per free.
#[inline(always)]
fn remove(addr: u64) -> bool {
    let set = SET.load(Ordering::Acquire);
    let Some(c) = counter(addr) else {
        return false;
    };
    if c.load(Ordering::Acquire) == 0 {
        return false;
    }
    let h = home(addr);
    for i in 0..WINDOW {
        let s = slot(set, h + i);
        let v = s.load(Ordering::Acquire);
        if v == addr {
            if s.compare_exchange(addr, GONE, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                let _ = c.fetch_update(Ordering::AcqRel, Ordering::Relaxed, |n| {
                    (n > 0 && n < u8::MAX).then(|| n - 1)
                });
                return true;
            }
        } else if v == EMPTY {
            return false;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_keeps_what_is_sampled() {
        configure(0, 0, 0);
        configure(1 << 19, 1, 0);
        configure(0, 0, 0);
        for a in (0x1000u64..0x1000 + 4096 * 16).step_by(16) {
            insert(a);
        }
        assert!(remove(0x1000));
        assert!(!remove(0x1000));
        assert!(!remove(0x8));
        for a in (0x1010u64..0x1000 + 4096 * 16).step_by(16) {
            assert!(remove(a), "{a:#x}");
        }
    }

    #[test]
    fn gaps_are_uniform_between_half_and_one_and_a_half_n() {
        let mut t: tls::Tls = unsafe_zeroed();
        t.sample_rng = 12345;
        let n = 1000;
        let draws: Vec<i64> = (0..20000).map(|_| gap(&mut t, n)).collect();
        let mean = draws.iter().sum::<i64>() as f64 / draws.len() as f64;
        assert!((mean - 1000.0).abs() < 10.0, "{mean}");
        assert!(draws.iter().all(|&g| (500..1500).contains(&g)));
        let low = draws.iter().filter(|&&g| g < 750).count();
        assert!((4500..5500).contains(&low), "{low} of 20000 below 750");
    }

    /// Every byte of a thread's stream is sampled with probability 1/n, its first bytes too: a
    /// request of s < n/2 bytes at any place is sampled in s/n of the streams.
    #[test]
    fn every_byte_is_sampled_with_probability_one_in_n() {
        let n = 1000u64;
        let streams = 40_000u32;
        // Requests of 100 bytes: the 1st, the 5th and the 20th of each stream.
        let mut hits = [0u32; 3];
        for seed in 1..=streams {
            let mut t: tls::Tls = unsafe_zeroed();
            t.sample_rng = memtrace_format::settings::splitmix(u64::from(seed)) | 1;
            t.sample_left = first_gap(&mut t, n);
            for i in 0..20 {
                t.sample_left -= 100;
                let sampled = t.sample_left <= 0;
                if sampled {
                    t.sample_left += gap(&mut t, n);
                }
                match (i, sampled) {
                    (0, true) => hits[0] += 1,
                    (4, true) => hits[1] += 1,
                    (19, true) => hits[2] += 1,
                    _ => {}
                }
            }
        }
        // Expected 4,000 each (one in ten); the standard deviation is 60.
        for h in hits {
            assert!((3800..4200).contains(&h), "{hits:?}");
        }
    }

    fn unsafe_zeroed() -> tls::Tls {
        // SAFETY: Tls is plain data (integers and raw pointers): all zeros is a valid value.
        unsafe { core::mem::zeroed() }
    }
}
