//! The text rendering of the `stats` report.

use super::human::{count, counted, seconds, size};
use super::locations::{UNKNOWN, UNKNOWN_NOTE};
use super::paint::{self, paint, Plain, Styled, BOLD, STRONG};
use super::paths::Paths;
use super::stack::StackFrame;
use super::stats::{LocationRow, ModuleRow, StatsReport, ThreadRow};
use super::views::thread_display;
use super::views::View;
use super::visible::escape;
use std::io::{self, Write};

const BAR_WIDTH: usize = 40;

/// How the text shows what the report holds.
#[derive(Clone, Debug, Default)]
pub struct TextOptions {
    /// List every allocator, also those never called (`--all`).
    pub all_allocators: bool,
    /// How file paths show (`--full-paths`: as recorded).
    pub paths: Paths,
    /// How many threads the thread table lists at most (the ones that allocated most bytes):
    /// None for all.
    pub threads: Option<usize>,
}

/// Threads listed at least, whatever `-n` says.
pub const THREADS_SHOWN: usize = 20;

/// A bar of `value / max` of the width, in eighths of a character.
fn bar(value: u64, max: u64) -> String {
    const PARTS: [char; 8] = [' ', '▏', '▎', '▍', '▌', '▋', '▊', '▉'];
    let eighths = if max == 0 {
        0
    } else {
        ((value as u128 * (BAR_WIDTH as u128 * 8)) / max as u128) as usize
    };
    let eighths = if value > 0 { eighths.max(1) } else { 0 };
    let mut s = "█".repeat(eighths / 8);
    if eighths % 8 != 0 {
        s.push(PARTS[eighths % 8]);
    }
    let used = s.chars().count();
    s.extend(std::iter::repeat_n(' ', BAR_WIDTH.saturating_sub(used)));
    s
}

/// `part` as a share of `whole`: "0.1%"; "<0.1%" for a sliver, so that it never reads 0.
fn share(part: u64, whole: u64) -> String {
    let p = if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    };
    if part > 0 && p < 0.05 {
        "<0.1%".to_string()
    } else {
        format!("{p:.1}%")
    }
}

/// "Top 5 locations by bytes allocated:" (no count when the list is empty).
fn top_title(n: usize, by: &str) -> String {
    if n == 0 {
        format!("Top locations by {by}:")
    } else {
        format!("Top {} by {by}:", counted(n as u64, "location"))
    }
}

/// Callers shown under an entry of the top list by bytes.
const CALLERS: usize = 4;

/// The callers of a top location (its stack's frames after the innermost), one line each:
/// `      ← g at app.py:7`; past [`CALLERS`] lines the rest is counted on the last one.
fn callers(out: &mut impl Styled, stack: &[StackFrame], o: &TextOptions) -> io::Result<()> {
    let outer = stack.get(1..).unwrap_or_default();
    let shown = if outer.len() > CALLERS {
        CALLERS - 1
    } else {
        outer.len()
    };
    for f in &outer[..shown] {
        write!(out, "      ← ")?;
        paint::location(out, &o.paths.label(&f.label, f.file.as_deref()))?;
        writeln!(out)?;
    }
    if shown < outer.len() {
        let more = outer.len() - shown;
        let frames = if more == 1 { "frame" } else { "frames" };
        writeln!(out, "      ← … {more} more {frames}")?;
    }
    Ok(())
}

/// A top list; sizes are graded by their share of `whole` bytes.
fn top_list(
    out: &mut impl Styled,
    title: &str,
    rows: &[LocationRow],
    by_count: bool,
    whole: u64,
    o: &TextOptions,
) -> io::Result<()> {
    paint(out, BOLD, title)?;
    writeln!(out)?;
    if rows.is_empty() {
        writeln!(out, "  (no allocations)")?;
    }
    for (i, r) in rows.iter().enumerate() {
        let grade = paint::by_share(r.bytes, whole);
        write!(out, "  {:>2}. ", i + 1)?;
        if by_count {
            write!(out, "{:>18}  ", counted(r.count, "allocation"))?;
            paint(out, grade, format!("{:>20}", size(r.bytes)))?;
        } else {
            paint(out, grade, format!("{:>18}", size(r.bytes)))?;
            write!(out, "  {:>20}", counted(r.count, "allocation"))?;
        }
        write!(out, "  ")?;
        paint::location(out, &o.paths.label(&r.location, r.file.as_deref()))?;
        writeln!(out)?;
        if !by_count {
            callers(out, &r.stack, o)?;
        }
    }
    Ok(())
}

