//! The live small blocks by address, as a shadow of the heap: one 4-byte slot per 16 bytes of
//! address space (the block's bytes and its entry, 16 bits each), in leaves of 512 KiB that each
//! shadow a 2 MiB region, mapped when a block first lands there. A hash table of the live blocks spreads
//! neighbouring blocks over the whole table, so with a heap of a million blocks nearly every
//! allocation and free missed the cache there; here blocks allocated one after the other from
//! one pool have neighbouring slots, and a pool's frees walk the same cache lines again.
//!
//! Only blocks aligned to 16 bytes and smaller than [`SMALL_MAX`], of the first [`ENTRIES`]
//! entries, live here (the others are in the hash table): a leaf's resident pages are then at
//! most a quarter of the heap they shadow. (8-byte slots, half the heap, made small_objects.py's
//! aggregated run 135 MB at most instead of 113 MB, untracked 87 MB, and some 3% slower: each
//! cache line of the shadow covered half as many blocks.) The
//! caller serializes access (the aggregate lock). Memory comes from raw mappings, never the
//! program's allocator.

use crate::sys;
use core::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};

/// Blocks of fewer bytes than this may live in the shadow.
pub const SMALL_MAX: u64 = 1 << 16;
/// Blocks of entries below this may live in the shadow (a slot keeps entry + 1 in 16 bits).
pub const ENTRIES: usize = 0xFFFF;
/// Bytes of address space per region (one leaf).
const REGION_BITS: u32 = 21;
/// Bytes of address space per slot: the heap's alignment.
const GRAIN_BITS: u32 = 4;
const LEAF_SLOTS: usize = 1 << (REGION_BITS - GRAIN_BITS);
const LEAF_BYTES: usize = LEAF_SLOTS * 4;
/// A leaf's slots per page of 4 KiB.
const PAGE_SLOTS_BITS: u32 = 10;
const LEAF_PAGES: usize = LEAF_BYTES >> 12;
/// A leaf is mapped with one page more, after its slots: a byte per page of slots, set when a
/// block is stored there, so that [`Shadow::reset`] zeroes only the pages used.
const LEAF_MAPPED: usize = LEAF_BYTES + 4096;
/// The most pages of slots [`Shadow::reset`] zeroes (16 MiB); past that, it gives the leaves
/// back (a fork child of a large heap would otherwise copy every page it zeroes).
const RESET_PAGES_MAX: usize = 4096;
/// Directory slots (region + 1, leaf address): at most half are used, so that some 16 GiB of
/// heap with small blocks is shadowed; past that, blocks go to the hash table.
const DIR_SLOTS: usize = 1 << 14;
/// The directory and, after it, the list of the leaves made (at most half the slots).
const DIR_BYTES: usize = DIR_SLOTS * 16 + DIR_SLOTS / 2 * 8;

/// Regions and their leaves as made, by region modulo [`HINTS`], read without the lock to
/// prefetch a block's slot (before the real free, while the stack is walked). A stale hint
/// (after `clear`) only prefetches memory no longer used, which is harmless.
static HINT_REGIONS: [AtomicU64; HINTS] = [const { AtomicU64::new(0) }; HINTS];
static HINT_LEAVES: [AtomicU64; HINTS] = [const { AtomicU64::new(0) }; HINTS];
const HINTS: usize = 256;

/// The address of `addr`'s slot, to prefetch; null when its leaf is not among the hints.
#[inline(always)]
pub fn hint(addr: u64) -> *const u8 {
    let region = addr >> REGION_BITS;
    let h = region as usize & (HINTS - 1);
    if HINT_REGIONS[h].load(Ordering::Relaxed) != region + 1 {
        return core::ptr::null();
    }
    let leaf = HINT_LEAVES[h].load(Ordering::Relaxed);
    let i = ((addr >> GRAIN_BITS) as usize) & (LEAF_SLOTS - 1);
    (leaf as *const u32).wrapping_add(i) as *const u8
}

/// Leaves looked up lately, by region modulo this: pymalloc's arenas (1 MiB, mapped one below
/// the other) take turns, so one remembered region missed some 40% of the time.
const CACHE: usize = 64;

