//! The options of `memtrace run` for long-running programs: byte sampling (`--sample-bytes`),
//! aggregation (`--aggregate`)
//! and labels (`--label`), checked here so that a bad value is one line and exit status 1 (as
//! every memtrace error), then passed to the tracker in its environment.

use super::RunError;
use std::process::Command;

/// The tracker's variables (tracker/src/base/config.rs).
const SAMPLE_BYTES_ENV: &str = "MEMTRACE_SAMPLE_BYTES";
const LABELS_ENV: &str = "MEMTRACE_LABELS";
const AGGREGATE_ENV: &str = "MEMTRACE_AGGREGATE";

/// Largest sampling interval accepted: 1 TiB (every allocation below it is sampled by chance).
const MAX_SAMPLE_BYTES: u64 = 1 << 40;

/// `512K`, `1M`, `4096`, `64KiB`: a number of bytes with an optional binary unit.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let bad = || {
        format!(
            "invalid --sample-bytes value '{text}': expected a number of bytes such as 4096, 512K or 1M"
        )
    };
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    if digits.is_empty() {
        return Err(bad());
    }
    let shift = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(bad()),
    };
    let too_large =
        || format!("invalid --sample-bytes value '{text}': at most 1T (1099511627776 bytes)");
    // Digits past u64 are a number too large, as 2T is (they read as not a number).
    let n = digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1u64 << shift))
        .ok_or_else(too_large)?;
    if n == 0 {
        return Err(format!(
            "invalid --sample-bytes value '{text}': must be at least 1 byte"
        ));
    }
    if n > MAX_SAMPLE_BYTES {
        return Err(too_large());
    }
    Ok(n)
}

/// `key=value`: a key of letters, digits, `_`, `.` and `-`, and a value without control
/// characters.
pub fn parse_label(text: &str) -> Result<(String, String), String> {
    let Some((key, value)) = text.split_once('=') else {
        return Err(format!(
            "invalid --label '{}': expected key=value, such as service=api",
            text.escape_debug()
        ));
    };
    if key.is_empty()
        || !key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
    {
        return Err(format!(
            "invalid --label '{}': the key must be letters, digits, '_', '.' or '-'",
            text.escape_debug()
        ));
    }
    // pprof readers (Go's) drop a label whose value is the empty string.
    if value.is_empty() {
        return Err(format!(
            "invalid --label '{}': the value is empty",
            text.escape_debug()
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(format!(
            "invalid --label '{}': the value has a control character",
            text.escape_debug()
        ));
    }
    Ok((key.to_string(), value.to_string()))
}

/// Checks the labels (each key once) and returns them in order.
pub fn parse_labels(texts: &[String]) -> Result<Vec<(String, String)>, String> {
    let mut out: Vec<(String, String)> = Vec::new();
    for t in texts {
        let (k, v) = parse_label(t)?;
        if out.iter().any(|(seen, _)| *seen == k) {
            return Err(format!("invalid --label '{t}': label '{k}' is given twice"));
        }
        out.push((k, v));
    }
    let total: usize = out.iter().map(|(k, v)| k.len() + v.len() + 1).sum();
    if out.len() > 64 {
        return Err(format!("too many labels: {} given, at most 64", out.len()));
    }
    if total > memtrace_format::settings::MAX_LABEL_BYTES {
        let what = match out.len() {
            1 => "the label is too long",
            _ => "the labels are too long",
        };
        return Err(format!(
            "{what}: {total} bytes, at most {} in all",
            memtrace_format::settings::MAX_LABEL_BYTES
        ));
    }
    Ok(out)
}

/// Checks the options and sets the tracker's variables on `cmd`.
pub fn apply(
    cmd: &mut Command,
    sample_bytes: Option<&str>,
    labels: &[String],
) -> Result<(), RunError> {
    match sample_bytes {
        Some(t) => {
            let n = parse_size(t).map_err(RunError)?;
            cmd.env(SAMPLE_BYTES_ENV, n.to_string());
        }
        None => {
            cmd.env_remove(SAMPLE_BYTES_ENV);
        }
    }
    let labels = parse_labels(labels).map_err(RunError)?;
    if labels.is_empty() {
        cmd.env_remove(LABELS_ENV);
    } else {
        let joined: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        cmd.env(LABELS_ENV, joined.join("\n"));
    }
    Ok(())
}

/// Asks the tracker for an aggregated capture (`--aggregate`), or not.
pub fn aggregate(cmd: &mut Command, on: bool) {
    if on {
        cmd.env(AGGREGATE_ENV, "1");
    } else {
        cmd.env_remove(AGGREGATE_ENV);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512K"), Ok(512 << 10));
        assert_eq!(parse_size("512KiB"), Ok(512 << 10));
        assert_eq!(parse_size("1m"), Ok(1 << 20));
        assert_eq!(parse_size("4096"), Ok(4096));
        for bad in [
            "",
            "K",
            "0",
            "-1",
            "1.5M",
            "12X",
            "99999999999999999999",
            "2T",
            "1P",
        ] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
        // Too large is one message, in digits or in units.
        for large in ["99999999999999999999", "2T", "18446744073709551616K"] {
            let e = parse_size(large).expect_err(large);
            assert!(e.ends_with("at most 1T (1099511627776 bytes)"), "{e}");
        }
    }

    #[test]
    fn labels() {
        assert_eq!(
            parse_label("service=api"),
            Ok(("service".into(), "api".into()))
        );
        assert_eq!(parse_label("v=1=2"), Ok(("v".into(), "1=2".into())));
        for bad in ["service", "=api", "a b=c", "k=\n", "empty="] {
            assert!(parse_label(bad).is_err(), "{bad}");
        }
        assert!(parse_labels(&["a=1".into(), "a=2".into()]).is_err());
    }
}
