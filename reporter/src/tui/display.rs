//! The tree the UI shows: the call tree as it is, or with some frames (import machinery) left out,
//! their children shown in their place and merged with siblings of the same location. It keeps
//! the mapping both ways so that a selection and the expanded nodes survive switching views.

use crate::report::calltree::{CallTree, Node, NodeId, ROOT};
use crate::report::locations::Location;
use hashbrown::HashMap;

/// A displayed tree and how its nodes relate to the original tree's.
pub struct Display {
    pub tree: CallTree,
    /// For each displayed node, the first original node merged into it.
    origin: Vec<NodeId>,
    /// For each original node, the displayed node holding it: itself, or for a left-out frame its
    /// nearest shown ancestor.
    shown_as: Vec<NodeId>,
    /// Original nodes left out of the display.
    left_out: Vec<bool>,
    /// Displayed nodes in pre-order (the order of a fully expanded tree), and each one's place.
    preorder: Vec<NodeId>,
    place: Vec<usize>,
}

impl Display {
    /// The tree as it is.
    pub fn all(tree: &CallTree) -> Display {
        let n = tree.nodes.len();
        let ids: Vec<NodeId> = (0..n).collect();
        Display::finish(tree.clone(), ids.clone(), ids, vec![false; n])
    }

    /// The tree without the frames `hide` says to leave out.
    pub fn without(tree: &CallTree, hide: impl Fn(&Location) -> bool) -> Display {
        let n = tree.nodes.len();
        let mut nodes = vec![Node {
            children: Vec::new(),
            ..tree.nodes[ROOT].clone()
        }];
        let mut origin = vec![ROOT];
        let mut shown_as = vec![ROOT; n];
        let mut left_out = vec![false; n];
        // (displayed parent, location) → displayed child, to merge siblings that meet.
        let mut index: HashMap<(NodeId, &Location), NodeId> = HashMap::new();
        // Iterative: Python stacks can be deeper than a thread's stack allows recursing.
        let mut todo: Vec<(NodeId, NodeId)> = tree.nodes[ROOT]
            .children
            .iter()
            .rev()
            .map(|&c| (c, ROOT))
            .collect();
        while let Some((o, parent)) = todo.pop() {
            let node = &tree.nodes[o];
            let at = match &node.location {
                Some(loc) if !hide(loc) => {
                    let d = *index.entry((parent, loc)).or_insert_with(|| {
                        let d = nodes.len();
                        nodes.push(Node {
                            location: Some(loc.clone()),
                            parent: Some(parent),
                            children: Vec::new(),
                            bytes: 0,
                            allocations: 0,
                            own_bytes: 0,
                            own_allocations: 0,
                            threads: Vec::new(),
                            depth: nodes[parent].depth + 1,
                        });
                        nodes[parent].children.push(d);
                        origin.push(o);
                        d
                    });
                    let m = &mut nodes[d];
                    m.bytes += node.bytes;
                    m.allocations += node.allocations;
                    m.own_bytes += node.own_bytes;
                    m.own_allocations += node.own_allocations;
                    m.threads.extend_from_slice(&node.threads);
                    d
                }
                // A left-out frame's own allocations become its shown parent's.
                _ => {
                    left_out[o] = true;
                    nodes[parent].own_bytes += node.own_bytes;
                    nodes[parent].own_allocations += node.own_allocations;
                    parent
                }
            };
            shown_as[o] = at;
            todo.extend(node.children.iter().rev().map(|&c| (c, at)));
        }
        let mut shown = CallTree { nodes };
        sort(&mut shown);
        Display::finish(shown, origin, shown_as, left_out)
    }

    fn finish(
        tree: CallTree,
        origin: Vec<NodeId>,
        shown_as: Vec<NodeId>,
        left_out: Vec<bool>,
    ) -> Display {
        let mut preorder = Vec::with_capacity(tree.nodes.len());
        let mut todo = vec![ROOT];
        while let Some(id) = todo.pop() {
            preorder.push(id);
            todo.extend(tree.nodes[id].children.iter().rev());
        }
        let mut place = vec![0; tree.nodes.len()];
        for (i, &id) in preorder.iter().enumerate() {
            place[id] = i;
        }
        Display {
            tree,
            origin,
            shown_as,
            left_out,
            preorder,
            place,
        }
    }

    /// The original node a displayed node stands for (the first merged into it).
    pub fn origin(&self, id: NodeId) -> NodeId {
        self.origin[id]
    }

    /// The displayed node holding an original node.
    pub fn shown_as(&self, original: NodeId) -> NodeId {
        self.shown_as[original]
    }

    /// Whether an original node is left out of this display.
    pub fn is_left_out(&self, original: NodeId) -> bool {
        self.left_out[original]
    }

    /// How many original frames are left out.
    pub fn left_out_count(&self) -> usize {
        self.left_out.iter().filter(|&&l| l).count()
    }

    /// Displayed nodes in pre-order.
    pub fn preorder(&self) -> &[NodeId] {
        &self.preorder
    }

    /// A displayed node's place in the pre-order.
    pub fn place(&self, id: NodeId) -> usize {
        self.place[id]
    }
}

