//! The call tree as JSON: nested nodes, cut at a depth and a number of children per node when
//! asked.

use super::calltree::{CallTree, NodeId};
use crate::analysis::Analysis;
use serde::Serialize;

/// One node. Field names are the JSON keys.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct JsonNode {
    /// `function at file:line`; null for the root.
    pub location: Option<String>,
    pub function: Option<String>,
    pub file: Option<String>,
    pub line: Option<u64>,
    pub bytes: u64,
    /// Percent of the root's bytes.
    pub share: f64,
    pub allocations: u64,
    pub own_bytes: u64,
    pub own_allocations: u64,
    /// TIDs of the threads that allocated below.
    pub threads: Vec<u32>,
    pub children: Vec<JsonNode>,
    /// Children left out (past `--biggest` or `--depth`): how many, their bytes and allocations.
    pub more: Option<More>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct More {
    pub nodes: usize,
    pub bytes: u64,
    pub allocations: u64,
}

/// The tree from `id` down, `depth` levels below the root at most, `biggest` children per node.
pub fn node(
    tree: &CallTree,
    analysis: &Analysis,
    id: NodeId,
    depth: usize,
    biggest: usize,
) -> JsonNode {
    let tid = |serial: u32| {
        analysis
            .threads
            .iter()
            .find(|t| t.serial == serial)
            .map_or(serial, |t| t.tid)
    };
    node_with(tree, &tid, id, depth, biggest)
}

/// [`node`], thread serials shown as `tid` says (a family's tree: each process has its own).
pub fn node_with(
    tree: &CallTree,
    tid: &dyn Fn(u32) -> u32,
    id: NodeId,
    depth: usize,
    biggest: usize,
) -> JsonNode {
    let n = &tree.nodes[id];
    let total = tree.root().bytes;
    let (shown, rest): (&[NodeId], &[NodeId]) = if n.depth >= depth {
        (&[], &n.children)
    } else {
        n.children.split_at(n.children.len().min(biggest))
    };
    let more = (!rest.is_empty()).then(|| More {
        nodes: rest.len(),
        bytes: rest.iter().map(|&c| tree.nodes[c].bytes).sum(),
        allocations: rest.iter().map(|&c| tree.nodes[c].allocations).sum(),
    });
    let loc = n.location.as_ref();
    JsonNode {
        location: loc.map(|l| l.label.clone()),
        function: loc.and_then(|l| l.function.clone()),
        file: loc.and_then(|l| l.file.clone()),
        line: loc.and_then(|l| l.line),
        bytes: n.bytes,
        share: if total == 0 {
            0.0
        } else {
            100.0 * n.bytes as f64 / total as f64
        },
        allocations: n.allocations,
        own_bytes: n.own_bytes,
        own_allocations: n.own_allocations,
        threads: n.threads.iter().map(|&serial| tid(serial)).collect(),
        children: shown
            .iter()
            .map(|&c| node_with(tree, tid, c, depth, biggest))
            .collect(),
        more,
    }
}
