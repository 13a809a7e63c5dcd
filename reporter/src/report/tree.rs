//! The call tree of a selection with its stacks symbolized: what `memtrace tree`, `summary` and
//! `flamegraph` draw, and the Python package's flamegraph page.

use super::calltree::CallTree;
use super::view_tree::{self, StackResolver};
use super::views::Selection;
use crate::analysis::Analysis;
use crate::capture::Capture;
use crate::symbols::modules::ModuleMap;
use crate::symbols::Symbolizer;

/// The tree of a selection, and the symbolizer's warnings.
pub fn build(
    capture: &Capture,
    analysis: &Analysis,
    selection: &Selection,
    split_threads: bool,
) -> (CallTree, Vec<String>) {
    let map = ModuleMap::new(analysis.tables.modules.clone(), &capture.header.exe);
    let mut resolver = StackResolver::new(&analysis.tables, Symbolizer::new(map));
    let tree = view_tree::build(analysis, selection, &mut resolver, split_threads);
    (tree, resolver.symbolizer.warnings)
}
