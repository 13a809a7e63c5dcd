//! The allocation sites of a view: each stack (and thread, with `--threads`) with what it
//! allocated over the run and what of it the view holds, its frames resolved outermost first.

use super::Site;
use crate::analysis::totals::Sum;
use crate::analysis::Analysis;
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
) -> Vec<Site> {
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
    by_key
        .into_iter()
        .map(|((stack, thread), (allocated, live))| {
            let mut frames = Vec::new();
            if let Some(t) = thread {
                frames.push(thread_location(analysis, t));
            }
            frames.extend(resolver.outermost_first(stack).iter().cloned());
            Site {
                frames,
                allocated,
                live,
            }
        })
        .collect()
}
