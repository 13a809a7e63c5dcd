//! The memtrace capture format, defined once for the tracker (writer) and the reporter (reader).
//!
//! A capture is a file header followed by 8-byte aligned chunks. Each chunk carries one thread's
//! events, varint and delta encoded and usually zstd-compressed (compression itself is done by the
//! users of this crate). `docs/FORMAT.md` describes the bytes; this crate is the reference.

pub mod aggregate;
pub mod chunk;
pub mod columns;
pub mod crc;
pub mod exec;
pub mod failed;
pub mod family;
pub mod header;
pub mod objects;
pub mod record;
pub mod settings;
pub mod stops;
pub mod varint;

pub use chunk::{ChunkCodec, ChunkHeader, ChunkKind, CHUNK_ALIGN, CHUNK_HEADER_LEN, CHUNK_MAGIC};
pub use header::{FileHeader, HeaderError, TickSource, DATA_ALIGN, FILE_MAGIC, MAJOR, MINOR};
pub use record::{Allocator, DecodeError, Decoder, Encoder, Marker, Record, Trailer};
pub use stops::StopsShort;

/// Option bits stored in the file header.
pub mod options {
    pub const FOLLOW_FORK: u64 = 1 << 0;
    pub const NATIVE: u64 = 1 << 1;
    pub const PYTHON_ALLOCATORS: u64 = 1 << 2;
    /// The capture started in a process already running (`memtrace attach`): what was
    /// allocated before the start is not in it.
    pub const ATTACHED: u64 = 1 << 3;
}

/// Trailer flags: why a capture may be incomplete.
pub mod trailer_flags {
    /// Writing to the capture failed (disk full, I/O error): some events were dropped.
    pub const WRITE_FAILED: u64 = 1 << 0;
    /// The capture reached its size limit: later events were dropped.
    pub const SIZE_LIMIT: u64 = 1 << 1;
    /// The trailer was written before an exec(): the process went on as another program.
    pub const EXEC: u64 = 1 << 2;
    /// With WRITE_FAILED, why: the program closed or replaced the capture's file descriptor
    /// and the file could not be opened again.
    pub const DESCRIPTOR_LOST: u64 = 1 << 3;
    /// With WRITE_FAILED, why: the file size limit (RLIMIT_FSIZE, `ulimit -f`) was reached.
    pub const FILE_SIZE_LIMIT: u64 = 1 << 4;
    /// With WRITE_FAILED, why: the disk (or the user's quota) is full.
    pub const NO_SPACE: u64 = 1 << 5;
    /// With SIZE_LIMIT, why: the capture filled the address space the tracker reserved for it
    /// under the process's address-space limit (RLIMIT_AS, `ulimit -v`).
    pub const ADDRESS_LIMIT: u64 = 1 << 6;
    /// A signal handler jumped out of an allocation function the tracker's hook was in
    /// (`siglongjmp`): that thread's later events were not recorded (counted as dropped).
    pub const HOOK_LEFT_BY_A_JUMP: u64 = 1 << 7;
    /// C++'s operator new was an allocator library's own (tcmalloc's, jemalloc's), which does
    /// not call malloc: the program's `new` and `delete` are missing.
    pub const OWN_OPERATOR_NEW: u64 = 1 << 8;
    /// More blocks were live before the tracker started (allocated by linked libraries'
    /// constructors) than it notes: the rest are not in the capture.
    pub const EARLY_BLOCKS_LEFT_OUT: u64 = 1 << 9;

    /// Why the capture reached its size limit, in words, from a trailer's flags; None when it
    /// did not.
    pub fn size_limit(flags: u64) -> Option<&'static str> {
        if flags & SIZE_LIMIT == 0 {
            return None;
        }
        Some(if flags & ADDRESS_LIMIT != 0 {
            "the capture filled the room the address-space limit (ulimit -v) left it"
        } else {
            "the capture reached its size limit"
        })
    }

    /// What a thread whose hook was left by a jump lost, in words; None when none was.
    pub fn hook_left(flags: u64) -> Option<&'static str> {
        (flags & HOOK_LEFT_BY_A_JUMP != 0).then_some(
            "a signal handler jumped out of an allocation function (siglongjmp) while memtrace recorded it: that thread's later events were not recorded",
        )
    }

    /// Blocks allocated before the tracker started and left out, in words; None when none were.
    pub fn early_blocks_left_out(flags: u64) -> Option<&'static str> {
        (flags & EARLY_BLOCKS_LEFT_OUT != 0).then_some(
            "more than 512 blocks allocated before memtrace's tracker started (by the constructors of the program's libraries) were live at once: the others are not in the capture",
        )
    }

    /// The capture misses the program's C++ allocations, in words; None when it does not.
    pub fn own_operator_new(flags: u64) -> Option<&'static str> {
        (flags & OWN_OPERATOR_NEW != 0).then_some(
            "C++ new and delete went to an allocator's own operator new (tcmalloc's, jemalloc's), which memtrace does not see: the program's C++ allocations are missing",
        )
    }

    /// Why writing the capture stopped, in words, from a trailer's flags; None when it did not.
    pub fn write_failure(flags: u64) -> Option<&'static str> {
        if flags & WRITE_FAILED == 0 {
            return None;
        }
        Some(if flags & DESCRIPTOR_LOST != 0 {
            "the program closed or replaced the capture's file descriptor and the file could not be opened again"
        } else if flags & FILE_SIZE_LIMIT != 0 {
            "the file size limit (ulimit -f) was reached"
        } else if flags & NO_SPACE != 0 {
            "the disk is full"
        } else {
            "disk full or I/O error"
        })
    }
}
