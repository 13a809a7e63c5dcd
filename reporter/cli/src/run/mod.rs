//! `memtrace run`: runs a program with the tracker preloaded and writes a capture.
//!
//! - [`target`]: what to start: the program, or for a Python run ([`python`]) the interpreter
//!   ([`interpreter`]) with the script, `-m module` or `-c code`
//! - [`signals`]: memtrace passes on the signals sent to it, and survives the terminal's Ctrl-C
//!   while the program decides
//! - [`rundir`]: the run's private directory (the Python hook, the tracker's status file)

mod bootstrap;
mod disk;
mod elf;
pub(crate) mod environment;
mod execs;
mod interpreter;
mod live;
mod modes;
mod preload_link;
mod program;
mod python;
mod rundir;
mod sentinel;
mod shebang;
mod signals;
mod stale;
mod target;
mod waiting;

use clap::Args;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Args, Debug)]
#[command(after_help = "\
Python: a first word ending in .py (or .pyz, a zip application, or a directory with a __main__.py), or
-m MODULE, -c CODE, or - (the program read from stdin) runs the Python interpreter
(--python PATH, else $VIRTUAL_ENV/bin/python, else the Python of the virtual environment whose
memtrace this is, else python3 on PATH) exactly as
`python script.py` would, with sys.argv, stdin, stdout and the exit status unchanged (an
executable script whose #! line names Python runs with that interpreter; one whose #! line
names another, bash or node, runs as its path would run it). memtrace's options come first; every word after the program is the program's.

Examples:
  memtrace run script.py arg1              writes memtrace-script.<pid>.bin
  memtrace run ./myprog arg1 arg2          writes memtrace-myprog.<pid>.bin
  memtrace run -o out.bin -- ls -l /
  memtrace run --follow-fork make -j2
  memtrace run ./wrapper.sh                a program it execs writes <capture>.exec1 (...exec2)
  memtrace run -m http.server 8000         writes memtrace-http.server.<pid>.bin
  memtrace run -c 'print(len(bytearray(10**6)))'
  memtrace run --python ~/.pyenv/versions/3.12.1/bin/python3 script.py
  memtrace run --sample-bytes 512K --label service=api server.py
  memtrace run --aggregate -o service.bin server.py   sums per stack: a small capture
  memtrace run --live -o out.bin script.py   the live view; the program's output in out.bin.out
  memtrace stats out.bin")]
pub struct RunArgs {
    /// Write the capture to FILE (default: memtrace-<name>.<pid>.bin in the current directory,
    /// <name> being the program, or the script's stem, the module or "c" for Python)
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Overwrite the capture file if it exists
    #[arg(short = 'f', long = "force")]
    pub force: bool,
    /// Do not print where the capture went
    #[arg(short = 'q', long = "quiet")]
    pub quiet: bool,
    /// Trace the children the program forks (and programs they exec): each writes <capture>.<pid>
    /// (a program the traced process itself execs is always traced: <capture>.exec<N>)
    #[arg(long = "follow-fork")]
    pub follow_fork: bool,
    /// Python runs: record system allocations only (pymalloc's arenas then show as mmaps)
    #[arg(long = "no-python-allocators")]
    pub no_python_allocators: bool,
    /// Python runs: do not record object types (neither the type of each object freed, for the
    /// peak, nor the walk of the objects live when the script finishes; the types tables and
    /// by-type views need them)
    #[arg(long = "no-types")]
    pub no_types: bool,
    /// Record the whole native call stack of every allocation (not only its call site)
    #[arg(long = "native")]
    pub native: bool,
    /// Sample allocations by bytes: each byte is sampled with probability 1/N (N such as 512K,
    /// 1M, 4096); requests of N/2 bytes or more are always recorded. Reports scale estimates
    /// and say the capture is sampled
    #[arg(long = "sample-bytes", value_name = "N")]
    pub sample_bytes: Option<String>,
    /// Store a label in the capture (repeatable), e.g. --label service=api --label version=1.4;
    /// `export --format pprof` writes them as pprof labels
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Keep sums per stack and thread instead of every allocation: the capture grows with the
    /// stacks that change between snapshots and the run's length, not with the events (a
    /// program whose 100,000 stacks all keep changing writes some 1 MB a second); written out
    /// every 2 seconds while the program allocates and at each new high peak, so a kill loses
    /// at most its last 2 seconds of allocating (an idle program writes at its next
    /// allocation; for long runs; temporary allocations are not recorded)
    #[arg(long = "aggregate")]
    pub aggregate: bool,
    /// Show the live view (as `memtrace live`) while the program runs; the program's output
    /// goes to <capture>.out, named in the view
    #[arg(long = "live")]
    pub live: bool,
    /// The Python interpreter of a Python run (default: $VIRTUAL_ENV/bin/python, else the
    /// Python of the virtual environment whose memtrace this is, else python3)
    #[arg(long = "python", value_name = "PATH")]
    pub python: Option<OsString>,
    /// The program and its arguments; or a Python script.py, -m MODULE, -c CODE or - (read
    /// from stdin), and its arguments
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "PROGRAM"
    )]
    pub command: Vec<OsString>,
}

