//! The live anonymous mappings of an aggregated capture, as byte intervals sorted by start, as
//! a full capture's reports keep them (reporter's analysis/mappings.rs): munmap may take any
//! part of a mapping (its head, its tail, a hole that splits it in two), an mmap with
//! MAP_FIXED replaces what it overlaps, and mremap with an old length of 0 leaves the old
//! mapping in place. A mapping's pieces each count as one allocation of its entry.
//!
//! The pieces are kept in one sorted array in a raw mapping (the hooks allocate nothing):
//! mappings are few (the kernel allows some 65,000), and each change is an mmap or munmap
//! system call, which costs more than moving the array's tail.

use crate::sys;

#[derive(Clone, Copy)]
struct Piece {
    start: u64,
    end: u64,
    entry: u32,
}

pub struct Mappings {
    pieces: *mut Piece,
    len: usize,
    cap: usize,
}

/// What [`Mappings::remove_each`] did to a piece: the bytes taken, and how many pieces fewer
/// its entry has (1: it went, 0: it shrank, -1: it was split in two).
pub struct Taken {
    pub entry: u32,
    pub bytes: u64,
    pub fewer: i64,
}

impl Mappings {
    pub const fn new() -> Mappings {
        Mappings {
            pieces: core::ptr::null_mut(),
            len: 0,
            cap: 0,
        }
    }

    fn slice(&self) -> &[Piece] {
        if self.pieces.is_null() {
            return &[];
        }
        // SAFETY: `len` initialized pieces in the live mapping of `cap`.
        unsafe { core::slice::from_raw_parts(self.pieces, self.len) }
    }

    fn slice_mut(&mut self) -> &mut [Piece] {
        if self.pieces.is_null() {
            return &mut [];
        }
        // SAFETY: as in `slice`; the aggregate lock gives this thread alone the array.
        unsafe { core::slice::from_raw_parts_mut(self.pieces, self.len) }
    }

    /// The first piece that does not start before `addr`.
    fn first_from(&self, addr: u64) -> usize {
        self.slice().partition_point(|p| p.start < addr)
    }

    /// The first piece that overlaps `[addr, end)` or starts after it.
    fn first_touching(&self, addr: u64) -> usize {
        let i = self.first_from(addr);
        if i > 0 && self.slice()[i - 1].end > addr {
            i - 1
        } else {
            i
        }
    }

    /// Whether a piece overlaps `[addr, addr + len)`, or holds `addr` when `len` is 0.
    pub fn overlaps(&self, addr: u64, len: u64) -> bool {
        let end = addr.saturating_add(len.max(1));
        let i = self.first_touching(addr);
        self.slice().get(i).is_some_and(|p| p.start < end)
    }

    /// Adds `[start, start + len)` of `entry`; the caller removed what it overlapped. False
    /// when no memory could be had for it.
    pub fn insert(&mut self, start: u64, len: u64, entry: u32) -> bool {
        let end = start.saturating_add(len);
        if end <= start {
            return true;
        }
        if self.len == self.cap && !self.grow() {
            return false;
        }
        let i = self.first_from(start);
        // SAFETY: len < cap: the slot at `len` is in the mapping; the tail moves up by one.
        unsafe {
            let at = self.pieces.add(i);
            core::ptr::copy(at, at.add(1), self.len - i);
            at.write(Piece { start, end, entry });
        }
        self.len += 1;
        true
    }

    /// Takes `[addr, addr + len)` out of every piece, calling `taken` for each piece touched.
    pub fn remove_each(&mut self, addr: u64, len: u64, mut taken: impl FnMut(Taken)) {
        let end = addr.saturating_add(len);
        if end <= addr {
            return;
        }
        let first = self.first_touching(addr);
        // A hole inside one piece splits it.
        if let Some(&p) = self.slice().get(first) {
            if p.start < addr && p.end > end {
                self.slice_mut()[first].end = addr;
                let split = self.insert(end, p.end - end, p.entry);
                taken(Taken {
                    entry: p.entry,
                    bytes: if split { end - addr } else { p.end - addr },
                    fewer: if split { -1 } else { 0 },
                });
                return;
            }
        }
        let mut kept = first;
        let mut i = first;
        while i < self.len {
            let mut p = self.slice()[i];
            if p.start >= end {
                break;
            }
            let bytes = p.end.min(end) - p.start.max(addr);
            let fewer = if p.start < addr {
                p.end = addr;
                0
            } else if p.end > end {
                p.start = end;
                0
            } else {
                1
            };
            taken(Taken {
                entry: p.entry,
                bytes,
                fewer,
            });
            if fewer == 0 {
                self.slice_mut()[kept] = p;
                kept += 1;
            }
            i += 1;
        }
        if kept < i {
            // SAFETY: both ranges are inside the `len` initialized pieces.
            unsafe {
                core::ptr::copy(self.pieces.add(i), self.pieces.add(kept), self.len - i);
            }
            self.len -= i - kept;
        }
    }

