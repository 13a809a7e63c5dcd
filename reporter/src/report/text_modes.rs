//! The lines of the stats text that say how a capture was recorded: aggregated, byte sampling
//! and labels.

use super::human::size;
use super::stats::StatsReport;
use std::io::{self, Write};

/// `Mode:`, `Sampling:`, `Labels:` and `Memory limit:` lines, for an aggregated, sampled or
/// labelled capture or one made under a cgroup memory limit; nothing otherwise.
pub fn header_lines(r: &StatsReport, out: &mut impl Write) -> io::Result<()> {
    if r.aggregated {
        writeln!(
            out,
            "Mode:         aggregated (memtrace run --aggregate): sums per stack and thread, no \
             temporary allocations or time ranges"
        )?;
    }
    if r.sample_bytes > 0 {
        writeln!(
            out,
            "Sampling:     one sample per {} allocated on average (--sample-bytes {}): bytes are estimates",
            size(r.sample_bytes),
            r.sample_bytes
        )?;
        if r.peak_bytes > 0 {
            writeln!(
                out,
                "              the peak's standard error is at most {} ({:.0}%)",
                size(r.peak_standard_error_bytes),
                r.peak_standard_error_bytes as f64 * 100.0 / r.peak_bytes as f64
            )?;
        } else if r.total_allocations == 0 {
            // Figures of 0 would otherwise read as a program that allocated nothing.
            writeln!(
                out,
                "              no allocation was sampled: the program allocated too little for \
                 one sample per {} (a smaller --sample-bytes samples it)",
                size(r.sample_bytes)
            )?;
        }
    }
    if !r.labels.is_empty() {
        // A value with a space or a quote is quoted: the line stays one reading.
        let labels: Vec<String> = r
            .labels
            .iter()
            .map(
                |(k, v)| match v.contains(char::is_whitespace) || v.contains('"') {
                    true => format!("{k}={v:?}"),
                    false => format!("{k}={v}"),
                },
            )
            .collect();
        writeln!(out, "Labels:       {}", labels.join(" "))?;
    }
    if let Some(last) = r.failed_requests.last() {
        let n = r.failed_requests.len();
        let place = last
            .stack
            .first()
            .map_or("an unknown place".to_string(), |f| f.label.clone());
        // A request whose size overflows (calloc's count times size) is kept as the largest.
        let asked = match last.bytes {
            u64::MAX => format!(
                "more than 2^64 bytes ({}: its size overflows)",
                last.allocator
            ),
            b => format!("{} ({b} bytes, {})", size(b), last.allocator),
        };
        writeln!(
            out,
            "Failed:       {} refused by the allocator{}: {asked} at {place}, at {:.3} s",
            if n == 1 {
                "1 request".to_string()
            } else {
                format!("{n} requests")
            },
            if n == 1 { "" } else { ", the last" },
            last.time_s
        )?;
    }
    if let Some(limit) = r.memory_limit {
        let share = if limit > 0 {
            format!(
                " (the peak is {:.0}% of it)",
                r.peak_bytes as f64 * 100.0 / limit as f64
            )
        } else {
            String::new()
        };
        writeln!(
            out,
            "Memory limit: {} (cgroup v2 memory.max){share}",
            size(limit)
        )?;
    }
    Ok(())
}
