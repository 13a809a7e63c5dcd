//! Order-independent totals: counts, bytes, the size histogram, allocators and per-stack sums.
//! Computed per chunk on the decoding threads and added up.

use crate::capture::event::{code, Event};
use hashbrown::HashMap;
use memtrace_format::settings::Sampling;
use memtrace_format::Allocator;

/// Histogram bins: one for size 0, then one per power of two, [2^k, 2^(k+1)).
pub const BINS: usize = 65;

/// The bin of an allocation size.
#[inline]
pub fn bin_of(size: u64) -> usize {
    (64 - size.leading_zeros()) as usize
}

/// The smallest and largest size (inclusive) of a bin.
pub fn bin_range(bin: usize) -> (u64, u64) {
    match bin {
        0 => (0, 0),
        64.. => (1 << 63, u64::MAX),
        b => (1 << (b - 1), (1 << b) - 1),
    }
}

/// Allocation count and bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sum {
    pub count: u64,
    pub bytes: u64,
}

impl Sum {
    #[inline]
    pub fn add(&mut self, bytes: u64) {
        self.count += 1;
        self.bytes = self.bytes.saturating_add(bytes);
    }

    /// `count` allocations of `bytes` in all (the estimate a sample stands for).
    #[inline]
    pub fn add_n(&mut self, count: u64, bytes: u64) {
        self.count += count;
        self.bytes = self.bytes.saturating_add(bytes);
    }

    #[inline]
    pub fn merge(&mut self, other: Sum) {
        self.count += other.count;
        self.bytes = self.bytes.saturating_add(other.bytes);
    }

    pub fn subtract(&mut self, other: Sum) {
        self.count = self.count.saturating_sub(other.count);
        self.bytes = self.bytes.saturating_sub(other.bytes);
    }
}

/// Takes `other`'s sums away from `by_stack`, dropping the stacks left with nothing.
pub fn subtract_by_stack(by_stack: &mut HashMap<u64, Sum>, other: &HashMap<u64, Sum>) {
    for (stack, sum) in other {
        if let Some(s) = by_stack.get_mut(stack) {
            s.subtract(*sum);
            if s.count == 0 {
                by_stack.remove(stack);
            }
        }
    }
}

#[derive(Clone, Debug)]
pub struct Totals {
    /// Every allocation record (mmap included) and the new mapping of every mremap.
    pub allocs: Sum,
    /// Free records (free, the free half of realloc, pymalloc frees) and munmaps.
    pub frees: u64,
    pub histogram: [Sum; BINS],
    /// Allocations per allocator (`Allocator as usize`).
    pub allocators: [u64; Allocator::ALL.len()],
    /// Free records by kind: free (malloc family), pymalloc_free, munmap.
    pub free_kinds: [u64; 3],
    /// Allocations per stack id.
    pub by_stack: HashMap<u64, Sum>,
}

impl Default for Totals {
    fn default() -> Totals {
        Totals {
            allocs: Sum::default(),
            frees: 0,
            histogram: [Sum::default(); BINS],
            allocators: [0; Allocator::ALL.len()],
            free_kinds: [0; 3],
            by_stack: HashMap::new(),
        }
    }
}

/// What a heap allocation `ev` of a capture sampled as `sampling` says stands for: (the
/// allocations, the bytes). The count is drawn from the event itself, so that every reader
/// (the totals, the replay's live sets) counts a sample alike.
#[inline]
pub fn stands_for(ev: &Event, sampling: Sampling) -> (u64, u64) {
    sample_stands_for(ev.addr, ev.tick, ev.size, sampling)
}

/// [`stands_for`] of an allocation of `size` bytes at `addr` and `tick`.
#[inline]
pub fn sample_stands_for(addr: u64, tick: u64, size: u64, sampling: Sampling) -> (u64, u64) {
    let w = sampling.weight(size);
    let seed = addr ^ tick.rotate_left(32);
    (memtrace_format::settings::sampled_count(size, w, seed), w)
}

