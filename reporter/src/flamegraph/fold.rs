//! A call tree as collapsed-stack lines for the flamegraph, bounded in size: below each node,
//! the children smaller than a share of the whole tree are merged into one "other" frame, so
//! that the picture stays a few MB whatever the capture.

use crate::report::calltree::{CallTree, NodeId, ROOT};

/// The smallest share of the tree a frame keeps its own box at (0.1%).
pub const MIN_SHARE: f64 = 0.001;

/// The name of the frame that gathers small children.
pub const OTHER: &str = "other (small frames)";

/// One collapsed line per node with own bytes (and per "other" group): `outer;...;inner` and
/// the bytes. `name` gives a node's frame name.
pub fn lines(
    tree: &CallTree,
    min_share: f64,
    name: &dyn Fn(NodeId) -> String,
) -> Vec<(String, u64)> {
    let threshold = (tree.root().bytes as f64 * min_share).ceil() as u64;
    let mut out = Vec::new();
    let mut path: Vec<String> = Vec::new();
    walk(tree, ROOT, threshold, name, &mut path, &mut out);
    out
}

fn walk(
    tree: &CallTree,
    id: NodeId,
    threshold: u64,
    name: &dyn Fn(NodeId) -> String,
    path: &mut Vec<String>,
    out: &mut Vec<(String, u64)>,
) {
    let node = &tree.nodes[id];
    if id != ROOT {
        path.push(clean(&name(id)));
        if node.own_bytes > 0 {
            out.push((path.join(";"), node.own_bytes));
        }
    }
    let mut other = 0u64;
    for &child in &node.children {
        if tree.nodes[child].bytes < threshold {
            other += tree.nodes[child].bytes;
        } else {
            walk(tree, child, threshold, name, path, out);
        }
    }
    if other > 0 {
        path.push(OTHER.to_string());
        out.push((path.join(";"), other));
        path.pop();
    }
    if id != ROOT {
        path.pop();
    }
}

/// A frame name without the format's delimiters, its control characters made visible.
pub fn clean(name: &str) -> String {
    let name: String = name
        .chars()
        .map(|c| match c {
            ';' => ':',
            // Line breaks of every reader (Python's splitlines takes the two separators).
            '\n' | '\r' | '\u{2028}' | '\u{2029}' => ' ',
            c => c,
        })
        .collect();
    crate::report::visible::escape(&name).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::calltree::StackAllocations;
    use crate::report::locations::Location;

    fn loc(f: &str) -> Location {
        Location {
            function: Some(f.to_string()),
            file: Some("a.py".to_string()),
            line: Some(1),
            label: f.to_string(),
        }
    }

    #[test]
    fn names_keep_one_line_for_every_reader() {
        let c = clean("a;b\nc\u{2028}d\u{2029}e\u{85}f\u{b}g");
        assert!(
            !c.contains([';', '\n', '\r', '\u{2028}', '\u{2029}', '\u{85}', '\u{b}']),
            "{c}"
        );
        assert!(c.starts_with("a:b c d e"), "{c}");
    }

    #[test]
    fn small_children_are_merged_into_other() {
        let (m, big, tiny1, tiny2) = (loc("main"), loc("big"), loc("t;1"), loc("t2"));
        let a = [m.clone(), big.clone()];
        let b = [m.clone(), tiny1];
        let c = [m.clone(), tiny2];
        let d = [m.clone()];
        let tree = CallTree::build([
            StackAllocations {
                frames: &a,
                bytes: 9_000,
                allocations: 1,
                thread: 1,
            },
            StackAllocations {
                frames: &b,
                bytes: 4,
                allocations: 1,
                thread: 1,
            },
            StackAllocations {
                frames: &c,
                bytes: 5,
                allocations: 1,
                thread: 1,
            },
            StackAllocations {
                frames: &d,
                bytes: 991,
                allocations: 1,
                thread: 1,
            },
        ]);
        let name = |id: NodeId| {
            tree.nodes[id]
                .location
                .as_ref()
                .map(|l| l.label.clone())
                .unwrap_or_default()
        };
        let lines = lines(&tree, MIN_SHARE, &name);
        assert_eq!(
            lines,
            vec![
                ("main".to_string(), 991),
                ("main;big".to_string(), 9_000),
                (format!("main;{OTHER}"), 9),
            ]
        );
        let total: u64 = lines.iter().map(|l| l.1).sum();
        assert_eq!(total, tree.root().bytes);
        // Without a floor every frame keeps its box (the delimiter replaced).
        let all = super::lines(&tree, 0.0, &name);
        assert!(all.contains(&("main;t:1".to_string(), 4)));
    }
}
