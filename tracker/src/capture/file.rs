//! The capture file: a shared mapping of the file, grown in large steps with fallocate (which
//! reserves the disk blocks, so a full disk is an error here and never a SIGBUS later; written
//! zeros where the file system has no fallocate). Writers
//! reserve space with an atomic offset; only growing the file takes a lock.
//!
//! The first megabyte is reserved by writing zeros instead, on the local file systems whose
//! buffered writes reserve their space (see [`WRITTEN_UPTO`]): blocks that fallocate allocated
//! cost some 3 ms each time they are given back (a trim at the end, the file's removal) on a
//! file system mounted with `discard`, while written pages that have not reached the disk yet
//! are given back for nothing. A short capture (each test of the pytest plugin) never touches
//! the disk.

use super::fd::CaptureFd;
use crate::lock::SpinLock;
use crate::sys;
use memtrace_format::{
    trailer_flags, ChunkCodec, ChunkHeader, ChunkKind, CHUNK_ALIGN, CHUNK_HEADER_LEN,
};
use std::sync::atomic::{
    fence, AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering,
};
use std::sync::OnceLock;

/// What a failure must also do in the record layer above: close every thread's state
/// (record::thread::close_all). Handed down by the session before the capture opens; read only
/// on the failure path.
static ON_FAIL: OnceLock<fn()> = OnceLock::new();

/// Sets what `fail` calls to close every thread's state (once; later calls keep the first).
pub fn on_fail(close_all: fn()) {
    let _ = ON_FAIL.set(close_all);
}

/// Virtual size reserved for the mapping; a capture cannot grow beyond it.
const MAP_SIZES: [usize; 4] = [1 << 40, 64 << 30, 8 << 30, 1 << 30];
/// Under an address-space limit (RLIMIT_AS), the mapping takes at most this share of the room
/// the limit leaves (1/16), and no less than [`MIN_LIMITED_MAP`] (else nothing is recorded).
const LIMITED_SHARE: u64 = 16;
const MIN_LIMITED_MAP: usize = 4 << 20;
/// What a shrunk mapping keeps past what was reserved when the limit leaves less than that: room
/// for a few chunks more before recording stops. (Reservations in flight while it shrinks are
/// kept by `fit_address_limit` itself: it cuts only past what was reserved after the lowered
/// length is published. A 64 MiB margin guarded them before, which a program that set its own
/// limit with little headroom lost.)
const SHRINK_MARGIN: u64 = 4 << 20;
const FIRST_STEP: u64 = 1 << 20;
/// The file is grown by written zeros, in steps of WRITTEN_STEP, up to this length (where
/// `write_reserves` holds for its file system).
const WRITTEN_UPTO: u64 = 1 << 20;
const WRITTEN_STEP: u64 = 64 << 10;
const MIN_STEP: u64 = 4 << 20;
const MAX_STEP: u64 = 256 << 20;

pub struct Capture {
    /// Checked to still be the capture before each use (the program may close or replace it).
    file: CaptureFd,
    base: AtomicPtr<u8>,
    map_len: AtomicUsize,
    /// End of the reserved part of the file.
    reserved: AtomicU64,
    /// Bytes of the file backed by fallocate (or written zeros where it is not supported).
    allocated: AtomicU64,
    grow_lock: SpinLock<()>,
    /// No more reservations (the capture was finished, or writing failed).
    closed: AtomicBool,
    /// Bits of trailer_flags.
    flags: AtomicU64,
    /// Buffered writes reserve the file's space (see `write_reserves`).
    written: AtomicBool,
    pub records_written: AtomicU64,
    pub records_dropped: AtomicU64,
    /// Where the trailer goes (reserved at start so that it can be written on a full disk).
    trailer_at: AtomicU64,
    /// The file below this offset was dropped from memory (see `release_written`).
    released: AtomicU64,
    /// The mapping was sized by the address-space limit (RLIMIT_AS).
    limited: AtomicBool,
    /// The process that opened the capture: a child made without fork's handlers (a raw clone)
    /// shares the mapping and must not write to it (see `in_its_process`).
    owner: AtomicU32,
}

