//! The children this image starts, recorded in its own capture (memtrace_format::family) so
//! that a report finds the process family from the parent's capture alone: each child's pid,
//! parent pid, command and start time, in a raw Meta chunk written the moment the parent learns
//! of the child.
//!
//! - fork(): interposed; the parent records the child when fork returns (the command is its own:
//!   the child is its copy until it execs).
//! - vfork() + exec (CPython's subprocess and multiprocessing, most shells' `exec`): a vfork child
//!   shares the parent's memory, its capture mapping included, and the parent's thread waits
//!   until it execs; the exec hook records the child there (exec::follow), as the parent would.
//! - posix_spawn() and posix_spawnp(): interposed; recorded when they return. (glibc's own
//!   `system` and `popen` spawn inside libc: those children are not recorded.)
//!
//! Records are written whether children are followed or not: without --follow-fork they let the
//! run say how many children were left out.

use crate::capture::CAPTURE;
use crate::state::{CAPTURE_PID, FINISHED, STARTED};
use crate::{clock, sys, tls};
use libc::{c_char, c_int, pid_t};
use memtrace_format::family::{self as record, how};
use memtrace_format::{ChunkCodec, ChunkHeader, ChunkKind, Encoder};
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

type ForkFn = unsafe extern "C" fn() -> pid_t;
type SpawnFn = unsafe extern "C" fn(
    *mut pid_t,
    *const c_char,
    *const libc::posix_spawn_file_actions_t,
    *const libc::posix_spawnattr_t,
    *const *mut c_char,
    *const *mut c_char,
) -> c_int;

static FORK: AtomicUsize = AtomicUsize::new(0);
static UNDERSCORE_FORK: AtomicUsize = AtomicUsize::new(0);
static SPAWN: AtomicUsize = AtomicUsize::new(0);
static SPAWNP: AtomicUsize = AtomicUsize::new(0);
/// The last vfork child recorded: one whose exec fails and tries again is recorded once.
static LAST_VFORK_CHILD: AtomicU32 = AtomicU32::new(0);

fn next(name: &core::ffi::CStr) -> usize {
    // SAFETY: dlsym with a NUL-terminated name; RTLD_NEXT: the definition after this library.
    unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr()) as usize }
}

/// Looks the real functions up at start-up.
pub fn resolve() {
    for (slot, name) in [
        (&FORK, c"fork"),
        (&UNDERSCORE_FORK, c"_Fork"),
        (&SPAWN, c"posix_spawn"),
        (&SPAWNP, c"posix_spawnp"),
    ] {
        if slot.load(Ordering::Acquire) == 0 {
            slot.store(next(name), Ordering::Release);
        }
    }
}

fn real(slot: &AtomicUsize, name: &core::ffi::CStr) -> usize {
    match slot.load(Ordering::Acquire) {
        0 => {
            let f = next(name);
            slot.store(f, Ordering::Release);
            f
        }
        f => f,
    }
}

/// This image records a capture of its own (not a vfork child, not an unfollowed fork child).
fn recording() -> bool {
    crate::state::records_this_image()
}

/// Interposed fork(2): the parent records its child.
///
/// # Safety
/// Same contract as libc's fork.
pub unsafe extern "C" fn fork() -> pid_t {
    let f = real(&FORK, c"fork");
    if f == 0 {
        // SAFETY: the system call has fork's contract (no atfork handlers: libc's is missing).
        return unsafe { libc::syscall(libc::SYS_fork) as pid_t };
    }
    // SAFETY: libc's fork.
    let pid = unsafe { core::mem::transmute::<usize, ForkFn>(f)() };
    if pid > 0 && recording() {
        record_fork_child(pid);
    }
    pid
}

/// glibc's _Fork (2.34): a fork that runs no atfork handlers (the system call where libc has
/// none). The tracker's handlers run around it in lifecycle::underscore_fork.
pub fn real_underscore_fork() -> pid_t {
    let f = real(&UNDERSCORE_FORK, c"_Fork");
    if f == 0 {
        // SAFETY: the system call has _Fork's contract.
        return unsafe { libc::syscall(libc::SYS_fork) as pid_t };
    }
    // SAFETY: libc's _Fork.
    unsafe { core::mem::transmute::<usize, ForkFn>(f)() }
}

