//! Captures that `memtrace attach` started in a process already running: every report says so,
//! since what was allocated before the attach is not in the capture (and its frees are not
//! counted).

use memtrace_format::options;

/// The warning every report prints for an attached capture; None for a capture that started
/// with its program.
pub fn note(header_options: u64, start_realtime_ns: u64) -> Option<String> {
    (header_options & options::ATTACHED != 0).then(|| {
        format!(
            "attached at {} UTC: memory allocated before is not attributed (its frees are not counted)",
            utc(start_realtime_ns / 1_000_000_000)
        )
    })
}

/// `YYYY-MM-DD HH:MM:SS` of seconds since the Unix epoch (days to a civil date, proleptic
/// Gregorian calendar).
fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_of_known_seconds() {
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00");
        assert_eq!(utc(1_795_966_245), "2026-11-29 15:30:45");
    }

    #[test]
    fn only_attached_captures_have_the_note() {
        assert_eq!(note(options::NATIVE, 0), None);
        assert_eq!(
            note(
                options::ATTACHED | options::NATIVE,
                1_795_966_245_000_000_000
            )
            .as_deref(),
            Some(
                "attached at 2026-11-29 15:30:45 UTC: memory allocated before is not attributed \
                 (its frees are not counted)"
            )
        );
    }
}
