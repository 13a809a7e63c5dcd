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

/// A live heap block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Block {
    pub size: u64,
    stack: u64,
    thread: u32,
    index: u64,
}

impl Block {
    pub fn new(size: u64, stack: u64, thread: u32, index: u64) -> Block {
        Block {
            size,
            stack,
            thread,
            index,
        }
    }

    /// The allocation's stack id.
    #[inline]
    pub fn stack(&self) -> u64 {
        self.stack
    }

    /// Index of the allocating thread.
    #[inline]
    pub fn thread(&self) -> u32 {
        self.thread
    }

    /// The event index of the allocation (1 for the capture's first event).
    #[inline]
    pub fn index(&self) -> u64 {
        self.index
    }
}

const INDEX_BITS: u32 = 46;
const THREAD_BITS: u32 = 16;
/// Newer blocks at the same address wait in the overflow queue.
const NEWER: u64 = 1 << 62;
/// The block did not fit: it is in [`LiveHeap::wide`].
const WIDE: u64 = 1 << 63;

/// A block as the table keeps it, in 16 bytes (the live heap of a large run holds millions):
/// size (32 bits) and stack id (32); event index (46), thread (16) and two flags. A block with
/// a larger field is kept whole on the side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Packed {
    size_stack: u64,
    index_thread: u64,
}

impl Packed {
    #[inline]
    fn new(b: &Block) -> Option<Packed> {
        let fits = b.size >> 32 == 0
            && b.stack >> 32 == 0
            && b.index >> INDEX_BITS == 0
            && b.thread >> THREAD_BITS == 0;
        fits.then(|| Packed {
            size_stack: b.size | (b.stack << 32),
            index_thread: b.index | (u64::from(b.thread) << INDEX_BITS),
        })
    }

    const fn wide() -> Packed {
        Packed {
            size_stack: 0,
            index_thread: WIDE,
        }
    }

    #[inline]
    fn is_wide(&self) -> bool {
        self.index_thread & WIDE != 0
    }

    #[inline]
    fn has_newer(&self) -> bool {
        self.index_thread & NEWER != 0
    }

    #[inline]
    fn set_newer(&mut self, newer: bool) {
        if newer {
            self.index_thread |= NEWER;
        } else {
            self.index_thread &= !NEWER;
        }
    }

    #[inline]
    fn block(&self) -> Block {
        Block {
            size: self.size_stack & 0xFFFF_FFFF,
            stack: self.size_stack >> 32,
            thread: ((self.index_thread >> INDEX_BITS) & ((1 << THREAD_BITS) - 1)) as u32,
            index: self.index_thread & ((1 << INDEX_BITS) - 1),
        }
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

/// The table entry of the oldest block at `addr`; a block too wide to pack is kept in `wide`.
#[inline]
fn packed(wide: &mut HashMap<u64, Block>, addr: u64, block: Block) -> Packed {
    match Packed::new(&block) {
        Some(p) => p,
        None => {
            wide.insert(addr, block);
            Packed::wide()
        }
    }
}

/// Live blocks by address. Two allocations at one address (threads whose events tie) are both
/// kept; a free removes the older one.
#[derive(Debug)]
pub struct LiveHeap {
    blocks: Vec<AddrMap<Packed>>,
    /// Blocks too large to pack, by address (the oldest at the address only).
    wide: HashMap<u64, Block>,
    newer: HashMap<u64, VecDeque<Block>>,
    bytes: u64,
    count: u64,
}

impl Default for LiveHeap {
    fn default() -> LiveHeap {
        LiveHeap {
            blocks: (0..SHARDS).map(|_| AddrMap::default()).collect(),
            wide: HashMap::new(),
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
                v.insert(packed(&mut self.wide, addr, block));
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
        let head = *o.get();
        let old = if head.is_wide() {
            self.wide.remove(&addr)?
        } else {
            head.block()
        };
        if head.has_newer() {
            let queue = self.newer.get_mut(&addr);
            match queue.and_then(|q| q.pop_front().map(|b| (b, q.is_empty()))) {
                Some((next, empty)) => {
                    if empty {
                        self.newer.remove(&addr);
                    }
                    let mut p = packed(&mut self.wide, addr, next);
                    p.set_newer(!empty);
                    *o.get_mut() = p;
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
    pub fn iter(&self) -> impl Iterator<Item = (u64, Block)> + '_ {
        self.blocks
            .iter()
            .flat_map(|m| m.iter())
            .filter_map(|(&a, p)| {
                if p.is_wide() {
                    self.wide.get(&a).map(|&b| (a, b))
                } else {
                    Some((a, p.block()))
                }
            })
            .chain(
                self.newer
                    .iter()
                    .flat_map(|(&a, q)| q.iter().map(move |&b| (a, b))),
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
        // Blocks too wide to pack, alone and sharing an address.
        let wide = Block::new(1 << 40, 1 << 41, 1 << 25, 1 << 50);
        h.alloc(0x20, wide);
        h.alloc(0x20, Block::new(3, 4, 5, 6));
        h.alloc(0x20, wide);
        assert_eq!(h.iter().count(), 3);
        assert_eq!(h.free(0x20), Some(wide));
        assert_eq!(h.free(0x20), Some(Block::new(3, 4, 5, 6)));
        assert_eq!(h.free(0x20), Some(wide));
        assert_eq!(h.free(0x20), None);
        assert_eq!((h.bytes(), h.count()), (0, 0));
        assert_eq!((h.bytes(), h.count()), (0, 0));
    }
}
