//! The parts of the differential page taken from a capture's analysis: the own bytes by
//! location and the series of the timeline.

use crate::analysis::series::Series;
use crate::analysis::totals::Sum;
use crate::analysis::Analysis;
use crate::report::calltree::CallTree;
use crate::report::locations::Location;
use std::collections::HashMap;

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

/// The live heap over time for a chart: its series, then what was live at the end when that
/// differs from the series' last value. Each point of the series is the highest value of its
/// stretch, so frees in the last stretch (a program that frees and ends, or is killed, within
/// one coarse tick) never showed: the line ended high above "live at the end".
pub fn heap_line(analysis: &Analysis) -> Vec<(f64, u64)> {
    let mut line = seconds(analysis, &analysis.replay.heap_series);
    let end = analysis.replay.live_bytes();
    if let Some(&(t, v)) = line.last() {
        if v != end {
            line.push((t.max(analysis.duration_s()), end));
        }
    }
    line
}

/// A series in (seconds from the capture's start, bytes).
pub fn seconds(analysis: &Analysis, series: &Series) -> Vec<(f64, u64)> {
    series
        .points()
        .map(|(tick, v)| (analysis.clock.seconds(tick).max(0.0), v))
        .collect()
}
