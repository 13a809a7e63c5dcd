//! memtrace's tracker: a preloaded shared library that interposes the allocation functions and
//! writes every allocation and free, with its call site, thread and time, to a capture file.
//! `docs/ARCHITECTURE.md` explains the choices; `docs/FORMAT.md` the file it writes.
//!
//! The modules form one-way layers, one folder each, from the bottom up: base → capture →
//! stacks → record → hooks → session. A module imports only from its own layer or the layers
//! below (tracker/tests/layers.rs fails on an upward import); a lower layer that must tell a
//! higher one something is handed a function at start-up.
//!
//! Unsafe code: every unsafe operation sits in its own `unsafe` block, even inside an unsafe
//! function, with a `// SAFETY:` comment that says why it holds (both lints below).

#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

mod base;
mod capture;
mod hooks;
mod record;
mod session;
mod stacks;

// Short paths (`crate::sys`, `crate::thread`, ...) for the modules of every layer, so that a
// module's path does not change when its file moves between layers; tests/layers.rs resolves
// them to their layer.
use base::{
    alloc, barrier, biased_lock, clock, coarse, config, definition, elf, environ, find_loader_lock,
    loader_lock, lock, maps, own_heap, phdr, preload_var, real, sys, tls,
};
use capture::{compress, modules, rss, staging, status};
use record::{aggregate, early, names, sample, thread};
use session::{
    attach, exec, family, fork_signals, inprocess, lifecycle, orphan, pyext, pyrun, state,
};
use stacks::{python, unwind, wrappers};

use std::sync::atomic::AtomicBool;

/// Recording is on: set once the capture is open, cleared when it is finished (or in a fork
/// child that is not followed).
pub(crate) static ACTIVE: AtomicBool = AtomicBool::new(false);

#[global_allocator]
static GLOBAL: alloc::RealAllocator = alloc::RealAllocator;

// Every exported symbol is defined in session/exports.rs.
pub use session::exports::*;
