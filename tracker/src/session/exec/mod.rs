//! Following an exec of the tracked process (the same process becomes another program: `env`,
//! wrapper scripts ending in `exec`, launchers, `os.execv`).
//!
//! The exec functions are interposed ([`entry`]). When the image that records its own capture
//! (not a vfork child, not a fork child that is not followed) execs:
//! 1. The next image's capture is named `<base>.exec<N>` (base: the process's first capture;
//!    N counts the execs of the process), or `<base>.exec<N>.<k>` when that file exists and
//!    the run may not overwrite it.
//! 2. The tracker's variables and its LD_PRELOAD entry are added to the environment the new
//!    program gets (whatever environment the program passes), so that it is tracked too.
//! 3. The current capture gets an exec record (the program and the next capture, in a Meta
//!    chunk), the calling thread's events are compressed, and the trailer is written with the
//!    EXEC flag: the capture is complete. Other threads' staging areas stay readable in place.
//! 4. If the exec fails, the trailer is withdrawn and recording goes on in the same capture,
//!    with errno as the exec left it.
//!
//! The new image's tracker starts from those variables (config.rs); if it is CPython it is
//! tracked as a Python run ([`crate::pyrun::adopt_image`]).

pub(crate) mod entry;
mod preload;
mod scratch;

use crate::capture::CAPTURE;
use crate::config::{Config, VARIABLES};
use crate::{modules, sys, thread, tls};
use libc::c_char;
use memtrace_format::exec as record;
use memtrace_format::{trailer_flags, Encoder};
use scratch::{entries, Scratch};
use std::sync::atomic::{AtomicPtr, Ordering};

/// How long an exec waits for other threads to finish the event they are writing.
const PAUSE_LIMIT_MS: u32 = 200;

/// What an exec of this image passes on, prepared at start: the hook allocates nothing.
struct Plan {
    /// The tracker library's path (the new LD_PRELOAD's first entry).
    tracker: Vec<u8>,
    /// The same, NUL-terminated (checked before an exec: [`preload::preloadable`]).
    tracker_c: Vec<u8>,
    /// The process's first capture, after which the next one is named.
    base: Vec<u8>,
    /// The next image's number (this image's plus one).
    next: u32,
    force: bool,
    /// `NAME=value\0` strings of the other variables the next image gets.
    fixed: Vec<u8>,
    /// The MEMTRACE_OUTPUT this process was started with, if it still has it (a followed
    /// family's processes keep it for their children).
    given_output: Option<Vec<u8>>,
}

/// The plan of this image; null when execs are not followed (no `memtrace run` capture).
static PLAN: AtomicPtr<Plan> = AtomicPtr::new(core::ptr::null_mut());

/// Prepares the following of execs of this image (start-up, or a followed fork child).
pub fn configure(cfg: &Config, tracker: &[u8]) {
    entry::resolve();
    crate::family::on_own_environment(spawn_with_followed_env);
    let mut fixed = Vec::new();
    let mut set = |name: &str, value: &[u8]| {
        fixed.extend_from_slice(name.as_bytes());
        fixed.push(b'=');
        fixed.extend_from_slice(value);
        fixed.push(0);
    };
    set("MEMTRACE_EXEC", (cfg.exec + 1).to_string().as_bytes());
    set("MEMTRACE_EXEC_BASE", &cfg.exec_base);
    if let Some(status) = &cfg.status {
        set("MEMTRACE_STATUS", status);
    }
    if cfg.force {
        set("MEMTRACE_FORCE", b"1");
    }
    if cfg.follow_fork {
        set("MEMTRACE_FOLLOW_FORK", b"1");
        set("MEMTRACE_PARENT_CAPTURE", &cfg.root);
    }
    if !cfg.python_allocators {
        set("MEMTRACE_PYTHON_ALLOCATORS", b"0");
    }
    if !cfg.object_types {
        set("MEMTRACE_OBJECT_TYPES", b"0");
    }
    if cfg.native {
        set("MEMTRACE_NATIVE", b"1");
    }
    if cfg.aggregate {
        set("MEMTRACE_AGGREGATE", b"1");
    }
    if cfg.sample_bytes > 0 {
        set(
            "MEMTRACE_SAMPLE_BYTES",
            cfg.sample_bytes.to_string().as_bytes(),
        );
    }
    if cfg.sample_seed > 0 {
        set(
            "MEMTRACE_SAMPLE_SEED",
            cfg.sample_seed.to_string().as_bytes(),
        );
    }
    if !cfg.labels.is_empty() {
        let labels: Vec<u8> = cfg
            .labels
            .iter()
            .map(|&b| if b == 0 { b'\n' } else { b })
            .collect();
        set("MEMTRACE_LABELS", &labels);
    }
    if let Some(hook) = &cfg.python_hook {
        set("MEMTRACE_PYTHON_HOOK", hook);
    }
    let plan = Box::new(Plan {
        tracker: tracker.to_vec(),
        tracker_c: [tracker, b"\0"].concat(),
        base: cfg.exec_base.clone(),
        next: cfg.exec + 1,
        force: cfg.force,
        fixed,
        given_output: given_output(),
    });
    // An earlier plan (the parent's, in a fork child) is left in place: a vfork sibling may
    // still read it.
    PLAN.store(Box::into_raw(plan), Ordering::Release);
}

