//! Distinct paths of locations from a root, each stored once as a node on its parent: the
//! shape shared by the call tree and the export's sites. A path is as long as its stack is
//! deep, so storing each stack's path whole would take memory of its depth times the number of
//! stacks (a recursion 2,000 deep allocating at every level: millions of locations); a node
//! per distinct path keeps it to the number of stacks.

use super::locations::Location;
use hashbrown::{Equivalent, HashMap};

/// A node's index in a [`PathTree`]; the root (the empty path) is [`ROOT`].
pub type NodeId = usize;

/// The root: the empty path.
pub const ROOT: NodeId = 0;

/// Paths of locations, each distinct path one node.
#[derive(Clone, Debug)]
pub struct PathTree {
    /// Each node's parent and location; the root's are (ROOT, None). A parent's index is
    /// always lower than its children's.
    nodes: Vec<(NodeId, Option<Location>)>,
    /// (parent, location) → node.
    index: HashMap<(NodeId, Location), NodeId>,
}

/// A `(parent, location)` key borrowed, to look a child up without cloning its location; it
/// hashes as the owned tuple does (a tuple hashes its fields in order).
#[derive(Hash)]
struct ChildKey<'a>(NodeId, &'a Location);

impl Equivalent<(NodeId, Location)> for ChildKey<'_> {
    fn equivalent(&self, key: &(NodeId, Location)) -> bool {
        self.0 == key.0 && *self.1 == key.1
    }
}

impl Default for PathTree {
    fn default() -> Self {
        PathTree::new()
    }
}

impl PathTree {
    /// Only the root.
    pub fn new() -> PathTree {
        PathTree {
            nodes: vec![(ROOT, None)],
            index: HashMap::new(),
        }
    }

    /// The number of nodes, the root included.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether only the root is there.
    pub fn is_empty(&self) -> bool {
        self.nodes.len() == 1
    }

    /// The node of `at`'s path followed by `location`, made if new.
    pub fn child(&mut self, at: NodeId, location: &Location) -> NodeId {
        if let Some(&id) = self.index.get(&ChildKey(at, location)) {
            return id;
        }
        let id = self.nodes.len();
        self.nodes.push((at, Some(location.clone())));
        self.index.insert((at, location.clone()), id);
        id
    }

    /// The node of `at`'s path followed by `locations` (outermost first).
    pub fn descend(&mut self, at: NodeId, locations: &[Location]) -> NodeId {
        locations.iter().fold(at, |node, l| self.child(node, l))
    }

    /// A node's parent (None for the root).
    pub fn parent(&self, id: NodeId) -> Option<NodeId> {
        (id != ROOT).then(|| self.nodes[id].0)
    }

    /// A node's last location (None for the root).
    pub fn location(&self, id: NodeId) -> Option<&Location> {
        self.nodes[id].1.as_ref()
    }

    /// A node's nodes from the root's child down to it (empty for the root).
    pub fn node_path(&self, id: NodeId) -> Vec<NodeId> {
        let mut path = Vec::new();
        let mut at = id;
        while at != ROOT {
            path.push(at);
            at = self.nodes[at].0;
        }
        path.reverse();
        path
    }

    /// A node's locations, outermost first.
    pub fn locations(&self, id: NodeId) -> Vec<&Location> {
        self.node_path(id)
            .into_iter()
            .filter_map(|n| self.location(n))
            .collect()
    }

    /// Adds `other`'s paths under `at`; returns where each of `other`'s nodes went.
    pub fn graft(&mut self, at: NodeId, other: &PathTree) -> Vec<NodeId> {
        let mut moved = Vec::with_capacity(other.len());
        moved.push(at);
        for (parent, location) in other.nodes.iter().skip(1) {
            let under = moved[*parent];
            let id = match location {
                Some(l) => self.child(under, l),
                None => under,
            };
            moved.push(id);
        }
        moved
    }

    /// Each node's (parent, location), in index order (parents first).
    pub fn into_nodes(self) -> Vec<(NodeId, Option<Location>)> {
        self.nodes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::locations::test_location as loc;

    #[test]
    fn equal_paths_share_their_nodes() {
        let (main, f, g) = (loc("<module>", 1), loc("f", 2), loc("g", 3));
        let mut t = PathTree::new();
        let a = t.descend(ROOT, &[main.clone(), f.clone()]);
        let b = t.descend(ROOT, &[main.clone(), g.clone()]);
        let again = t.descend(ROOT, &[main.clone(), f.clone()]);
        assert_eq!(a, again);
        assert_ne!(a, b);
        assert_eq!(t.len(), 4, "root, <module>, f, g");
        assert_eq!(t.locations(b), [&main, &g]);
        assert_eq!(t.parent(a), t.parent(b));
        assert!(t.locations(ROOT).is_empty());
    }

    #[test]
    fn a_graft_keeps_the_paths_under_its_node() {
        let (p, main, f) = (loc("process 1", 0), loc("<module>", 1), loc("f", 2));
        let mut one = PathTree::new();
        let leaf = one.descend(ROOT, &[main.clone(), f.clone()]);
        let mut all = PathTree::new();
        let at = all.child(ROOT, &p);
        let moved = all.graft(at, &one);
        assert_eq!(all.locations(moved[leaf]), [&p, &main, &f]);
        assert_eq!(moved[ROOT], at);
    }
}
