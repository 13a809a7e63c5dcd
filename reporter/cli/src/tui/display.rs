//! The tree the UI shows: the call tree as it is, or with some frames (import machinery) left out,
//! their children shown in their place and merged with siblings of the same location. It keeps
//! the mapping both ways so that a selection and the expanded nodes survive switching views.

use hashbrown::HashMap;
use memtrace_reporter::report::calltree::{CallTree, Node, NodeId, ROOT};
use memtrace_reporter::report::locations::Location;

/// A tree's nodes in pre-order (the order of the fully expanded tree), and each one's place in
/// it: what the search walks.
pub struct PreOrder {
    nodes: Vec<NodeId>,
    place: Vec<usize>,
}

impl PreOrder {
    pub fn of(tree: &CallTree) -> PreOrder {
        let mut nodes = Vec::with_capacity(tree.nodes.len());
        let mut todo = vec![ROOT];
        while let Some(id) = todo.pop() {
            nodes.push(id);
            todo.extend(tree.nodes[id].children.iter().rev());
        }
        let mut place = vec![0; tree.nodes.len()];
        for (i, &id) in nodes.iter().enumerate() {
            place[id] = i;
        }
        PreOrder { nodes, place }
    }

    pub fn nodes(&self) -> &[NodeId] {
        &self.nodes
    }

    pub fn place(&self, id: NodeId) -> usize {
        self.place[id]
    }
}

/// A tree without some frames, and how its nodes relate to the original tree's.
pub struct Filtered {
    pub tree: CallTree,
    pub order: PreOrder,
    /// For each shown node, the first original node merged into it.
    origin: Vec<NodeId>,
    /// For each original node, the shown node holding it: itself, or for a left-out frame its
    /// nearest shown ancestor.
    shown_as: Vec<NodeId>,
    /// Original nodes left out.
    left_out: Vec<bool>,
}

impl Filtered {
    /// The tree without the frames `hide` says to leave out.
    pub fn without(tree: &CallTree, hide: impl Fn(&Location) -> bool) -> Filtered {
        let n = tree.nodes.len();
        let mut nodes = vec![Node {
            children: Vec::new(),
            ..tree.nodes[ROOT].clone()
        }];
        let mut origin = vec![ROOT];
        let mut shown_as = vec![ROOT; n];
        let mut left_out = vec![false; n];
        // (shown parent, location) → shown child, to merge siblings that meet. Only the children of
        // a node that took in a left-out frame's children, or merged two originals, can meet:
        // original siblings differ.
        let mut index: HashMap<(NodeId, &Location), NodeId> = HashMap::new();
        let mut grafted = vec![false; 1];
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
                    let existing = if grafted[parent] {
                        index.get(&(parent, loc)).copied()
                    } else {
                        None
                    };
                    if let Some(d) = existing {
                        // Two originals meet in d: their children may meet too.
                        open_index(d, tree, &nodes, &origin, &mut grafted, &mut index);
                    }
                    let d = existing.unwrap_or_else(|| {
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
                        grafted.push(false);
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
                    open_index(parent, tree, &nodes, &origin, &mut grafted, &mut index);
                    parent
                }
            };
            if grafted[parent] && at != parent {
                if let Some(loc) = &node.location {
                    index.entry((parent, loc)).or_insert(at);
                }
            }
            shown_as[o] = at;
            todo.extend(node.children.iter().rev().map(|&c| (c, at)));
        }
        let mut shown = CallTree { nodes };
        sort(&mut shown);
        Filtered {
            order: PreOrder::of(&shown),
            tree: shown,
            origin,
            shown_as,
            left_out,
        }
    }

    /// The original node a shown node stands for (the first merged into it).
    pub fn origin(&self, id: NodeId) -> NodeId {
        self.origin[id]
    }

    /// The shown node holding an original node.
    pub fn shown_as(&self, original: NodeId) -> NodeId {
        self.shown_as[original]
    }

    /// Whether an original node is left out.
    pub fn is_left_out(&self, original: NodeId) -> bool {
        self.left_out[original]
    }

    /// How many original frames are left out.
    pub fn left_out_count(&self) -> usize {
        self.left_out.iter().filter(|&&l| l).count()
    }
}