/// Environment variable naming the tracker library, overriding the one beside the executable.
pub const TRACKER_ENV: &str = "MEMTRACE_TRACKER";
/// Environment variable telling the tracker that the program is a Python interpreter running
/// the user's script (`1`); absent otherwise.
pub const PYTHON_ENV: &str = "MEMTRACE_PYTHON";
/// Environment variable naming the start-up hook's directory, for exec'd images that are CPython.
const PYTHON_HOOK_ENV: &str = "MEMTRACE_PYTHON_HOOK";
const TRACKER_FILE: &str = "libmemtrace_tracker.so";
/// The tracker's name in the Python package, where the same file is also the importable
/// module `memtrace._memtrace_tracker` (the package's `memtrace` executable sits beside it).
const PACKAGED_TRACKER_FILE: &str = "_memtrace_tracker.so";

/// A failure of memtrace itself (not of the program): one line for the user.
#[derive(Debug)]
pub struct RunError(pub String);

/// Runs the program; returns the exit status memtrace should exit with: the program's own (one
/// that died of signal N makes memtrace die of N too, or exit 128+N when it cannot); the error
/// (exit status 1) when memtrace could not run it.
pub fn execute(args: RunArgs) -> Result<i32, String> {
    signals::survive_file_size_limit();
    run(args).map_err(|RunError(msg)| msg)
}

/// The line for a program that could not be started.
fn spawn_error(program: &Path, e: &std::io::Error) -> String {
    if e.raw_os_error() == Some(libc::E2BIG) {
        // memtrace adds a few hundred bytes of variables (the tracker's preload, its settings).
        return format!(
            "cannot run {}: its arguments and environment exceed the system's limit (E2BIG: \
             128 KiB for one argument or variable, ARG_MAX for all; memtrace adds a few hundred \
             bytes of variables of its own)",
            program.display()
        );
    }
    if e.kind() == std::io::ErrorKind::NotFound {
        if let Some(interpreter) = missing_interpreter(program) {
            // The kernel says ENOENT for the interpreter of a `#!` line, not the file.
            return format!(
                "cannot run {}: bad interpreter {interpreter:?} in its #! line{}",
                program.display(),
                if interpreter.ends_with('\r') {
                    " (the line ends with a carriage return: the file has Windows line ends)"
                } else {
                    " (no such file)"
                }
            );
        }
    }
    format!("cannot run {}: {e}", program.display())
}

/// The interpreter a script's `#!` line names when that file does not exist.
fn missing_interpreter(program: &Path) -> Option<String> {
    use std::io::Read;
    let mut head = [0u8; 256];
    let n = std::fs::File::open(program).ok()?.read(&mut head).ok()?;
    let line = head[..n].strip_prefix(b"#!")?;
    let line = &line[..line.iter().position(|&b| b == b'\n').unwrap_or(line.len())];
    let text = String::from_utf8_lossy(line);
    let interpreter = text
        .trim_start_matches([' ', '\t'])
        .split([' ', '\t'])
        .next()?;
    (!interpreter.is_empty() && !Path::new(interpreter).exists()).then(|| interpreter.to_string())
}

