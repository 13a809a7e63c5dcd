//! The settings record: how a capture was recorded, when that changes what its numbers mean.
//! Written by the tracker at the start of a capture as an extended record (kind
//! [`SETTINGS_KIND`]) in a Meta chunk; readers that do not know it skip it (and then read a
//! sampled capture as if it were complete, so a reader of 1.2 or later must look for it).
//!
//! Payload: varint `sample_bytes` (0: every allocation is recorded; N: byte sampling, each
//! byte of a request of fewer than N bytes is sampled with probability 1/N, see
//! [`weight`]), varint label count, then per label two byte strings, key and value, then
//! varint `memory_limit` (the cgroup v2 `memory.max` the process ran under, 0: none; absent in
//! the first writers: 0), then varint `aggregate` (1: `memtrace run --aggregate`, the
//! capture holds aggregate snapshots (crate::aggregate) instead of allocation records; absent:
//! 0), then varint `gaps` (how the sampler drew the bytes between two samples, [`Gaps`];
//! absent: 0, exponential). Unknown trailing bytes are left for later versions.

use crate::varint;

/// The extended record kind of a settings record.
pub const SETTINGS_KIND: u64 = 4;
/// Labels beyond this many bytes in all are left out (the record stays small).
pub const MAX_LABEL_BYTES: usize = 4096;
/// Room an encoded payload never exceeds.
pub const MAX_PAYLOAD: usize = MAX_LABEL_BYTES + 3 * varint::MAX_VARINT_LEN + 64 * 2 * 10;

/// A decoded settings record.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Settings {
    /// 0: full capture; N: sampled, one sample per N bytes on average.
    pub sample_bytes: u64,
    /// `key=value` labels given by the user, in order.
    pub labels: Vec<(String, String)>,
    /// The cgroup v2 memory limit (`memory.max`) of the process, 0 when none was set.
    pub memory_limit: u64,
    /// Aggregated capture (`--aggregate`): sums per stack and thread, no allocation records.
    pub aggregate: bool,
    /// How the sampler spaced its samples (what a sample weighs depends on it).
    pub gaps: Gaps,
}

impl Settings {
    /// How the capture was sampled.
    pub fn sampling(&self) -> Sampling {
        Sampling {
            bytes: self.sample_bytes,
            gaps: self.gaps,
        }
    }
}

/// How a sampling tracker drew the bytes from one sample to the next, in each thread's stream
/// of allocated bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Gaps {
    /// Exponential of mean N (the first writers): a request of `s` bytes is sampled with
    /// probability `1 - exp(-s/N)`; requests of N bytes or more are always recorded.
    #[default]
    Exponential,
    /// Uniform between N/2 and 3N/2 (mean N), the first gap of a thread drawn so that every
    /// byte is sampled with probability 1/N: a request smaller than N/2 holds at most one
    /// sample, with probability `s/N` exactly, so a sample stands for N bytes; requests of N/2
    /// bytes or more are always recorded. The samples are spread more evenly than exponential
    /// gaps spread them, which halves the error of estimates of the memory live at a moment
    /// (docs/TRACKER.md, "Byte sampling on the hot path").
    Uniform,
}

impl Gaps {
    fn code(self) -> u64 {
        match self {
            Gaps::Exponential => 0,
            Gaps::Uniform => 1,
        }
    }
}

/// A capture's sampling: the mean bytes between samples (0: every allocation is recorded) and
/// how the gaps were drawn.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sampling {
    pub bytes: u64,
    pub gaps: Gaps,
}

impl Sampling {
    /// A full capture.
    pub const NONE: Sampling = Sampling {
        bytes: 0,
        gaps: Gaps::Exponential,
    };

    /// The sampling a tracker of this version does, one sample per `bytes` (0: none).
    pub fn current(bytes: u64) -> Sampling {
        Sampling {
            bytes,
            gaps: Gaps::Uniform,
        }
    }

    pub fn is_sampled(self) -> bool {
        self.bytes > 0
    }

    /// The smallest request that is always recorded.
    pub fn always_from(self) -> u64 {
        match self.gaps {
            Gaps::Exponential => self.bytes,
            Gaps::Uniform => self.bytes / 2,
        }
    }

