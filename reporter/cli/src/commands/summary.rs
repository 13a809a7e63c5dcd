//! `memtrace summary`: a table of functions with their own and total bytes and allocations at
//! the peak (or in another view).

use crate::by_type_view;
use crate::color::ColorArgs;
use crate::view_args::{self, ViewArgs};
use clap::{Args, ValueEnum};
use memtrace_reporter::report::by_type;
use memtrace_reporter::report::human::{count, size};
use memtrace_reporter::report::locations::{UNKNOWN, UNKNOWN_NOTE};
use memtrace_reporter::report::paint::{self, paint, Styled, BOLD};
use memtrace_reporter::report::paths::{self, Paths};
use memtrace_reporter::report::summary::{self, Row, SortBy};
use memtrace_reporter::report::views;
use serde::Serialize;
use std::io::{self, Write};
use std::path::PathBuf;

#[derive(Args, Debug)]
#[command(after_help = "\
A function is a function in a file (its lines together). Own: allocated with the function as
the innermost frame. Total: allocated while the function was on the stack (counted once when it
recurses). The own bytes of all functions add up to the view's total.

Examples:
  memtrace summary out.bin                    the 20 functions with the most bytes at the peak
  memtrace summary -s own -n 50 out.bin
  memtrace summary --leaks out.bin            what is still live at exit
  memtrace summary --temporary -s allocations out.bin
  memtrace summary --threads out.bin          functions per thread
  memtrace summary --json out.bin | jq '.rows[0]'
  memtrace summary --by-type out.bin          a Python run: (type, line) rows of what is
                                              live at the peak (at exit with --leaks)

JSON keys: capture, view, title, bytes, allocations, functions (rows in all), complete,
sample_bytes, aggregated, warnings (as in stats --json), rows
[{location, function, file, thread, own_bytes, own_allocations, total_bytes,
total_allocations}] (thread: with --threads, else null). With --by-type: capture, view (peak
or leaks), title, types [{type, objects, bytes, allocations, lines [{location, function, file, line,
bytes, allocations}]}].")]
pub struct SummaryArgs {
    /// The capture file written by `memtrace run`
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    #[command(flatten)]
    pub view: ViewArgs,
    #[command(flatten)]
    pub color: ColorArgs,
    /// Sort by (largest first)
    #[arg(short = 's', long = "sort", value_enum, default_value_t = Sort::Total)]
    pub sort: Sort,
    /// How many functions to list
    #[arg(short = 'n', long = "top", value_name = "N", default_value_t = 20, value_parser = crate::view_args::list_length)]
    pub top: usize,
    /// Text: show files with their full paths (by default a file under the script's directory
    /// or the current directory is shown relative to it, whichever is shorter)
    #[arg(long = "full-paths")]
    pub full_paths: bool,
    /// Print one JSON object instead of text
    #[arg(long)]
    pub json: bool,
    /// A Python run: rows of (object type, line that allocated it) for what is live at the
    /// peak (at exit with --leaks)
    #[arg(long, conflicts_with_all = ["temporary", "threads", "thread"])]
    pub by_type: bool,
}

/// What rows are sorted by (largest first): the library's [`SortBy`] as an option.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Sort {
    /// Total bytes
    Total,
    /// Own bytes
    Own,
    /// Total allocations
    Allocations,
    /// Own allocations
    OwnAllocations,
}

impl From<Sort> for SortBy {
    fn from(s: Sort) -> SortBy {
        match s {
            Sort::Total => SortBy::Total,
            Sort::Own => SortBy::Own,
            Sort::Allocations => SortBy::Allocations,
            Sort::OwnAllocations => SortBy::OwnAllocations,
        }
    }
}

#[derive(Serialize)]
struct JsonSummary<'a> {
    capture: String,
    view: views::View,
    title: &'a str,
    bytes: u64,
    allocations: u64,
    functions: usize,
    #[serde(flatten)]
    state: view_args::CaptureState,
    rows: &'a [Row],
}

fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        "-".to_string()
    } else {
        format!("{:.1}%", 100.0 * part as f64 / whole as f64)
    }
}

