//! The live view's blocks by address: for each live heap block, its size and its group (the
//! (stack, thread) whose sums it counts in), and nothing else.
//!
//! The live view looks up every free here, so this is its hottest table: open addressing with
//! linear probing, 16-byte slots (the address, then size and group packed in one word), a
//! multiplicative hash of the address, and deletion by shifting the probe run back (no
//! tombstones, so a table that sees billions of frees never needs cleaning). It grows by
//! doubling when half full, so it holds millions of live blocks as well as a few.
//!
//! A bitmap beside the slots says which are in use: 1 bit per 16-byte slot, it stays in the
//! cache when the slots (tens of MB for a million live blocks) do not. An address whose first
//! slot is free there is in no slot, so most insertions of a new address never read the slots,
//! and a block moving to a slot finds its empty slot there and writes it without reading it
//! (a store the processor need not wait for, where a read of a slot out of the cache costs a
//! few hundred cycles).
//!
//! Most blocks are freed moments after they are allocated: a new block waits in a small
//! direct-mapped table (the nursery: one place per address, picked from its low bits) until
//! another block needs its place, so a block freed before that never costs a slot's insertion
//! and removal, and a lookup there is one compare. A block in the nursery is the only one live
//! at its address (an allocation at an address live anywhere goes the slots' way), so a free
//! that finds it there takes the right block.
//!
//! A free that takes a block from the nursery leaves its address there, marked freed: no block
//! is live at that address in the slots (and none can enter them but through this place), so
//! an allocation at the same address soon after (allocators hand a freed block out again
//! first) skips the slots' probe.
//!
//! A block in the nursery is not counted in its group's sums yet: most leave it by a free, and
//! a block allocated and freed with no new peak between changes no sum but the heap's total,
//! so neither event needs its group's figures (two read-modify-writes per block, the live
//! path's largest cost after the decoding). Each nursery place keeps the peak generation at the
//! block's allocation; the caller counts a block when it leaves the nursery for a slot
//! ([`Inserted::settled`]), when it is freed after a new peak ([`Freed::Uncounted`]), and reads
//! the rest at a refresh ([`Blocks::uncounted`]).
//!
//! Two blocks at one address (threads whose events tie), a block at address 0 (the empty
//! slot's mark) and a block whose size or group does not pack are kept whole on the side, the
//! older first; a free takes the older, as the general replay's heap does.

use hashbrown::HashMap;
use std::collections::VecDeque;

/// The address of an empty slot.
const EMPTY: u64 = 0;
const SIZE_BITS: u32 = 40;
const SIZE_MASK: u64 = (1 << SIZE_BITS) - 1;
/// Groups that pack: ids below 2^23 (the packed word's top bit is [`FREED`]).
const GROUP_LIMIT: u32 = 1 << (63 - SIZE_BITS);
/// A nursery place's packed word when its address was freed (never a slot's).
const FREED: u64 = 1 << 63;
/// The first table: 1024 slots.
const FIRST_BITS: u32 = 10;
/// Places in the nursery (a power of two): 8 KiB, beside the slots in the cache.
const NURSERY: usize = 512;

/// The nursery's place for `addr`: blocks 16 bytes apart get places apart (a run of blocks
/// carved one after another fills the nursery without collisions), folded with higher bits so
/// that regions the nursery's size apart do not share places.
#[inline(always)]
fn place(addr: u64) -> usize {
    ((addr >> 4) ^ (addr >> 13)) as usize & (NURSERY - 1)
}

#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    addr: u64,
    /// Size (low 40 bits) and group (the next 23), or [`FREED`] in the nursery.
    packed: u64,
}

/// A live block: its size and its group.
pub type Block = (u64, u32);

/// The block a slot's packed word holds.
#[inline(always)]
fn unpack(packed: u64) -> Block {
    (packed & SIZE_MASK, (packed >> SIZE_BITS) as u32)
}

/// A block from the nursery, which its group has not counted (see the module's doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Uncounted {
    pub addr: u64,
    pub size: u64,
    pub group: u32,
    /// The peak generation when it was allocated.
    pub since: u64,
}

/// What a free took.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Freed {
    /// A block its group counts.
    Counted(Block),
    /// A block from the nursery.
    Uncounted(Uncounted),
}

/// Where an insertion put the new block, and what it moved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub struct Inserted {
    /// The new block went to the nursery (uncounted); else its group counts it at once.
    pub nursery: bool,
    /// A block that left the nursery for a slot: its group counts it from now on.
    pub settled: Option<Uncounted>,
}

