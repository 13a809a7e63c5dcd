//! The `memtrace` command.
//!
//! The entry point is a C `main`, so that memtrace records the descriptors and signals it was
//! started with before Rust's start-up changes them (see `memtrace_cli::inherited`).

#![no_main]

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser, Subcommand};
use memtrace_cli::attach;
use memtrace_cli::commands::{
    completions, diff, export, flamegraph, lines, live, stats, summary, tree,
};
use memtrace_cli::{run, usage};

#[derive(Parser, Debug)]
#[command(
    name = "memtrace",
    version,
    about = "Track the memory allocations of a program and report on them",
    after_help = "\
Examples:
  memtrace run ./myprog arg1 arg2     trace a program, write memtrace-myprog.<pid>.bin
  memtrace run script.py arg1         trace a Python script, write memtrace-script.<pid>.bin
  memtrace run -m http.server 8000    a module (and -c CODE), as python -m / -c would run it
  memtrace run -o out.bin --python .venv/bin/python script.py
  memtrace run --native script.py     native stacks too, merged with the Python frames
  memtrace stats out.bin              summary: totals, peak, leaks, top locations
  memtrace stats --json out.bin
  memtrace stats --python-only out.bin   a --native capture seen through its Python frames
  memtrace tree out.bin               the call tree of the memory live at the peak
  memtrace tree --leaks --text out.bin   what is still live at exit, as text
  memtrace summary -s own out.bin     functions by the bytes they allocated, at the peak
  memtrace summary --temporary out.bin   allocations freed right after they were made
  memtrace lines out.bin              the script's source, each line with its memory at the peak
  memtrace lines out.bin --function build   one function, line by line
  memtrace flamegraph out.bin         out.html: flamegraph at the peak, memory over time, top lines
  memtrace flamegraph --leaks --inverted -o leaks.html out.bin
  memtrace export out.bin --format folded   collapsed stacks at the peak (also speedscope, pprof, csv)
  memtrace export out.bin --format pprof -o out.pb.gz
  memtrace diff before.bin after.bin  peak, totals and changes by location at the peak
  memtrace live out.bin               watch a capture still being written (run --live: at once)
  memtrace attach 1234                track a running process from now on (memtrace detach 1234)
  memtrace completions bash > ~/.local/share/bash-completion/completions/memtrace
  memtrace man > ~/.local/share/man/man1/memtrace.1"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a program (or a Python script.py, -m MODULE, -c CODE) with the tracker; write a capture
    Run(run::RunArgs),
    /// Summarize a capture: totals, peak memory, leaks, sizes, top allocation sites and modules, threads
    Stats(stats::StatsArgs),
    /// The call tree of the memory live at the peak (or at exit, or of temporary allocations)
    Tree(tree::TreeArgs),
    /// Functions by own and total bytes at the peak (or at exit, or of temporary allocations)
    Summary(summary::SummaryArgs),
    /// Compare two captures: peak, totals and the changes of each location at the peak
    Diff(diff::DiffArgs),
    /// The source, line by line, with the memory each line holds (at the peak, at exit, ...)
    Lines(lines::LinesArgs),
    /// Write an HTML page: flamegraph of the peak (or exit, temporary), memory over time, top lines
    Flamegraph(flamegraph::FlamegraphArgs),
    /// Write the allocation sites in a standard format: folded stacks, speedscope, pprof, CSV
    Export(export::ExportArgs),
    /// Print shell completions (bash, zsh, fish)
    Completions(completions::CompletionsArgs),
    /// Print the manual page (or write a page per command into a directory)
    Man(completions::ManArgs),
    /// Watch a capture that is still being written: live heap, peak so far, the tree, refreshed
    Live(live::LiveArgs),
    /// Start tracking a running process (native or Python), until `memtrace detach PID`
    Attach(attach::AttachArgs),
    /// Stop the tracking `memtrace attach` started; the process goes on
    Detach(attach::DetachArgs),
}

#[no_mangle]
pub extern "C" fn main(
    _argc: std::ffi::c_int,
    _argv: *const *const std::ffi::c_char,
) -> std::ffi::c_int {
    memtrace_cli::inherited::record();
    if stack_too_small() {
        on_a_stack_of_its_own(memtrace_main);
    } else {
        memtrace_main();
    }
    // memtrace_main always exits with the command's status.
    1
}

