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
    scratch: *mut u8,
    scratch_len: usize,
    splitter: Splitter,
    streams: [Vec<u8>; stream::COUNT],
}

impl Compressor {
    pub fn new() -> Compressor {
        Compressor {
            cctx: None,
            scratch: core::ptr::null_mut(),
            scratch_len: 0,
            splitter: Splitter::new(),
            streams: Default::default(),
        }
    }

    /// Compresses `raw` (at most `max_raw` bytes, the staging capacity). Returns the codec and
    /// the stored bytes, or None when nothing is smaller than `raw` itself.
    pub fn compress(&mut self, raw: &[u8], max_raw: usize) -> Option<(ChunkCodec, &[u8])> {
        self.prepare(max_raw)?;
        let columnar = if raw.len() >= COLUMNS_MIN {
            self.columns(raw)
        } else {
            None
        };
        let (codec, start, len) = match columnar {
            Some((start, len)) => (ChunkCodec::Columns, start, len),
            None => (ChunkCodec::Zstd, 0, self.zstd(raw)?),
        };
        // SAFETY: scratch holds scratch_len bytes; [start, start + len) were just written.
        let out = unsafe { core::slice::from_raw_parts(self.scratch.add(start), len) };
        Some((codec, out))
    }

    fn prepare(&mut self, max_raw: usize) -> Option<()> {
        if self.scratch.is_null() {
            // Room for every stream stored raw, with their frame table; the address stream can
            // be longer than the raw addresses were.
            let len = 4 * max_raw + MAX_FRAME_TABLE + 4096;
            self.scratch = sys::map_anon(len)?;
            self.scratch_len = len;
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

    fn scratch(&mut self) -> &mut [u8] {
        // SAFETY: scratch is scratch_len bytes of anonymous memory owned by this state.
        unsafe { core::slice::from_raw_parts_mut(self.scratch, self.scratch_len) }
    }

    /// One zstd frame at the start of scratch; None when it is not smaller than `raw`.
    fn zstd(&mut self, raw: &[u8]) -> Option<usize> {
        // SAFETY: as in `scratch`; taken apart from `self.cctx` for the borrow checker.
        let dst = unsafe { core::slice::from_raw_parts_mut(self.scratch, self.scratch_len) };
        let n = self.cctx.as_mut()?.compress2(dst, raw).ok()?;
        (n < raw.len()).then_some(n)
    }

    /// The frame table and the streams, contiguous in scratch; returns (start, length).
    fn columns(&mut self, raw: &[u8]) -> Option<(usize, usize)> {
        self.splitter.split(raw, &mut self.streams).ok()?;
        let mut lens = [(0usize, 0usize); stream::COUNT];
        let mut at = MAX_FRAME_TABLE;
        for (i, len) in lens.iter_mut().enumerate() {
            let s = core::mem::take(&mut self.streams[i]);
            let stored = self.store_stream(&s, at);
            self.streams[i] = s;
            let stored = stored?;
            *len = (self.streams[i].len(), stored);
            at += stored;
        }
        let mut table = [0u8; MAX_FRAME_TABLE];
        let n = write_frame_table(&lens, &mut table);
        let start = MAX_FRAME_TABLE - n;
        self.scratch()[start..MAX_FRAME_TABLE].copy_from_slice(&table[..n]);
        let total = at - start;
        (total < raw.len()).then_some((start, total))
    }

    /// Writes one stream at scratch[at..], compressed when that makes it smaller.
    fn store_stream(&mut self, s: &[u8], at: usize) -> Option<usize> {
        let scratch_len = self.scratch_len;
        if s.len() >= MIN_COMPRESSED_STREAM {
            // SAFETY: as in `scratch`; taken apart from `self.cctx` for the borrow checker.
            let dst = unsafe { core::slice::from_raw_parts_mut(self.scratch, scratch_len) };
            if let Ok(n) = self.cctx.as_mut()?.compress2(&mut dst[at..], s) {
                if n < s.len() {
                    return Some(n);
                }
            }
        }
        let end = at.checked_add(s.len()).filter(|&e| e <= scratch_len)?;
        self.scratch()[at..end].copy_from_slice(s);
        Some(s.len())
    }
}
