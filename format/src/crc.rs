//! CRC-32 (the IEEE polynomial, as zlib and crc32fast compute it) of the capture's headers and
//! of small chunk payloads (since 1.4).
//!
//! These are a few dozen to a few thousand bytes, so a byte at a time from a table is fast
//! enough; unlike crc32fast, nothing here detects CPU features at first use, whose cpuid
//! instructions take microseconds each under a hypervisor, at every start of a tracked
//! program. (The tracker checksums a thread's chunk, tens of kilobytes, with crc32fast.)

/// The reflected IEEE polynomial.
const POLY: u32 = 0xedb8_8320;

const TABLE: [u32; 256] = table();

const fn table() -> [u32; 256] {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { POLY ^ (c >> 1) } else { c >> 1 };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
}

/// A running CRC-32.
#[derive(Clone, Copy, Debug)]
pub struct Crc32(u32);

impl Default for Crc32 {
    fn default() -> Self {
        Crc32(!0)
    }
}

impl Crc32 {
    pub fn new() -> Crc32 {
        Crc32::default()
    }

    pub fn update(&mut self, bytes: &[u8]) {
        let mut c = self.0;
        for &b in bytes {
            c = TABLE[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8);
        }
        self.0 = c;
    }

    pub fn finalize(self) -> u32 {
        !self.0
    }
}

/// The CRC-32 of `bytes`.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut c = Crc32::new();
    c.update(bytes);
    c.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        assert_eq!(crc32(b""), 0);
    }

    proptest! {
        #[test]
        fn equals_crc32fast_in_pieces(bytes in proptest::collection::vec(any::<u8>(), 0..3000), cut in 0usize..3000) {
            let cut = cut.min(bytes.len());
            let mut c = Crc32::new();
            c.update(&bytes[..cut]);
            c.update(&bytes[cut..]);
            prop_assert_eq!(c.finalize(), crc32fast::hash(&bytes));
        }
    }
}
