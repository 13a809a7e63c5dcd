//! Stacks that stop short of the thread's first frame (native ones too deep, at JIT code, at a
//! frame the unwinder could not follow; Python ones deeper than the tracker keeps): the tracker marks where such a stack stops
//! ([`StopsShort`]), and the reports say how much memory lies under such stacks, so that a
//! reader knows which part of a tree has no root below it.

use crate::analysis::tables::{Frame, Tables, MAX_DEPTH};
use crate::analysis::totals::Sum;
use hashbrown::HashMap;
use memtrace_format::StopsShort;

/// The mark a frame stands for, if it is one.
pub fn mark(frame: Frame) -> Option<StopsShort> {
    match frame {
        Frame::Native(addr) => StopsShort::from_address(addr),
        Frame::Python { .. } => None,
    }
}

/// The allocations of `by_stack` whose stacks stop short. Stacks share their outer parts, so
/// each stack id is looked at once.
pub fn under_short_stacks(by_stack: &HashMap<u64, Sum>, tables: &Tables) -> Sum {
    let mut known: HashMap<u64, bool> = HashMap::new();
    let mut path: Vec<u64> = Vec::new();
    let mut total = Sum::default();
    for (&stack, &sum) in by_stack {
        if is_short(stack, tables, &mut known, &mut path) {
            total.merge(sum);
        }
    }
    total
}

/// Whether `stack` or a stack it was called from is a mark, remembering the answer for every
/// stack on the way in `known`.
fn is_short(
    stack: u64,
    tables: &Tables,
    known: &mut HashMap<u64, bool>,
    path: &mut Vec<u64>,
) -> bool {
    path.clear();
    let mut id = stack;
    let short = loop {
        if id == 0 || path.len() >= MAX_DEPTH {
            break false;
        }
        if let Some(&s) = known.get(&id) {
            break s;
        }
        let Some(&(parent, frame)) = tables.stacks.get(&id) else {
            break false;
        };
        path.push(id);
        if tables.frames.get(&frame).copied().and_then(mark).is_some() {
            break true;
        }
        id = parent;
    };
    for &p in path.iter() {
        known.insert(p, short);
    }
    short
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_what_lies_under_a_mark_at_any_depth() {
        let mut t = Tables::default();
        // 1: the mark (root) ← 2 ← 3; 4 (root) ← 5; 6 (root) whose frame is not defined.
        for (id, parent, frame) in [(1, 0, 10), (2, 1, 20), (3, 2, 30), (4, 0, 40), (5, 4, 50)] {
            t.stacks.insert(id, (parent, frame));
        }
        t.stacks.insert(6, (0, 99));
        t.frames
            .insert(10, Frame::Native(StopsShort::TooDeep.address()));
        for f in [20, 30, 40, 50] {
            t.frames.insert(f, Frame::Native(0x40_0000 + f));
        }
        let sum = |count, bytes| Sum { count, bytes };
        let by_stack: HashMap<u64, Sum> = [
            (3, sum(2, 300)),
            (2, sum(1, 20)),
            (5, sum(4, 5000)),
            (6, sum(1, 7)),
        ]
        .into_iter()
        .collect();
        assert_eq!(under_short_stacks(&by_stack, &t), sum(3, 320));
    }
}
