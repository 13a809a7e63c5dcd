//! The call tree of a selection: each (stack, thread) group resolved to its locations,
//! outermost first, and added to a [`CallTree`]; with `--threads`, under one node per thread.

use super::calltree::{Builder, CallTree, ROOT};
use super::locations::{self, Location};
use super::shown_paths::ShownPaths;
use super::views::{thread_label, Selection};
use crate::analysis::tables::{Frame, FrameView, Tables};
use crate::analysis::Analysis;
use crate::symbols::Symbolizer;
use hashbrown::HashMap;
use std::rc::Rc;

/// Resolves stacks to locations, each frame and each stack once.
pub struct StackResolver<'a> {
    tables: &'a Tables,
    pub symbolizer: Symbolizer,
    resolved: Resolved,
}

/// The frames a resolver resolved, which a later resolver over the same tables (or the same
/// tables grown since) and the same modules may start from: the live view builds a tree at
/// every refresh, and resolving its frames again each time was most of a refresh's cost with
/// thousands of stacks. Only resolutions that the tables' growth cannot change are kept: of
/// frames that are there with their strings.
#[derive(Debug, Default)]
pub struct Resolved {
    /// A frame's locations, innermost first (more than one where functions were inlined).
    frames: HashMap<u64, Rc<[Location]>>,
}

impl<'a> StackResolver<'a> {
    pub fn new(tables: &'a Tables, symbolizer: Symbolizer) -> StackResolver<'a> {
        StackResolver::with(tables, symbolizer, Resolved::default())
    }

    /// A resolver that starts from what an earlier one resolved (see [`Resolved`]).
    pub fn with(
        tables: &'a Tables,
        symbolizer: Symbolizer,
        resolved: Resolved,
    ) -> StackResolver<'a> {
        StackResolver {
            tables,
            symbolizer,
            resolved,
        }
    }

    /// The tables it resolves frames of.
    pub fn tables(&self) -> &'a Tables {
        self.tables
    }

    /// The symbolizer back, and what was resolved.
    pub fn into_parts(self) -> (Symbolizer, Resolved) {
        (self.symbolizer, self.resolved)
    }

    /// A frame's locations, innermost first (more than one where functions were inlined).
    pub fn frame(&mut self, id: u64) -> Rc<[Location]> {
        if let Some(l) = self.resolved.frames.get(&id) {
            return l.clone();
        }
        let l = frame_locations(self.tables, id, &mut self.symbolizer);
        if self.tables.frame_known(id) {
            self.resolved.frames.insert(id, l.clone());
        }
        l
    }

    /// The locations of a stack, outermost first; `<unknown>` alone for an unknown stack (the
    /// reports build paths with `shown_paths`; the tests look at one stack whole).
    #[cfg(test)]
    pub fn outermost_first(&mut self, stack: u64) -> Vec<Location> {
        let tables = self.tables;
        shown_locations(tables, stack, &mut |id| self.frame(id))
    }
}

/// A frame's locations, innermost first (more than one where functions were inlined).
pub fn frame_locations(tables: &Tables, id: u64, symbolizer: &mut Symbolizer) -> Rc<[Location]> {
    match tables.frames.get(&id) {
        Some(&f) => locations::resolve_all(f, tables, symbolizer).into(),
        None => vec![Location::unknown()].into(),
    }
}

/// The locations a report shows for a stack in [`Tables::frame_view`], outermost first
/// (`<unknown>` alone for an unknown stack); `frame` gives a frame id's locations, innermost
/// first.
pub fn shown_locations(
    tables: &Tables,
    stack: u64,
    frame: &mut dyn FnMut(u64) -> Rc<[Location]>,
) -> Vec<Location> {
    let (ids, _) = tables.stack_frame_ids_whole(stack);
    let mut locs: Vec<Location> = Vec::with_capacity(ids.len().max(1));
    let kinds: Vec<Option<Frame>> = ids
        .iter()
        .rev()
        .map(|id| tables.frames.get(id).copied())
        .collect();
    let is_python = |k: &Option<Frame>| matches!(k, Some(Frame::Python { .. }));
    let any_python = kinds.iter().any(is_python);
    let any_native = kinds.iter().any(|k| matches!(k, Some(Frame::Native(_))));
    for (i, &id) in ids.iter().rev().enumerate() {
        let python = is_python(&kinds[i]);
        match tables.frame_view {
            FrameView::PythonOnly if any_python && !python => continue,
            FrameView::NativeOnly if any_native && python => continue,
            _ => {}
        }
        let frame_locs = frame(id);
        let Some(loc) = frame_locs.first().cloned() else {
            continue;
        };
        // Merged: an evaluation-loop frame followed by the Python frames it ran is those.
        let eval_loop = tables.frame_view == FrameView::Merged
            && !python
            && kinds.get(i + 1).is_some_and(is_python)
            && frame_locs.iter().any(|l| {
                l.function
                    .as_deref()
                    .is_some_and(|f| f.starts_with("_PyEval_EvalFrame"))
            });
        if !eval_loop {
            // The functions it was inlined into come first (outermost first).
            locs.extend(frame_locs[1..].iter().rev().cloned());
            locs.push(loc);
        }
    }
    if locs.is_empty() {
        locs.push(Location::unknown());
    }
    locs
}