/// Whether files can be made in `dir` (a read-only file system, no write permission): asked
/// before the program starts, so that a bad -o is one line rather than a run without capture.
fn writable(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    // SAFETY: access(2) with a NUL-terminated path; it only checks.
    if unsafe { libc::access(path.as_ptr(), libc::W_OK | libc::X_OK) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn run(args: RunArgs) -> Result<i32, RunError> {
    // Checked before anything starts: a bad value is one line.
    let mut check = Command::new("true");
    modes::apply(&mut check, args.sample_bytes.as_deref(), &args.labels)?;
    if args.aggregate && args.live {
        return Err(RunError(
            "--live shows every event as it comes: it cannot follow an --aggregate run".into(),
        ));
    }
    let target = target::plan(&args.command, args.python.as_deref())?;
    if let Some(note) = target.note.as_ref().filter(|_| !args.quiet) {
        crate::say!("memtrace: {note}");
    }
    let tracker = preload_link::preloadable(&tracker_path()?)?;
    // A current directory that was removed is no reason to refuse a run whose capture has a
    // place of its own (an absolute -o); the program runs there as it would alone.
    let cwd = match std::env::current_dir() {
        Ok(cwd) => cwd,
        Err(_) if args.output.as_ref().is_some_and(|o| o.is_absolute()) => PathBuf::new(),
        Err(e) => {
            return Err(RunError(format!(
                "cannot read the current directory: {e} (name the capture with an absolute -o)"
            )))
        }
    };
    let template = match &args.output {
        Some(out) => {
            if out.as_os_str() == "-" {
                return Err(RunError(
                    "a capture is a file, not a stream: -o - would name a file `-` (say ./- for that)"
                        .into(),
                ));
            }
            if out.is_dir() {
                return Err(RunError(format!(
                    "cannot write the capture to {}: it is a directory",
                    out.display()
                )));
            }
            memtrace_reporter::output::check_capture_output(out).map_err(RunError)?;
            // The name itself: a symbolic link that leads nowhere is there too (the check
            // looked through it, the program ran, and the capture could not be created).
            if std::fs::symlink_metadata(out).is_ok() && !args.force {
                return Err(RunError(format!(
                    "{} already exists (use -f to overwrite it)",
                    out.display()
                )));
            }
            if let Some(word) = run_file(out, &args.command, &target.path) {
                return Err(RunError(format!(
                    "{} is the program this runs ({}): the capture needs another name",
                    out.display(),
                    word.display()
                )));
            }
            // What -f overwrites goes now: a program the tracker cannot be loaded into
            // (set-user-ID, a loader error) writes no capture, and the old one stayed there
            // as if it were this run's. (The tracker makes a new file, never truncating one
            // another run may have mapped; unlinking leaves such a mapping whole.)
            // A symbolic link goes itself: -f gives the name to a new file (the file it led to
            // was truncated and rewritten in place, under a name the user never gave).
            if args.force
                && std::fs::symlink_metadata(out)
                    .is_ok_and(|m| m.is_file() || m.file_type().is_symlink())
            {
                let _ = std::fs::remove_file(out);
            }
            let dir = out
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            if !dir.is_dir() {
                return Err(RunError(format!(
                    "cannot write {}: directory {} does not exist",
                    out.display(),
                    dir.display()
                )));
            }
            if let Err(e) = writable(dir) {
                return Err(RunError(format!(
                    "cannot write {} in directory {}: {e}",
                    out.display(),
                    dir.display()
                )));
            }
            let abs = if out.is_absolute() {
                out.clone()
            } else {
                cwd.join(out)
            };
            abs.into_os_string()
        }
        None => {
            // Checked now, as -o is: the tracker found out only at the start, and the whole
            // program ran unrecorded.
            if let Err(e) = writable(&cwd) {
                return Err(RunError(format!(
                    "cannot write the capture in the current directory {}: {e} (name another place with -o)",
                    cwd.display()
                )));
            }
            cwd.join(format!("memtrace-{}.{{pid}}.bin", target.name))
                .into_os_string()
        }
    };
    let run_dir = rundir::RunDir::create()?;
    let status_file = run_dir.status_path();

    // The program's own value after the tracker's entry, as it is (an empty one too: the
    // tracker takes its entry and one `:` out and leaves the rest, so that the program sees
    // the value it was given).
    let mut preload = tracker.clone().into_os_string();
    if let Some(existing) = std::env::var_os("LD_PRELOAD") {
        preload.push(":");
        preload.push(existing);
    }
    let mut cmd = Command::new(&target.path);
    // What the interpreter's shim would have set (pyenv's PATH and variables), first: the
    // run's own variables below come after.
    for (name, value) in &target.env {
        match value {
            Some(v) => cmd.env(name, v),
            None => cmd.env_remove(name),
        };
    }
    cmd.arg0(&target.arg0)
        .args(&target.args)
        .env("LD_PRELOAD", &preload)
        .env("MEMTRACE_OUTPUT", &template)
        .env("MEMTRACE_STATUS", &status_file)
        .env_remove("MEMTRACE_PARENT_CAPTURE")
        .env_remove(interpreter::PACKAGE_PYTHON);
    match &target.process_name {
        Some(name) => cmd.env("MEMTRACE_COMM", name),
        None => cmd.env_remove("MEMTRACE_COMM"),
    };
    // The start-up hook serves the Python run, and any image the program execs that is CPython
    // (the tracker puts it on that image's PYTHONPATH): made for every run, required for a
    // Python run only.
    let python = target.python.then_some(target.path.as_path());
    let bootstrap = match bootstrap::Bootstrap::create(&tracker, run_dir.path(), python) {
        Ok(b) => Some(b),
        Err(e) if target.python => return Err(e),
        Err(_) => None,
    };
    match &bootstrap {
        Some(b) => cmd.env(PYTHON_HOOK_ENV, b.dir()),
        None => cmd.env_remove(PYTHON_HOOK_ENV),
    };
    if let Some(b) = bootstrap.as_ref().filter(|_| target.python) {
        cmd.env(PYTHON_ENV, "1")
            .env("PYTHONPATH", b.python_path())
            .env(bootstrap::ARMED_ENV, "1");
        match std::env::var_os("PYTHONPATH") {
            Some(v) => cmd.env(bootstrap::ORIGINAL_PATH_ENV, v),
            None => cmd.env_remove(bootstrap::ORIGINAL_PATH_ENV),
        };
    } else {
        cmd.env_remove(PYTHON_ENV).env_remove(bootstrap::ARMED_ENV);
    }
    // Also for a program that is (or execs) CPython without being a Python run, e.g.
    // `memtrace run --no-types python3 x.py`: the tracker reads these in any CPython image.
    if args.no_python_allocators {
        cmd.env("MEMTRACE_PYTHON_ALLOCATORS", "0");
    }
    if args.no_types || args.aggregate {
        cmd.env("MEMTRACE_OBJECT_TYPES", "0");
    }
    if args.force {
        cmd.env("MEMTRACE_FORCE", "1");
    }
    if args.follow_fork {
        cmd.env("MEMTRACE_FOLLOW_FORK", "1");
    }
    if args.native {
        cmd.env("MEMTRACE_NATIVE", "1");
    } else {
        cmd.env_remove("MEMTRACE_NATIVE");
    }
    modes::apply(&mut cmd, args.sample_bytes.as_deref(), &args.labels)?;
    modes::aggregate(&mut cmd, args.aggregate);
    let grouping = signals::isolate(&mut cmd);
    // The program gets what memtrace was given (descriptors, signals, the environment's order)
    // with the changes above.
    let mut cmd = crate::inherited::command(&cmd, &target.arg0).map_err(RunError)?;
    match grouping {
        signals::Grouping::Shared => {}
        signals::Grouping::ProgramAlone => {
            cmd.process_group(0);
        }
        signals::Grouping::MemtraceAlone { pgid } => {
            cmd.process_group(pgid);
        }
    }
    let output = args.live.then(|| live::output_path(Path::new(&template)));
    if let Some(out) = &output {
        if !std::io::IsTerminal::is_terminal(&std::io::stdout()) {
            return Err(RunError(
                "--live needs a terminal (stdout is not one)".to_string(),
            ));
        }
        live::redirect(&mut cmd, out, args.force)?;
    }
    let guard = signals::Forwarder::install()
        .map_err(|e| RunError(format!("cannot set up signal handling: {e}")))?;
    // A capture of this run starts after this (a file of the same name made earlier is not
    // this run's, whatever its pid says: pids repeat in a new pid namespace).
    let started = std::time::SystemTime::now();
    let spawned = match (cmd.spawn(), grouping) {
        // The group memtrace left is gone (memtrace was its last member): a group of its own.
        (Err(e), signals::Grouping::MemtraceAlone { .. })
            if e.raw_os_error() == Some(libc::EPERM) =>
        {
            cmd.process_group(0).spawn()
        }
        (spawned, _) => spawned,
    };
    let mut child = spawned.map_err(|e| {
        // The output file was made for this run only.
        if let Some(out) = &output {
            let _ = std::fs::remove_file(out);
        }
        RunError(spawn_error(&target.path, &e))
    })?;
    if let signals::Grouping::MemtraceAlone { pgid } = grouping {
        // Left in the group memtrace left, to see what is sent to it (sentinel.rs).
        sentinel::start(&signals::forwarded(), pgid);
    }
    guard.forward_to(child.id());
    run_dir.sweep_stale();
    let output = output.map(|made| {
        live::settle_output(
            &made,
            Path::new(&with_pid(&template, child.id())),
            args.force,
        )
    });
    let viewed = output.as_ref().map(|out| {
        let capture = with_pid(&template, child.id());
        let words: Vec<String> = args
            .command
            .iter()
            .map(|w| w.to_string_lossy().into_owned())
            .collect();
        live::view(Path::new(&capture), child.id(), words.join(" "), out)
    });
    waiting::wait_for_exit(child.id());
    // Read and removed before the default dispositions return, so that a signal ending
    // memtrace from then on leaves nothing behind.
    let tracker_msg = run_dir.read_status();
    if let Some(b) = &bootstrap {
        b.keep_compiled();
    }
    drop(run_dir);
    if args.follow_fork {
        stale::sweep_python_hooks();
    }
    guard.finish();
    let status = child
        .wait()
        .map_err(|e| RunError(format!("lost track of the program: {e}")))?;
    let code = exit_code(status);

    let capture = with_pid(&template, child.id());
    // Name the capture as the user would: relative to the current directory when inside it.
    let shown = capture
        .strip_prefix(&cwd)
        .map(Path::to_path_buf)
        .unwrap_or_else(|_| capture.clone());
    if let Some(out) = &output {
        if let Some(Err(RunError(e))) = &viewed {
            crate::say!("memtrace: {e}");
        }
        let shown = out.strip_prefix(&cwd).unwrap_or(out);
        crate::say!("memtrace: the program's output is in {}", shown.display());
    }
    if args.quiet && !capture.exists() {
        // Quiet leaves out the hints, not a run that recorded nothing.
        report(&capture, &shown, tracker_msg.as_deref(), status);
    }
    if !args.quiet {
        if let Some(whose) = not_this_run_s(&capture, child.id(), started) {
            // Another run of the same -o created the file meanwhile (this one's tracker then
            // said it could not create it), or replaced it under -f; or an earlier run of the
            // same pid (a container's) left it.
            say_tracker_lines(tracker_msg.as_deref());
            crate::say!(
                "memtrace: no capture of this run is at {}: the file there is {whose}",
                shown.display()
            );
        } else {
            // A program that exec'd has a capture per program: the hint names the last.
            let (last, last_shown) = execs::announce(&capture, &shown, &cwd);
            report(&last, &last_shown, tracker_msg.as_deref(), status);
            if !status.success() {
                disk::say_if_full(&last);
            }
            if args.follow_fork {
                missing_children(&capture);
            } else {
                children_hint(&capture, target.python);
            }
        }
    }
    if let Some(sig) = status.signal() {
        signals::die_of(sig);
    }
    Ok(code)
}

use std::os::unix::process::{CommandExt, ExitStatusExt};

/// With --follow-fork: names each forked child that has no capture. Its tracker tells why
/// through the run's status file when it can, but a child that changed its user (a daemon
/// dropping privileges) may write neither that file nor its capture, and went unmentioned.
fn missing_children(capture: &Path) {
    if !capture.is_file() {
        return;
    }
    let Ok(family) = memtrace_reporter::family::discover(capture) else {
        return;
    };
    let in_handlers = family
        .processes
        .iter()
        .filter(|p| !p.tracked() && p.how == Some(memtrace_format::family::how::FORK_IN_HANDLER))
        .count();
    if in_handlers > 0 {
        crate::say!(
            "memtrace: {in_handlers} children forked by signal handlers that interrupted the tracker were not tracked (such a child records nothing; they are listed in the family)"
        );
    }
    for p in family.processes.iter().skip(1) {
        // The root's own exec is said by the run (execs.rs).
        if let Some(program) = &p.exec_without_capture {
            crate::say!(
                "memtrace: child process {} exec'd {}, which wrote no capture (its figures stop at the exec)",
                p.pid,
                memtrace_reporter::report::visible::escape(program)
            );
        }
        if !p.tracked() && p.how == Some(memtrace_format::family::how::FORK) {
            let path = memtrace_reporter::family::child_capture(capture, p.pid);
            crate::say!(
                "memtrace: child process {} has no capture: {} could not be written (a child that changed its user may not write there)",
                p.pid,
                path.display()
            );
        }
    }
}

/// Without --follow-fork: says how many Python children the program started (untracked).
fn children_hint(capture: &Path, python_run: bool) {
    if !capture.is_file() {
        return;
    }
    match memtrace_reporter::family::python_children(capture, python_run) {
        0 => {}
        1 => {
            crate::say!("memtrace: 1 Python child process was not tracked; --follow-fork tracks it")
        }
        n => {
            crate::say!(
                "memtrace: {n} Python child processes were not tracked; --follow-fork tracks them"
            )
        }
    }
}

fn exit_code(status: std::process::ExitStatus) -> i32 {
    match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(sig)) => 128 + sig,
        _ => 1,
    }
}