/// Import machinery: the frames of importlib's bootstrap, frozen or not.
pub fn is_import_machinery(loc: &Location) -> bool {
    let file = loc.file.as_deref().unwrap_or("");
    let function = loc.function.as_deref().unwrap_or("");
    file.starts_with("<frozen importlib")
        || file.ends_with("importlib/_bootstrap.py")
        || file.ends_with("importlib/_bootstrap_external.py")
        || function.starts_with("importlib._bootstrap")
}

/// Children by size as the call tree's builder orders them (bytes, allocations, then label), and
/// threads without repeats.
fn sort(tree: &mut CallTree) {
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
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::report::calltree::StackAllocations;

    pub fn loc(function: &str, file: &str, line: u64) -> Location {
        Location {
            function: Some(function.to_string()),
            file: Some(file.to_string()),
            line: Some(line),
            label: format!("{function} at {file}:{line}"),
        }
    }

    pub fn import(function: &str) -> Location {
        loc(function, "<frozen importlib._bootstrap>", 1)
    }

    /// `<module>` imports a module twice through different machinery paths (both end in the same
    /// module's `<module>`), and calls `main` directly.
    pub fn tree_with_imports() -> CallTree {
        let top = loc("<module>", "app.py", 1);
        let main = loc("main", "app.py", 5);
        let lib = loc("<module>", "lib.py", 1);
        let table = loc("table", "lib.py", 3);
        let a = [
            top.clone(),
            import("_find_and_load"),
            import("_load_unlocked"),
            lib.clone(),
            table.clone(),
        ];
        let b = [top.clone(), import("_handle_fromlist"), lib.clone(), table];
        let c = [top.clone(), main];
        let d = [top, import("_find_and_load")];
        CallTree::build([
            StackAllocations {
                frames: &a,
                bytes: 100,
                allocations: 1,
                thread: 1,
            },
            StackAllocations {
                frames: &b,
                bytes: 60,
                allocations: 2,
                thread: 2,
            },
            StackAllocations {
                frames: &c,
                bytes: 90,
                allocations: 1,
                thread: 1,
            },
            StackAllocations {
                frames: &d,
                bytes: 5,
                allocations: 1,
                thread: 1,
            },
        ])
    }

    fn function(tree: &CallTree, id: NodeId) -> &str {
        tree.nodes[id]
            .location
            .as_ref()
            .and_then(|l| l.function.as_deref())
            .unwrap_or("")
    }

    #[test]
    fn all_is_the_tree_itself() {
        let tree = tree_with_imports();
        let d = Display::all(&tree);
        assert_eq!(d.tree, tree);
        assert_eq!(d.left_out_count(), 0);
        assert_eq!(d.preorder()[0], ROOT);
        assert_eq!(d.preorder().len(), tree.nodes.len());
    }

    #[test]
    fn import_frames_are_left_out_and_their_children_merged() {
        let tree = tree_with_imports();
        let d = Display::without(&tree, is_import_machinery);
        assert_eq!(d.left_out_count(), 3);
        let root = d.tree.root();
        assert_eq!((root.bytes, root.allocations), (255, 5));
        let top = root.children[0];
        assert_eq!(function(&d.tree, top), "<module>");
        // lib's <module> (100 + 60, merged) and main (90) are top's children, biggest first.
        let kids = &d.tree.nodes[top].children;
        assert_eq!(kids.len(), 2);
        let lib = &d.tree.nodes[kids[0]];
        assert_eq!(
            lib.location.as_ref().and_then(|l| l.file.as_deref()),
            Some("lib.py")
        );
        assert_eq!((lib.bytes, lib.allocations), (160, 3));
        assert_eq!(lib.threads, vec![1, 2]);
        assert_eq!(lib.depth, 2);
        assert_eq!(function(&d.tree, kids[1]), "main");
        // The 5 bytes allocated in the machinery itself are now top's own.
        assert_eq!(d.tree.nodes[top].own_bytes, 5);
        let table = d.tree.nodes[kids[0]].children[0];
        assert_eq!(d.tree.nodes[table].bytes, 160);
        // Both ways: a left-out frame is shown as its shown parent.
        for (o, node) in tree.nodes.iter().enumerate() {
            let shown = d.shown_as(o);
            if d.is_left_out(o) {
                assert_eq!(shown, top);
            } else {
                assert_eq!(d.tree.nodes[shown].location, node.location);
            }
        }
        assert_eq!(d.shown_as(d.origin(table)), table);
        let places: Vec<usize> = d.preorder().iter().map(|&id| d.place(id)).collect();
        assert_eq!(places, (0..d.tree.nodes.len()).collect::<Vec<_>>());
    }

    #[test]
    fn recognizes_import_machinery() {
        assert!(is_import_machinery(&import("_call_with_frames_removed")));
        assert!(is_import_machinery(&loc(
            "exec_module",
            "<frozen importlib._bootstrap_external>",
            9
        )));
        assert!(is_import_machinery(&loc(
            "_load",
            "/usr/lib/python3.12/importlib/_bootstrap.py",
            9
        )));
        assert!(!is_import_machinery(&loc("<module>", "app.py", 1)));
        assert!(!is_import_machinery(&Location::unknown()));
    }
}
