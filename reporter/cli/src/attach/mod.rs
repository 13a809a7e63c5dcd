//! `memtrace attach PID` and `memtrace detach PID`: tracking a process that is already running,
//! from the moment of the attach, without gdb or lldb.
//!
//! - [`ptrace`]: making the process call a function (its main thread, registers, vector state
//!   and signal mask saved and restored)
//! - [`frame`]: the signal frame each call returns through, which restores the thread by itself
//!   should memtrace be gone
//! - [`target`]: the process's objects and the addresses of the functions called
//! - [`process`]: what /proc says of the process (running, stopped, traced, its owner)
//! - [`paths`]: the files shared with the process, as it names them and as memtrace reaches them
//! - [`files`]: memtrace's own files: the lock, a capture `-f` replaces, leftovers
//!
//! The process is made to call `dlopen` on the tracker library, then one of its entry points
//! (tracker/src/session/attach.rs). A native process calls `memtrace_attach`, which starts
//! in-process tracking and a control thread. A CPython process (3.10 to 3.13) calls
//! `memtrace_attach_python`, which queues, with `Py_AddPendingCall`, a few lines of Python
//! that start the tracker's module (made by the tracker and handed to them, never imported)
//! as the Python `Tracker` does, with Python stacks; its main thread runs them at its next
//! bytecode, with the GIL. Either way the tracker ends tracking (every patched slot and
//! allocator restored, the capture finished) when the file `stop` appears in the attach's
//! directory, `/tmp/memtrace-attach.PID/` (`memtrace detach` creates it), or when the
//! `--duration` is over; it then removes `stop` and `active`. See docs/ATTACH.md.

mod files;
pub mod frame;
mod libc_frames;
mod other_threads;
pub mod paths;
mod process;
pub mod ptrace;
mod state_dir;
pub mod target;

use crate::tui::live::{self, LiveSetup};
use clap::Args;
use files::{claim, remove_leftovers, Replaced};
use memtrace_reporter::analysis::live::Live;
use process::{alive, injection_thread, not_ended, not_permitted, not_running, owner};
use ptrace::{Arg, SeizeError, Stopped};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
#[command(after_help = "\
Starts tracking a running process (native, or CPython 3.10 to 3.13) from now on, until
`memtrace detach PID` or the end of --duration. Memory allocated before the attach is not
attributed: its frees are ignored, so the live heap never goes below zero. Needs ptrace: as
root, or as the process's user with kernel.yama.ptrace_scope = 0. No gdb or lldb.

Examples:
  memtrace attach 1234                 writes memtrace-attach-1234.bin until: memtrace detach 1234
  memtrace attach 1234 -o out.bin --duration 30
  memtrace attach --native 1234        whole native stacks
  memtrace attach --live 1234          and watch it live (quitting the view detaches)")]
pub struct AttachArgs {
    /// The process id
    #[arg(value_name = "PID")]
    pub pid: i32,
    /// Write the capture to FILE (default: memtrace-attach-<pid>.bin in the current directory)
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Overwrite the capture file if it exists
    #[arg(short = 'f', long = "force")]
    pub force: bool,
    /// Stop tracking after S seconds (memtrace waits for it)
    #[arg(long = "duration", value_name = "S")]
    pub duration: Option<f64>,
    /// Record the whole native call stack of every allocation
    #[arg(long = "native")]
    pub native: bool,
    /// Open the live view at once (quitting it detaches)
    #[arg(long = "live")]
    pub live: bool,
}

#[derive(Args, Debug)]
#[command(after_help = "\
Stops the tracking `memtrace attach PID` started: every patched slot and allocator is restored
and the capture finished; the process goes on.

Example:
  memtrace detach 1234")]
pub struct DetachArgs {
    /// The process id
    #[arg(value_name = "PID")]
    pub pid: i32,
}

/// The tracker library (as `memtrace run` finds it).
fn tracker() -> Result<PathBuf, String> {
    crate::run::tracker_library().map_err(|crate::run::RunError(e)| e)
}

