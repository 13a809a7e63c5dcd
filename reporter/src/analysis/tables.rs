//! The interned tables (stacks, frames, strings, modules), gathered from every chunk. Records may
//! come after the events that use them, so they are only looked up once the stream is read.

use crate::capture::decode::{ChunkTables, Module};
use hashbrown::{HashMap, HashSet};

/// A frame: a native return address or a Python (function, file, line).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame {
    Native(u64),
    Python { function: u64, file: u64, line: u64 },
}

/// The most stacks a walk follows from a stack outwards (a bound against cycles in damaged
/// tables): the tracker's deepest chains fit, 4,096 Python frames under the mark of a stack
/// that stops short, and a `--native` one of 4,096 Python frames among 128 native ones (at
/// 4,097 such a chain lost its outer frames and its mark).
pub const MAX_DEPTH: usize = 4096 + 128 + 2;

/// Which frames of a stack the reports show (a `--native` capture holds both kinds).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FrameView {
    /// Native and Python frames as one path: an evaluation-loop frame followed by the Python
    /// frames it ran is shown as those Python frames.
    #[default]
    Merged,
    /// Python frames only (a stack without any keeps its innermost frame).
    PythonOnly,
    /// Native frames only (a stack without any keeps its frames).
    NativeOnly,
}

#[derive(Debug, Default)]
pub struct Tables {
    /// Stack id → (parent stack id, frame id).
    pub stacks: HashMap<u64, (u64, u64)>,
    /// Frame id → frame (native and Python frames share the id space).
    pub frames: HashMap<u64, Frame>,
    pub strings: HashMap<u64, Box<[u8]>>,
    pub modules: Vec<Module>,
    /// Allocations the allocator refused (tick, request), in load order.
    pub failed: Vec<(u64, memtrace_format::failed::Failed)>,
    /// Object-types records: the Python objects live at the script's end, by type.
    pub objects: Vec<memtrace_format::objects::ObjectTypes>,
    /// The names of the types alive at the script's end, by type address (what a typed free
    /// names).
    pub type_names: HashMap<u64, Box<str>>,
    /// The frames reports show.
    pub frame_view: FrameView,
}

impl Tables {
    /// Adds a chunk's table records; returns its thread name record, if any.
    pub fn absorb(&mut self, t: ChunkTables) -> Option<Box<[u8]>> {
        self.stacks.extend(
            t.stacks
                .into_iter()
                .map(|(id, parent, frame)| (id, (parent, frame))),
        );
        self.frames.extend(
            t.native_frames
                .into_iter()
                .map(|(id, addr)| (id, Frame::Native(addr))),
        );
        self.frames.extend(t.python_frames.into_iter().map(|f| {
            (
                f.id,
                Frame::Python {
                    function: f.function,
                    file: f.file,
                    line: f.line,
                },
            )
        }));
        self.strings.extend(t.strings);
        self.modules.extend(t.modules);
        self.failed.extend(t.failed);
        self.objects.extend(t.objects);
        self.type_names.extend(
            t.type_names
                .into_iter()
                .map(|(a, n)| (a, String::from_utf8_lossy(&n).into())),
        );
        t.thread_name
    }

    /// The innermost frame of a stack (the stack's own frame); None for stack 0 or unknown ids.
    pub fn innermost(&self, stack: u64) -> Option<(u64, Frame)> {
        if stack == 0 {
            return None;
        }
        let &(_, frame) = self.stacks.get(&stack)?;
        self.frames.get(&frame).map(|&f| (frame, f))
    }

    /// The innermost frame a report shows for a stack in [`Tables::frame_view`]: the stack's
    /// own frame, or with only one kind shown, the innermost frame of that kind.
    pub fn innermost_shown(&self, stack: u64) -> Option<(u64, Frame)> {
        let wanted = |f: &Frame| match self.frame_view {
            FrameView::Merged => true,
            FrameView::PythonOnly => matches!(f, Frame::Python { .. }),
            FrameView::NativeOnly => matches!(f, Frame::Native(_)),
        };
        if self.frame_view == FrameView::Merged {
            return self.innermost(stack);
        }
        let ids = self.stack_frame_ids(stack);
        ids.iter()
            .filter_map(|id| self.frames.get(id).map(|&f| (*id, f)))
            .find(|(_, f)| wanted(f))
            .or_else(|| self.innermost(stack))
    }

    /// The frame ids of `stack` a report shows in [`Tables::frame_view`], outermost first: with
    /// one kind shown, a stack that has frames of that kind keeps only those.
    pub fn shown_frame_ids(&self, stack: u64) -> Vec<u64> {
        let ids = self.stack_frame_ids(stack);
        let python = |id: &u64| matches!(self.frames.get(id), Some(Frame::Python { .. }));
        let native = |id: &u64| matches!(self.frames.get(id), Some(Frame::Native(_)));
        let keep: &dyn Fn(&u64) -> bool = match self.frame_view {
            FrameView::Merged => &|_| true,
            FrameView::PythonOnly if ids.iter().any(python) => &python,
            FrameView::NativeOnly if ids.iter().any(native) => &|id| !python(id),
            _ => &|_| true,
        };
        ids.iter().rev().copied().filter(|id| keep(id)).collect()
    }

    /// The frames of a stack, innermost first (stops at unknown ids and at cycles).
    pub fn frames_of(&self, stack: u64) -> Vec<Frame> {
        self.stack_frames(stack).into_iter().flatten().collect()
    }