/// The final line: where the capture is and how to look at it, or why there is none.
fn report(
    capture: &Path,
    shown: &Path,
    tracker_msg: Option<&str>,
    status: std::process::ExitStatus,
) {
    let told = say_tracker_lines(tracker_msg);
    if !capture.exists() {
        // The tracker's own message (a full disk at the start, say) already said why.
        if told.is_none() {
            crate::say!(
                "memtrace: no capture was written, or the program removed it (the tracker cannot start in a program that fails to load, clears LD_PRELOAD or is statically linked)"
            );
        }
        return;
    }
    // As the shell takes it: the hint is a command to paste (`my capture.bin`, a `$`).
    let shown = shell_word(&shown.display().to_string());
    let ended = match status.signal() {
        Some(sig) => format!("the program was killed by signal {sig}"),
        None => "the program ended before the capture was finished".to_string(),
    };
    match completeness(capture) {
        Ok(None) => crate::say!("memtrace: wrote {shown}; {}", next_step(capture, &shown)),
        Ok(Some(why)) => {
            let why = if why == UNFINISHED { ended } else { why };
            crate::say!(
                "memtrace: wrote {shown} (incomplete: {why}); view what was recorded with: memtrace stats {shown}"
            )
        }
        Err(e) => crate::say!("memtrace: wrote {shown}, but it cannot be read: {e}"),
    }
}