/// From now on the children of shown node `d` are indexed by location: index those it has.
fn open_index<'a>(
    d: NodeId,
    tree: &'a CallTree,
    nodes: &[Node],
    origin: &[NodeId],
    grafted: &mut [bool],
    index: &mut HashMap<(NodeId, &'a Location), NodeId>,
) {
    if grafted[d] {
        return;
    }
    grafted[d] = true;
    for &c in &nodes[d].children {
        if let Some(l) = &tree.nodes[origin[c]].location {
            index.insert((d, l), c);
        }
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
    for i in 0..tree.nodes.len() {
        let mut children = std::mem::take(&mut tree.nodes[i].children);
        let nodes = &tree.nodes;
        let label = |id: NodeId| nodes[id].location.as_ref().map(|l| l.label.as_str());
        children.sort_by(|&a, &b| {
            let (na, nb) = (&nodes[a], &nodes[b]);
            (nb.bytes, nb.allocations)
                .cmp(&(na.bytes, na.allocations))
                .then_with(|| label(a).cmp(&label(b)))
        });
        let node = &mut tree.nodes[i];
        node.children = children;
        node.threads.sort_unstable();
        node.threads.dedup();
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use memtrace_reporter::report::calltree::StackAllocations;

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
    fn pre_order_is_the_fully_expanded_order() {
        let tree = tree_with_imports();
        let order = PreOrder::of(&tree);
        let names: Vec<&str> = order
            .nodes()
            .iter()
            .map(|&id| function(&tree, id))
            .collect();
        assert_eq!(
            names,
            [
                "",
                "<module>",
                "_find_and_load",
                "_load_unlocked",
                "<module>",
                "table",
                "main",
                "_handle_fromlist",
                "<module>",
                "table",
            ]
        );
        for (i, &id) in order.nodes().iter().enumerate() {
            assert_eq!(order.place(id), i);
        }
    }

    #[test]
    fn import_frames_are_left_out_and_their_children_merged() {
        let tree = tree_with_imports();
        let d = Filtered::without(&tree, is_import_machinery);
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
        assert_eq!(d.order.nodes().len(), d.tree.nodes.len());
    }

    #[test]
    fn a_frame_reached_directly_and_through_imports_is_one_node() {
        let top = loc("<module>", "app.py", 1);
        let lib = loc("<module>", "lib.py", 1);
        let direct = [top.clone(), lib.clone(), loc("x", "lib.py", 2)];
        let imported = [top, import("_find_and_load"), lib, loc("y", "lib.py", 3)];
        let tree = CallTree::build([
            StackAllocations {
                frames: &direct,
                bytes: 200,
                allocations: 1,
                thread: 1,
            },
            StackAllocations {
                frames: &imported,
                bytes: 50,
                allocations: 1,
                thread: 1,
            },
        ]);
        let d = Filtered::without(&tree, is_import_machinery);
        let top = d.tree.root().children[0];
        assert_eq!(d.tree.nodes[top].children.len(), 1);
        let lib = d.tree.nodes[top].children[0];
        assert_eq!(d.tree.nodes[lib].bytes, 250);
        let kids: Vec<&str> = d.tree.nodes[lib]
            .children
            .iter()
            .map(|&k| function(&d.tree, k))
            .collect();
        assert_eq!(kids, ["x", "y"]);
        assert_eq!(d.tree.nodes.len(), 5);
    }

    /// Two trees alike: the same nodes, sums, threads and depths, children in the same order.
    fn assert_same(a: &CallTree, b: &CallTree) {
        let mut todo = vec![(ROOT, ROOT)];
        while let Some((x, y)) = todo.pop() {
            let (m, n) = (&a.nodes[x], &b.nodes[y]);
            assert_eq!(m.location, n.location);
            assert_eq!(
                (
                    m.bytes,
                    m.allocations,
                    m.own_bytes,
                    m.own_allocations,
                    m.depth
                ),
                (
                    n.bytes,
                    n.allocations,
                    n.own_bytes,
                    n.own_allocations,
                    n.depth
                ),
                "{:?}",
                m.location
            );
            assert_eq!(m.threads, n.threads, "{:?}", m.location);
            assert_eq!(m.children.len(), n.children.len(), "{:?}", m.location);
            todo.extend(m.children.iter().copied().zip(n.children.iter().copied()));
        }
    }

    proptest::proptest! {
        /// Leaving frames out of the tree is building the tree of the stacks without them.
        #[test]
        fn filtering_the_tree_is_filtering_the_stacks(
            stacks in proptest::collection::vec(
                (proptest::collection::vec(0..6usize, 0..7), 1..1000u64, 1..4u32),
                0..40,
            )
        ) {
            // Three import frames, three of the program's; labels tell them apart.
            let alphabet = [
                import("_find_and_load"),
                import("_load_unlocked"),
                loc("exec_module", "<frozen importlib._bootstrap_external>", 2),
                loc("<module>", "app.py", 1),
                loc("<module>", "lib.py", 1),
                loc("f", "lib.py", 7),
            ];
            let frames: Vec<Vec<Location>> = stacks
                .iter()
                .map(|(ids, _, _)| ids.iter().map(|&i| alphabet[i].clone()).collect())
                .collect();
            let kept: Vec<Vec<Location>> = frames
                .iter()
                .map(|f| f.iter().filter(|l| !is_import_machinery(l)).cloned().collect())
                .collect();
            let build = |all: &[Vec<Location>]| {
                CallTree::build(all.iter().zip(&stacks).map(|(f, &(_, bytes, thread))| {
                    StackAllocations {
                        frames: f,
                        bytes,
                        allocations: 1,
                        thread,
                    }
                }))
            };
            let d = Filtered::without(&build(&frames), is_import_machinery);
            assert_same(&d.tree, &build(&kept));
        }
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
