//! Whole stacks for reports: every frame of a stack resolved to a source location.

use super::locations::Location;
use super::view_tree;
use crate::analysis::tables::Tables;
use crate::symbols::Symbolizer;
use serde::Serialize;

/// One frame of a stack. The JSON object has the keys `function`, `file` and `line`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StackFrame {
    pub function: Option<String>,
    pub file: Option<String>,
    pub line: Option<u64>,
    /// `function at file:line` (or `libfoo.so+0x1234`), for the text report.
    #[serde(skip)]
    pub label: String,
}

impl From<Location> for StackFrame {
    fn from(l: Location) -> StackFrame {
        StackFrame {
            function: l.function,
            file: l.file,
            line: l.line,
            label: l.label,
        }
    }
}

/// The frames of a stack, innermost first (empty for stack 0 or an unknown id; a frame id that
/// is not defined is a frame of nulls; a cycle ends before its first repeated stack).
pub fn frames(stack: u64, tables: &Tables, symbolizer: &mut Symbolizer) -> Vec<StackFrame> {
    if stack == 0 || !tables.stacks.contains_key(&stack) {
        return Vec::new();
    }
    let mut locs = view_tree::shown_locations(tables, stack, &mut |id| {
        view_tree::frame_locations(tables, id, symbolizer)
    });
    locs.reverse();
    locs.into_iter().map(StackFrame::from).collect()
}

/// [`frames`] from the frame the stack's allocations are counted at
/// ([`super::locations::past_wrappers`]): the allocator wrappers' frames inside it (C++'s
/// `operator new`, `strdup`, Rust's allocator shims) left out.
pub fn frames_from_location(
    stack: u64,
    tables: &Tables,
    symbolizer: &mut Symbolizer,
) -> Vec<StackFrame> {
    let mut all = frames(stack, tables, symbolizer);
    let at = super::locations::past_wrappers(&all, |f| {
        f.function.as_deref().is_some_and(|name| {
            super::locations::is_allocator_wrapper(name, f.file.as_deref(), &f.label)
        })
    });
    all.drain(..at);
    all
}
