//! Where the page puts the stacks it does not keep on their own: under the longest chain of
//! their callers that still holds a share of some view, as one "other" frame there, so that a
//! caller's width still counts them. A recursive or data-driven program spreads its memory over
//! thousands of small stacks; merged at the root, they took the whole width and hid the
//! functions that hold the memory (a `build` holding 99.8% of the peak was not on the page).
//!
//! The work is per distinct caller chain, not per frame of every stack: a page may merge
//! 100,000 stacks 40 frames deep.

use hashbrown::HashMap;

/// The bytes of the four views (peak, leaks, temporary, all) of a set of groups.
pub type Views = [u64; 4];

/// The prefix tree of the merged groups' stacks, per thread, down to a bounded depth. Nodes
/// are made after their parents (a parent's index is lower).
pub struct Callers {
    /// Per node: its parent (`NONE` for a thread's root), its frame id, its depth, its views'
    /// bytes (its own groups' until [`Callers::cuts`] adds up the subtrees).
    parent: Vec<u32>,
    frame: Vec<u64>,
    depth: Vec<u32>,
    views: Vec<Views>,
    child: HashMap<(u32, u64), u32>,
    /// The node of a (thread, stack id) already placed ([`Callers::add_stack`]): by id in
    /// `placed_by_id` (the first thread to place it, and its node) when ids are dense
    /// ([`Callers::reserve`]), else or for another thread in `placed`.
    placed: HashMap<(u32, u64), u32>,
    placed_by_id: Vec<(u32, u32)>,
    /// Per group (in the order added): its node.
    leaves: Vec<u32>,
    /// The chain being placed by [`Callers::add_stack`] (kept: one allocation, not one a stack).
    chain: Vec<(u64, u64)>,
    max_depth: u32,
    summed: bool,
}

const NONE: u32 = u32::MAX;

impl Callers {
    /// A tree whose chains are cut at `max_depth` frames (a deeper chain is not worth its size
    /// on the page).
    pub fn new(max_depth: usize) -> Callers {
        Callers {
            parent: Vec::new(),
            frame: Vec::new(),
            depth: Vec::new(),
            views: Vec::new(),
            child: HashMap::new(),
            placed: HashMap::new(),
            placed_by_id: Vec::new(),
            leaves: Vec::new(),
            chain: Vec::new(),
            max_depth: max_depth.min(u32::MAX as usize - 1) as u32,
            summed: false,
        }
    }

    fn root(&mut self, thread: u32) -> u32 {
        self.node(NONE, u64::from(thread))
    }

    /// The child of `parent` for `frame`; `parent` itself at the depth bound.
    fn node(&mut self, parent: u32, frame: u64) -> u32 {
        let Some(depth) = self.depth_below(parent) else {
            return parent;
        };
        let next = self.parent.len() as u32;
        let id = *self.child.entry((parent, frame)).or_insert(next);
        if id == next {
            self.push(parent, frame, depth);
        }
        id
    }

    /// The depth of a child of `parent`, None at the depth bound.
    fn depth_below(&self, parent: u32) -> Option<u32> {
        if parent == NONE {
            return Some(0);
        }
        let d = self.depth[parent as usize];
        (d < self.max_depth).then_some(d + 1)
    }

    fn push(&mut self, parent: u32, frame: u64, depth: u32) -> u32 {
        self.parent.push(parent);
        self.frame.push(frame);
        self.depth.push(depth);
        self.views.push([0; 4]);
        (self.parent.len() - 1) as u32
    }

    fn leaf(&mut self, node: u32, views: Views) {
        for (sum, v) in self.views[node as usize].iter_mut().zip(views) {
            *sum += v;
        }
        self.leaves.push(node);
    }

    /// Adds a group of `thread` whose shown frames are `frames` (outermost first).
    pub fn add_frames(&mut self, thread: u32, frames: &[u64], views: Views) {
        let mut at = self.root(thread);
        for &f in frames {
            at = self.node(at, f);
        }
        self.leaf(at, views);
    }

    /// Adds a group of `thread` whose stack is `stack`, every frame of it shown: `link` gives
    /// a stack id's (parent stack id, frame id), None where the chain stops; 0 is the root.
    /// Only the part of the chain not placed yet is walked, at most `limit` ids.
    pub fn add_stack(
        &mut self,
        thread: u32,
        stack: u64,
        views: Views,
        limit: usize,
        link: impl Fn(u64) -> Option<(u64, u64)>,
    ) {
        let mut chain = std::mem::take(&mut self.chain);
        chain.clear();
        let mut at = stack;
        let mut above = None;
        while at != 0 && chain.len() < limit {
            if let Some(n) = self.placed(thread, at) {
                above = Some(n);
                break;
            }
            let Some((parent, frame)) = link(at) else {
                break;
            };
            chain.push((at, frame));
            at = parent;
        }
        let mut node = match above {
            Some(n) => n,
            None => self.root(thread),
        };
        // A stack id is one (parent, frame): its node is made once, found by its id (no
        // lookup by frame).
        for &(id, frame) in chain.iter().rev() {
            if let Some(depth) = self.depth_below(node) {
                node = self.push(node, frame, depth);
            }
            self.place(thread, id, node);
        }
        self.chain = chain;
        self.leaf(node, views);
    }

