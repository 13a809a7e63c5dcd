//! `memtrace lines`: the script's source, line by line, with the memory each line holds.

use crate::view_args::{self, ViewArgs};
use clap::{Args, ValueEnum};
use memtrace_reporter::report::lines::{self, FileMemory, LineFilter};
use memtrace_reporter::report::lines_listing::{self, LineSort, Listing, Source};
use memtrace_reporter::report::views::{self, View};
use serde::Serialize;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
#[command(after_help = "\
Each line is charged with what it allocated directly and through the functions it called, so a
call line holds its callees' memory too. Columns: the view's bytes (live at the peak; at exit
with --leaks; temporary with --temporary), all bytes allocated, the number of allocations, and
the bytes still live at exit. Only lines with memory are shown, with three lines of context
(--all: every line). By default the listing covers the program's own files, not the Python
installation's or installed packages'.

Examples:
  memtrace lines out.bin                      the script's lines with memory at the peak
  memtrace lines out.bin app/models.py        one file (a path as recorded, or its end)
  memtrace lines out.bin --function build     one function, whole
  memtrace lines --leaks out.bin              what each line left live at exit
  memtrace lines -s allocated -n 10 out.bin   the 10 lines that allocated the most
  memtrace lines --json out.bin | jq '.files[0].lines[0]'

JSON keys: capture, view, temporary_threshold (with --temporary), complete, sample_bytes,
aggregated, warnings (as in stats --json),
files [{file, found, changed, lines [{line, bytes, allocations_live,
allocated_bytes, allocations, exit_bytes, exit_allocations, text}], compile (the same figures
for compiling the file, which no line of its text holds, or null)}].")]
pub struct LinesArgs {
    /// The capture file written by `memtrace run`
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Source files to list (default: the program's own files with memory)
    #[arg(value_name = "SOURCE")]
    pub sources: Vec<String>,
    /// Only the lines of this function, shown whole
    #[arg(long, value_name = "NAME")]
    pub function: Option<String>,
    /// Every line of each file, not only those with memory and their context
    #[arg(long)]
    pub all: bool,
    /// A flat list of the lines with memory, sorted by this column (largest first)
    #[arg(short = 's', long = "sort", value_enum)]
    pub sort: Option<Sort>,
    /// With --sort: how many lines to list
    #[arg(short = 'n', long = "top", value_name = "N", default_value_t = 20, value_parser = crate::view_args::list_length)]
    pub top: usize,
    #[command(flatten)]
    pub view: ViewArgs,
    /// Print one JSON object instead of text
    #[arg(long)]
    pub json: bool,
}

/// The columns a flat list can be sorted by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Sort {
    /// The view's bytes (live at the peak, at exit, or temporary)
    Bytes,
    /// All bytes allocated
    Allocated,
    /// The number of allocations
    Allocations,
    /// Bytes live at exit
    Exit,
}

impl From<Sort> for LineSort {
    fn from(s: Sort) -> LineSort {
        match s {
            Sort::Bytes => LineSort::Bytes,
            Sort::Allocated => LineSort::Allocated,
            Sort::Allocations => LineSort::Allocations,
            Sort::Exit => LineSort::Exit,
        }
    }
}

#[derive(Serialize)]
struct JsonLines {
    capture: String,
    view: View,
    /// With --temporary, its N (as stats --json gives it).
    temporary_threshold: Option<usize>,
    #[serde(flatten)]
    state: view_args::CaptureState,
    files: Vec<lines_listing::JsonFile>,
}

