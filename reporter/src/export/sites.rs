//! The allocation sites of a view: each stack (and thread, with `--threads`) with what it
//! allocated over the run and what of it the view holds, its frames resolved outermost first.

use super::{PathSite, Sites};
use crate::analysis::totals::Sum;
use crate::analysis::Analysis;
use crate::report::path_tree::ROOT;
use crate::report::shown_paths::ShownPaths;
use crate::report::view_tree::{thread_location, StackResolver};
use crate::report::views::Selection;
use std::collections::BTreeMap;

/// The sites of `selection`: `live` from the view's set, `allocated` from the run's allocations
/// of the threads the selection keeps. With `split_threads`, each site starts with its thread.
pub fn sites(
    analysis: &Analysis,
    selection: &Selection,
    resolver: &mut StackResolver<'_>,
    split_threads: bool,
) -> Sites {
    let kept = |t: u32| selection.threads.as_ref().is_none_or(|k| k.contains(&t));
    // (stack, thread when split) -> (allocated, live); ordered so equal captures give equal files.
    let mut by_key: BTreeMap<(u64, Option<u32>), (Sum, Sum)> = BTreeMap::new();
    let key = |stack: u64, thread: u32| (stack, split_threads.then_some(thread));
    for (i, t) in analysis.threads.iter().enumerate() {
        let thread = i as u32;
        if !kept(thread) {
            continue;
        }
        for (&stack, &sum) in &t.by_stack {
            by_key.entry(key(stack, thread)).or_default().0.merge(sum);
        }
    }
    for (&(stack, thread), &sum) in &selection.set.groups {
        by_key.entry(key(stack, thread)).or_default().1.merge(sum);
    }
    let mut sites = Sites::default();
    let mut paths = ShownPaths::new(resolver.tables());
    for ((stack, thread), (allocated, live)) in by_key {
        let base = match thread {
            Some(t) => sites.paths.child(ROOT, &thread_location(analysis, t)),
            None => ROOT,
        };
        let node = paths.node(stack, base, &mut sites.paths, &mut |id| resolver.frame(id));
        sites.list.push(PathSite {
            node,
            allocated,
            live,
        });
    }
    sites
}
