//! LEB128 varints and zigzag signed integers.

/// Largest encoded size of a u64.
pub const MAX_VARINT_LEN: usize = 10;

/// Writes `v` at `buf[pos..]`, returns the new position. The caller guarantees room for
/// `MAX_VARINT_LEN` bytes.
#[inline]
pub fn put(buf: &mut [u8], mut pos: usize, mut v: u64) -> usize {
    while v >= 0x80 {
        buf[pos] = (v as u8) | 0x80;
        v >>= 7;
        pos += 1;
    }
    buf[pos] = v as u8;
    pos + 1
}

/// Reads a varint at `buf[*pos..]`, advancing `pos`. None on truncation or overlong input.
#[inline(always)]
pub fn get(buf: &[u8], pos: &mut usize) -> Option<u64> {
    match get_short(buf, pos) {
        Some(v) => Some(v),
        None => get_long(buf, pos),
    }
}

/// [`get`] of a varint of one or two bytes, without the loop; None for a longer one (`pos`
/// unmoved), or at the buffer's end.
#[inline(always)]
pub fn get_short(buf: &[u8], pos: &mut usize) -> Option<u64> {
    // One byte (most values a reader meets) without the loop's tests of the shift.
    let p = *pos;
    let first = *buf.get(p)?;
    if first < 0x80 {
        *pos = p + 1;
        return Some(u64::from(first));
    }
    // Two bytes (stack ids past 127, most address distances) without the loop either.
    let second = *buf.get(p + 1)?;
    if second < 0x80 {
        *pos = p + 2;
        return Some(u64::from(first & 0x7f) | u64::from(second) << 7);
    }
    None
}

/// [`get`] of a varint of three bytes or more.
#[inline]
fn get_long(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut result = 0u64;
    let mut shift = 0u32;
    loop {
        let byte = *buf.get(*pos)?;
        *pos += 1;
        if shift == 63 && byte > 1 {
            return None;
        }
        result |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Some(result);
        }
        shift += 7;
        if shift > 63 {
            return None;
        }
    }
}

#[inline]
pub fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

#[inline]
pub fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_edges() {
        for v in [
            0u64,
            1,
            127,
            128,
            300,
            u32::MAX as u64,
            u64::MAX - 1,
            u64::MAX,
        ] {
            let mut buf = [0u8; MAX_VARINT_LEN];
            let end = put(&mut buf, 0, v);
            let mut pos = 0;
            assert_eq!(get(&buf[..end], &mut pos), Some(v));
            assert_eq!(pos, end);
        }
        for v in [0i64, -1, 1, i64::MIN, i64::MAX] {
            assert_eq!(unzigzag(zigzag(v)), v);
        }
    }

    #[test]
    fn every_length_reads_alike_with_and_without_bytes_after_it() {
        // The one-load path (8 bytes left) and the byte loop (fewer) give the same value and
        // length, for each varint length and a spread of values.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for bits in 0..64 {
            for _ in 0..50 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let v = if bits == 0 { 0 } else { x >> (64 - bits) };
                let mut buf = [0xffu8; MAX_VARINT_LEN + 8];
                let end = put(&mut buf, 0, v);
                for tail in [&buf[..], &buf[..end]] {
                    let mut pos = 0;
                    assert_eq!(get(tail, &mut pos), Some(v), "{v:#x}");
                    assert_eq!(pos, end);
                }
            }
        }
    }

    #[test]
    fn truncated_is_none() {
        let mut pos = 0;
        assert_eq!(get(&[0x80, 0x80], &mut pos), None);
        let mut pos = 0;
        assert_eq!(get(&[0xff; 11], &mut pos), None);
    }
}
