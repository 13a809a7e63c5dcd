//! The call tree of a set of allocations (for example the memory live at the peak): one node per
//! distinct path of source locations from the outermost frame inwards. It is the model shared by
//! the text tree, the terminal UI, the summary and the exports.

use super::locations::Location;
use super::path_tree::PathTree;

/// A node's index in [`CallTree::nodes`]; the root ([`ROOT`]) has no location and the total
/// of every allocation in the tree.
pub use super::path_tree::{NodeId, ROOT};

/// One node: a location reached through its parent's path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// None for the root only.
    pub location: Option<Location>,
    pub parent: Option<NodeId>,
    /// Sorted by bytes, largest first (ties: more allocations, then label).
    pub children: Vec<NodeId>,
    /// Bytes and allocations of this node and everything below it.
    pub bytes: u64,
    pub allocations: u64,
    /// Bytes and allocations whose innermost frame is this node.
    pub own_bytes: u64,
    pub own_allocations: u64,
    /// Thread serials that allocated below this node, ascending, without repeats.
    pub threads: Vec<u32>,
    /// Depth from the root (the root is 0).
    pub depth: usize,
}

/// A call tree: nodes in creation order, the root first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallTree {
    pub nodes: Vec<Node>,
}

/// Allocations of one stack, to add to a tree.
#[derive(Clone, Debug)]
pub struct StackAllocations<'a> {
    /// The stack's locations, outermost first.
    pub frames: &'a [Location],
    pub bytes: u64,
    pub allocations: u64,
    pub thread: u32,
}

impl Default for CallTree {
    fn default() -> Self {
        CallTree::new()
    }
}

impl CallTree {
    /// An empty tree: only the root.
    pub fn new() -> CallTree {
        CallTree {
            nodes: vec![Node {
                location: None,
                parent: None,
                children: Vec::new(),
                bytes: 0,
                allocations: 0,
                own_bytes: 0,
                own_allocations: 0,
                threads: Vec::new(),
                depth: 0,
            }],
        }
    }

    /// Builds a tree from stacks; children sorted by size.
    pub fn build<'a>(stacks: impl IntoIterator<Item = StackAllocations<'a>>) -> CallTree {
        let mut builder = Builder::default();
        for s in stacks {
            builder.add(&s);
        }
        builder.finish()
    }

    pub fn root(&self) -> &Node {
        &self.nodes[ROOT]
    }

    /// The path of nodes from the root's child down to `id`.
    pub fn path_to(&self, id: NodeId) -> Vec<NodeId> {
        let mut path = Vec::new();
        let mut at = Some(id);
        while let Some(n) = at {
            if n == ROOT {
                break;
            }
            path.push(n);
            at = self.nodes[n].parent;
        }
        path.reverse();
        path
    }

    /// The biggest path: from the root, each time the largest child, down to a leaf.
    pub fn biggest_path(&self) -> Vec<NodeId> {
        let mut path = Vec::new();
        let mut at = ROOT;
        while let Some(&first) = self.nodes[at].children.first() {
            path.push(first);
            at = first;
        }
        path
    }
}

/// Adds stacks one by one, then sorts.
#[derive(Default)]
pub struct Builder {
    paths: PathTree,
    /// Each node's figures, by node id (nodes no stack reached yet may be missing).
    sums: Vec<Sums>,
}

/// A node's figures while the tree is built.
#[derive(Clone, Default)]
struct Sums {
    bytes: u64,
    allocations: u64,
    own_bytes: u64,
    own_allocations: u64,
    threads: Vec<u32>,
}

impl Builder {
    pub fn add(&mut self, s: &StackAllocations<'_>) {
        let node = self.paths.descend(ROOT, s.frames);
        self.add_at(node, s.bytes, s.allocations, s.thread);
    }

    /// The node of `at`'s path followed by `location`, made if new: a stack's path may be
    /// built a location at a time (each stack on its parent's node) and its figures added
    /// with [`Builder::add_at`]. A node made this way should get figures, or it stays in the
    /// tree with none.
    pub fn child(&mut self, at: NodeId, location: &Location) -> NodeId {
        self.paths.child(at, location)
    }

