//! /proc/self/maps read line by line with plain system calls into a buffer on the stack
//! (nothing allocated, no lock): the range of each mapping and the end of its name.

use crate::sys;

/// One mapping: its range and the last bytes of its line (its name's end).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapping {
    pub start: u64,
    pub end: u64,
    /// The line's last 8 bytes, big-endian (the last byte lowest).
    tail: u64,
}

impl Mapping {
    /// Whether the line ends in `name` (at most 8 bytes, as `[stack]` or `[vvar]`).
    pub fn named(&self, name: &[u8]) -> bool {
        let n = name.len().min(8);
        let mask = if n == 8 {
            u64::MAX
        } else {
            (1u64 << (8 * n)) - 1
        };
        let want = name[..n].iter().fold(0u64, |w, &b| w << 8 | u64::from(b));
        self.tail & mask == want
    }
}

/// The first mapping for which `wanted` holds.
pub fn find(mut wanted: impl FnMut(&Mapping) -> bool) -> Option<Mapping> {
    let fd = sys::open(b"/proc/self/maps\0", libc::O_RDONLY | libc::O_CLOEXEC, 0).ok()?;
    let mut lines = Lines::default();
    let mut buf = [0u8; 1024];
    let mut found = None;
    while found.is_none() {
        let n = match sys::read(fd, &mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(libc::EINTR) => continue,
            Err(_) => break,
        };
        found = buf[..n]
            .iter()
            .filter_map(|&b| lines.push(b))
            .find(|m| wanted(m));
    }
    sys::close(fd);
    found
}

/// A line of the maps file, byte by byte.
#[derive(Default)]
pub struct Lines {
    start: u64,
    end: u64,
    /// 0: in the start, 1: in the end, 2: past the range.
    field: u8,
    tail: u64,
}

impl Lines {
    /// Takes one byte; at a line's end, the mapping it described.
    pub fn push(&mut self, b: u8) -> Option<Mapping> {
        if b == b'\n' {
            let line = Mapping {
                start: self.start,
                end: self.end,
                tail: self.tail,
            };
            *self = Lines::default();
            return Some(line);
        }
        self.tail = self.tail << 8 | u64::from(b);
        let digit = (b as char).to_digit(16).map(u64::from);
        match (self.field, digit, b) {
            (0, Some(d), _) => self.start = self.start << 4 | d,
            (0, None, b'-') => self.field = 1,
            (1, Some(d), _) => self.end = self.end << 4 | d,
            (0 | 1, _, _) => self.field = 2,
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &[u8]) -> Vec<(u64, u64, bool, bool)> {
        let mut lines = Lines::default();
        text.iter()
            .filter_map(|&b| lines.push(b))
            .map(|m| (m.start, m.end, m.named(b"[stack]"), m.named(b"[vvar]")))
            .collect()
    }

    #[test]
    fn ranges_and_names() {
        let maps = b"55d0c0a00000-55d0c0a21000 r--p 00000000 fe:01 123 /usr/bin/cat\n\
7ffd1a2b3000-7ffd1a2d4000 rw-p 00000000 00:00 0                          [stack]\n\
7f00aa000000-7f00aa800000 rw-p 00000000 00:00 0 \n\
7fa610ea7000-7fa610eab000 r--p 00000000 00:00 0                          [vvar]\n\
7fa610eab000-7fa610ead000 r--p 00000000 00:00 0                          [vvar_vclock]\n\
7ffd1a3fe000-7ffd1a400000 r-xp 00000000 00:00 0                          [vdso]\n";
        assert_eq!(
            parse(maps),
            [
                (0x55d0c0a00000, 0x55d0c0a21000, false, false),
                (0x7ffd1a2b3000, 0x7ffd1a2d4000, true, false),
                (0x7f00aa000000, 0x7f00aa800000, false, false),
                (0x7fa610ea7000, 0x7fa610eab000, false, true),
                (0x7fa610eab000, 0x7fa610ead000, false, false),
                (0x7ffd1a3fe000, 0x7ffd1a400000, false, false),
            ]
        );
    }

    #[test]
    fn a_heap_address_is_in_a_mapping() {
        let data = Box::new(0u64);
        let at = &*data as *const u64 as u64;
        let m = find(|m| m.start <= at && at < m.end).expect("a mapping");
        assert!(!m.named(b"[stack]"));
    }
}
