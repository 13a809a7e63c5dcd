//! `memtrace flamegraph`: one self-contained interactive HTML file (flamegraph, chart to pick a
//! moment or a time range on, table of locations; opens on the peak by default); with
//! `--diff`, the differential flamegraph of two captures.

use crate::progress::Progress;
use crate::view_args::{self, ViewArgs};
use clap::Args;
use memtrace_reporter::analysis::Analysis;
use memtrace_reporter::capture::Capture;
use memtrace_reporter::family::page as family_page;
use memtrace_reporter::flamegraph::report::{self, Side};
use memtrace_reporter::report::tree;
use memtrace_reporter::report::views::{View, ViewOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
#[command(after_help = "\
The page is one file and needs no network. Every control works in the page, without a re-run,
and is kept in the URL's fragment so that a view can be shared:
  - drag over the chart to pick a time range: the flamegraph and the table show what was
    allocated in it and still live at its high-water mark; click the chart for the heap live
    at that moment (200 time buckets; each keeps its own high-water mark exactly);
  - peak, leaks (live at exit), temporary, every allocation;
  - threads: all merged, each apart, or one; inverted (icicle);
  - hide the import machinery, the interpreter's own frames between Python frames (--native
    captures) and <unknown> (hover it for what it is);
  - a table of locations (own and total bytes, allocations, threads, file:line) to sort and
    filter; hovering a Python frame shows its source line.
Small stacks are merged into \"other (small stacks)\", which keeps their bytes, so the page
stays under 10 MB whatever the capture. --leaks, --temporary, --threads, --thread and --inverted
choose the view the page opens on.

Examples:
  memtrace flamegraph out.bin                 writes out.html: the memory live at the peak
  memtrace flamegraph -o peak.html out.bin
  memtrace flamegraph --leaks out.bin         what is still live at exit
  memtrace flamegraph --temporary --inverted out.bin   icicle of the temporary allocations
  memtrace flamegraph --threads out.bin       one tower per thread

A page memtrace wrote is made again at the same path; any other file there (a capture, notes)
is left alone unless --force is given.

A family (memtrace run --follow-fork, without --pid): one page for every process, each the
outermost frame of its stacks, a processes filter, the chart stacking each process's heap, and
Peak at the combined peak.

With --diff BASE, FILE is NEW and the page is a differential flamegraph: NEW's frames (width:
bytes in NEW), each coloured by the change of its own bytes against BASE (red grew, blue
shrank), a line that allocated matched by its location (`function at file:line`) as in
`memtrace diff`, a caller by its function and file (`function at file`: its lines may move
between the two runs); the hover text gives a frame's bytes before and after and the change. The chart shows both heaps,
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
    /// The HTML file to write (`-`: stdout) [default: FILE with .html (FILE.PID.html with
    /// --pid); with --diff, .diff.html]
    #[arg(short = 'o', long = "output", value_name = "OUT.html")]
    pub output: Option<PathBuf>,
    /// Draw an icicle graph: the outermost frames at the top
    #[arg(long)]
    pub inverted: bool,
    /// Overwrite OUT even when it is not a page memtrace wrote (a capture, another file)
    #[arg(short = 'f', long = "force")]
    pub force: bool,
    #[command(flatten)]
    pub view: ViewArgs,
}

/// Runs `memtrace flamegraph`.
pub fn execute(args: FlamegraphArgs) -> Result<(), String> {
    match &args.diff {
        Some(base) => write_diff(base, &args),
        None => write(&args),
    }
}

/// The page written when no -o is given: the capture's name with `extension` in place of its
/// own, the suffix memtrace gives a family's other captures kept (`out.bin.4242`,
/// `out.bin.exec1`), and `--pid`'s process named: each capture and process has a page of its
/// own, and none replaces another's (they all were `out.html`, or `out.bin.html`).
fn default_page(file: &Path, pid: Option<u32>, extension: &str) -> PathBuf {
    let ours = file.extension().and_then(|e| e.to_str()).is_some_and(|e| {
        let digits = e.strip_prefix("exec").unwrap_or(e);
        !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
    });
    let mut name = match ours {
        true => file.file_name(),
        false => file.file_stem(),
    }
    .map(|n| n.to_os_string())
    .unwrap_or_default();
    if let Some(pid) = pid {
        name.push(format!(".{pid}"));
    }
    name.push(format!(".{extension}"));
    file.with_file_name(name)
}

