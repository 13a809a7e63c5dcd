//! The failed-request record: an allocation the allocator refused (returned NULL), such as the
//! request behind a Python `MemoryError` under `ulimit -v` / `prlimit --as`. An extended record
//! (kind [`FAILED_KIND`]) in the thread's events, at the time of the failure; readers that do
//! not know it skip it. Payload: varints allocator (as the allocation records' types), size
//! asked for, stack id.

use crate::varint;

/// The extended record kind of a failed request.
pub const FAILED_KIND: u64 = 5;
/// Room an encoded payload never exceeds.
pub const MAX_PAYLOAD: usize = 3 * varint::MAX_VARINT_LEN;

/// A decoded failed request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Failed {
    pub allocator: u64,
    pub size: u64,
    pub stack: u64,
}

/// Encodes the payload into `buf` (at least [`MAX_PAYLOAD`] bytes); returns its length.
pub fn encode(buf: &mut [u8], f: Failed) -> usize {
    let pos = varint::put(buf, 0, f.allocator);
    let pos = varint::put(buf, pos, f.size);
    varint::put(buf, pos, f.stack)
}

/// Decodes a payload; None when it is damaged.
pub fn decode(payload: &[u8]) -> Option<Failed> {
    let mut pos = 0;
    Some(Failed {
        allocator: varint::get(payload, &mut pos)?,
        size: varint::get(payload, &mut pos)?,
        stack: varint::get(payload, &mut pos)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let f = Failed {
            allocator: 9,
            size: 1 << 40,
            stack: 77,
        };
        let mut buf = [0u8; MAX_PAYLOAD];
        let n = encode(&mut buf, f);
        assert_eq!(decode(&buf[..n]), Some(f));
    }
}
