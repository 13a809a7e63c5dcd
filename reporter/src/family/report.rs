//! What `memtrace stats` adds for a capture with followed children: the process tree (pid,
//! parent, command, own peak, total allocated, live at exit) and the combined peak (when, and
//! what each process held then). Its fields are JSON keys added to the stats object.

use super::combined::{self, Image};
use super::{discover, discover_read, Family};
use crate::capture::scan::Index;
use crate::capture::Capture;
use crate::report::human::{count, seconds, size};
use serde::Serialize;
use std::io::{self, Write};
use std::path::Path;

/// A process of the family.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ProcessRow {
    pub pid: u32,
    pub parent_pid: u32,
    pub command: String,
    /// Its own peak: the highest live heap of any of its images.
    pub peak_bytes: u64,
    /// Bytes allocated by all its images.
    pub total_bytes: u64,
    /// Live at exit (of its last image).
    pub leaked_bytes: u64,
    /// Seconds after the root process started (its parent's record, else its capture).
    pub start_s: f64,
    /// It has a capture (children are tracked with --follow-fork).
    pub tracked: bool,
    /// Every capture of it ended properly (false: killed, or still running, read as far as
    /// it goes).
    pub complete: bool,
    /// A capture of it could not be read, or misses records its tracker wrote (emptied, cut
    /// short, overwritten): its figures are what is left.
    pub damaged: bool,
    /// Its captures, one per image.
    pub captures: Vec<String>,
    /// The command of a program its last image exec'd that wrote no capture (set-user-ID,
    /// static): its figures stop at that exec.
    pub exec_without_capture: Option<String>,
    /// Depth in the tree (0: the root).
    #[serde(skip)]
    pub depth: usize,
}

/// What a process held at the combined peak.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Share {
    pub pid: u32,
    pub bytes: u64,
}

/// The family part of a stats report.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FamilyReport {
    /// Root first, then depth-first, each process's children in start order.
    pub processes: Vec<ProcessRow>,
    pub combined_peak_bytes: u64,
    /// Seconds after the root process started.
    pub combined_peak_time_s: f64,
    /// What each process held at the combined peak, the largest first.
    pub combined_peak_by_process: Vec<Share>,
    /// Problems reading the children's captures (the root's are the report's own).
    #[serde(skip)]
    pub warnings: Vec<String>,
    /// The run followed children: one without a capture was to have one.
    #[serde(skip)]
    pub followed: bool,
}

/// The family report of the capture at `path` (None when it has no children), and the
/// warnings about captures beside it left out of the family (another run's).
pub fn build(path: &Path, include_startup: bool) -> Result<Built, String> {
    Ok(from_family(discover(path)?, include_startup))
}

/// [`build`], the capture already open and read (`stats`): it is not scanned again.
pub fn build_read(
    path: &Path,
    capture: &Capture,
    index: &Index,
    include_startup: bool,
) -> Result<Built, String> {
    Ok(from_family(
        discover_read(path, capture, index)?,
        include_startup,
    ))
}

/// A family's report (None: the capture has no children) and the captures left out of it.
pub type Built = (Option<FamilyReport>, Vec<String>);

fn from_family(mut family: Family, include_startup: bool) -> Built {
    let left_out = std::mem::take(&mut family.warnings);
    if !family.has_children() {
        return (None, left_out);
    }
    let images = combined::read(&family, include_startup);
    (Some(assemble(&family, &images)), left_out)
}

/// The report of a family whose captures were read.
pub fn assemble(family: &Family, images: &[Image]) -> FamilyReport {
    let n = family.processes.len();
    let peak = combined::peak(images, n);
    let root_mono = images
        .iter()
        .find(|i| i.process == 0)
        .map_or(0, |i| i.start_mono_ns);
    let root_real = family.processes[0].start_realtime_ns;
    let mut rows: Vec<ProcessRow> = family
        .processes
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mine: Vec<&Image> = images.iter().filter(|im| im.process == i).collect();
            ProcessRow {
                pid: p.pid,
                parent_pid: p.parent_pid,
                command: p.command.clone(),
                peak_bytes: mine.iter().map(|im| im.peak_bytes).max().unwrap_or(0),
                total_bytes: mine.iter().map(|im| im.total_bytes).sum(),
                leaked_bytes: mine.last().map_or(0, |im| im.leaked_bytes),
                start_s: p.start_realtime_ns.saturating_sub(root_real) as f64 / 1e9,
                tracked: p.tracked(),
                complete: mine.iter().all(|im| im.complete && im.error.is_none()),
                damaged: mine.iter().any(|im| im.damaged),
                captures: p.captures.iter().map(|c| c.display().to_string()).collect(),
                exec_without_capture: p.exec_without_capture.clone(),
                depth: 0,
            }
        })
        .collect();
    rows = tree_order(rows);
    let mut warnings = Vec::new();
    // A forked child of a followed run always writes a capture (an exec'd one may not: its
    // exec can fail, its program be static).
    let fork = Some(memtrace_format::family::how::FORK);
    for p in &family.processes {
        if family.followed && !p.tracked() && p.how == fork {
            warnings.push(format!("process {} {}", p.pid, family.no_capture_reason(p)));
        }
    }
    warnings.extend(combined::notes(family, images));
    for im in images.iter().filter(|im| im.process != 0) {
        if let Some(e) = &im.error {
            warnings.push(format!("{}: {e}", im.path.display()));
        }
        for w in &im.warnings {
            warnings.push(format!("{}: {w}", im.path.display()));
        }
    }
    FamilyReport {
        processes: rows,
        combined_peak_bytes: peak.bytes,
        combined_peak_time_s: peak.mono_ns.saturating_sub(root_mono) as f64 / 1e9,
        combined_peak_by_process: peak
            .by_process
            .iter()
            .map(|&(i, bytes)| Share {
                pid: family.processes[i].pid,
                bytes,
            })
            .collect(),
        warnings,
        followed: family.followed,
    }
}