    fn placed(&self, thread: u32, id: u64) -> Option<u32> {
        match self.placed_by_id.get(id as usize) {
            Some(&(NONE, _)) => None,
            Some(&(t, n)) if t == thread => Some(n),
            _ => self.placed.get(&(thread, id)).copied(),
        }
    }

    fn place(&mut self, thread: u32, id: u64, node: u32) {
        match self.placed_by_id.get_mut(id as usize) {
            Some(slot) if slot.0 == NONE => *slot = (thread, node),
            _ => {
                self.placed.insert((thread, id), node);
            }
        }
    }

    /// Room for about `stacks` stack ids placed by [`Callers::add_stack`] and their nodes, the
    /// largest id being `max_id`: hundreds of thousands of ids found in hash tables cost
    /// 3 µs a stack, a third of a page's time; dense ids are found by index.
    pub fn reserve(&mut self, stacks: usize, max_id: u64) {
        if max_id <= (stacks as u64).saturating_mul(4).max(1 << 16) {
            self.placed_by_id = vec![(NONE, NONE); max_id as usize + 1];
        } else {
            self.placed.reserve(stacks);
        }
        self.parent.reserve(stacks);
        self.frame.reserve(stacks);
        self.depth.reserve(stacks);
        self.views.reserve(stacks);
    }

    /// For each group added, the node it goes under: the deepest of its callers whose share of
    /// some view (its bytes over `totals`) is at least `threshold`, else its thread's root.
    pub fn cuts(&mut self, totals: [f64; 4], threshold: f64) -> Vec<u32> {
        if !self.summed {
            // Children come after their parents: each subtree is summed before it is added.
            for n in (0..self.parent.len()).rev() {
                let p = self.parent[n];
                if p != NONE {
                    let v = self.views[n];
                    for (sum, v) in self.views[p as usize].iter_mut().zip(v) {
                        *sum += v;
                    }
                }
            }
            self.summed = true;
        }
        let share = |n: usize| {
            let v = &self.views[n];
            (0..4).map(|i| v[i] as f64 / totals[i]).fold(0.0, f64::max)
        };
        // A node qualifies when its parent does and it holds the share (a root always): its
        // cut is itself, else its parent's cut. Parents come first.
        let mut cut = vec![0u32; self.parent.len()];
        for n in 0..self.parent.len() {
            let p = self.parent[n];
            let qualifies = p == NONE || (cut[p as usize] == p && share(n) >= threshold);
            cut[n] = if qualifies { n as u32 } else { cut[p as usize] };
        }
        self.leaves.iter().map(|&l| cut[l as usize]).collect()
    }

    /// Whether `node`, the cut of group `group` (in the order added), is that group's own
    /// stack whole: its leaf node, above the depth bound (a chain cut at the bound is not).
    pub fn is_whole(&self, group: usize, node: u32) -> bool {
        self.leaves.get(group) == Some(&node) && self.depth[node as usize] < self.max_depth
    }

