//! The interned tables (stacks, frames, strings, modules), gathered from every chunk. Records may
//! come after the events that use them, so they are only looked up once the stream is read.

use crate::capture::decode::{ChunkTables, Module};
use hashbrown::HashMap;

/// A frame: a native return address or a Python (function, file, line).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame {
    Native(u64),
    Python { function: u64, file: u64, line: u64 },
}

#[derive(Debug, Default)]
pub struct Tables {
    /// Stack id → (parent stack id, frame id).
    pub stacks: HashMap<u64, (u64, u64)>,
    /// Frame id → frame (native and Python frames share the id space).
    pub frames: HashMap<u64, Frame>,
    pub strings: HashMap<u64, Box<[u8]>>,
    pub modules: Vec<Module>,
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

    /// The frames of a stack, innermost first (stops at unknown ids and at cycles).
    pub fn frames_of(&self, stack: u64) -> Vec<Frame> {
        let mut out = Vec::new();
        let mut id = stack;
        while id != 0 && out.len() < 4096 {
            let Some(&(parent, frame)) = self.stacks.get(&id) else {
                break;
            };
            if let Some(&f) = self.frames.get(&frame) {
                out.push(f);
            }
            if parent == id {
                break;
            }
            id = parent;
        }
        out
    }

    /// A string by id (lossy UTF-8).
    pub fn string(&self, id: u64) -> Option<String> {
        self.strings
            .get(&id)
            .map(|s| String::from_utf8_lossy(s).into_owned())
    }
}
