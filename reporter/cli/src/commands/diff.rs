//! `memtrace diff`: two captures compared: the peak, the totals, and each location's bytes at
//! the peak (or in another view), matched by symbolized location.

use crate::color::ColorArgs;
use crate::view_args::{self, ViewArgs};
use clap::Args;
use memtrace_reporter::analysis::totals::Sum;
use memtrace_reporter::analysis::Analysis;
use memtrace_reporter::capture::Capture;
use memtrace_reporter::export::sites;
use memtrace_reporter::report::diff::{self, Change, LocationChange};
use memtrace_reporter::report::human::{count, signed_size, size};
use memtrace_reporter::report::locations::Location;
use memtrace_reporter::report::paint::{self, paint, Styled, BOLD, GREEN, RED, STRONG};
use memtrace_reporter::report::view_tree::StackResolver;
use memtrace_reporter::report::views::{self, Selection, ViewOptions};
use memtrace_reporter::symbols::modules::ModuleMap;
use memtrace_reporter::symbols::Symbolizer;
use serde::Serialize;
use std::collections::HashMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
#[command(after_help = "\
A location is the innermost frame of a stack (`function at file:line`), matched between the
captures by that name, so two runs of the same program compare even when their addresses
differ; a --native capture and a plain one of a Python program are compared by their Python
frames. Changes are NEW minus BASE, in percent of BASE.

Examples:
  memtrace diff before.bin after.bin          peak, totals, the 20 largest changes at the peak
  memtrace diff --leaks before.bin after.bin  what is live at exit
  memtrace diff -n 100 before.bin after.bin
  memtrace diff --json before.bin after.bin | jq '.locations[0]'

JSON keys: base, new (the captures), base_capture, new_capture (each {complete,
sample_bytes, aggregated, warnings}), view, peak_bytes, peak_allocations, total_bytes,
total_allocations, view_bytes, view_allocations (each {base, new, change, percent}; percent null
when base is 0), locations [{location, function, file, line, bytes, allocations}] (all, the
largest changes first).")]
pub struct DiffArgs {
    /// The capture to compare against
    #[arg(value_name = "BASE")]
    pub base: PathBuf,
    /// The capture compared
    #[arg(value_name = "NEW")]
    pub new: PathBuf,
    #[command(flatten)]
    pub view: ViewArgs,
    #[command(flatten)]
    pub color: ColorArgs,
    /// How many locations to list (text)
    #[arg(short = 'n', long = "top", value_name = "N", default_value_t = 20, value_parser = crate::view_args::list_length)]
    pub top: usize,
    /// Print one JSON object instead of text
    #[arg(long)]
    pub json: bool,
}

/// What a diff reads of one capture.
struct Side {
    state: view_args::CaptureState,
    peak: Sum,
    total: Sum,
    view: Sum,
    locations: HashMap<Location, Sum>,
}

/// A capture read, its view selected.
struct Loaded {
    capture: Capture,
    analysis: Analysis,
    selection: Selection,
}

impl Loaded {
    fn read(path: &Path, opts: &ViewOptions) -> Result<Loaded, String> {
        let (capture, analysis) = view_args::load(path, opts)?;
        let selection = views::select(&analysis, opts)?;
        Ok(Loaded {
            capture,
            analysis,
            selection,
        })
    }

    /// What the diff reads of it; its warnings are said with its `label` (BASE or NEW).
    fn side(self, label: &str) -> Side {
        let map = ModuleMap::new(
            self.analysis.tables.modules.clone(),
            &self.capture.header.exe,
        );
        let mut resolver = StackResolver::new(&self.analysis.tables, Symbolizer::new(map));
        let sites = sites::sites(&self.analysis, &self.selection, &mut resolver, false);
        let state = view_args::CaptureState::of(&self.analysis, &resolver.symbolizer.warnings);
        let named: Vec<String> = state
            .warnings
            .iter()
            .map(|w| format!("{label} {}: {w}", self.capture.path().display()))
            .collect();
        view_args::warn(&named);
        Side {
            state,
            peak: Sum {
                count: self.analysis.replay.peak.allocations,
                bytes: self.analysis.replay.peak.bytes,
            },
            total: self.analysis.totals.allocs,
            view: self.selection.total,
            locations: diff::by_location(&sites),
        }
    }
}

#[derive(Serialize)]
struct JsonDiff {
    base: String,
    new: String,
    /// Whether each capture is whole, sampled or aggregated, and what was said of it.
    base_capture: view_args::CaptureState,
    new_capture: view_args::CaptureState,
    view: views::View,
    peak_bytes: Change,
    peak_allocations: Change,
    total_bytes: Change,
    total_allocations: Change,
    view_bytes: Change,
    view_allocations: Change,
    locations: Vec<LocationChange>,
}

