//! The columnar chunk codec: a chunk's records kept as streams of like fields, each stream
//! compressed on its own.
//!
//! Mixed records defeat a general compressor: a random size next to a random address leaves it
//! no repeats to find. Kept apart (record heads, sizes, addresses, ...) each stream gets its own
//! entropy tables, and two models take out what is predictable:
//! - an allocation's address is usually a block the allocator just had free: an address freed
//!   earlier in the chunk, or the end of a block allocated earlier (allocators carve blocks one
//!   after another). Every free and every allocation adds such a *candidate*; an allocation whose
//!   address is a candidate is written as how many candidates ago it was added.
//! - a free usually releases a block allocated in the same chunk: it is written as how many
//!   allocations ago that was.
//!
//! The tracker writes records straight into the streams (`ColumnWriter`, in a staging area laid
//! out by `Layout`); `join` turns streams back into raw records (as `record::Encoder` writes
//! them), so that the reader decodes records one way only. The framing of stored streams is in
//! `frames`; docs/FORMAT.md describes the bytes.

mod frames;
mod join;
mod model;
mod pairs;
mod writer;

pub use frames::{read_frames, write_frame_table, Frame, MAX_FRAME_TABLE};
pub use join::{each_record, join, join_prefix, AllocFreed, RecordSink};
pub use writer::{split, staging_streams, AllocLookup, ColumnWriter, Layout, DIRECTORY_LEN};

use crate::varint::{unzigzag, zigzag};
use crate::Allocator;

/// The streams of a columnar chunk, in the order they are stored.
pub mod stream {
    /// The type of every record (byte 0 >> 3).
    pub const TYPE: usize = 0;
    /// The short tick delta (byte 0 & 7) of every timed record, two to a byte (the first in
    /// the low bits): consecutive deltas are related (a free is often followed at once by an
    /// allocation), which a byte-wise coder sees only in pairs.
    pub const DELTA: usize = 1;
    /// The long tick deltas (delta - 7) of allocations and frees.
    pub const TICK: usize = 2;
    /// Allocation addresses: a candidate distance or a delta.
    pub const ADDR: usize = 3;
    /// The low byte of each allocation size.
    pub const SIZE_LO: usize = 4;
    /// The rest of each allocation size (size >> 8), varints.
    pub const SIZE_HI: usize = 5;
    /// Allocation stack ids.
    pub const STACK: usize = 6;
    /// Frees by distance to their allocation record (raw type 16/18; format 1.1 writers).
    pub const FREE: usize = 7;
    /// Frees by address: the distance to their allocation when it is in the chunk, else deltas
    /// between them (blocks allocated in earlier chunks).
    pub const FREE_ADDR: usize = 8;
    /// The fields of every other record, with these deltas: addresses of munmap and mremap
    /// against each other.
    pub const OTHER: usize = 9;
    pub const COUNT: usize = 10;
}

/// Streams shorter than this are stored as they are: a compressed frame would not be smaller.
pub const MIN_COMPRESSED_STREAM: usize = 64;

/// Where the next block after an allocation of `size` at `addr` probably starts, by allocator:
/// glibc's chunk arithmetic (a 16-byte aligned block with an 8-byte header, at least 32 bytes),
/// pymalloc's 16-byte size classes, whole pages for mappings. Only a guess: a wrong guess costs
/// bytes, never correctness, as both sides compute the same one.
#[inline]
fn block_end(allocator: Allocator, addr: u64, size: u64) -> u64 {
    let len = match allocator {
        Allocator::Mmap => size.wrapping_add(4095) & !4095,
        Allocator::PymallocMalloc | Allocator::PymallocCalloc | Allocator::PymallocRealloc => {
            size.max(1).wrapping_add(15) & !15
        }
        _ => (size.wrapping_add(8 + 15) & !15).max(32),
    };
    addr.wrapping_add(len)
}

/// Deltas below this fit a code; 0 escapes to a second varint, so no bit of a 64-bit delta is
/// lost.
const MISS_LIMIT: u64 = 1 << 62;

/// An address code (see docs/FORMAT.md): `distance * 2 + 1` when the model found the address,
/// else `(zigzag(delta) + 1) * 2`, or 0 followed by the zigzag delta. Returns (escape, code):
/// the escape is written first when present.
#[inline]
fn address_code(found: Option<u64>, delta: u64) -> (Option<u64>, u64) {
    match found {
        Some(distance) => (None, distance * 2 + 1),
        None => {
            let zz = zigzag(delta as i64);
            if zz < MISS_LIMIT {
                (None, (zz + 1) * 2)
            } else {
                (Some(0), zz)
            }
        }
    }
}

/// A decoded address code.
enum Code {
    Found(u64),
    Delta(u64),
}

impl Code {
    /// The code `first`, reading the escaped delta with `more` when `first` is 0.
    // Always inlined: read for every allocation and free, and a call (left out of line when
    // the loop around it grows) costs as much as its body.
    #[inline(always)]
    fn read(
        first: u64,
        more: impl FnOnce() -> Result<u64, crate::DecodeError>,
    ) -> Result<Code, crate::DecodeError> {
        match Code::without_escape(first) {
            Some(code) => Ok(code),
            None => Ok(Code::Delta(unzigzag(more()?) as u64)),
        }
    }

    /// The code `first` when it is whole in itself; None for the escape (0), whose delta
    /// follows.
    #[inline(always)]
    fn without_escape(first: u64) -> Option<Code> {
        match first {
            0 => None,
            f if f & 1 == 1 => Some(Code::Found(f / 2)),
            f => Some(Code::Delta(unzigzag(f / 2 - 1) as u64)),
        }
    }
}
