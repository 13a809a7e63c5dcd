//! The live heap: blocks from malloc and friends, by address.
//!
//! The replay looks up every free here, so the table is what it waits for (cache misses): each
//! block takes one 16-byte slot, its address packed in with the rest, and nearby addresses
//! land in nearby slots.

use hashbrown::hash_table::{Entry, HashTable};
use hashbrown::HashMap;
use std::collections::VecDeque;

/// A live heap block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Block {
    pub size: u64,
    stack: u64,
    thread: u32,
    index: u64,
    /// The allocations the block stands for: 1, or a sampled capture's estimate.
    count: u64,
    /// The bytes asked for: `size`, but in a sampled capture, where `size` is the bytes the
    /// sample stands for.
    asked: u64,
}

impl Block {
    pub fn new(size: u64, stack: u64, thread: u32, index: u64) -> Block {
        Block {
            size,
            stack,
            thread,
            index,
            count: 1,
            asked: size,
        }
    }

    /// A sample of a sampled capture: `size` bytes asked for, standing for `weight` bytes in
    /// `count` allocations.
    pub fn weighed(self, weight: u64, count: u64) -> Block {
        Block {
            size: weight,
            count,
            asked: self.asked,
            ..self
        }
    }

    /// The block standing for `count` allocations of `asked` bytes in all ([`Block::weighed`]).
    fn standing_for(self, count: u64, asked: u64) -> Block {
        Block {
            count,
            asked,
            ..self
        }
    }

    /// The bytes asked for (a sample's own size, where `size` is what it stands for).
    #[inline]
    pub fn asked(&self) -> u64 {
        self.asked
    }

    /// The allocations the block stands for (1 but in a sampled capture).
    #[inline]
    pub fn count(&self) -> u64 {
        self.count
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

/// Tables the heap is split into, by address: each grows on its own, so that growing never
/// holds two copies of the whole heap.
const SHARDS: usize = 64;

/// The shard of an address: 64 KiB regions take turns (bits 16..22), so neighbours stay
/// together. An address code leaves these bits out.
#[inline]
fn shard(addr: u64) -> usize {
    ((addr >> 16) as usize) % SHARDS
}

/// Bits of an address code: a 16-byte aligned address below 2^47 (what allocators hand out)
/// without its four zero bits and its shard bits.
const CODE_BITS: u32 = 37;
// The code leaves out exactly the six shard bits.
const _: () = assert!(SHARDS == 1 << 6);
const CODE_MASK: u64 = (1 << CODE_BITS) - 1;

/// The code of an address a slot can hold; None for the others (kept in [`LiveHeap::outside`]).
/// Neighbouring addresses have neighbouring codes.
#[inline]
fn addr_code(addr: u64) -> Option<u64> {
    (addr & 0xF == 0 && addr >> 47 == 0).then_some(((addr >> 4) & 0xFFF) | ((addr >> 22) << 12))
}

/// The address of a code in shard `shard`.
#[inline]
fn code_addr(code: u64, shard: usize) -> u64 {
    ((code & 0xFFF) << 4) | ((shard as u64) << 16) | ((code >> 12) << 22)
}

/// The table hash of a code: the code itself in the low bits (the bucket: nearby addresses
/// touch few cache lines), mixed bits on top (the tag the table compares first).
#[inline]
fn hash(code: u64) -> u64 {
    code ^ (code.wrapping_mul(0x9E37_79B9_7F4A_7C15) & (0x7F << 57))
}

const STACK_SHIFT: u32 = CODE_BITS;
const STACK_BITS: u32 = 25;
/// Newer blocks at the same address wait in [`LiveHeap::newer`].
const NEWER: u64 = 1 << 62;
/// The block did not fit: it is in [`LiveHeap::wide`].
const WIDE: u64 = 1 << 63;
const INDEX_BITS: u32 = 36;
const SIZE_SHIFT: u32 = INDEX_BITS;
const SIZE_BITS: u32 = 20;
const THREAD_SHIFT: u32 = SIZE_SHIFT + SIZE_BITS;
const THREAD_BITS: u32 = 8;

/// A block as the table keeps it, in 16 bytes: address code (37 bits), stack id (25) and two
/// flags; event index (36), size (20) and thread (8). A block with a larger field is kept
/// whole on the side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Slot {
    code_stack: u64,
    index_size_thread: u64,
}

#[inline]
fn bits(value: u64, shift: u32, width: u32) -> u64 {
    (value >> shift) & ((1 << width) - 1)
}

impl Slot {
    #[inline]
    fn new(code: u64, b: &Block) -> Option<Slot> {
        let fits = b.stack >> STACK_BITS == 0
            && b.index >> INDEX_BITS == 0
            && b.size >> SIZE_BITS == 0
            && b.thread >> THREAD_BITS == 0;
        fits.then_some(Slot {
            code_stack: code | (b.stack << STACK_SHIFT),
            index_size_thread: b.index
                | (b.size << SIZE_SHIFT)
                | (u64::from(b.thread) << THREAD_SHIFT),
        })
    }