/// Runs `memtrace lines`.
pub fn execute(args: LinesArgs) -> Result<(), String> {
    let opts = args.view.options(View::Peak);
    // With --pid, that process's capture in the family.
    let file = args.view.capture(&args.file)?;
    let (capture, analysis, selection) = view_args::load_selection(&file, &opts)?;
    view_args::warn(&analysis.warnings);
    if let Some(note) = args.view.shown_alone(&args.file) {
        view_args::warn(&[note]);
    }
    // Options other reports take that shape nothing here: said, not silently dropped.
    if args.view.threads {
        view_args::warn(&[
            "--threads splits tree, summary and stats by thread; `memtrace lines` charges each \
             line with every thread's memory (--thread NAME lists one thread's)"
                .to_string(),
        ]);
    }
    if args.json && args.sort.is_some() {
        view_args::warn(&[
            "--sort and --top shape the text listing; --json gives every line of each file"
                .to_string(),
        ]);
    }
    if !lines::has_python_frames(&analysis.tables) {
        // A Python that ran untracked (not 3.10-3.13), or a run cut before its script
        // started, is not "a native program".
        let why = match memtrace_reporter::capture::python_version::of_capture(&capture, &analysis)
        {
            Some(v) => format!(
                "its Python ({v}) ran without Python tracking (memtrace tracks CPython 3.10 to \
                 3.13), or the run ended before the script started; try `memtrace tree {}`",
                args.file.display()
            ),
            None => format!(
                "for a native program, try `memtrace tree {}`",
                args.file.display()
            ),
        };
        return Err(format!(
            "{} has no Python frames: `memtrace lines` lists Python source lines ({why})",
            args.file.display(),
        ));
    }
    let filter = LineFilter {
        function: args.function.as_deref(),
    };
    let code = run_code(&capture.argv());
    let all_files = split_string_code(
        lines::by_line(&analysis, &selection, filter),
        code.as_deref(),
    );
    let files = chosen_files(all_files, &args.sources)?;
    if let Some(name) = &args.function {
        if files.iter().all(|f| f.lines.is_empty()) {
            return Err(format!(
                "no memory in a function named {name:?} (try `memtrace summary {}` for the \
                 functions that allocated)",
                args.file.display()
            ));
        }
    }
    let started = lines_listing::started_at(capture.header.start_realtime_ns);
    let with_source: Vec<(FileMemory, Source)> = files
        .into_iter()
        .map(|f| {
            let source = match (&code, f.file.as_str()) {
                (Some(code), "<string>") => Source::code(code),
                _ => Source::read(&f.file, started),
            };
            (f, source)
        })
        .collect();
    // Not the name of another column (`At exit`, `Allocated` are columns of every view).
    let (view_column, view_words) = match selection.view {
        View::Leaks => ("Leaked", "leaked"),
        View::Temporary => ("Temporary", "temporary"),
        View::All => ("All", "in all"),
        View::Peak => ("Peak", "at the peak"),
    };
    let listing = Listing {
        view_column,
        view_words,
        end_column: if analysis.replay.exit.is_some() {
            "At exit"
        } else {
            "At end"
        },
        all: args.all,
        function: args.function.as_deref(),
    };
    let mut out = view_args::stdout(args.json);
    let r = if args.json {
        let doc = JsonLines {
            capture: capture.path().display().to_string(),
            view: selection.view,
            temporary_threshold: selection.threshold,
            state: view_args::CaptureState::of(&analysis, &[]),
            files: lines_listing::json_files(&with_source, &listing),
        };
        serde_json::to_writer(&mut out, &doc)
            .map_err(io::Error::from)
            .and_then(|()| writeln!(out))
    } else {
        writeln!(out, "{}", views::title(&analysis, &selection))
            .and_then(|()| writeln!(out))
            .and_then(|()| match args.sort {
                Some(by) => lines_listing::write_sorted(
                    &mut out,
                    &with_source,
                    &listing,
                    by.into(),
                    args.top,
                ),
                None => lines_listing::write_text(&mut out, &with_source, &listing),
            })
    };
    view_args::written(r.and_then(|()| out.flush()))
}

/// The name under which `lines` lists code compiled from a string at run time (exec, eval: a
/// dataclass's `__init__`, a namedtuple's `__new__`), whose source the capture does not have.
const MADE_AT_RUN_TIME: &str = "<string> (code made at run time)";

