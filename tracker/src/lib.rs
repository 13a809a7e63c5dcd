//! memtrace's tracker: a preloaded shared library that interposes the allocation functions and
//! writes every allocation and free, with its call site, thread and time, to a capture file.
//! `docs/ARCHITECTURE.md` explains the choices; `docs/FORMAT.md` the file it writes.

mod alloc;
mod barrier;
mod capture;
mod capture_fd;
mod clock;
mod compress;
mod config;
mod definition;
mod environ;
mod exec;
mod hooks;
mod inprocess;
mod lifecycle;
mod lock;
mod modules;
mod python;
mod real;
mod rss;
mod signals;
mod stacks;
mod staging;
mod status;
mod sys;
mod thread;
mod tls;
#[cfg(target_arch = "x86_64")]
mod unwind;
#[cfg(not(target_arch = "x86_64"))]
#[path = "unwind_off.rs"]
mod unwind;

use std::sync::atomic::AtomicBool;

/// Recording is on: set once the capture is open, cleared when it is finished (or in a fork
/// child that is not followed).
pub(crate) static ACTIVE: AtomicBool = AtomicBool::new(false);

#[global_allocator]
static GLOBAL: alloc::RealAllocator = alloc::RealAllocator;

pub use exec::{execl, execle, execlp, execv, execve, execveat, execvp, execvpe, fexecve};
pub use hooks::*;
pub use lifecycle::{__libc_start_main, _exit, exit};
pub use python::PyInit__memtrace_tracker;
pub use signals::{kill, raise};
#[cfg(target_arch = "x86_64")]
pub use unwind::dlclose;
