//! The flamegraph page of a family (`memtrace flamegraph` without `--pid`): the family's tree,
//! each process its outermost frame, and the sum of the processes' live heaps over time with
//! the combined peak marked. (Each process's own series is in [`FamilyTree::process_heaps`],
//! for a chart that stacks them.)

use super::view::FamilyTree;
use crate::flamegraph::html::Table;
use crate::flamegraph::report::{view_name, TOP_LINES};
use crate::flamegraph::{fold, html, svg, timeline};
use crate::report::calltree::{CallTree, NodeId};
use crate::report::human;
use crate::report::views::View;
use crate::report::visible::escape;
use std::collections::HashMap;
use std::path::Path;

/// The page of the family of `root`, whose tree `f` is of `view`. The error is the line to show.
pub fn html_page(
    root: &Path,
    f: &FamilyTree,
    view: View,
    inverted: bool,
) -> Result<String, String> {
    let flamegraph = svg::render(
        &folded(&f.tree),
        &svg::Look {
            title: &f.title,
            subtitle: None,
            inverted,
        },
    )
    .map_err(|e| format!("cannot draw the flamegraph: {e}"))?;
    let chart = timeline::render(&timeline::Curves {
        heap: &f.heap,
        rss: &[],
        peak: f.peak,
        base_heap: None,
    })
    .map_err(|e| format!("cannot draw the chart: {e}"))?;
    let top = top_lines(&f.tree, TOP_LINES);
    let heading = format!("memtrace: {}", root.display());
    let command = f
        .family
        .processes
        .first()
        .map(|p| p.command.clone())
        .unwrap_or_default();
    let combined = f.peak.map_or(0, |p| p.1);
    Ok(html::render(&html::Page {
        title: &heading,
        facts: vec![
            ("Command", escape(&command).into_owned()),
            ("Processes", human::count(f.family.processes.len() as u64)),
            (
                "Combined peak",
                format!(
                    "{} ({} bytes)",
                    human::size(combined),
                    human::count(combined)
                ),
            ),
            ("View", format!("{}: {}", view_name(view), escape(&f.title))),
        ],
        chart_svg: Some(&chart),
        flamegraph_svg: &flamegraph,
        table: &top_lines_table(&top),
    }))
}

/// A row of the top lines table.
struct TopLine {
    location: String,
    bytes: u64,
    allocations: u64,
}

/// The tree as bounded collapsed lines `stack bytes` (small frames merged into "other").
fn folded(tree: &CallTree) -> Vec<String> {
    let name = |id: NodeId| {
        tree.nodes[id]
            .location
            .as_ref()
            .map(|l| l.label.clone())
            .unwrap_or_default()
    };
    fold::lines(tree, fold::MIN_SHARE, &name)
        .into_iter()
        .map(|(stack, bytes)| format!("{stack} {bytes}"))
        .collect()
}

/// The `n` locations with the most own bytes in the tree (a location's nodes together).
fn top_lines(tree: &CallTree, n: usize) -> Vec<TopLine> {
    let mut by_label: HashMap<&str, (u64, u64)> = HashMap::new();
    for node in &tree.nodes {
        if let Some(l) = &node.location {
            if node.own_bytes > 0 || node.own_allocations > 0 {
                let e = by_label.entry(l.label.as_str()).or_default();
                e.0 += node.own_bytes;
                e.1 += node.own_allocations;
            }
        }
    }
    let mut rows: Vec<TopLine> = by_label
        .into_iter()
        .map(|(location, (bytes, allocations))| TopLine {
            location: location.to_string(),
            bytes,
            allocations,
        })
        .collect();
    rows.sort_by(|a, b| {
        b.bytes
            .cmp(&a.bytes)
            .then_with(|| a.location.cmp(&b.location))
    });
    rows.truncate(n);
    rows
}

/// The top lines as the page's table.
fn top_lines_table(rows: &[TopLine]) -> Table {
    Table {
        heading: "Top lines".to_string(),
        id: "top-lines",
        columns: vec!["location", "bytes", "allocations"],
        rows: rows
            .iter()
            .map(|r| {
                vec![
                    r.location.clone(),
                    r.bytes.to_string(),
                    r.allocations.to_string(),
                ]
            })
            .collect(),
    }
}