    const fn wide(code: u64) -> Slot {
        Slot {
            code_stack: code | WIDE,
            index_size_thread: 0,
        }
    }

    #[inline]
    fn code(&self) -> u64 {
        self.code_stack & CODE_MASK
    }

    #[inline]
    fn is_wide(&self) -> bool {
        self.code_stack & WIDE != 0
    }

    #[inline]
    fn has_newer(&self) -> bool {
        self.code_stack & NEWER != 0
    }

    #[inline]
    fn set_newer(&mut self, newer: bool) {
        if newer {
            self.code_stack |= NEWER;
        } else {
            self.code_stack &= !NEWER;
        }
    }

    #[inline]
    fn block(&self) -> Block {
        let x = self.index_size_thread;
        Block {
            size: bits(x, SIZE_SHIFT, SIZE_BITS),
            stack: bits(self.code_stack, STACK_SHIFT, STACK_BITS),
            thread: bits(x, THREAD_SHIFT, THREAD_BITS) as u32,
            index: bits(x, 0, INDEX_BITS),
            count: 1,
            asked: bits(x, SIZE_SHIFT, SIZE_BITS),
        }
    }
}

/// The slot of the oldest block at an address; a block too wide to pack goes to `wide`.
#[inline]
fn slot(wide: &mut HashMap<u64, Block>, code: u64, addr: u64, block: Block) -> Slot {
    match Slot::new(code, &block) {
        Some(s) => s,
        None => {
            wide.insert(addr, block);
            Slot::wide(code)
        }
    }
}

/// Live blocks by address. Two allocations at one address (threads whose events tie) are both
/// kept; a free removes the older one.
#[derive(Debug)]
pub struct LiveHeap {
    shards: Vec<HashTable<Slot>>,
    /// Blocks too large to pack, by address (the oldest at the address only).
    wide: HashMap<u64, Block>,
    /// Newer blocks at an address the tables hold, oldest first.
    newer: HashMap<u64, VecDeque<Block>>,
    /// Blocks at addresses without a code (unaligned, or beyond 47 bits), oldest first.
    outside: HashMap<u64, VecDeque<Block>>,
    /// The count and the bytes asked for of each block of a sampled capture that stands for
    /// more than itself, by its event index: a slot has no room for them, and only sampled
    /// captures have any.
    counts: HashMap<u64, (u64, u64)>,
    bytes: u64,
    /// Allocations live (estimates in a sampled capture).
    count: u64,
    /// Blocks live.
    blocks: u64,
}

impl Default for LiveHeap {
    fn default() -> LiveHeap {
        LiveHeap {
            shards: (0..SHARDS).map(|_| HashTable::new()).collect(),
            wide: HashMap::new(),
            newer: HashMap::new(),
            outside: HashMap::new(),
            counts: HashMap::new(),
            bytes: 0,
            count: 0,
            blocks: 0,
        }
    }
}

impl LiveHeap {
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Allocations live: blocks, or in a sampled capture the allocations they stand for.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Blocks live (samples in a sampled capture).
    pub fn blocks(&self) -> u64 {
        self.blocks
    }

    /// Blocks live that stand for more than themselves (a sampled capture's weighed samples).
    pub fn weighed_blocks(&self) -> u64 {
        self.counts.len() as u64
    }

    /// `block` with the count it was given when allocated.
    #[inline(always)]
    fn counted(&self, block: Block) -> Block {
        if self.counts.is_empty() {
            return block;
        }
        match self.counts.get(&block.index) {
            Some(&(count, asked)) => block.standing_for(count, asked),
            None => block,
        }
    }

    /// Forgets the count of a block gone, and says it.
    #[inline(always)]
    fn take_count(&mut self, block: Block) -> Block {
        if self.counts.is_empty() {
            return block;
        }
        match self.counts.remove(&block.index) {
            Some((count, asked)) => block.standing_for(count, asked),
            None => block,
        }
    }