/// How much written capture may stay resident before it is dropped from memory.
const RELEASE_STEP: u64 = 4 << 20;

pub static CAPTURE: Capture = Capture {
    file: CaptureFd::new(),
    base: AtomicPtr::new(core::ptr::null_mut()),
    map_len: AtomicUsize::new(0),
    reserved: AtomicU64::new(0),
    allocated: AtomicU64::new(0),
    grow_lock: SpinLock::new(()),
    closed: AtomicBool::new(true),
    flags: AtomicU64::new(0),
    written: AtomicBool::new(false),
    records_written: AtomicU64::new(0),
    records_dropped: AtomicU64::new(0),
    trailer_at: AtomicU64::new(0),
    released: AtomicU64::new(0),
    limited: AtomicBool::new(false),
    owner: AtomicU32::new(0),
};

/// Bytes reserved for the trailer's payload.
const TRAILER_PAYLOAD: usize =
    memtrace_format::Trailer::MAX_LEN.div_ceil(CHUNK_ALIGN) * CHUNK_ALIGN;

/// Whether a buffered write reserves its blocks on the file system of statfs type `fs` (delayed
/// allocation reserves them, or the write allocates them), so that a later write through the
/// mapping to those pages needs no more room (it cannot fault with SIGBUS on a full disk):
/// ext2/3/4, XFS and tmpfs. Not on a network file system (the server's space is taken at write
/// back) nor a copy-on-write one (each rewrite takes new blocks).
fn write_reserves(fs: i64) -> bool {
    const EXT4: i64 = 0xEF53;
    const XFS: i64 = 0x5846_5342;
    const TMPFS: i64 = 0x0102_1994;
    matches!(fs, EXT4 | XFS | TMPFS)
}

/// The process's address-space limit (RLIMIT_AS), when it has one.
fn address_limit() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills a valid rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_AS, &mut lim) } != 0
        || lim.rlim_cur == libc::RLIM_INFINITY
    {
        return None;
    }
    Some(lim.rlim_cur)
}

/// The process's address space now, in bytes (/proc/self/statm's first field).
fn vm_size() -> u64 {
    let mut buf = [0u8; 128];
    let n = sys::read_file(b"/proc/self/statm\0", &mut buf);
    let pages = buf[..n]
        .split(|&b| b == b' ')
        .next()
        .and_then(|f| core::str::from_utf8(f).ok())
        .and_then(|f| f.parse::<u64>().ok())
        .unwrap_or(0);
    pages * sys::page_size() as u64
}

/// The mapping sizes to try, largest first, and whether the address-space limit chose them.
/// Without a limit, a terabyte (the capture never has to move). Under one, a sixteenth of the
/// room the limit leaves (halved while the kernel refuses, down to 4 MiB): the reservation
/// counts against the limit, and a program that runs alone must run under memtrace too.
fn map_sizes() -> (Vec<usize>, bool) {
    let Some(limit) = address_limit() else {
        return (MAP_SIZES.to_vec(), false);
    };
    let page = sys::page_size();
    let room = share_of_room(limit, vm_size()).min(MAP_SIZES[0] as u64);
    let mut len = room as usize / page * page;
    let mut sizes = Vec::new();
    while len >= MIN_LIMITED_MAP {
        sizes.push(len);
        len = len / 2 / page * page;
    }
    (sizes, true)
}

/// What the capture may reserve under the address-space limit `limit` when the rest of the
/// process takes `others` bytes of address space: a sixteenth of the room left.
fn share_of_room(limit: u64, others: u64) -> u64 {
    limit.saturating_sub(others) / LIMITED_SHARE
}

/// The largest file this process may write (RLIMIT_FSIZE).
fn file_size_limit() -> u64 {
    sys::soft_limit(libc::RLIMIT_FSIZE).unwrap_or(u64::MAX)
}

