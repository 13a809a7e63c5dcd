//! `--by-type` of `tree` and `summary`: what is live at the peak (or at exit, with `--leaks`) by
//! object type, read once, written as JSON the same way for both; each command draws its own text
//! (a tree, or rows).

use crate::view_args::{self, ViewArgs};
use memtrace_reporter::report::by_type::{self, TypeGroup};
use memtrace_reporter::report::views::View;
use memtrace_reporter::report::visible::Visible;
use serde::Serialize;
use std::io::{self, BufWriter, StdoutLock, Write};
use std::path::Path;

/// Where the text goes (a report's stdout, names made safe to show).
pub type Out = Visible<BufWriter<StdoutLock<'static>>>;

#[derive(Serialize)]
struct JsonByType<'a> {
    capture: String,
    view: View,
    title: String,
    types: &'a [TypeGroup],
}

/// Reads `file` and writes its types live at the peak (at exit with `--leaks`): JSON with
/// `json`, else the title and what `text` draws.
pub fn write(
    file: &Path,
    view: &ViewArgs,
    json: bool,
    text: impl FnOnce(&[TypeGroup], &mut Out) -> io::Result<()>,
) -> Result<(), String> {
    let opts = view.options(View::Peak);
    let moment = opts.view;
    if moment == View::Temporary {
        return Err("--by-type shows what is live at the peak, or at exit with --leaks; temporary allocations have no by-type view".to_string());
    }
    let (capture, analysis) = view_args::load(file, &opts)?;
    view_args::warn(&analysis.warnings);
    if let Some(note) = view.shown_alone(file) {
        view_args::warn(&[note]);
    }
    let (groups, title) = if moment == View::Peak {
        let groups = by_type::peak_groups(&capture, &analysis)?;
        let title = by_type::peak_title(&groups);
        (groups, title)
    } else {
        let groups = by_type::groups(&capture, &analysis)?;
        let title = by_type::title(&groups);
        (groups, title)
    };
    let mut out = view_args::stdout(json);
    let r = if json {
        let j = JsonByType {
            capture: capture.path().display().to_string(),
            view: moment,
            title,
            types: &groups,
        };
        serde_json::to_writer(&mut out, &j)
            .map_err(io::Error::from)
            .and_then(|()| writeln!(out))
    } else {
        writeln!(out, "{title}").and_then(|()| text(&groups, &mut out))
    };
    view_args::written(r.and_then(|()| out.flush()))
}