/// The stack memtrace needs (clap builds its commands in large frames): under a smaller stack
/// limit (`ulimit -s 64`) memtrace died of SIGSEGV before the program ran, which read as the
/// program's crash.
const STACK_NEEDED: u64 = 1 << 20;

fn stack_too_small() -> bool {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills the struct.
    let read = unsafe { libc::getrlimit(libc::RLIMIT_STACK, &mut limit) } == 0;
    read && limit.rlim_cur != libc::RLIM_INFINITY && limit.rlim_cur < STACK_NEEDED
}

/// Runs `f` on a thread with a stack of 8 MiB (a thread's stack is not bound by the limit),
/// with the signal mask memtrace started with; the main thread blocks every signal meanwhile,
/// so that each goes to that thread as it would have gone to the main one. The program run
/// keeps the user's stack limit.
fn on_a_stack_of_its_own(f: fn()) {
    // SAFETY: sigset_t operations on local sets; pthread_sigmask on the calling thread.
    let started_with = unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        old
    };
    let worker = std::thread::Builder::new()
        .stack_size(8 << 20)
        .spawn(move || {
            // SAFETY: restores the mask memtrace started with, on this thread.
            unsafe {
                libc::pthread_sigmask(libc::SIG_SETMASK, &started_with, std::ptr::null_mut())
            };
            f();
        });
    match worker {
        Ok(w) => {
            let _ = w.join();
        }
        Err(e) => {
            memtrace_cli::say!("memtrace: cannot start under this stack limit: {e}");
            std::process::exit(1);
        }
    }
}

fn memtrace_main() {
    // Large buffers (the live heap's tables as they grow) go back to the system when freed:
    // glibc would otherwise raise its mmap threshold after the first ones and keep them in its
    // arenas. Decoded event buffers are used again (capture::pool).
    // SAFETY: mallopt only sets allocator parameters.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 << 10);
        // ... and the smaller buffers of each decoded chunk stay with the allocator instead of
        // going back and faulting in again for the next chunk.
        libc::mallopt(libc::M_TRIM_THRESHOLD, 64 << 20);
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => match e.kind() {
            ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                // Help goes to stdout, or stderr when it stands for a usage error. A reader
                // that stopped reading (`| head`) is no error; a full disk is.
                if let Err(err) = e.print() {
                    if err.kind() != std::io::ErrorKind::BrokenPipe {
                        memtrace_cli::say!("memtrace: cannot write the help: {err}");
                        std::process::exit(1);
                    }
                }
                let code = if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                    1
                } else {
                    0
                };
                std::process::exit(code);
            }
            _ => {
                let words: Vec<String> = std::env::args_os()
                    .skip(1)
                    .map(|a| a.to_string_lossy().into_owned())
                    .collect();
                let line = usage::message(&Cli::command(), &e, &words);
                memtrace_cli::say!("memtrace: {line}");
                std::process::exit(1);
            }
        },
    };
    // Each command's error is printed here, once; a report's success is status 0, a run's the
    // program's own.
    let done = match cli.command {
        Command::Run(args) => run::execute(args),
        Command::Stats(args) => stats::execute(args).map(|()| 0),
        Command::Tree(args) => tree::execute(args).map(|()| 0),
        Command::Summary(args) => summary::execute(args).map(|()| 0),
        Command::Diff(args) => diff::execute(args).map(|()| 0),
        Command::Lines(args) => lines::execute(args).map(|()| 0),
        Command::Flamegraph(args) => flamegraph::execute(args).map(|()| 0),
        Command::Export(args) => export::execute(args).map(|()| 0),
        Command::Completions(args) => completions::completions(args, Cli::command()).map(|()| 0),
        Command::Man(args) => completions::man(args, Cli::command()).map(|()| 0),
        Command::Live(args) => live::execute(args).map(|()| 0),
        Command::Attach(args) => attach::execute(args).map(|()| 0),
        Command::Detach(args) => attach::execute_detach(args).map(|()| 0),
    };
    let code = match done {
        Ok(code) => code,
        Err(e) => {
            memtrace_cli::say!("memtrace: {e}");
            1
        }
    };
    std::process::exit(code);
}
