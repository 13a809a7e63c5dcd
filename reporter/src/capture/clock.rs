//! Converting ticks to time.

use memtrace_format::{FileHeader, TickSource};

/// Ticks to nanoseconds since the start of the capture.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Clock {
    start_tick: u64,
    start_mono_ns: u64,
    /// Nanoseconds per tick.
    ns_per_tick: f64,
    /// The latest monotonic time known from the file (chunk headers or trailer).
    last_mono_ns: u64,
    /// Whether the rate is an estimate without a second clock pair.
    pub guessed: bool,
}

/// TSC rate assumed when the capture holds no second (tick, time) pair: 3 GHz.
const GUESSED_TSC_GHZ: f64 = 3.0;

impl Clock {
    /// A clock from the header's start pair and the latest (tick, monotonic ns) pair found.
    pub fn new(header: &FileHeader, latest_pair: Option<(u64, u64)>) -> Clock {
        let last_mono_ns = latest_pair
            .map(|(_, m)| m)
            .unwrap_or(header.start_mono_ns)
            .max(header.start_mono_ns);
        let (ns_per_tick, guessed) = match header.tick_source {
            TickSource::MonotonicNs => (1.0, false),
            TickSource::Tsc { shift } => {
                let shift_scale = (1u64 << shift.min(63)) as f64;
                match latest_pair {
                    Some((tick, mono))
                        if tick > header.start_tick && mono > header.start_mono_ns =>
                    {
                        (
                            (mono - header.start_mono_ns) as f64
                                / (tick - header.start_tick) as f64,
                            false,
                        )
                    }
                    _ => (shift_scale / GUESSED_TSC_GHZ, true),
                }
            }
        };
        Clock {
            start_tick: header.start_tick,
            start_mono_ns: header.start_mono_ns,
            ns_per_tick,
            last_mono_ns,
            guessed,
        }
    }

    /// Nanoseconds from the start of the capture to `tick` (negative before the start).
    pub fn ns(&self, tick: u64) -> f64 {
        let d = if tick >= self.start_tick {
            (tick - self.start_tick) as f64
        } else {
            -((self.start_tick - tick) as f64)
        };
        d * self.ns_per_tick
    }

    /// The tick `ns` nanoseconds after the start of the capture (the inverse of [`Clock::ns`]).
    pub fn tick_at(&self, ns: f64) -> u64 {
        let ticks = ns / self.ns_per_tick.max(f64::MIN_POSITIVE);
        (self.start_tick as f64 + ticks).max(0.0) as u64
    }

    /// Seconds from the start of the capture to `tick`.
    pub fn seconds(&self, tick: u64) -> f64 {
        self.ns(tick) / 1e9
    }

    /// Seconds from the start to the last known time: the latest clock pair, or `last_tick` if
    /// that is later (events of a staging area written after the last flush).
    pub fn duration_s(&self, last_tick: Option<u64>) -> f64 {
        let from_pairs = (self.last_mono_ns - self.start_mono_ns) as f64 / 1e9;
        let from_events = last_tick.map(|t| self.seconds(t)).unwrap_or(0.0);
        from_pairs.max(from_events).max(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(tick_source: TickSource) -> FileHeader {
        FileHeader {
            major: 1,
            minor: 0,
            pid: 1,
            ppid: 0,
            start_realtime_ns: 0,
            start_mono_ns: 1_000,
            start_tick: 500,
            tick_source,
            options: 0,
            argv: vec![],
            exe: vec![],
            tool_version: vec![],
        }
    }

    #[test]
    fn monotonic_ticks_are_nanoseconds() {
        let c = Clock::new(
            &header(TickSource::MonotonicNs),
            Some((2_000_000_500, 2_000_001_000)),
        );
        assert_eq!(c.seconds(1_000_000_500), 1.0);
        assert_eq!(c.duration_s(None), 2.0);
    }

    #[test]
    fn tsc_rate_from_latest_pair() {
        // 4 ticks per ns after the start.
        let c = Clock::new(
            &header(TickSource::Tsc { shift: 0 }),
            Some((500 + 4_000_000_000, 1_000 + 1_000_000_000)),
        );
        assert!(!c.guessed);
        assert!((c.seconds(500 + 2_000_000_000) - 0.5).abs() < 1e-9);
        let g = Clock::new(&header(TickSource::Tsc { shift: 0 }), None);
        assert!(g.guessed);
    }
}