/// Runs `memtrace attach`.
pub fn execute(args: AttachArgs) -> Result<(), String> {
    let pid = args.pid;
    // Before anything touches the process: the view could not be shown after all.
    if args.live && !std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        return Err("--live needs a terminal (stdout is not one)".to_string());
    }
    if pid <= 0 || !alive(pid) {
        return Err(format!("no process {pid} (it is gone, or never existed)"));
    }
    if pid as u32 == std::process::id() {
        return Err(format!("process {pid} is memtrace itself"));
    }
    // One attach of a process at a time, from here to the end: a second one that ran meanwhile
    // took the first's files for stale ones and removed them (the process stayed tracked, with
    // no way to detach); taken before the process's state is read, which shows "traced" while
    // another attach makes its calls.
    // Given up once tracking runs: a `memtrace detach` (which takes it too, so that it cannot
    // cancel an attach still making its calls) must be able to stop a --duration or a live
    // view early.
    let claimed_attach = claim(pid)?;
    remove_leftovers();
    if let Some(why) = not_running(pid, false) {
        return Err(why);
    }
    // The thread whose /proc entries tell about the process and that makes the calls.
    let via = injection_thread(pid);
    if !cfg!(target_arch = "x86_64") {
        return Err("attach works on x86-64 only".to_string());
    }
    let objects = target::objects(via).map_err(|e| match e.kind() {
        std::io::ErrorKind::PermissionDenied => not_permitted(pid),
        std::io::ErrorKind::NotFound => format!("no process {pid} (it is gone)"),
        _ => format!("cannot read process {pid}'s memory map: {e}"),
    })?;
    let Some(libc_obj) = target::libc(&objects) else {
        // The dynamic loader mapped without the C library: a program that has just started,
        // whose loader has not loaded it yet.
        let loader = objects.iter().any(|m| {
            m.path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("ld-"))
        });
        if loader {
            return Err(format!(
                "process {pid} is starting (its C library is not loaded yet): try again"
            ));
        }
        return Err(format!(
            "process {pid} is statically linked (no C library is loaded): the tracker cannot be loaded into it"
        ));
    };
    if let Some(why) = target::sandbox_refusal(via) {
        return Err(why);
    }
    // Its files are reached through its root, which is the tracer's to see.
    if let Err(e) = std::fs::read_link(paths::root(via)) {
        return Err(match e.kind() {
            std::io::ErrorKind::PermissionDenied => not_permitted(pid),
            _ => format!("no process {pid} (it is gone)"),
        });
    }
    let shared = paths::state_dir(pid, via);
    let dir = shared.ours.clone();
    let tracker_loaded = has_tracker(&objects);
    if dir.join("active").exists() {
        // No `running`: an attach whose start never ran (its memtrace killed after the
        // dlopen), or a Python one whose start is still queued. No memtrace tends it (this one
        // holds the claim): it is given up, and a queued start finds `active` no longer its own.
        if tracker_loaded && dir.join(RUNNING).exists() {
            return Err(format!(
                "process {pid} is already attached (memtrace detach {pid} first)"
            ));
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
    let exe = std::fs::read_link(format!("/proc/{via}/exe")).unwrap_or_default();
    let python = target::python_minor(&objects, &exe);
    if let Some(minor) = python {
        if !(10..=13).contains(&minor) {
            return Err(format!(
                "process {pid} runs Python 3.{minor}, which attach does not support (3.10 to 3.13)"
            ));
        }
    }
    let cwd =
        std::env::current_dir().map_err(|e| format!("cannot read the current directory: {e}"))?;
    let capture = match &args.output {
        Some(p) if p.is_absolute() => p.clone(),
        Some(p) => cwd.join(p),
        None => cwd.join(format!("memtrace-attach-{pid}.bin")),
    };
    let capture_place = paths::capture(via, &capture)?;
    memtrace_reporter::output::check_capture_output(&capture)?;
    // Only a file is ever replaced: -f moved a directory (/tmp itself) aside for the capture.
    if let Ok(meta) = std::fs::symlink_metadata(&capture) {
        if !meta.is_file() && !meta.file_type().is_symlink() {
            return Err(format!(
                "{} is not a file (a directory or a device): name a file for the capture",
                capture.display()
            ));
        }
    }
    if capture.exists() && !args.force {
        return Err(format!(
            "{} already exists (use -f to overwrite it)",
            capture.display()
        ));
    }
    // An existing capture (-f) is moved aside and put back if the attach fails.
    let replaced = Replaced::aside(&capture)?;
    let duration_ms = match args.duration {
        Some(s) if s.is_finite() && s > 0.0 => (s * 1000.0).ceil() as u64,
        Some(_) => return Err("--duration takes a number of seconds above 0".to_string()),
        None => 0,
    };
    let tracker = tracker()?;
    // From here on Ctrl-C gives up cleanly (see ptrace::catch_interrupts): the files made
    // below are removed.
    let interrupts = ptrace::catch_interrupts();
    // Made anew, never through a link, and given to the process's user (it removes its
    // files there at the end, whoever it runs as).
    state_dir::make(&dir, &shared.theirs, owner(pid))?;
    let held = state_dir::Held::new(&dir);
    let active = dir.join("active");
    let stop = dir.join("stop");
    let token = attach_token();
    // Made exclusively: of two attaches at once, the second leaves the first's files alone (it
    // removed them, and the process was left tracked with no way to detach).
    let claimed = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&active)
        .and_then(|mut f| {
            let content = format!("{}\n{token}\n", capture.to_string_lossy());
            std::io::Write::write_all(&mut f, content.as_bytes())
        });
    match claimed {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(format!(
                "process {pid} is being attached by another memtrace (or is attached: memtrace detach {pid})"
            ))
        }
        Err(e) => return Err(format!("cannot write {}: {e}", active.display())),
    }
    // Ours from here: removed on any failure, which also ends tracking a call given up may
    // still start (its control thread watches for `active`).
    let made = files::Made::new(&dir);
    let _ = std::fs::remove_file(&stop);
    let tracker = paths::tracker(via, &tracker, &shared)?.theirs;
    if ptrace::interrupted() {
        return Err(interrupted(pid));
    }
    let job = Job {
        pid,
        via,
        libc_obj,
        objects: &objects,
        state: &shared,
        capture: &capture_place.theirs,
        duration_ms,
        native: args.native,
        tracker: &tracker,
        token: &token,
    };
    let attached = match python {
        Some(_) => attach_python(&job),
        None => attach_native(&job),
    };
    // With --duration the signals stay caught until its wait (which then detaches): left to
    // their default between the two, a SIGTERM or SIGQUIT ended memtrace silently and the
    // process stayed tracked.
    let kept_interrupts = (duration_ms > 0 && !args.live).then_some(interrupts);
    if let Err(e) = attached {
        return Err(match ptrace::interrupted() {
            true => interrupted(pid),
            false => e,
        });
    }
    // `running` appears once tracking starts (for Python, at the next bytecode, just before
    // the tracker makes the capture): until then a later attach would take this one for an
    // attach given up, and the live view would find no capture.
    let running = dir.join(RUNNING);
    let started = || running.exists() && capture.exists();
    let start = Instant::now();
    while !started() && start.elapsed() < Duration::from_secs(10) && not_ended(pid) {
        if let Some(e) = state_dir::read(&dir.join("error")) {
            return Err(format!(
                "process {pid} could not start tracking: {}",
                e.trim()
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let shown = capture
        .strip_prefix(&cwd)
        .unwrap_or(&capture)
        .display()
        .to_string();
    if !not_ended(pid) {
        // Its files under /proc/PID/root are gone with it: not "cancelled", not "attached".
        held.remove();
        if !capture.exists() {
            return Err(format!(
                "process {pid} ended before tracking started: nothing was recorded"
            ));
        }
        made.keep();
        replaced.discard();
        crate::say!(
            "memtrace: process {pid} ended just after tracking started; its capture holds its run to its end: memtrace stats {shown}"
        );
        return Ok(());
    }
    made.keep();
    replaced.discard();
    let when = humantime_now();
    if !active.exists() {
        // Removed by a detach that did not wait for the lock (another user's temporary
        // directory): nothing is tracked.
        return Err(format!(
            "process {pid}'s attach was cancelled (memtrace detach) before tracking started"
        ));
    }
    drop(claimed_attach);
    if !started() {
        crate::say!(
            "memtrace: attached to process {pid} at {when}; tracking starts when its main thread next runs Python code (it is in a call into C now; other threads running Python do not start it); capture {shown}"
        );
    } else {
        crate::say!(
            "memtrace: attached to process {pid} at {when}; memory allocated before is not attributed; capture {shown}"
        );
    }
    if args.live {
        let viewed = view_live(&capture, pid, &when, &active);
        // Tracking that ended by itself (--duration, the process gone) has nothing left to
        // stop; any other end of the view, a failure included, detaches.
        let (detached, said) = if active.exists() && alive(pid) {
            // `detach` says how it ended itself (one line, not two).
            (detach(pid), true)
        } else {
            held.remove();
            (Ok(()), false)
        };
        viewed?;
        if detached.is_ok() && !said {
            crate::say!("memtrace: detached from process {pid}; the capture is {shown}");
        }
        return detached;
    }
    if duration_ms > 0 {
        // Tracking ends by itself: wait for it. Ctrl-C, SIGTERM or a closed terminal end it
        // early (a detach): they ended memtrace alone, and the process stayed tracked.
        let interrupts = kept_interrupts.unwrap_or_else(ptrace::catch_interrupts);
        let limit = Duration::from_millis(duration_ms) + Duration::from_secs(30);
        let start = Instant::now();
        // As in `detach`: the process ended before its tracker stopped.
        let mut ended = false;
        while start.elapsed() < limit && !ptrace::interrupted() {
            if !not_ended(pid) {
                ended = true;
                break;
            }
            if !active.exists() {
                // A Python process stops tracking as its interpreter ends, just before the
                // process does: seen between the two, its end read as a detach.
                ended = ends_soon(pid);
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        drop(interrupts);
        if ptrace::interrupted() && active.exists() && alive(pid) {
            detach(pid)?;
            return Err(format!(
                "interrupted: detached from process {pid} before the end of --duration; the capture is {shown}"
            ));
        }
        if active.exists() && alive(pid) {
            // The tracker did not stop: the process is still tracked (its interpreter was
            // finalized, or it runs no Python code): saying "detached" would be false.
            return Err(format!(
                "process {pid} did not stop tracking at the end of --duration (a Python process stops when its interpreter runs Python code): it is still tracked, writing {shown}; `memtrace detach {pid}` asks again"
            ));
        }
        held.remove();
        if ended && capture.exists() {
            crate::say!(
                "memtrace: process {pid} ended before the end of --duration; the capture holds its run to its end: memtrace stats {shown}"
            );
            return Ok(());
        }
        if !capture.exists() {
            return Err(format!(
                "process {pid} ran no Python code while attached (a long call into C, such as a sleep): tracking never started and no capture was written"
            ));
        }
        crate::say!(
            "memtrace: detached from process {pid}; view the capture with: memtrace stats {shown}"
        );
    } else {
        crate::say!("memtrace: stop with: memtrace detach {pid}");
    }
    Ok(())
}

/// Whether process `pid`, whose tracking just stopped, ends within half a second.
fn ends_soon(pid: i32) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(500) {
        if !not_ended(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

/// The live view of an attached process's capture, once it is there: a Python process starts
/// tracking when its interpreter next runs Python code, which a long call into C delays.
fn view_live(capture: &Path, pid: i32, when: &str, active: &Path) -> Result<(), String> {
    let waited = Instant::now();
    let live = loop {
        match Live::open(capture, true) {
            Ok(live) => break live,
            Err(e) => {
                if !alive(pid) || !active.exists() {
                    return Err(format!(
                        "process {pid} ended its tracking before it started: {e}"
                    ));
                }
                if waited.elapsed() > LIVE_PATIENCE {
                    return Err(format!(
                        "process {pid} did not start tracking within {} s (a Python process starts when its main thread next runs Python code): {e}",
                        LIVE_PATIENCE.as_secs()
                    ));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    };
    let setup = LiveSetup {
        command: format!("process {pid} (attached at {when})"),
        note: None,
        quit_on_hangup: true,
        ended: Box::new(move |_| (!alive(pid)).then(|| "the process is gone".to_string())),
    };
    live::run(live, setup).map_err(|e| format!("the live view failed: {e}"))
}

/// How long `attach --live` waits for a Python process to start tracking.
const LIVE_PATIENCE: Duration = Duration::from_secs(60);

/// What an attach given up on Ctrl-C says.
fn interrupted(pid: i32) -> String {
    format!("interrupted: process {pid} goes on as before, untracked")
}

/// The wall-clock time now, as `HH:MM:SS UTC`.
fn humantime_now() -> String {
    let s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!("{:02}:{:02}:{:02} UTC", s / 3600 % 24, s / 60 % 60, s % 60)
}

/// The C library's functions a call injected into the process must not run under: the
/// allocator's (their locks; a single-threaded program's heap, which they change without one)
/// and the loader's (dlopen takes its lock).
const ALLOCATOR_FUNCTIONS: &[&str] = &[
    "malloc",
    "free",
    "calloc",
    "realloc",
    "reallocarray",
    "memalign",
    "aligned_alloc",
    "posix_memalign",
    "valloc",
    "pvalloc",
    "malloc_trim",
    "malloc_usable_size",
    "mallinfo",
    "mallinfo2",
    "malloc_stats",
    "malloc_info",
    "mallopt",
    "cfree",
    "__libc_malloc",
    "__libc_free",
    "__libc_calloc",
    "__libc_realloc",
    "__libc_memalign",
    "__libc_valloc",
    "__libc_pvalloc",
];
const LOADER_FUNCTIONS: &[&str] = &[
    "dlopen",
    "dlclose",
    "dlsym",
    "dlvsym",
    "dladdr",
    "dladdr1",
    "dlinfo",
    "dlmopen",
    "dl_iterate_phdr",
    "__libc_dlopen_mode",
    "__libc_dlclose",
    "__libc_dlsym",
    "fork",
    "_Fork",
];

/// How long memtrace waits for the main thread to leave the allocator and the loader (long
/// enough for a loaded machine, where the thread runs only now and then).
const SAFE_POINT_PATIENCE: Duration = Duration::from_secs(15);

fn seize(pid: i32, via: i32, objects: &[target::Mapped]) -> Result<Stopped, String> {
    let mut thread = Stopped::seize(via).map_err(|e| match e {
        SeizeError::Gone => format!("no process {pid} (it is gone)"),
        SeizeError::NotPermitted => not_permitted(pid),
        SeizeError::Other(e) => format!("cannot attach to process {pid}: {e}"),
    })?;
    // The addresses were read before the stop: a process that ran a new program meanwhile (one
    // just started by a shell) has other ones, and a call to a stale address runs whatever is
    // there now.
    let now = target::objects(via).unwrap_or_default();
    let libc_at = |objs: &[target::Mapped]| target::libc(objs).map(|m| (m.path.clone(), m.start));
    if libc_at(&now) != libc_at(objects) {
        return Err(format!(
            "process {pid} ran a new program during the attach (it was starting): try again"
        ));
    }
    let libcs: Vec<&target::Mapped> = objects
        .iter()
        .filter(|m| {
            m.path.file_name().is_some_and(|n| {
                let n = n.to_string_lossy();
                n.starts_with("libc.so") || n.starts_with("libdl.so")
            })
        })
        .collect();
    // Read once seized: /proc/PID/mem is the tracer's to read.
    let Some(restorer) = target::sigreturn_code(via, &libcs) else {
        return Err(format!(
            "cannot find the C library's signal return code in process {pid} (attach knows glibc's and musl's)"
        ));
    };
    thread.set_restorer(restorer);
    let ranges_of = |names: &[&str]| -> Vec<(u64, u64)> {
        libcs
            .iter()
            .flat_map(|m| target::ranges(via, m, names))
            .collect()
    };
    let hazards = ptrace::Hazards {
        libc: libcs
            .iter()
            .flat_map(|m| target::code_ranges(via, m))
            .collect(),
        allocator: ranges_of(ALLOCATOR_FUNCTIONS),
        own_allocator: own_allocator(via, objects),
        program_code: objects
            .iter()
            .filter(|m| !is_c_library_or_loader(m))
            .flat_map(|m| target::code_ranges(via, m))
            .collect(),
        loader: ranges_of(LOADER_FUNCTIONS),
        libc_frames: target::libc(objects).and_then(|m| {
            let data = target::file_data(via, m)?;
            libc_frames::LibcFrames::new(&data, m.start, target::code_ranges(via, m))
        }),
    };
    // The call runs where the thread stopped: wait, letting it run a moment at a time, until
    // that is outside the allocator and the loader (a sweep's program looping on malloc
    // crashed in 4 of 10 attaches, and hung when it had a second thread).
    let start = Instant::now();
    while !thread.at_safe_point(&hazards) {
        if ptrace::interrupted() {
            return Err(ptrace::INTERRUPTED_LINE.to_string());
        }
        if start.elapsed() > SAFE_POINT_PATIENCE {
            return Err(format!(
                "process {pid} stayed for {} s where a call into it could break it (inside its memory allocator, the loader or a signal handler, or a word left on its stack looks so); it goes on untouched: try again",
                SAFE_POINT_PATIENCE.as_secs()
            ));
        }
        thread.run_a_little()?;
    }
    // The calls run on the thread's own stack, below where it stopped: with too little left
    // the tracker's start faulted there and left the process half started for good.
    if let Some(room) = process::stack_room(via, thread.stack_pointer()) {
        if room == 0 {
            return Err(format!(
                "process {pid}'s thread runs on a stack inside its heap or data (a coroutine's?), whose free room cannot be told: the attach's calls could write over the program's memory; it goes on untouched"
            ));
        }
        if room < STACK_NEEDED {
            return Err(format!(
                "process {pid}'s thread has {} KiB of stack left where it runs now; the attach needs {} KiB there: try again when it is less deep in its calls",
                room / 1024,
                STACK_NEEDED / 1024
            ));
        }
    }
    Ok(thread)
}

/// Stack the injected calls need below where the thread stopped (the tracker's start took
/// more than 28 KiB), with a margin.
const STACK_NEEDED: u64 = 128 * 1024;

/// The code of an allocator the program brings in place of the C library's: the allocation
/// functions its executable defines, or the whole code of a library that defines `malloc`
/// (jemalloc's, tcmalloc's, one of its own). The injected `dlopen` allocates from it, so a
/// thread stopped in it or under it (holding its lock) would wait for itself.
fn own_allocator(via: i32, objects: &[target::Mapped]) -> Vec<(u64, u64)> {
    let exe = std::fs::read_link(format!("/proc/{via}/exe")).unwrap_or_default();
    let exe = exe
        .to_string_lossy()
        .trim_end_matches(" (deleted)")
        .to_string();
    objects
        .iter()
        .filter(|m| !is_c_library_or_loader(m) && !is_tracker(m))
        .filter(|m| !target::ranges(via, m, &["malloc"]).is_empty())
        .flat_map(|m| match m.path.as_os_str() == exe.as_str() {
            true => target::ranges(via, m, ALLOCATOR_FUNCTIONS),
            false => target::code_ranges(via, m),
        })
        .collect()
}

/// The C library (glibc's libc and libdl) or the loader.
fn is_c_library_or_loader(m: &target::Mapped) -> bool {
    m.path.file_name().is_some_and(|n| {
        let n = n.to_string_lossy();
        n.starts_with("libc.so") || n.starts_with("libdl.so") || n.starts_with("ld-")
    })
}

fn cstr(p: &Path) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    p.as_os_str().as_bytes().to_vec()
}

/// A native process: `dlopen` of the tracker, then its `memtrace_attach`.
fn attach_native(job: &Job) -> Result<(), String> {
    let Job {
        pid,
        via,
        libc_obj,
        objects,
        capture,
        duration_ms,
        native,
        tracker,
        ..
    } = *job;
    let (stop, active) = (
        job.state.theirs.join("stop"),
        job.state.theirs.join("active"),
    );
    let dlopen = dlopen_of(pid, via, libc_obj, objects)?;
    let mut thread = seize(pid, via, objects)?;
    let entry = load_tracker(&mut thread, pid, via, dlopen, tracker, "memtrace_attach")?;
    let r = thread.call(
        entry,
        &[
            Arg::Str(0),
            Arg::Str(1),
            Arg::Str(2),
            Arg::Int(duration_ms),
            Arg::Int(u64::from(native)),
            Arg::Result,
        ],
        &[&cstr(capture), &cstr(&stop), &cstr(&active)],
    )?;
    restore_errno(&mut thread, via);
    thread.release()?;
    if r & RESULT_WRITTEN == 0 {
        return Err(format!(
            "process {pid} did not report whether tracking started"
        ));
    }
    match r as u32 {
        0 => Ok(()),
        1 => Err(format!("process {pid} is already tracked by memtrace")),
        2 => {
            // The tracker's reason, when it could write it.
            let why = state_dir::read(&job.state.ours.join("error"))
                .map(|e| {
                    // "cannot create the capture PATH: REASON": the reason alone.
                    let named = format!("{}: ", capture.display());
                    let reason = e
                        .trim()
                        .rsplit_once(named.as_str())
                        .map_or(e.trim(), |(_, r)| r);
                    format!(": {reason}")
                })
                .unwrap_or_default();
            Err(format!(
                "process {pid} could not create the capture {}{why} (it is written by the process itself: -o names a file it may create)",
                capture.display()
            ))
        }
        3 => Err(format!(
            "process {pid} could not start the tracker's thread (its thread or memory limit?): tracking stopped at once"
        )),
        5 => Err(format!(
            "process {pid} has no file descriptor free (its open-file limit is reached): the tracker cannot open its capture"
        )),
        code => Err(format!(
            "process {pid} could not start tracking (the tracker's code {code})"
        )),
    }
}

/// What an attach works with: the process, its objects, and what to start in it.
#[derive(Clone, Copy)]
struct Job<'a> {
    pid: i32,
    /// The thread that makes the calls, whose /proc entries are read (see injection_thread).
    via: i32,
    libc_obj: &'a target::Mapped,
    objects: &'a [target::Mapped],
    /// The attach's directory (/tmp/memtrace-attach.PID in the process's file system).
    state: &'a paths::Place,
    /// The capture and the tracker library, as the process names them.
    capture: &'a Path,
    duration_ms: u64,
    native: bool,
    tracker: &'a Path,
    /// This attach's mark in `active`, beside the capture's path: a queued Python start checks
    /// that `active` is still its own.
    token: &'a str,
}

/// The file the tracker makes in the attach's directory once tracking runs (tracker/src/
/// session/attach.rs; the Python code below): `active` without it is an attach that has not
/// started (or never will: its memtrace was killed between the dlopen and the start).
const RUNNING: &str = "running";

/// A mark unique to this attach (memtrace's pid and the time).
fn attach_token() -> String {
    let ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{}-{ns}", std::process::id())
}

/// The word the tracker's entry points write their result to carries this bit (the word is
/// zero before the call): tracker/src/session/attach.rs `RESULT_WRITTEN`.
const RESULT_WRITTEN: u64 = 1 << 32;

/// Where `dlopen` is in the process.
fn dlopen_of(
    pid: i32,
    via: i32,
    libc_obj: &target::Mapped,
    objects: &[target::Mapped],
) -> Result<u64, String> {
    target::symbol(via, libc_obj, "dlopen")
        .or_else(|| target::find(via, objects, "dlopen").map(|(_, a)| a))
        .ok_or_else(|| format!("cannot find dlopen in process {pid}"))
}

/// Makes the process load the tracker library (its `dlopen`), and finds `entry` in it.
fn load_tracker(
    thread: &mut Stopped,
    pid: i32,
    via: i32,
    dlopen: u64,
    tracker: &Path,
    entry: &str,
) -> Result<u64, String> {
    thread.call(
        dlopen,
        &[Arg::Str(0), Arg::Int(libc::RTLD_NOW as u64)],
        &[&cstr(tracker)],
    )?;
    // Loaded when its entry point is in the process's map now.
    let objects = target::objects(via).map_err(|e| e.to_string())?;
    target::find(via, &objects, entry)
        .map(|(_, a)| a)
        .ok_or_else(|| {
            format!(
                "process {pid} could not load the tracker library {}",
                tracker.display()
            )
        })
}

/// Puts back the errno the thread had before the attach's calls (dlopen changes it, and the
/// program may be about to read it: the thread was stopped anywhere in its own code). Nothing
/// when the tracker cannot say where errno is.
fn restore_errno(thread: &mut Stopped, via: i32) {
    let Ok(objects) = target::objects(via) else {
        return;
    };
    let Some((_, errno_at)) = target::find(via, &objects, "memtrace_errno_at") else {
        return;
    };
    if let Ok(at) = thread.call(errno_at, &[Arg::Result], &[]) {
        if at != 0 {
            let _ = thread.restore_errno(at);
        }
    }
}

/// A CPython process: Python code queued with `Py_AddPendingCall(PyRun_SimpleString, code)`,
/// by the tracker library's `memtrace_attach_python` (loaded first).
fn attach_python(job: &Job) -> Result<(), String> {
    let Job {
        pid,
        via,
        libc_obj,
        objects,
        state,
        capture,
        duration_ms,
        native,
        tracker,
        token,
    } = *job;
    for name in ["Py_AddPendingCall", "PyRun_SimpleString"] {
        if target::find(via, objects, name).is_none() {
            return Err(format!("process {pid} looks like Python but has no {name}"));
        }
    }
    let dlopen = dlopen_of(pid, via, libc_obj, objects)?;
    let code = python_code(&state.theirs, capture, duration_ms, native, token);
    let mut thread = seize(pid, via, objects)?;
    let queue = load_tracker(
        &mut thread,
        pid,
        via,
        dlopen,
        tracker,
        "memtrace_attach_python",
    )?;
    // The code must outlive this call: the tracker queues a copy on the process's heap.
    let r = thread.call(queue, &[Arg::Str(0), Arg::Result], &[code.as_bytes()])?;
    restore_errno(&mut thread, via);
    thread.release()?;
    if r & RESULT_WRITTEN == 0 {
        return Err(format!(
            "process {pid} did not report whether the call was queued"
        ));
    }
    match r as u32 {
        0 => Ok(()),
        1 => Err(format!(
            "process {pid}'s interpreter refused the call (its queue is full); try again"
        )),
        3 => Err(format!("process {pid} is out of memory")),
        4 => Err(format!(
            "process {pid} has Python loaded but its interpreter is not running (not started yet, or ended): nothing was changed; attach once it runs Python"
        )),
        _ => Err(format!(
            "process {pid} looks like Python but has no Py_AddPendingCall"
        )),
    }
}

/// Whether an exception raised inside memtrace's queued Python code is the program's: raised
/// by its own signal handler, which Python runs at any instruction of that code
/// (KeyboardInterrupt from SIGINT's, SystemExit from a SIGTERM handler, a timeout). It goes on
/// to the program's code as it would have been raised there.
const PROGRAMS: &str = "def programs(e):
    if isinstance(e, (KeyboardInterrupt, SystemExit)):
        return True
    tb = e.__traceback__
    while tb is not None:
        name = tb.tb_frame.f_code.co_filename
        if name != '<string>' and not name.startswith('<frozen'):
            return True
        tb = tb.tb_next
    return False
";

/// A Python string literal of `s`.
fn py_str(s: &str) -> String {
    format!("{s:?}")
}

/// The code the interpreter runs: starts the tracker and a thread that stops it; in a dict of
/// its own, so the program's globals stay as they were; errors go to a file, not to the
/// program's stderr.
fn python_code(dir: &Path, capture: &Path, duration_ms: u64, native: bool, token: &str) -> String {
    let d = py_str(&dir.to_string_lossy());
    let c = py_str(&capture.to_string_lossy());
    let token = py_str(token);
    let body = format!(
        "# sys, posix and _thread come in the globals (the program's __import__ sees nothing).
# Only C functions bound here (posix, _thread): the program may have replaced what its own
# code uses (unittest.mock on os.path.exists or open, freezegun's time.monotonic, a no-op
# time.sleep), and memtrace's calls must neither reach its replacements nor be fooled by them.
d = {d}
stop, active, running = d + '/stop', d + '/active', d + '/' + {RUNNING:?}
def exists(p):
    try:
        posix.stat(p)
        return True
    except OSError:
        return False
def read(p):
    fd = posix.open(p, posix.O_RDONLY | posix.O_NOFOLLOW | posix.O_CLOEXEC)
    try:
        return posix.read(fd, 4096).decode('utf-8', 'replace')
    finally:
        posix.close(fd)
def write(p, text):
    fd = posix.open(p, posix.O_WRONLY | posix.O_CREAT | posix.O_TRUNC | posix.O_NOFOLLOW | posix.O_CLOEXEC, 0o644)
    try:
        posix.write(fd, text.encode('utf-8', 'replace'))
    finally:
        posix.close(fd)
# A lock held for good: waiting on it with a timeout is a sleep no one can replace.
pause = _thread.allocate_lock()
pause.acquire()
# Locks rather than threading.Events, and a thread of _thread rather than threading's: the
# program's threading.enumerate() and active_count() stay its own.
ready, started = _thread.allocate_lock(), _thread.allocate_lock()
ready.acquire()
started.acquire()
state = {{}}
# What the program's signal handlers raise inside this code goes on to the program: every
# handler of the main thread's that drops memtrace's own errors raises the program's on.
def mine():
    # `active` is this attach's (a detach before the start, or a later attach, replaced it).
    try:
        return read(active).split('\\n')[1:2] == [{token}]
    except BaseException as e:
        if programs(e):
            raise
        return False
def watch():
    mt = state['mt']
    try:
        # Nothing it allocates is the program's: marked before tracking starts.
        mt.untracked_thread()
    except BaseException:
        pass
    ready.release()
    # The duration counts from the start of tracking (the import may take long).
    started.acquire()
    if not state.get('tracking'):
        return
    end = posix.times().elapsed + {secs} if {secs} else 0
    while mine() and not exists(stop) and (not end or posix.times().elapsed < end):
        pause.acquire(True, 0.1)
    try:
        mt.stop()
    except BaseException:
        pass
    try:
        while mt in sys.meta_path:
            sys.meta_path.remove(mt)
    except BaseException:
        pass
    for p in (running, stop, active) if mine() else ():
        try:
            posix.unlink(p)
        except OSError:
            pass
# Nothing of memtrace's may escape (the pending call would fail the program's current
# line); what the program's signal handlers raise goes on to the program.
try:
    try:
        # memtrace gave up waiting (no Python code ran for the whole duration), or the attach
        # was cancelled or replaced: nothing starts.
        if mine():
            if mt is None:
                raise RuntimeError('the tracker could not make its module (out of memory?)')
            state['mt'] = mt
            _thread.start_new_thread(watch, ())
            # The thread's first frame is made when it first runs (a 16 KiB block on 3.11):
            # before tracking starts.
            ready.acquire(True, 5)
            # Made before the start, so that its allocations are not the program's; removed
            # below if the start fails.
            try:
                write(running, '')
            except OSError:
                pass
            # A program without threading yet: the tracker's module is the first finder until
            # it imports it (as under memtrace run; all in C: it finds nothing, asks the
            # finders after it for threading and has its threads name themselves). Put in
            # before the start: the list's growth is memtrace's, not the program's line's.
            if 'threading' not in sys.modules:
                try:
                    sys.meta_path.insert(0, mt)
                except BaseException as e:
                    if programs(e):
                        raise
            mt.start({c}, {native}, True, False, '', True)
            state['tracking'] = True
    except BaseException as e:
        if not state.get('tracking'):
            try:
                while mt in sys.meta_path:
                    sys.meta_path.remove(mt)
            except BaseException as again:
                if programs(again):
                    raise
        theirs = programs(e)
        why = str(e) or type(e).__name__
        if theirs:
            why = ('a signal handler of the program raised ' + type(e).__name__ +
                   ' while tracking started; try again')
        try:
            if not state.get('tracking'):
                write(d + '/error', why)
        except BaseException as again:
            if programs(again):
                raise
        for p in (running, active) if mine() and not state.get('tracking') else ():
            try:
                posix.unlink(p)
            except BaseException as again:
                if programs(again):
                    raise
        if theirs:
            raise
    finally:
        started.release()
except BaseException as e:
    if programs(e):
        raise
",
        native = if native { "True" } else { "False" },
        secs = duration_ms as f64 / 1000.0,
    );
    // The tracker runs this as the pending call's own code (not PyRun_SimpleString, which
    // printed what escaped on the program's stderr and then failed its current line with a
    // SystemError): what escapes is the program's exception, raised on in its code. `programs`
    // tells it from memtrace's own, here and in the code (it is handed over in its globals).
    // The tracker's module comes in the globals, made by the tracker (never imported: the
    // program's import hooks and profiler see nothing of the attach).
    // Its frames come on top of the program's: near the recursion limit (3.10, 3.11) memtrace's
    // own RecursionError reached the program's line, and tracking never started. The limit
    // is raised while it runs, and put back whatever happens.
    format!(
        "{PROGRAMS}memtrace_limit = sys.getrecursionlimit()\nsys.setrecursionlimit(memtrace_limit + 100)\ntry:\n    try:\n        mt = _memtrace_tracker\n    except NameError:\n        mt = None\n    try:\n        exec({}, {{'programs': programs, 'mt': mt, 'sys': sys, 'posix': posix, '_thread': _thread}})\n    except BaseException as e:\n        if programs(e):\n            raise\nfinally:\n    sys.setrecursionlimit(memtrace_limit)\n",
        py_str(&body)
    )
}

/// Whether the tracker library is among the process's mapped `objects`.
fn has_tracker(objects: &[target::Mapped]) -> bool {
    objects.iter().any(is_tracker)
}

/// memtrace's tracker (the library `run` preloads, or the Python package's module).
fn is_tracker(m: &target::Mapped) -> bool {
    m.path.file_name().is_some_and(|n| {
        let n = n.to_string_lossy();
        n.starts_with("libmemtrace_tracker") || n.starts_with("_memtrace_tracker")
    })
}

/// Whether process `pid` no longer has the tracker mapped: it exec'd another program (which
/// ends tracking with the image). Read through a live thread (a main thread that ended shows
/// an empty map); false when no map can be read.
fn tracker_gone(pid: i32) -> bool {
    target::objects(injection_thread(pid))
        .is_ok_and(|objects| !objects.is_empty() && !has_tracker(&objects))
}

/// Runs `memtrace detach`.
pub fn execute_detach(args: DetachArgs) -> Result<(), String> {
    detach(args.pid)
}

fn detach(pid: i32) -> Result<(), String> {
    // Not while an attach makes its calls: it would cancel a start under way and the attach
    // would say "attached" with nothing tracked.
    let _claim = claim(pid).map_err(|_| {
        format!("process {pid} is being attached by another memtrace: detach it once that attach is done")
    })?;
    // A process that is gone has no root to go through: what it left in a /tmp shared with
    // memtrace's is found there.
    let dir = match alive(pid) {
        true => paths::state_dir(pid, injection_thread(pid)).ours,
        false => paths::state_dir(pid, pid).theirs,
    };
    let held = state_dir::Held::new(&dir);
    let active = dir.join("active");
    let content = match state_dir::read_checked(&active) {
        Ok(content) => content,
        // Another user's process (through its /proc root), or files another user made.
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            return Err(format!(
                "cannot read process {pid}'s attach files ({}: permission denied): detach as the user who attached it, or as root",
                active.display()
            ))
        }
        Err(_) if !alive(pid) => {
            return Err(format!("no process {pid} (it is gone, or never existed)"))
        }
        Err(_) => return Err(format!("process {pid} is not attached by memtrace")),
    };
    // The capture's path, then the attach's token.
    let capture = content.lines().next().unwrap_or_default().to_string();
    if !alive(pid) {
        held.remove();
        return Err(format!(
            "process {pid} is gone; its capture {capture} ends where it ended"
        ));
    }
    if !dir.join(RUNNING).exists() {
        // Tracking has not started: a Python start still queued finds `active` gone and does
        // nothing; a start that never ran (its memtrace killed) left nothing to stop.
        held.remove();
        crate::say!(
            "memtrace: process {pid} had not started tracking (a Python process starts when its main thread next runs Python code; or the memtrace that attached it was killed): the attach is cancelled and the process goes on untracked"
        );
        return Ok(());
    }
    state_dir::write_new(&dir.join("stop"))
        .map_err(|e| format!("cannot write {}: {e}", dir.display()))?;
    let start = Instant::now();
    // Whether the process ended before its tracker acknowledged the stop (by removing
    // `active`, which is reached through the process's root: gone with it).
    let mut ended = false;
    loop {
        if !not_ended(pid) {
            ended = true;
            break;
        }
        if !active.exists() {
            break;
        }
        // The request stays: a stopped process detaches when it runs again.
        if let Some(why) = not_running(pid, true) {
            return Err(why);
        }
        if tracker_gone(pid) {
            held.remove();
            return Err(format!(
                "process {pid} ran another program (exec), which ended its tracking: the capture {capture} ends there"
            ));
        }
        if start.elapsed() > Duration::from_secs(60) {
            return Err(format!(
                "process {pid} did not stop tracking within a minute (a Python process stops when its interpreter runs Python code)"
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    held.remove();
    if ended {
        crate::say!(
            "memtrace: process {pid} ended before it stopped tracking; its capture holds its run to its end: memtrace stats {capture}"
        );
    } else if !Path::new(&capture).exists() {
        crate::say!(
            "memtrace: detached from process {pid}; its capture {capture} is not there any more (removed or moved while attached)"
        );
    } else {
        crate::say!(
            "memtrace: detached from process {pid}; view the capture with: memtrace stats {capture}"
        );
    }
    Ok(())
}