/// The location standing for a thread in a tree split by thread.
pub fn thread_location(analysis: &Analysis, thread: u32) -> Location {
    let label = match analysis.threads.get(thread as usize) {
        Some(t) => format!("thread {}", thread_label(t)),
        None => format!("thread #{thread}"),
    };
    Location {
        function: None,
        file: None,
        line: None,
        label,
    }
}

/// Builds the call tree of a selection. Node threads are thread serials.
pub fn build(
    analysis: &Analysis,
    selection: &Selection,
    resolver: &mut StackResolver<'_>,
    split_threads: bool,
) -> CallTree {
    let mut groups: Vec<_> = selection.set.groups.iter().collect();
    // A stable order, so that equal trees come out of equal captures.
    groups.sort_unstable_by_key(|(&k, _)| k);
    let mut builder = Builder::default();
    let mut paths = ShownPaths::new(resolver.tables());
    for (&(stack, thread), sum) in groups {
        let base = match split_threads {
            true => builder.child(ROOT, &thread_location(analysis, thread)),
            false => ROOT,
        };
        let node = paths.node(stack, base, &mut builder, &mut |id| resolver.frame(id));
        let serial = analysis
            .threads
            .get(thread as usize)
            .map_or(thread, |t| t.serial);
        builder.add_at(node, sum.bytes, sum.count, serial);
    }
    builder.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::symbols::modules::ModuleMap;

    fn python_frame(tables: &mut Tables, id: u64, function: u64, file: u64, line: u64) {
        let frame = Frame::Python {
            function,
            file,
            line,
        };
        tables.frames.insert(id, frame);
    }

    fn names(locs: &[Location]) -> Vec<String> {
        locs.iter().map(|l| l.label.clone()).collect()
    }

    #[test]
    fn resolutions_kept_between_resolvers_are_those_the_tables_cannot_change() {
        // Stack 2 (frame 20) called from stack 1 (frame 10), stack 4 (frame 10) called from
        // stack 3 (frame 20); frame 20's file name and stacks 1 and 3 come later, as a live
        // capture's tables grow between two refreshes.
        let mut tables = Tables::default();
        tables.strings.insert(100, b"main"[..].into());
        tables.strings.insert(101, b"app.py"[..].into());
        tables.strings.insert(102, b"work"[..].into());
        python_frame(&mut tables, 10, 100, 101, 5);
        python_frame(&mut tables, 20, 102, 103, 7);
        tables.stacks.insert(2, (1, 20));
        tables.stacks.insert(4, (3, 10));
        let symbolizer = Symbolizer::new(ModuleMap::new(Vec::new(), b""));
        let mut first = StackResolver::new(&tables, symbolizer);
        let early = first.outermost_first(2);
        assert_eq!(
            early.len(),
            1,
            "stack 1 is not known yet: {:?}",
            names(&early)
        );
        assert_eq!(early[0].function.as_deref(), Some("work"));
        assert_eq!(early[0].file, None, "its file name is not known yet");
        assert_eq!(
            first.outermost_first(4).len(),
            1,
            "stack 3 is not known yet"
        );
        let (symbolizer, resolved) = first.into_parts();
        // Frame 20 (its file name missing) is not kept.
        assert_eq!(resolved.frames.keys().copied().collect::<Vec<_>>(), [10]);
        // The tables grow: the next resolver resolves both stacks whole.
        tables.strings.insert(103, b"lib.py"[..].into());
        tables.stacks.insert(1, (0, 10));
        tables.stacks.insert(3, (0, 20));
        let mut second = StackResolver::with(&tables, symbolizer, resolved);
        let whole = second.outermost_first(2);
        let functions: Vec<_> = whole.iter().map(|l| l.function.clone()).collect();
        assert_eq!(functions, [Some("main".into()), Some("work".into())]);
        assert_eq!(whole[1].file.as_deref(), Some("lib.py"));
        let other: Vec<_> = second.outermost_first(4).iter().map(|l| l.line).collect();
        assert_eq!(other, [Some(7), Some(5)]);
        let (_, resolved) = second.into_parts();
        // Now whole, both frames are kept, and a third resolver hands out the same locations.
        let mut kept: Vec<u64> = resolved.frames.keys().copied().collect();
        kept.sort_unstable();
        assert_eq!(kept, [10, 20]);
        let kept_20 = resolved.frames[&20].clone();
        let symbolizer = Symbolizer::new(ModuleMap::new(Vec::new(), b""));
        let mut third = StackResolver::with(&tables, symbolizer, resolved);
        assert!(Rc::ptr_eq(&third.frame(20), &kept_20));
    }
}