/// A followed fork child starts its own capture: its execs are named after it. Nothing when
/// execs are not followed (in-process tracking).
pub fn after_fork(child: &Config) {
    let plan = PLAN.load(Ordering::Acquire);
    if !plan.is_null() {
        // SAFETY: plans are never freed.
        let tracker = unsafe { (*plan).tracker.clone() };
        configure(child, &tracker);
    }
}

/// Whether the exec will find its file: false only when the path certainly names nothing (a
/// shell trying each directory of PATH), so that such attempts leave the capture alone.
#[derive(Clone, Copy)]
pub enum Target {
    /// A path that execve resolves as access(2) does.
    Path(*const c_char),
    /// A file the exec function finds from a descriptor (fexecve, execveat): the path of the
    /// same file (/proc/self/fd/N...), read to tell whether the tracker can be preloaded into
    /// it; whether it is there is left to the exec.
    Behind(*const c_char),
    /// Found by the exec function itself (PATH search).
    Unknown,
}

/// Runs the exec `call` with the environment `envp`, followed when this image records its own
/// capture. `program` is what the record names as the program.
///
/// # Safety
/// `argv` and `envp` are null or NULL-terminated arrays of C strings, as exec takes them.
pub unsafe fn follow(
    target: Target,
    program: &[u8],
    argv: *const *const c_char,
    envp: *const *const c_char,
    call: impl Fn(*const *const c_char) -> libc::c_int,
) -> libc::c_int {
    let plan = PLAN.load(Ordering::Acquire);
    if !plan.is_null() && sys::sandboxed() {
        // SAFETY: plans are never freed; envp as the caller promises.
        return unsafe { exec_sandboxed(&*plan, envp, call) };
    }
    if plan.is_null() || !crate::state::records_this_image() {
        // SAFETY: argv as the caller promises.
        let vfork_child = unsafe { crate::family::vfork_child_execs(program, argv) };
        if vfork_child {
            // SAFETY: envp as the caller promises.
            if let Some((scratch, env)) = unsafe { for_a_followed_child(envp) } {
                // The area is in the parent's memory: a successful exec leaves it there, for
                // the next vfork child's exec to give back (one such area at most).
                let area = leave_in_the_parent(scratch);
                let rc = call(env);
                // The exec failed: given back now.
                take_back(area);
                return rc;
            }
        }
        return call(envp);
    }
    // SAFETY: plans are never freed.
    let plan = unsafe { &*plan };
    let t = tls::get();
    let was = t.in_tracker;
    t.in_tracker = 1;
    // SAFETY: as the caller promises.
    let Some(mut prepared) = (unsafe { prepare(plan, program, argv, envp) }) else {
        // No memory for the new environment: the program runs as it asked, untracked.
        tls::get().in_tracker = was;
        return call(envp);
    };
    let reachable = match target {
        Target::Path(p) => accessible(p, libc::F_OK),
        Target::Behind(_) | Target::Unknown => true,
    };
    // SAFETY: envp as the caller promises.
    let its_own_run = unsafe { sets_its_own_capture(plan, envp) };
    // SAFETY: envp is a NULL-terminated array of C strings, as exec takes it.
    let sanitizer_preloaded = preload::preloads_a_sanitizer(unsafe { entries(envp) });
    let preloadable = match target {
        _ if its_own_run || sanitizer_preloaded => false,
        // A program that lowered its open-file limit to the descriptors it keeps: the loader
        // could not open the tracker, and would say so on the program's stderr.
        _ if sys::no_descriptor_free_after_exec() => false,
        Target::Path(p) | Target::Behind(p) if reachable => {
            // SAFETY: a NUL-terminated path, as exec takes it.
            let path = unsafe { cstr(p) };
            // SAFETY: envp is a NULL-terminated array of C strings, as exec takes it.
            let host = preload::hosts_a_guest(unsafe { entries(envp) });
            preload::preloadable(path, &plan.tracker_c, host)
        }
        _ => true,
    };
    let envp_next = if its_own_run {
        envp
    } else if preloadable {
        prepared.envp
    } else {
        prepared.plain_envp
    };
    let emptied = if reachable {
        // No other thread is left halfway through writing a chunk when the exec ends it.
        thread::pause_others(PAUSE_LIMIT_MS);
        checkpoint(was != 0, &mut prepared)
    } else {
        None
    };
    let mut rc = call(envp_next);
    // The exec failed: the program goes on, and so does its capture.
    // SAFETY: this thread's errno slot.
    let mut errno = unsafe { *libc::__errno_location() };
    if errno == libc::E2BIG {
        // The tracker's variables made the environment too large: the program as it asked,
        // untracked, rather than a failure it would not have had; and without the variables
        // the process was given to follow children (--follow-fork), which the program's own
        // environment carries.
        for env in [envp, prepared.plain_envp] {
            rc = call(env);
            // SAFETY: as above.
            errno = unsafe { *libc::__errno_location() };
            if errno != libc::E2BIG {
                break;
            }
        }
    }
    if reachable {
        CAPTURE.withdraw_trailer();
        thread::resume_others();
    }
    if let Some((off, len)) = emptied {
        if CAPTURE.refill(off, len) {
            // The hole took the staging area's directory with it.
            thread::restart_current(tls::get());
        }
    }
    drop(prepared);
    tls::get().in_tracker = was;
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = errno };
    rc
}