impl Capture {
    /// Maps `fd` (a new, empty file, opened from `path`) and writes the file header.
    /// Err(errno) on failure.
    pub fn open(&self, fd: i32, path: &[u8], header: &[u8]) -> Result<(), i32> {
        self.file.set(fd, path)?;
        self.owner.store(sys::getpid(), Ordering::Relaxed);
        super::netfs::note_file(fd);
        self.written.store(
            sys::fs_type(fd).is_some_and(write_reserves),
            Ordering::Relaxed,
        );
        self.released.store(0, Ordering::Relaxed);
        let mut mapped = None;
        let (sizes, limited) = map_sizes();
        for len in sizes {
            if let Some(p) = sys::map_shared(fd, len) {
                mapped = Some((p, len));
                break;
            }
        }
        let (base, len) = mapped.ok_or(libc::ENOMEM)?;
        self.limited.store(limited, Ordering::Relaxed);
        // Read-ahead on the first touch of the new file zero-filled a large block of pages past
        // the header (about 1.5 ms of every run's start-up), most of them beyond what a short
        // run writes. Only the first growth step goes without: past it, a capture that grows
        // is faulted in by read-ahead's batches again (one fault per page cost a long run more).
        sys::no_readahead(base, (MIN_STEP as usize).min(len));
        self.base.store(base, Ordering::Relaxed);
        self.map_len.store(len, Ordering::Relaxed);
        self.reserved.store(0, Ordering::Relaxed);
        self.allocated.store(0, Ordering::Relaxed);
        self.flags.store(0, Ordering::Relaxed);
        self.records_written.store(0, Ordering::Relaxed);
        self.records_dropped.store(0, Ordering::Relaxed);
        self.closed.store(false, Ordering::Release);
        let data_start = memtrace_format::FileHeader::data_start(header.len()) as u64;
        let p = self.reserve(data_start).ok_or(libc::ENOSPC)?;
        // SAFETY: p has data_start >= header.len() reserved, backed bytes.
        unsafe { core::ptr::copy_nonoverlapping(header.as_ptr(), p, header.len()) };
        let trailer_len = CHUNK_HEADER_LEN as u64 + TRAILER_PAYLOAD as u64;
        let at = self.reserve(trailer_len).ok_or(libc::ENOSPC)?;
        self.trailer_at
            .store(at as u64 - base as u64, Ordering::Relaxed);
        Ok(())
    }

    pub fn is_open(&self) -> bool {
        !self.closed.load(Ordering::Relaxed)
    }

    /// Sets `flag` in the trailer-to-be: something the reports must say, recording goes on.
    pub fn note(&self, flag: u64) {
        self.flags.fetch_or(flag, Ordering::Relaxed);
    }

    /// Writing failed: recording stops; what was written stays readable and the trailer will
    /// say why it ends early. The hooks stay on, only to count each later event as dropped
    /// (every thread's state is closed, so an event only increments its thread's counter): the
    /// trailer's count is then every event the capture misses.
    pub fn fail(&self, flag: u64) {
        self.flags.fetch_or(flag, Ordering::Relaxed);
        self.closed.store(true, Ordering::Release);
        if let Some(close_all) = ON_FAIL.get() {
            close_all();
        }
    }

    /// Reserves `len` bytes (a multiple of 8) of backed file space; returns where to write them.
    pub fn reserve(&self, len: u64) -> Option<*mut u8> {
        if self.closed.load(Ordering::Acquire) {
            return None;
        }
        // Sequentially consistent with `trim`: a writer either reserved before the trim looked
        // (and is below the cut) or sees the lowered `allocated` and grows the file again.
        let off = self.reserved.fetch_add(len, Ordering::SeqCst);
        let end = off + len;
        // Sequentially consistent with `fit_address_limit`'s shrink.
        if end > self.map_len.load(Ordering::SeqCst) as u64 {
            let why = if self.limited.load(Ordering::Relaxed) {
                trailer_flags::ADDRESS_LIMIT
            } else {
                0
            };
            self.fail(trailer_flags::SIZE_LIMIT | why);
            return None;
        }
        if end > self.allocated.load(Ordering::SeqCst) && !self.grow(end) {
            return None;
        }
        // SAFETY: off + len lies inside the mapping (checked above).
        Some(unsafe { self.base.load(Ordering::Relaxed).add(off as usize) })
    }

