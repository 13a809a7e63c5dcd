//! Two call trees, BASE and NEW, as one differential tree (nodes matched by their frame names,
//! that is by symbolized location, never by address) and as inferno's differential collapsed
//! stacks with their bytes before and after, bounded in size like the single flamegraph's:
//! below each node, the children under a share of the larger root are merged into one "other".

use super::fold::{clean, OTHER};
use crate::report::calltree::{CallTree, NodeId, ROOT};
use std::collections::HashMap;

/// Bytes in BASE and in NEW.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pair {
    pub before: u64,
    pub after: u64,
}

impl Pair {
    pub fn add(&mut self, other: Pair) {
        self.before += other.before;
        self.after += other.after;
    }

    fn larger(&self) -> u64 {
        self.before.max(self.after)
    }
}

/// One frame of the differential tree.
#[derive(Clone, Debug)]
struct Node {
    name: String,
    children: Vec<usize>,
    /// The bytes whose innermost frame is this one.
    own: Pair,
    /// The bytes of this frame and everything below it.
    total: Pair,
}

/// BASE and NEW merged: one node per path of frame names.
pub struct DiffTree {
    nodes: Vec<Node>,
}

/// Which side a call tree is.
#[derive(Clone, Copy)]
enum Side {
    Before,
    After,
}

impl DiffTree {
    /// Merges two call trees; `base_name` and `new_name` give each node's frame name (siblings
    /// of the same name are merged).
    pub fn build(
        base: &CallTree,
        base_name: &dyn Fn(NodeId) -> String,
        new: &CallTree,
        new_name: &dyn Fn(NodeId) -> String,
    ) -> DiffTree {
        let mut t = DiffTree {
            nodes: vec![Node {
                name: String::new(),
                children: Vec::new(),
                own: Pair::default(),
                total: Pair::default(),
            }],
        };
        let mut index: HashMap<(usize, String), usize> = HashMap::new();
        t.add(base, base_name, Side::Before, &mut index);
        t.add(new, new_name, Side::After, &mut index);
        t.sum(0);
        for i in 0..t.nodes.len() {
            let mut children = std::mem::take(&mut t.nodes[i].children);
            children.sort_by(|&a, &b| t.nodes[a].name.cmp(&t.nodes[b].name));
            t.nodes[i].children = children;
        }
        t
    }

    fn add(
        &mut self,
        tree: &CallTree,
        name: &dyn Fn(NodeId) -> String,
        side: Side,
        index: &mut HashMap<(usize, String), usize>,
    ) {
        // (node of `tree`, its node here), depth first.
        let mut todo = vec![(ROOT, 0usize)];
        while let Some((id, at)) = todo.pop() {
            let own = tree.nodes[id].own_bytes;
            match side {
                Side::Before => self.nodes[at].own.before += own,
                Side::After => self.nodes[at].own.after += own,
            }
            for &child in &tree.nodes[id].children {
                let key = (at, clean(&name(child)));
                let next = match index.get(&key) {
                    Some(&n) => n,
                    None => {
                        let n = self.nodes.len();
                        self.nodes.push(Node {
                            name: key.1.clone(),
                            children: Vec::new(),
                            own: Pair::default(),
                            total: Pair::default(),
                        });
                        self.nodes[at].children.push(n);
                        index.insert(key, n);
                        n
                    }
                };
                todo.push((child, next));
            }
        }
    }

    /// Fills in the totals below `id` (iteratively: stacks can be deep).
    fn sum(&mut self, id: usize) {
        let mut order = vec![id];
        let mut i = 0;
        while i < order.len() {
            let children = self.nodes[order[i]].children.clone();
            order.extend(children);
            i += 1;
        }
        for &n in order.iter().rev() {
            let mut total = self.nodes[n].own;
            for &c in &self.nodes[n].children {
                total.add(self.nodes[c].total);
            }
            self.nodes[n].total = total;
        }
    }

    /// The bytes of the whole tree in BASE and NEW.
    pub fn total(&self) -> Pair {
        self.nodes[0].total
    }
}

/// The tree as bounded differential stacks `(outer;...;inner, own bytes before and after)`:
/// children whose larger side is under `min_share` of the larger root are merged into one
/// "other" frame below their parent. In no particular order.
pub fn stacks(tree: &DiffTree, min_share: f64) -> Vec<(String, Pair)> {
    let threshold = (tree.total().larger() as f64 * min_share).ceil() as u64;
    let mut out = Vec::new();
    // (node, its path), depth first, iteratively: stacks can be deep.
    let mut todo: Vec<(usize, String)> = vec![(0, String::new())];
    while let Some((id, path)) = todo.pop() {
        let node = &tree.nodes[id];
        if id != 0 && node.own != Pair::default() {
            out.push((path.clone(), node.own));
        }
        let mut other = Pair::default();
        for &c in &node.children {
            let child = &tree.nodes[c];
            if child.total.larger() < threshold {
                other.add(child.total);
            } else {
                todo.push((c, join(&path, &child.name)));
            }
        }
        if other != Pair::default() {
            out.push((join(&path, OTHER), other));
        }
    }
    out
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path};{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::calltree::StackAllocations;
    use crate::report::locations::test_location as loc;
    use crate::report::locations::Location;

    fn tree(stacks: &[(&[Location], u64)]) -> CallTree {
        CallTree::build(stacks.iter().map(|(frames, bytes)| StackAllocations {
            frames,
            bytes: *bytes,
            allocations: 1,
            thread: 1,
        }))
    }

    fn label(t: &CallTree) -> impl Fn(NodeId) -> String + '_ {
        |id| {
            t.nodes[id]
                .location
                .as_ref()
                .map(|l| l.label.clone())
                .unwrap_or_default()
        }
    }

    #[test]
    fn frames_match_by_name_and_carry_both_sides() {
        let (m, f, g, h) = (loc("main", 1), loc("f", 2), loc("g", 3), loc("h", 4));
        let base = tree(&[
            (&[m.clone(), f.clone()], 1_000),
            (&[m.clone(), g.clone()], 500),
            (&[m.clone(), h.clone()], 300),
        ]);
        // NEW: f doubles, g stays, h is gone, a tiny frame comes and main allocates itself.
        let tiny = loc("tiny", 9);
        let new = tree(&[
            (&[m.clone(), f.clone()], 2_000),
            (&[m.clone(), g.clone()], 500),
            (&[m.clone(), tiny.clone()], 1),
            (std::slice::from_ref(&m), 100),
        ]);
        let d = DiffTree::build(&base, &label(&base), &new, &label(&new));
        assert_eq!(
            d.total(),
            Pair {
                before: 1_800,
                after: 2_601
            }
        );
        let mut got = stacks(&d, 0.001);
        got.sort();
        let p = |before, after| Pair { before, after };
        assert_eq!(
            got,
            vec![
                ("main at a.py:1".to_string(), p(0, 100)),
                ("main at a.py:1;f at a.py:2".to_string(), p(1_000, 2_000)),
                ("main at a.py:1;g at a.py:3".to_string(), p(500, 500)),
                // Gone in NEW, but large in BASE: kept.
                ("main at a.py:1;h at a.py:4".to_string(), p(300, 0)),
                // Under 0.1% of the larger root on both sides.
                (format!("main at a.py:1;{OTHER}"), p(0, 1)),
            ]
        );
        let sum = got.iter().fold(Pair::default(), |mut s, (_, p)| {
            s.add(*p);
            s
        });
        assert_eq!(sum, d.total());
    }
}
