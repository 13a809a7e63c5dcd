//! The path of locations a report shows for each stack ([`shown_locations`]), built as nodes
//! of a tree from the stack table's parent links: a stack's path is its parent's node followed
//! by its own frame's locations, found once and remembered. Time and memory then grow with the
//! number of stacks, where resolving each stack whole grows with their number times their
//! depth (1.5 GB for a recursion 2,000 deep allocating at every level).
//!
//! The paths are those of [`shown_locations`], frame view included: with Python frames only,
//! a stack's native frames are left out when it has a Python frame anywhere (so a stack keeps
//! one path per variant: its frames filtered, or whole); merged, an evaluation-loop frame is
//! held back until the next frame inwards says whether it stands for Python frames.
//!
//! [`shown_locations`]: super::view_tree::shown_locations

use super::calltree::Builder;
use super::locations::Location;
use super::path_tree::{NodeId, PathTree};
use crate::analysis::tables::{Frame, FrameView, Tables, MAX_DEPTH};
use hashbrown::HashMap;
use std::rc::Rc;

/// Where paths are built: `child(at, location)` is the node of `at`'s path followed by
/// `location`.
pub trait Paths {
    fn child(&mut self, at: NodeId, location: &Location) -> NodeId;
}

impl Paths for PathTree {
    fn child(&mut self, at: NodeId, location: &Location) -> NodeId {
        PathTree::child(self, at, location)
    }
}

impl Paths for Builder {
    fn child(&mut self, at: NodeId, location: &Location) -> NodeId {
        Builder::child(self, at, location)
    }
}

/// A path being built: its nodes, and each frame's locations (innermost first).
struct Sink<'s, 'f> {
    paths: &'s mut dyn Paths,
    frame: &'f mut dyn FnMut(u64) -> Rc<[Location]>,
}

impl Sink<'_, '_> {
    fn child(&mut self, at: NodeId, location: &Location) -> NodeId {
        self.paths.child(at, location)
    }

    fn frame(&mut self, id: u64) -> Rc<[Location]> {
        (self.frame)(id)
    }
}

/// Where a stack's shown path reached: its node, and (merged view) an evaluation-loop frame
/// held back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Reach {
    node: NodeId,
    held: Option<u64>,
    /// Stacks on the chain, this one included (0 when not remembered).
    depth: usize,
}

/// Where every path starts: `base`, nothing held.
fn start(base: NodeId) -> Reach {
    Reach {
        node: base,
        held: None,
        depth: 0,
    }
}

/// What a stack's chain holds: whether a Python frame, whether a native one.
#[derive(Clone, Copy, Debug, Default)]
struct Kinds {
    python: bool,
    native: bool,
    /// Stacks on the chain, this one included.
    depth: usize,
}

/// How a chain walked up from a stack ended.
enum ChainEnd<T> {
    /// At a stack already known (its value), or at the top: stack 0 or one not in the table.
    Known(Option<T>),
    /// Cut short after [`MAX_DEPTH`] stacks (a deep stack, or a cycle in a damaged table).
    /// Its stacks' paths are not remembered: each is its own walk.
    Cut,
}

/// The shown paths of stacks in one frame view, remembered per stack.
pub struct ShownPaths<'t> {
    tables: &'t Tables,
    kinds: HashMap<u64, Kinds>,
    /// (stack, base node, filtered) → where its path reached.
    reached: HashMap<(u64, NodeId, bool), Reach>,
    /// The stacks walked up from a stack, innermost first (kept to reuse its memory).
    chain: Vec<u64>,
}