fn top_modules(
    out: &mut impl Styled,
    rows: &[ModuleRow],
    whole: u64,
    o: &TextOptions,
) -> io::Result<()> {
    if rows.is_empty() {
        paint(out, BOLD, "Top modules by bytes:")?;
        writeln!(out)?;
        return writeln!(out, "  (no allocations)");
    }
    paint(
        out,
        BOLD,
        format!("Top {} by bytes:", counted(rows.len() as u64, "module")),
    )?;
    writeln!(out)?;
    for (i, m) in rows.iter().enumerate() {
        let file = match &m.file {
            Some(f) if *f != m.module => format!("  ({})", escape(&o.paths.file(f))),
            _ => String::new(),
        };
        write!(out, "  {:>2}. ", i + 1)?;
        paint(
            out,
            paint::by_share(m.bytes, whole),
            format!("{:>18}", size(m.bytes)),
        )?;
        writeln!(
            out,
            "  {:>20}  {}{file}",
            counted(m.count, "allocation"),
            escape(&m.module)
        )?;
    }
    Ok(())
}

/// Writes the report for a person, with full paths and every allocator.
pub fn render(r: &StatsReport, out: &mut impl Write) -> io::Result<()> {
    render_with(r, &mut Plain(out), &TextOptions::default())
}

/// A histogram row's sizes: `64 B - 127 B`, one size when the bin holds one, and the
/// allocations of no bytes (`malloc(0)`) as such.
fn bin_label(lo: u64, hi: u64) -> String {
    match (lo, hi) {
        (0, 0) => "zero-byte".to_string(),
        _ if lo == hi => size(lo),
        _ => format!("{} - {}", size(lo), size(hi)),
    }
}