/// A nursery place: a block (or a freed address) and the generation of its allocation.
#[derive(Clone, Copy, Debug, Default)]
struct Place {
    slot: Slot,
    since: u64,
}

impl Place {
    fn uncounted(&self) -> Uncounted {
        let (size, group) = unpack(self.slot.packed);
        Uncounted {
            addr: self.slot.addr,
            size,
            group,
            since: self.since,
        }
    }

    /// Holds a block (not an address marked freed).
    fn holds_block(&self) -> bool {
        self.slot.addr != EMPTY && self.slot.packed != FREED
    }
}

/// Live blocks by address.
#[derive(Debug)]
pub struct Blocks {
    slots: Vec<Slot>,
    /// 64 - log2 of the slot count: the shift that takes a hash's top bits as a slot number
    /// (kept so, not as the log, to spare a subtraction per lookup).
    region_shift: u32,
    /// Slots in use.
    used: usize,
    /// Bit `i % 64` of word `i / 64`: slot `i` is in use.
    occupied: Vec<u64>,
    /// Addresses whose blocks do not go in a slot (see the module's doc), oldest first. An
    /// address is in the slots or here, never in both.
    aside: HashMap<u64, VecDeque<Block>>,
    /// New blocks, not in a slot yet, at their [`place`] (address EMPTY: none).
    nursery: Box<[Place; NURSERY]>,
}

impl Default for Blocks {
    fn default() -> Blocks {
        Blocks {
            slots: vec![Slot::default(); 1 << FIRST_BITS],
            region_shift: 64 - FIRST_BITS,
            used: 0,
            occupied: vec![0; (1 << FIRST_BITS) / 64],
            aside: HashMap::new(),
            nursery: Box::new([Place::default(); NURSERY]),
        }
    }
}

impl Blocks {
    #[inline]
    fn mask(&self) -> usize {
        self.slots.len() - 1
    }

    /// The first slot an address probes. Within a 64 KiB region, addresses keep their order,
    /// two slots per 16 bytes (blocks allocated one after another land in neighbouring slots,
    /// on cache lines just used, and blocks packed tight leave every other slot free); regions
    /// are scattered by a multiplicative hash of their number.
    #[inline]
    fn home(&self, addr: u64) -> usize {
        let region = (addr >> 16).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> self.region_shift;
        ((addr >> 3).wrapping_add(region) as usize) & self.mask()
    }

    #[inline(always)]
    fn in_use(&self, i: usize) -> bool {
        self.occupied[i / 64] >> (i % 64) & 1 != 0
    }

    #[inline(always)]
    fn mark(&mut self, i: usize, used: bool) {
        let bit = 1u64 << (i % 64);
        let word = &mut self.occupied[i / 64];
        *word = if used { *word | bit } else { *word & !bit };
    }

    /// The slot holding `addr`, if one does.
    #[inline]
    fn find(&self, addr: u64) -> Option<usize> {
        let mask = self.mask();
        let mut i = self.home(addr);
        // Its first slot free: in no slot (the probe run ends there).
        if !self.in_use(i) {
            return None;
        }
        loop {
            let a = self.slots[i].addr;
            // Empty first: address 0 (kept aside) is never found in a slot.
            if a == EMPTY {
                return None;
            }
            if a == addr {
                return Some(i);
            }
            i = (i + 1) & mask;
        }
    }

    /// Moves the nursery's block at place `p` to a slot.
    #[cold]
    fn leave_nursery(&mut self, p: usize) -> Uncounted {
        let place = std::mem::take(&mut self.nursery[p]);
        self.put(place.slot);
        place.uncounted()
    }

    /// The first empty slot from `addr`'s home on, found in the bitmap (the slots are not
    /// read).
    #[inline]
    fn empty_slot_for(&self, addr: u64) -> usize {
        let mut i = self.home(addr);
        loop {
            // The free slots of i's word from i on (the table is at least a word long).
            let free = !self.occupied[i / 64] >> (i % 64);
            if free != 0 {
                return i + free.trailing_zeros() as usize;
            }
            i = ((i / 64 + 1) * 64) & self.mask();
        }
    }

    /// Puts a block whose address is live nowhere else in an empty slot.
    #[inline]
    fn put(&mut self, s: Slot) {
        let i = self.empty_slot_for(s.addr);
        self.slots[i] = s;
        self.mark(i, true);
        self.used += 1;
        if self.used * 2 > self.slots.len() {
            self.grow();
        }
    }