impl<'t> ShownPaths<'t> {
    pub fn new(tables: &'t Tables) -> ShownPaths<'t> {
        ShownPaths {
            tables,
            kinds: HashMap::new(),
            reached: HashMap::new(),
            chain: Vec::new(),
        }
    }

    /// The node of `stack`'s shown path under `base` (`<unknown>` under `base` when it shows
    /// no location); `frame` gives a frame id's locations, innermost first.
    pub fn node(
        &mut self,
        stack: u64,
        base: NodeId,
        paths: &mut dyn Paths,
        frame: &mut dyn FnMut(u64) -> Rc<[Location]>,
    ) -> NodeId {
        let sink = &mut Sink { paths, frame };
        // Whether the frames of the other kind are left out depends on the whole chain.
        let filtered = match self.tables.frame_view {
            FrameView::Merged => Some(false),
            FrameView::PythonOnly => self.stack_kinds(stack).map(|k| k.python),
            FrameView::NativeOnly => self.stack_kinds(stack).map(|k| k.native),
        };
        let reach = match filtered {
            Some(filtered) => self.reach(stack, base, filtered, sink),
            None => self.reach_unremembered(stack, base, sink),
        };
        let mut node = reach.node;
        if let Some(held) = reach.held {
            node = descend(node, &sink.frame(held), sink);
        }
        if node == base {
            node = sink.child(base, &Location::unknown());
        }
        node
    }

    /// Walks up from `stack` until a stack `known` gives a value for, the top, or a cut;
    /// leaves the stacks walked in `self.chain`, innermost first.
    fn walk<T: Copy>(
        &mut self,
        stack: u64,
        known: impl Fn(&Self, u64) -> Option<T>,
    ) -> ChainEnd<T> {
        self.chain.clear();
        let mut id = stack;
        loop {
            if id == 0 {
                return ChainEnd::Known(None);
            }
            if let Some(v) = known(self, id) {
                return ChainEnd::Known(Some(v));
            }
            if self.chain.len() >= MAX_DEPTH {
                return ChainEnd::Cut;
            }
            let Some(&(parent, _)) = self.tables.stacks.get(&id) else {
                return ChainEnd::Known(None);
            };
            self.chain.push(id);
            id = parent;
        }
    }

    /// What `stack`'s chain holds; None when the chain is cut short (or longer than
    /// [`MAX_DEPTH`] with what is known above it).
    fn stack_kinds(&mut self, stack: u64) -> Option<Kinds> {
        let above = match self.walk(stack, |s, id| s.kinds.get(&id).copied()) {
            ChainEnd::Known(k) => k.unwrap_or_default(),
            ChainEnd::Cut => return None,
        };
        if self.chain.len() + above.depth > MAX_DEPTH {
            return None;
        }
        let mut kinds = above;
        for &id in self.chain.iter().rev() {
            let frame = self.tables.stacks.get(&id).map(|&(_, f)| f);
            match frame.and_then(|f| self.tables.frames.get(&f)) {
                Some(Frame::Python { .. }) => kinds.python = true,
                Some(Frame::Native(_)) => kinds.native = true,
                None => {}
            }
            kinds.depth += 1;
            self.kinds.insert(id, kinds);
        }
        self.kinds.get(&stack).copied()
    }

    /// Where `stack`'s path reaches (its chain known whole), remembered for it and the stacks
    /// above it.
    fn reach(&mut self, stack: u64, base: NodeId, filtered: bool, sink: &mut Sink) -> Reach {
        let above = match self.walk(stack, |s, id| s.reached.get(&(id, base, filtered)).copied()) {
            ChainEnd::Known(r) => r.unwrap_or(start(base)),
            ChainEnd::Cut => return self.reach_unremembered(stack, base, sink),
        };
        if self.chain.len() + above.depth > MAX_DEPTH {
            return self.reach_unremembered(stack, base, sink);
        }
        let chain = std::mem::take(&mut self.chain);
        let mut reach = above;
        for &id in chain.iter().rev() {
            let frame = self.tables.stacks.get(&id).map_or(0, |&(_, f)| f);
            reach = self.step(reach, frame, filtered, sink);
            reach.depth += 1;
            self.reached.insert((id, base, filtered), reach);
        }
        self.chain = chain;
        reach
    }

    /// Where `stack`'s path reaches when its chain is cut short: walked as
    /// [`Tables::stack_frame_ids_whole`] walks it, nothing remembered.
    fn reach_unremembered(&mut self, stack: u64, base: NodeId, sink: &mut Sink) -> Reach {
        let (ids, _) = self.tables.stack_frame_ids_whole(stack);
        let kinds: Vec<Option<Frame>> = ids
            .iter()
            .map(|f| self.tables.frames.get(f).copied())
            .collect();
        let filtered = match self.tables.frame_view {
            FrameView::PythonOnly => kinds
                .iter()
                .any(|k| matches!(k, Some(Frame::Python { .. }))),
            FrameView::NativeOnly => kinds.iter().any(|k| matches!(k, Some(Frame::Native(_)))),
            FrameView::Merged => false,
        };
        ids.iter().rev().fold(start(base), |reach, &frame| {
            self.step(reach, frame, filtered, sink)
        })
    }

    /// `reach` followed by `frame`.
    fn step(&self, reach: Reach, frame: u64, filtered: bool, sink: &mut Sink) -> Reach {
        let python = matches!(self.tables.frames.get(&frame), Some(Frame::Python { .. }));
        let view = self.tables.frame_view;
        match view {
            FrameView::PythonOnly if filtered && !python => return reach,
            FrameView::NativeOnly if filtered && python => return reach,
            _ => {}
        }
        let mut node = reach.node;
        // A held evaluation-loop frame stands for this frame when it is Python's.
        if let Some(held) = reach.held {
            if !python {
                node = descend(node, &sink.frame(held), sink);
            }
        }
        let locations = sink.frame(frame);
        if locations.is_empty() {
            return Reach {
                node,
                held: None,
                ..reach
            };
        }
        let eval_loop = view == FrameView::Merged
            && !python
            && locations.iter().any(|l| {
                l.function
                    .as_deref()
                    .is_some_and(|f| f.starts_with("_PyEval_EvalFrame"))
            });
        if eval_loop {
            return Reach {
                node,
                held: Some(frame),
                ..reach
            };
        }
        Reach {
            node: descend(node, &locations, sink),
            held: None,
            ..reach
        }
    }
}

/// `at`'s path followed by a frame's locations (innermost first): the functions it was
/// inlined into first, outermost first.
fn descend(at: NodeId, locations: &[Location], sink: &mut Sink) -> NodeId {
    let Some((own, inlined_into)) = locations.split_first() else {
        return at;
    };
    let node = inlined_into.iter().rev().fold(at, |n, l| sink.child(n, l));
    sink.child(node, own)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::test_rng::Rng;
    use crate::report::locations::test_location as loc;
    use crate::report::path_tree::ROOT;
    use crate::report::view_tree::shown_locations;

    const EVAL_LOOP: u64 = 6;
    const NO_LOCATION: u64 = 7;
    const INLINED: u64 = 8;

    /// Python frames 1-5, native 6-10 (an evaluation loop, one without a location, one
    /// inlined into two functions, two on one line), 11 and 12 undefined.
    fn frames(tables: &mut Tables) {
        for id in 1..=5 {
            let frame = Frame::Python {
                function: id,
                file: 100,
                line: id,
            };
            tables.frames.insert(id, frame);
        }
        for id in 6..=10 {
            tables.frames.insert(id, Frame::Native(0x1000 * id));
        }
    }

    fn frame_locations(id: u64) -> Rc<[Location]> {
        match id {
            1..=5 => vec![loc(&format!("py{id}"), id)].into(),
            EVAL_LOOP => vec![loc("_PyEval_EvalFrameDefault", 0)].into(),
            NO_LOCATION => Vec::new().into(),
            INLINED => vec![loc("inner", 1), loc("middle", 2), loc("outer", 3)].into(),
            9 | 10 => vec![loc("same_line", 9)].into(),
            _ => vec![Location::unknown()].into(),
        }
    }

    /// Checks every stack's node against [`shown_locations`], in `order`, under the root and
    /// under a base node.
    fn check(tables: &Tables, order: &[u64]) {
        let mut tree = PathTree::new();
        let base = tree.child(ROOT, &loc("thread", 0));
        let mut paths = ShownPaths::new(tables);
        for &stack in order {
            let want = shown_locations(tables, stack, &mut frame_locations);
            for at in [ROOT, base] {
                let node = paths.node(stack, at, &mut tree, &mut frame_locations);
                let got = tree.locations(node);
                let skip = usize::from(at == base);
                let got: Vec<&Location> = got[skip..].to_vec();
                let want: Vec<&Location> = want.iter().collect();
                assert_eq!(
                    got, want,
                    "stack {stack} under {at}, {:?}",
                    tables.frame_view
                );
            }
        }
    }

    #[test]
    fn paths_match_each_stack_resolved_whole_in_every_view() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..200 {
            let mut tables = Tables::default();
            frames(&mut tables);
            // Stacks 1-80: mostly on a lower stack (a tree), some on any (cycles), some on a
            // stack not in the table; frames of every kind.
            for id in 1..=80u64 {
                let parent = match rng.below(10) {
                    0 => rng.below(90),
                    1 => 0,
                    _ => rng.below(id),
                };
                let frame = match rng.below(3) {
                    0 => EVAL_LOOP,
                    _ => 1 + rng.below(12),
                };
                tables.stacks.insert(id, (parent, frame));
            }
            let mut order: Vec<u64> = (0..=90).collect();
            for i in (1..order.len()).rev() {
                order.swap(i, rng.below(i as u64 + 1) as usize);
            }
            for view in [
                FrameView::Merged,
                FrameView::PythonOnly,
                FrameView::NativeOnly,
            ] {
                tables.frame_view = view;
                check(&tables, &order);
            }
        }
    }

    #[test]
    fn chains_longer_than_the_walk_s_bound_are_cut_as_a_whole_stack_s_walk_cuts_them() {
        let mut tables = Tables::default();
        frames(&mut tables);
        let deepest = MAX_DEPTH as u64 + 300;
        for id in 1..=deepest {
            tables.stacks.insert(id, (id - 1, 1 + id % 5));
        }
        // Shallow stacks first, so that the deep ones find their ancestors known.
        check(
            &tables,
            &[
                10,
                MAX_DEPTH as u64 - 1,
                MAX_DEPTH as u64,
                deepest,
                deepest - 1,
            ],
        );
    }
}
