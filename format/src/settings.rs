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
//! 0). Unknown trailing bytes are left for later versions.

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
    varint::put(buf, pos, u64::from(aggregate))
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
    Some(Settings {
        sample_bytes,
        labels,
        memory_limit,
        aggregate,
    })
}

/// What one recorded allocation of `size` bytes stands for, in bytes, in a capture sampled
/// every `n` bytes: requests of `n` bytes or more are always recorded (their own size); a
/// smaller one was recorded with probability `1 - exp(-size/n)` (the sampler's countdown is
/// exponentially distributed), so `size / (1 - exp(-size/n))` is an unbiased estimate of the
/// bytes such records stand for. With `n` 0 (not sampled), the size itself.
pub fn weight(size: u64, n: u64) -> u64 {
    if n == 0 || size >= n || size == 0 {
        return size;
    }
    let s = size as f64;
    let p = -(-s / n as f64).exp_m1();
    (s / p).round() as u64
}

/// How many allocations one recorded allocation of `size` bytes weighing `weight` bytes (see
/// [`weight`]) stands for: `weight / size`, a fraction, rounded down or up at random in
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
        let w = weight(size, n);
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
        );
        let s = decode(&buf[..n]).unwrap();
        assert!(s.aggregate);
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

    #[test]
    fn weights() {
        assert_eq!(weight(100, 0), 100);
        assert_eq!(weight(1 << 20, 1 << 19), 1 << 20);
        assert_eq!(weight(1 << 19, 1 << 19), 1 << 19);
        // A tiny request stands for about n bytes.
        let w = weight(16, 1 << 19);
        assert!((w as i64 - (1 << 19) as i64).abs() < 16, "{w}");
        // Half of n: p = 1 - e^-0.5.
        let w = weight(1 << 18, 1 << 19);
        assert_eq!(
            w,
            ((1u64 << 18) as f64 / (1.0 - (-0.5f64).exp())).round() as u64
        );
    }
}