    // Inlined whole: the replay's loop calls it for every allocation.
    #[inline(always)]
    pub fn alloc(&mut self, addr: u64, block: Block) {
        self.bytes = self.bytes.wrapping_add(block.size);
        self.count += block.count;
        self.blocks += 1;
        if block.count != 1 || block.asked != block.size {
            self.counts.insert(block.index, (block.count, block.asked));
        }
        let Some(code) = addr_code(addr) else {
            self.outside.entry(addr).or_default().push_back(block);
            return;
        };
        let table = &mut self.shards[shard(addr)];
        match table.entry(hash(code), |s| s.code() == code, |s| hash(s.code())) {
            Entry::Vacant(v) => {
                v.insert(slot(&mut self.wide, code, addr, block));
            }
            Entry::Occupied(mut o) => {
                o.get_mut().set_newer(true);
                self.newer.entry(addr).or_default().push_back(block);
            }
        }
    }

    /// Frees the (oldest) block at `addr`; None when no block is live there.
    #[inline(always)]
    pub fn free(&mut self, addr: u64) -> Option<Block> {
        let Some(code) = addr_code(addr) else {
            return self.free_outside(addr);
        };
        let Ok(mut o) = self.shards[shard(addr)].find_entry(hash(code), |s| s.code() == code)
        else {
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
                    let mut s = slot(&mut self.wide, code, addr, next);
                    s.set_newer(!empty);
                    *o.get_mut() = s;
                }
                None => {
                    o.remove();
                }
            }
        } else {
            o.remove();
        }
        Some(self.gone(old))
    }

    /// Takes a block freed out of the totals.
    #[inline(always)]
    fn gone(&mut self, old: Block) -> Block {
        let old = self.take_count(old);
        self.bytes = self.bytes.wrapping_sub(old.size);
        self.count = self.count.wrapping_sub(old.count);
        self.blocks -= 1;
        old
    }

    #[cold]
    fn free_outside(&mut self, addr: u64) -> Option<Block> {
        let queue = self.outside.get_mut(&addr)?;
        let old = queue.pop_front()?;
        if queue.is_empty() {
            self.outside.remove(&addr);
        }
        Some(self.gone(old))
    }

    /// Every live block (the older first at a shared address).
    pub fn iter(&self) -> impl Iterator<Item = (u64, Block)> + '_ {
        self.shards
            .iter()
            .enumerate()
            .flat_map(|(i, t)| t.iter().map(move |s| (code_addr(s.code(), i), s)))
            .filter_map(|(a, s)| {
                if s.is_wide() {
                    self.wide.get(&a).map(|&b| (a, b))
                } else {
                    Some((a, s.block()))
                }
            })
            .chain(queued(&self.newer))
            .chain(queued(&self.outside))
            .map(|(a, b)| (a, self.counted(b)))
    }
}

/// The blocks of a map of queues, with their addresses.
fn queued(map: &HashMap<u64, VecDeque<Block>>) -> impl Iterator<Item = (u64, Block)> + '_ {
    map.iter()
        .flat_map(|(&a, q)| q.iter().map(move |&b| (a, b)))
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
    }

    #[test]
    fn every_address_and_field_comes_back_whole() {
        let mut h = LiveHeap::default();
        let largest = Block::new(
            (1 << SIZE_BITS) - 1,
            (1 << STACK_BITS) - 1,
            255,
            (1 << INDEX_BITS) - 1,
        );
        let addrs = [
            0x10,
            0x7fff_ffff_fff0, // the highest code
            0x7f12_3456_7890, // every shard bit set somewhere
            0x5555_5555_5551, // unaligned: outside the tables
            0x8000_0000_0000, // beyond 47 bits
            0xffff_8000_0000_0000,
        ];
        for (i, &a) in addrs.iter().enumerate() {
            h.alloc(a, Block::new(i as u64 + 1, 7, 3, i as u64 + 1));
        }
        h.alloc(0x7f12_3456_7890, largest);
        h.alloc(0x5555_5555_5551, largest);
        let mut live: Vec<(u64, Block)> = h.iter().collect();
        live.sort_by_key(|&(a, b)| (a, b.index()));
        let mut want: Vec<(u64, Block)> = addrs
            .iter()
            .enumerate()
            .map(|(i, &a)| (a, Block::new(i as u64 + 1, 7, 3, i as u64 + 1)))
            .chain([(0x7f12_3456_7890, largest), (0x5555_5555_5551, largest)])
            .collect();
        want.sort_by_key(|&(a, b)| (a, b.index()));
        assert_eq!(live, want);
        for (i, &a) in addrs.iter().enumerate() {
            assert_eq!(h.free(a).map(|b| b.index()), Some(i as u64 + 1));
            assert_eq!(h.free(a ^ 0x10000), None);
        }
        assert_eq!(h.free(0x7f12_3456_7890), Some(largest));
        assert_eq!(h.free(0x5555_5555_5551), Some(largest));
        assert_eq!(h.free(0x5555_5555_5551), None);
        assert_eq!((h.bytes(), h.count()), (0, 0));
    }
}