const OUTPUT: &[u8] = b"MEMTRACE_OUTPUT=";

/// libc's `environ`: the process's environment now.
fn process_environment() -> *const *const c_char {
    extern "C" {
        static environ: *const *const c_char;
    }
    // SAFETY: a plain read of libc's pointer.
    unsafe { environ }
}

/// The MEMTRACE_OUTPUT of the process's environment now.
fn given_output() -> Option<Vec<u8>> {
    // SAFETY: libc's environment: a NULL-terminated array of C strings; read only.
    let env = unsafe { entries(process_environment()) };
    env.into_iter()
        .find_map(|e| e.strip_prefix(OUTPUT))
        .map(<[u8]>::to_vec)
}

/// The area a vfork child's environment was built in, left in the parent's memory by its
/// successful exec: (address, length), 0 when none.
static LEFT_BY_A_VFORK_CHILD: [core::sync::atomic::AtomicUsize; 2] = [
    core::sync::atomic::AtomicUsize::new(0),
    core::sync::atomic::AtomicUsize::new(0),
];

/// Before a vfork child's exec with the environment in `scratch`: gives back the area an
/// earlier vfork child's successful exec left in this memory, and notes this one as the next
/// to give back (a vfork child that execs cannot unmap what it made in its parent's memory).
fn leave_in_the_parent(scratch: Scratch) -> (usize, usize) {
    let (base, len) = scratch.leak();
    take_back((
        LEFT_BY_A_VFORK_CHILD[0].swap(base as usize, Ordering::AcqRel),
        LEFT_BY_A_VFORK_CHILD[1].swap(len, Ordering::AcqRel),
    ));
    (base as usize, len)
}