    #[cold]
    fn grow(&self, end: u64) -> bool {
        // A signal handler run on this thread while it holds the lock, that reserves space in
        // turn (an exec from a handler writes its exec record), would wait for the lock forever.
        let _signals = sys::SignalsBlocked::new();
        let _g = self.grow_lock.lock();
        let have = self.allocated.load(Ordering::Acquire);
        if end <= have {
            return true;
        }
        let _errno = sys::ErrnoGuard::new();
        let written = self.written.load(Ordering::Relaxed) && end <= WRITTEN_UPTO;
        // The first step is small: a short run's end gives back (ftruncate) what it did not
        // use, which costs milliseconds on ext4 for megabytes of blocks.
        let step = if written {
            WRITTEN_STEP
        } else if have == 0 {
            FIRST_STEP
        } else {
            (have / 4).clamp(MIN_STEP, MAX_STEP)
        };
        // Growing past RLIMIT_FSIZE would send SIGXFSZ, which kills the program: stop before.
        let limit = file_size_limit();
        let mut target = (end + step)
            .min(self.map_len.load(Ordering::Relaxed) as u64)
            .min(limit);
        if written {
            target = target.min(WRITTEN_UPTO.max(end));
        }
        if end > target {
            self.fail(trailer_flags::WRITE_FAILED | trailer_flags::FILE_SIZE_LIMIT);
            return false;
        }
        let grown = loop {
            let r = self.file.with(|fd| {
                if written {
                    return sys::write_zeros(fd, have, target - have);
                }
                match sys::fallocate(fd, 0, have, target - have) {
                    // File systems without fallocate (ext2, vfat, NFSv3, some FUSE ones): the
                    // blocks are reserved by writing zeros. A sparse file (ftruncate) left the
                    // first store past the disk's end to fail as a SIGBUS in the program.
                    Err(libc::EOPNOTSUPP) | Err(libc::ENOSYS) => {
                        sys::write_zeros(fd, have, target - have)
                    }
                    r => r,
                }
            });
            match r {
                // A step too large for the space left: smaller ones, down to what this write
                // needs, before the disk counts as full (a whole step refused stopped a
                // capture with megabytes still free).
                Some(Err(libc::ENOSPC)) | Some(Err(libc::EDQUOT)) if target > end => {
                    target = end.max(have + (target - have) / 2);
                }
                r => break r,
            }
        };
        let why = match grown {
            Some(Ok(())) => 0,
            None => trailer_flags::DESCRIPTOR_LOST,
            Some(Err(libc::ENOSPC)) | Some(Err(libc::EDQUOT)) => trailer_flags::NO_SPACE,
            Some(Err(libc::EFBIG)) => trailer_flags::FILE_SIZE_LIMIT,
            Some(Err(_)) => trailer_flags::WRITE_FAILED,
        };
        if why != 0 {
            self.fail(trailer_flags::WRITE_FAILED | why);
            return false;
        }
        self.allocated.store(target, Ordering::Release);
        true
    }

    /// Appends a Meta chunk (records of the process, not of a thread: modules, an exec) of
    /// `record_count` raw records, numbered `seq` in the meta sequence, stamped now.
    pub fn write_meta(&self, seq: u32, record_count: u32, payload: &[u8]) -> bool {
        let (tick, mono) = crate::clock::pair();
        let header = ChunkHeader {
            kind: ChunkKind::Meta,
            codec: ChunkCodec::Raw,
            flags: 0,
            payload_crc: 0,
            thread_serial: 0,
            tid: sys::gettid(),
            seq,
            stored_len: payload.len() as u32,
            raw_len: payload.len() as u32,
            record_count,
            first_tick: tick,
            last_tick: tick,
            flush_mono_ns: mono,
            flush_tick: tick,
        };
        self.write_chunk(&header, payload)
    }