/// Writes the page of one view.
fn write(args: &FlamegraphArgs) -> Result<(), String> {
    let out = args
        .output
        .clone()
        .unwrap_or_else(|| default_page(&args.file, args.view.pid, "html"));
    if out != Path::new(STDOUT) {
        memtrace_reporter::output::check_not_input(&out, &[&args.file])?;
        memtrace_reporter::output::check_page_output(&out, args.force)?;
        memtrace_reporter::output::check_writable(&out)?;
    }
    let opts = args.view.options(View::Peak);
    if args.view.pid.is_none() {
        if let Some(page) = family_page::interactive_page(&args.file, &opts, args.inverted)? {
            view_args::warn(&page.warnings);
            return save(&out, &page.html);
        }
    }
    let file = args.view.capture(&args.file)?;
    let (capture, analysis) = report::load_for_page(
        &file,
        &opts,
        Progress::stderr("reading the capture").callback(),
    )?;
    view_args::warn(&analysis.warnings);
    let html = report::interactive_page(&capture, &analysis, &opts, args.inverted)?;
    save(&out, &html)
}

/// The two sides of a differential page, their frames matched as `memtrace diff` matches
/// them (a capture with native stacks against one without: by Python frames).
/// `notes`: more for each side to warn of ([`ViewArgs::compared_alone`]).
fn sides(
    base: &Path,
    new: &Path,
    opts: &ViewOptions,
    notes: [Option<String>; 2],
) -> Result<(Side, Side), String> {
    let (base_capture, mut base_analysis, base_selection) = view_args::load_selection(base, opts)?;
    let (new_capture, mut new_analysis, new_selection) = view_args::load_selection(new, opts)?;
    let [base_note, new_note] = notes;
    base_analysis.warnings.extend(base_note);
    new_analysis.warnings.extend(new_note);
    view_args::match_frames(
        (&base_capture, &mut base_analysis),
        (&new_capture, &mut new_analysis),
        opts,
    );
    super::diff::note_sampling(&base_analysis, &new_analysis);
    let side = |label: &str, capture: &Capture, analysis: &Analysis, selection| {
        let (tree, mut warnings) = tree::build(capture, analysis, selection, opts.split_threads);
        warnings.splice(0..0, analysis.warnings.iter().cloned());
        // As `memtrace diff` says them: which side, which file.
        let named: Vec<String> = warnings
            .iter()
            .map(|w| format!("{label} {}: {w}", capture.path().display()))
            .collect();
        view_args::warn(&named);
        Side::new(
            capture,
            analysis,
            selection,
            tree,
            opts.split_threads,
            warnings,
        )
    };
    Ok((
        side("BASE", &base_capture, &base_analysis, &base_selection),
        side("NEW", &new_capture, &new_analysis, &new_selection),
    ))
}

/// Writes the differential page of `args.file` (NEW) against `base`.
fn write_diff(base: &Path, args: &FlamegraphArgs) -> Result<(), String> {
    let out = args
        .output
        .clone()
        .unwrap_or_else(|| default_page(&args.file, args.view.pid, "diff.html"));
    if out != Path::new(STDOUT) {
        memtrace_reporter::output::check_not_input(&out, &[base, &args.file])?;
        memtrace_reporter::output::check_page_output(&out, args.force)?;
        memtrace_reporter::output::check_writable(&out)?;
    }
    let opts = args.view.options(View::Peak);
    let notes = [
        args.view.compared_alone(base),
        args.view.compared_alone(&args.file),
    ];
    let (base, new) = sides(
        &args.view.capture(base)?,
        &args.view.capture(&args.file)?,
        &opts,
        notes,
    )?;
    let html = report::diff_page(&base, &new, args.inverted)?;
    save(&out, &html)
}

/// `-o -`: the page goes to stdout (as export's does; it wrote a file named `-`).
const STDOUT: &str = "-";

/// Writes the page and says so on stderr.
fn save(out: &Path, html: &str) -> Result<(), String> {
    if out == Path::new(STDOUT) {
        let mut stdout = std::io::stdout().lock();
        return view_args::written(
            stdout
                .write_all(html.as_bytes())
                .and_then(|()| stdout.flush()),
        );
    }
    memtrace_reporter::output::write_whole(out, |w| w.write_all(html.as_bytes()))
        .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    crate::say!("memtrace: wrote {}", out.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::default_page;
    use std::path::{Path, PathBuf};

    #[test]
    fn each_capture_and_process_has_a_page_of_its_own() {
        let page = |f: &str, pid, ext| default_page(Path::new(f), pid, ext);
        assert_eq!(page("d/out.bin", None, "html"), PathBuf::from("d/out.html"));
        assert_eq!(
            page("out.bin", Some(42), "html"),
            PathBuf::from("out.42.html")
        );
        assert_eq!(
            page("out.bin.4242", None, "html"),
            PathBuf::from("out.bin.4242.html")
        );
        assert_eq!(
            page("out.bin.exec1", None, "diff.html"),
            PathBuf::from("out.bin.exec1.diff.html")
        );
        assert_eq!(
            page("out.bin.4242", Some(7), "html"),
            PathBuf::from("out.bin.4242.7.html")
        );
        assert_eq!(page("cap", None, "html"), PathBuf::from("cap.html"));
        assert_eq!(page("cap.execute", None, "html"), PathBuf::from("cap.html"));
    }
}
