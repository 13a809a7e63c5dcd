//! Which allocations a report shows: those live at the peak (the default), live at exit
//! (`--leaks`), or the temporary ones (`--temporary`); all threads, one (`--thread`), or split
//! by thread (`--threads`).

use crate::analysis::sets::AllocSet;
use crate::analysis::tables::FrameView;
use crate::analysis::totals::Sum;
use crate::analysis::{Analysis, ThreadStats};
use serde::Serialize;

/// The allocations a view selects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum View {
    /// Every allocation of the run.
    All,
    /// Live at the high-water mark of live bytes.
    Peak,
    /// Live at the exit snapshot (or at the end of the capture without one).
    Leaks,
    /// Freed by their thread before it made `threshold` more allocations.
    Temporary,
}

/// A view and its thread options, as the command line gave them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ViewOptions {
    pub view: View,
    pub temporary_threshold: usize,
    /// One top-level node per thread.
    pub split_threads: bool,
    /// Only the thread of this name or TID.
    pub thread: Option<String>,
    /// In a Python run, count the interpreter's start-up too.
    pub include_startup: bool,
    /// The frames shown (merged, Python only, native only).
    pub frame_view: FrameView,
}

impl Default for ViewOptions {
    fn default() -> ViewOptions {
        ViewOptions {
            view: View::Peak,
            temporary_threshold: 1,
            split_threads: false,
            thread: None,
            include_startup: false,
            frame_view: FrameView::Merged,
        }
    }
}

impl ViewOptions {
    /// The temporary threshold the analysis needs, if any.
    pub fn temporary(&self) -> Option<usize> {
        (self.view == View::Temporary).then_some(self.temporary_threshold.max(1))
    }
}

/// The thread indexes `--thread NAME|TID` names: a TID, or a thread's name.
pub fn threads_named(threads: &[ThreadStats], which: &str) -> Result<Vec<u32>, String> {
    let tid: Option<u32> = which.parse().ok();
    let found: Vec<u32> = threads
        .iter()
        .enumerate()
        .filter(|(_, t)| Some(t.tid) == tid || t.name.as_deref() == Some(which))
        .map(|(i, _)| i as u32)
        .collect();
    if found.is_empty() {
        // A few, escaped (names are the program's: a line break or an escape sequence must not
        // reach the terminal), and a count of the rest: the message stays one line.
        const LISTED: usize = 10;
        let mut known: Vec<String> = threads
            .iter()
            .take(LISTED)
            .map(|t| super::visible::escape(&thread_label(t)).into_owned())
            .collect();
        if threads.len() > LISTED {
            known.push(format!(
                "and {} more: see memtrace summary --threads",
                threads.len() - LISTED
            ));
        }
        return Err(format!(
            "no thread named or numbered '{}' in the capture (threads: {})",
            super::visible::escape(which),
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        ));
    }
    Ok(found)
}

/// `MainThread (tid 1234)`, or `tid 1234` for a thread never named.
pub fn thread_label(t: &ThreadStats) -> String {
    thread_display(t.tid, t.name.as_deref())
}

/// How every report names a thread: `name (tid N)`, or `tid N` without a name.
pub fn thread_display(tid: u32, name: Option<&str>) -> String {
    match name {
        // A line break in the name would start a line of its own in a text report.
        Some(n) if !n.is_empty() => format!("{} (tid {tid})", n.replace('\n', "\\x0a")),
        _ => format!("tid {tid}"),
    }
}

/// The allocations of a view, for the threads kept.
#[derive(Clone, Debug)]
pub struct Selection {
    pub view: View,
    pub set: AllocSet,
    pub total: Sum,
    /// The thread indexes kept, when `--thread` named some.
    pub threads: Option<Vec<u32>>,
    /// The temporary threshold (temporary view).
    pub threshold: Option<usize>,
}

/// The allocations of `view` in an analysis, keeping the threads `--thread` names.
pub fn select(analysis: &Analysis, opts: &ViewOptions) -> Result<Selection, String> {
    let threads = kept_threads(analysis, opts)?;
    Ok(select_threads(analysis, opts.view, threads))
}

/// The thread indexes `--thread` names (None: every thread).
pub fn kept_threads(analysis: &Analysis, opts: &ViewOptions) -> Result<Option<Vec<u32>>, String> {
    opts.thread
        .as_deref()
        .map(|which| threads_named(&analysis.threads, which))
        .transpose()
}

/// The allocations of `view`, of the threads `threads` (every thread when None).
pub fn select_threads(analysis: &Analysis, view: View, threads: Option<Vec<u32>>) -> Selection {
    let set = match view {
        View::All => analysis.all_set(),
        View::Peak => analysis.replay.peak_set(),
        View::Leaks => analysis.replay.exit_set(),
        View::Temporary => analysis
            .replay
            .temporary
            .as_ref()
            .map(|t| t.set.clone())
            .unwrap_or_default(),
    };
    let set = match &threads {
        Some(keep) => set.filter_threads(|t| keep.contains(&t)),
        None => set,
    };
    Selection {
        view,
        total: set.total(),
        set,
        threads,
        threshold: analysis.replay.temporary.as_ref().map(|t| t.threshold()),
    }
}

/// A sentence naming what a selection holds, for the first line of a report.
pub fn title(analysis: &Analysis, s: &Selection) -> String {
    let what = match s.view {
        View::All => "Every allocation".to_string(),
        View::Peak => {
            let at = analysis
                .replay
                .peak
                .tick
                .map_or(0.0, |t| analysis.clock.seconds(t));
            format!(
                "Memory live at the peak (high-water mark, at {})",
                super::human::seconds(at)
            )
        }
        View::Leaks if analysis.replay.exit.is_some() => "Memory live at exit".to_string(),
        View::Leaks => "Memory live at the end of the capture (no exit snapshot)".to_string(),
        View::Temporary => {
            let n = s.threshold.unwrap_or(1);
            format!(
                "Temporary allocations (freed before {} more of their thread)",
                super::human::counted(n as u64, "allocation")
            )
        }
    };
    let threads = match &s.threads {
        Some(keep) => {
            let names: Vec<String> = keep
                .iter()
                .filter_map(|&t| analysis.threads.get(t as usize))
                .map(thread_label)
                .collect();
            format!(" in thread {}", names.join(", "))
        }
        None => String::new(),
    };
    // A sampled capture's figures are estimates: said on the line itself, not only on stderr
    // (a report redirected to a file lost it).
    let sampled = match analysis.index.settings.sample_bytes {
        0 => String::new(),
        n => format!(
            " (estimates: a sampled capture, one sample per {} allocated)",
            super::human::size(n)
        ),
    };
    format!(
        "{what}{threads}: {} ({} bytes) in {}{sampled}",
        super::human::size(s.total.bytes),
        super::human::count(s.total.bytes),
        super::human::counted(s.total.count, "allocation")
    )
}
