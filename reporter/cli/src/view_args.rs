//! The options every report shares: the view (`--leaks`, `--temporary`), threads (`--threads`,
//! `--thread`), and reading the capture with progress on stderr.

use crate::progress::Progress;
use clap::Args;
use memtrace_reporter::analysis::tables::{Frame, FrameView};
use memtrace_reporter::analysis::Analysis;
use memtrace_reporter::capture::Capture;
use memtrace_reporter::family::view::FamilyTree;
use memtrace_reporter::report::calltree::CallTree;
use memtrace_reporter::report::views::{Selection, View, ViewOptions};
use memtrace_reporter::report::visible::{escape, Style, Visible};
use memtrace_reporter::report::{load, tree};
use std::path::{Path, PathBuf};

#[derive(Args, Debug, Clone)]
pub struct ViewArgs {
    /// Show the memory still live at exit (the exit snapshot; the end of the capture without one)
    #[arg(long, conflicts_with = "temporary")]
    pub leaks: bool,
    /// Show the temporary allocations: freed by their thread before it made N more allocations
    #[arg(long)]
    pub temporary: bool,
    /// N for --temporary
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub temporary_threshold: u64,
    /// Split the report by thread (one top-level entry per thread)
    #[arg(long)]
    pub threads: bool,
    /// Keep only the thread of this name or TID
    #[arg(long, value_name = "NAME|TID")]
    pub thread: Option<String>,
    /// In a Python run, count the interpreter's start-up too (by default a report starts when
    /// the script starts, as memray's do)
    #[arg(long)]
    pub include_startup: bool,
    /// Show Python frames only (a `--native` capture also holds native frames)
    #[arg(long, conflicts_with = "native_only")]
    pub python_only: bool,
    /// Show native frames only (a `--native` capture of a Python program merges both)
    #[arg(long)]
    pub native_only: bool,
    /// A family (`memtrace run --follow-fork`): report on process PID alone (by default tree,
    /// summary, flamegraph and export show every process of the family, each as the outermost
    /// frame; lines, diff and the by-type views read the given capture's process alone)
    #[arg(long, value_name = "PID", allow_negative_numbers = true)]
    pub pid: Option<u32>,
}

impl ViewArgs {
    /// The capture to read: `file`, or with --pid that process's capture in `file`'s family.
    /// What the report should say of it (captures beside it left out of its family, a
    /// process's later images) goes to stderr.
    pub fn capture(&self, file: &Path) -> Result<PathBuf, String> {
        let (path, notes) = match self.pid {
            Some(_) => self.capture_noted(file)?,
            None => (
                file.to_path_buf(),
                memtrace_reporter::family::left_out(file),
            ),
        };
        warn(&notes);
        Ok(path)
    }

    /// What a comparison (`diff`, `flamegraph --diff`) says of a side that is a family
    /// (`--follow-fork`) with children tracked, when no --pid is given: only the process of
    /// this capture is compared. (A child holding 8.6 MiB was left out and the diff said "no
    /// changes".)
    pub fn compared_alone(&self, file: &Path) -> Option<String> {
        self.alone(
            file,
            "compared",
            "to compare a child, give its own capture, FILE.PID",
        )
    }

    /// What a report that reads one process (`lines`, the by-type views) says of a family
    /// with children tracked, when no --pid is given: only the process of this capture is
    /// shown. (A family's `lines` showed the root's 7.8 MiB where its children held 68 MiB,
    /// and said nothing.)
    pub fn shown_alone(&self, file: &Path) -> Option<String> {
        self.alone(file, "shown", "--pid PID shows a child's")
    }

    /// What `export --format csv` (rows with no process) says of a family with children
    /// tracked, when no --pid is given: only the process of this capture is exported, where
    /// the other formats of the same command hold the whole family at its combined peak.
    pub fn exported_alone(&self, file: &Path) -> Option<String> {
        self.alone(
            file,
            "exported",
            "CSV rows name no process: --pid PID exports a child's; folded, speedscope and pprof export the whole family",
        )
    }

