//! A thread's last native (or merged) stack, outermost first, with the stack id of each prefix: a new stack
//! interns only the frames below the first one that differs (a prefix tree whose nodes are
//! written once), and the same stack again costs a comparison.

use super::merge::PYTHON;
use super::{Tables, MAX_MERGED};
use crate::stacks;

/// Slots of the per-thread cache of frame ids (a power of two).
const FRAME_SLOTS: usize = 1024;
/// Slots of the per-thread cache of stack ids (a power of two): a merged stack whose Python
/// line changed re-links the native frames below it, mostly to stacks met before.
const STACK_SLOTS: usize = 4096;

#[derive(Clone, Copy)]
struct Node {
    pc: u64,
    /// The interned stack ending at this frame.
    stack: u64,
}

#[derive(Clone, Copy)]
struct FrameSlot {
    pc: u64,
    frame: u64,
}

#[derive(Clone, Copy)]
struct StackSlot {
    parent: u64,
    frame: u64,
    stack: u64,
}

/// Zeroed memory is an empty tree.
pub struct Tree {
    /// The tables' epoch the ids belong to (a followed fork starts new tables).
    epoch: u64,
    depth: usize,
    chain: [Node; MAX_MERGED],
    frames: [FrameSlot; FRAME_SLOTS],
    stacks: [StackSlot; STACK_SLOTS],
}

impl Tree {
    /// The stack id of `pcs` (innermost first, not empty: return addresses, and Python frame
    /// ids marked with `PYTHON`), defining new frames and stacks in `tables`.
    pub fn intern(&mut self, epoch: u64, pcs: &[u64], tables: &mut dyn Tables) -> u64 {
        if self.epoch != epoch {
            self.depth = 0;
            self.frames = [FrameSlot { pc: 0, frame: 0 }; FRAME_SLOTS];
            self.stacks = [StackSlot {
                parent: 0,
                frame: 0,
                stack: 0,
            }; STACK_SLOTS];
            self.epoch = epoch;
        }
        let n = pcs.len().min(MAX_MERGED);
        let outer = |i: usize| pcs[n - 1 - i];
        let mut same = 0;
        while same < n.min(self.depth) && self.chain[same].pc == outer(same) {
            same += 1;
        }
        if same == n {
            return self.chain[n - 1].stack;
        }
        let mut parent = if same == 0 {
            0
        } else {
            self.chain[same - 1].stack
        };
        // Below a stack made in this call, every stack is new: no table lookups.
        let mut fresh = false;
        for i in same..n {
            let pc = outer(i);
            let frame = self.frame(pc, tables);
            (parent, fresh) = self.stack(parent, frame, fresh, tables);
            self.chain[i] = Node { pc, stack: parent };
        }
        self.depth = n;
        parent
    }

    /// The id of the stack `frame` called from `parent` (made just now when `fresh`), and
    /// whether it is new.
    fn stack(
        &mut self,
        parent: u64,
        frame: u64,
        fresh: bool,
        tables: &mut dyn Tables,
    ) -> (u64, bool) {
        let h = stacks::hash(parent.rotate_left(32) ^ frame) as usize;
        let slot = &mut self.stacks[h & (STACK_SLOTS - 1)];
        if !fresh && slot.parent == parent && slot.frame == frame && slot.stack != 0 {
            return (slot.stack, false);
        }
        let found = if fresh {
            Err(stacks::fresh_stack())
        } else {
            stacks::stack(parent, frame)
        };
        let (stack, new) = match found {
            Ok(id) => (id, false),
            Err(id) => {
                tables.stack(id, parent, frame);
                (id, true)
            }
        };
        *slot = StackSlot {
            parent,
            frame,
            stack,
        };
        (stack, new)
    }

    /// The frame id of the return address `pc`.
    fn frame(&mut self, pc: u64, tables: &mut dyn Tables) -> u64 {
        if pc & PYTHON != 0 {
            return pc & !PYTHON;
        }
        let slot = &mut self.frames[(stacks::hash(pc) as usize) & (FRAME_SLOTS - 1)];
        if slot.pc == pc && slot.frame != 0 {
            return slot.frame;
        }
        let frame = match stacks::native_frame(pc) {
            Ok(id) => id,
            Err(id) => {
                tables.native_frame(id, pc);
                id
            }
        };
        *slot = FrameSlot { pc, frame };
        frame
    }
}
