//! A growable open-addressing map from a nonzero u64 key to two u64 values, in memory mapped
//! with raw system calls (never through the tracker's own hooks, and without Rust's allocator,
//! so that it is safe inside any hook). Linear probing with backward-shift deletion: no
//! tombstones, so a long run of allocations and frees does not slow it down. The caller
//! serializes access (the aggregate lock).

use crate::sys;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

/// One slot: key (0: empty) and two values.
type Slot = [u64; 3];

pub struct Map {
    slots: *mut Slot,
    /// A power of two (0 before the first insert).
    capacity: usize,
    len: usize,
    /// Where the slots are published for [`Hint::slot`] (read without the lock).
    hint: Option<&'static Hint>,
}

/// What an insert did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inserted {
    New,
    /// The key was there, with these values.
    Replaced(u64, u64),
    /// No memory for the map to grow: nothing was inserted.
    NoMemory,
}

/// The slots of a map as last published, read without its lock to prefetch the slot a key
/// will be looked up in (before the real free or while the stack is walked): the map may
/// have moved since, and a prefetch of a stale address is harmless.
pub struct Hint {
    slots: AtomicPtr<Slot>,
    mask: AtomicUsize,
}

impl Hint {
    pub const fn new() -> Hint {
        Hint {
            slots: AtomicPtr::new(core::ptr::null_mut()),
            mask: AtomicUsize::new(0),
        }
    }

    /// The address of `key`'s home slot (null before the map has any).
    #[inline(always)]
    pub fn slot(&self, key: u64) -> *const u8 {
        let slots = self.slots.load(Ordering::Relaxed);
        let mask = self.mask.load(Ordering::Relaxed);
        slots.wrapping_add(home(key, mask)) as *const u8
    }

    fn publish(&self, slots: *mut Slot, capacity: usize) {
        self.mask
            .store(capacity.saturating_sub(1), Ordering::Relaxed);
        self.slots.store(slots, Ordering::Relaxed);
    }
}

// SAFETY: the map is only reached through the aggregate lock.
unsafe impl Send for Map {}

const FIRST_CAPACITY: usize = 1 << 12;
/// The largest table [`Map::reset`] keeps (384 KiB).
const KEEP_CAPACITY: usize = FIRST_CAPACITY * 4;

