//! Start, end and fork: opening the capture when the library loads, the "live at exit" marker
//! when main returns or exit() is called, finishing the capture when the library is unloaded at
//! exit, and what a forked child does.

use crate::capture::CAPTURE;
use crate::config::{child_path, Config};
use crate::lock::SpinLock;
use crate::real::{self, MainFn};
use crate::state::{CAPTURE_PID, FINISHED, STARTED};
use crate::{clock, modules, stacks, sys, thread, tls, ACTIVE};
use libc::{c_int, c_void};
use memtrace_format::{options, FileHeader, Marker, MAJOR, MINOR};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};

static CONFIG: SpinLock<Option<Config>> = SpinLock::new(None);

#[used]
#[link_section = ".init_array"]
static INIT: extern "C" fn() = memtrace_init;

#[used]
#[link_section = ".fini_array"]
static FINI: extern "C" fn() = memtrace_fini;

extern "C" fn memtrace_init() {
    // The program starts with errno 0 (C11 7.5): the start-up's failed lookups (a file that
    // does not exist, a symbol not found) must not show.
    let _errno = sys::ErrnoGuard::new();
    tls::guarded(|| {
        // Whatever else happens: the program must not outlive a killed memtrace.
        crate::orphan::die_with_parent();
        crate::session::process_name::take_script_name();
        if real::get().is_none() {
            return;
        }
        let pid = sys::getpid();
        // Named as /proc names it (see sys::proc_ids): a descendant's file is `ROOT.PID`.
        let Some(mut cfg) = Config::from_env(sys::proc_ids().0) else {
            return;
        };
        let tracker = own_path();
        if cfg.exec > 0 || cfg.descendant {
            // An exec'd image, or a followed descendant that starts as a new image (a
            // multiprocessing spawn or forkserver child, subprocess, a shell's child): tracked
            // as a Python run if it is CPython. The root run's hook already restored PYTHONPATH,
            // so what the environment inherited says nothing about this image.
            // A descendant (or an image it exec'd) may outlive the run's hook directory.
            let descendant = cfg.descendant || cfg.exec_base != cfg.root;
            let private = descendant.then_some(tracker.as_slice());
            cfg.python = crate::pyrun::adopt_image(cfg.python_hook.as_deref(), private);
        }
        cfg.prepare_environment(&tracker);
        crate::exec::configure(&cfg, &tracker);
        crate::family::resolve();
        crate::pyrun::configure(cfg.python, cfg.python_allocators);
        crate::pyrun::set_object_types(cfg.object_types);
        thread::set_python_run(cfg.python && cfg.python_allocators);
        crate::unwind::configure(cfg.native);
        thread::init_key();
        crate::barrier::init();
        // A followed child checks it (fork_child), and every thread before it reads the
        // loader's list (phdr::may_iterate_phdr). A scan of a few KiB.
        crate::find_loader_lock::learn();
        // SAFETY: registering plain functions that never unwind.
        unsafe { libc::pthread_atfork(Some(fork_prepare), Some(fork_parent), Some(fork_child)) };
        let result = start_capture(&cfg);
        if let Err(msg) = result {
            report_status(&cfg, &msg);
        } else {
            CAPTURE_PID.store(pid, Ordering::Relaxed);
            // Read before recording: the unwind rules of the libraries' allocation wrappers.
            crate::wrappers::find();
            STARTED.store(true, Ordering::Release);
            ACTIVE.store(true, Ordering::Release);
            // SAFETY: registering a plain function that never unwinds.
            unsafe { libc::atexit(finish_without_start_main) };
            record_early_blocks(&tracker);
        }
        *CONFIG.lock() = Some(cfg);
        if STARTED.load(Ordering::Acquire) {
            tell_of_an_operator_new_of_its_own();
            tell_of_a_malloc_in_the_executable();
        }
    });
    // Whatever happened above (no capture to start: the in-process library, a bad setting),
    // the hooks note nothing from now on.
    crate::early::close();
}

/// An allocator of the program's own that defines C++'s operator new (tcmalloc, jemalloc built
/// with it, mimalloc) takes `new` and `delete` without passing through malloc: the hooks never
/// see them. Said after the run, rather than a capture that looks whole (886 allocations of a
/// C++ program under tcmalloc read as 10).
fn tell_of_an_operator_new_of_its_own() {
    // The usual process ends at the first question (a lookup per object); the second reads
    // every object's relocations, so it comes only for an allocator that defines operator new.
    let Some(path) = crate::definition::first_definer_also_defining(b"_Znwm", b"malloc") else {
        return;
    };
    // A C or Python program with jemalloc preloaded news nothing: only a program whose code
    // calls operator new is told (an object loaded at the start; one loaded later is not
    // asked about). libstdc++ calls its own operator new: it does not count.
    if !crate::definition::imported_by_a_user(b"_Znwm") {
        return;
    }
    let name = match path.rsplit(|&b| b == b'/').next() {
        Some(n) if !n.is_empty() => n.to_vec(),
        _ => b"the program".to_vec(),
    };
    let mut msg = b"C++ new and delete go to ".to_vec();
    msg.extend_from_slice(&name);
    msg.extend_from_slice(
        b"'s own operator new, which memtrace does not see: only what reaches malloc, \
          mmap and the other C functions is recorded",
    );
    tell_memtrace(&msg);
    CAPTURE.note(memtrace_format::trailer_flags::OWN_OPERATOR_NEW);
}