/// Unmaps an area [`leave_in_the_parent`] noted (after its exec failed, or an earlier one).
fn take_back((base, len): (usize, usize)) {
    if base == 0 || len == 0 {
        return;
    }
    if LEFT_BY_A_VFORK_CHILD[0]
        .compare_exchange(base, 0, Ordering::AcqRel, Ordering::Relaxed)
        .is_ok()
    {
        LEFT_BY_A_VFORK_CHILD[1].store(0, Ordering::Release);
    }
    sys::unmap(base as *mut u8, len);
}

/// Whether the environment `envp` names a capture (MEMTRACE_OUTPUT) other than the one this
/// process was given (`plan`): a `memtrace run` inside a followed family starts its program
/// so, which its own tracker records. The environment then passes as it is.
///
/// # Safety
/// `envp` is null or a NULL-terminated array of C strings.
unsafe fn sets_its_own_capture(plan: &Plan, envp: *const *const c_char) -> bool {
    // SAFETY: as the caller promises.
    let Some(theirs) = (unsafe { entries(envp) }).find_map(|e| e.strip_prefix(OUTPUT)) else {
        return false;
    };
    plan.given_output.as_deref() != Some(theirs)
}

/// The environment for a child started with one of its own (posix_spawn's envp, a vfork
/// child's exec) under --follow-fork: `envp` with the tracker's variables of this process and
/// its LD_PRELOAD entry, so that the child is followed as one started with the process's
/// environment is (a fork child's exec gets them back too). None when children are not
/// followed, when `envp` is the process's own or names a capture already (a memtrace run of
/// the program's own), or when no room can be had.
///
/// # Safety
/// `envp` is null or a NULL-terminated array of C strings.
unsafe fn for_a_followed_child(
    envp: *const *const c_char,
) -> Option<(Scratch, *const *const c_char)> {
    let plan = PLAN.load(Ordering::Acquire);
    if plan.is_null() || sys::sandboxed() {
        return None;
    }
    // SAFETY: plans are never freed.
    let plan = unsafe { &*plan };
    let environ = process_environment();
    // SAFETY: libc's environment, read only; envp as the caller promises.
    let (own, env) = unsafe { (entries(environ), entries(envp)) };
    if envp == environ || !own.clone().any(|e| e == b"MEMTRACE_FOLLOW_FORK=1") {
        return None;
    }
    if env.clone().any(|e| e.starts_with(OUTPUT)) {
        return None;
    }
    let variables = own.filter(|e| ours(e));
    let preload = loaders_preload(env.clone());
    let room = 8 * (env.clone().count() + variables.clone().count() + 4)
        + 2 * plan.tracker.len()
        + 2 * preload.map_or(0, <[u8]>::len)
        + 64;
    let mut s = Scratch::new(room)?;
    let list = s.pointers(env.clone().count() + variables.clone().count() + 2)?;
    let entry = preload_entry(&mut s, &plan.tracker, preload, &plan.tracker)?;
    let mut n = program_variables(env, Some(entry), list);
    for v in variables {
        list[n] = v.as_ptr() as *const c_char;
        n += 1;
    }
    list[n] = core::ptr::null();
    Some((s, list.as_ptr()))
}

/// [`for_a_followed_child`] around `call` (what posix_spawn's hook calls: see
/// family::on_own_environment): None when the environment serves as it is.
///
/// # Safety
/// `envp` is null or a NULL-terminated array of C strings.
unsafe fn spawn_with_followed_env(
    envp: *const *const c_char,
    call: &mut dyn FnMut(*const *const c_char) -> libc::c_int,
) -> Option<libc::c_int> {
    // SAFETY: as the caller promises.
    let (scratch, env) = unsafe { for_a_followed_child(envp) }?;
    let rc = call(env);
    drop(scratch);
    Some(rc)
}

