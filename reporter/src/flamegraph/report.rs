//! The pages of `memtrace flamegraph`, made from a capture already read: the interactive page
//! (every view computed in the page from bounded data) and the differential page of two captures. The
//! command and the Python package both write them; neither builds the other's arguments.

use super::diff_fold::{self, DiffTree};
use super::{app, data, diff_svg, fold, html, page, svg, timeline};
use crate::analysis::totals::Sum;
use crate::analysis::Analysis;
use crate::analysis::{Options, ProgressFn};
use crate::capture::Capture;
use crate::report::calltree::{CallTree, Node};
use crate::report::diff::{self, Change};
use crate::report::views::{self, Selection, View, ViewOptions};
use crate::report::visible::escape;
use crate::report::{human, load};
use std::path::Path;

/// How many rows the top lines table has.
pub const TOP_LINES: usize = 20;

/// What a view holds, for the page's facts.
pub fn view_name(view: View) -> &'static str {
    match view {
        View::All => "every allocation",
        View::Peak => "live at the peak",
        View::Leaks => "live at exit (--leaks)",
        View::Temporary => "temporary allocations (--temporary)",
    }
}

/// Opens and reads a capture for the interactive page: the time buckets
/// ([`data::BUCKETS`]) and the temporary allocations are kept as well. Errors are the one line
/// to show.
pub fn load_for_page(
    file: &Path,
    view: &ViewOptions,
    progress: Option<ProgressFn>,
) -> Result<(Capture, Analysis), String> {
    let options = Options {
        temporary: Some(view.temporary_threshold.max(1)),
        buckets: Some(data::BUCKETS),
        ..load::options(view, progress)
    };
    load::load_with(file, view, options)
}

/// The interactive page of a capture read by [`load_for_page`], starting on `view`.
pub fn interactive_page(
    capture: &Capture,
    analysis: &Analysis,
    view: &ViewOptions,
    inverted: bool,
) -> Result<String, String> {
    let thread = views::kept_threads(analysis, view)?.and_then(|t| t.first().copied());
    let json = data::build_json(
        capture,
        analysis,
        &data::Start {
            view: view.view,
            inverted,
            split_threads: view.split_threads,
            thread,
        },
    );
    Ok(app::render(&capture.path().display().to_string(), &json))
}

/// Writes the interactive page of the capture `file` to `output`, reading the capture without
/// progress; `warn` is given the capture's warnings. The error is the one line to show.
pub fn write(
    file: &Path,
    output: &Path,
    view: &ViewOptions,
    inverted: bool,
    warn: &mut dyn FnMut(&[String]),
) -> Result<(), String> {
    crate::output::check_not_input(output, &[file])?;
    let (capture, analysis) = load_for_page(file, view, None)?;
    warn(&analysis.warnings);
    let html = interactive_page(&capture, &analysis, view, inverted)?;
    std::fs::write(output, html).map_err(|e| format!("cannot write {}: {e}", output.display()))
}

/// What the differential page needs of one capture (the capture itself can be closed before
/// the next is read).
pub struct Side {
    path: String,
    command: String,
    peak: Sum,
    peak_point: Option<(f64, u64)>,
    heap: Vec<(f64, u64)>,
    rss: Vec<(f64, u64)>,
    tree: CallTree,
    /// Each node's frame name, by node id.
    names: Vec<String>,
    view: View,
    title: String,
    /// What the reports warn of this capture (sampled, aggregated, cut short...).
    warnings: Vec<String>,
}

impl Side {
    /// One capture's side: `tree` is the selection's ([`tree::build`]), `warnings` what the
    /// reports warn of it (shown on the page).
    pub fn new(
        capture: &Capture,
        analysis: &Analysis,
        selection: &Selection,
        tree: CallTree,
        split_threads: bool,
        warnings: Vec<String>,
    ) -> Side {
        let names = tree
            .nodes
            .iter()
            .map(|n| frame_name(analysis, n, split_threads))
            .collect();
        let replay = &analysis.replay;
        Side {
            path: capture.path().display().to_string(),
            command: escape(&capture.argv().join(" ")).into_owned(),
            peak: Sum {
                count: replay.peak.allocations,
                bytes: replay.peak.bytes,
            },
            peak_point: replay
                .peak
                .tick
                .map(|t| (analysis.clock.seconds(t).max(0.0), replay.peak.bytes)),
            heap: page::heap_line(analysis),
            rss: page::seconds(analysis, &replay.resident_series),
            title: views::title(analysis, selection),
            view: selection.view,
            tree,
            names,
            warnings,
        }
    }
}

