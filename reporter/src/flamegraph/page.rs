//! The parts of the HTML report taken from a capture's analysis: the flamegraph's collapsed
//! lines, the top lines and the series of the timeline.

use super::fold;
use super::html::TopLine;
use crate::analysis::series::Series;
use crate::analysis::Analysis;
use crate::report::calltree::{CallTree, NodeId};
use std::collections::HashMap;

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

/// A series in (seconds from the capture's start, bytes).
pub fn seconds(analysis: &Analysis, series: &Series) -> Vec<(f64, u64)> {
    series
        .points()
        .map(|(tick, v)| (analysis.clock.seconds(tick).max(0.0), v))
        .collect()
}
