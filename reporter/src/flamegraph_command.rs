//! `memtrace flamegraph`: one self-contained HTML file with the flamegraph of a view (the
//! peak by default), the chart of memory over time and the top lines; with `--diff`, the
//! differential flamegraph of two captures.

use crate::flamegraph::{html, page, svg, timeline};
use crate::flamegraph_diff;
use crate::report::human;
use crate::report::views;
use crate::report::visible::escape;
use crate::tree;
use crate::view_args::{self, ViewArgs};
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
#[command(after_help = "\
The page needs no network to view: the flamegraph (click a frame to zoom, search, hover for
bytes), the chart of live heap bytes and resident size over time with the peak marked, and the
top lines. Frames under 0.1% of the view are merged into \"other (small frames)\" and the chart
is downsampled, so the file stays small whatever the capture.

Examples:
  memtrace flamegraph out.bin                 writes out.html: the memory live at the peak
  memtrace flamegraph -o peak.html out.bin
  memtrace flamegraph --leaks out.bin         what is still live at exit
  memtrace flamegraph --temporary --inverted out.bin   icicle of the temporary allocations
  memtrace flamegraph --threads out.bin       one tower per thread

With --diff BASE, FILE is NEW and the page is a differential flamegraph: NEW's frames (width:
bytes in NEW), each coloured by the change of its own bytes against BASE (red grew, blue
shrank), matched by symbolized location (`function at file:line`) as in `memtrace diff`; the
hover text gives a frame's bytes before and after and the change. The chart shows both heaps,
the table the largest changes by location.

  memtrace flamegraph --diff before.bin after.bin    writes after.diff.html
  memtrace flamegraph --diff before.bin after.bin -o change.html --leaks")]
pub struct FlamegraphArgs {
    /// The capture file written by `memtrace run` (NEW with --diff)
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Compare FILE against BASE: a differential flamegraph
    #[arg(long, value_name = "BASE")]
    pub diff: Option<PathBuf>,
    /// The HTML file to write [default: FILE with .html; with --diff, .diff.html]
    #[arg(short = 'o', long = "output", value_name = "OUT.html")]
    pub output: Option<PathBuf>,
    /// Draw an icicle graph: the outermost frames at the top
    #[arg(long)]
    pub inverted: bool,
    #[command(flatten)]
    pub view: ViewArgs,
}

/// How many rows the top lines table has.
pub const TOP_LINES: usize = 20;

/// Runs `memtrace flamegraph`; returns the exit status.
pub fn execute(args: FlamegraphArgs) -> i32 {
    let written = match &args.diff {
        Some(base) => flamegraph_diff::write(base, &args),
        None => write(&args),
    };
    match written {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("memtrace: {e}");
            1
        }
    }
}

/// Writes the HTML page `args` ask for (also used by the Python package); the error is the one
/// line to show.
pub fn write(args: &FlamegraphArgs) -> Result<(), String> {
    let out = args
        .output
        .clone()
        .unwrap_or_else(|| args.file.with_extension("html"));
    crate::output::check_not_input(&out, &[&args.file])?;
    let opts = args.view.options(views::View::Peak);
    let (capture, analysis, selection) = view_args::load_selection(&args.file, &opts)?;
    let (tree, mut warnings) = tree::build(&capture, &analysis, &selection, opts.split_threads);
    let mut all = analysis.warnings.clone();
    all.append(&mut warnings);
    view_args::warn(&all);
    let title = views::title(&analysis, &selection);
    let flamegraph = svg::render(
        &page::folded(&tree),
        &svg::Look {
            title: &title,
            subtitle: None,
            inverted: args.inverted,
        },
    )
    .map_err(|e| format!("cannot draw the flamegraph: {e}"))?;
    let peak = analysis.replay.peak.tick.map(|t| {
        (
            analysis.clock.seconds(t).max(0.0),
            analysis.replay.peak.bytes,
        )
    });
    let chart = timeline::render(&timeline::Curves {
        heap: &page::seconds(&analysis, &analysis.replay.heap_series),
        rss: &page::seconds(&analysis, &analysis.replay.resident_series),
        peak,
        base_heap: None,
    })
    .map_err(|e| format!("cannot draw the chart: {e}"))?;
    let top = page::top_lines(&tree, TOP_LINES);
    let view = view_name(selection.view);
    let heading = format!("memtrace: {}", capture.path().display());
    let html = html::render(&html::Page {
        title: &heading,
        facts: vec![
            ("Command", escape(&capture.argv().join(" ")).into_owned()),
            (
                "Peak",
                format!(
                    "{} ({} bytes)",
                    human::size(analysis.replay.peak.bytes),
                    human::count(analysis.replay.peak.bytes)
                ),
            ),
            ("Duration", human::seconds(analysis.duration_s())),
            ("View", format!("{view}: {title}")),
        ],
        chart_svg: Some(&chart),
        flamegraph_svg: &flamegraph,
        table: &page::top_lines_table(&top),
    });
    save(&out, &html)
}

/// What a view holds, for the page's facts.
pub fn view_name(view: views::View) -> &'static str {
    match view {
        views::View::All => "every allocation",
        views::View::Peak => "live at the peak",
        views::View::Leaks => "live at exit (--leaks)",
        views::View::Temporary => "temporary allocations (--temporary)",
    }
}

/// Writes the page and says so on stderr.
pub fn save(out: &std::path::Path, html: &str) -> Result<(), String> {
    std::fs::write(out, html).map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    eprintln!("memtrace: wrote {}", out.display());
    Ok(())
}