/// A node's frame name, the same in both captures for the same place: its location, or for a
/// thread's node (`--threads`) the thread's name, else its order of creation (thread IDs differ
/// between runs).
fn frame_name(analysis: &Analysis, node: &Node, split_threads: bool) -> String {
    if split_threads && node.depth == 1 {
        let serial = node.threads.first().copied().unwrap_or(0);
        let name = analysis
            .threads
            .iter()
            .find(|t| t.serial == serial)
            .and_then(|t| t.name.clone());
        return match name {
            Some(n) => format!("thread {n}"),
            None => format!("thread #{serial}"),
        };
    }
    let Some(l) = &node.location else {
        return String::new();
    };
    // A caller is matched by its function, not by the line it called from: an edit that moves
    // a caller's lines (a comment added above the call) made every frame below it "new" in
    // NEW and "gone" in BASE. The lines that allocated keep theirs, as `memtrace diff` matches
    // them.
    match l.line {
        Some(line) if !node.children.is_empty() => l
            .label
            .strip_suffix(&format!(":{line}"))
            .unwrap_or(&l.label)
            .to_string(),
        _ => l.label.clone(),
    }
}

/// The differential page of `new` against `base`. The error is the one line to show.
pub fn diff_page(base: &Side, new: &Side, inverted: bool) -> Result<String, String> {
    let merged = DiffTree::build(&base.tree, &|id| base.names[id].clone(), &new.tree, &|id| {
        new.names[id].clone()
    });
    let subtitle = "Width: bytes in NEW. Colour: a frame's own bytes grew (red) or shrank (blue) against BASE. Hover: bytes before and after.";
    let flamegraph = diff_svg::render(
        diff_fold::stacks(&merged, fold::MIN_SHARE),
        &svg::Look {
            // Short: it shares its line with the picture's "Reset Zoom" and "Search".
            title: &format!("NEW against BASE, {}", view_name(new.view)),
            subtitle: Some(subtitle),
            inverted,
        },
    )
    .map_err(|e| format!("cannot draw the flamegraph: {e}"))?;
    let chart = timeline::render(&timeline::Curves {
        heap: &new.heap,
        rss: &new.rss,
        peak: new.peak_point,
        base_heap: Some(&base.heap),
    })
    .map_err(|e| format!("cannot draw the chart: {e}"))?;
    let changes = diff::locations(
        &page::own_by_location(&base.tree),
        &page::own_by_location(&new.tree),
    );
    let table = html::Table {
        heading: format!("Largest changes by location, {}", view_name(new.view)),
        id: "changes",
        columns: vec!["location", "BASE bytes", "NEW bytes", "change", "%"],
        // As `memtrace diff` says it.
        empty: "(no changes)",
        rows: changes
            .iter()
            .take(TOP_LINES)
            .map(|c| {
                vec![
                    c.location.clone(),
                    c.bytes.base.to_string(),
                    c.bytes.new.to_string(),
                    format!("{:+}", c.bytes.change),
                    c.bytes.percent_text(),
                ]
            })
            .collect(),
    };
    let view_bytes = Change::new(merged.total().before, merged.total().after);
    let heading = format!("memtrace: {} against {}", new.path, base.path);
    Ok(html::render(&html::Page {
        title: &heading,
        facts: vec![
            ("BASE", format!("{} ({})", base.path, base.command)),
            ("NEW", format!("{} ({})", new.path, new.command)),
            (
                "Peak",
                change_text(Change::new(base.peak.bytes, new.peak.bytes)),
            ),
            ("View", format!("{}: {}", view_name(new.view), new.title)),
            ("View bytes", change_text(view_bytes)),
        ]
        .into_iter()
        // The page is the one shared: what a side's figures are (sampled estimates, an
        // aggregated or cut-short capture) is said on it, not only on stderr.
        .chain(base.warnings.iter().map(|w| ("BASE warning", w.clone())))
        .chain(new.warnings.iter().map(|w| ("NEW warning", w.clone())))
        .collect(),
        chart_svg: Some(&chart),
        flamegraph_svg: &flamegraph,
        table: &table,
    }))
}

/// `1.0 MiB → 2.0 MiB (+1.0 MiB, +100.0%)`.
fn change_text(c: Change) -> String {
    format!(
        "{} → {} ({}, {})",
        human::size(c.base),
        human::size(c.new),
        human::signed_size(c.change),
        c.percent_text()
    )
}