/// The `<string>` file holds the `-c` program's code and whatever exec and eval made from
/// strings at run time: only the lines of the program's own code keep its source (a frame at
/// its top level, or in a function or class its text defines), the others are listed apart.
/// (A dataclass's `__init__`, line 4 of its own generated text, showed its 38 MiB at line 4
/// of the `-c` program; a script run listed the standard library's such code as its own.)
fn split_string_code(files: Vec<FileMemory>, code: Option<&str>) -> Vec<FileMemory> {
    let mut out = Vec::with_capacity(files.len() + 1);
    let mut made = FileMemory {
        file: MADE_AT_RUN_TIME.to_string(),
        ..FileMemory::default()
    };
    for mut f in files {
        if f.file != "<string>" {
            out.push(f);
            continue;
        }
        let Some(code) = code else {
            made.lines.append(&mut f.lines);
            made.functions.append(&mut f.functions);
            continue;
        };
        let theirs: Vec<u64> = f
            .lines
            .keys()
            .copied()
            .filter(|line| {
                let names = f.functions.get(line).map(Vec::as_slice).unwrap_or_default();
                !names.iter().all(|n| defined_in(code, n))
            })
            .collect();
        for line in theirs {
            if let Some(m) = f.lines.remove(&line) {
                made.lines.insert(line, m);
            }
            if let Some(n) = f.functions.remove(&line) {
                made.functions.insert(line, n);
            }
        }
        if !f.lines.is_empty() {
            out.push(f);
        }
    }
    if !made.lines.is_empty() {
        out.push(made);
    }
    out
}

/// Whether the function `name` of a `<string>` frame may be the `-c` program's own: its top
/// level, a comprehension or lambda in it, or a function or class its text defines.
fn defined_in(code: &str, name: &str) -> bool {
    // A qualified name (`C.__init__`): its own part.
    let own = name.rsplit('.').next().unwrap_or(name);
    match own {
        "<module>" | "<listcomp>" | "<dictcomp>" | "<setcomp>" | "<genexpr>" => true,
        "<lambda>" => code.contains("lambda"),
        _ => ["def ", "class "].iter().any(|kw| {
            code.match_indices(kw).any(|(at, _)| {
                let rest = code[at + kw.len()..].trim_start();
                rest.starts_with(own)
                    && !rest[own.len()..].starts_with(|c: char| c.is_alphanumeric() || c == '_')
            })
        }),
    }
}

/// The files to list: those named (each must have memory, or it is an error naming the files
/// that have), else the program's own.
fn chosen_files(all: Vec<FileMemory>, named: &[String]) -> Result<Vec<FileMemory>, String> {
    if named.is_empty() {
        let own: Vec<FileMemory> = all
            .iter()
            .filter(|f| !lines::is_library_file(&f.file) && f.file != MADE_AT_RUN_TIME)
            .cloned()
            .collect();
        // A program that is all library code (a `-m` of an installed module): list everything.
        return Ok(if own.is_empty() { all } else { own });
    }
    let mut out = Vec::new();
    for name in named {
        let found: Vec<&FileMemory> = all.iter().filter(|f| names_file(name, &f.file)).collect();
        if found.is_empty() {
            let known: Vec<&str> = all
                .iter()
                .filter(|f| !lines::is_library_file(&f.file))
                .map(|f| f.file.as_str())
                .take(5)
                .collect();
            return Err(format!(
                "no memory at any line of {name} in this capture (files with memory: {})",
                if known.is_empty() {
                    "none of the program's own".to_string()
                } else {
                    known.join(", ")
                }
            ));
        }
        for f in found {
            if !out.iter().any(|o: &FileMemory| o.file == f.file) {
                out.push(f.clone());
            }
        }
    }
    Ok(out)
}

/// Whether the argument `name` names the recorded path `file`: the same path, the same file
/// once both are made absolute, or the end of the path at a `/`.
fn names_file(name: &str, file: &str) -> bool {
    if name == file || file.ends_with(&format!("/{}", name.trim_start_matches("./"))) {
        return true;
    }
    match (
        Path::new(name).canonicalize(),
        Path::new(file).canonicalize(),
    ) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// The code of a `python -c CODE` run, from the capture's command line.
fn run_code(argv: &[String]) -> Option<String> {
    let i = argv.iter().position(|a| a == "-c")?;
    argv.get(i + 1).cloned()
}