    /// The frame ids from the thread's root down to `node` (outermost first).
    pub fn chain(&self, node: u32) -> Vec<u64> {
        let mut out = Vec::new();
        let mut at = node;
        while self.parent[at as usize] != NONE {
            out.push(self.frame[at as usize]);
            at = self.parent[at as usize];
        }
        out.reverse();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_stacks_go_under_the_callers_that_hold_a_share() {
        // main(1) -> build(2) -> 1,000 leaves (100+i), each 0.1% of 100,000 bytes; the caller
        // holds them all.
        let mut c = Callers::new(64);
        for i in 0..1000u64 {
            c.add_frames(7, &[1, 2, 100 + i], [100, 0, 0, 100]);
        }
        c.add_frames(7, &[1, 3], [0, 0, 0, 0]);
        let totals = [100_000.0, 1.0, 1.0, 100_000.0];
        let cuts = c.cuts(totals, 0.01);
        assert!(cuts[..1000].iter().all(|&n| c.chain(n) == vec![1, 2]));
        // Nothing in main -> 3: it goes under main.
        assert_eq!(c.chain(cuts[1000]), vec![1]);
        // With a threshold no caller reaches, every group stays at its thread's root.
        let cuts = c.cuts(totals, 2.0);
        assert!(cuts.iter().all(|&n| c.chain(n).is_empty()));
    }

    #[test]
    fn a_qualifying_node_below_one_that_does_not_is_not_a_cut() {
        // Shares only fall deeper, but a cut must stay on the qualifying top of the chain.
        let mut c = Callers::new(8);
        c.add_frames(1, &[1, 2, 3], [50, 0, 0, 0]);
        c.add_frames(1, &[1, 4], [50, 0, 0, 0]);
        let cuts = c.cuts([100.0, 1.0, 1.0, 1.0], 0.5);
        assert_eq!(c.chain(cuts[0]), vec![1, 2, 3]);
        assert_eq!(c.chain(cuts[1]), vec![1, 4]);
        let cuts = c.cuts([100.0, 1.0, 1.0, 1.0], 0.6);
        assert_eq!(c.chain(cuts[0]), vec![1]);
        assert_eq!(c.chain(cuts[1]), vec![1]);
    }

    #[test]
    fn chains_stop_at_the_depth_bound() {
        let mut c = Callers::new(3);
        let deep: Vec<u64> = (0..100).collect();
        c.add_frames(1, &deep, [10, 10, 10, 10]);
        let cuts = c.cuts([10.0; 4], 0.001);
        assert_eq!(c.chain(cuts[0]), vec![0, 1, 2]);
    }

    #[test]
    fn threads_have_roots_of_their_own() {
        let mut c = Callers::new(8);
        c.add_frames(1, &[5], [10, 0, 0, 10]);
        c.add_frames(2, &[5], [10, 0, 0, 10]);
        let cuts = c.cuts([20.0, 1.0, 1.0, 20.0], 0.1);
        assert_ne!(cuts[0], cuts[1]);
        assert_eq!(c.chain(cuts[0]), vec![5]);
        assert_eq!(c.chain(cuts[1]), vec![5]);
    }

    #[test]
    fn stacks_placed_through_the_stack_table_share_their_callers() {
        // Stack ids: 1 = frame 10 (root), 2 = frame 20 under 1, 3 = frame 30 under 2, 4 = frame
        // 40 under 2.
        let table = |id: u64| match id {
            1 => Some((0, 10)),
            2 => Some((1, 20)),
            3 => Some((2, 30)),
            4 => Some((2, 40)),
            _ => None,
        };
        let mut c = Callers::new(8);
        c.add_stack(1, 3, [5, 0, 0, 0], 100, table);
        c.add_stack(1, 4, [5, 0, 0, 0], 100, table);
        let cuts = c.cuts([10.0, 1.0, 1.0, 1.0], 0.5);
        assert_eq!(c.chain(cuts[0]), vec![10, 20, 30]);
        assert_eq!(c.chain(cuts[1]), vec![10, 20, 40]);
        let cuts = c.cuts([10.0, 1.0, 1.0, 1.0], 0.9);
        assert_eq!(c.chain(cuts[0]), vec![10, 20]);
        assert_eq!(c.chain(cuts[1]), vec![10, 20]);
    }

    #[test]
    fn ids_found_by_index_place_stacks_as_the_hash_table_does() {
        // Ids 1..=6 chain as id -> id - 1 (frame 10 * id); thread 2 shares them; id 9 lies
        // beyond the reserved range.
        let table = |id: u64| match id {
            1..=6 | 9 => Some((if id == 9 { 6 } else { id - 1 }, 10 * id)),
            _ => None,
        };
        let build = |reserved: bool| {
            let mut c = Callers::new(8);
            if reserved {
                c.reserve(6, 6);
            }
            c.add_stack(1, 4, [5, 0, 0, 0], 100, table);
            c.add_stack(2, 6, [5, 0, 0, 0], 100, table);
            c.add_stack(1, 6, [5, 0, 0, 0], 100, table);
            c.add_stack(2, 9, [5, 0, 0, 0], 100, table);
            let cuts = c.cuts([20.0, 1.0, 1.0, 1.0], 0.01);
            let chains: Vec<Vec<u64>> = cuts.iter().map(|&n| c.chain(n)).collect();
            (cuts, chains)
        };
        let (by_index, chains) = build(true);
        assert_eq!((by_index, chains.clone()), build(false));
        assert_eq!(chains[1], vec![10, 20, 30, 40, 50, 60]);
        assert_eq!(chains[2], vec![10, 20, 30, 40, 50, 60]);
        assert_eq!(chains[3], vec![10, 20, 30, 40, 50, 60, 90]);
    }
}
