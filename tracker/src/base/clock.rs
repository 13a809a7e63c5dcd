//! Event time: the CPU's time-stamp counter, shifted to a coarser unit (cheap to read, and
//! coarse ticks make small deltas that encode in the record's first byte).

use memtrace_format::TickSource;

#[cfg(target_arch = "x86_64")]
pub const SOURCE: TickSource = TickSource::Tsc { shift: SHIFT };
#[cfg(not(target_arch = "x86_64"))]
pub const SOURCE: TickSource = TickSource::MonotonicNs;

#[cfg(target_arch = "x86_64")]
const SHIFT: u8 = 8;

#[inline]
pub fn tick() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: rdtsc is available on every x86_64 CPU.
        unsafe { core::arch::x86_64::_rdtsc() >> SHIFT }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        crate::sys::clock_ns(libc::CLOCK_MONOTONIC)
    }
}

/// A (tick, monotonic ns) pair read together, for converting ticks to time.
pub fn pair() -> (u64, u64) {
    let t = tick();
    (t, crate::sys::clock_ns(libc::CLOCK_MONOTONIC))
}
