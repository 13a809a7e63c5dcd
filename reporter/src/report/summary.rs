//! The summary: functions (function and file, lines together) with the bytes and allocations
//! they made themselves (own: the innermost frame) and below them (total: counted once however
//! often the function recurses), from a call tree.

use super::calltree::{CallTree, NodeId, ROOT};
use super::locations::Location;
use hashbrown::HashMap;
use serde::Serialize;

/// One function. Field names are the JSON keys.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Row {
    /// `function at file` (or the location's label without a function).
    pub location: String,
    pub function: Option<String>,
    pub file: Option<String>,
    /// With `--threads`: the thread (the label of its top-level node).
    pub thread: Option<String>,
    pub own_bytes: u64,
    pub own_allocations: u64,
    pub total_bytes: u64,
    pub total_allocations: u64,
}

/// What rows are sorted by (largest first).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortBy {
    /// Total bytes
    Total,
    /// Own bytes
    Own,
    /// Total allocations
    Allocations,
    /// Own allocations
    OwnAllocations,
}

fn key_label(l: &Location) -> String {
    match (&l.function, &l.file) {
        (Some(f), Some(file)) => format!("{f} at {file}"),
        (None, Some(file)) => file.clone(),
        _ => l.label.clone(),
    }
}

/// The rows of a tree, every function once (per thread when `split_threads`: the root's
/// children are then threads, not functions). Sorted by `sort`, ties by location.
pub fn rows(tree: &CallTree, split_threads: bool, sort: SortBy) -> Vec<Row> {
    // (thread node, label) → row.
    let mut slot: HashMap<(NodeId, String), usize> = HashMap::new();
    let mut out: Vec<Row> = Vec::new();
    // Depth-first, keeping how many times each row is on the current path.
    let mut on_path: HashMap<usize, u32> = HashMap::new();
    // (node, thread node, entering?)
    let mut todo: Vec<(NodeId, NodeId, bool)> = vec![(ROOT, ROOT, true)];
    let mut row_of: Vec<Option<usize>> = vec![None; tree.nodes.len()];
    while let Some((id, thread_node, entering)) = todo.pop() {
        let node = &tree.nodes[id];
        if !entering {
            if let Some(r) = row_of[id] {
                if let Some(n) = on_path.get_mut(&r) {
                    *n -= 1;
                }
            }
            continue;
        }
        let is_thread = split_threads && node.depth == 1;
        let thread_node = if is_thread { id } else { thread_node };
        if let (Some(loc), false) = (&node.location, is_thread) {
            let label = key_label(loc);
            let r = *slot.entry((thread_node, label.clone())).or_insert_with(|| {
                let thread = (thread_node != ROOT)
                    .then(|| tree.nodes[thread_node].location.as_ref())
                    .flatten()
                    .map(|l| l.label.clone());
                out.push(Row {
                    location: label,
                    function: loc.function.clone(),
                    file: loc.file.clone(),
                    thread,
                    own_bytes: 0,
                    own_allocations: 0,
                    total_bytes: 0,
                    total_allocations: 0,
                });
                out.len() - 1
            });
            let row = &mut out[r];
            row.own_bytes += node.own_bytes;
            row.own_allocations += node.own_allocations;
            let n = on_path.entry(r).or_insert(0);
            if *n == 0 {
                row.total_bytes += node.bytes;
                row.total_allocations += node.allocations;
            }
            *n += 1;
            row_of[id] = Some(r);
        }
        todo.push((id, thread_node, false));
        for &c in node.children.iter().rev() {
            todo.push((c, thread_node, true));
        }
    }
    out.sort_by(|a, b| {
        let k = |r: &Row| match sort {
            SortBy::Total => (r.total_bytes, r.own_bytes),
            SortBy::Own => (r.own_bytes, r.total_bytes),
            SortBy::Allocations => (r.total_allocations, r.total_bytes),
            SortBy::OwnAllocations => (r.own_allocations, r.own_bytes),
        };
        k(b).cmp(&k(a))
            .then_with(|| a.thread.cmp(&b.thread))
            .then_with(|| a.location.cmp(&b.location))
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::calltree::StackAllocations;
    use crate::report::locations::test_location as loc;

    #[test]
    fn recursion_counts_once_and_own_sums_to_the_root() {
        // main -> f -> f -> g (100), main -> f (line 2) (50), main -> h (30)
        let (m, f1, f2, g, h) = (
            loc("main", 1),
            loc("f", 1),
            loc("f", 2),
            loc("g", 1),
            loc("h", 1),
        );
        let a = [m.clone(), f1.clone(), f2.clone(), g.clone()];
        let b = [m.clone(), f2.clone()];
        let c = [m.clone(), h.clone()];
        let s = |frames, bytes| StackAllocations {
            frames,
            bytes,
            allocations: 1,
            thread: 1,
        };
        let tree = CallTree::build([s(&a[..], 100), s(&b[..], 50), s(&c[..], 30)]);
        let rows = rows(&tree, false, SortBy::Total);
        let get = |name: &str| rows.iter().find(|r| r.location == name).unwrap().clone();
        assert_eq!(rows.len(), 4);
        assert_eq!(rows[0].location, "main at a.py");
        let f = get("f at a.py");
        assert_eq!(
            (f.total_bytes, f.own_bytes, f.total_allocations),
            (150, 50, 2)
        );
        assert_eq!(get("g at a.py").own_bytes, 100);
        assert_eq!(
            rows.iter().map(|r| r.own_bytes).sum::<u64>(),
            tree.root().bytes
        );
        let by_own = super::rows(&tree, false, SortBy::Own);
        assert_eq!(by_own[0].location, "g at a.py");
    }
}