    /// Appends a chunk: payload first, header last, so that a chunk cut short has no valid
    /// header. Returns false when it cannot be written: the caller counts its records as
    /// dropped, unless they stay readable elsewhere (a thread's staging area).
    pub fn write_chunk(&self, header: &ChunkHeader, payload: &[u8]) -> bool {
        let checked = header.checked_len().min(payload.len());
        let header = header.with_payload_crc(payload_crc(&payload[..checked]));
        let total = header.total_len() as u64;
        let Some(p) = self.reserve(total) else {
            return false;
        };
        // SAFETY: `total` bytes at p are reserved for this chunk alone.
        unsafe {
            core::ptr::copy_nonoverlapping(
                payload.as_ptr(),
                p.add(CHUNK_HEADER_LEN),
                payload.len(),
            );
            fence(Ordering::Release);
            let h = header.encode();
            core::ptr::copy_nonoverlapping(h.as_ptr(), p, CHUNK_HEADER_LEN);
        }
        self.records_written
            .fetch_add(u64::from(header.record_count), Ordering::Relaxed);
        self.release_written(self.offset_of(p));
        true
    }

    /// Keeps the tracked process's resident memory from growing with the capture: the mapped
    /// file below `upto` (this chunk's start) leaves memory every RELEASE_STEP bytes. Pages of
    /// chunks and staging areas still being written there simply fault back in.
    fn release_written(&self, upto: u64) {
        let from = self.released.load(Ordering::Relaxed);
        let to = upto & !4095;
        if to < from + RELEASE_STEP
            || self
                .released
                .compare_exchange(from, to, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        sys::release_shared(self.at(from), (to - from) as usize);
    }

    /// Starts writing what is written so far back to the server of a network file system, so
    /// that readers elsewhere see it (see capture::netfs).
    pub fn write_back(&self) {
        let _errno = sys::ErrnoGuard::new();
        let _ = self.file.with(sys::start_write_back);
    }

    /// The bytes of the file reserved so far: the capture's length as it stands.
    pub fn reserved_len(&self) -> u64 {
        self.reserved.load(Ordering::Acquire)
    }

    /// Pointer to file offset `off` of the mapping.
    pub fn at(&self, off: u64) -> *mut u8 {
        // SAFETY: callers pass offsets of regions they reserved.
        unsafe { self.base.load(Ordering::Relaxed).add(off as usize) }
    }

    pub fn offset_of(&self, p: *mut u8) -> u64 {
        p as u64 - self.base.load(Ordering::Relaxed) as u64
    }

    /// Writes the trailer into its reserved place and, when `last`, stops all writing and trims
    /// the file to what was reserved.
    pub fn finish(&self, threads: u64, extra_flags: u64, last: bool) {
        let (end_tick, end_mono_ns) = crate::clock::pair();
        let trailer = memtrace_format::Trailer {
            end_mono_ns,
            end_tick,
            records_written: self.records_written.load(Ordering::Relaxed),
            records_dropped: self.records_dropped.load(Ordering::Relaxed),
            flags: self.flags.load(Ordering::Relaxed) | extra_flags,
            threads,
        };
        // The trailer fills its whole reserved place (zero padding after the varints), so that no
        // gap follows it.
        let mut buf = [0u8; TRAILER_PAYLOAD];
        trailer.encode(&mut buf);
        let n = TRAILER_PAYLOAD;
        let header = ChunkHeader {
            tid: sys::gettid(),
            ..ChunkHeader::trailer(&trailer, n)
        }
        .with_payload_crc(payload_crc(&buf[..n]));
        let at = self.at(self.trailer_at.load(Ordering::Relaxed));
        // SAFETY: the trailer region was reserved at open for this.
        unsafe {
            core::ptr::copy_nonoverlapping(buf.as_ptr(), at.add(CHUNK_HEADER_LEN), n);
            fence(Ordering::Release);
            let h = header.encode();
            core::ptr::copy_nonoverlapping(h.as_ptr(), at, CHUNK_HEADER_LEN);
        }
        if last {
            self.closed.store(true, Ordering::Release);
            // Writers that reserved before the close stay inside `reserved`: trimming there is safe.
            let end = self
                .reserved
                .load(Ordering::Acquire)
                .min(self.allocated.load(Ordering::Acquire));
            let _errno = sys::ErrnoGuard::new();
            // Without a descriptor of its own the file keeps its zero tail (readers skip it).
            let _ = self.file.with(|fd| sys::ftruncate(fd, end));
        }
    }

    /// Cuts the file to what was reserved (as the end of a capture does) while recording goes
    /// on: the space beyond is allocated again when a writer needs it.
    pub fn trim(&self) {
        let _g = self.grow_lock.lock();
        let before = self.allocated.load(Ordering::SeqCst);
        // `allocated` goes down first: a writer reserving from now on finds its end above it
        // and waits in `grow` for this lock. Then every reservation made before is below the
        // cut (see `reserve`).
        let seen = self.reserved.load(Ordering::SeqCst).min(before);
        self.allocated.store(seen, Ordering::SeqCst);
        let end = self.reserved.load(Ordering::SeqCst).min(before);
        let _errno = sys::ErrnoGuard::new();
        // Only through a descriptor checked to be the capture's (see capture::fd).
        let now = match self.file.with(|fd| sys::ftruncate(fd, end)) {
            Some(Ok(_)) => end,
            _ => before,
        };
        self.allocated.store(now, Ordering::SeqCst);
    }

    /// Removes the trailer (header first): the capture is not finished after all (an exec
    /// failed). Its place reads as unwritten space.
    pub fn withdraw_trailer(&self) {
        if self.base.load(Ordering::Relaxed).is_null() {
            return;
        }
        let at = self.at(self.trailer_at.load(Ordering::Relaxed));
        // SAFETY: the trailer region reserved at open.
        unsafe {
            core::ptr::write_bytes(at, 0, CHUNK_HEADER_LEN);
            fence(Ordering::Release);
            core::ptr::write_bytes(at.add(CHUNK_HEADER_LEN), 0, TRAILER_PAYLOAD);
        }
    }

    /// Allocates again the disk space of a range released by `punch_hole` that is to be written
    /// (an exec failed): on failure recording stops (false), rather than a write faulting later.
    pub fn refill(&self, off: u64, len: u64) -> bool {
        let _errno = sys::ErrnoGuard::new();
        let refilled = self
            .file
            .with(|fd| sys::fallocate(fd, libc::FALLOC_FL_KEEP_SIZE, off, len));
        if !matches!(refilled, Some(Ok(_))) {
            self.fail(trailer_flags::WRITE_FAILED);
            return false;
        }
        true
    }

    /// Releases free space in the middle of the file (an emptied staging area) to the disk.
    pub fn punch_hole(&self, off: u64, len: u64) {
        let _errno = sys::ErrnoGuard::new();
        let _ = self.file.with(|fd| {
            sys::fallocate(
                fd,
                libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                off,
                len,
            )
        });
    }

    /// The capture's mapping, `[start, end)`, while it is open.
    pub fn mapped_range(&self) -> Option<(usize, usize)> {
        let base = self.base.load(Ordering::Relaxed);
        let len = self.map_len.load(Ordering::SeqCst);
        (!base.is_null() && len > 0).then(|| (base as usize, base as usize + len))
    }

    /// The program lowers its address-space limit (RLIMIT_AS) to `limit`: a mapping reserved
    /// without that limit (a terabyte of address space, nearly all of it unused) would leave
    /// the program no room at all. The unused part of the mapping goes, down to the share of
    /// the room the limit leaves that an open under that limit takes (see `map_sizes`), but
    /// never below what was reserved, plus a margin for reservations in flight.
    pub fn fit_address_limit(&self, limit: u64) -> bool {
        let _g = self.grow_lock.lock();
        let base = self.base.load(Ordering::Relaxed);
        let len = self.map_len.load(Ordering::SeqCst);
        if base.is_null() || self.closed.load(Ordering::Acquire) {
            return false;
        }
        let room = share_of_room(limit, vm_size().saturating_sub(len as u64));
        let used = self.reserved.load(Ordering::SeqCst) + SHRINK_MARGIN;
        let page = sys::page_size() as u64;
        let keep = room.max(used).div_ceil(page) * page;
        if keep >= len as u64 {
            return false;
        }
        self.map_len.store(keep as usize, Ordering::SeqCst);
        self.limited.store(true, Ordering::Relaxed);
        // A reservation that saw the old length made its fetch_add before the store above (all
        // sequentially consistent), so `reserved` read now covers it; later ones see the lowered
        // length and fail past it.
        let cut = self
            .reserved
            .load(Ordering::SeqCst)
            .max(keep)
            .div_ceil(page)
            * page;
        if cut < len as u64 {
            // SAFETY: [base + cut, base + len) is the tail of this capture's own mapping that no
            // reservation reaches, made or to come.
            sys::unmap(unsafe { base.add(cut as usize) }, len - cut as usize);
        }
        true
    }

    /// An allocation was refused: when the address-space limit was lowered from outside the
    /// process (`prlimit --pid`, which no hook sees), the mapping still holds the room taken
    /// without it, and every allocation of the program's fails. Gives back its unused part
    /// (as `fit_address_limit`); true when it did, and the refused call may be made again.
    #[cold]
    #[inline(never)]
    pub fn give_back_room(&self) -> bool {
        if sys::sandboxed() || self.base.load(Ordering::Relaxed).is_null() {
            return false;
        }
        let _errno = sys::ErrnoGuard::new();
        match sys::soft_limit(libc::RLIMIT_AS) {
            Some(limit) => self.fit_address_limit(limit),
            None => false,
        }
    }

    /// In a fork child: forget the parent's capture without touching it.
    /// Whether the calling process is the one that opened the capture (a system call: asked
    /// once per chunk written, not per event).
    pub fn in_its_process(&self) -> bool {
        sys::getpid() == self.owner.load(Ordering::Relaxed)
    }

    pub fn abandon(&self) {
        self.closed.store(true, Ordering::Release);
        let base = self.base.swap(core::ptr::null_mut(), Ordering::Relaxed);
        if !base.is_null() {
            sys::unmap(base, self.map_len.load(Ordering::Relaxed));
        }
        self.file.close();
    }

    /// Before a call of the program's that names descriptor `fd`: when that is the capture's
    /// number, the capture moves off it (see `CaptureFd::vacate`).
    #[inline]
    pub fn leave_descriptor(&self, fd: libc::c_int) {
        // Only in the capture's own process: a vfork child (the parent's memory, its own
        // descriptors) closing the number before its exec would move the parent's record of
        // it, and the parent would open the capture again for every such child, leaking one.
        if self.file.holds_number(fd) && self.in_its_process() {
            self.file.vacate(fd);
        }
    }

    pub fn lock_for_fork(&self) {
        self.grow_lock.raw_lock();
        self.file.lock_for_fork();
    }

    pub fn unlock_after_fork(&self) {
        self.file.unlock_after_fork();
        self.grow_lock.raw_unlock();
    }
}

/// The crc32 of a chunk's payload (FORMAT.md: "Payload checksum"). A thread's chunk is tens of
/// kilobytes: crc32fast folds it with carry-less multiplies, some ten times faster than a
/// table (its CPU check runs once, at the first such chunk, not at every program's start); a
/// small payload (a Meta chunk, the trailer) takes the table.
fn payload_crc(payload: &[u8]) -> u32 {
    if payload.len() >= 4096 {
        crc32fast::hash(payload)
    } else {
        memtrace_format::crc::crc32(payload)
    }
}
