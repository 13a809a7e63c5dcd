//! `memtrace flamegraph --diff BASE NEW`: one self-contained HTML page with the differential
//! flamegraph of the view (NEW's frames, coloured by change against BASE, matched by symbolized
//! location), both heaps over time and the largest changes by location.

use crate::analysis::totals::Sum;
use crate::analysis::Analysis;
use crate::flamegraph::diff_fold::{self, DiffTree};
use crate::flamegraph::{diff_svg, fold, html, page, svg, timeline};
use crate::flamegraph_command::{save, view_name, FlamegraphArgs, TOP_LINES};
use crate::report::calltree::{CallTree, Node};
use crate::report::diff::{self, Change};
use crate::report::human;
use crate::report::views::{self, View, ViewOptions};
use crate::tree;
use crate::view_args;
use std::path::Path;

/// What the page needs of one capture (the capture itself is closed before the next is read).
struct Side {
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
}

fn side(path: &Path, opts: &ViewOptions) -> Result<Side, String> {
    let (capture, analysis, selection) = view_args::load_selection(path, opts)?;
    let (tree, mut warnings) = tree::build(&capture, &analysis, &selection, opts.split_threads);
    let mut all = analysis.warnings.clone();
    all.append(&mut warnings);
    view_args::warn(&all);
    let names = tree
        .nodes
        .iter()
        .map(|n| frame_name(&analysis, n, opts.split_threads))
        .collect();
    let replay = &analysis.replay;
    Ok(Side {
        path: capture.path().display().to_string(),
        command: crate::report::visible::escape(&capture.argv().join(" ")).into_owned(),
        peak: Sum {
            count: replay.peak.allocations,
            bytes: replay.peak.bytes,
        },
        peak_point: replay
            .peak
            .tick
            .map(|t| (analysis.clock.seconds(t).max(0.0), replay.peak.bytes)),
        heap: page::seconds(&analysis, &replay.heap_series),
        rss: page::seconds(&analysis, &replay.resident_series),
        title: views::title(&analysis, &selection),
        view: selection.view,
        tree,
        names,
    })
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
    node.location
        .as_ref()
        .map(|l| l.label.clone())
        .unwrap_or_default()
}

/// Writes the differential page of `args.file` (NEW) against `base`.
pub fn write(base: &Path, args: &FlamegraphArgs) -> Result<(), String> {
    let out = args
        .output
        .clone()
        .unwrap_or_else(|| args.file.with_extension("diff.html"));
    crate::output::check_not_input(&out, &[base, &args.file])?;
    let opts = args.view.options(View::Peak);
    let base = side(base, &opts)?;
    let new = side(&args.file, &opts)?;
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
            inverted: args.inverted,
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
    let html = html::render(&html::Page {
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
        ],
        chart_svg: Some(&chart),
        flamegraph_svg: &flamegraph,
        table: &table,
    });
    save(&out, &html)
}

/// `1.0 MiB → 2.0 MiB (+1.0 MiB, +100.0%)`.
fn change_text(c: Change) -> String {
    format!(
        "{} → {} ({}, {})",
        human::size(c.base),
        human::size(c.new),
        crate::diff::signed_size(c.change),
        c.percent_text()
    )
}