/// An executable that defines malloc and free itself (jemalloc or mimalloc linked statically)
/// comes before the preloaded tracker in every lookup, and its own code calls them directly:
/// none of its allocations reaches a hook. The capture held only its allocator's mappings, and
/// nothing said why; memtrace run says so now.
fn tell_of_a_malloc_in_the_executable() {
    match crate::definition::first_definer_also_defining(b"malloc", b"free") {
        // The loader names the executable with an empty path.
        Some(path) if path.is_empty() => tell_memtrace(
            b"the program's executable defines malloc and free itself (an allocator linked in), \
              which memtrace's hooks cannot come before: its allocations are not recorded, \
              only the memory its allocator maps",
        ),
        _ => {}
    }
}

/// Records the blocks the libraries' constructors allocated before the start and still hold
/// (record/early.rs), at their call sites. Not with --native: a walk needs the caller's frame,
/// long gone.
fn record_early_blocks(tracker: &[u8]) {
    if crate::early::left_out() {
        CAPTURE.note(memtrace_format::trailer_flags::EARLY_BLOCKS_LEFT_OUT);
    }
    if crate::unwind::enabled() {
        return;
    }
    let t = tls::get();
    crate::early::replay(
        || {
            let own = own_code_ranges(tracker);
            move |ret| !own.iter().any(|&(start, end)| (start..end).contains(&ret))
        },
        |allocator, addr, size, ret| thread::record_alloc(t, allocator, addr, size, ret),
    );
}