/// After a successful chroot: when the tracker's library is out of the new root's reach, the
/// process's environment drops the tracker's variables and its LD_PRELOAD entry (there under
/// --follow-fork). Every later exec, `system` and `popen` included (they exec inside libc,
/// where no hook runs), would otherwise have the loader print an error about the preload on
/// the program's stderr. The new environment lives for good (as one `setenv` makes).
pub fn after_chroot() {
    let plan = PLAN.load(Ordering::Acquire);
    if plan.is_null() || sys::sandboxed() {
        return;
    }
    // SAFETY: plans are never freed.
    let plan = unsafe { &*plan };
    if plan.tracker_c.first() == Some(&b'/')
        && accessible(plan.tracker_c.as_ptr().cast(), libc::R_OK)
    {
        return;
    }
    extern "C" {
        static mut environ: *const *const c_char;
    }
    let _errno = sys::ErrnoGuard::new();
    // SAFETY: libc's environment, NULL-terminated C strings; replaced the way a program may
    // replace it (POSIX lets it assign `environ`).
    unsafe {
        let env = entries(environ);
        if !env
            .clone()
            .any(|e| e.starts_with(b"LD_PRELOAD=") || ours(e))
        {
            return;
        }
        let room = 8 * (env.clone().count() + 4) + 2 * env.clone().map(<[u8]>::len).sum::<usize>();
        let Some(mut s) = Scratch::new(room + 4096) else {
            return;
        };
        if let Some(list) = plain_environment(&mut s, env, &plan.tracker) {
            core::mem::forget(s);
            environ = list;
        }
    }
}

/// An exec after the process sandboxed itself (session::sandbox): the new image inherits the
/// filter, so it gets the program's environment without the tracker (whose start-up would make
/// calls the filter forbids), built in static memory, with no system call.
///
/// # Safety
/// `envp` is null or a NULL-terminated array of C strings.
unsafe fn exec_sandboxed(
    plan: &Plan,
    envp: *const *const c_char,
    call: impl Fn(*const *const c_char) -> libc::c_int,
) -> libc::c_int {
    // SAFETY: as the caller promises.
    let env = unsafe { entries(envp) };
    let plain = Scratch::in_static().and_then(|mut s| {
        let list = plain_environment(&mut s, env, &plan.tracker)?;
        Some((list, s))
    });
    match plain {
        Some((list, _scratch)) => call(list),
        // Another thread is exec'ing at the same moment, or an environment past the area's
        // size: as the program asked.
        None => call(envp),
    }
}

/// An exec made ready: the new environment and the exec record, in `_scratch`.
struct Prepared {
    envp: *const *const c_char,
    /// The program's environment without the tracker's variables and LD_PRELOAD entry: for a
    /// program the tracker cannot be preloaded into ([`preload::preloadable`]).
    plain_envp: *const *const c_char,
    record: &'static [u8],
    _scratch: Scratch,
}

/// Builds the new environment (the program's, without the tracker's variables and with this
/// plan's) and the exec record.
unsafe fn prepare(
    plan: &Plan,
    program: &[u8],
    argv: *const *const c_char,
    envp: *const *const c_char,
) -> Option<Prepared> {
    // SAFETY: as the caller promises.
    let env = unsafe { entries(envp) };
    // SAFETY: as above.
    let args = unsafe { entries(argv) };
    let preload = loaders_preload(env.clone());
    let names = plan.fixed.split(|&b| b == 0).filter(|s| !s.is_empty());
    let room = 8 * (env.clone().count() + names.clone().count() + 4)
        + plan.fixed.len()
        + 2 * plan.base.len()
        + 2 * preload.map_or(0, <[u8]>::len)
        + plan.tracker.len()
        + 2 * record::MAX_PAYLOAD
        + 256;
    let mut s = Scratch::new(room)?;
    let next = next_capture(&mut s, plan)?;
    let list = s.pointers(env.clone().count() + names.clone().count() + 3)?;
    let entry = preload_entry(&mut s, &plan.tracker, preload, &plan.tracker)?;
    let mut n = program_variables(env.clone(), Some(entry), list);
    list[n] = s.cstr(&[b"MEMTRACE_OUTPUT=", next])?;
    n += 1;
    for v in names {
        list[n] = v.as_ptr() as *const c_char;
        n += 1;
    }
    list[n] = core::ptr::null();
    let plain = plain_environment(&mut s, env, &plan.tracker)?;
    let payload = s.take(record::MAX_PAYLOAD)?;
    let len = record::encode(payload, next, program, args);
    let out = s.take(Encoder::table_record_len(len) + 16)?;
    let (tick, _) = crate::clock::pair();
    let used = Encoder::new().extended(out, 0, tick, record::EXEC_KIND, &payload[..len]);
    Some(Prepared {
        envp: list.as_ptr(),
        plain_envp: plain,
        record: &out[..used],
        _scratch: s,
    })
}