/// Root first, then each process's children (by start) after it, depth-first; a process whose
/// parent is not in the family hangs under the root.
fn tree_order(rows: Vec<ProcessRow>) -> Vec<ProcessRow> {
    let Some(root_pid) = rows.first().map(|r| r.pid) else {
        return rows;
    };
    let known: std::collections::HashSet<u32> = rows.iter().map(|r| r.pid).collect();
    let parent_of = |r: &ProcessRow| {
        if r.pid != root_pid && known.contains(&r.parent_pid) && r.parent_pid != r.pid {
            r.parent_pid
        } else {
            root_pid
        }
    };
    let mut out = Vec::with_capacity(rows.len());
    let mut placed = vec![false; rows.len()];
    let mut stack = vec![(0usize, 0usize)];
    placed[0] = true;
    while let Some((i, depth)) = stack.pop() {
        let pid = rows[i].pid;
        let mut row = rows[i].clone();
        row.depth = depth;
        out.push(row);
        let mut kids: Vec<usize> = (0..rows.len())
            .filter(|&k| !placed[k] && parent_of(&rows[k]) == pid)
            .collect();
        kids.sort_by(|&a, &b| rows[a].start_s.total_cmp(&rows[b].start_s));
        for &k in kids.iter().rev() {
            placed[k] = true;
            stack.push((k, depth + 1));
        }
    }
    out
}

/// The family as text: the process tree, then the combined peak.
pub fn render(r: &FamilyReport, out: &mut impl Write) -> io::Result<()> {
    writeln!(out)?;
    writeln!(out, "Processes ({}):", r.processes.len())?;
    writeln!(
        out,
        "  {:<24} {:>8}  {:>11}  {:>11}  {:>12}  COMMAND",
        "PID", "PARENT", "PEAK", "TOTAL", "LIVE AT EXIT"
    )?;
    for p in &r.processes {
        let pid = format!("{}{}", "  ".repeat(p.depth), p.pid);
        // A command's line breaks and control characters would break the table's rows.
        let mut command = crate::report::visible::escape(&p.command).into_owned();
        if !p.tracked && r.followed {
            command.push_str("  (no capture)");
        } else if !p.tracked {
            command.push_str("  (not tracked)");
        } else if p.damaged {
            command.push_str("  (damaged)");
        } else if !p.complete {
            command.push_str("  (incomplete)");
        }
        if let Some(program) = &p.exec_without_capture {
            command.push_str(&format!(
                "  (then exec'd {}: no capture)",
                crate::report::visible::escape(program)
            ));
        }
        writeln!(
            out,
            "  {:<24} {:>8}  {:>11}  {:>11}  {:>12}  {}",
            pid,
            p.parent_pid,
            size(p.peak_bytes),
            size(p.total_bytes),
            size(p.leaked_bytes),
            command
        )?;
    }
    let shares: Vec<String> = r
        .combined_peak_by_process
        .iter()
        .map(|s| format!("pid {} {}", s.pid, size(s.bytes)))
        .collect();
    writeln!(
        out,
        "Combined peak:          {} ({} bytes) at {}: {}",
        size(r.combined_peak_bytes),
        count(r.combined_peak_bytes),
        seconds(r.combined_peak_time_s),
        if shares.is_empty() {
            "nothing live".to_string()
        } else {
            shares.join(", ")
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(pid: u32, command: &str) -> ProcessRow {
        ProcessRow {
            pid,
            parent_pid: 1,
            command: command.to_string(),
            peak_bytes: 100,
            total_bytes: 100,
            leaked_bytes: 0,
            start_s: 0.0,
            tracked: true,
            complete: true,
            damaged: false,
            captures: Vec::new(),
            exec_without_capture: None,
            depth: 0,
        }
    }

    /// A command with line breaks (`python3 -c "a\nb"`) kept the table's row on one line
    /// only in the other views: the processes table broke over several.
    #[test]
    fn a_command_s_line_breaks_stay_in_its_row() {
        let r = FamilyReport {
            processes: vec![row(10, "sh"), row(11, "python3 -c import os\nprint(1)\r")],
            combined_peak_bytes: 200,
            combined_peak_time_s: 0.5,
            combined_peak_by_process: Vec::new(),
            warnings: Vec::new(),
            followed: true,
        };
        let mut out = Vec::new();
        render(&r, &mut out).expect("render");
        let text = String::from_utf8(out).expect("utf-8");
        let lines: Vec<&str> = text.lines().collect();
        // A blank line, the title, the header, two rows, the combined peak.
        assert_eq!(lines.len(), 6, "{text}");
        assert!(
            lines[4].ends_with("python3 -c import os\\x0aprint(1)\\x0d"),
            "{text}"
        );
    }
}
