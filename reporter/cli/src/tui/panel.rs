//! The side panel's text: everything about the selected node, with its source line.

use super::source::Sources;
use super::TuiInfo;
use memtrace_reporter::report::calltree::Node;
use memtrace_reporter::report::human::{count, counted, size};
use memtrace_reporter::report::locations::{UNKNOWN, UNKNOWN_NOTE};
use memtrace_reporter::report::visible::escape;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};

/// At most this many threads are named; the rest are counted.
const THREADS_NAMED: usize = 4;

/// The panel's lines for one node.
pub fn lines(node: &Node, info: &TuiInfo, sources: &mut Sources) -> Vec<Line<'static>> {
    let bold = Style::new().add_modifier(Modifier::BOLD);
    let mut out = Vec::new();
    match &node.location {
        None => out.push(Line::styled(info.root_label(), bold)),
        Some(loc) => {
            let name = loc.function.as_deref().unwrap_or(&loc.label);
            out.push(Line::styled(escape(name).into_owned(), bold));
            if let Some(file) = &loc.file {
                let file = escape(file);
                let at = match loc.line {
                    Some(l) => format!("at {file}:{l}"),
                    None => format!("at {file}"),
                };
                out.push(Line::raw(at));
            } else if loc.function.is_some() {
                out.push(Line::raw(escape(&loc.label).into_owned()));
            }
        }
    }
    out.push(Line::raw(format!(
        "{} ({} B), {} of {}, {}",
        size(node.bytes),
        count(node.bytes),
        share(node.bytes, info.peak_bytes),
        info.total_name(),
        counted(node.allocations, "allocation"),
    )));
    out.push(Line::raw(format!(
        "own: {} in {}; depth {}",
        size(node.own_bytes),
        counted(node.own_allocations, "allocation"),
        node.depth
    )));
    out.push(Line::raw(threads(&node.threads, info)));
    if node.location.as_ref().is_some_and(|l| l.label == UNKNOWN) {
        out.push(Line::styled(
            UNKNOWN_NOTE.replace('\n', " "),
            Style::new().add_modifier(Modifier::DIM),
        ));
    }
    if let Some(loc) = &node.location {
        if let (Some(file), Some(line)) = (&loc.file, loc.line) {
            if let Some(text) = sources.line(file, line) {
                out.push(Line::from(vec![
                    Span::styled(
                        format!("{line} │ "),
                        Style::new().add_modifier(Modifier::DIM),
                    ),
                    Span::raw(escape(text.trim()).into_owned()),
                ]));
            }
        }
    }
    out
}

/// `12.5%` of the total, `-` when there is no total.
pub fn share(bytes: u64, total: u64) -> String {
    if total == 0 {
        return "-".to_string();
    }
    format!("{:.1}%", bytes as f64 * 100.0 / total as f64)
}

fn threads(serials: &[u32], info: &TuiInfo) -> String {
    let word = if serials.len() == 1 {
        "thread"
    } else {
        "threads"
    };
    let mut names: Vec<String> = serials
        .iter()
        .take(THREADS_NAMED)
        .map(|s| info.thread_name(*s))
        .collect();
    if serials.len() > THREADS_NAMED {
        names.push(format!("and {} more", serials.len() - THREADS_NAMED));
    }
    if names.is_empty() {
        return "threads: none".to_string();
    }
    escape(&format!("{word}: {}", names.join(", "))).into_owned()
}