/// The parent of a child made by _Fork records it, as fork's does.
pub fn record_underscore_fork_child(pid: pid_t) {
    if pid > 0 && recording() {
        record_fork_child(pid);
    }
}

/// Children forked from a signal handler that interrupted one of the tracker's hooks, not
/// recorded yet: writing a record then may need what the interrupted hook holds. Each is
/// (pid, tick of the fork), written by the next fork of this process or at the capture's end
/// (the child is this process's copy: its command is read then as it would be now). A pid of
/// 0 is a free slot; past the last slot a child goes unrecorded.
const PENDING: usize = 1024;
static PENDING_PIDS: [AtomicU32; PENDING] = [const { AtomicU32::new(0) }; PENDING];
static PENDING_TICKS: [AtomicU64; PENDING] = [const { AtomicU64::new(0) }; PENDING];

/// Notes a child forked inside a hook (lock-free: a signal handler's).
fn defer_fork_child(pid: pid_t) {
    let tick = clock::pair().0;
    for (slot, t) in PENDING_PIDS.iter().zip(&PENDING_TICKS) {
        // The tick first: a drain that sees the pid sees it.
        if slot.load(Ordering::Relaxed) == 0 {
            t.store(tick, Ordering::Relaxed);
            if slot
                .compare_exchange(0, pid as u32, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                return;
            }
        }
    }
}

/// In a fork child: the parent's noted children are the parent's to record, never this
/// process's (a followed child would have written them into its own capture, as its own).
pub fn forget_deferred_children() {
    for slot in &PENDING_PIDS {
        slot.store(0, Ordering::Relaxed);
    }
}

/// Writes the child records [`defer_fork_child`] noted (from a hook's ordinary path, or the
/// capture's end).
pub fn record_deferred_children() {
    if crate::tls::get().in_tracker != 0 {
        return;
    }
    for (slot, t) in PENDING_PIDS.iter().zip(&PENDING_TICKS) {
        let pid = slot.load(Ordering::Acquire);
        if pid != 0 {
            let tick = t.load(Ordering::Relaxed);
            slot.store(0, Ordering::Release);
            write_fork_child(pid as pid_t, Some(tick), how::FORK_IN_HANDLER);
        }
    }
}

/// The parent's record of a child made by fork or _Fork: a copy of itself. A fork from a
/// signal handler that interrupted one of the tracker's hooks is noted, and recorded later
/// (see [`PENDING_PIDS`]).
fn record_fork_child(pid: pid_t) {
    if crate::tls::get().in_tracker != 0 {
        defer_fork_child(pid);
        return;
    }
    record_deferred_children();
    write_fork_child(pid, None, how::FORK);
}

/// Writes the record of the fork child `pid` (at `tick`, or now), made as `made` says.
fn write_fork_child(pid: pid_t, tick: Option<u64>, made: u64) {
    let mut argv = [0u8; 4096];
    let n = sys::read_cmdline(&mut argv);
    let words = argv[..n].strip_suffix(&[0]).unwrap_or(&argv[..n]);
    let mut exe = [0u8; 4096];
    let e = sys::readlink_exe(&mut exe);
    // Both as /proc names them, as the child's capture and header do (sys::proc_ids).
    record_child_at(
        sys::proc_pid_of_child(pid as u32),
        sys::proc_ids().0,
        made,
        &exe[..e],
        words.split(|&b| b == 0),
        tick,
    );
}

/// Calls `call` with the environment for a child started with `envp` of its own, when
/// children are followed and it needs the tracker's variables (exec's `for_a_followed_child`);
/// None when `envp` serves as it is.
pub type WithFollowedEnv =
    unsafe fn(*const *const c_char, &mut dyn FnMut(*const *const c_char) -> c_int) -> Option<c_int>;

/// The [`WithFollowedEnv`] exec registers (exec calls this module: this one does not import
/// exec).
static FOLLOWED_CHILD_ENV: AtomicUsize = AtomicUsize::new(0);

/// Registers how a posix_spawn child given an environment of its own gets the tracker's.
pub fn on_own_environment(f: WithFollowedEnv) {
    FOLLOWED_CHILD_ENV.store(f as usize, Ordering::Release);
}