fn render(
    title: &str,
    total: u64,
    rows: &[Row],
    all: usize,
    paths: &Paths,
    out: &mut impl Styled,
) -> io::Result<()> {
    writeln!(out, "{title}")?;
    paint(
        out,
        BOLD,
        format!(
            "{:>10} {:>6}  {:>10} {:>6}  {:>12} {:>12}  FUNCTION",
            "TOTAL", "", "OWN", "", "ALLOCATIONS", "OWN ALLOCS"
        ),
    )?;
    writeln!(out)?;
    if rows.is_empty() {
        writeln!(out, "  (no allocations)")?;
    }
    for r in rows {
        let thread = r
            .thread
            .as_ref()
            .map(|t| format!("  [{t}]"))
            .unwrap_or_default();
        paint(
            out,
            paint::by_share(r.total_bytes, total),
            format!("{:>10}", size(r.total_bytes)),
        )?;
        write!(out, " {:>6}  ", percent(r.total_bytes, total))?;
        paint(
            out,
            paint::by_share(r.own_bytes, total),
            format!("{:>10}", size(r.own_bytes)),
        )?;
        write!(
            out,
            " {:>6}  {:>12} {:>12}  ",
            percent(r.own_bytes, total),
            count(r.total_allocations),
            count(r.own_allocations),
        )?;
        paint::location(out, &paths.label(&r.location, r.file.as_deref()))?;
        writeln!(out, "{thread}")?;
    }
    if all > rows.len() {
        writeln!(
            out,
            "… {} more functions (-n to see more)",
            count((all - rows.len()) as u64)
        )?;
    }
    if rows.iter().any(|r| r.location == UNKNOWN) {
        writeln!(out, "{UNKNOWN_NOTE}")?;
    }
    Ok(())
}

/// Runs `memtrace summary`.
pub fn execute(args: SummaryArgs) -> Result<(), String> {
    if args.by_type {
        return by_type(&args);
    }
    let opts = args.view.options(views::View::Peak);
    // A family: its processes' trees under one root (each process a top-level frame).
    // (A family's files are shown relative to the current directory: it has no one script.)
    let (capture, argv, tree, title, all, state) = match args.view.family_tree(&args.file, &opts)? {
        Some(f) => (
            args.file.display().to_string(),
            Vec::new(),
            f.tree,
            f.title,
            f.warnings.clone(),
            view_args::CaptureState::of_family(&f.warnings),
        ),
        None => {
            let file = args.view.capture(&args.file)?;
            // Its warnings are printed as it is read.
            let (capture, analysis, selection, tree) = view_args::load_tree(&file, &opts)?;
            let title = views::title(&analysis, &selection);
            (
                capture.path().display().to_string(),
                capture.argv(),
                tree,
                title,
                Vec::new(),
                view_args::CaptureState::of(&analysis, &[]),
            )
        }
    };
    view_args::warn(&all);
    let rows = summary::rows(&tree, opts.split_threads, args.sort.into());
    let shown = &rows[..rows.len().min(args.top)];
    let mut out = view_args::stdout(args.json).colored(!args.json && args.color.enabled());
    let root = tree.root();
    let r = if args.json {
        let s = JsonSummary {
            capture,
            view: opts.view,
            title: &title,
            bytes: root.bytes,
            allocations: root.allocations,
            functions: rows.len(),
            state,
            rows: shown,
        };
        serde_json::to_writer(&mut out, &s)
            .map_err(io::Error::from)
            .and_then(|()| writeln!(out))
    } else {
        let paths = if args.full_paths {
            Paths::full()
        } else {
            Paths::relative(
                &argv,
                paths::tree_files(&tree),
                std::env::current_dir().ok(),
            )
        };
        render(&title, root.bytes, shown, rows.len(), &paths, &mut out)
    };
    view_args::written(r.and_then(|()| out.flush()))
}

/// `summary --by-type`: rows of (type, line) live at the peak (or at exit), the most bytes
/// first.
fn by_type(args: &SummaryArgs) -> Result<(), String> {
    by_type_view::write(&args.file, &args.view, args.json, |groups, out| {
        by_type::render_table(groups, args.top, out)
    })
}