/// The program's environment `env` without the tracker: its variables gone, and LD_PRELOAD's
/// entry of `tracker` (LD_PRELOAD too, when nothing else was in it), built in `s`.
fn plain_environment<'e>(
    s: &mut Scratch,
    env: impl Iterator<Item = &'e [u8]> + Clone,
    tracker: &[u8],
) -> Option<*const *const c_char> {
    let preload = loaders_preload(env.clone());
    let list = s.pointers(env.clone().count() + 2)?;
    let others = preload_entry(s, b"", preload, tracker);
    program_variables(env, others, list);
    Some(list.as_ptr())
}

/// The value of the LD_PRELOAD entry the loader takes: the last one (getenv gives the first).
fn loaders_preload<'e>(env: impl Iterator<Item = &'e [u8]>) -> Option<&'e [u8]> {
    env.filter_map(|e| e.strip_prefix(b"LD_PRELOAD=")).last()
}

/// Puts the entries of `env` that are the program's (not the tracker's variables) at the
/// start of `out`, in their order, with `preload` in place of the last LD_PRELOAD entry, the
/// loader's (at the end when there is none; nothing when `preload` is None), earlier ones as
/// they were: the program's environment keeps its order across the exec. Returns how many.
fn program_variables<'e>(
    env: impl Iterator<Item = &'e [u8]> + Clone,
    preload: Option<*const c_char>,
    out: &mut [*const c_char],
) -> usize {
    let mut n = 0;
    let mut preload = preload;
    let mut left = env
        .clone()
        .filter(|e| e.starts_with(b"LD_PRELOAD="))
        .count();
    for e in env {
        if e.starts_with(b"LD_PRELOAD=") {
            left -= 1;
            if left > 0 {
                out[n] = e.as_ptr() as *const c_char;
                n += 1;
            } else if let Some(p) = preload.take() {
                out[n] = p;
                n += 1;
            }
        } else if !ours(e) {
            out[n] = e.as_ptr() as *const c_char;
            n += 1;
        }
    }
    if let Some(p) = preload {
        out[n] = p;
        n += 1;
    }
    n
}

/// `NAME=` of one of the tracker's variables.
fn ours(entry: &[u8]) -> bool {
    VARIABLES.iter().any(|name| {
        let name = name.to_bytes();
        entry.len() > name.len() && entry.starts_with(name) && entry[name.len()] == b'='
    })
}

