//! In-process tracking: a capture started and stopped inside a running program that was not
//! started by `memtrace run` (the tracker is not preloaded, only loaded, as Python's
//! `_memtrace_tracker` extension module). The preload hooks are put in the GOT slots of every
//! loaded object for the allocation functions (and `dlopen`, so that objects loaded later are
//! patched too), and taken out again at the end.
//!
//! - [`crate::elf`] (base): an object's dynamic relocations, read in memory
//! - [`targets`]: the functions hooked, and what a slot must hold to be patched
//! - [`got`]: patching and restoring slots (RELRO included)
//! - [`known`]: the slots to patch of each loaded object, found once and kept
//! - [`loader`]: the `dlopen` and `dlclose` hooks
//! - [`deepbind`]: under `memtrace run`, the objects a `dlopen` with RTLD_DEEPBIND loads
//! - [`crate::names`] (record): thread names learnt from Python for threads already running
//!
//! The session here is the process-wide state: one capture at a time, started and stopped by
//! pyext::session (which adds what Python needs).

pub mod deepbind;
mod got;
pub mod handle_dlsym;
mod known;
mod loader;
mod relocated;
mod targets;

use crate::config::Config;
use crate::{lifecycle, sys};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU8, Ordering};

const IDLE: u8 = 0;
/// Starting or stopping.
const BUSY: u8 = 1;
const RUNNING: u8 = 2;

static SESSION: AtomicU8 = AtomicU8::new(IDLE);
/// The process whose start made the session run: a forked child inherits the session with the
/// rest of its parent's memory.
static SESSION_PID: AtomicU32 = AtomicU32::new(0);
/// Slots are patched: objects loaded now are patched too.
static HOOKED: AtomicBool = AtomicBool::new(false);

/// What `start` asks for.
pub struct Request {
    pub path: Vec<u8>,
    pub native: bool,
    pub python_allocators: bool,
    pub follow_fork: bool,
    /// `key=value` labels separated by NUL bytes (memtrace_format::settings).
    pub labels: Vec<u8>,
    /// Started by `memtrace attach` in a process already running.
    pub attached: bool,
    /// Sums per stack and thread instead of every event (crate::aggregate).
    pub aggregate: bool,
}

/// A started session, until it runs or is given up: dropping it lets the next start in.
pub struct Starting(());

impl Drop for Starting {
    fn drop(&mut self) {
        let _ = SESSION.compare_exchange(BUSY, IDLE, Ordering::AcqRel, Ordering::Acquire);
    }
}

/// Claims the session for a start: refused while a capture is recorded here (an in-process
/// one, or `memtrace run`'s).
pub fn claim() -> Result<Starting, &'static str> {
    const ACTIVE_HERE: &str = "a memtrace Tracker is already active in this process";
    const TRACKED: &str = "this process is already tracked by memtrace (memtrace run, or followed from its parent's memtrace.Tracker(follow_fork=True) or pytest --memtrace)";
    if SESSION
        .compare_exchange(IDLE, BUSY, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        if SESSION_PID.load(Ordering::Relaxed) == sys::getpid() {
            return Err(ACTIVE_HERE);
        }
        // A forked child with its parent's session: a followed one records it (a capture of
        // its own runs)...
        if lifecycle::capture_started() {
            return Err(TRACKED);
        }
        // ...one not followed records nothing, and a session of its own takes the inherited
        // one's place (its hooks, still patched, pass straight through until then).
        SESSION
            .compare_exchange(RUNNING, BUSY, Ordering::AcqRel, Ordering::Acquire)
            .map_err(|_| ACTIVE_HERE)?;
    }
    let starting = Starting(());
    // With no session, a capture that runs is memtrace run's.
    if lifecycle::capture_started() || another_tracker_preloaded() {
        return Err(TRACKED);
    }
    Ok(starting)
}

/// Whether another copy of the tracker is preloaded (its hooks come first: this one's would
/// only see what it lets through).
fn another_tracker_preloaded() -> bool {
    // SAFETY: dlsym with a NUL-terminated name.
    let init = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"PyInit__memtrace_tracker".as_ptr()) };
    let own = targets::object_of(another_tracker_preloaded as *const () as usize);
    !init.is_null() && targets::object_of(init as usize) != own
}