pub struct Shadow {
    /// Open addressing, linear probing, never removed from (until `clear`).
    dir: *mut [u64; 2],
    leaves: usize,
    /// The leaves made, in order (mapped with the directory: its second half).
    made: *mut u64,
    /// (region + 1, its leaf) of regions looked up lately, by region modulo [`CACHE`] (known
    /// not null, so that a slot found through it needs no test).
    cache: [(u64, NonNull<u32>); CACHE],
}

// SAFETY: only reached through the aggregate lock.
unsafe impl Send for Shadow {}

/// What a [`Shadow::put`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Put {
    Stored,
    /// A block was already live at that address (its free raced with this allocation in
    /// another thread): its bytes and entry.
    Replaced(u64, u32),
    /// Not stored: the block does not fit, or no memory for a leaf.
    Elsewhere,
}

impl Shadow {
    pub const fn new() -> Shadow {
        Shadow {
            dir: core::ptr::null_mut(),
            leaves: 0,
            made: core::ptr::null_mut(),
            cache: [(0, NonNull::dangling()); CACHE],
        }
    }

    /// Whether a block of `size` bytes at `addr` may live in the shadow.
    #[inline(always)]
    pub fn fits(addr: u64, size: u64) -> bool {
        addr & ((1 << GRAIN_BITS) - 1) == 0 && size < SMALL_MAX
    }

    /// The slot of `addr` (aligned), its leaf made when `make`; null when there is none.
    #[inline(always)]
    fn slot(&mut self, addr: u64, make: bool) -> Option<NonNull<u32>> {
        self.leaf_slot(addr, make).map(|(leaf, i)| {
            // SAFETY: i < LEAF_SLOTS, inside the leaf's mapping.
            unsafe { leaf.add(i) }
        })
    }

    /// The leaf of `addr` (made when `make`) and the index of its slot there.
    #[inline(always)]
    fn leaf_slot(&mut self, addr: u64, make: bool) -> Option<(NonNull<u32>, usize)> {
        let region = addr >> REGION_BITS;
        let (known, leaf) = self.cache[region as usize & (CACHE - 1)];
        let leaf = if known == region + 1 {
            leaf
        } else {
            NonNull::new(self.leaf(region, make))?
        };
        let i = ((addr >> GRAIN_BITS) as usize) & (LEAF_SLOTS - 1);
        Some((leaf, i))
    }

    /// The leaf of `region` (made when `make`), remembered in the cache; null when there is
    /// none.
    #[inline(never)]
    fn leaf(&mut self, region: u64, make: bool) -> *mut u32 {
        if self.dir.is_null() {
            if !make {
                return core::ptr::null_mut();
            }
            match sys::map_anon(DIR_BYTES) {
                Some(p) => {
                    self.dir = p as *mut [u64; 2];
                    self.made = p.wrapping_add(DIR_SLOTS * 16) as *mut u64;
                }
                None => return core::ptr::null_mut(),
            }
        }
        let key = region + 1;
        let mut i = (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 50) as usize & (DIR_SLOTS - 1);
        loop {
            // SAFETY: i < DIR_SLOTS, inside the directory's mapping; the lock is held.
            let d = unsafe { &mut *self.dir.add(i) };
            if d[0] == key {
                let leaf = d[1] as *mut u32;
                if let Some(p) = NonNull::new(leaf) {
                    self.cache[region as usize & (CACHE - 1)] = (key, p);
                }
                return leaf;
            }
            if d[0] == 0 {
                if !make || self.leaves * 2 >= DIR_SLOTS {
                    return core::ptr::null_mut();
                }
                let Some(leaf) = sys::map_anon(LEAF_MAPPED) else {
                    return core::ptr::null_mut();
                };
                *d = [key, leaf as u64];
                // SAFETY: leaves < DIR_SLOTS / 2, inside the list's part of the mapping.
                unsafe { *self.made.add(self.leaves) = leaf as u64 };
                self.leaves += 1;
                let h = region as usize & (HINTS - 1);
                HINT_LEAVES[h].store(leaf as u64, Ordering::Relaxed);
                HINT_REGIONS[h].store(key, Ordering::Relaxed);
                let leaf = leaf as *mut u32;
                if let Some(p) = NonNull::new(leaf) {
                    self.cache[region as usize & (CACHE - 1)] = (key, p);
                }
                return leaf;
            }
            i = (i + 1) & (DIR_SLOTS - 1);
        }
    }

