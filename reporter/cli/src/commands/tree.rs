//! `memtrace tree`: the call tree of the memory live at the peak (or of another view), as text
//! when stdout is not a terminal, interactive when it is.

use crate::by_type_view;
use crate::color::ColorArgs;
use crate::view_args::{self, ViewArgs};
use clap::Args;
use memtrace_reporter::report::paths::{self, Paths};
use memtrace_reporter::report::tree_text::{self, Limits};
use memtrace_reporter::report::views;
use memtrace_reporter::report::{by_type, tree_json};
use serde::Serialize;
use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;

#[derive(Args, Debug)]
#[command(after_help = "\
Each line: bytes, share of the root, allocations, and `function at file:line`; children are
sorted by bytes. The root is everything the view holds: by default the memory live at the peak
(the high-water mark of live bytes), with --leaks what is live at exit, with --temporary the
temporary allocations.

Examples:
  memtrace tree out.bin                      interactive on a terminal, text when piped
  memtrace tree --text out.bin               text: 12 levels, 5 children per node
  memtrace tree --text --depth 4 --biggest 3 out.bin
  memtrace tree --leaks --text out.bin       what is still live at exit
  memtrace tree --temporary --temporary-threshold 4 --text out.bin
  memtrace tree --threads --text out.bin     one top-level node per thread
  memtrace tree --thread MainThread --json out.bin | jq .tree.bytes
  memtrace tree --by-type out.bin            a Python run: what is live at the peak by type,
                                             each type with the lines that allocated it
  memtrace tree --by-type --leaks out.bin    the same at exit

JSON keys: capture, view, title, bytes, allocations, complete, sample_bytes, aggregated,
warnings (as in stats --json), tree. A node: location, function, file,
line, bytes, share (percent of the root), allocations, own_bytes, own_allocations, threads
(TIDs), children, more ({nodes, bytes, allocations} left out, or null). Without --depth or
--biggest the JSON tree is whole. With --by-type: capture, view (peak or leaks), title, types
[{type, objects, bytes, allocations, lines [{location, function, file, line, bytes,
allocations}]}].")]
pub struct TreeArgs {
    /// The capture file written by `memtrace run`
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    #[command(flatten)]
    pub view: ViewArgs,
    #[command(flatten)]
    pub color: ColorArgs,
    /// Print text even when stdout is a terminal
    #[arg(long, conflicts_with = "json")]
    pub text: bool,
    /// Text: show files with their full paths (by default a file under the script's directory
    /// or the current directory is shown relative to it, whichever is shorter)
    #[arg(long = "full-paths")]
    pub full_paths: bool,
    /// Print the tree as one JSON object
    #[arg(long)]
    pub json: bool,
    /// Levels shown below the root [text: 12]
    #[arg(long, value_name = "N")]
    pub depth: Option<usize>,
    /// Children shown per node, the largest [text: 5]
    #[arg(long, value_name = "N")]
    pub biggest: Option<usize>,
    /// Characters per line of text
    #[arg(long, value_name = "N", default_value_t = 140, value_parser = clap::value_parser!(u64).range(40..=100_000))]
    pub width: u64,
    /// A Python run: what is live at the peak (at exit with --leaks) by object type, each type
    /// with the lines that allocated its objects
    #[arg(long, conflicts_with_all = ["temporary", "threads", "thread"])]
    pub by_type: bool,
}

#[derive(Serialize)]
struct JsonTree {
    capture: String,
    view: views::View,
    title: String,
    bytes: u64,
    allocations: u64,
    #[serde(flatten)]
    state: view_args::CaptureState,
    tree: tree_json::JsonNode,
}

fn view_word(view: views::View) -> &'static str {
    match view {
        views::View::All => "all",
        views::View::Peak => "peak",
        views::View::Leaks => "leaks",
        views::View::Temporary => "temporary",
    }
}