    fn alone(&self, file: &Path, what: &str, instead: &str) -> Option<String> {
        if self.pid.is_some() || !memtrace_reporter::family::has_child_captures(file) {
            return None;
        }
        let family = memtrace_reporter::family::discover(file).ok()?;
        // The process of this capture and its descendants (a child's capture may be given).
        let own = family.process_with_capture(file).unwrap_or(0);
        let family = family.subtree(own);
        let tracked = family.processes.iter().filter(|p| p.tracked()).count();
        (tracked > 1).then(|| {
            format!(
                "a family of {tracked} tracked processes (--follow-fork): only the process of this capture is {what}, not its children ({instead})"
            )
        })
    }

    /// [`Self::capture`] and its notes for the report to show (none without --pid: the family
    /// report has them).
    pub fn capture_noted(&self, file: &Path) -> Result<(PathBuf, Vec<String>), String> {
        match self.pid {
            Some(pid) => memtrace_reporter::family::view::capture_of(file, pid),
            None => Ok((file.to_path_buf(), Vec::new())),
        }
    }

    /// The family's tree of `file` for the view (None with --pid, or without children).
    pub fn family_tree(
        &self,
        file: &Path,
        opts: &ViewOptions,
    ) -> Result<Option<FamilyTree>, String> {
        if self.pid.is_some() {
            return Ok(None);
        }
        memtrace_reporter::family::view::build(file, opts)
    }

    /// The options, with `default` when neither --leaks nor --temporary is given.
    pub fn options(&self, default: View) -> ViewOptions {
        ViewOptions {
            view: if self.leaks {
                View::Leaks
            } else if self.temporary {
                View::Temporary
            } else {
                default
            },
            temporary_threshold: self.temporary_threshold as usize,
            split_threads: self.threads,
            thread: self.thread.clone(),
            include_startup: self.include_startup,
            frame_view: if self.python_only {
                FrameView::PythonOnly
            } else if self.native_only {
                FrameView::NativeOnly
            } else {
                FrameView::Merged
            },
        }
    }
}

/// Opens and reads a capture for a report; errors are the one line to print.
pub fn load(path: &Path, view: &ViewOptions) -> Result<(Capture, Analysis), String> {
    load::load(
        path,
        view,
        Progress::stderr("reading the capture").callback(),
    )
}

/// Opens and reads a capture and selects the view's allocations: what every report command
/// starts with. Errors are the one line to print.
pub fn load_selection(
    path: &Path,
    view: &ViewOptions,
) -> Result<(Capture, Analysis, Selection), String> {
    load::load_selection(
        path,
        view,
        Progress::stderr("reading the capture").callback(),
    )
}

/// Two captures compared (`diff`, `flamegraph --diff`) of a Python program, of which one has
/// native stacks and the other not: their innermost locations differ (the C function that
/// allocated, the Python line) and would match nowhere; they are compared by their Python
/// frames (as with --python-only) unless the user chose the frames, and stderr says so. (A
/// native program's innermost location is its caller's either way.)
pub fn match_frames(
    base: (&Capture, &mut Analysis),
    new: (&Capture, &mut Analysis),
    opts: &ViewOptions,
) {
    let native = |c: &Capture| c.header.options & memtrace_format::options::NATIVE != 0;
    let python = |a: &Analysis| {
        a.tables
            .frames
            .values()
            .any(|f| matches!(f, Frame::Python { .. }))
    };
    if native(base.0) == native(new.0) || opts.frame_view != FrameView::Merged {
        return;
    }
    if !(python(base.1) && python(new.1)) {
        return;
    }
    let (with, without) = match native(base.0) {
        true => ("BASE", "NEW"),
        false => ("NEW", "BASE"),
    };
    base.1.tables.frame_view = FrameView::PythonOnly;
    new.1.tables.frame_view = FrameView::PythonOnly;
    crate::say!(
        "memtrace: {with} has native stacks and {without} has not: locations are compared by their Python frames (as with --python-only)"
    );
}

