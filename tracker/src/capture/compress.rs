//! Turns a thread's full staging area (the streams of a columnar chunk) into the stored payload
//! of an Events chunk: the frame table, then each stream as a zstd frame or as it is (see
//! docs/FORMAT.md, "The columns codec").

use crate::sys;
use memtrace_format::columns::{stream, write_frame_table, MAX_FRAME_TABLE, MIN_COMPRESSED_STREAM};
use zstd_safe::{CCtx, CParameter};

const COMPRESSION_LEVEL: i32 = 1;
const MIN_MATCH: u32 = 7;
const HASH_LOG: u32 = 12;
/// Chunks for which a stream that did not compress is stored as it is without trying again
/// (random bytes, such as the low bytes of random sizes, stay random): zstd's tries cost as
/// much as compressing, for nothing.
const RAW_CHUNKS: u8 = 7;
/// Only a stream this long that did not compress says so: shorter ones (small areas) often do
/// not, and the next, larger chunks do.
const RAW_SIGNAL: usize = 16 << 10;

/// One thread's compression state, created when first needed and kept for the next flushes (a
/// thread whose streams are all too short to compress never creates a zstd context).
pub struct Compressor {
    cctx: Option<CCtx<'static>>,
    /// Where stored payloads are built (anonymous memory mapped once, never unmapped).
    scratch: &'static mut [u8],
    /// Chunks each stream is still stored as it is (see `RAW_CHUNKS`).
    raw_for: [u8; stream::COUNT],
}

impl Compressor {
    pub fn new() -> Compressor {
        Compressor {
            cctx: None,
            scratch: &mut [],
            raw_for: [0; stream::COUNT],
        }
    }

    /// The stored payload of `streams` (together at most `max_raw` bytes). None when no memory
    /// could be had for it.
    pub fn compress(&mut self, streams: &[&[u8]; stream::COUNT], max_raw: usize) -> Option<&[u8]> {
        self.prepare(max_raw)?;
        let mut lens = [(0usize, 0usize); stream::COUNT];
        let mut at = MAX_FRAME_TABLE;
        for ((s, len), raw_for) in streams.iter().zip(lens.iter_mut()).zip(&mut self.raw_for) {
            let tried = s.len() >= MIN_COMPRESSED_STREAM && *raw_for == 0;
            *raw_for = raw_for.saturating_sub(1);
            let cctx = if tried { context(&mut self.cctx) } else { None };
            let stored = store_stream(cctx, s, &mut self.scratch[at..])?;
            if tried && stored == s.len() && s.len() >= RAW_SIGNAL {
                *raw_for = RAW_CHUNKS;
            }
            *len = (s.len(), stored);
            at += stored;
        }
        let mut table = [0u8; MAX_FRAME_TABLE];
        let n = write_frame_table(&lens, &mut table);
        let start = MAX_FRAME_TABLE - n;
        self.scratch[start..MAX_FRAME_TABLE].copy_from_slice(&table[..n]);
        Some(&self.scratch[start..at])
    }

    /// Gives the memory of the context and of the payloads built back (a thread that wrote much
    /// exited: its state may wait long for another thread); both come back when next needed.
    pub fn release(&mut self) {
        self.cctx = None;
        if !self.scratch.is_empty() {
            sys::discard(self.scratch.as_mut_ptr(), self.scratch.len());
        }
    }

    fn prepare(&mut self, max_raw: usize) -> Option<()> {
        if self.scratch.is_empty() {
            // Room for every stream stored as it is, after the frame table (pages are touched
            // only as far as payloads reach).
            let len = max_raw + MAX_FRAME_TABLE;
            let p = sys::map_anon(len)?;
            // SAFETY: `len` bytes of fresh anonymous memory that this state alone uses and that
            // is never unmapped.
            self.scratch = unsafe { core::slice::from_raw_parts_mut(p, len) };
        }
        Some(())
    }
}

/// The zstd context in `cctx`, created on first use. None when there is no memory for one: the
/// streams are then stored as they are.
fn context<'a>(cctx: &'a mut Option<CCtx<'static>>) -> Option<&'a mut CCtx<'static>> {
    if cctx.is_none() {
        *cctx = CCtx::try_create().and_then(|mut c| {
            c.set_parameter(CParameter::CompressionLevel(COMPRESSION_LEVEL))
                .ok()?;
            c.set_parameter(CParameter::ChecksumFlag(true)).ok()?;
            // Level 1 looks for matches of 6 bytes in a 64 KiB hash table, cleared for every
            // stream; the streams' matches are long runs or none: longer matches and a smaller
            // table find the same (mallocbench: the same bytes, 10% fewer instructions in zstd,
            // less of the program's cache taken).
            c.set_parameter(CParameter::MinMatch(MIN_MATCH)).ok()?;
            c.set_parameter(CParameter::HashLog(HASH_LOG)).ok()?;
            Some(c)
        });
    }
    cctx.as_mut()
}

/// Writes one stream at the start of `dst`, compressed when that makes it smaller; returns its
/// stored length.
fn store_stream(cctx: Option<&mut CCtx>, s: &[u8], dst: &mut [u8]) -> Option<usize> {
    if let Some(cctx) = cctx {
        if let Ok(n) = cctx.compress2(&mut *dst, s) {
            if n < s.len() {
                return Some(n);
            }
        }
    }
    dst.get_mut(..s.len())?.copy_from_slice(s);
    Some(s.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use memtrace_format::columns::read_frames;

    /// Bytes zstd cannot shrink (xorshift).
    fn noise(n: usize) -> Vec<u8> {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    /// Compresses a chunk whose SIZE_LO stream is `s` (and whose STACK stream, `other`, always
    /// compresses); whether SIZE_LO was stored compressed, and its bytes as the reader gets them.
    fn size_lo(c: &mut Compressor, s: &[u8], other: &[u8]) -> (bool, Vec<u8>) {
        let mut streams: [&[u8]; stream::COUNT] = [&[]; stream::COUNT];
        streams[stream::SIZE_LO] = s;
        streams[stream::STACK] = other;
        let max = 4 * RAW_SIGNAL;
        let payload = c.compress(&streams, max).expect("memory for the payload");
        let frames = read_frames(payload, max).expect("a frame table the reader takes");
        assert!(frames[stream::STACK].is_compressed());
        let f = frames[stream::SIZE_LO];
        let mut raw = vec![0u8; f.raw_len];
        if f.is_compressed() {
            let n = zstd_safe::decompress(&mut raw[..], f.stored).expect("a zstd frame");
            assert_eq!(n, f.raw_len);
        } else {
            raw.copy_from_slice(f.stored);
        }
        (f.is_compressed(), raw)
    }

    #[test]
    fn a_long_stream_that_did_not_compress_is_stored_as_it_is_for_the_next_chunks() {
        let (random, runs) = (noise(RAW_SIGNAL), vec![7u8; RAW_SIGNAL]);
        let mut c = Compressor::new();
        // A short stream that did not compress says nothing: the next chunk is compressed.
        assert_eq!(
            size_lo(&mut c, &random[..1000], &runs),
            (false, random[..1000].to_vec())
        );
        assert_eq!(size_lo(&mut c, &runs, &runs), (true, runs.clone()));
        // A long one: the next RAW_CHUNKS chunks store that stream as it is, the others not.
        assert_eq!(size_lo(&mut c, &random, &runs), (false, random.clone()));
        for _ in 0..RAW_CHUNKS {
            assert_eq!(size_lo(&mut c, &runs, &runs), (false, runs.clone()));
        }
        assert_eq!(size_lo(&mut c, &runs, &runs), (true, runs.clone()));
    }
}