/// The most useful next command for a capture: for a Python run, the tree of the peak (and the
/// flamegraph page), where the memory comes from by line; for a native run, the summary; for a
/// Python interpreter named as the program (a native run by design), how to get Python stacks.
fn next_step(capture: &Path, shown: &dyn std::fmt::Display) -> String {
    let Some(header) = header_of(capture) else {
        return format!("view it with: memtrace stats {shown}");
    };
    let python_allocators = header.options & memtrace_format::options::PYTHON_ALLOCATORS != 0;
    let interpreter =
        is_python_program(&header.exe) || header.argv.first().is_some_and(|a| is_python_program(a));
    // The interpreter's own options before its script (a #! line's): one that keeps the
    // start-up hook out was said at the start, and running the script as Python again would
    // not keep it.
    let options: Vec<OsString> = header
        .argv
        .iter()
        .skip(1)
        .take_while(|w| w.starts_with(b"-") && !matches!(&w[..], b"-m" | b"-c" | b"-"))
        .map(|w| std::os::unix::ffi::OsStringExt::from_vec(w.clone()))
        .collect();
    let hidden = interpreter
        .then(|| shebang::hides_the_hook(&options))
        .flatten();
    if let (false, Some(flag)) = (python_allocators, hidden) {
        return format!(
            "view it with: memtrace stats {shown}. Python ran with {flag}, which keeps memtrace's start-up hook out, so the capture has no Python frames"
        );
    }
    match (python_allocators, interpreter) {
        (false, true) => format!(
            "view it with: memtrace stats {shown}. {} ran as a native program (an interpreter named as the program), so the capture has no Python frames; for the script's own lines: {}",
            header.argv.first().map_or_else(
                || "The interpreter".to_string(),
                |a| String::from_utf8_lossy(a).into_owned()
            ),
            python_run_command(&header.argv)
        ),
        (false, false) => format!("view it with: memtrace stats {shown}"),
        _ => format!(
            "see where the peak's memory was allocated with: memtrace tree {shown} (or the page: memtrace flamegraph {shown})"
        ),
    }
}

