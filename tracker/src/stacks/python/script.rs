//! The main script's compilation. After `site` (where the script's start is marked), CPython
//! reads, parses and compiles the script on the main thread before its first frame runs: a few
//! hundred KiB in some thousand allocations that have no Python frame to be charged to. memray
//! runs the script through `runpy`, whose frames cover it; here the start-up hook names the
//! script ([`set`]) and those allocations are charged to one frame, `<compile>` at the script's
//! file, line 0, until the main thread's first Python frame appears.
//!
//! No allocation and no lock: the path is written once into a static buffer before it is
//! published (Release), and read only once published.

use super::Tables;
use crate::stacks;
use crate::tls;
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};

/// The function name of the frame the compilation is charged to.
pub const FUNCTION: &[u8] = b"<compile>";
/// Longer paths are not recorded (their compilation stays without a frame).
const CAPACITY: usize = 4096;

struct Buffer(UnsafeCell<[u8; CAPACITY]>);
// SAFETY: written once, by the one caller that wins CLAIMED, before LEN publishes it; read only
// after LEN is seen non-zero.
unsafe impl Sync for Buffer {}

static PATH: Buffer = Buffer(UnsafeCell::new([0; CAPACITY]));
static CLAIMED: AtomicBool = AtomicBool::new(false);
/// The path's length once written (0: none).
static LEN: AtomicUsize = AtomicUsize::new(0);
/// The main thread's block (its address), set with the path.
static MAIN: AtomicUsize = AtomicUsize::new(0);
/// Where the main thread is: before the script's start, between it and the first allocation
/// without a Python frame (`site`'s last frame is still returning), compiling (until a Python
/// frame runs again: the script's own), or past it.
static PHASE: AtomicU8 = AtomicU8::new(BEFORE);
const BEFORE: u8 = 0;
const STARTED: u8 = 1;
const COMPILING: u8 = 2;
const DONE: u8 = 3;

/// The start-up hook names the script (`path`, as its code objects will name it) on the main
/// thread. Only the first call counts.
pub fn set(t: &tls::Tls, path: &[u8]) {
    if path.is_empty() || path.len() > CAPACITY || CLAIMED.swap(true, Ordering::AcqRel) {
        return;
    }
    // SAFETY: this caller alone won CLAIMED; nothing reads the buffer before LEN is set below.
    let buffer = unsafe { &mut *PATH.0.get() };
    buffer[..path.len()].copy_from_slice(path);
    MAIN.store(t as *const tls::Tls as usize, Ordering::Relaxed);
    LEN.store(path.len(), Ordering::Release);
}

/// Set when the tracker is imported (from `site`, on the main thread) until the script starts:
/// the main thread's first allocation without a Python frame (`site` has returned; CPython
/// reads and compiles the script, or sets up `-c` or `-m`) marks the start. (A profile function
/// watching for `site`'s return did this before; on 3.12+ setting one turns on the monitoring
/// instrumentation, which gives every function run afterwards a block it keeps.)
static WATCHING: AtomicBool = AtomicBool::new(false);
/// The main thread's block (its address), while watching.
static WATCHER: AtomicUsize = AtomicUsize::new(0);

/// Starts watching for the script's start on the calling thread (the main one).
pub fn watch_start(t: &tls::Tls) {
    WATCHER.store(t as *const tls::Tls as usize, Ordering::Relaxed);
    WATCHING.store(true, Ordering::Release);
}

/// Whether the script's start is still to be found (one load on the allocation path).
#[inline(always)]
pub fn watching() -> bool {
    WATCHING.load(Ordering::Relaxed)
}

/// While [`watching`]: true once, at the main thread's first allocation that has no Python
/// frame; the caller marks the script's start then.
#[cold]
pub fn starts_now(t: &tls::Tls) -> bool {
    if WATCHER.load(Ordering::Relaxed) != t as *const tls::Tls as usize {
        return false;
    }
    if super::runs_python_frame() {
        // A start never found (an interpreter that runs no script this way) must not keep
        // every allocation on this path: watching ends unmarked, as a run without a start.
        if WATCHED.fetch_add(1, Ordering::Relaxed) >= WATCH_LIMIT {
            WATCHING.store(false, Ordering::Release);
        }
        return false;
    }
    WATCHING.swap(false, Ordering::AcqRel)
}