    /// What one recorded allocation of `size` bytes stands for, in bytes: its own size when
    /// the capture is not sampled or the request is always recorded; otherwise the inverse of
    /// the probability it had to be recorded times its size (an unbiased estimate of the bytes
    /// such records stand for): `size / (1 - exp(-size/N))` with exponential gaps, N with
    /// uniform ones.
    pub fn weight(self, size: u64) -> u64 {
        let n = self.bytes;
        if n == 0 || size == 0 || size >= self.always_from() {
            return size;
        }
        match self.gaps {
            Gaps::Uniform => n,
            Gaps::Exponential => {
                let s = size as f64;
                let p = -(-s / n as f64).exp_m1();
                (s / p).round() as u64
            }
        }
    }
}

fn put_bytes(buf: &mut [u8], pos: usize, bytes: &[u8]) -> usize {
    let pos = varint::put(buf, pos, bytes.len() as u64);
    buf[pos..pos + bytes.len()].copy_from_slice(bytes);
    pos + bytes.len()
}

/// Encodes the payload into `buf` (at least [`MAX_PAYLOAD`] bytes). `labels` holds
/// `key=value` entries separated by NUL bytes (as the environment passes them); entries
/// without `=`, and those beyond [`MAX_LABEL_BYTES`] or 64 entries, are left out.
pub fn encode(
    buf: &mut [u8],
    sample_bytes: u64,
    labels: &[u8],
    memory_limit: u64,
    aggregate: bool,
    gaps: Gaps,
) -> usize {
    let mut pos = varint::put(buf, 0, sample_bytes);
    let fits = |budget: &mut usize, e: &[u8]| {
        if e.len() > *budget {
            return false;
        }
        *budget -= e.len();
        true
    };
    let mut budget = MAX_LABEL_BYTES;
    let entries = || {
        labels
            .split(|&b| b == 0)
            .filter(|e| e.iter().position(|&b| b == b'=').is_some_and(|i| i > 0))
            .take(64)
    };
    let count = entries().take_while(|e| fits(&mut budget, e)).count();
    pos = varint::put(buf, pos, count as u64);
    for e in entries().take(count) {
        let eq = e.iter().position(|&b| b == b'=').unwrap_or(0);
        pos = put_bytes(buf, pos, &e[..eq]);
        pos = put_bytes(buf, pos, &e[eq + 1..]);
    }
    let pos = varint::put(buf, pos, memory_limit);
    let pos = varint::put(buf, pos, u64::from(aggregate));
    varint::put(buf, pos, gaps.code())
}

/// Decodes a payload; None when it is damaged.
pub fn decode(payload: &[u8]) -> Option<Settings> {
    let mut pos = 0;
    let sample_bytes = varint::get(payload, &mut pos)?;
    let count = varint::get(payload, &mut pos)?;
    let take = |pos: &mut usize| -> Option<String> {
        let n = varint::get(payload, pos)? as usize;
        let end = pos.checked_add(n).filter(|&e| e <= payload.len())?;
        let s = String::from_utf8_lossy(&payload[*pos..end]).into_owned();
        *pos = end;
        Some(s)
    };
    let mut labels = Vec::new();
    for _ in 0..count.min(64) {
        let k = take(&mut pos)?;
        let v = take(&mut pos)?;
        labels.push((k, v));
    }
    let memory_limit = varint::get(payload, &mut pos).unwrap_or(0);
    let aggregate = varint::get(payload, &mut pos).unwrap_or(0) == 1;
    // A code this reader does not know: a later sampler; weighed as the nearest it knows.
    let gaps = match varint::get(payload, &mut pos).unwrap_or(0) {
        0 => Gaps::Exponential,
        _ => Gaps::Uniform,
    };
    Some(Settings {
        sample_bytes,
        labels,
        memory_limit,
        aggregate,
        gaps,
    })
}