/// Interposed posix_spawn(3).
///
/// # Safety
/// Same contract as libc's posix_spawn.
pub unsafe extern "C" fn posix_spawn(
    pid: *mut pid_t,
    path: *const c_char,
    actions: *const libc::posix_spawn_file_actions_t,
    attr: *const libc::posix_spawnattr_t,
    argv: *const *mut c_char,
    envp: *const *mut c_char,
) -> c_int {
    // SAFETY: forwarded with the caller's arguments.
    unsafe { spawn(&SPAWN, c"posix_spawn", pid, path, actions, attr, argv, envp) }
}

/// Interposed posix_spawnp(3).
///
/// # Safety
/// Same contract as libc's posix_spawnp.
pub unsafe extern "C" fn posix_spawnp(
    pid: *mut pid_t,
    file: *const c_char,
    actions: *const libc::posix_spawn_file_actions_t,
    attr: *const libc::posix_spawnattr_t,
    argv: *const *mut c_char,
    envp: *const *mut c_char,
) -> c_int {
    // SAFETY: forwarded with the caller's arguments.
    unsafe {
        spawn(
            &SPAWNP,
            c"posix_spawnp",
            pid,
            file,
            actions,
            attr,
            argv,
            envp,
        )
    }
}

#[allow(clippy::too_many_arguments)]
unsafe fn spawn(
    slot: &AtomicUsize,
    name: &core::ffi::CStr,
    pid: *mut pid_t,
    path: *const c_char,
    actions: *const libc::posix_spawn_file_actions_t,
    attr: *const libc::posix_spawnattr_t,
    argv: *const *mut c_char,
    envp: *const *mut c_char,
) -> c_int {
    let f = real(slot, name);
    if f == 0 {
        return libc::ENOSYS;
    }
    // A caller may pass no pid slot: the child's pid is then read from one of ours.
    let mut own: pid_t = 0;
    let out = if pid.is_null() {
        &mut own as *mut pid_t
    } else {
        pid
    };
    let mut spawn_with = |env: *const *const c_char| {
        // SAFETY: libc's function with the caller's arguments (and a valid pid slot), the
        // environment the caller's or one built from it.
        unsafe {
            core::mem::transmute::<usize, SpawnFn>(f)(
                out,
                path,
                actions,
                attr,
                argv,
                env as *const *mut c_char,
            )
        }
    };
    if recording() {
        // The aggregated series notes what this process holds as the child starts.
        crate::aggregate::at_fork();
    }
    // A child given an environment of its own is followed as one given the process's.
    let followed = FOLLOWED_CHILD_ENV.load(Ordering::Acquire);
    let rc = match (recording(), followed) {
        (true, f) if f != 0 => {
            // SAFETY: the function exec registered (`on_own_environment`), with the caller's
            // NULL-terminated envp.
            let with_env = unsafe { core::mem::transmute::<usize, WithFollowedEnv>(f) };
            // SAFETY: as above.
            unsafe { with_env(envp as *const *const c_char, &mut spawn_with) }
                .unwrap_or_else(|| spawn_with(envp as *const *const c_char))
        }
        _ => spawn_with(envp as *const *const c_char),
    };
    if rc == 0 && recording() {
        // SAFETY: `out` was just written by posix_spawn; path and argv are the caller's C
        // strings.
        let (child, program, args) =
            unsafe { (*out, text(path), words(argv as *const *const c_char)) };
        if child > 0 {
            let child = sys::proc_pid_of_child(child as u32);
            record_child(child, sys::proc_ids().0, how::SPAWN, program, args);
        }
    }
    rc
}