    fn grow(&mut self) -> bool {
        let cap = (self.cap * 2).max(256);
        let size = core::mem::size_of::<Piece>();
        let Some(p) = sys::map_anon(cap * size) else {
            return false;
        };
        let p = p as *mut Piece;
        if !self.pieces.is_null() {
            // SAFETY: both mappings hold at least `len` pieces; they do not overlap.
            unsafe { core::ptr::copy_nonoverlapping(self.pieces, p, self.len) };
            sys::unmap(self.pieces as *mut u8, self.cap * size);
        }
        self.pieces = p;
        self.cap = cap;
        true
    }

    /// Forgets every piece and keeps the memory for the next capture.
    pub fn reset(&mut self) {
        self.len = 0;
    }

    /// Forgets every piece and gives the memory back.
    pub fn clear(&mut self) {
        if !self.pieces.is_null() {
            sys::unmap(
                self.pieces as *mut u8,
                self.cap * core::mem::size_of::<Piece>(),
            );
        }
        *self = Mappings::new();
    }
}

#[cfg(test)]
mod tests {
    use super::{Mappings, Taken};

    fn pieces(m: &Mappings) -> Vec<(u64, u64, u32)> {
        m.slice()
            .iter()
            .map(|p| (p.start, p.end, p.entry))
            .collect()
    }

    fn remove(m: &mut Mappings, addr: u64, len: u64) -> Vec<(u32, u64, i64)> {
        let mut seen = Vec::new();
        m.remove_each(addr, len, |t: Taken| seen.push((t.entry, t.bytes, t.fewer)));
        seen
    }

    #[test]
    fn holes_heads_and_tails_split_and_shrink_pieces() {
        let mut m = Mappings::new();
        assert!(m.insert(0x10000, 0x4000, 1));
        assert!(m.insert(0x20000, 0x1000, 2));
        // A hole in the middle of the first: two pieces.
        assert_eq!(remove(&mut m, 0x11000, 0x1000), vec![(1, 0x1000, -1)]);
        assert_eq!(
            pieces(&m),
            vec![
                (0x10000, 0x11000, 1),
                (0x12000, 0x14000, 1),
                (0x20000, 0x21000, 2)
            ]
        );
        // The tail of the second piece and the whole third.
        assert_eq!(
            remove(&mut m, 0x13000, 0x10000),
            vec![(1, 0x1000, 0), (2, 0x1000, 1)]
        );
        assert_eq!(
            pieces(&m),
            vec![(0x10000, 0x11000, 1), (0x12000, 0x13000, 1)]
        );
        // The head of the first, from before it.
        assert_eq!(remove(&mut m, 0x0, 0x10800), vec![(1, 0x800, 0)]);
        assert_eq!(
            pieces(&m),
            vec![(0x10800, 0x11000, 1), (0x12000, 0x13000, 1)]
        );
        assert!(m.overlaps(0x12000, 0));
        assert!(!m.overlaps(0x11000, 0x1000));
        assert_eq!(
            remove(&mut m, 0, u64::MAX),
            vec![(1, 0x800, 1), (1, 0x1000, 1)]
        );
        assert!(pieces(&m).is_empty());
        m.clear();
    }

    #[test]
    fn a_byte_range_mapping_loses_its_partial_last_page() {
        // mmap(4097) and munmap of its second page: 4096 bytes stay, as in a full capture.
        let mut m = Mappings::new();
        assert!(m.insert(0x10000, 4097, 7));
        assert_eq!(remove(&mut m, 0x11000, 0x1000), vec![(7, 1, 0)]);
        assert_eq!(pieces(&m), vec![(0x10000, 0x11000, 7)]);
        m.clear();
    }

    #[test]
    fn many_pieces_stay_sorted_as_the_array_grows() {
        let mut m = Mappings::new();
        for i in (0..1000u64).rev() {
            assert!(m.insert(i * 0x2000, 0x1000, i as u32));
        }
        let p = pieces(&m);
        assert_eq!(p.len(), 1000);
        assert!(p.windows(2).all(|w| w[0].1 <= w[1].0));
        assert_eq!(remove(&mut m, 0x1000, 0x2000 * 10).len(), 10);
        assert_eq!(pieces(&m).len(), 990);
        m.clear();
    }
}
