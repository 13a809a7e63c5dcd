//! Live anonymous mappings, as intervals keyed by start address. munmap may remove any part of a
//! mapping, splitting it.

use std::collections::BTreeMap;

/// A live mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapping {
    pub len: u64,
    pub stack: u64,
    pub thread: u32,
    /// The event index of the mmap (or mremap) that made it; the pieces of a split mapping keep
    /// it.
    pub index: u64,
}

#[derive(Debug, Default)]
pub struct Mappings {
    map: BTreeMap<u64, Mapping>,
    bytes: u64,
}

impl Mappings {
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn count(&self) -> u64 {
        self.map.len() as u64
    }

    /// Adds a mapping of `[addr, addr + len)`, replacing whatever tracked range it overlaps.
    pub fn add(&mut self, addr: u64, mapping: Mapping) {
        let len = mapping.len.min(u64::MAX - addr);
        if len == 0 {
            return;
        }
        self.remove(addr, len);
        self.map.insert(addr, Mapping { len, ..mapping });
        self.bytes += len;
    }

    /// Whether some tracked mapping overlaps `[addr, addr + len)` (or contains `addr` when
    /// `len` is 0).
    pub fn overlaps(&self, addr: u64, len: u64) -> bool {
        let end = addr.saturating_add(len.max(1));
        if let Some((&s, m)) = self.map.range(..=addr).next_back() {
            if s.saturating_add(m.len) > addr {
                return true;
            }
        }
        self.map.range(addr..end).next().is_some()
    }

    /// Removes `[addr, addr + len)` from every tracked mapping; returns the bytes removed.
    pub fn remove(&mut self, addr: u64, len: u64) -> u64 {
        self.remove_each(addr, len, |_, _, _| {})
    }

    /// Removes `[addr, addr + len)` from every tracked mapping and calls `removed(piece, bytes,
    /// pieces)` for each piece it touched: the bytes taken from it, and how many pieces fewer
    /// there are now (1 when it went entirely, 0 when it shrank, -1 when it was split in two).
    /// Returns the bytes removed.
    pub fn remove_each(
        &mut self,
        addr: u64,
        len: u64,
        mut removed_from: impl FnMut(&Mapping, u64, i64),
    ) -> u64 {
        let end = addr.saturating_add(len);
        if end <= addr {
            return 0;
        }
        let mut hits: Vec<(u64, Mapping)> = Vec::new();
        if let Some((&s, &m)) = self.map.range(..addr).next_back() {
            if s.saturating_add(m.len) > addr {
                hits.push((s, m));
            }
        }
        hits.extend(self.map.range(addr..end).map(|(&s, &m)| (s, m)));
        let mut removed = 0;
        for (s, m) in hits {
            self.map.remove(&s);
            let e = s.saturating_add(m.len);
            let mut left = 1;
            if s < addr {
                self.map.insert(s, Mapping { len: addr - s, ..m });
                left -= 1;
            }
            if e > end {
                self.map.insert(end, Mapping { len: e - end, ..m });
                left -= 1;
            }
            let bytes = e.min(end) - s.max(addr);
            removed_from(&m, bytes, left);
            removed += bytes;
        }
        self.bytes -= removed;
        removed
    }

    pub fn iter(&self) -> impl Iterator<Item = (u64, &Mapping)> + '_ {
        self.map.iter().map(|(&a, m)| (a, m))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(len: u64) -> Mapping {
        Mapping {
            len,
            stack: 0,
            thread: 0,
            index: 1,
        }
    }

    #[test]
    fn partial_unmaps_split() {
        let mut maps = Mappings::default();
        maps.add(0x10000, m(0x3000));
        assert_eq!(maps.remove(0x11000, 0x1000), 0x1000);
        assert_eq!((maps.bytes(), maps.count()), (0x2000, 2));
        assert_eq!(maps.remove(0x0, 0x10800), 0x800);
        assert_eq!(maps.bytes(), 0x1800);
        assert!(maps.overlaps(0x12000, 0x10));
        assert!(!maps.overlaps(0x11000, 0x1000));
        assert_eq!(maps.remove(0x10000, 0x100000), 0x1800);
        assert_eq!((maps.bytes(), maps.count()), (0, 0));
    }

    #[test]
    fn removal_reports_each_piece() {
        let mut maps = Mappings::default();
        maps.add(0x10000, m(0x4000));
        maps.add(0x20000, m(0x1000));
        let mut seen = Vec::new();
        // A hole in the middle of the first: split in two (one piece more).
        maps.remove_each(0x11000, 0x1000, |p, b, n| seen.push((p.len, b, n)));
        assert_eq!(seen, vec![(0x4000, 0x1000, -1)]);
        seen.clear();
        // The end of the first's second piece, and the whole second mapping.
        maps.remove_each(0x13000, 0x10000, |p, b, n| seen.push((p.len, b, n)));
        assert_eq!(seen, vec![(0x2000, 0x1000, 0), (0x1000, 0x1000, 1)]);
        assert_eq!((maps.bytes(), maps.count()), (0x2000, 2));
    }

    #[test]
    fn overlapping_add_replaces() {
        let mut maps = Mappings::default();
        maps.add(0x1000, m(0x2000));
        maps.add(0x2000, m(0x2000));
        assert_eq!(maps.bytes(), 0x3000);
        maps.add(u64::MAX - 4, m(100));
        assert_eq!(maps.bytes(), 0x3004);
    }
}
