//! `memtrace export`: a capture's allocation sites in a standard format (collapsed stacks,
//! speedscope, pprof, CSV), for the view the options choose (the peak by default).

use crate::export::{self, Site};
use crate::report::view_tree::StackResolver;
use crate::report::views;
use crate::report::visible::{Style, Visible};
use crate::symbols::modules::ModuleMap;
use crate::symbols::Symbolizer;
use crate::view_args::{self, ViewArgs};
use clap::{Args, ValueEnum};
use std::fs::File;
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
    /// Write to this file instead of stdout (required for pprof on a terminal)
    #[arg(short = 'o', long = "output", value_name = "OUT")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub view: ViewArgs,
}

/// Runs `memtrace export`; returns the exit status.
pub fn execute(args: ExportArgs) -> i32 {
    if args.format == Format::Pprof && args.output.is_none() && io::stdout().is_terminal() {
        eprintln!(
            "memtrace: pprof is binary: write it to a file with -o OUT.pb.gz, or redirect stdout"
        );
        return 1;
    }
    if let Some(out) = &args.output {
        if let Err(e) = crate::output::check_not_input(out, &[&args.file]) {
            eprintln!("memtrace: {e}");
            return 1;
        }
    }
    let opts = args.view.options(views::View::Peak);
    let (capture, analysis, selection) = match view_args::load_selection(&args.file, &opts) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("memtrace: {e}");
            return 1;
        }
    };
    let map = ModuleMap::new(analysis.tables.modules.clone(), &capture.header.exe);
    let mut resolver = StackResolver::new(&analysis.tables, Symbolizer::new(map));
    let sites = export::sites::sites(&analysis, &selection, &mut resolver, opts.split_threads);
    let mut all = analysis.warnings.clone();
    all.append(&mut resolver.symbolizer.warnings);
    view_args::warn(&all);
    let name = format!(
        "{}: {}",
        capture.path().display(),
        views::title(&analysis, &selection)
    );
    let duration_ns = (analysis.duration_s() * 1e9) as i64;
    match &args.output {
        Some(path) => {
            let file = match File::create(path) {
                Ok(f) => f,
                Err(e) => {
                    eprintln!("memtrace: cannot create {}: {e}", path.display());
                    return 1;
                }
            };
            let mut out = Visible::with(io::BufWriter::new(file), data_style(args.format, false));
            match write(args.format, &sites, &name, duration_ns, &mut out)
                .and_then(|()| out.flush())
            {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("memtrace: cannot write {}: {e}", path.display());
                    1
                }
            }
        }
        None => {
            let stdout = io::stdout();
            let terminal = stdout.is_terminal();
            let mut out = Visible::with(
                io::BufWriter::new(stdout.lock()),
                data_style(args.format, terminal),
            );
            view_args::written(
                write(args.format, &sites, &name, duration_ns, &mut out).and_then(|()| out.flush()),
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
    sites: &[Site],
    name: &str,
    duration_ns: i64,
    out: &mut dyn Write,
) -> io::Result<()> {
    match format {
        Format::Folded => export::folded::write(sites, out),
        Format::Speedscope => export::speedscope::write(sites, name, out),
        Format::Pprof => export::pprof::write(sites, 0, duration_ns, out),
        Format::Csv => export::csv::write(sites, out),
    }
}
