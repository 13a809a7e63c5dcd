//! `memtrace export`: a capture's allocation sites in a standard format (collapsed stacks,
//! speedscope, pprof, CSV), for the view the options choose (the peak by default).

use crate::view_args::{self, ViewArgs};
use clap::{Args, ValueEnum};
use memtrace_reporter::export::{self, Sites};
use memtrace_reporter::report::view_tree::StackResolver;
use memtrace_reporter::report::views;
use memtrace_reporter::report::visible::{Style, Visible};
use memtrace_reporter::symbols::modules::ModuleMap;
use memtrace_reporter::symbols::Symbolizer;
use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Collapsed stacks `outer;...;inner BYTES` (flamegraph.pl, inferno), live bytes of the view
    Folded,
    /// speedscope's JSON file format, each stack weighted by its live bytes
    Speedscope,
    /// pprof's gzipped protobuf profile: alloc_objects, alloc_space, inuse_objects, inuse_space
    Pprof,
    /// One row per allocation site (innermost location): live and allocated bytes and counts
    Csv,
}

#[derive(Args, Debug)]
#[command(after_help = "\
The live values (folded, speedscope, pprof's inuse_*, csv's live_*) are those of the view: the
memory live at the peak by default, at exit with --leaks, the temporary allocations with
--temporary. The allocated values (pprof's alloc_*, csv's allocated_bytes and allocations) are
every allocation of the run, of the threads kept.

