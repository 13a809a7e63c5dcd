//! Turns a thread's full staging area (the streams of a columnar chunk) into the stored payload
//! of an Events chunk: the frame table, then each stream as a zstd frame or as it is (see
//! docs/FORMAT.md, "The columns codec").

use crate::{own_heap, sys};
use core::ffi::c_void;
use core::ptr::NonNull;
use memtrace_format::columns::{stream, write_frame_table, MAX_FRAME_TABLE, MIN_COMPRESSED_STREAM};
use zstd_sys::ZSTD_cParameter as P;

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
    cctx: Option<Context>,
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

/// A zstd compression context whose memory comes from the real allocator (ZSTD_customMem).
/// zstd's own malloc and calloc calls would go to the global definitions: the program's, when
/// it defines an allocator of its own (a static jemalloc or mimalloc). One that holds its lock
/// while it maps memory then waited for itself for ever, when its mmap, recorded, made this
/// thread compress a chunk and zstd asked it for a context.
struct Context(NonNull<zstd_sys::ZSTD_CCtx>);

impl Context {
    fn create() -> Option<Context> {
        let mem = zstd_sys::ZSTD_customMem {
            customAlloc: Some(zstd_alloc),
            customFree: Some(zstd_free),
            opaque: core::ptr::null_mut(),
        };
        // SAFETY: FFI; the two functions stay valid for the context's life (the library's).
        let c = Context(NonNull::new(unsafe {
            zstd_sys::ZSTD_createCCtx_advanced(mem)
        })?);
        c.set(P::ZSTD_c_compressionLevel, COMPRESSION_LEVEL)?;
        // No content checksum: the chunk's payload checksum (format 1.4) covers every stored
        // byte, and zstd's xxhash cost 1.2% of a Python run's added instructions to write and
        // some 4% of the live view's to read.
        c.set(P::ZSTD_c_checksumFlag, 0)?;
        // Level 1 looks for matches of 6 bytes in a 64 KiB hash table, cleared for every
        // stream; the streams' matches are long runs or none: longer matches and a smaller
        // table find the same (mallocbench: the same bytes, 10% fewer instructions in zstd,
        // less of the program's cache taken).
        c.set(P::ZSTD_c_minMatch, MIN_MATCH as i32)?;
        c.set(P::ZSTD_c_hashLog, HASH_LOG as i32)?;
        Some(c)
    }

    fn set(&self, parameter: P, value: i32) -> Option<()> {
        // SAFETY: FFI on this live context.
        let r = unsafe { zstd_sys::ZSTD_CCtx_setParameter(self.0.as_ptr(), parameter, value) };
        ok(r).map(|_| ())
    }

    /// `src` compressed into `dst` as one frame; None when it does not fit (or zstd fails).
    fn compress(&mut self, dst: &mut [u8], src: &[u8]) -> Option<usize> {
        // SAFETY: FFI on this live context, with the two slices' own pointers and lengths.
        let r = unsafe {
            zstd_sys::ZSTD_compress2(
                self.0.as_ptr(),
                dst.as_mut_ptr() as *mut c_void,
                dst.len(),
                src.as_ptr() as *const c_void,
                src.len(),
            )
        };
        ok(r)
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        // SAFETY: the context was made by ZSTD_createCCtx_advanced and is freed once.
        unsafe { zstd_sys::ZSTD_freeCCtx(self.0.as_ptr()) };
    }
}

/// A zstd result: None for an error code.
fn ok(r: usize) -> Option<usize> {
    // SAFETY: a pure function of its argument.
    (unsafe { zstd_sys::ZSTD_isError(r) } == 0).then_some(r)
}

/// zstd's allocations: always the tracker's own allocator (base::own_heap, its own mappings),
/// never the C library's, even where the rest of the tracker's memory comes from it. The
/// capture is finished where the program ends, and a program may end from a signal handler
/// (`_exit`, `abort`, `raise`, `exit`) that interrupted the C library's malloc on the same
/// thread: the context made or freed then waited for the arena lock its own thread held, for
/// ever. The tracker's own allocator is only ever busy inside the tracker.
unsafe extern "C" fn zstd_alloc(_: *mut c_void, size: usize) -> *mut c_void {
    // A mapping each (a context makes two or three allocations, once): no more of the
    // program's data limit than their size.
    own_heap::malloc_apart(size)
}

unsafe extern "C" fn zstd_free(_: *mut c_void, p: *mut c_void) {
    if !p.is_null() {
        // SAFETY: `p` came from zstd_alloc, own_heap's.
        unsafe { own_heap::free(p) };
    }
}

/// The zstd context in `cctx`, created on first use. None when there is no memory for one: the
/// streams are then stored as they are.
fn context(cctx: &mut Option<Context>) -> Option<&mut Context> {
    if cctx.is_none() {
        *cctx = Context::create();
    }
    cctx.as_mut()
}

/// Writes one stream at the start of `dst`, compressed when that makes it smaller; returns its
/// stored length.
fn store_stream(cctx: Option<&mut Context>, s: &[u8], dst: &mut [u8]) -> Option<usize> {
    if let Some(n) = cctx.and_then(|c| c.compress(dst, s)) {
        if n < s.len() {
            return Some(n);
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