#[inline(always)]
fn home(key: u64, mask: usize) -> usize {
    // Keys 16 apart within a 256-byte span (blocks allocated one after the other from one
    // pool) get neighbouring slots: an allocation or free usually finds its slot's cache line
    // already loaded. Spans are spread by a multiplicative hash.
    let span = key >> 8;
    let h = (span ^ (span >> 29)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (((h >> 24) << 4) as usize | ((key >> 4) & 15) as usize) & mask
}

impl Map {
    pub const fn new() -> Map {
        Map {
            slots: core::ptr::null_mut(),
            capacity: 0,
            len: 0,
            hint: None,
        }
    }

    /// A map that publishes its slots to `hint`.
    pub const fn hinted(hint: &'static Hint) -> Map {
        Map {
            hint: Some(hint),
            ..Map::new()
        }
    }

    #[inline(always)]
    fn read(&self, i: usize) -> Slot {
        // SAFETY: i is masked by the caller into [0, capacity) of the live mapping, which the
        // lock gives this thread alone.
        unsafe { *self.slots.add(i) }
    }

    #[inline(always)]
    fn write(&mut self, i: usize, slot: Slot) {
        // SAFETY: as in `read`; `&mut self` is the only access.
        unsafe { *self.slots.add(i) = slot };
    }

    /// Where `key`'s probe ends (capacity > 0): Ok with its slot when it is there, Err with
    /// the empty slot that ends its run when it is not.
    #[inline(always)]
    fn probe(&self, key: u64) -> Result<(usize, Slot), usize> {
        let mask = self.capacity - 1;
        let mut i = home(key, mask);
        loop {
            let s = self.read(i);
            if s[0] == key {
                return Ok((i, s));
            }
            if s[0] == 0 {
                return Err(i);
            }
            i = (i + 1) & mask;
        }
    }

    /// The values of `key`.
    #[inline]
    pub fn get(&self, key: u64) -> Option<(u64, u64)> {
        if self.capacity == 0 {
            return None;
        }
        self.probe(key).ok().map(|(_, s)| (s[1], s[2]))
    }

    /// Sets the values of `key` (nonzero), in one probe: what it replaced, if anything.
    #[inline]
    pub fn insert(&mut self, key: u64, a: u64, b: u64) -> Inserted {
        if (self.len + 1) * 2 > self.capacity && !self.grow() {
            return Inserted::NoMemory;
        }
        match self.probe(key) {
            Ok((i, s)) => {
                self.write(i, [key, a, b]);
                Inserted::Replaced(s[1], s[2])
            }
            Err(i) => {
                self.len += 1;
                self.write(i, [key, a, b]);
                Inserted::New
            }
        }
    }

    /// Removes `key`; its values when it was there.
    #[inline]
    pub fn remove(&mut self, key: u64) -> Option<(u64, u64)> {
        if self.capacity == 0 {
            return None;
        }
        let mask = self.capacity - 1;
        let (i, found) = self.probe(key).ok()?;
        // Backward shift: move later members of the run into the hole when their home allows.
        let mut hole = i;
        let mut j = (i + 1) & mask;
        loop {
            let s = self.read(j);
            if s[0] == 0 {
                break;
            }
            let h = home(s[0], mask);
            // s may move to the hole when its home is not in (hole, j] cyclically.
            let between = if hole <= j {
                h > hole && h <= j
            } else {
                h > hole || h <= j
            };
            if !between {
                self.write(hole, s);
                hole = j;
            }
            j = (j + 1) & mask;
        }
        self.write(hole, [0; 3]);
        self.len -= 1;
        Some((found[1], found[2]))
    }

    /// Every (key, a, b).
    pub fn each(&self, mut f: impl FnMut(u64, u64, u64)) {
        for i in 0..self.capacity {
            let s = self.read(i);
            if s[0] != 0 {
                f(s[0], s[1], s[2]);
            }
        }
    }

    #[cold]
    fn grow(&mut self) -> bool {
        let capacity = (self.capacity * 2).max(FIRST_CAPACITY);
        let bytes = capacity * core::mem::size_of::<Slot>();
        let Some(p) = sys::map_anon(bytes) else {
            return false;
        };
        // Random lookups over tens of megabytes: huge pages spare a page walk per lookup.
        // SAFETY: madvise on the mapping just made; a refusal changes nothing.
        unsafe { libc::syscall(libc::SYS_madvise, p, bytes, libc::MADV_HUGEPAGE) };
        let mut bigger = Map {
            slots: p as *mut Slot,
            capacity,
            len: 0,
            hint: None,
        };
        self.each(|k, a, b| {
            bigger.insert(k, a, b);
        });
        let hint = self.hint;
        self.clear();
        bigger.hint = hint;
        if let Some(h) = hint {
            h.publish(bigger.slots, capacity);
        }
        *self = bigger;
        true
    }

    /// Forgets everything for the next capture. A table of up to [`KEEP_CAPACITY`] slots is
    /// kept and zeroed: unmapping it and faulting its pages in again cost more than the zeroing
    /// (a test of the pytest plugin is one short capture each); a larger one is given back.
    pub fn reset(&mut self) {
        if self.slots.is_null() || self.capacity > KEEP_CAPACITY {
            return self.clear();
        }
        // SAFETY: the live mapping of `capacity` slots, which the lock gives this thread alone.
        unsafe { core::ptr::write_bytes(self.slots, 0, self.capacity) };
        self.len = 0;
    }

    /// Forgets everything and gives the memory back.
    pub fn clear(&mut self) {
        let hint = self.hint;
        if let Some(h) = hint {
            h.publish(core::ptr::null_mut(), 0);
        }
        if !self.slots.is_null() {
            sys::unmap(
                self.slots as *mut u8,
                self.capacity * core::mem::size_of::<Slot>(),
            );
        }
        *self = Map::new();
        self.hint = hint;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reset_keeps_a_small_table_empty_and_gives_a_large_one_back() {
        let mut m = Map::new();
        for k in 1..1000u64 {
            assert_eq!(m.insert(k * 16, k, 0), Inserted::New);
        }
        let (slots, capacity) = (m.slots, m.capacity);
        m.reset();
        assert_eq!((m.slots, m.capacity, m.len), (slots, capacity, 0));
        for k in 1..1000u64 {
            assert_eq!(m.get(k * 16), None);
        }
        assert_eq!(m.insert(32, 5, 6), Inserted::New);
        assert_eq!(m.get(32), Some((5, 6)));
        for k in 1..(KEEP_CAPACITY as u64) {
            m.insert(k * 16, k, 0);
        }
        assert!(m.capacity > KEEP_CAPACITY);
        m.reset();
        assert_eq!((m.capacity, m.len), (0, 0));
        assert!(m.slots.is_null());
        assert_eq!(m.get(32), None);
    }

    #[test]
    fn inserts_removes_and_grows() {
        let mut m = Map::new();
        for k in 1..100_000u64 {
            assert_eq!(m.insert(k * 16, k, k + 1), Inserted::New);
        }
        assert_eq!(m.len, 99_999);
        for k in (1..100_000u64).step_by(2) {
            assert_eq!(m.remove(k * 16), Some((k, k + 1)));
        }
        for k in 1..100_000u64 {
            let want = (k % 2 == 0).then_some((k, k + 1));
            assert_eq!(m.get(k * 16), want, "{k}");
        }
        assert_eq!(m.remove(16), None);
        assert_eq!(m.insert(32, 7, 8), Inserted::Replaced(2, 3));
        m.clear();
        assert_eq!(m.get(32), None);
    }
}