/// Prints what the tracker said at the end of the run, a line each; returns it (None when it
/// said nothing).
fn say_tracker_lines(tracker_msg: Option<&str>) -> Option<&str> {
    let told = tracker_msg.map(str::trim).filter(|m| !m.is_empty());
    for line in told.unwrap_or_default().lines() {
        let line = line.trim();
        if !line.is_empty() {
            crate::say!("memtrace: {line}");
        }
    }
    told
}

/// The capture path of the template `template` for the program `pid`: `{pid}` replaced, the
/// rest byte for byte (a path that is not UTF-8 stays that path).
fn with_pid(template: &std::ffi::OsStr, pid: u32) -> PathBuf {
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    let bytes = template.as_bytes();
    let mut out = Vec::with_capacity(bytes.len() + 10);
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i..].starts_with(b"{pid}") {
            out.extend_from_slice(pid.to_string().as_bytes());
            i += 5;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    PathBuf::from(std::ffi::OsString::from_vec(out))
}

/// The word of the command (`words`, the program at `program`) that names the file at `out`:
/// a script or an executable the capture would replace (`-f -o app.py app.py`).
fn run_file<'w>(
    out: &Path,
    words: &'w [std::ffi::OsString],
    program: &'w Path,
) -> Option<&'w Path> {
    use std::os::unix::fs::MetadataExt;
    let id = |p: &Path| std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()));
    let target = id(out)?;
    std::iter::once(program)
        .chain(words.iter().map(Path::new))
        .find(|w| id(w) == Some(target))
}