/// `LD_PRELOAD=<first>[:<the program's value>]`, the program's value (`old`: None when it
/// has no LD_PRELOAD) without the tracker's entry (`tracker`) and otherwise as it was. With
/// no `first`: None when nothing is left of a value that was the tracker alone.
fn preload_entry(
    s: &mut Scratch,
    first: &[u8],
    old: Option<&[u8]>,
    tracker: &[u8],
) -> Option<*const c_char> {
    // The program's own value, as it was around the tracker's entry; None when it has none
    // (no LD_PRELOAD, or the tracker's entry alone). An empty value is one.
    let program = match old {
        None => None,
        Some(old) => match crate::preload_var::without_tracker(old, tracker) {
            Some(w) if w.is_empty() && !w.separated => None,
            Some(w) => Some((w.before, w.after)),
            None => Some((old, &b""[..])),
        },
    };
    if first.is_empty() && program.is_none() {
        return None;
    }
    let (before, after) = program.unwrap_or((b"", b""));
    let joined = !first.is_empty() && program.is_some();
    let rest = before.len() + after.len();
    let out = s.take(b"LD_PRELOAD=".len() + first.len() + 1 + rest + 1)?;
    let mut at = 0;
    for part in [
        &b"LD_PRELOAD="[..],
        first,
        if joined { b":" } else { b"" },
        before,
        after,
    ] {
        out[at..at + part.len()].copy_from_slice(part);
        at += part.len();
    }
    out[at] = 0;
    Some(out.as_ptr() as *const c_char)
}

/// `<base>.exec<N>`, or with `.2`, `.3`... when that file exists and may not be overwritten.
fn next_capture(s: &mut Scratch, plan: &Plan) -> Option<&'static [u8]> {
    let mut digits = [0u8; 10];
    let n = decimal(plan.next, &mut digits);
    // One buffer, its suffix rewritten for each candidate.
    let stem = plan.base.len() + b".exec".len() + n.len();
    let buf = s.take(stem + 12)?;
    let mut at = 0;
    for part in [&plan.base[..], b".exec", n] {
        buf[at..at + part.len()].copy_from_slice(part);
        at += part.len();
    }
    let mut len = stem;
    let mut k = 2u32;
    while !plan.force && accessible(buf.as_ptr() as *const c_char, libc::F_OK) && k < 1000 {
        let mut kd = [0u8; 10];
        let kd = decimal(k, &mut kd);
        buf[stem] = b'.';
        buf[stem + 1..stem + 1 + kd.len()].copy_from_slice(kd);
        len = stem + 1 + kd.len();
        buf[len] = 0;
        k += 1;
    }
    Some(&buf[..len])
}

fn decimal(mut v: u32, out: &mut [u8; 10]) -> &[u8] {
    let mut i = out.len();
    loop {
        i -= 1;
        out[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            return &out[i..];
        }
    }
}

/// The bytes of a C string, its NUL included.
///
/// # Safety
/// `p` is a NUL-terminated string that outlives the use.
unsafe fn cstr<'a>(p: *const c_char) -> &'a [u8] {
    // SAFETY: as the caller promises.
    unsafe { core::ffi::CStr::from_ptr(p) }.to_bytes_with_nul()
}

/// Whether `path` (NUL-terminated, from the current directory) passes access(2) for `mode`
/// (F_OK: names something; R_OK: can be read), by a raw system call, errno kept.
fn accessible(path: *const c_char, mode: libc::c_int) -> bool {
    let _errno = sys::ErrnoGuard::new();
    // SAFETY: a NUL-terminated path; faccessat only reads it.
    unsafe { libc::syscall(libc::SYS_faccessat, libc::AT_FDCWD, path, mode) == 0 }
}

/// Ends the capture as the exec would leave it: the exec record, this thread's events
/// compressed, the modules, the trailer (EXEC) and the file cut to what was written. `nested`:
/// the exec interrupted the tracker on this thread (a signal handler), whose state is then
/// left alone (only lock-free steps run). Returns the file range of this thread's emptied
/// staging area, released to the disk.
fn checkpoint(nested: bool, prepared: &mut Prepared) -> Option<(u64, u64)> {
    let _errno = sys::ErrnoGuard::new();
    CAPTURE.write_meta(0, 1, prepared.record);
    if nested {
        CAPTURE.finish(thread::threads_seen(), trailer_flags::EXEC, false);
        return None;
    }
    crate::aggregate::finish();
    let emptied = thread::flush_current(tls::get());
    modules::refresh();
    CAPTURE.finish(thread::threads_seen(), trailer_flags::EXEC, false);
    CAPTURE.trim();
    if let Some((off, len)) = emptied {
        CAPTURE.punch_hole(off, len);
    }
    emptied
}