/// How many allocations one recorded allocation of `size` bytes weighing `weight` bytes (see
/// [`Sampling::weight`]) stands for: `weight / size`, a fraction, rounded down or up at random in
/// proportion to it, the draw made from `seed` (a hash of the event: the same capture always
/// gives the same counts). So the counts' sum is unbiased, as the bytes' is: rounding each to
/// the nearest counted a request of 0.9 times the sampling period as 2 allocations, where it
/// stands for 1.69 (+18%). At least 1.
pub fn sampled_count(size: u64, weight: u64, seed: u64) -> u64 {
    if size == 0 || weight <= size {
        return 1;
    }
    let c = weight as f64 / size as f64;
    let whole = c.floor();
    // A uniform draw in [0, 1) from any seed.
    let draw = (splitmix(seed) >> 11) as f64 / (1u64 << 53) as f64;
    let up = u64::from(draw < c - whole);
    (whole as u64 + up).max(1)
}

/// splitmix64: a well-mixed 64-bit value from any seed (the tracker's sampler seeds its random
/// stream with it; [`sampled_count`] draws from it).
pub fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampled_counts_sum_to_what_the_samples_stand_for() {
        // 0.9 of the period: each sample stands for 1.686 allocations.
        let (size, n) = (3686, 4096);
        let w = exponential(n).weight(size);
        let total: u64 = (0..100_000).map(|i| sampled_count(size, w, i)).sum();
        let expected = 100_000.0 * w as f64 / size as f64;
        assert!(
            (total as f64 / expected - 1.0).abs() < 0.01,
            "{total} vs {expected}"
        );
        assert_eq!(sampled_count(size, w, 7), sampled_count(size, w, 7));
        // Unsampled and large: one each.
        assert_eq!(sampled_count(5000, 5000, 1), 1);
        assert_eq!(sampled_count(0, 0, 1), 1);
    }

    #[test]
    fn round_trip() {
        let mut buf = vec![0u8; MAX_PAYLOAD];
        let n = encode(
            &mut buf,
            524288,
            b"service=api\0version=1.4\0bad\0=x",
            1 << 30,
            true,
            Gaps::Uniform,
        );
        let s = decode(&buf[..n]).unwrap();
        assert!(s.aggregate);
        assert_eq!(s.sampling(), Sampling::current(524288));
        assert_eq!(s.sample_bytes, 524288);
        assert_eq!(s.memory_limit, 1 << 30);
        assert_eq!(
            s.labels,
            vec![
                ("service".to_string(), "api".to_string()),
                ("version".to_string(), "1.4".to_string())
            ]
        );
    }

    fn exponential(bytes: u64) -> Sampling {
        Sampling {
            bytes,
            gaps: Gaps::Exponential,
        }
    }

    #[test]
    fn a_first_writers_record_reads_as_exponential() {
        // sample_bytes, no label, memory_limit, aggregate: no gaps field.
        let s = decode(&[0x80, 0x80, 0x20, 0, 0, 0]).unwrap();
        assert_eq!(s.sampling(), exponential(524288));
    }

    #[test]
    fn exponential_weights() {
        assert_eq!(exponential(0).weight(100), 100);
        assert_eq!(exponential(1 << 19).weight(1 << 20), 1 << 20);
        assert_eq!(exponential(1 << 19).weight(1 << 19), 1 << 19);
        // A tiny request stands for about n bytes.
        let w = exponential(1 << 19).weight(16);
        assert!((w as i64 - (1 << 19) as i64).abs() < 16, "{w}");
        // Half of n: p = 1 - e^-0.5.
        let w = exponential(1 << 19).weight(1 << 18);
        assert_eq!(
            w,
            ((1u64 << 18) as f64 / (1.0 - (-0.5f64).exp())).round() as u64
        );
    }

    #[test]
    fn uniform_weights() {
        let s = Sampling::current(1 << 19);
        assert_eq!(s.weight(16), 1 << 19);
        assert_eq!(s.weight((1 << 18) - 1), 1 << 19);
        // Half of n and more: always recorded, their own size.
        assert_eq!(s.weight(1 << 18), 1 << 18);
        assert_eq!(s.weight(1 << 20), 1 << 20);
        assert_eq!(s.weight(0), 0);
        assert_eq!(Sampling::NONE.weight(100), 100);
    }
}