    /// The frames of a stack, innermost first, None for a frame id that is not defined. Stops at
    /// stack 0, at an unknown stack id, at the first stack seen twice (a cycle) and after
    /// [`MAX_DEPTH`] stacks.
    pub fn stack_frames(&self, stack: u64) -> Vec<Option<Frame>> {
        self.stack_frame_ids(stack)
            .iter()
            .map(|f| self.frames.get(f).copied())
            .collect()
    }

    /// The frame ids of a stack, innermost first (see [`Tables::stack_frames`]).
    pub fn stack_frame_ids(&self, stack: u64) -> Vec<u64> {
        self.stack_frame_ids_whole(stack).0
    }

    /// [`Tables::stack_frame_ids`], and whether the chain reached the root: false when it
    /// stopped at a stack id the tables do not have (yet), at a cycle or at the depth limit.
    pub fn stack_frame_ids_whole(&self, stack: u64) -> (Vec<u64>, bool) {
        // The ids walked, to stop at a cycle (a damaged capture): looked up in the list while
        // short (most stacks are: no set to make for each of a page's 100,000 stacks).
        const LIST: usize = 48;
        let mut walked: Vec<u64> = Vec::new();
        let mut seen: HashSet<u64> = HashSet::new();
        let mut out = Vec::new();
        let mut id = stack;
        while id != 0 && out.len() < MAX_DEPTH {
            let again = if walked.len() < LIST {
                let again = walked.contains(&id);
                walked.push(id);
                again
            } else {
                if seen.is_empty() {
                    seen.extend(walked.iter().copied());
                }
                !seen.insert(id)
            };
            if again {
                break;
            }
            let Some(&(parent, frame)) = self.stacks.get(&id) else {
                break;
            };
            out.push(frame);
            id = parent;
        }
        (out, id == 0)
    }

    /// Whether frame `id` and the strings it names are in the tables: its resolution cannot
    /// change as they grow (a native frame's depends on the modules only).
    pub fn frame_known(&self, id: u64) -> bool {
        self.frame_whole(self.frames.get(&id).copied())
    }

    /// [`Tables::frame_known`] of a frame looked up already (None: not in the tables).
    pub fn frame_whole(&self, frame: Option<Frame>) -> bool {
        match frame {
            Some(Frame::Python { function, file, .. }) => {
                self.strings.contains_key(&function) && self.strings.contains_key(&file)
            }
            Some(Frame::Native(_)) => true,
            None => false,
        }
    }

    /// The frames of a stack, innermost first, lazily and without memory, for searches that
    /// stop early: stops at unknown stack ids, at a stack that is its own parent and after
    /// [`MAX_DEPTH`] stacks (a longer cycle); skips frame ids that are not defined.
    pub fn walk(&self, stack: u64) -> Walk<'_> {
        Walk {
            tables: self,
            next: stack,
            steps: 0,
        }
    }

    /// A string by id (bytes that are not UTF-8 as `\xNN`: see escaped.rs).
    pub fn string(&self, id: u64) -> Option<String> {
        self.strings.get(&id).map(|s| super::escaped::escape(s))
    }
}

/// The frames of a stack, innermost first: see [`Tables::walk`].
pub struct Walk<'a> {
    tables: &'a Tables,
    next: u64,
    steps: usize,
}

impl Iterator for Walk<'_> {
    type Item = Frame;

    fn next(&mut self) -> Option<Frame> {
        while self.next != 0 && self.steps < MAX_DEPTH {
            let id = self.next;
            let &(parent, frame) = self.tables.stacks.get(&id)?;
            self.steps += 1;
            self.next = if parent == id { 0 } else { parent };
            if let Some(&f) = self.tables.frames.get(&frame) {
                return Some(f);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tables(stacks: &[(u64, u64, u64)]) -> Tables {
        let mut t = Tables::default();
        for &(id, parent, frame) in stacks {
            t.stacks.insert(id, (parent, frame));
            t.frames.insert(frame, Frame::Native(frame * 16));
        }
        t
    }

    #[test]
    fn walks_outwards_to_the_root() {
        let t = tables(&[(1, 0, 10), (2, 1, 20), (3, 2, 30)]);
        assert_eq!(
            t.frames_of(3),
            vec![Frame::Native(480), Frame::Native(320), Frame::Native(160)]
        );
        assert!(t.frames_of(0).is_empty());
        assert!(t.frames_of(99).is_empty());
    }

    #[test]
    fn odd_tables_end_the_walk() {
        // Its own parent, a cycle of two, a missing parent, a missing frame.
        let mut t = tables(&[(1, 1, 10), (2, 3, 20), (3, 2, 30), (4, 77, 40)]);
        t.stacks.insert(5, (4, 999));
        assert_eq!(t.frames_of(1), vec![Frame::Native(160)]);
        assert_eq!(t.frames_of(2), vec![Frame::Native(320), Frame::Native(480)]);
        assert_eq!(t.walk(2).count(), MAX_DEPTH);
        assert_eq!(t.frames_of(5), vec![Frame::Native(640)]);
        assert_eq!(t.stack_frames(5), vec![None, Some(Frame::Native(640))]);
        assert_eq!(t.walk(5).collect::<Vec<_>>(), vec![Frame::Native(640)]);
    }
}
