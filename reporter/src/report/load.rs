//! Opening and reading a capture for a report of a view: what every report starts with. The
//! caller chooses how progress shows (the command: a bar on stderr; Python: none).

use super::views::{self, Selection, ViewOptions};
use crate::analysis::{Analysis, Options, ProgressFn};
use crate::capture::Capture;
use std::path::Path;

/// Opens and reads a capture for a report; errors are the one line to print.
pub fn load(
    path: &Path,
    view: &ViewOptions,
    progress: Option<ProgressFn>,
) -> Result<(Capture, Analysis), String> {
    load_with(path, view, options(view, progress))
}

/// The analysis options a report of `view` reads a capture with.
pub fn options(view: &ViewOptions, progress: Option<ProgressFn>) -> Options {
    Options {
        temporary: view.temporary(),
        progress,
        freeze: true,
        include_startup: view.include_startup,
        ..Options::default()
    }
}

/// `load` with options of the caller's (a report that keeps more: see [`options`]).
pub fn load_with(
    path: &Path,
    view: &ViewOptions,
    options: Options,
) -> Result<(Capture, Analysis), String> {
    let capture = Capture::open(path).map_err(|e| e.to_string())?;
    let temporary = view.temporary().is_some();
    // The capture's index answers when an earlier report left one (crate::index).
    let mut analysis = crate::index::analyze(&capture, options);
    if temporary && analysis.index.settings.aggregate {
        return Err(crate::analysis::aggregated::unsupported(
            "temporary allocations",
        ));
    }
    // The aggregated tracker starts its sums afresh at a Python script's start: the
    // interpreter's start-up is not in them to be counted (stats said it was).
    if view.include_startup && analysis.index.settings.aggregate {
        return Err(crate::analysis::aggregated::unsupported(
            "--include-startup (the interpreter's start-up)",
        ));
    }
    if temporary && analysis.index.settings.sample_bytes > 0 {
        return Err(sampled_temporary(analysis.index.settings.sample_bytes));
    }
    analysis.tables.frame_view = view.frame_view;
    let native = capture.header.options & memtrace_format::options::NATIVE != 0;
    if let Some(w) = frame_view_unused(&analysis.tables, native) {
        analysis.warnings.push(w);
    }
    Ok((capture, analysis))
}

/// The warning when --python-only or --native-only cannot apply, every frame then shown as
/// without it: --python-only on a capture with no Python frame (a native program's),
/// --native-only on a Python program's capture recorded without --native (its stacks are
/// Python frames; only the interpreter's start-up has native call sites).
fn frame_view_unused(tables: &crate::analysis::tables::Tables, native: bool) -> Option<String> {
    use crate::analysis::tables::{Frame, FrameView};
    let python = || {
        tables
            .frames
            .values()
            .any(|f| matches!(f, Frame::Python { .. }))
    };
    match tables.frame_view {
        FrameView::PythonOnly if !python() => Some(
            "--python-only changes nothing: the capture has no Python frames (a native program's)"
                .to_string(),
        ),
        FrameView::NativeOnly if !native && python() => Some(
            "--native-only changes nothing: the capture has no native stacks (record them with \
             memtrace run --native)"
                .to_string(),
        ),
        _ => None,
    }
}

/// The one line for --temporary on a sampled capture: "freed before its thread's next N
/// allocations" counts samples there, so nearly every sampled small block would pass.
pub fn sampled_temporary(sample_bytes: u64) -> String {
    format!(
        "temporary allocations cannot be told in a sampled capture (--sample-bytes {sample_bytes}): \
         its thread's next allocations are not all recorded; record the run without --sample-bytes"
    )
}

/// Opens and reads a capture and selects the view's allocations. Errors are the one line to
/// print.
pub fn load_selection(
    path: &Path,
    view: &ViewOptions,
    progress: Option<ProgressFn>,
) -> Result<(Capture, Analysis, Selection), String> {
    let (capture, analysis) = load(path, view, progress)?;
    let selection = views::select(&analysis, view)?;
    Ok((capture, analysis, selection))
}