A family (memtrace run --follow-fork): folded, speedscope and pprof hold every process, each
stack's outermost frame its process (`pid 123: python3 worker.py`), at the combined peak by
default (pprof's samples also carry the labels pid and process); csv, one row per innermost location without a stack, is of one process: the first
(FILE's own) or --pid PID's.

Examples:
  memtrace export out.bin --format folded | inferno-flamegraph > peak.svg
  memtrace export out.bin --format folded --leaks -o leaks.folded
  memtrace export out.bin --format speedscope -o out.speedscope.json
  memtrace export out.bin --format pprof -o out.pb.gz && go tool pprof -top out.pb.gz
  memtrace export out.bin --format csv --thread MainThread > sites.csv")]
pub struct ExportArgs {
    /// The capture file written by `memtrace run`
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// The format to write
    #[arg(short = 'f', long, value_enum)]
    pub format: Format,
    /// Write to this file instead of stdout (required for pprof on a terminal; `-` is
    /// stdout); an export memtrace wrote is replaced, any other file only with --force
    #[arg(short = 'o', long = "output", value_name = "OUT")]
    pub output: Option<PathBuf>,
    /// Replace OUT even when it is a capture or another file not an export
    #[arg(long = "force")]
    pub force: bool,
    #[command(flatten)]
    pub view: ViewArgs,
}

/// What a pprof profile says besides its samples, from how the capture was recorded: its
/// labels (then `site_labels`, a family's process on each sample); as comments, the reports'
/// warnings (a capture cut short by a kill, an aggregated or attached one: a profile sent on
/// to a profiling service has no stderr) and a sampled capture's note.
fn pprof_meta(
    settings: &memtrace_format::settings::Settings,
    warnings: &[String],
    site_labels: Vec<Vec<(String, String)>>,
) -> export::pprof::Meta {
    let mut comments = warnings.to_vec();
    if settings.sample_bytes > 0 {
        let note = memtrace_reporter::capture::settings::sampled_note(settings.sample_bytes);
        if !comments.contains(&note) {
            comments.push(note);
        }
    }
    export::pprof::Meta {
        labels: settings.labels.clone(),
        comments,
        site_labels,
    }
}

/// Runs `memtrace export`.
pub fn execute(mut args: ExportArgs) -> Result<(), String> {
    // `-o -`: stdout, as tools that take -o read it (it wrote a file named `-`).
    if args.output.as_deref() == Some(std::path::Path::new("-")) {
        args.output = None;
    }
    if args.format == Format::Pprof && args.output.is_none() && io::stdout().is_terminal() {
        return Err(
            "pprof is binary: write it to a file with -o OUT.pb.gz, or redirect stdout".into(),
        );
    }
    if let Some(out) = &args.output {
        memtrace_reporter::output::check_not_input(out, &[&args.file])?;
        memtrace_reporter::output::check_export_output(out, args.force)?;
        memtrace_reporter::output::check_writable(out)?;
    }
    let opts = args.view.options(views::View::Peak);
    // CSV rows carry no stack, so no process frame: it stays one process's.
    let family = match (args.view.pid, args.format) {
        (None, Format::Folded | Format::Speedscope | Format::Pprof) => {
            memtrace_reporter::family::view::sites(&args.file, &opts)?
        }
        _ => None,
    };
    // The profile's time and length: pprof's time_nanos (when the run started, UTC) and
    // duration_nanos.
    let (sites, name, timing, meta) = match family {
        // A family: each site's outermost frame is its process (`pid 123: python3 x.py`).
        Some(f) => {
            view_args::warn(&f.warnings);
            let name = format!("{}: {}", args.file.display(), f.title);
            // pprof samples carry the run's labels, then their process (`pid`, `process`).
            let labels = &f.settings.labels;
            let (pid_key, process_key) = (own_key("pid", labels), own_key("process", labels));
            let meta = pprof_meta(
                &f.settings,
                &f.warnings,
                f.processes
                    .iter()
                    .map(|(pid, command)| {
                        vec![
                            (pid_key.clone(), pid.to_string()),
                            (process_key.clone(), command.clone()),
                        ]
                    })
                    .collect(),
            );
            (f.sites, name, (f.start_realtime_ns, f.duration_ns), meta)
        }
        None => {
            if args.format == Format::Csv {
                if let Some(note) = args.view.exported_alone(&args.file) {
                    view_args::warn(&[note]);
                }
            }
            let file = args.view.capture(&args.file)?;
            let (capture, analysis, selection) = view_args::load_selection(&file, &opts)?;
            let map = ModuleMap::new(analysis.tables.modules.clone(), &capture.header.exe);
            let mut resolver = StackResolver::new(&analysis.tables, Symbolizer::new(map));
            let sites =
                export::sites::sites(&analysis, &selection, &mut resolver, opts.split_threads);
            let mut all = analysis.warnings.clone();
            all.append(&mut resolver.symbolizer.warnings);
            view_args::warn(&all);
            let name = format!(
                "{}: {}",
                capture.path().display(),
                views::title(&analysis, &selection)
            );
            let meta = pprof_meta(&analysis.index.settings, &analysis.warnings, Vec::new());
            let start = capture.header.start_realtime_ns as i64;
            let duration = (analysis.duration_s() * 1e9) as i64;
            (sites, name, (start, duration), meta)
        }
    };
    match &args.output {
        Some(path) => memtrace_reporter::output::write_whole(path, |w| {
            let mut out = Visible::with(w, data_style(args.format, false));
            write(args.format, &sites, &name, timing, &meta, &mut out).and_then(|()| out.flush())
        })
        .map_err(|e| format!("cannot write {}: {e}", path.display())),
        None => {
            let stdout = io::stdout();
            let terminal = stdout.is_terminal();
            let mut out = Visible::with(
                io::BufWriter::new(stdout.lock()),
                data_style(args.format, terminal),
            );
            view_args::written(
                write(args.format, &sites, &name, timing, &meta, &mut out)
                    .and_then(|()| out.flush()),
            )
        }
    }
}

/// How the names in an export are made safe: speedscope's JSON always (its strings keep their
/// value), folded stacks and CSV only on a terminal (in a file they stay as they are: data).
/// Pprof is binary: never.
fn data_style(format: Format, terminal: bool) -> Option<Style> {
    match format {
        Format::Speedscope => Some(Style::Json),
        Format::Folded | Format::Csv if terminal => Some(Style::Text),
        _ => None,
    }
}

fn write(
    format: Format,
    sites: &Sites,
    name: &str,
    (time_ns, duration_ns): (i64, i64),
    meta: &export::pprof::Meta,
    out: &mut dyn Write,
) -> io::Result<()> {
    match format {
        Format::Folded => export::folded::write(sites, out),
        Format::Speedscope => export::speedscope::write(sites, name, out),
        Format::Pprof => export::pprof::write(sites, time_ns, duration_ns, meta, out),
        Format::Csv => export::csv::write(sites, out),
    }
}

/// The key of a label memtrace adds to a family's samples: `name`, or `memtrace_name` when the
/// run's own labels (`--label`) use `name` already (a sample with two values for one key reads
/// as either in a profile viewer).
fn own_key(name: &str, labels: &[(String, String)]) -> String {
    let mut key = name.to_string();
    while labels.iter().any(|(k, _)| *k == key) {
        key.insert_str(0, "memtrace_");
    }
    key
}