/// Whose the capture at `capture` is when it is not this run's: another process's (its pid is
/// not the program's, `pid`), or an earlier run's (it started before this run, `started`).
/// None when it is this run's or cannot be read.
fn not_this_run_s(capture: &Path, pid: u32, started: std::time::SystemTime) -> Option<String> {
    let h = header_of(capture)?;
    if h.pid != pid {
        return Some(format!(
            "another process's (pid {}), written while this one ran",
            h.pid
        ));
    }
    // The header's start is the tracker's, in the program, on the same clock: after memtrace
    // started it (10 ms of slack for how the tracker reads it).
    let started_ns = started
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    (h.start_realtime_ns.saturating_add(10_000_000) < started_ns).then(|| {
        format!(
            "an earlier run's of the same pid {} (a new pid namespace gives the same pids): \
             choose the name with -o",
            h.pid
        )
    })
}

/// The capture's header (None: not readable).
fn header_of(capture: &Path) -> Option<memtrace_format::FileHeader> {
    let head = head_of(capture).ok()?;
    memtrace_format::FileHeader::decode(&head)
        .ok()
        .map(|(h, _)| h)
}

/// The first 128 KiB of the capture: its header and the trailer's place after it.
fn head_of(capture: &Path) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::new();
    let f = std::fs::File::open(capture)?;
    std::io::Read::read_to_end(&mut std::io::Read::take(f, 128 * 1024), &mut head)?;
    Ok(head)
}

/// Whether the program at `path` is a `python*` interpreter (by its name).
fn is_python_program(path: &[u8]) -> bool {
    let name = path.rsplit(|&b| b == b'/').next().unwrap_or(path);
    memtrace_format::exec::interpreter_name(name)
}