    /// Adds a block at `addr` (after any block already live there), allocated at peak
    /// generation `since`.
    #[inline(always)]
    pub fn insert(&mut self, addr: u64, size: u64, group: u32, since: u64) -> Inserted {
        // Size and group pack when no bit of either is past its field (one test for both).
        let fits = addr != EMPTY && (size >> SIZE_BITS) | u64::from(group / GROUP_LIMIT) == 0;
        let p = place(addr);
        let new = Place {
            slot: Slot {
                addr,
                packed: size | (u64::from(group) << SIZE_BITS),
            },
            since,
        };
        // (Address EMPTY matches an empty place: never taken for a block.)
        let here = self.nursery[p].slot.addr == addr && addr != EMPTY;
        let freed_here = here && self.nursery[p].slot.packed == FREED;
        // A block live at this address in the nursery is older: it goes to its slot first.
        let settled = (here && !freed_here).then(|| self.leave_nursery(p));
        if !fits || !self.aside.is_empty() && self.aside.contains_key(&addr) {
            self.insert_aside(addr, (size, group));
            return Inserted {
                nursery: false,
                settled,
            };
        }
        // Freed from this place and not allocated since: live nowhere.
        if freed_here {
            self.nursery[p] = new;
            return Inserted {
                nursery: true,
                settled: None,
            };
        }
        if self.find(addr).is_some() {
            self.insert_aside(addr, (size, group));
            return Inserted {
                nursery: false,
                settled,
            };
        }
        // Live nowhere else: the block waits in the nursery, and the one at its place there
        // (at another address) moves on to a slot.
        let before = std::mem::replace(&mut self.nursery[p], new);
        let settled = before.holds_block().then(|| {
            self.put(before.slot);
            before.uncounted()
        });
        Inserted {
            nursery: true,
            settled,
        }
    }

    /// Removes the (oldest) block at `addr`; None when no block is live there.
    #[inline(always)]
    pub fn remove(&mut self, addr: u64) -> Option<Freed> {
        let p = place(addr);
        if self.nursery[p].slot.addr == addr && addr != EMPTY {
            let place = self.nursery[p];
            self.nursery[p].slot.packed = FREED;
            if place.slot.packed != FREED {
                return Some(Freed::Uncounted(place.uncounted()));
            }
            // Freed from here and not allocated since: in no slot.
            return match self.aside.is_empty() {
                true => None,
                false => self.remove_aside(addr).map(Freed::Counted),
            };
        }
        match self.find(addr) {
            Some(i) => {
                let packed = self.slots[i].packed;
                self.vacate(i);
                Some(Freed::Counted(unpack(packed)))
            }
            None if self.aside.is_empty() => None,
            None => self.remove_aside(addr).map(Freed::Counted),
        }
    }

    /// Whether no block is live at `addr`, known at a glance: the nursery's place holds it
    /// marked freed (so no slot does) and nothing is kept aside. False says nothing.
    #[inline(always)]
    pub fn free_here(&self, addr: u64) -> bool {
        let place = &self.nursery[place(addr)];
        place.slot.addr == addr && place.slot.packed == FREED && self.aside.is_empty()
    }