    /// Adds allocations whose innermost location is `node`'s.
    pub fn add_at(&mut self, node: NodeId, bytes: u64, allocations: u64, thread: u32) {
        if self.sums.len() < self.paths.len() {
            self.sums.resize(self.paths.len(), Sums::default());
        }
        let mut at = Some(node);
        while let Some(id) = at {
            let n = &mut self.sums[id];
            n.bytes += bytes;
            n.allocations += allocations;
            if n.threads.last() != Some(&thread) {
                n.threads.push(thread);
            }
            at = self.paths.parent(id);
        }
        self.sums[node].own_bytes += bytes;
        self.sums[node].own_allocations += allocations;
    }

    pub fn finish(self) -> CallTree {
        let Builder { paths, mut sums } = self;
        sums.resize(paths.len(), Sums::default());
        let mut tree = CallTree { nodes: Vec::new() };
        for (id, ((parent, location), s)) in paths.into_nodes().into_iter().zip(sums).enumerate() {
            let parent = (id != ROOT).then_some(parent);
            let depth = parent.map_or(0, |p| tree.nodes[p].depth + 1);
            if let Some(p) = parent {
                tree.nodes[p].children.push(id);
            }
            tree.nodes.push(Node {
                location,
                parent,
                children: Vec::new(),
                bytes: s.bytes,
                allocations: s.allocations,
                own_bytes: s.own_bytes,
                own_allocations: s.own_allocations,
                threads: s.threads,
                depth,
            });
        }
        let order: Vec<(u64, u64, String)> = tree
            .nodes
            .iter()
            .map(|n| {
                let label = n.location.as_ref().map(|l| l.label.clone());
                (n.bytes, n.allocations, label.unwrap_or_default())
            })
            .collect();
        for node in &mut tree.nodes {
            node.children.sort_by(|&a, &b| {
                let (ab, ac, al) = &order[a];
                let (bb, bc, bl) = &order[b];
                (bb, bc).cmp(&(ab, ac)).then_with(|| al.cmp(bl))
            });
            node.threads.sort_unstable();
            node.threads.dedup();
        }
        tree
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::locations::test_location as loc;

    #[test]
    fn sums_paths_and_sorts_children_by_bytes() {
        let main = loc("<module>", 10);
        let g = loc("g", 6);
        let f = loc("f", 2);
        let h = loc("h", 3);
        let a = [main.clone(), g.clone(), f.clone()];
        let b = [main.clone(), h.clone()];
        let c = [main.clone()];
        let tree = CallTree::build([
            StackAllocations {
                frames: &a,
                bytes: 100,
                allocations: 1,
                thread: 1,
            },
            StackAllocations {
                frames: &b,
                bytes: 300,
                allocations: 2,
                thread: 2,
            },
            StackAllocations {
                frames: &a,
                bytes: 50,
                allocations: 1,
                thread: 1,
            },
            StackAllocations {
                frames: &c,
                bytes: 7,
                allocations: 1,
                thread: 1,
            },
        ]);
        let root = tree.root();
        assert_eq!((root.bytes, root.allocations), (457, 5));
        assert_eq!(root.threads, vec![1, 2]);
        assert_eq!(root.children.len(), 1);
        let m = &tree.nodes[root.children[0]];
        assert_eq!(m.location.as_ref(), Some(&main));
        assert_eq!((m.bytes, m.own_bytes, m.own_allocations), (457, 7, 1));
        let kids: Vec<_> = m.children.iter().map(|&k| &tree.nodes[k]).collect();
        assert_eq!(kids[0].location.as_ref(), Some(&h));
        assert_eq!(kids[0].bytes, 300);
        assert_eq!(kids[1].location.as_ref(), Some(&g));
        assert_eq!(
            (kids[1].bytes, kids[1].allocations, kids[1].own_bytes),
            (150, 2, 0)
        );
        let path = tree.biggest_path();
        assert_eq!(path.len(), 2);
        assert_eq!(tree.nodes[path[1]].location.as_ref(), Some(&h));
        assert_eq!(tree.path_to(path[1]), path);
        assert_eq!(tree.nodes[path[1]].depth, 2);
    }

    #[test]
    fn an_empty_tree_is_a_root() {
        let tree = CallTree::build([]);
        assert_eq!(tree.nodes.len(), 1);
        assert!(tree.biggest_path().is_empty());
    }
}
