//! Numbers for people: sizes in binary units, counts with separators, seconds.

/// `512 B`, `1.5 KiB`, `3.0 MiB`.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    // 1023.96 KiB would print as "1024.0 KiB": move up a unit instead.
    if format!("{value:.1}") == "1024.0" && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// `1,234,567`.
/// `+1.5 MiB`, `-3 B`.
pub fn signed_size(n: i64) -> String {
    let s = size(n.unsigned_abs());
    if n < 0 {
        format!("-{s}")
    } else {
        format!("+{s}")
    }
}

pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `1 allocation`, `1,234 allocations`.
pub fn counted(n: u64, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{} {what}s", count(n))
    }
}

/// `0.532 s`, `12.3 s`, `2 min 5.0 s`.
pub fn seconds(s: f64) -> String {
    if !s.is_finite() {
        return "?".to_string();
    }
    if s < 10.0 {
        format!("{s:.3} s")
    } else if s < 60.0 {
        format!("{s:.1} s")
    } else {
        let min = (s / 60.0).floor();
        format!("{min:.0} min {:.1} s", s - min * 60.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(size(0), "0 B");
        assert_eq!(size(1023), "1023 B");
        assert_eq!(size(1024), "1.0 KiB");
        assert_eq!(size(1536 * 1024), "1.5 MiB");
        assert_eq!(size(1024 * 1024 - 1), "1.0 MiB");
        assert_eq!(size(u64::MAX), "16.0 EiB");
    }

    #[test]
    fn counts() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1000), "1,000");
        assert_eq!(count(1234567), "1,234,567");
        assert_eq!(counted(1, "allocation"), "1 allocation");
        assert_eq!(counted(1000, "allocation"), "1,000 allocations");
    }

    #[test]
    fn times() {
        assert_eq!(seconds(0.5321), "0.532 s");
        assert_eq!(seconds(125.0), "2 min 5.0 s");
    }
}