impl Totals {
    /// The totals of one thread's events.
    pub fn from_events(events: &[Event]) -> Totals {
        Totals::from_sampled(events, Sampling::NONE)
    }

    /// The totals of one thread's events, of a capture sampled as `sampling` says, read before
    /// they are weighed: an allocation of `s` bytes counts as the bytes it stands for
    /// (`Sampling::weight`) and as that many over `s` allocations, in the histogram's bin of
    /// `s`.
    pub fn from_sampled(events: &[Event], sampling: Sampling) -> Totals {
        let mut t = Totals::default();
        // Allocation sites repeat (loops): sum runs of one stack before touching the map.
        let mut run_stack = 0u64;
        let mut run = Sum::default();
        for ev in events {
            let c = ev.code();
            let allocator = match c {
                0..code::ALLOC_END => c,
                code::MREMAP_NEW => Allocator::Mmap as u8,
                code::FREE | code::PY_FREE | code::MUNMAP => {
                    t.frees += 1;
                    let kind = match c {
                        code::FREE => 0,
                        code::PY_FREE => 1,
                        _ => 2,
                    };
                    t.free_kinds[kind] += 1;
                    continue;
                }
                _ => continue,
            };
            let size = ev.size;
            let (count, bytes) = if !sampling.is_sampled() || allocator == Allocator::Mmap as u8 {
                (1, size)
            } else {
                stands_for(ev, sampling)
            };
            t.allocs.add_n(count, bytes);
            t.histogram[bin_of(size)].add_n(count, bytes);
            if let Some(n) = t.allocators.get_mut(allocator as usize) {
                *n += 1;
            }
            let stack = ev.stack();
            if stack != run_stack {
                if run.count > 0 {
                    t.by_stack.entry(run_stack).or_default().merge(run);
                }
                run_stack = stack;
                run = Sum::default();
            }
            run.add_n(count, bytes);
        }
        if run.count > 0 {
            t.by_stack.entry(run_stack).or_default().merge(run);
        }
        t
    }

    /// Takes away totals that were merged in (the events before a Python script's start).
    pub fn subtract(&mut self, other: &Totals) {
        self.allocs.subtract(other.allocs);
        self.frees = self.frees.saturating_sub(other.frees);
        for (a, b) in self.histogram.iter_mut().zip(&other.histogram) {
            a.subtract(*b);
        }
        for (a, b) in self.allocators.iter_mut().zip(&other.allocators) {
            *a = a.saturating_sub(*b);
        }
        for (a, b) in self.free_kinds.iter_mut().zip(&other.free_kinds) {
            *a = a.saturating_sub(*b);
        }
        subtract_by_stack(&mut self.by_stack, &other.by_stack);
    }

    pub fn merge(&mut self, other: Totals) {
        self.allocs.merge(other.allocs);
        self.frees += other.frees;
        for (a, b) in self.histogram.iter_mut().zip(other.histogram) {
            a.merge(b);
        }
        for (a, b) in self.allocators.iter_mut().zip(other.allocators) {
            *a += b;
        }
        for (a, b) in self.free_kinds.iter_mut().zip(other.free_kinds) {
            *a += b;
        }
        if self.by_stack.is_empty() {
            self.by_stack = other.by_stack;
        } else {
            for (stack, sum) in other.by_stack {
                self.by_stack.entry(stack).or_default().merge(sum);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins() {
        assert_eq!(bin_of(0), 0);
        assert_eq!(bin_of(1), 1);
        assert_eq!(bin_of(16), 5);
        assert_eq!(bin_of(31), 5);
        assert_eq!(bin_range(5), (16, 31));
        assert_eq!(bin_of(u64::MAX), 64);
        for b in 0..BINS {
            let (lo, hi) = bin_range(b);
            assert_eq!(bin_of(lo), b);
            assert_eq!(bin_of(hi), b);
        }
    }
}