    /// The blocks in the nursery, which their groups have not counted.
    pub fn uncounted(&self) -> impl Iterator<Item = Uncounted> + '_ {
        self.nursery
            .iter()
            .filter(|p| p.holds_block())
            .map(Place::uncounted)
    }

    /// Empties slot `i`, moving back the slots after it that probed past it.
    #[inline]
    fn vacate(&mut self, mut hole: usize) {
        let mask = self.mask();
        let mut j = hole;
        loop {
            j = (j + 1) & mask;
            if !self.in_use(j) {
                break;
            }
            let s = self.slots[j];
            let home = self.home(s.addr);
            // `s` may fill the hole when the hole lies between its home and where it is.
            if j.wrapping_sub(home) & mask >= j.wrapping_sub(hole) & mask {
                self.slots[hole] = s;
                hole = j;
            }
        }
        self.slots[hole] = Slot::default();
        self.mark(hole, false);
        self.used -= 1;
    }

    /// A block kept on the side; the one already in a slot at that address (older) moves
    /// there first.
    #[cold]
    fn insert_aside(&mut self, addr: u64, block: Block) {
        let older = if addr == EMPTY {
            None
        } else {
            self.find(addr).map(|i| {
                let packed = self.slots[i].packed;
                self.vacate(i);
                unpack(packed)
            })
        };
        let queue = self.aside.entry(addr).or_default();
        queue.extend(older);
        queue.push_back(block);
    }

    #[cold]
    fn remove_aside(&mut self, addr: u64) -> Option<Block> {
        let queue = self.aside.get_mut(&addr)?;
        let block = queue.pop_front();
        if queue.is_empty() {
            self.aside.remove(&addr);
        }
        block
    }

    /// Doubles the slots.
    #[cold]
    fn grow(&mut self) {
        let doubled = vec![Slot::default(); 2 * self.slots.len()];
        let old = std::mem::replace(&mut self.slots, doubled);
        self.occupied = vec![0; self.slots.len() / 64];
        self.region_shift -= 1;
        for s in old.into_iter().filter(|s| s.addr != EMPTY) {
            let i = self.empty_slot_for(s.addr);
            self.slots[i] = s;
            self.mark(i, true);
        }
    }

    /// Live blocks.
    #[cfg(test)]
    fn len(&self) -> usize {
        let nursery = self.uncounted().count();
        self.used + nursery + self.aside.values().map(VecDeque::len).sum::<usize>()
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Panics unless the bitmap marks exactly the slots in use.
    #[cfg(test)]
    fn check_bitmap(&self) {
        for (i, s) in self.slots.iter().enumerate() {
            assert_eq!(self.in_use(i), s.addr != EMPTY, "slot {i}");
        }
        let marked: u32 = self.occupied.iter().map(|w| w.count_ones()).sum();
        assert_eq!(marked as usize, self.used);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::test_rng::Rng;

    impl Blocks {
        /// Inserts, leaving the counting aside.
        fn add(&mut self, addr: u64, size: u64, group: u32) {
            let _ = self.insert(addr, size, group, 0);
        }

        /// Removes, counted or not.
        fn take(&mut self, addr: u64) -> Option<Block> {
            self.remove(addr).map(|f| match f {
                Freed::Counted(b) => b,
                Freed::Uncounted(u) => (u.size, u.group),
            })
        }
    }

    #[test]
    fn blocks_come_back_with_their_size_and_group_oldest_first() {
        let mut b = Blocks::default();
        b.add(0x10, 8, 1);
        b.add(0x10, 16, 2); // a second block at one address
        b.add(0, 3, 4); // address 0
        b.add(0x20, 1 << 41, 5); // too large to pack
        b.add(0x30, 7, GROUP_LIMIT); // a group too large to pack
        assert_eq!(b.len(), 5);
        assert_eq!(b.take(0x10), Some((8, 1)));
        b.add(0x10, 32, 3);
        assert_eq!(b.take(0x10), Some((16, 2)));
        assert_eq!(b.take(0x10), Some((32, 3)));
        assert_eq!(b.take(0x10), None);
        assert_eq!(b.take(0), Some((3, 4)));
        assert_eq!(b.take(0x20), Some((1 << 41, 5)));
        assert_eq!(b.take(0x30), Some((7, GROUP_LIMIT)));
        assert!(b.is_empty());
    }

    #[test]
    fn an_address_freed_from_the_nursery_and_allocated_again() {
        // Freed from the nursery, the address stays there marked: allocations at it again skip
        // the slots' probe, and still come back oldest first with blocks aside and in slots.
        let mut b = Blocks::default();
        let a = 0x4000;
        let same_place = 0x6010; // another address at the same place
        assert_eq!(place(a), place(same_place));
        b.add(a, 8, 1);
        assert_eq!(b.take(a), Some((8, 1)));
        assert_eq!(b.take(a), None);
        b.add(a, 16, 2); // where it was freed
        b.add(a, 24, 3); // a second block there: the first moves to a slot, this one aside
        b.add(a, 1 << 41, 4); // one that does not pack
        assert_eq!(b.len(), 3);
        assert_eq!(b.take(a), Some((16, 2)));
        assert_eq!(b.take(a), Some((24, 3)));
        b.add(a, 32, GROUP_LIMIT); // a group too large to pack, behind the one aside
        assert_eq!(b.take(a), Some((1 << 41, 4)));
        assert_eq!(b.take(a), Some((32, GROUP_LIMIT)));
        assert_eq!(b.take(a), None);
        // A block at another address takes the place: the freed mark is gone, the probe
        // finds the address in no slot all the same.
        b.add(a, 40, 5);
        assert_eq!(b.take(a), Some((40, 5)));
        b.add(same_place, 48, 6);
        b.add(a, 56, 7); // `same_place` moves to a slot
        assert_eq!(b.take(same_place), Some((48, 6)));
        assert_eq!(b.take(a), Some((56, 7)));
        assert!(b.is_empty());
    }

    #[test]
    fn the_nursery_and_the_slots_agree_with_a_plain_map() {
        // Random allocations and frees against a map of queues, oldest first: over few
        // addresses (blocks meet at one address, in the nursery and in the slots), over
        // addresses whose nursery places collide (16 per place), and over many (both).
        let spreads: [&dyn Fn(u64) -> u64; 3] = [
            &|x| (x % 64) * 16 * (1 + (x >> 40) % 3),
            &|x| ((x % 16) << 22) + (x >> 32) % 4 * 16,
            &|x| (x % 20_000) * 16,
        ];
        for spread in spreads {
            let mut b = Blocks::default();
            let mut model: HashMap<u64, VecDeque<Block>> = HashMap::new();
            let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
            for i in 0..200_000u64 {
                let x = rng.next();
                let addr = 0x5000_0000 + spread(x);
                if x >> 62 < 2 {
                    let block = (i % 5000, (i % 300) as u32);
                    b.add(addr, block.0, block.1);
                    model.entry(addr).or_default().push_back(block);
                } else {
                    let want = model.get_mut(&addr).and_then(VecDeque::pop_front);
                    assert_eq!(b.take(addr), want, "event {i}, address {addr:#x}");
                }
                if i % 10_000 == 0 {
                    b.check_bitmap();
                }
            }
            let live: usize = model.values().map(VecDeque::len).sum();
            assert_eq!(b.len(), live);
            for (addr, queue) in model {
                for block in queue {
                    assert_eq!(b.take(addr), Some(block));
                }
                assert_eq!(b.take(addr), None);
            }
            assert!(b.is_empty());
        }
    }

    #[test]
    fn every_block_is_counted_once_until_it_is_freed() {
        // The caller's side: a block is counted when it goes elsewhere than the nursery, when
        // it leaves the nursery for a slot, and uncounted when a free takes a counted block.
        // Counted plus the nursery's must be what is live, by group, at every step.
        let mut b = Blocks::default();
        let mut model: HashMap<u64, VecDeque<Block>> = HashMap::new();
        let mut counted: HashMap<u32, u64> = HashMap::new();
        let mut rng = Rng(0x2545_F491_4F6C_DD1D);
        for i in 0..100_000u64 {
            let x = rng.next();
            // Few addresses (blocks meet at one), many nursery collisions, address 0, sizes
            // that do not pack.
            let addr = (x % 3000) * 16 * (1 + (x >> 50) % 2);
            let group = ((x >> 20) % 40) as u32;
            if x >> 62 < 2 {
                let size = if i % 997 == 0 { 1 << 41 } else { 1 + i % 900 };
                let ins = b.insert(addr, size, group, i);
                if !ins.nursery {
                    *counted.entry(group).or_default() += size;
                }
                if let Some(u) = ins.settled {
                    assert!(u.since < i);
                    *counted.entry(u.group).or_default() += u.size;
                }
                model.entry(addr).or_default().push_back((size, group));
            } else {
                let want = model.get_mut(&addr).and_then(VecDeque::pop_front);
                let got = b.remove(addr);
                match got {
                    Some(Freed::Counted((size, g))) => {
                        *counted.get_mut(&g).expect("a counted group") -= size;
                        assert_eq!(Some((size, g)), want);
                    }
                    Some(Freed::Uncounted(u)) => assert_eq!(Some((u.size, u.group)), want),
                    None => assert_eq!(want, None),
                }
            }
            if i % 1000 == 0 {
                let mut by_group = counted.clone();
                for u in b.uncounted() {
                    *by_group.entry(u.group).or_default() += u.size;
                }
                by_group.retain(|_, v| *v != 0);
                let mut live: HashMap<u32, u64> = HashMap::new();
                for &(size, g) in model.values().flatten() {
                    *live.entry(g).or_default() += size;
                }
                assert_eq!(by_group, live, "event {i}");
            }
        }
    }

    #[test]
    fn millions_of_blocks_through_growth_and_removal() {
        let mut b = Blocks::default();
        let addr = |i: u64| 0x7f00_0000_0000 + i * 48;
        let n = 1_000_000u64;
        for i in 0..n {
            b.add(addr(i), i % 1000, (i % 77) as u32);
        }
        assert_eq!(b.len(), n as usize);
        b.check_bitmap();
        // Every other block goes (probe runs shift back), the rest must still be found.
        for i in (0..n).step_by(2) {
            assert_eq!(b.take(addr(i)), Some((i % 1000, (i % 77) as u32)));
        }
        for i in 0..n {
            let want = (i % 2 == 1).then_some((i % 1000, (i % 77) as u32));
            assert_eq!(b.take(addr(i)), want, "{i}");
        }
        assert!(b.is_empty());
        assert_eq!(b.used, 0);
        b.check_bitmap();
    }
}