impl Starting {
    /// Opens the capture (nothing is recorded until ACTIVE is set and the hooks are in).
    pub fn open(&self, req: &Request) -> Result<(), Vec<u8>> {
        register_fork_handlers();
        let cfg = Config {
            output: req.path.clone(),
            force: false,
            follow_fork: req.follow_fork,
            root: req.path.clone(),
            status: None,
            descendant: false,
            python: true,
            python_allocators: req.python_allocators,
            // In-process, types are asked for per stop (record_object_types).
            object_types: false,
            native: req.native,
            exec: 0,
            exec_base: req.path.clone(),
            python_hook: None,
            sample_bytes: 0,
            sample_seed: 0,
            labels: req.labels.clone(),
            attached: req.attached,
            aggregate: req.aggregate,
        };
        lifecycle::begin_in_process(cfg)
    }

    /// Recording starts: the slots of every loaded object are patched.
    pub fn run(self) {
        crate::ACTIVE.store(true, Ordering::Release);
        HOOKED.store(true, Ordering::Release);
        crate::tls::guarded(got::patch_all);
        SESSION_PID.store(sys::getpid(), Ordering::Relaxed);
        SESSION.store(RUNNING, Ordering::Release);
        core::mem::forget(self);
    }
}

/// A running session being stopped.
pub struct Stopping(());

/// Claims the running session for a stop; recording stops at once.
pub fn stop_claim() -> Result<Stopping, &'static str> {
    SESSION
        .compare_exchange(RUNNING, BUSY, Ordering::AcqRel, Ordering::Acquire)
        .map_err(|_| "no memtrace Tracker is active in this process")?;
    crate::ACTIVE.store(false, Ordering::Release);
    Ok(Stopping(()))
}

impl Stopping {
    /// Puts every patched slot back, unless `keep`: then the slots stay patched (the hooks
    /// pass straight through while nothing records), so that the next start has nothing to
    /// write, until [`release_hooks`] or a stop without `keep` puts them back. A crowded
    /// table of patched slots is put back all the same, so that it never fills up over a long
    /// series of captures (a pytest session loading and unloading libraries).
    pub fn unhook(&self, keep: bool) {
        if keep && !got::crowded() {
            return;
        }
        HOOKED.store(false, Ordering::Release);
        crate::tls::guarded(got::restore_all);
    }

    /// Finishes the capture and ends the session.
    pub fn finish(self) {
        lifecycle::end_in_process();
        SESSION.store(IDLE, Ordering::Release);
    }
}

/// Puts back the slots a stop kept patched (`Stopping::unhook(true)`). Refused while a
/// capture is recorded here (its hooks must stay); nothing to do when none are kept.
pub fn release_hooks() -> Result<(), &'static str> {
    SESSION
        .compare_exchange(IDLE, BUSY, Ordering::AcqRel, Ordering::Acquire)
        .map_err(|_| "a memtrace Tracker is active in this process")?;
    let _idle = Starting(());
    HOOKED.store(false, Ordering::Release);
    crate::tls::guarded(got::restore_all);
    Ok(())
}

/// The dlopen hook loaded objects: patch theirs too, if tracking runs.
fn loaded_more() {
    if HOOKED.load(Ordering::Acquire) {
        got::patch_all();
    }
}

fn register_fork_handlers() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: registering plain functions that never unwind.
        unsafe { libc::pthread_atfork(Some(fork_prepare), Some(fork_parent), Some(fork_child)) };
    });
}

extern "C" fn fork_prepare() {
    // Before the first lock (see crate::fork_signals).
    let mask = lifecycle::block_signals_for_fork();
    got::lock_for_fork();
    lifecycle::take_fork_locks(mask);
}

extern "C" fn fork_parent() {
    let mask = lifecycle::release_fork_locks_in_parent();
    got::unlock_after_fork();
    crate::fork_signals::restore(mask);
}

/// In the child the patched slots stay (the memory is the parent's copy): the child's own
/// `stop` puts them back; recording goes on only with follow_fork (see lifecycle::fork_child).
extern "C" fn fork_child() {
    got::unlock_after_fork();
    lifecycle::fork_child();
}