/// Called by the exec hook in a process that does not record a capture of its own: when it is
/// a vfork child of a recording image (it shares that image's memory), the child is recorded in
/// the parent's capture, under the parent's suspended thread. True for such a child.
///
/// # Safety
/// `argv` is null or a NULL-terminated array of C strings.
pub unsafe fn vfork_child_execs(program: &[u8], argv: *const *const c_char) -> bool {
    let me = sys::getpid();
    let parent = CAPTURE_PID.load(Ordering::Relaxed);
    let vfork_child = STARTED.load(Ordering::Acquire)
        && !FINISHED.load(Ordering::Acquire)
        && parent != 0
        && me != parent;
    if !vfork_child || LAST_VFORK_CHILD.swap(me, Ordering::Relaxed) == me {
        return vfork_child;
    }
    // SAFETY: as the caller promises.
    let args = unsafe { words(argv) };
    record_child(me, parent, how::VFORK_EXEC, program, args);
    true
}

/// The strings of a NULL-terminated array (none for null). (exec has its own: the exec hook
/// calls this module, so this one does not import exec.)
///
/// # Safety
/// `array` is null or a NULL-terminated array of C strings that outlive the iterator.
unsafe fn words(array: *const *const c_char) -> impl Iterator<Item = &'static [u8]> + Clone {
    let mut n = 0usize;
    if !array.is_null() {
        // SAFETY: the caller promises a NULL-terminated array.
        while unsafe { !(*array.add(n)).is_null() } {
            n += 1;
        }
    }
    (0..n).map(move |i| {
        // SAFETY: i < n, the array's length; each entry is a NUL-terminated string.
        unsafe { core::ffi::CStr::from_ptr(*array.add(i)) }.to_bytes()
    })
}

/// The bytes of a C string (empty for null).
unsafe fn text<'a>(p: *const c_char) -> &'a [u8] {
    if p.is_null() {
        return b"";
    }
    // SAFETY: the caller passes a NUL-terminated string.
    unsafe { core::ffi::CStr::from_ptr(p) }.to_bytes()
}

/// Child records written since [`forget_child_records`] (a vfork child's, which shares this
/// memory, included): an in-process capture with none, and no child capture beside it, has no
/// family (the pytest plugin then reads no family report).
static CHILD_RECORDS: AtomicU64 = AtomicU64::new(0);

/// Child records written to the capture since the last [`forget_child_records`].
pub fn child_records() -> u64 {
    CHILD_RECORDS.load(Ordering::Acquire)
}

/// At the start of an in-process capture.
pub fn forget_child_records() {
    CHILD_RECORDS.store(0, Ordering::Release);
}

/// Writes a child record (a one-record raw Meta chunk) to the open capture, stamped now.
fn record_child<'a>(
    pid: u32,
    parent: u32,
    how: u64,
    program: &[u8],
    args: impl Iterator<Item = &'a [u8]> + Clone,
) {
    record_child_at(pid, parent, how, program, args, None);
}

/// [`record_child`], stamped `at` (a tick of the fork) when given.
fn record_child_at<'a>(
    pid: u32,
    parent: u32,
    how: u64,
    program: &[u8],
    args: impl Iterator<Item = &'a [u8]> + Clone,
    at: Option<u64>,
) {
    if !CAPTURE.is_open() {
        return;
    }
    let _errno = sys::ErrnoGuard::new();
    let t = tls::get();
    let was = t.in_tracker;
    t.in_tracker = 1;
    let mut payload = [0u8; record::MAX_PAYLOAD];
    let realtime = sys::clock_ns(libc::CLOCK_REALTIME);
    let n = record::encode(&mut payload, pid, parent, realtime, how, program, args);
    let mut out = [0u8; record::MAX_PAYLOAD + 64];
    let (now, mono) = clock::pair();
    let tick = at.unwrap_or(now);
    let used = Encoder::new().extended(&mut out, 0, tick, record::CHILD_KIND, &payload[..n]);
    let header = ChunkHeader {
        kind: ChunkKind::Meta,
        codec: ChunkCodec::Raw,
        flags: 0,
        payload_crc: 0,
        thread_serial: 0,
        tid: sys::gettid(),
        seq: 0,
        stored_len: used as u32,
        raw_len: used as u32,
        record_count: 1,
        first_tick: tick,
        last_tick: tick,
        // The clock pair is now's (a record written later keeps its fork's tick).
        flush_mono_ns: mono,
        flush_tick: now,
    };
    CAPTURE.write_chunk(&header, &out[..used]);
    CHILD_RECORDS.fetch_add(1, Ordering::AcqRel);
    t.in_tracker = was;
}
