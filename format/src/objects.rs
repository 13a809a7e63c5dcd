//! The object-types record: which Python objects were live when a Python run's script finished,
//! and of what type. Written by the tracker right after the "live at exit" marker, as extended
//! records (kind [`OBJECT_TYPES_KIND`]) in Meta chunks; readers that do not know it skip it.
//!
//! A reader gives each block live at exit the type of the objects whose addresses fall inside
//! it (an object sits a few words into its block: CPython puts the garbage collector's links,
//! and from 3.11/3.12 the managed dict and weak-reference pointers, before it).
//!
//! Payload: byte string `type` (the type's name: `tp_name`, qualified with `__module__` for
//! classes defined in Python), varint `n`, then `n` addresses in ascending order: the first as
//! a varint, each next one as a varint of its difference from the one before.

use crate::varint;

/// The extended record kind of an object-types record.
pub const OBJECT_TYPES_KIND: u64 = 40;
/// The most addresses a writer puts in one record (a type with more takes several).
pub const MAX_ADDRESSES: usize = 8192;
/// Type names longer than this are cut.
pub const MAX_NAME: usize = 256;
/// Room an encoded payload of [`MAX_ADDRESSES`] addresses never exceeds.
pub const MAX_PAYLOAD: usize = MAX_NAME + (MAX_ADDRESSES + 2) * varint::MAX_VARINT_LEN;

/// Encodes a payload into `buf` (at least [`MAX_PAYLOAD`] bytes) without allocating.
/// `addrs` must be ascending and at most [`MAX_ADDRESSES`] long. Returns the length.
pub fn encode(buf: &mut [u8], name: &[u8], addrs: &[u64]) -> usize {
    let name = &name[..name.len().min(MAX_NAME)];
    let addrs = &addrs[..addrs.len().min(MAX_ADDRESSES)];
    let mut pos = varint::put(buf, 0, name.len() as u64);
    buf[pos..pos + name.len()].copy_from_slice(name);
    pos += name.len();
    pos = varint::put(buf, pos, addrs.len() as u64);
    let mut prev = 0u64;
    for &a in addrs {
        pos = varint::put(buf, pos, a.wrapping_sub(prev));
        prev = a;
    }
    pos
}

/// A decoded object-types record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectTypes {
    pub name: Vec<u8>,
    pub addrs: Vec<u64>,
}

/// Decodes a payload; None when it is damaged.
pub fn decode(buf: &[u8]) -> Option<ObjectTypes> {
    let mut pos = 0;
    let len = varint::get(buf, &mut pos)? as usize;
    let name = buf.get(pos..pos.checked_add(len)?)?.to_vec();
    pos += len;
    let n = varint::get(buf, &mut pos)? as usize;
    // Every address takes a byte at least: a count beyond the payload is damage.
    if n > buf.len() - pos {
        return None;
    }
    let mut addrs = Vec::with_capacity(n);
    let mut prev = 0u64;
    for _ in 0..n {
        prev = prev.wrapping_add(varint::get(buf, &mut pos)?);
        addrs.push(prev);
    }
    Some(ObjectTypes { name, addrs })
}

/// The extended record kind of a type-names record: the address and name of types alive at
/// the script's end, so that a reader can name the types typed frees (record type 22) give.
/// Payload: varint `n`, then `n` times varint type address and byte string name.
pub const TYPE_NAMES_KIND: u64 = 41;
/// The most types a writer puts in one type-names record.
pub const MAX_TYPE_NAMES: usize = 64;
/// Room an encoded type-names payload never exceeds.
pub const MAX_TYPE_NAMES_PAYLOAD: usize =
    varint::MAX_VARINT_LEN + MAX_TYPE_NAMES * (2 * varint::MAX_VARINT_LEN + MAX_NAME);

/// Encodes a type-names payload into `buf` (at least [`MAX_TYPE_NAMES_PAYLOAD`] bytes):
/// at most [`MAX_TYPE_NAMES`] (address, name) pairs, names cut at [`MAX_NAME`]. Returns the
/// length.
pub fn encode_type_names<'a>(
    buf: &mut [u8],
    types: impl ExactSizeIterator<Item = (u64, &'a [u8])>,
) -> usize {
    let n = types.len().min(MAX_TYPE_NAMES);
    let mut pos = varint::put(buf, 0, n as u64);
    for (addr, name) in types.take(n) {
        let name = &name[..name.len().min(MAX_NAME)];
        pos = varint::put(buf, pos, addr);
        pos = varint::put(buf, pos, name.len() as u64);
        buf[pos..pos + name.len()].copy_from_slice(name);
        pos += name.len();
    }
    pos
}

/// Decodes a type-names payload into (type address, name) pairs; None when it is damaged.
pub fn decode_type_names(buf: &[u8]) -> Option<Vec<(u64, Vec<u8>)>> {
    let mut pos = 0;
    let n = varint::get(buf, &mut pos)? as usize;
    if n > buf.len() {
        return None;
    }
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let addr = varint::get(buf, &mut pos)?;
        let len = varint::get(buf, &mut pos)? as usize;
        let name = buf.get(pos..pos.checked_add(len)?)?.to_vec();
        pos += len;
        out.push((addr, name));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names_round_trip() {
        let mut buf = vec![0u8; MAX_TYPE_NAMES_PAYLOAD];
        let types: [(u64, &[u8]); 2] = [(0x55aa_0000_1000, b"int"), (0x7f00_1234, b"__main__.A")];
        let n = encode_type_names(&mut buf, types.into_iter());
        let d = decode_type_names(&buf[..n]).expect("decodes");
        assert_eq!(
            d,
            vec![
                (0x55aa_0000_1000, b"int".to_vec()),
                (0x7f00_1234, b"__main__.A".to_vec())
            ]
        );
        assert_eq!(decode_type_names(&buf[..n - 1]), None);
    }

    #[test]
    fn round_trips() {
        let mut buf = vec![0u8; MAX_PAYLOAD];
        let addrs = [0x7f00_0000_1000, 0x7f00_0000_1030, 0x7f00_0001_0000];
        let n = encode(&mut buf, b"__main__.Point", &addrs);
        let d = decode(&buf[..n]).expect("decodes");
        assert_eq!(d.name, b"__main__.Point");
        assert_eq!(d.addrs, addrs);
        assert_eq!(decode(&buf[..n - 1]), None);
        assert_eq!(decode(&[3, b'a']), None);
    }
}
