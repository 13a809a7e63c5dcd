//! The live heap: blocks from malloc and friends, by address.

use hashbrown::hash_map::Entry;
use hashbrown::HashMap;
use std::collections::VecDeque;
use std::hash::{BuildHasherDefault, Hasher};

/// Hashes a block address so that nearby addresses land in nearby buckets (allocators hand out
/// neighbouring blocks one after the other, so the replay touches few cache lines), while the
/// top bits, which the table uses as a tag, are mixed.
#[derive(Default, Clone, Copy)]
pub struct AddrHasher(u64);

impl Hasher for AddrHasher {
    #[inline]
    fn finish(&self) -> u64 {
        let a = self.0;
        // Bits 16..22 choose the shard: leave them out, so that the 64 KiB regions of one
        // shard follow each other instead of landing on the same buckets.
        let near = ((a >> 4) & 0xFFF) | ((a >> 22) << 12);
        near ^ (a.wrapping_mul(0x9E37_79B9_7F4A_7C15) & (0x7F << 57))
    }

    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type AddrMap<V> = HashMap<u64, V, BuildHasherDefault<AddrHasher>>;

/// Bits of a block's stack id (larger ids, which no tracker writes, count as unknown: 0).
const STACK_BITS: u32 = 40;
/// Bits of a block's thread index (larger indexes share the last value).
const THREAD_BITS: u32 = 24;
const NEWER: u64 = 1 << 63;

/// A live heap block, packed in 24 bytes (the live heap of a large run holds millions).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Block {
    pub size: u64,
    /// The event index of its allocation (1 for the capture's first event); the top bit says
    /// that newer blocks at the same address wait in the overflow queue.
    index_newer: u64,
    /// Stack id (low 40 bits) and thread index (high 24 bits).
    stack_thread: u64,
}

impl Block {
    pub fn new(size: u64, stack: u64, thread: u32, index: u64) -> Block {
        let stack = if stack >> STACK_BITS != 0 { 0 } else { stack };
        let thread = u64::from(thread).min((1 << THREAD_BITS) - 1);
        Block {
            size,
            index_newer: index & !NEWER,
            stack_thread: stack | (thread << STACK_BITS),
        }
    }

    /// The allocation's stack id.
    #[inline]
    pub fn stack(&self) -> u64 {
        self.stack_thread & ((1 << STACK_BITS) - 1)
    }

    /// Index of the allocating thread.
    #[inline]
    pub fn thread(&self) -> u32 {
        (self.stack_thread >> STACK_BITS) as u32
    }

    /// The event index of the allocation.
    #[inline]
    pub fn index(&self) -> u64 {
        self.index_newer & !NEWER
    }

    #[inline]
    fn has_newer(&self) -> bool {
        self.index_newer & NEWER != 0
    }

    #[inline]
    fn set_newer(&mut self, newer: bool) {
        self.index_newer = self.index() | if newer { NEWER } else { 0 };
    }
}

/// Tables the heap is split into, by address: each grows on its own, so that growing never
/// holds two copies of the whole heap.
const SHARDS: usize = 64;

/// The shard of an address: 64 KiB regions take turns (bits 16..22), so neighbours stay
/// together. [`AddrHasher`] leaves these bits out.
#[inline]
fn shard(addr: u64) -> usize {
    ((addr >> 16) as usize) % SHARDS
}

/// Live blocks by address. Two allocations at one address (threads whose events tie) are both
/// kept; a free removes the older one.
#[derive(Debug)]
pub struct LiveHeap {
    blocks: Vec<AddrMap<Block>>,
    newer: HashMap<u64, VecDeque<Block>>,
    bytes: u64,
    count: u64,
}

impl Default for LiveHeap {
    fn default() -> LiveHeap {
        LiveHeap {
            blocks: (0..SHARDS).map(|_| AddrMap::default()).collect(),
            newer: HashMap::new(),
            bytes: 0,
            count: 0,
        }
    }
}

impl LiveHeap {
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    #[inline]
    pub fn alloc(&mut self, addr: u64, block: Block) {
        self.bytes = self.bytes.wrapping_add(block.size);
        self.count += 1;
        match self.blocks[shard(addr)].entry(addr) {
            Entry::Vacant(v) => {
                v.insert(block);
            }
            Entry::Occupied(mut o) => {
                o.get_mut().set_newer(true);
                self.newer.entry(addr).or_default().push_back(block);
            }
        }
    }

    /// Frees the (oldest) block at `addr`; None when no block is live there.
    #[inline]
    pub fn free(&mut self, addr: u64) -> Option<Block> {
        let Entry::Occupied(mut o) = self.blocks[shard(addr)].entry(addr) else {
            return None;
        };
        let mut old = *o.get();
        old.set_newer(false);
        if o.get().has_newer() {
            let queue = self.newer.get_mut(&addr);
            match queue.and_then(|q| q.pop_front().map(|b| (b, q.is_empty()))) {
                Some((mut next, empty)) => {
                    next.set_newer(!empty);
                    if empty {
                        self.newer.remove(&addr);
                    }
                    *o.get_mut() = next;
                }
                None => {
                    o.remove();
                }
            }
        } else {
            o.remove();
        }
        self.bytes = self.bytes.wrapping_sub(old.size);
        self.count -= 1;
        Some(old)
    }

    /// Every live block (the older first at a shared address).
    pub fn iter(&self) -> impl Iterator<Item = (u64, &Block)> + '_ {
        self.blocks
            .iter()
            .flat_map(|m| m.iter().map(|(&a, b)| (a, b)))
            .chain(
                self.newer
                    .iter()
                    .flat_map(|(&a, q)| q.iter().map(move |b| (a, b))),
            )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_addresses_free_the_older_first() {
        let mut h = LiveHeap::default();
        h.alloc(0x10, Block::new(8, 1, 0, 1));
        h.alloc(0x10, Block::new(16, 2, 1, 2));
        assert_eq!((h.bytes(), h.count()), (24, 2));
        assert_eq!(h.free(0x10).map(|b| b.size), Some(8));
        assert_eq!((h.bytes(), h.count()), (16, 1));
        assert_eq!(h.free(0x10).map(|b| b.size), Some(16));
        assert_eq!(h.free(0x10), None);
        let b = Block::new(5, 1 << 41, 1 << 25, 9);
        assert_eq!((b.stack(), b.thread(), b.index()), (0, (1 << 24) - 1, 9));
        assert_eq!((h.bytes(), h.count()), (0, 0));
    }
}
