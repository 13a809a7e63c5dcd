//! The lines of the stats text that say how a capture was recorded: byte sampling and labels.

use super::human::size;
use super::stats::StatsReport;
use std::io::{self, Write};

/// `Sampling:` and `Labels:` lines, for a sampled or labelled capture; nothing otherwise.
pub fn header_lines(r: &StatsReport, out: &mut impl Write) -> io::Result<()> {
    if r.sample_bytes > 0 {
        writeln!(
            out,
            "Sampling:     one sample per {} allocated on average (--sample-bytes {}): bytes are estimates",
            size(r.sample_bytes),
            r.sample_bytes
        )?;
    }
    if !r.labels.is_empty() {
        let labels: Vec<String> = r.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        writeln!(out, "Labels:       {}", labels.join(" "))?;
    }
    Ok(())
}
