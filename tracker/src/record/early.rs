//! Allocations made before the tracker started. The loader runs the constructors of the
//! libraries a program links before a preloaded library's own: what they allocate (a C++
//! library's static objects, a plugin registry) comes through the hooks before the capture is
//! open. It is noted here (address, size, call site), a free or realloc of a noted block taking
//! it out again, and what is still live when the capture opens is recorded then, as allocated
//! at the start ([`replay`]). Blocks the loader and the C library allocate for themselves are
//! left out: they were never a program's, and reports never showed them.

use crate::lock::SpinLock;
use crate::tls;
use memtrace_format::Allocator;
use std::sync::atomic::{AtomicBool, Ordering};

/// Blocks noted at most (a few KiB of the tracker's memory; a program whose libraries allocate
/// more before the start has the rest left out).
const MAX: usize = 512;

#[derive(Clone, Copy)]
struct Noted {
    addr: u64,
    size: u64,
    ret: u64,
    allocator: Allocator,
}

struct Log {
    blocks: [Option<Noted>; MAX],
    len: usize,
}

static LOG: SpinLock<Log> = SpinLock::new(Log {
    blocks: [None; MAX],
    len: 0,
});

/// Noting goes on until the start has replayed (or dropped) what was noted.
static OPEN: AtomicBool = AtomicBool::new(true);
/// A block found the log full: the capture says some were left out.
static LEFT_OUT: AtomicBool = AtomicBool::new(false);

/// Whether a hook that does not record now should note its block: before the start, and not
/// for the tracker's own calls.
#[inline]
pub fn noting() -> bool {
    OPEN.load(Ordering::Relaxed) && tls::get().in_tracker == 0
}

/// A block allocated before the start.
pub fn alloc(allocator: Allocator, addr: u64, size: u64, ret: u64) {
    if addr == 0 || !noting() {
        return;
    }
    let mut log = LOG.lock();
    if log.len < MAX {
        let at = log.len;
        log.blocks[at] = Some(Noted {
            addr,
            size,
            ret,
            allocator,
        });
        log.len += 1;
    } else {
        LEFT_OUT.store(true, Ordering::Relaxed);
    }
}

/// Whether a block allocated before the start found the log full (the trailer says so).
pub fn left_out() -> bool {
    LEFT_OUT.load(Ordering::Relaxed)
}

/// A block freed (or moved by realloc) before the start.
pub fn free(addr: u64) {
    if addr == 0 || !noting() {
        return;
    }
    let mut log = LOG.lock();
    let len = log.len;
    if let Some(i) = log.blocks[..len]
        .iter()
        .position(|b| b.is_some_and(|b| b.addr == addr))
    {
        log.blocks[i] = log.blocks[len - 1];
        log.blocks[len - 1] = None;
        log.len -= 1;
    }
}

/// A range unmapped before the start: the mappings noted there lose what it covers (a
/// mapping trimmed to an alignment keeps its middle; one cut in two becomes two). Whether it
/// covered any of them.
pub fn unmap(addr: u64, len: u64) -> bool {
    if !noting() {
        return false;
    }
    let end = addr.saturating_add(len);
    let mut log = LOG.lock();
    let mut touched = false;
    let mut i = 0;
    while i < log.len {
        let Some(b) = log.blocks[i].filter(|b| b.allocator == Allocator::Mmap) else {
            i += 1;
            continue;
        };
        let b_end = b.addr.saturating_add(b.size);
        if b_end <= addr || b.addr >= end {
            i += 1;
            continue;
        }
        touched = true;
        let head = (b.addr < addr).then(|| Noted {
            size: addr - b.addr,
            ..b
        });
        let tail = (b_end > end).then(|| Noted {
            addr: end,
            size: b_end - end,
            ..b
        });
        match (head, tail) {
            (Some(h), Some(t)) => {
                log.blocks[i] = Some(h);
                if log.len < MAX {
                    let at = log.len;
                    log.blocks[at] = Some(t);
                    log.len += 1;
                }
                i += 1;
            }
            (Some(piece), None) | (None, Some(piece)) => {
                log.blocks[i] = Some(piece);
                i += 1;
            }
            (None, None) => {
                let last = log.len - 1;
                log.blocks[i] = log.blocks[last];
                log.blocks[last] = None;
                log.len -= 1;
            }
        }
    }
    touched
}

/// Ends the noting; each block still live whose call site the filter `keep()` makes accepts
/// goes to `record` (allocator, address, size, call site). `keep` is called only when there is
/// a block (the usual start has none, and the filter reads the loader's list).
pub fn replay<K: Fn(u64) -> bool>(
    keep: impl FnOnce() -> K,
    mut record: impl FnMut(Allocator, u64, u64, u64),
) {
    OPEN.store(false, Ordering::Release);
    let mut log = LOG.lock();
    let len = log.len;
    if len == 0 {
        return;
    }
    let keep = keep();
    let blocks = &log.blocks[..len];
    // A mapping that holds a block of the malloc family is that allocator's own (one that
    // maps its blocks, as the hooks see it call mmap under malloc): the block stands for it,
    // as once the capture runs, where the nested mmap is not recorded.
    let backs_a_block = |m: &Noted| {
        m.allocator == Allocator::Mmap
            && blocks.iter().flatten().any(|b| {
                b.allocator != Allocator::Mmap && b.addr >= m.addr && b.addr < m.addr + m.size
            })
    };
    for b in blocks.iter().flatten() {
        if keep(b.ret) && !backs_a_block(b) {
            record(b.allocator, b.addr, b.size, b.ret);
        }
    }
    log.len = 0;
}

/// Ends the noting without recording anything (no capture to record into).
pub fn close() {
    OPEN.store(false, Ordering::Release);
}
