//! Turns a thread's full staging payload into the stored payload of an Events chunk: the
//! columnar codec when it pays, else one zstd frame (see docs/FORMAT.md).

use crate::sys;
use memtrace_format::columns::{
    stream, write_frame_table, Splitter, MAX_FRAME_TABLE, MIN_COMPRESSED_STREAM,
};
use memtrace_format::ChunkCodec;
use zstd_safe::{CCtx, CParameter};

const COMPRESSION_LEVEL: i32 = 1;
/// Payloads smaller than this (a thread's last few events) are not worth splitting.
const COLUMNS_MIN: usize = 4096;

/// One thread's compression state, created on its first flush and kept for the next ones.
pub struct Compressor {
    cctx: Option<CCtx<'static>>,
    /// Where stored payloads are built (anonymous memory mapped once, never unmapped).
    scratch: &'static mut [u8],
    splitter: Splitter,
    streams: [Vec<u8>; stream::COUNT],
}

impl Compressor {
    pub fn new() -> Compressor {
        Compressor {
            cctx: None,
            scratch: &mut [],
            splitter: Splitter::new(),
            streams: Default::default(),
        }
    }

    /// Compresses `raw` (at most `max_raw` bytes, the staging capacity). Returns the codec and
    /// the stored bytes, or None when nothing is smaller than `raw` itself.
    pub fn compress(&mut self, raw: &[u8], max_raw: usize) -> Option<(ChunkCodec, &[u8])> {
        self.prepare(max_raw)?;
        let cctx = self.cctx.as_mut()?;
        let columnar = if raw.len() >= COLUMNS_MIN {
            let split = self.splitter.split(raw, &mut self.streams);
            split
                .ok()
                .and_then(|()| store_columns(cctx, &self.streams, self.scratch, raw.len()))
        } else {
            None
        };
        let (codec, start, len) = match columnar {
            Some((start, len)) => (ChunkCodec::Columns, start, len),
            None => {
                let n = cctx.compress2(&mut *self.scratch, raw).ok()?;
                (n < raw.len()).then_some((ChunkCodec::Zstd, 0, n))?
            }
        };
        Some((codec, &self.scratch[start..start + len]))
    }

    fn prepare(&mut self, max_raw: usize) -> Option<()> {
        if self.scratch.is_empty() {
            // Room for every stream stored raw, with their frame table; the address stream can
            // be longer than the raw addresses were.
            let len = 4 * max_raw + MAX_FRAME_TABLE + 4096;
            let p = sys::map_anon(len)?;
            // SAFETY: `len` bytes of fresh anonymous memory that this state alone uses and that
            // is never unmapped.
            self.scratch = unsafe { core::slice::from_raw_parts_mut(p, len) };
        }
        if self.cctx.is_none() {
            let mut c = CCtx::try_create()?;
            c.set_parameter(CParameter::CompressionLevel(COMPRESSION_LEVEL))
                .ok()?;
            c.set_parameter(CParameter::ChecksumFlag(true)).ok()?;
            self.cctx = Some(c);
        }
        Some(())
    }
}

/// Writes the frame table and the streams contiguously into `dst`; returns (start, length), or
/// None when that is not smaller than the `raw_len` bytes they came from.
fn store_columns(
    cctx: &mut CCtx,
    streams: &[Vec<u8>; stream::COUNT],
    dst: &mut [u8],
    raw_len: usize,
) -> Option<(usize, usize)> {
    let mut lens = [(0usize, 0usize); stream::COUNT];
    let mut at = MAX_FRAME_TABLE;
    for (s, len) in streams.iter().zip(lens.iter_mut()) {
        let stored = store_stream(cctx, s, &mut dst[at..])?;
        *len = (s.len(), stored);
        at += stored;
    }
    let mut table = [0u8; MAX_FRAME_TABLE];
    let n = write_frame_table(&lens, &mut table);
    let start = MAX_FRAME_TABLE - n;
    dst[start..MAX_FRAME_TABLE].copy_from_slice(&table[..n]);
    let total = at - start;
    (total < raw_len).then_some((start, total))
}

/// Writes one stream at the start of `dst`, compressed when that makes it smaller; returns its
/// stored length.
fn store_stream(cctx: &mut CCtx, s: &[u8], dst: &mut [u8]) -> Option<usize> {
    if s.len() >= MIN_COMPRESSED_STREAM {
        if let Ok(n) = cctx.compress2(&mut *dst, s) {
            if n < s.len() {
                return Some(n);
            }
        }
    }
    dst.get_mut(..s.len())?.copy_from_slice(s);
    Some(s.len())
}
