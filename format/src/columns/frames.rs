//! The frame table of a stored columnar payload: where each stream's stored bytes are.

use super::join::{corrupt, Reader};
use super::stream;
use crate::record::DecodeError;
use crate::varint::{put, MAX_VARINT_LEN};

/// Largest encoded frame table.
pub const MAX_FRAME_TABLE: usize = 1 + 2 * stream::COUNT * MAX_VARINT_LEN;

/// Writes the frame table of a columnar payload: the stream count, then each stream's raw and
/// stored length. Returns its length.
pub fn write_frame_table(lens: &[(usize, usize); stream::COUNT], buf: &mut [u8]) -> usize {
    let mut pos = put(buf, 0, stream::COUNT as u64);
    for &(raw, stored) in lens {
        pos = put(buf, pos, raw as u64);
        pos = put(buf, pos, stored as u64);
    }
    pos
}

/// One stream of a columnar payload as stored: `stored` is a zstd frame unless its length
/// equals `raw_len` (then it is the stream itself).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    pub raw_len: usize,
    pub stored: &'a [u8],
}

impl Frame<'_> {
    pub fn is_compressed(&self) -> bool {
        self.stored.len() != self.raw_len
    }
}

/// Splits a stored columnar payload into its frames. The raw lengths add up to at most
/// `max_total`: what the reader is prepared to decode for this chunk (a frame table is a few
/// bytes, and each length it claims is memory the reader would otherwise hand out).
pub fn read_frames(
    payload: &[u8],
    max_total: usize,
) -> Result<[Frame<'_>; stream::COUNT], DecodeError> {
    let mut r = Reader::new(payload, "columns: damaged frame table");
    if r.var()? != stream::COUNT as u64 {
        return Err(corrupt("columns: unknown stream layout", 0));
    }
    let mut lens = [(0usize, 0usize); stream::COUNT];
    let mut total = 0u64;
    for l in lens.iter_mut() {
        let raw = r.var()?;
        let stored = r.var()?;
        total = total.saturating_add(raw);
        if total > max_total as u64 {
            return Err(corrupt(
                "columns: the streams claim more than the chunk holds",
                r.pos,
            ));
        }
        if stored > payload.len() as u64 {
            return Err(r.err());
        }
        *l = (raw as usize, stored as usize);
    }
    let mut pos = r.pos;
    let mut frames = [Frame {
        raw_len: 0,
        stored: &[],
    }; stream::COUNT];
    for (f, &(raw_len, stored)) in frames.iter_mut().zip(lens.iter()) {
        let end = pos
            .checked_add(stored)
            .filter(|&e| e <= payload.len())
            .ok_or_else(|| corrupt("columns: a stream runs past the chunk", pos))?;
        *f = Frame {
            raw_len,
            stored: &payload[pos..end],
        };
        pos = end;
    }
    if pos != payload.len() {
        return Err(corrupt("columns: bytes after the last stream", pos));
    }
    Ok(frames)
}