    /// Makes the block of `size` bytes at `addr` (see [`Shadow::fits`]) live, from entry
    /// `entry` (below [`ENTRIES`], else it goes elsewhere).
    #[inline(always)]
    pub fn put(&mut self, addr: u64, size: u64, entry: u32) -> Put {
        if entry as usize >= ENTRIES {
            return Put::Elsewhere;
        }
        let Some((leaf, i)) = self.leaf_slot(addr, true) else {
            return Put::Elsewhere;
        };
        // SAFETY: a slot of a live leaf, and its page's byte in the page after the slots; the
        // lock is held.
        let old = unsafe {
            *(leaf.as_ptr().add(LEAF_SLOTS) as *mut u8).add(i >> PAGE_SLOTS_BITS) = 1;
            core::ptr::replace(leaf.as_ptr().add(i), (entry + 1) << 16 | size as u32)
        };
        match unpack(old) {
            None => Put::Stored,
            Some((bytes, entry)) => Put::Replaced(bytes, entry),
        }
    }

    /// Takes the block at `addr` away: its bytes and entry, when it lived here.
    #[inline(always)]
    pub fn take(&mut self, addr: u64) -> Option<(u64, u32)> {
        if addr & ((1 << GRAIN_BITS) - 1) != 0 {
            return None;
        }
        let p = self.slot(addr, false)?;
        // SAFETY: a slot of a live leaf; the lock is held.
        unpack(unsafe { core::ptr::replace(p.as_ptr(), 0) })
    }

    /// Forgets every block for the next capture, keeping the leaves (the pages used zeroed,
    /// the others never written) and the directory: the regions keep their leaves, and the
    /// hints and the cache stay right. Past [`RESET_PAGES_MAX`] pages used, the memory is
    /// given back instead ([`Shadow::clear`]).
    pub fn reset(&mut self) {
        let mut used = 0;
        for k in 0..self.leaves {
            // SAFETY: k < leaves, each a live leaf of LEAF_MAPPED bytes.
            let pages = unsafe { self.pages_used(k) };
            used += pages.iter().filter(|&&b| b != 0).count();
        }
        if used > RESET_PAGES_MAX {
            return self.clear();
        }
        for k in 0..self.leaves {
            // SAFETY: as above; the lock is held, so no slot is in use.
            unsafe {
                let leaf = *self.made.add(k) as *mut u8;
                for (page, mark) in self.pages_used(k).iter_mut().enumerate() {
                    if *mark != 0 {
                        core::ptr::write_bytes(leaf.add(page << 12), 0, 4096);
                        *mark = 0;
                    }
                }
            }
        }
    }

    /// The bytes that mark the pages used of the `k`-th leaf made.
    ///
    /// # Safety
    /// k < self.leaves.
    #[allow(clippy::mut_from_ref)]
    unsafe fn pages_used(&self, k: usize) -> &mut [u8] {
        // SAFETY: per the caller, a live leaf of LEAF_MAPPED bytes; its marks follow its slots.
        unsafe {
            let leaf = *self.made.add(k) as *mut u8;
            core::slice::from_raw_parts_mut(leaf.add(LEAF_BYTES), LEAF_PAGES)
        }
    }

    /// The leaves made.
    #[cfg(test)]
    pub fn leaves(&self) -> usize {
        self.leaves
    }

    /// Forgets every block and gives the memory back.
    pub fn clear(&mut self) {
        for r in &HINT_REGIONS {
            r.store(0, Ordering::Relaxed);
        }
        if !self.dir.is_null() {
            for i in 0..DIR_SLOTS {
                // SAFETY: i < DIR_SLOTS, inside the directory's mapping; the lock is held.
                let d = unsafe { *self.dir.add(i) };
                if d[0] != 0 {
                    sys::unmap(d[1] as *mut u8, LEAF_MAPPED);
                }
            }
            sys::unmap(self.dir as *mut u8, DIR_BYTES);
        }
        *self = Shadow::new();
    }
}

