//! The process's resident size, sampled about every 10 ms while it allocates, for the chart of
//! memory over time. The check rides on the clock read every event makes: one load and one
//! comparison; the thread that passes the next sample's tick first takes the sample.

use crate::sys;
use std::sync::atomic::{AtomicU64, Ordering};

/// The extended record kind of a sample (docs/FORMAT.md): varint resident bytes.
pub const RECORD_KIND: u64 = 1;

/// Wanted time between samples.
const INTERVAL_NS: u64 = 10_000_000;

/// The tick at or after which the next sample is due.
static NEXT_TICK: AtomicU64 = AtomicU64::new(0);
/// The last sample's (tick, monotonic ns): how many ticks 10 ms are is learned from them.
static LAST_TICK: AtomicU64 = AtomicU64::new(0);
static LAST_NS: AtomicU64 = AtomicU64::new(0);

/// Whether a sample is due at `tick`.
#[inline(always)]
pub fn due(tick: u64) -> bool {
    tick >= NEXT_TICK.load(Ordering::Relaxed)
}

/// Claims the sample due at `tick` (one thread wins) and reads the resident size; None when
/// another thread took it or it cannot be read.
#[cold]
pub fn take(tick: u64) -> Option<u64> {
    let next = NEXT_TICK.load(Ordering::Relaxed);
    if tick < next {
        return None;
    }
    let now_ns = sys::clock_ns(libc::CLOCK_MONOTONIC);
    let (last_tick, last_ns) = (
        LAST_TICK.load(Ordering::Relaxed),
        LAST_NS.load(Ordering::Relaxed),
    );
    // Ticks per 10 ms, from the last interval (the first guess is 2^17 ticks).
    let interval = match (tick.checked_sub(last_tick), now_ns.checked_sub(last_ns)) {
        (Some(dt), Some(dns)) if last_ns != 0 && dns > 0 => {
            ((dt as u128 * INTERVAL_NS as u128) / dns as u128).clamp(1, u64::MAX as u128) as u64
        }
        _ => 1 << 17,
    };
    if NEXT_TICK
        .compare_exchange(
            next,
            tick.saturating_add(interval),
            Ordering::Relaxed,
            Ordering::Relaxed,
        )
        .is_err()
    {
        return None;
    }
    LAST_TICK.store(tick, Ordering::Relaxed);
    LAST_NS.store(now_ns, Ordering::Relaxed);
    // The same beat pushes a capture on a network file system to its server.
    if super::netfs::due(now_ns) {
        super::file::CAPTURE.write_back();
    }
    resident_bytes()
}

/// Starts sampling afresh (a new capture: the first event takes a sample).
pub fn reset() {
    NEXT_TICK.store(0, Ordering::Relaxed);
    LAST_TICK.store(0, Ordering::Relaxed);
    LAST_NS.store(0, Ordering::Relaxed);
}

/// /proc/self/statm's second field (resident pages) in bytes.
fn resident_bytes() -> Option<u64> {
    let mut buf = [0u8; 128];
    let n = sys::read_file(b"/proc/self/statm\0", &mut buf);
    let pages = buf[..n]
        .split(|&b| b == b' ')
        .nth(1)?
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .try_fold(0u64, |acc, &b| {
            acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
        })?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages.checked_mul(u64::try_from(page).ok()?)
}