/// Runs `memtrace diff`.
pub fn execute(args: DiffArgs) -> Result<(), String> {
    let opts = args.view.options(views::View::Peak);
    // With --pid, each side is that process's capture: named so (the heading named the
    // family's root while the figures were the child's).
    let (base_path, new_path) = (
        args.view.capture(&args.base)?,
        args.view.capture(&args.new)?,
    );
    let mut base = Loaded::read(&base_path, &opts)?;
    let mut new = Loaded::read(&new_path, &opts)?;
    base.analysis
        .warnings
        .extend(args.view.compared_alone(&args.base));
    new.analysis
        .warnings
        .extend(args.view.compared_alone(&args.new));
    view_args::match_frames(
        (&base.capture, &mut base.analysis),
        (&new.capture, &mut new.analysis),
        &opts,
    );
    note_sampling(&base.analysis, &new.analysis);
    let (base, new) = (base.side("BASE"), new.side("NEW"));
    let d = JsonDiff {
        base: base_path.display().to_string(),
        new: new_path.display().to_string(),
        view: opts.view,
        peak_bytes: Change::new(base.peak.bytes, new.peak.bytes),
        peak_allocations: Change::new(base.peak.count, new.peak.count),
        total_bytes: Change::new(base.total.bytes, new.total.bytes),
        total_allocations: Change::new(base.total.count, new.total.count),
        view_bytes: Change::new(base.view.bytes, new.view.bytes),
        view_allocations: Change::new(base.view.count, new.view.count),
        locations: diff::locations(&base.locations, &new.locations),
        base_capture: base.state,
        new_capture: new.state,
    };
    let mut out = view_args::stdout(args.json).colored(!args.json && args.color.enabled());
    let r = if args.json {
        serde_json::to_writer(&mut out, &d)
            .map_err(io::Error::from)
            .and_then(|()| writeln!(out))
    } else {
        render(&d, args.top, &mut out)
    };
    view_args::written(r.and_then(|()| out.flush()))
}

/// A sampled capture against a full one: its bytes and counts are estimates, set against exact
/// figures (a change within the estimate's error is none); says so on stderr.
pub(crate) fn note_sampling(base: &Analysis, new: &Analysis) {
    let sampled = |a: &Analysis| a.index.settings.sample_bytes > 0;
    let which = match (sampled(base), sampled(new)) {
        (true, false) => "BASE is sampled and NEW is not",
        (false, true) => "NEW is sampled and BASE is not",
        _ => return,
    };
    crate::say!(
        "memtrace: {which}: its bytes and allocation counts are estimates, set against exact ones"
    );
}

/// Growth red, shrinking green.
fn change_style(change: i64) -> &'static str {
    match change.signum() {
        1 => RED,
        -1 => GREEN,
        _ => "",
    }
}

fn render(d: &JsonDiff, top: usize, out: &mut impl Styled) -> io::Result<()> {
    // A side cut short or damaged says so where its name is (its figures are what is left).
    let mark = |c: &view_args::CaptureState| {
        if c.complete {
            ""
        } else {
            " (incomplete capture)"
        }
    };
    writeln!(
        out,
        "BASE {}{}\nNEW  {}{}",
        d.base,
        mark(&d.base_capture),
        d.new,
        mark(&d.new_capture)
    )?;
    let figure = |out: &mut dyn FnMut(&str, String) -> io::Result<()>,
                  name: &str,
                  c: &Change,
                  bytes: bool| {
        let (b, n, ch) = if bytes {
            (size(c.base), size(c.new), signed_size(c.change))
        } else {
            (
                count(c.base),
                count(c.new),
                format!(
                    "{}{}",
                    if c.change < 0 { "-" } else { "+" },
                    count(c.change.unsigned_abs())
                ),
            )
        };
        let style = if name == "Peak" { STRONG } else { BOLD };
        out("", format!("{name:<18} {b:>10} -> "))?;
        out(style, format!("{n:>10}"))?;
        out(
            change_style(c.change),
            format!("  {ch:>11} {:>8}", c.percent_text()),
        )?;
        out("", "\n".to_string())
    };
    {
        let mut write = |style: &str, text: String| paint(out, style, text);
        figure(&mut write, "Peak", &d.peak_bytes, true)?;
        figure(&mut write, "Peak allocations", &d.peak_allocations, false)?;
        figure(&mut write, "Total allocated", &d.total_bytes, true)?;
        figure(&mut write, "Allocations", &d.total_allocations, false)?;
    }
    let view = match d.view {
        views::View::Peak => "at the peak",
        views::View::Leaks => "live at exit",
        views::View::Temporary => "temporary",
        views::View::All => "every allocation",
    };
    writeln!(out, "\nChanges by location, {view}:")?;
    paint(
        out,
        BOLD,
        format!(
            "{:>10} {:>10}  {:>11} {:>8}  LOCATION",
            "BASE", "NEW", "CHANGE", "%"
        ),
    )?;
    writeln!(out)?;
    if d.locations.is_empty() {
        writeln!(out, "  (no changes)")?;
    }
    for r in d.locations.iter().take(top) {
        write!(
            out,
            "{:>10} {:>10}  ",
            size(r.bytes.base),
            size(r.bytes.new)
        )?;
        paint(
            out,
            change_style(r.bytes.change),
            format!(
                "{:>11} {:>8}",
                signed_size(r.bytes.change),
                r.bytes.percent_text()
            ),
        )?;
        write!(out, "  ")?;
        paint::location(out, &r.location)?;
        writeln!(out)?;
    }
    if d.locations.len() > top {
        writeln!(
            out,
            "… {} more locations (-n to see more)",
            count((d.locations.len() - top) as u64)
        )?;
    }
    Ok(())
}
