//! Turns a thread's full staging area (the streams of a columnar chunk) into the stored payload
//! of an Events chunk: the frame table, then each stream as a zstd frame or as it is (see
//! docs/FORMAT.md, "The columns codec").

use crate::sys;
use memtrace_format::columns::{stream, write_frame_table, MAX_FRAME_TABLE, MIN_COMPRESSED_STREAM};
use zstd_safe::{CCtx, CParameter};

const COMPRESSION_LEVEL: i32 = 1;

/// One thread's compression state, created on its first flush and kept for the next ones.
pub struct Compressor {
    cctx: Option<CCtx<'static>>,
    /// Where stored payloads are built (anonymous memory mapped once, never unmapped).
    scratch: &'static mut [u8],
}

impl Compressor {
    pub fn new() -> Compressor {
        Compressor {
            cctx: None,
            scratch: &mut [],
        }
    }

    /// The stored payload of `streams` (together at most `max_raw` bytes). None when no memory
    /// could be had for it.
    pub fn compress(&mut self, streams: &[&[u8]; stream::COUNT], max_raw: usize) -> Option<&[u8]> {
        self.prepare(max_raw)?;
        let mut lens = [(0usize, 0usize); stream::COUNT];
        let mut at = MAX_FRAME_TABLE;
        for (s, len) in streams.iter().zip(lens.iter_mut()) {
            let stored = store_stream(self.cctx.as_mut(), s, &mut self.scratch[at..])?;
            *len = (s.len(), stored);
            at += stored;
        }
        let mut table = [0u8; MAX_FRAME_TABLE];
        let n = write_frame_table(&lens, &mut table);
        let start = MAX_FRAME_TABLE - n;
        self.scratch[start..MAX_FRAME_TABLE].copy_from_slice(&table[..n]);
        Some(&self.scratch[start..at])
    }

    fn prepare(&mut self, max_raw: usize) -> Option<()> {
        if self.scratch.is_empty() {
            // Room for every stream stored as it is, after the frame table.
            let len = max_raw + MAX_FRAME_TABLE;
            let p = sys::map_anon(len)?;
            // SAFETY: `len` bytes of fresh anonymous memory that this state alone uses and that
            // is never unmapped.
            self.scratch = unsafe { core::slice::from_raw_parts_mut(p, len) };
        }
        if self.cctx.is_none() {
            // Without a context (no memory for it) the streams are stored as they are.
            self.cctx = CCtx::try_create().and_then(|mut c| {
                c.set_parameter(CParameter::CompressionLevel(COMPRESSION_LEVEL))
                    .ok()?;
                c.set_parameter(CParameter::ChecksumFlag(true)).ok()?;
                Some(c)
            });
        }
        Some(())
    }
}

/// Writes one stream at the start of `dst`, compressed when that makes it smaller; returns its
/// stored length.
fn store_stream(cctx: Option<&mut CCtx>, s: &[u8], dst: &mut [u8]) -> Option<usize> {
    if let Some(cctx) = cctx.filter(|_| s.len() >= MIN_COMPRESSED_STREAM) {
        if let Ok(n) = cctx.compress2(&mut *dst, s) {
            if n < s.len() {
                return Some(n);
            }
        }
    }
    dst.get_mut(..s.len())?.copy_from_slice(s);
    Some(s.len())
}