/// The main thread's allocations with a Python frame looked at while watching.
static WATCHED: AtomicUsize = AtomicUsize::new(0);
/// A start-up is some ten thousand allocations; a start not found by this many is none.
const WATCH_LIMIT: usize = 5_000_000;

/// The script starts (its start marker is written, `site`'s frame returning): its compilation
/// begins at the main thread's next allocation without a Python frame, if a script was named.
pub fn started() {
    if LEN.load(Ordering::Acquire) > 0 {
        let _ = PHASE.compare_exchange(BEFORE, STARTED, Ordering::AcqRel, Ordering::Relaxed);
    }
}

/// A Python frame runs on the calling thread (its chain just read): on the main thread, the
/// compilation is over when that frame's outermost one runs the script's code. (Frames of
/// other code run in between: CPython asks the path hooks whether the script is a zip file.)
#[inline]
pub fn frame_seen(t: &tls::Tls, tables: &mut dyn Tables) {
    if PHASE.load(Ordering::Relaxed) != COMPILING || !is_main(t) {
        return;
    }
    let Some(file) = super::frames::outermost_file(t) else {
        return;
    };
    if file == string(path(), tables) {
        PHASE.store(DONE, Ordering::Relaxed);
    }
}

/// The main thread may be compiling the script: each of its Python stacks goes through
/// [`frame_seen`].
#[inline(always)]
pub fn compiling() -> bool {
    PHASE.load(Ordering::Relaxed) == COMPILING
}

/// The script's path, once published.
fn path() -> &'static [u8] {
    let len = LEN.load(Ordering::Acquire);
    // SAFETY: published (LEN set after the write), never written again.
    let buffer = unsafe { &*PATH.0.get() };
    &buffer[..len]
}

fn is_main(t: &tls::Tls) -> bool {
    MAIN.load(Ordering::Relaxed) == t as *const tls::Tls as usize
}

/// The stack `<compile>` at the script, for an allocation of the main thread with no Python
/// frame while the script is being compiled; None otherwise.
#[inline]
pub fn compile_stack(t: &tls::Tls, tables: &mut dyn Tables) -> Option<u64> {
    let frame = compile_frame(t, tables)?;
    Some(match stacks::stack(0, frame) {
        Ok(id) => id,
        Err(id) => {
            tables.stack(id, 0, frame);
            id
        }
    })
}

/// The frame `<compile>` at the script (the frame of [`compile_stack`]; a `--native` stack
/// ends with it, so that its Python view names the compilation as a capture without native
/// stacks does).
#[inline]
pub fn compile_frame(t: &tls::Tls, tables: &mut dyn Tables) -> Option<u64> {
    let phase = PHASE.load(Ordering::Acquire);
    if !(phase == STARTED || phase == COMPILING) || !is_main(t) {
        return None;
    }
    compiling_frame(phase, tables)
}

/// `compile_frame` while the script is being compiled (kept out of the allocation path).
#[inline(never)]
fn compiling_frame(phase: u8, tables: &mut dyn Tables) -> Option<u64> {
    if phase == STARTED {
        PHASE.store(COMPILING, Ordering::Relaxed);
    }
    let function = string(FUNCTION, tables);
    let file = string(path(), tables);
    Some(match stacks::python_frame(function, file, 0) {
        Ok(id) => id,
        Err(id) => {
            tables.python_frame(id, function, file, 0);
            id
        }
    })
}

fn string(bytes: &[u8], tables: &mut dyn Tables) -> u64 {
    match stacks::string(bytes) {
        Ok(id) => id,
        Err(id) => {
            tables.string(id, bytes);
            id
        }
    }
}