/// Writes the report for a person, as `o` says.
pub fn render_with(r: &StatsReport, out: &mut impl Styled, o: &TextOptions) -> io::Result<()> {
    writeln!(
        out,
        "Capture:      {} (format {})",
        escape(&r.capture),
        r.format_version
    )?;
    // The program's words may hold line breaks: one would forge a line of the report.
    writeln!(out, "Command:      {}", escape(&r.command))?;
    writeln!(out, "PID:          {}", r.pid)?;
    writeln!(
        out,
        "Duration:     {}{}",
        seconds(r.duration_s),
        if r.complete {
            ""
        } else {
            " (incomplete capture)"
        }
    )?;
    super::text_modes::header_lines(r, out)?;
    if let Some(e) = &r.exec {
        let missing = if e.next_capture_exists {
            ""
        } else {
            ", not written"
        };
        writeln!(out, "Exec'd:       {}", escape(&e.command))?;
        writeln!(
            out,
            "              its capture: {}{missing}",
            e.next_capture
        )?;
    }
    writeln!(out)?;
    let zero_byte = r
        .histogram
        .iter()
        .find(|b| b.hi == 0)
        .map_or(0, |b| b.count);
    writeln!(
        out,
        "Total allocations:      {}{}",
        count(r.total_allocations),
        if zero_byte > 0 {
            format!(" ({} of zero bytes)", count(zero_byte))
        } else {
            String::new()
        }
    )?;
    writeln!(
        out,
        "Total bytes allocated:  {} ({} bytes)",
        size(r.total_bytes),
        count(r.total_bytes)
    )?;
    writeln!(out, "Total frees:            {}", count(r.total_frees))?;
    write!(out, "Peak memory:            ")?;
    paint(
        out,
        STRONG,
        format!("{} ({} bytes)", size(r.peak_bytes), count(r.peak_bytes)),
    )?;
    writeln!(
        out,
        " in {}, at {}",
        counted(r.peak_allocations, "allocation"),
        seconds(r.peak_time_s)
    )?;
    let leak_title = if r.leaks_at == "exit_snapshot" {
        "Live at exit:          "
    } else {
        "Live at end:           "
    };
    write!(out, "{leak_title} ")?;
    paint(
        out,
        BOLD,
        format!("{} ({} bytes)", size(r.leaked_bytes), count(r.leaked_bytes)),
    )?;
    writeln!(out, " in {}", counted(r.leaked_allocations, "allocation"))?;
    if r.peak_stops_short_bytes > 0 {
        writeln!(
            out,
            "Stacks stop short:      {} of the peak ({} in {}) is under stacks that stop short of the thread's first frame (\"<stack stops short: …>\" in reports)",
            share(r.peak_stops_short_bytes, r.peak_bytes),
            size(r.peak_stops_short_bytes),
            counted(r.peak_stops_short_allocations, "allocation")
        )?;
    }
    if let Some(b) = r.startup_bytes {
        let how = if r.startup_included {
            "counted in the above"
        } else {
            "not counted: --include-startup counts it"
        };
        writeln!(
            out,
            "Start-up:               {} ({} bytes) live when the script started (the interpreter's own, {how})",
            size(b),
            count(b)
        )?;
    }

    writeln!(out)?;
    paint(out, BOLD, "Allocation sizes:")?;
    writeln!(out)?;
    if r.histogram.is_empty() {
        writeln!(out, "  (no allocations)")?;
    }
    let max = r.histogram.iter().map(|b| b.count).max().unwrap_or(0);
    for b in &r.histogram {
        let label = bin_label(b.lo, b.hi);
        writeln!(
            out,
            "  {label:>21} |{}| {:>12}  {:>10}",
            bar(b.count, max),
            count(b.count),
            size(b.bytes)
        )?;
    }

    writeln!(out)?;
    // A sampled capture counts the calls it sampled (the totals above are estimates): an
    // allocator whose small calls drew no sample reads as never called.
    let sampled = r.sample_bytes > 0;
    let heading = match sampled {
        true => "Allocators (calls sampled, not estimates):",
        false => "Allocators:",
    };
    paint(out, BOLD, heading)?;
    writeln!(out)?;
    let mut allocators: Vec<(&String, &u64)> = r.allocators.iter().collect();
    allocators.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let never = allocators.iter().filter(|(_, n)| **n == 0).count();
    for (name, n) in allocators {
        if *n > 0 || o.all_allocators {
            writeln!(out, "  {name:<18} {:>14}", count(*n))?;
        }
    }
    if never > 0 && !o.all_allocators {
        writeln!(
            out,
            "  ({} {}: --all lists them)",
            counted(never as u64, "other"),
            if sampled {
                "never sampled"
            } else {
                "never called"
            }
        )?;
    }

    writeln!(out)?;
    let of = match r.view {
        View::All => "",
        View::Peak => " (live at the peak)",
        View::Leaks => " (live at exit)",
        View::Temporary => " (temporary allocations)",
    };
    if r.view != View::All {
        writeln!(
            out,
            "The lists below count{of}: {} ({} bytes) in {}",
            size(r.view_bytes),
            count(r.view_bytes),
            counted(r.view_allocations, "allocation")
        )?;
        writeln!(out)?;
    }
    top_list(
        out,
        &format!(
            "{}{of}:",
            top_title(r.top_by_size.len(), "bytes allocated").trim_end_matches(':')
        ),
        &r.top_by_size,
        false,
        r.view_bytes,
        o,
    )?;
    writeln!(out)?;
    top_list(
        out,
        &format!(
            "{}{of}:",
            top_title(r.top_by_count.len(), "number of allocations").trim_end_matches(':')
        ),
        &r.top_by_count,
        true,
        r.view_bytes,
        o,
    )?;
    writeln!(out)?;
    top_list(
        out,
        &top_title(r.top_at_peak.len(), "bytes live at the peak"),
        &r.top_at_peak,
        false,
        r.peak_bytes,
        o,
    )?;
    writeln!(out)?;
    top_modules(out, &r.top_modules, r.view_bytes, o)?;
    let lists = [&r.top_by_size, &r.top_by_count, &r.top_at_peak];
    let unknown = lists
        .iter()
        .flat_map(|l| l.iter())
        .any(|l| l.location == UNKNOWN)
        || r.top_modules.iter().any(|m| m.module == UNKNOWN)
        || r.threads
            .iter()
            .flat_map(|t| t.top_at_peak.iter().flatten())
            .any(|l| l.location == UNKNOWN);
    if unknown {
        writeln!(out)?;
        writeln!(out, "{UNKNOWN_NOTE}")?;
    }
    if let Some(t) = &r.types {
        writeln!(out)?;
        super::types::render(t, r.top_by_size.len().max(10), out)?;
    } else if let Some(why) = r.types_missing {
        writeln!(out)?;
        writeln!(out, "Types: none: {why}.")?;
    }

    writeln!(out)?;
    paint(out, BOLD, "Threads:")?;
    writeln!(out)?;
    writeln!(
        out,
        "  {:>8}  {:<20} {:>14} {:>12} {:>12}",
        "TID", "NAME", "ALLOCATIONS", "BYTES", "AT PEAK"
    )?;
    // A program of 100,000 short threads made a table of 100,000 rows: the ones that
    // allocated most, then how many more there are.
    // By bytes allocated, the most first (then by TID), however many there are.
    let mut shown: Vec<&ThreadRow> = r.threads.iter().collect();
    shown.sort_by_key(|t| (std::cmp::Reverse(t.bytes), t.tid));
    let hidden = match o.threads {
        Some(n) if shown.len() > n => {
            shown.truncate(n);
            r.threads.len() - n
        }
        _ => 0,
    };
    for t in shown {
        writeln!(
            out,
            "  {:>8}  {:<20} {:>14} {:>12} {:>12}",
            t.tid,
            escape(t.name.as_deref().unwrap_or("-")),
            count(t.allocations),
            size(t.bytes),
            size(t.peak_bytes)
        )?;
    }
    if hidden > 0 {
        writeln!(
            out,
            "  ... {} more threads, which allocated less (--all or --json lists them all)",
            count(hidden as u64)
        )?;
    }
    for t in &r.threads {
        if let Some(rows) = &t.top_at_peak {
            writeln!(out)?;
            let name = thread_display(t.tid, t.name.as_deref());
            top_list(
                out,
                &format!(
                    "Thread {name}: {}",
                    top_title(rows.len(), "bytes live at the peak")
                ),
                rows,
                false,
                t.peak_bytes,
                o,
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::bar;

    #[test]
    fn bars_scale() {
        assert_eq!(bar(10, 10).chars().filter(|&c| c == '█').count(), 40);
        assert_eq!(bar(0, 10).trim(), "");
        assert!(!bar(1, 1_000_000).trim().is_empty());
        assert_eq!(bar(5, 10).chars().count(), 40);
    }
}
