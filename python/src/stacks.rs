//! A record's stacks as lists of (function, file, line), innermost frame first: its Python
//! frames, its native frames (each inlined function a frame of its own) and the merged chain
//! the reports show (an evaluation-loop frame replaced by the Python frames it ran).

use hashbrown::HashMap;
use memtrace_reporter::analysis::tables::{Frame, FrameView, Tables};
use memtrace_reporter::report::locations::{self, Location};
use memtrace_reporter::report::view_tree;
use memtrace_reporter::symbols::Symbolizer;
use std::sync::Arc;

/// One frame: function (or the module+offset label of an address without symbols), file ("" when
/// unknown) and line (0 when unknown).
pub type FrameTuple = (String, String, u64);

/// Which frames of a stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StackKind {
    Python,
    Native,
    Merged,
}

/// Resolves stacks, each (stack, kind) once.
pub struct Resolver {
    tables: Tables,
    symbolizer: Symbolizer,
    cache: HashMap<(u64, StackKind), Arc<[FrameTuple]>>,
}

fn tuple(l: Location) -> FrameTuple {
    let function = l.function.unwrap_or(l.label);
    (function, l.file.unwrap_or_default(), l.line.unwrap_or(0))
}

impl Resolver {
    pub fn new(tables: Tables, symbolizer: Symbolizer) -> Resolver {
        Resolver {
            tables,
            symbolizer,
            cache: HashMap::new(),
        }
    }

    /// The frames of `stack` of one kind, innermost first (empty for an unknown stack).
    pub fn frames(&mut self, stack: u64, kind: StackKind) -> Arc<[FrameTuple]> {
        if let Some(f) = self.cache.get(&(stack, kind)) {
            return f.clone();
        }
        let frames: Arc<[FrameTuple]> = self.resolve(stack, kind).into();
        self.cache.insert((stack, kind), frames.clone());
        frames
    }

    fn resolve(&mut self, stack: u64, kind: StackKind) -> Vec<FrameTuple> {
        let (tables, symbolizer) = (&mut self.tables, &mut self.symbolizer);
        if stack == 0 || !tables.stacks.contains_key(&stack) {
            return Vec::new();
        }
        match kind {
            StackKind::Python => tables
                .walk(stack)
                .filter(|f| matches!(f, Frame::Python { .. }))
                .collect::<Vec<_>>()
                .into_iter()
                .map(|f| tuple(locations::resolve(f, tables, symbolizer)))
                .collect(),
            StackKind::Native => tables
                .walk(stack)
                .filter(|f| matches!(f, Frame::Native(_)))
                .collect::<Vec<_>>()
                .into_iter()
                .flat_map(|f| locations::resolve_all(f, tables, symbolizer))
                .map(tuple)
                .collect(),
            StackKind::Merged => {
                tables.frame_view = FrameView::Merged;
                let tables: &Tables = tables;
                let mut locs = view_tree::shown_locations(tables, stack, &mut |id| {
                    view_tree::frame_locations(tables, id, symbolizer)
                });
                locs.reverse();
                locs.into_iter().map(tuple).collect()
            }
        }
    }
}