/// `memtrace run --python INTERPRETER ARGS...` for a native run's command line `argv`, each word
/// quoted for a POSIX shell where it needs it.
fn python_run_command(argv: &[Vec<u8>]) -> String {
    let words: Vec<String> = argv
        .iter()
        .map(|w| shell_word(&String::from_utf8_lossy(w)))
        .collect();
    // memtrace takes a script, `-m MODULE` or `-c CODE` after the interpreter, not its options.
    let runnable = words
        .get(1)
        .is_some_and(|w| w == "-m" || w == "-c" || !w.starts_with('-'));
    match (words.first(), runnable) {
        (Some(interpreter), true) => {
            format!(
                "memtrace run --python {interpreter} {}",
                words[1..].join(" ")
            )
        }
        (Some(interpreter), false) => format!("memtrace run --python {interpreter} SCRIPT.py"),
        (None, _) => "memtrace run SCRIPT.py".to_string(),
    }
}

/// `w` as one word of a POSIX shell command.
fn shell_word(w: &str) -> String {
    let plain = !w.is_empty()
        && w.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b));
    match plain {
        true => w.to_string(),
        false => format!("'{}'", w.replace('\'', "'\\''")),
    }
}

/// The tracker library: $MEMTRACE_TRACKER, or the one beside this executable (named as built, or
/// as the Python package ships it).
pub fn tracker_library() -> Result<PathBuf, RunError> {
    tracker_path()
}

/// The tracker library (see [`tracker_library`]).
fn tracker_path() -> Result<PathBuf, RunError> {
    if let Some(p) = std::env::var_os(TRACKER_ENV).filter(|v| !v.is_empty()) {
        let p = PathBuf::from(p);
        if !p.is_file() {
            return Err(RunError(format!(
                "{TRACKER_ENV} names {}, which does not exist",
                p.display()
            )));
        }
        return Ok(std::fs::canonicalize(&p).unwrap_or(p));
    }
    let exe = std::env::current_exe()
        .map_err(|e| RunError(format!("cannot locate memtrace itself: {e}")))?;
    let exe = std::fs::canonicalize(&exe).unwrap_or(exe);
    for name in [TRACKER_FILE, PACKAGED_TRACKER_FILE] {
        let beside = exe.with_file_name(name);
        if beside.is_file() {
            return Ok(beside);
        }
    }
    Err(RunError(format!(
        "cannot find the tracker library {TRACKER_FILE} beside {} (set {TRACKER_ENV} to its path)",
        exe.display()
    )))
}

const UNFINISHED: &str = "no trailer";

/// Whether the capture was finished: None when complete, else why not. The trailer sits in the
/// first chunk place after the header, reserved there when the capture starts.
fn completeness(capture: &Path) -> Result<Option<String>, String> {
    use memtrace_format::{
        trailer_flags, ChunkHeader, ChunkKind, FileHeader, Trailer, CHUNK_HEADER_LEN,
    };
    let head = head_of(capture).map_err(|e| e.to_string())?;
    let (_, len) = FileHeader::decode(&head).map_err(|e| e.to_string())?;
    let at = FileHeader::data_start(len);
    let chunk = head.get(at..).and_then(ChunkHeader::decode);
    let Some(chunk) = chunk.filter(|c| c.kind == ChunkKind::Trailer) else {
        return Ok(Some(UNFINISHED.into()));
    };
    let body = head
        .get(at + CHUNK_HEADER_LEN..at + CHUNK_HEADER_LEN + chunk.stored_len as usize)
        .and_then(Trailer::decode)
        .ok_or("damaged trailer")?;
    if let Some(why) = trailer_flags::write_failure(body.flags) {
        return Ok(Some(format!(
            "writing stopped: {why}; {} events dropped",
            body.records_dropped
        )));
    }
    if let Some(why) = trailer_flags::size_limit(body.flags) {
        return Ok(Some(format!(
            "{why}, {} events dropped",
            body.records_dropped
        )));
    }
    if let Some(why) = trailer_flags::hook_left(body.flags) {
        return Ok(Some(format!(
            "{why}; {} events dropped",
            body.records_dropped
        )));
    }
    Ok(None)
}
