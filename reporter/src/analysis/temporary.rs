//! Temporary allocations: heap blocks freed by the thread that allocated them before it made
//! `threshold` more allocations (threshold 1: freed before the thread's next allocation).

use super::heap::Block;
use super::sets::AllocSet;
use std::collections::VecDeque;

#[derive(Debug)]
pub struct Temporary {
    threshold: usize,
    /// Per thread index: its latest allocations (address, event index), the newest last.
    recent: Vec<VecDeque<(u64, u64)>>,
    pub set: AllocSet,
}

impl Temporary {
    pub fn new(threshold: usize) -> Temporary {
        Temporary {
            threshold: threshold.max(1),
            recent: Vec::new(),
            set: AllocSet::default(),
        }
    }

    pub fn threshold(&self) -> usize {
        self.threshold
    }

    fn thread(&mut self, thread: u32) -> &mut VecDeque<(u64, u64)> {
        let t = thread as usize;
        if t >= self.recent.len() {
            self.recent.resize_with(t + 1, VecDeque::new);
        }
        &mut self.recent[t]
    }

    /// Forgets what came before (a Python run's start-up, when the script starts): its
    /// temporary allocations, and its blocks that are freed later.
    pub fn start_afresh(&mut self) {
        self.recent.clear();
        self.set = AllocSet::default();
    }

    /// Thread `thread` allocated a heap block at `addr` (event `index`).
    #[inline]
    pub fn allocated(&mut self, thread: u32, addr: u64, index: u64) {
        let threshold = self.threshold;
        let q = self.thread(thread);
        if q.len() == threshold {
            q.pop_front();
        }
        q.push_back((addr, index));
    }

    /// Thread `thread` freed `block` at `addr`.
    #[inline]
    pub fn freed(&mut self, thread: u32, addr: u64, block: &Block) {
        let q = self.thread(thread);
        let Some(pos) = q.iter().rposition(|&e| e == (addr, block.index())) else {
            return;
        };
        q.remove(pos);
        self.set.add((block.stack(), block.thread()), block.size);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(index: u64) -> Block {
        Block::new(10, 7, 0, index)
    }

    #[test]
    fn freed_before_the_next_allocation() {
        let mut t = Temporary::new(1);
        t.allocated(0, 0x10, 1);
        t.freed(0, 0x10, &block(1)); // temporary
        t.allocated(0, 0x20, 2);
        t.allocated(0, 0x30, 3);
        t.freed(0, 0x20, &block(2)); // one allocation in between: not with threshold 1
        t.allocated(1, 0x40, 4);
        t.freed(0, 0x40, &block(4)); // another thread frees it: not temporary
        assert_eq!(t.set.total().count, 1);
        let mut t = Temporary::new(2);
        t.allocated(0, 0x20, 2);
        t.allocated(0, 0x30, 3);
        t.freed(0, 0x20, &block(2));
        t.freed(0, 0x30, &block(3));
        assert_eq!((t.set.total().count, t.set.total().bytes), (2, 20));
    }
}
