//! The call tree of a selection: each (stack, thread) group resolved to its locations,
//! outermost first, and added to a [`CallTree`]; with `--threads`, under one node per thread.

use super::calltree::{Builder, CallTree, StackAllocations};
use super::locations::{self, Location};
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
    /// A frame's locations, innermost first (more than one where functions were inlined).
    frames: HashMap<u64, Rc<[Location]>>,
    stacks: HashMap<u64, Rc<[Location]>>,
}

impl<'a> StackResolver<'a> {
    pub fn new(tables: &'a Tables, symbolizer: Symbolizer) -> StackResolver<'a> {
        StackResolver {
            tables,
            symbolizer,
            frames: HashMap::new(),
            stacks: HashMap::new(),
        }
    }

    /// The locations of a stack, outermost first; `<unknown>` alone for an unknown stack.
    pub fn outermost_first(&mut self, stack: u64) -> Rc<[Location]> {
        if let Some(s) = self.stacks.get(&stack) {
            return s.clone();
        }
        let (tables, symbolizer, frames) = (self.tables, &mut self.symbolizer, &mut self.frames);
        let locs: Rc<[Location]> = shown_locations(tables, stack, &mut |id| {
            frames
                .entry(id)
                .or_insert_with(|| frame_locations(tables, id, symbolizer))
                .clone()
        })
        .into();
        self.stacks.insert(stack, locs.clone());
        locs
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
    let ids = tables.stack_frame_ids(stack);
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
    let mut path: Vec<Location> = Vec::new();
    for (&(stack, thread), sum) in groups {
        let frames = resolver.outermost_first(stack);
        path.clear();
        if split_threads {
            path.push(thread_location(analysis, thread));
        }
        path.extend(frames.iter().cloned());
        let serial = analysis
            .threads
            .get(thread as usize)
            .map_or(thread, |t| t.serial);
        builder.add(&StackAllocations {
            frames: &path,
            bytes: sum.bytes,
            allocations: sum.count,
            thread: serial,
        });
    }
    builder.finish()
}