/// The address ranges of the loader, the C library and this library, whose allocations before
/// the start are their own, not the program's; and of a library that is the process's
/// allocator (jemalloc, tcmalloc, linked or preloaded): the arenas it maps in its constructor
/// hold the blocks it hands out, which are recorded (its mappings after the start are made
/// under its malloc, where the hooks record nothing either).
fn own_code_ranges(tracker: &[u8]) -> Vec<(u64, u64)> {
    struct Search<'a> {
        tracker: &'a [u8],
        ranges: Vec<(u64, u64)>,
        allocator: u64,
    }
    unsafe extern "C" fn each(
        info: *mut libc::dl_phdr_info,
        _size: usize,
        data: *mut c_void,
    ) -> c_int {
        // SAFETY: the loader passes a valid info for the call; data is the Search below.
        let (info, search) = unsafe { (&*info, &mut *(data as *mut Search<'_>)) };
        // SAFETY: dlpi_name is a NUL-terminated string (possibly empty) owned by the loader.
        let path = unsafe { core::ffi::CStr::from_ptr(info.dlpi_name) }.to_bytes();
        let name = path.rsplit(|&b| b == b'/').next().unwrap_or(path);
        // SAFETY: the loader's description of a loaded object, valid during the callback.
        let loads = unsafe { crate::phdr::program_headers(info) }
            .iter()
            .filter(|ph| ph.p_type == libc::PT_LOAD)
            .map(|ph| {
                let start = info.dlpi_addr + ph.p_vaddr;
                (start, start + ph.p_memsz)
            });
        let allocator = !path.is_empty()
            && loads
                .clone()
                .any(|(start, end)| (start..end).contains(&search.allocator));
        let own = name.starts_with(b"ld-linux")
            || name == b"libc.so.6"
            || path == search.tracker
            || allocator;
        if own {
            search.ranges.extend(loads);
        }
        0
    }
    let mut search = Search {
        tracker,
        ranges: Vec::new(),
        allocator: crate::real::get().map_or(0, |r| r.malloc as usize as u64),
    };
    // SAFETY: `each` only reads loader data and appends to `search`.
    unsafe { crate::phdr::iterate_phdr(each, &mut search as *mut Search<'_> as *mut c_void) };
    search.ranges
}

/// Registered at start-up, so it runs after the program's own exit handlers. A program with an
/// entry point of its own (`-nostartfiles`: no `__libc_start_main`) has no one to run the
/// libraries' destructors at exit, this library's `memtrace_fini` included: the capture is
/// finished here then. Otherwise nothing: `memtrace_fini` runs later, after the destructors
/// of the other libraries, whose frees it records.
extern "C" fn finish_without_start_main() {
    if REAL_MAIN.load(Ordering::Acquire) == 0 {
        finish_now();
    }
}

/// The path this library was loaded from.
fn own_path() -> Vec<u8> {
    // SAFETY: dladdr fills `info` for an address inside this library.
    let mut info: libc::Dl_info = unsafe { core::mem::zeroed() };
    let here = memtrace_init as *const c_void;
    // SAFETY: as above; dli_fname is a NUL-terminated string owned by the loader.
    unsafe {
        if libc::dladdr(here, &mut info) != 0 && !info.dli_fname.is_null() {
            return core::ffi::CStr::from_ptr(info.dli_fname)
                .to_bytes()
                .to_vec();
        }
    }
    b"libmemtrace_tracker.so".to_vec()
}

/// Opens the capture file and writes its header.
fn start_capture(cfg: &Config) -> Result<(), Vec<u8>> {
    let (fd, path, created) = open_capture(cfg)?;
    let header = file_header(cfg);
    crate::capture::on_fail(thread::close_all);
    crate::alloc::on_refused(|| CAPTURE.give_back_room());
    if let Err(e) = CAPTURE.open(fd, &path, &header) {
        CAPTURE.abandon();
        // The file just created goes; what was there before (a device, a link written
        // through) stays.
        if created {
            let mut z = path.clone();
            z.push(0);
            sys::unlink(&z);
        }
        if e == libc::ENOMEM {
            if let Some(limit) = sys::soft_limit(libc::RLIMIT_AS) {
                // The mapping did not fit under the limit: say which, and what to do.
                let mut msg = describe(b"cannot write the capture", &path, e);
                msg.extend_from_slice(
                    format!(
                        " (the address-space limit, ulimit -v {} KiB, leaves it too little room: raise it)",
                        limit / 1024
                    )
                    .as_bytes(),
                );
                return Err(msg);
            }
        }
        return Err(describe(b"cannot write the capture", &path, e));
    }
    crate::coarse::locate();
    crate::clock::configure(cfg.follow_fork);
    crate::sample::configure(cfg.sample_bytes, cfg.sample_seed, cfg.exec);
    crate::aggregate::configure(cfg.aggregate, cfg.sample_bytes);
    write_settings(cfg);
    modules::refresh();
    Ok(())
}

/// The settings record (memtrace_format::settings), when the capture is sampled or labelled or
/// the process runs under a cgroup memory limit:
/// before any event, so a reader of any part of the capture knows how to weigh it.
fn write_settings(cfg: &Config) {
    use memtrace_format::settings;
    let root = crate::config::var(c"MEMTRACE_CGROUP_ROOT");
    let limit = crate::capture::cgroup::memory_limit(root.as_deref()).unwrap_or(0);
    if cfg.sample_bytes == 0 && cfg.labels.is_empty() && limit == 0 && !cfg.aggregate {
        return;
    }
    let mut payload = vec![0u8; settings::MAX_PAYLOAD];
    let len = settings::encode(
        &mut payload,
        cfg.sample_bytes,
        &cfg.labels,
        limit,
        cfg.aggregate,
        settings::Gaps::Uniform,
    );
    let mut record = vec![0u8; settings::MAX_PAYLOAD + 32];
    let used = memtrace_format::Encoder::new().extended(
        &mut record,
        0,
        crate::clock::tick(),
        settings::SETTINGS_KIND,
        &payload[..len],
    );
    CAPTURE.write_meta(0, 1, &record[..used]);
}

/// Creates the capture file: its descriptor, the path it was created at and whether it is a
/// new file (not something written through). With `-f` a
/// regular file already there is unlinked and a new one created, never truncated: another
/// run may still have it mapped (the same `-o` started twice), and a truncated mapping kills
/// that run's program with SIGBUS at its next store.
fn open_capture(cfg: &Config) -> Result<(c_int, Vec<u8>, bool), Vec<u8>> {
    let base_flags = libc::O_RDWR | libc::O_CREAT | libc::O_CLOEXEC;
    let mut path = cfg.output.clone();
    let mut attempt = 1u32;
    loop {
        let mut z = path.clone();
        z.push(0);
        let there = if cfg.force { sys::file_type(&z) } else { None };
        if there == Some(libc::S_IFREG) {
            sys::unlink(&z);
        }
        // Something other than a regular file (a link, a device) is written through, as asked.
        let overwrite = there.is_some_and(|kind| kind != libc::S_IFREG);
        let flags = base_flags
            | if overwrite {
                libc::O_TRUNC
            } else {
                libc::O_EXCL
            };
        match sys::open(&z, flags, 0o644) {
            Ok(fd) => match sys::move_fd_high(fd) {
                Some(fd) => {
                    if !overwrite {
                        sys::owner_may_read(fd);
                    }
                    return Ok((fd, path, !overwrite));
                }
                // Only a standard stream's number was free: the program's, closed on purpose.
                None => {
                    if !overwrite {
                        sys::unlink(&z);
                    }
                    return Err(describe(
                        b"cannot keep the capture open (no descriptor free above 2)",
                        &path,
                        libc::EMFILE,
                    ));
                }
            },
            // Another run of the same `-o` created it between the unlink and the create: the
            // name goes to the last one, as with one run after the other.
            Err(libc::EEXIST) if cfg.force && attempt < 100 => attempt += 1,
            // A followed process that exec'd finds its pre-exec capture under its name.
            Err(libc::EEXIST) if cfg.descendant && attempt < 100 => {
                attempt += 1;
                path = cfg.output.clone();
                path.extend_from_slice(b".");
                path.extend_from_slice(attempt.to_string().as_bytes());
            }
            Err(e) => return Err(describe(b"cannot create the capture", &path, e)),
        }
    }
}

fn describe(what: &[u8], path: &[u8], errno: c_int) -> Vec<u8> {
    let mut msg = what.to_vec();
    msg.extend_from_slice(b" ");
    msg.extend_from_slice(path);
    msg.extend_from_slice(b": ");
    msg.extend_from_slice(
        std::io::Error::from_raw_os_error(errno)
            .to_string()
            .as_bytes(),
    );
    msg
}

/// Tells `memtrace run` something it should show the user after the run (one line, without the
/// "memtrace: " it adds). Never writes to the program's own stderr.
pub fn tell_memtrace(msg: &[u8]) {
    if let Some(cfg) = CONFIG.lock().as_ref() {
        report_status(cfg, msg);
    }
}

/// Tells `memtrace run` (through its status file) why nothing is recorded. Never writes to the
/// program's own stderr.
fn report_status(cfg: &Config, msg: &[u8]) {
    if let Some(path) = &cfg.status {
        crate::status::append(path, msg);
    }
}

/// The pid in this process's capture header (as /proc names it: see sys::proc_ids). A fork
/// child inherits its parent's value: the parent of its own header.
static HEADER_PID: AtomicU32 = AtomicU32::new(0);
/// Set by a followed fork child for its header: the parent's HEADER_PID. Read at the child's
/// start, the parent may be gone already (daemon()'s parent exits at once), and getppid()
/// would then name init or a subreaper.
static CHILD_OF: AtomicU32 = AtomicU32::new(0);

fn file_header(cfg: &Config) -> Vec<u8> {
    // As a parent's child record names them (see sys::proc_ids).
    let (pid, mut ppid) = sys::proc_ids();
    match CHILD_OF.swap(0, Ordering::Relaxed) {
        0 => {}
        parent => ppid = parent,
    }
    HEADER_PID.store(pid, Ordering::Relaxed);
    // Most command lines fit in a page; a zeroed 256 KiB buffer is a mapping made and
    // unmapped per capture (the pytest plugin opens one per test).
    let mut cmdline = vec![0u8; 4096];
    let mut n = sys::read_cmdline(&mut cmdline);
    if n == cmdline.len() {
        cmdline = vec![0u8; 256 * 1024];
        n = sys::read_cmdline(&mut cmdline);
    }
    cmdline.truncate(n);
    let argv: Vec<Vec<u8>> = cmdline
        .strip_suffix(&[0])
        .unwrap_or(&cmdline)
        .split(|&b| b == 0)
        .map(|a| a.to_vec())
        .collect();
    let mut exe = vec![0u8; 4096];
    let n = sys::readlink_exe(&mut exe);
    exe.truncate(n);
    let (start_tick, start_mono_ns) = clock::pair();
    let mut opts = 0;
    if cfg.follow_fork {
        opts |= options::FOLLOW_FORK;
    }
    if cfg.python && cfg.python_allocators {
        opts |= options::PYTHON_ALLOCATORS;
    }
    if cfg.native {
        opts |= options::NATIVE;
    }
    if cfg.attached {
        opts |= options::ATTACHED;
    }
    FileHeader {
        major: MAJOR,
        minor: MINOR,
        pid,
        ppid,
        start_realtime_ns: sys::clock_ns(libc::CLOCK_REALTIME),
        start_mono_ns,
        start_tick,
        tick_source: clock::SOURCE,
        options: opts,
        argv,
        exe,
        tool_version: env!("CARGO_PKG_VERSION").as_bytes().to_vec(),
    }
    .encode()
}

/// Finishes the capture: runs when the library is unloaded at exit (after the program's exit
/// handlers), flushing every thread, including threads still running.
/// Finishes the capture now: the process is about to end without running its exit handlers
/// (it sends itself a signal that kills it).
pub fn finish_now() {
    if sys::sandboxed() {
        return;
    }
    if sys::getpid() == CAPTURE_PID.load(Ordering::Relaxed) {
        memtrace_fini();
        wait_for_finisher();
    }
}

/// The thread finishing the capture (0: none yet), and whether it is done: another thread
/// about to end the process (`_exit`, a second `exit`, a signal to itself) waits until the
/// capture is whole instead of cutting it short.
static FINISHER: AtomicU32 = AtomicU32::new(0);
static FINISH_DONE: AtomicBool = AtomicBool::new(false);

/// How long a thread ending the process waits for another thread's finish at most: the finish
/// takes milliseconds; the bound keeps a process from never ending.
const FINISH_WAIT_MS: u32 = 3000;

/// Waits (bounded) while another thread finishes the capture.
fn wait_for_finisher() {
    let finishing = || {
        STARTED.load(Ordering::Acquire)
            && FINISHED.load(Ordering::Acquire)
            && !FINISH_DONE.load(Ordering::Acquire)
    };
    // Nothing to wait for, the common case: no system call.
    if !finishing() || FINISHER.load(Ordering::Acquire) == sys::gettid() {
        return;
    }
    for _ in 0..FINISH_WAIT_MS {
        if !finishing() {
            return;
        }
        sys::sleep_ms(1);
    }
}

extern "C" fn memtrace_fini() {
    if !sys::sandboxed() {
        crate::session::pyhook::remove_unused();
    }
    // A child made without fork() (a raw clone system call) runs the parent's image's
    // destructors at its exit: the capture is the parent's, and finishing it would cut the
    // file under the parent's feet.
    if STARTED.load(Ordering::Acquire)
        && !sys::sandboxed()
        && sys::getpid() == CAPTURE_PID.load(Ordering::Relaxed)
    {
        // A Python 2 never imports the tracker's module (3.6 to 3.8 are told at the import).
        crate::session::pyext::tell_if_unsupported();
        finish();
        // Another thread may be finishing it (an _exit): this one's exit must not cut it.
        wait_for_finisher();
    } else if STARTED.load(Ordering::Acquire) && !sys::sandboxed() {
        // A child sharing this memory (vfork) that called exit(): it ran the exit handlers
        // and the libraries' destructors of the image, the parent's included, which will not
        // run them again (the loader marks them run).
        FINI_SPENT.store(true, Ordering::Release);
    }
}

/// A child sharing the capture process's memory ran this library's destructor (a vfork child
/// that called exit() instead of _exit: a common bug, harmless alone): the capture's process
/// will not, so it finishes the capture itself where it ends (main's return, exit).
static FINI_SPENT: AtomicBool = AtomicBool::new(false);

/// At the end of the capture's process when its destructor will not run (see `FINI_SPENT`):
/// the capture is finished now (it read "killed" for want of a trailer).
fn finish_if_fini_spent() {
    if FINI_SPENT.load(Ordering::Acquire) && recording_here() {
        finish_now();
    }
}

/// Finishes the capture, if one is open and not finished yet; true when this call did.
fn finish() -> bool {
    if !STARTED.load(Ordering::Acquire) || FINISHED.swap(true, Ordering::AcqRel) {
        return false;
    }
    FINISHER.store(sys::gettid(), Ordering::Release);
    FINISH_DONE.store(false, Ordering::Release);
    // Children forked from signal handlers inside the tracker's hooks, before the end.
    crate::family::record_deferred_children();
    // Recording stops first: an event racing with the end comes after it, not a lost one.
    ACTIVE.store(false, Ordering::Release);
    tls::guarded(|| {
        crate::aggregate::finish();
        thread::flush_all_and_close();
        modules::refresh();
        CAPTURE.finish(thread::threads_seen(), 0, true);
    });
    FINISH_DONE.store(true, Ordering::Release);
    true
}

/// The program is about to install a seccomp filter that forbids system calls the tracker
/// makes (session::sandbox): the capture is finished now, while they are allowed, `memtrace run`
/// is told, and the tracker makes none in this process from then on.
pub fn stop_before_sandbox() {
    let recording = STARTED.load(Ordering::Acquire)
        && !FINISHED.load(Ordering::Acquire)
        && sys::getpid() == CAPTURE_PID.load(Ordering::Relaxed);
    if recording && finish() {
        // Writers that raced with the end are done before the filter forbids their calls.
        tls::guarded(|| thread::wait_idle(500));
        tell_memtrace(
            b"recording stopped where the program sandboxed itself: its seccomp filter forbids \
              system calls the tracker makes; the capture holds what it did until then",
        );
    }
    sys::set_sandboxed();
}

// ---- in-process tracking (see crate::inprocess): a capture started and finished on request ----

/// A capture of this process is being recorded (preloaded by `memtrace run`, or in-process).
pub fn capture_started() -> bool {
    STARTED.load(Ordering::Acquire)
}

/// Starts a capture in a running process: `cfg` names it. The hooks are installed by the
/// caller, which sets ACTIVE once they are.
pub fn begin_in_process(cfg: Config) -> Result<(), Vec<u8>> {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        thread::init_key();
        crate::barrier::init();
    });
    crate::find_loader_lock::learn();
    tls::guarded(|| {
        let pid = sys::getpid();
        crate::pyrun::configure(false, cfg.python_allocators);
        thread::set_python_run(cfg.python_allocators);
        crate::unwind::configure(cfg.native);
        thread::begin_capture();
        stacks::clear();
        crate::rss::reset();
        modules::reset();
        EXIT_MARKED.store(false, Ordering::Relaxed);
        EXITING.store(0, Ordering::Relaxed);
        FINISHED.store(false, Ordering::Relaxed);
        FINISHER.store(0, Ordering::Relaxed);
        FINISH_DONE.store(false, Ordering::Relaxed);
        start_capture(&cfg)?;
        crate::wrappers::find();
        CAPTURE_PID.store(pid, Ordering::Relaxed);
        *CONFIG.lock() = Some(cfg);
        STARTED.store(true, Ordering::Release);
        Ok(())
    })
}

/// Finishes an in-process capture (recording stops first) and lets go of its file: the
/// mapping once no thread writes to it any more. Nothing when no capture runs here (a fork
/// child that is not followed).
pub fn end_in_process() {
    ACTIVE.store(false, Ordering::Release);
    let pid = sys::getpid();
    if CAPTURE_PID.load(Ordering::Relaxed) == pid && finish() {
        tls::guarded(|| {
            // Writers that raced with the end are done before the file goes (or it stays).
            if thread::wait_idle(2000) {
                CAPTURE.abandon();
            }
        });
    }
    crate::unwind::configure(false);
    STARTED.store(false, Ordering::Release);
    *CONFIG.lock() = None;
}

static EXIT_MARKED: AtomicBool = AtomicBool::new(false);
/// This process writes a capture it has not finished (no system call when sandboxed).
fn recording_here() -> bool {
    STARTED.load(Ordering::Acquire)
        && !FINISH_DONE.load(Ordering::Acquire)
        && !sys::sandboxed()
        && sys::getpid() == CAPTURE_PID.load(Ordering::Relaxed)
}

/// The thread that called exit() first (its state's address; 0: none).
static EXITING: AtomicUsize = AtomicUsize::new(0);

/// Marks where "live at exit" is measured: the first of main returning and exit() being called.
fn exit_snapshot() {
    // Not in a vfork child's exit (it shares the memory: the mark would be the parent's).
    if !ACTIVE.load(Ordering::Acquire)
        || sys::getpid() != CAPTURE_PID.load(Ordering::Relaxed)
        || EXIT_MARKED.swap(true, Ordering::AcqRel)
    {
        return;
    }
    let t = tls::get();
    if t.in_tracker != 0 {
        return;
    }
    t.in_tracker = 1;
    thread::record_marker(t, Marker::ExitSnapshot);
    t.in_tracker = 0;
}

static REAL_MAIN: AtomicUsize = AtomicUsize::new(0);

/// Registered as main starts: after the C library's own handler that runs the libraries'
/// destructors, so before it. It marks "live at exit" when neither main's return nor a call
/// of `exit` did: a main thread that ended with `pthread_exit` leaves the process to end with
/// its last thread, through the C library's own exit, which no hook sees (the capture read
/// "live at end").
extern "C" fn mark_exit() {
    if recording_here() {
        exit_snapshot();
    }
}

unsafe extern "C" fn main_wrapper(argc: c_int, argv: *mut *mut i8, envp: *mut *mut i8) -> c_int {
    // SAFETY: REAL_MAIN holds the program's main, stored by __libc_start_main below.
    let main: MainFn =
        unsafe { core::mem::transmute::<usize, MainFn>(REAL_MAIN.load(Ordering::Acquire)) };
    // SAFETY: registering plain functions that never unwind.
    unsafe {
        libc::atexit(mark_exit);
        if at_quick_exit(finish_at_quick_exit) == 0 {
            QUICK_EXIT_HANDLED.store(true, Ordering::Release);
        }
    }
    // SAFETY: calling the program's main as libc would.
    let status = unsafe { main(argc, argv, envp) };
    exit_snapshot();
    finish_if_fini_spent();
    status
}

/// Interposed so that main's return can be seen (the "live at exit" point of native programs).
///
/// # Safety
/// Called by the program's start-up code, as libc's.
pub unsafe extern "C" fn __libc_start_main(
    main: MainFn,
    argc: c_int,
    argv: *mut *mut i8,
    init: Option<unsafe extern "C" fn()>,
    fini: Option<unsafe extern "C" fn()>,
    rtld_fini: Option<unsafe extern "C" fn()>,
    stack_end: *mut c_void,
) -> c_int {
    let Some(start) = real::get().and_then(|r| r.libc_start_main) else {
        // SAFETY: nothing can start the program without libc's start routine.
        unsafe { libc::abort() };
    };
    REAL_MAIN.store(main as usize, Ordering::Release);
    // SAFETY: forwarding to libc with main wrapped.
    unsafe { start(main_wrapper, argc, argv, init, fini, rtld_fini, stack_end) }
}

/// Interposed to mark "live at exit" when the program calls exit().
///
/// # Safety
/// Same contract as libc's exit.
pub unsafe extern "C" fn exit(status: c_int) -> ! {
    exit_snapshot();
    // A second thread calling exit while the first runs the exit handlers would run them too
    // and end the process (glibc's exit ends in an _exit no hook sees) in the middle of the
    // capture's finish, which the first one's destructors run. It waits until that finish is
    // done, when the first one ends the process (later callers of exit wait for good in glibc
    // 2.41 and later). Bounded: a handler of the first one may wait for this very thread, and
    // then the process must still end as it would have; the capture is finished first. (The
    // same thread calling exit again from a handler goes on; a sandboxed process may not
    // sleep, and one without a capture has nothing to wait for.)
    let me = tls::get() as *const tls::Tls as usize;
    if let Err(first) = EXITING.compare_exchange(0, me, Ordering::AcqRel, Ordering::Acquire) {
        if first != me && recording_here() {
            for _ in 0..FINISH_WAIT_MS {
                if FINISH_DONE.load(Ordering::Acquire) {
                    break;
                }
                sys::sleep_ms(1);
            }
            finish_now();
        }
    }
    finish_if_fini_spent();
    match real::get().and_then(|r| r.exit) {
        // SAFETY: forwarding to libc's exit.
        Some(real_exit) => unsafe { real_exit(status) },
        None => exit_now(status),
    }
}

/// Interposed: `_exit` runs no exit handlers (Python's os._exit, a child after fork), so the
/// capture is finished first.
///
/// # Safety
/// Same contract as libc's _exit.
pub unsafe extern "C" fn _exit(status: c_int) -> ! {
    finish_now();
    match real::get().and_then(|r| r.underscore_exit) {
        // SAFETY: forwarding to libc's _exit.
        Some(real_exit) => unsafe { real_exit(status) },
        None => exit_now(status),
    }
}

/// The part of the interposed syscall(2) (exports.rs) for SYS_exit_group: the process ends at
/// once, as with `_exit`, so the capture is finished first (a program's own
/// `syscall(SYS_exit_group, n)` left a capture that read "killed or still running").
///
/// # Safety
/// Same contract as libc's syscall for SYS_exit_group.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub unsafe extern "C" fn exit_group_call(_nr: libc::c_long, status: libc::c_long) -> ! {
    finish_now();
    exit_now(status as c_int)
}

/// Interposed: `quick_exit` runs the at_quick_exit handlers and then `_exit` inside libc (no
/// hook sees it), so the capture is finished first (what those handlers allocate is not in it).
///
/// # Safety
/// Same contract as libc's quick_exit.
pub unsafe extern "C" fn quick_exit(status: c_int) -> ! {
    exit_snapshot();
    // The program's at_quick_exit handlers run first (they are recorded): the capture is
    // finished by the tracker's, registered as main started, before any of the program's, so
    // run after them. Without it (a program that never reached main), here; and in a second
    // thread calling quick_exit meanwhile, whose C library call finds no handler left and ends
    // the process at once (the first thread's handlers are then cut short, as they are alone).
    if !QUICK_EXIT_HANDLED.load(Ordering::Acquire) || QUICK_EXITING.swap(true, Ordering::AcqRel) {
        finish_now();
    }
    match real::get().and_then(|r| r.quick_exit) {
        // SAFETY: forwarding to libc's quick_exit.
        Some(real_quick_exit) => unsafe { real_quick_exit(status) },
        None => exit_now(status),
    }
}

extern "C" {
    fn at_quick_exit(f: extern "C" fn()) -> c_int;
}

/// The tracker's at_quick_exit handler is registered (see [`quick_exit`]).
static QUICK_EXIT_HANDLED: AtomicBool = AtomicBool::new(false);
/// A thread called quick_exit.
static QUICK_EXITING: AtomicBool = AtomicBool::new(false);

/// The last at_quick_exit handler to run: the capture is finished after the program's.
extern "C" fn finish_at_quick_exit() {
    exit_snapshot();
    finish_now();
}

/// The thread in a `daemon()` call (0: none): its fork's parent side ends the process with an
/// `_exit` inside libc that no hook sees, right after the fork returns there ([`fork_parent`]
/// finishes the capture first).
static IN_DAEMON: AtomicU32 = AtomicU32::new(0);

/// Interposed: see [`IN_DAEMON`].
///
/// # Safety
/// Same contract as libc's daemon.
pub unsafe extern "C" fn daemon(nochdir: c_int, noclose: c_int) -> c_int {
    let Some(real_daemon) = real::get().and_then(|r| r.daemon) else {
        // SAFETY: the calling thread's errno.
        unsafe { *libc::__errno_location() = libc::ENOSYS };
        return -1;
    };
    if !sys::sandboxed() {
        IN_DAEMON.store(sys::gettid(), Ordering::Release);
    }
    // SAFETY: forwarding to libc's daemon.
    let r = unsafe { real_daemon(nochdir, noclose) };
    // In the daemon (the child), or in the parent when its fork failed.
    IN_DAEMON.store(0, Ordering::Release);
    r
}

/// Ends the process at once (libc's _exit is this library's own hook).
pub(crate) fn exit_now(status: c_int) -> ! {
    // The system call itself: libc's syscall() is this library's, which finishes the capture
    // first (exit_group_call).
    let args = [status as usize, 0, 0, 0, 0, 0];
    // SAFETY: exit_group(2) ends every thread of the process; it does not return.
    unsafe { sys::raw_syscall(libc::SYS_exit_group, args) };
    unreachable!("exit_group returned")
}

/// Every lock of the tracker is taken before a fork, so that no thread holds one when the
/// child is made (the child has only the forking thread). The order is the order in which they
/// may nest: the configuration is held around allocations; thread names and Python code names
/// are held around nothing, so they come last.
///
/// The module table and the phdr lock come before the aggregate state: a thread holding the
/// phdr lock waits for glibc's loader lock inside `dl_iterate_phdr`, and a thread in `dlclose`
/// frees (into the aggregate state) while holding that loader lock. Were the aggregate state
/// held here first, the three would wait on each other for ever.
///
/// A fork from a signal handler that interrupted one of the tracker's hooks on this thread
/// (fork is async-signal-safe; a single-threaded supervisor forks from its SIGCHLD or timer
/// handler) takes none: the interrupted hook may hold any of them, and waiting here for it
/// waited for ever. The child then only stops recording, as one made by _Fork there does.
pub(crate) extern "C" fn fork_prepare() {
    let mask = block_signals_for_fork();
    take_fork_locks(mask);
}

/// Before a fork's first lock: blocks the signals (crate::fork_signals); the mask before, for
/// [`take_fork_locks`] (None: none blocked, as in a fork from inside a hook, which takes no
/// lock).
pub(crate) fn block_signals_for_fork() -> Option<u64> {
    if forking_inside_a_hook() {
        return None;
    }
    crate::fork_signals::block()
}

/// Takes every lock of the tracker's for a fork, then keeps `mask` (from
/// [`block_signals_for_fork`]) for the parent and the child to put back.
pub(crate) fn take_fork_locks(mask: Option<u64>) {
    if forking_inside_a_hook() {
        return;
    }
    // Before any lock: it takes the aggregate state's as an allocation does.
    crate::aggregate::at_fork();
    crate::sample::fork_prepare();
    CONFIG.raw_lock();
    modules::lock_for_fork();
    crate::phdr::lock_for_fork();
    crate::aggregate::lock_for_fork();
    stacks::lock_all();
    CAPTURE.lock_for_fork();
    crate::python::lock_for_fork();
    crate::names::lock_for_fork();
    // Last: an allocation of the tracker's may come under any lock above.
    crate::own_heap::lock_for_fork();
    crate::fork_signals::keep(mask);
}

/// Whether this thread forks from inside one of the tracker's hooks (a signal handler that
/// interrupted it): the fork handlers then take and release no lock (see `fork_prepare`).
fn forking_inside_a_hook() -> bool {
    tls::get().in_tracker != 0
}

pub(crate) extern "C" fn fork_parent() {
    let mask = release_fork_locks_in_parent();
    crate::fork_signals::restore(mask);
}

/// In the parent: lets go of every lock [`take_fork_locks`] took; the signal mask to put back
/// once the caller let go of its own.
pub(crate) fn release_fork_locks_in_parent() -> Option<u64> {
    if forking_inside_a_hook() {
        return None;
    }
    let mask = crate::fork_signals::taken();
    crate::own_heap::unlock_after_fork();
    crate::names::unlock_after_fork();
    crate::python::unlock_after_fork();
    CAPTURE.unlock_after_fork();
    stacks::unlock_all();
    crate::aggregate::unlock_in_parent();
    crate::phdr::unlock_after_fork();
    modules::unlock_after_fork();
    CONFIG.raw_unlock();
    // The parent of daemon() ends right after this (see IN_DAEMON).
    // (A sandboxed process makes no system call here: gettid may be forbidden.)
    let in_daemon = IN_DAEMON.load(Ordering::Acquire);
    if in_daemon != 0 && !sys::sandboxed() && in_daemon == sys::gettid() {
        finish_now();
    }
    mask
}

/// Interposed _Fork(3) (glibc 2.34): a fork that runs no atfork handlers, for signal handlers
/// and async-signal-safe code. The tracker's own fork handlers still run around it: without
/// them the child would write into the parent's capture (shared memory) and finish it at exit.
/// When the call interrupted one of the tracker's hooks on this thread (a signal handler), the
/// tracker's locks may be held here: the child then only stops recording.
///
/// # Safety
/// Same contract as libc's _Fork.
pub unsafe extern "C" fn underscore_fork() -> libc::pid_t {
    let in_hook = tls::get().in_tracker != 0;
    if !in_hook {
        fork_prepare();
    }
    let pid = crate::family::real_underscore_fork();
    match (pid, in_hook) {
        (0, false) => fork_child(),
        (0, true) => stop_in_unknown_child(),
        (_, false) => fork_parent(),
        (_, true) => {}
    }
    crate::family::record_underscore_fork_child(pid);
    pid
}

/// In a child made by _Fork from inside one of the tracker's hooks (a signal handler): the
/// tracker's locks may be held by the interrupted hook, so the child takes none; it stops
/// recording (the parent's capture is shared memory) and starts no capture of its own.
fn stop_in_unknown_child() {
    crate::family::forget_deferred_children();
    EXITING.store(0, Ordering::Relaxed);
    ACTIVE.store(false, Ordering::Release);
    STARTED.store(false, Ordering::Release);
}

/// In the child: a lock may have been held by a thread that does not exist here, so all are
/// released; then the child stops recording, or (--follow-fork) starts a capture of its own.
pub(crate) extern "C" fn fork_child() {
    // fork() returns in the child with the errno it had: a followed child's start must not
    // change it.
    let _errno = sys::ErrnoGuard::new();
    if forking_inside_a_hook() {
        stop_in_unknown_child();
        return;
    }
    let mask = crate::fork_signals::taken();
    start_in_child();
    // Last: the child's start (a followed child's capture) takes locks too.
    crate::fork_signals::restore(mask);
}

/// The child's part of [`fork_child`]: every lock let go, then recording stops or (followed)
/// starts a capture of the child's own.
fn start_in_child() {
    crate::family::forget_deferred_children();
    // A thread of the parent's exiting is not one of the child's: its own exit goes on.
    EXITING.store(0, Ordering::Relaxed);
    crate::own_heap::unlock_after_fork();
    crate::names::unlock_after_fork();
    crate::python::unlock_after_fork();
    CAPTURE.unlock_after_fork();
    stacks::unlock_all();
    crate::aggregate::reset_in_child();
    crate::phdr::unlock_after_fork();
    modules::unlock_after_fork();
    CONFIG.raw_unlock();
    crate::unwind::after_fork();
    // A sandboxed parent's child: no system call (and no capture) of the tracker's.
    if !STARTED.load(Ordering::Acquire) || sys::sandboxed() {
        return;
    }
    tls::guarded(|| {
        // The parent's capture is shared memory: the child must never write to it.
        ACTIVE.store(false, Ordering::Release);
        STARTED.store(false, Ordering::Release);
        CAPTURE.abandon();
        thread::close_all();
        let cfg = CONFIG.lock();
        let Some(cfg) = cfg.as_ref() else { return };
        if !cfg.follow_fork {
            return;
        }
        // The capture's start reads the module list (dl_iterate_phdr): see loader_lock.
        if crate::loader_lock::held_in_child() {
            crate::phdr::leave_loader_alone();
        }
        let pid = sys::getpid();
        CHILD_OF.store(HEADER_PID.load(Ordering::Relaxed), Ordering::Relaxed);
        let child = Config {
            // As the parent's child record names it (see sys::proc_ids).
            output: child_path(&cfg.root, sys::proc_ids().0),
            force: false,
            follow_fork: true,
            root: cfg.root.clone(),
            status: cfg.status.clone(),
            descendant: true,
            python: cfg.python,
            python_allocators: cfg.python_allocators,
            object_types: cfg.object_types,
            native: cfg.native,
            exec: 0,
            exec_base: child_path(&cfg.root, pid),
            python_hook: cfg.python_hook.clone(),
            sample_bytes: cfg.sample_bytes,
            sample_seed: cfg.sample_seed,
            labels: cfg.labels.clone(),
            attached: false,
            aggregate: cfg.aggregate,
        };
        stacks::clear();
        crate::rss::reset();
        modules::reset();
        thread::reset_for_new_capture();
        crate::sample::fork_child(tls::get());
        EXIT_MARKED.store(false, Ordering::Relaxed);
        EXITING.store(0, Ordering::Relaxed);
        FINISHED.store(false, Ordering::Relaxed);
        FINISHER.store(0, Ordering::Relaxed);
        FINISH_DONE.store(false, Ordering::Relaxed);
        match start_capture(&child) {
            Ok(()) => {
                crate::exec::after_fork(&child);
                CAPTURE_PID.store(pid, Ordering::Relaxed);
                STARTED.store(true, Ordering::Release);
                ACTIVE.store(true, Ordering::Release);
            }
            Err(msg) => report_status(&child, &msg),
        }
        CHILD_OF.store(0, Ordering::Relaxed);
    });
}