/// The tree of a family: one top-level node per process.
fn family_tree(
    args: &TreeArgs,
    opts: &views::ViewOptions,
    f: memtrace_reporter::family::view::FamilyTree,
) -> Result<(), String> {
    view_args::warn(&f.warnings);
    let defaults = Limits::default();
    let limits = Limits {
        depth: args.depth.unwrap_or(defaults.depth),
        biggest: args.biggest.unwrap_or(defaults.biggest),
        width: args.width as usize,
    };
    let tree = f.tree;
    if args.json {
        let json = JsonTree {
            capture: args.file.display().to_string(),
            view: opts.view,
            title: f.title,
            bytes: tree.root().bytes,
            allocations: tree.root().allocations,
            state: view_args::CaptureState::of_family(&f.warnings),
            tree: tree_json::node_with(
                &tree,
                &|serial| serial,
                0,
                args.depth.unwrap_or(usize::MAX),
                args.biggest.unwrap_or(usize::MAX),
            ),
        };
        let mut out = view_args::stdout(true);
        return view_args::written(
            serde_json::to_writer(&mut out, &json)
                .map_err(io::Error::from)
                .and_then(|()| writeln!(out))
                .and_then(|()| out.flush()),
        );
    }
    if !args.text && io::stdout().is_terminal() {
        let info = crate::tui::TuiInfo {
            title: f.title,
            capture: args.file.clone(),
            command: f
                .family
                .processes
                .first()
                .map(|p| p.command.clone())
                .unwrap_or_default(),
            view: view_word(opts.view).to_string(),
            peak_bytes: tree.root().bytes,
            threads: Default::default(),
        };
        let shown = crate::tui::run(tree, info);
        crate::tui::signals::die_of_the_quit_signal();
        return view_args::written(shown);
    }
    let mut out = view_args::stdout(false);
    view_args::written(
        writeln!(out, "{}", f.title)
            .and_then(|()| tree_text::render(&tree, limits, &mut out))
            .and_then(|()| out.flush()),
    )
}

/// Runs `memtrace tree`.
pub fn execute(args: TreeArgs) -> Result<(), String> {
    if args.by_type {
        return by_type(&args);
    }
    let opts = args.view.options(views::View::Peak);
    if let Some(family) = args.view.family_tree(&args.file, &opts)? {
        return family_tree(&args, &opts, family);
    }
    let file = args.view.capture(&args.file)?;
    let (capture, analysis, selection, tree) = view_args::load_tree(&file, &opts)?;
    let title = views::title(&analysis, &selection);
    let defaults = Limits::default();
    let limits = Limits {
        depth: args.depth.unwrap_or(defaults.depth),
        biggest: args.biggest.unwrap_or(defaults.biggest),
        width: args.width as usize,
    };
    if args.json {
        let tree = JsonTree {
            capture: capture.path().display().to_string(),
            view: selection.view,
            title,
            bytes: tree.root().bytes,
            allocations: tree.root().allocations,
            state: view_args::CaptureState::of(&analysis, &[]),
            tree: tree_json::node(
                &tree,
                &analysis,
                0,
                args.depth.unwrap_or(usize::MAX),
                args.biggest.unwrap_or(usize::MAX),
            ),
        };
        let mut out = view_args::stdout(true);
        return view_args::written(
            serde_json::to_writer(&mut out, &tree)
                .map_err(io::Error::from)
                .and_then(|()| writeln!(out))
                .and_then(|()| out.flush()),
        );
    }
    if !args.text && io::stdout().is_terminal() {
        let view = view_word(selection.view);
        let info = crate::tui::TuiInfo {
            title,
            capture: capture.path().to_path_buf(),
            command: capture.argv().join(" "),
            view: view.to_string(),
            peak_bytes: tree.root().bytes,
            threads: crate::tui::TuiInfo::thread_names(
                analysis
                    .threads
                    .iter()
                    .map(|t| (t.serial, t.tid, t.name.as_deref())),
            ),
        };
        let shown = crate::tui::run(tree, info);
        crate::tui::signals::die_of_the_quit_signal();
        return view_args::written(shown);
    }
    let paths = if args.full_paths {
        Paths::full()
    } else {
        Paths::relative(
            &capture.argv(),
            paths::tree_files(&tree),
            std::env::current_dir().ok(),
        )
    };
    let mut out = view_args::text_stdout(args.color.enabled());
    view_args::written(
        writeln!(out, "{title}")
            .and_then(|()| tree_text::render_styled(&tree, limits, &paths, &mut out))
            .and_then(|()| out.flush()),
    )
}

/// `tree --by-type`: each type live at the peak (or at exit), then the lines that allocated it.
fn by_type(args: &TreeArgs) -> Result<(), String> {
    by_type_view::write(&args.file, &args.view, args.json, |groups, out| {
        by_type::render_tree(
            groups,
            args.biggest.unwrap_or(Limits::default().biggest),
            out,
        )
    })
}
