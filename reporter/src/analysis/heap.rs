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
        (a >> 4) ^ (a.wrapping_mul(0x9E37_79B9_7F4A_7C15) & (0x7F << 57))
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

/// A live heap block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Block {
    pub size: u64,
    pub stack: u64,
    /// Index of the allocating thread.
    pub thread: u32,
    pub allocator: u8,
    /// The event index of its allocation (1 for the capture's first event).
    pub index: u64,
    /// Newer blocks at the same address wait in the overflow queue.
    has_newer: bool,
}

impl Block {
    pub fn new(size: u64, stack: u64, thread: u32, allocator: u8, index: u64) -> Block {
        Block {
            size,
            stack,
            thread,
            allocator,
            index,
            has_newer: false,
        }
    }
}

/// Live blocks by address. Two allocations at one address (threads whose events tie) are both
/// kept; a free removes the older one.
#[derive(Debug, Default)]
pub struct LiveHeap {
    blocks: AddrMap<Block>,
    newer: HashMap<u64, VecDeque<Block>>,
    bytes: u64,
    count: u64,
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
        match self.blocks.entry(addr) {
            Entry::Vacant(v) => {
                v.insert(block);
            }
            Entry::Occupied(mut o) => {
                o.get_mut().has_newer = true;
                self.newer.entry(addr).or_default().push_back(block);
            }
        }
    }

    /// Frees the (oldest) block at `addr`; None when no block is live there.
    #[inline]
    pub fn free(&mut self, addr: u64) -> Option<Block> {
        let Entry::Occupied(mut o) = self.blocks.entry(addr) else {
            return None;
        };
        let old = *o.get();
        if old.has_newer {
            let queue = self.newer.get_mut(&addr);
            match queue.and_then(|q| q.pop_front().map(|b| (b, q.is_empty()))) {
                Some((mut next, empty)) => {
                    next.has_newer = !empty;
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
        self.blocks.iter().map(|(&a, b)| (a, b)).chain(
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
        h.alloc(0x10, Block::new(8, 1, 0, 0, 1));
        h.alloc(0x10, Block::new(16, 2, 1, 0, 2));
        assert_eq!((h.bytes(), h.count()), (24, 2));
        assert_eq!(h.free(0x10).map(|b| b.size), Some(8));
        assert_eq!((h.bytes(), h.count()), (16, 1));
        assert_eq!(h.free(0x10).map(|b| b.size), Some(16));
        assert_eq!(h.free(0x10), None);
        assert_eq!((h.bytes(), h.count()), (0, 0));
    }
}