/// What the tree-shaped reports (tree, summary, flamegraph) start from: the capture read, the
/// view selected and its call tree built.
pub type TreeView = (Capture, Analysis, Selection, CallTree);

/// Reads `path` and builds the call tree of `view`, printing every warning on stderr.
pub fn load_tree(path: &Path, view: &ViewOptions) -> Result<TreeView, String> {
    let (capture, mut analysis, selection) = load_selection(path, view)?;
    let (tree, warnings) = tree::build(&capture, &analysis, &selection, view.split_threads);
    warn(&analysis.warnings);
    warn(&warnings);
    // Kept with the capture's own, for the report's JSON.
    analysis.warnings.extend(warnings);
    Ok((capture, analysis, selection, tree))
}

/// Prints the warnings of a text report on stderr.
/// What a report's JSON says of the capture besides its figures, as `stats --json` does: a
/// script reading `tree --json` of a sampled, aggregated or cut capture must be able to tell.
#[derive(serde::Serialize)]
pub struct CaptureState {
    pub complete: bool,
    /// Bytes per sample of a sampled capture (estimates), 0 for an exact one.
    pub sample_bytes: u64,
    pub aggregated: bool,
    pub warnings: Vec<String>,
}

impl CaptureState {
    /// The state of a capture read as `analysis`, with the report's own `more` warnings.
    pub fn of(analysis: &memtrace_reporter::analysis::Analysis, more: &[String]) -> CaptureState {
        let settings = &analysis.index.settings;
        CaptureState {
            complete: analysis.complete(),
            sample_bytes: settings.sample_bytes,
            aggregated: settings.aggregate,
            warnings: analysis.warnings.iter().chain(more).cloned().collect(),
        }
    }

    /// The state of a family's report: complete when nothing was said of its captures.
    pub fn of_family(warnings: &[String]) -> CaptureState {
        CaptureState {
            complete: warnings.is_empty(),
            sample_bytes: 0,
            aggregated: false,
            warnings: warnings.to_vec(),
        }
    }
}

pub fn warn(warnings: &[String]) {
    for w in warnings {
        crate::say!("memtrace: warning: {}", escape(w));
    }
}

/// A report's stdout: text or JSON with the capture's names made safe to show
/// ([`memtrace_reporter::report::visible`]).
pub fn stdout(json: bool) -> Visible<std::io::BufWriter<std::io::StdoutLock<'static>>> {
    let style = if json { Style::Json } else { Style::Text };
    Visible::new(std::io::BufWriter::new(std::io::stdout().lock()), style)
}

/// [`stdout`] for text, in colour when `color`.
pub fn text_stdout(color: bool) -> Visible<std::io::BufWriter<std::io::StdoutLock<'static>>> {
    stdout(false).colored(color)
}

/// The outcome of writing a report: a closed pipe (`| head`) is fine.
pub fn written(r: std::io::Result<()>) -> Result<(), String> {
    match r {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(format!("cannot write the report: {e}")),
    }
}

/// `-n N` of the reports' lists: a count of at least 1 (0 would list nothing and print "(no
/// allocations)" where there are some).
pub fn list_length(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("0 lists nothing: give 1 or more".into()),
        Ok(n) => Ok(n),
        // A whole number too large to hold: every row is listed well below it.
        Err(e) if *e.kind() == std::num::IntErrorKind::PosOverflow => Ok(usize::MAX),
        Err(_) => Err(format!("'{s}' is not a count (a whole number, 1 or more)")),
    }
}

#[cfg(test)]
mod tests {
    use super::list_length;

    #[test]
    fn a_list_length_is_a_count_of_one_or_more() {
        assert_eq!(list_length("3"), Ok(3));
        // Too large to hold is still a count: every row.
        assert_eq!(list_length("99999999999999999999"), Ok(usize::MAX));
        assert!(list_length("0").is_err_and(|e| e.contains("lists nothing")));
        for bad in ["-1", "x", "1.5", ""] {
            assert!(
                list_length(bad).is_err_and(|e| e.contains("is not a count")),
                "{bad}"
            );
        }
    }
}