/// A slot's block: (bytes, entry); None for an empty slot.
#[inline(always)]
fn unpack(slot: u32) -> Option<(u64, u32)> {
    (slot != 0).then(|| (u64::from(slot & 0xFFFF), (slot >> 16) - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn puts_takes_and_replaces() {
        let mut s = Shadow::new();
        let base = 0x7f00_0000_0000u64;
        for k in 0..200_000u64 {
            // 3 MiB apart every 1,000 blocks: several leaves.
            let addr = base + (k / 1000) * (3 << 20) + (k % 1000) * 48;
            assert_eq!(s.put(addr, 40 + k % 7, (k % 50_000) as u32), Put::Stored);
        }
        assert!(s.leaves >= 200);
        let last = base + 199 * (3 << 20) + 999 * 48;
        let p = s
            .slot(last, false)
            .map_or(core::ptr::null_mut(), NonNull::as_ptr);
        assert_eq!(hint(last), p as *const u8);
        for k in (0..200_000u64).step_by(2) {
            let addr = base + (k / 1000) * (3 << 20) + (k % 1000) * 48;
            assert_eq!(s.take(addr), Some((40 + k % 7, (k % 50_000) as u32)));
            assert_eq!(s.take(addr), None);
        }
        let odd = base + 48;
        assert_eq!(s.put(odd, 8, 9), Put::Replaced(41, 1));
        assert_eq!(s.take(odd + 8), None, "unaligned");
        assert_eq!(s.take(0x1000), None, "no leaf");
        assert!(!Shadow::fits(odd, SMALL_MAX));
        assert!(!Shadow::fits(odd + 8, 8));
        // The largest size and entry a slot keeps, and the first entry it does not.
        let edge = base + 7 * 16;
        s.take(edge);
        assert_eq!(s.put(edge, SMALL_MAX - 1, ENTRIES as u32 - 1), Put::Stored);
        assert_eq!(s.take(edge), Some((SMALL_MAX - 1, ENTRIES as u32 - 1)));
        assert_eq!(s.put(edge, 0, 0), Put::Stored);
        assert_eq!(s.take(edge), Some((0, 0)), "an empty block is live too");
        assert_eq!(s.put(edge, 16, ENTRIES as u32), Put::Elsewhere);
        assert_eq!(s.take(edge), None);
        s.clear();
        assert_eq!(s.take(odd), None);
    }

    #[test]
    fn a_reset_keeps_the_leaves_and_forgets_every_block() {
        let mut s = Shadow::new();
        let base = 0x7e80_0000_0000u64;
        // Three leaves; blocks left live in each, one page of slots apart and more.
        let addrs: Vec<u64> = (0..3u64)
            .flat_map(|r| (0..40u64).map(move |k| base + (r << REGION_BITS) + k * 16 * 600))
            .collect();
        for (k, &a) in addrs.iter().enumerate() {
            assert_eq!(s.put(a, 24, k as u32), Put::Stored);
        }
        let leaves = s.leaves;
        let hinted = hint(addrs[0]);
        s.reset();
        assert_eq!(s.leaves, leaves, "the leaves stay");
        assert_eq!(hint(addrs[0]), hinted, "and so do the hints");
        for &a in &addrs {
            assert_eq!(s.take(a), None, "no block survives a reset");
        }
        // Stored afresh, not found live from before.
        for (k, &a) in addrs.iter().enumerate() {
            assert_eq!(s.put(a, 8, k as u32 + 7), Put::Stored);
        }
        assert_eq!(s.take(addrs[5]), Some((8, 12)));
        // No page marked used is left unzeroed (the marks themselves are cleared).
        s.reset();
        for k in 0..s.leaves {
            // SAFETY: k < leaves.
            assert!(unsafe { s.pages_used(k) }.iter().all(|&b| b == 0));
        }
        assert_eq!(s.take(addrs[6]), None);
        s.clear();
    }

    #[test]
    fn a_reset_of_many_pages_used_gives_the_leaves_back() {
        let mut s = Shadow::new();
        let base = 0x7d00_0000_0000u64;
        // One block per page of slots (16 KiB of address space each), past the limit.
        let pages = (RESET_PAGES_MAX + 1) as u64;
        for k in 0..pages {
            assert_eq!(s.put(base + k * 16384, 16, 1), Put::Stored);
        }
        assert!(s.leaves > 1);
        s.reset();
        assert_eq!(s.leaves, 0, "given back");
        assert_eq!(s.take(base), None);
        assert_eq!(s.put(base, 16, 2), Put::Stored);
        assert_eq!(s.take(base), Some((16, 2)));
        s.clear();
    }
}
