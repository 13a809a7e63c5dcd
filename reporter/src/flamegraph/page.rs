//! The parts of the HTML report taken from a capture's analysis: the flamegraph's collapsed
//! lines, the top lines and the series of the timeline.

use super::fold;
use super::html::Table;
use crate::analysis::series::Series;
use crate::analysis::totals::Sum;
use crate::analysis::Analysis;
use crate::report::calltree::{CallTree, NodeId};
use crate::report::locations::Location;
use std::collections::HashMap;

/// A row of the top lines table.
pub struct TopLine {
    pub location: String,
    pub bytes: u64,
    pub allocations: u64,
}

/// The tree as bounded collapsed lines `stack bytes` (small frames merged into "other").
pub fn folded(tree: &CallTree) -> Vec<String> {
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
pub fn top_lines(tree: &CallTree, n: usize) -> Vec<TopLine> {
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
pub fn top_lines_table(rows: &[TopLine]) -> Table {
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

/// The own bytes and allocations of each location in the tree (its nodes together): what
/// `memtrace diff` compares.
pub fn own_by_location(tree: &CallTree) -> HashMap<Location, Sum> {
    let mut m: HashMap<Location, Sum> = HashMap::new();
    for node in &tree.nodes {
        if let Some(l) = &node.location {
            if node.own_bytes > 0 || node.own_allocations > 0 {
                m.entry(l.clone()).or_default().merge(Sum {
                    count: node.own_allocations,
                    bytes: node.own_bytes,
                });
            }
        }
    }
    m
}

/// A series in (seconds from the capture's start, bytes).
pub fn seconds(analysis: &Analysis, series: &Series) -> Vec<(f64, u64)> {
    series
        .points()
        .map(|(tick, v)| (analysis.clock.seconds(tick).max(0.0), v))
        .collect()
}
