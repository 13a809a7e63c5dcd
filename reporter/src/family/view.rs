//! The call tree of a family, for `tree`, `summary`, `flamegraph` and `export` without `--pid`:
//! one top-level node per process (`pid 123: python3 worker.py`), under it that process's own
//! tree. The default view is what each process held at the family's combined peak (the moment
//! the sum of their live heaps was highest); `--leaks`, `--temporary` and the others show each
//! process's own selection.

use super::combined::{self, Image};
use super::{discover, Family};
use crate::analysis::{self, Options};
use crate::capture::Capture;
use crate::export::{self, Sites};
use crate::report::calltree::{CallTree, NodeId, ROOT};
use crate::report::locations::Location;
use crate::report::view_tree::StackResolver;
use crate::report::views::{self, View, ViewOptions};
use crate::report::{human, tree};
use crate::symbols::modules::ModuleMap;
use crate::symbols::Symbolizer;
use rayon::prelude::*;
use std::path::{Path, PathBuf};

/// A family's tree and what the reports say about it.
pub struct FamilyTree {
    pub family: Family,
    pub tree: CallTree,
    /// The sentence naming what the tree holds (a report's first line).
    pub title: String,
    /// Problems reading the captures, each prefixed with its file.
    pub warnings: Vec<String>,
}

/// The capture of process `pid` of the family of `root` (its first image), and what a report
/// of it should say: captures left out of the family, and where the process's later images
/// are when it exec'd (a report reads one capture: one image). Errors name the processes
/// there are.
pub fn capture_of(root: &Path, pid: u32) -> Result<(PathBuf, Vec<String>), String> {
    let family = discover(root)?;
    match family.process(pid) {
        Some(p) if p.tracked() => {
            let mut notes = family.warnings.clone();
            notes.extend(later_images_note(p));
            Ok((p.captures[0].clone(), notes))
        }
        Some(p) => Err(format!("process {pid} {}", family.no_capture_reason(p))),
        None => {
            let pids: Vec<String> = family.processes.iter().map(|p| p.pid.to_string()).collect();
            Err(format!(
                "no process {pid} in the family of {} (processes: {})",
                root.display(),
                pids.join(", ")
            ))
        }
    }
}

/// `process N exec'd: ...`: the line a report of a process's first image adds when it has
/// later ones (each its own capture, its own program).
fn later_images_note(p: &super::Process) -> Option<String> {
    let later = p.captures.get(1..).filter(|l| !l.is_empty())?;
    const SHOWN: usize = 3;
    let mut names: Vec<String> = later
        .iter()
        .take(SHOWN)
        .map(|c| c.display().to_string())
        .collect();
    if later.len() > SHOWN {
        names.push(format!("and {} more", later.len() - SHOWN));
    }
    Some(format!(
        "process {} exec'd: this report is of its first image only; its later images are in {} (report each by its file)",
        p.pid,
        names.join(", ")
    ))
}

/// The family of `root`, its captures read once, and which to read again for `view` (at the
/// combined peak's moment for the default view).
struct Chosen {
    family: Family,
    images: Vec<Image>,
    peak_at: Option<u64>,
    /// By image: the event of its capture after which it held its part of the combined peak
    /// (see [`combined::Peak::by_image_event`]).
    peak_events: Vec<Option<u64>>,
    chosen: Vec<usize>,
}

fn choose(root: &Path, view: &ViewOptions) -> Result<Option<Chosen>, String> {
    if !super::has_child_captures(root) {
        return Ok(None);
    }
    let family = discover(root)?;
    if !family.processes.iter().skip(1).any(|p| p.tracked()) {
        return Ok(None);
    }
    let images = combined::read(&family, view.include_startup);
    let (peak_at, peak_events, chosen) = if view.view == View::Peak {
        let peak = combined::peak(&images, family.processes.len());
        let held: Vec<usize> = (0..images.len())
            .filter(|&i| peak.by_image.get(i).copied().unwrap_or(0) > 0)
            .collect();
        (Some(peak.mono_ns), peak.by_image_event, held)
    } else {
        (
            None,
            Vec::new(),
            (0..images.len())
                .filter(|&i| images[i].error.is_none())
                .collect(),
        )
    };
    Ok(Some(Chosen {
        family,
        images,
        peak_at,
        peak_events,
        chosen,
    }))
}

/// (process, what `f` made, warnings: (its file, what is said)) of one image.
type ImageResult<T> = (usize, T, Vec<(String, String)>);

/// The images' warnings, each prefixed with its file; one said of several files alike (an
/// aggregated family's "aggregated capture ..." of each process) is said once, naming the first
/// and how many more.
fn merged_warnings(said: Vec<(String, String)>) -> Vec<String> {
    let mut by_text: Vec<(String, Vec<String>)> = Vec::new();
    for (file, text) in said {
        match by_text.iter_mut().find(|(t, _)| *t == text) {
            Some((_, files)) => files.push(file),
            None => by_text.push((text, vec![file])),
        }
    }
    by_text
        .into_iter()
        .map(|(text, files)| match files.len() {
            1 => format!("{}: {text}", files[0]),
            n => format!(
                "{} and {} more of the family's captures: {text}",
                files[0],
                n - 1
            ),
        })
        .collect()
}

/// `f` of each chosen image's capture, analysis and selection (in parallel): (process, result)
/// in image order, and the warnings (each prefixed with its file).
fn each_image<T: Send>(
    c: &Chosen,
    view: &ViewOptions,
    f: impl Fn(&Capture, &analysis::Analysis, &views::Selection) -> (T, Vec<String>) + Sync,
) -> (Vec<(usize, T)>, Vec<String>) {
    let results: Vec<Result<ImageResult<T>, String>> = c
        .chosen
        .par_iter()
        .map(|&i| {
            let image = &c.images[i];
            let shown = image.path.display().to_string();
            let capture = Capture::open(&image.path).map_err(|e| format!("{shown}: {}", e.kind))?;
            let mut a = crate::index::analyze(
                &capture,
                Options {
                    temporary: view.temporary(),
                    freeze: true,
                    include_startup: view.include_startup,
                    peak_at_mono_ns: c.peak_at,
                    peak_at_event: c.peak_events.get(i).copied().flatten(),
                    ..Options::default()
                },
            );
            a.tables.frame_view = view.frame_view;
            let selection = views::select(&a, view).map_err(|e| format!("{shown}: {e}"))?;
            let (t, w) = f(&capture, &a, &selection);
            let warnings: Vec<(String, String)> = a
                .warnings
                .iter()
                .cloned()
                .chain(w)
                .map(|x| (shown.clone(), x))
                .collect();
            Ok((image.process, t, warnings))
        })
        .collect();
    let mut out = Vec::new();
    let mut said = Vec::new();
    let mut failed = Vec::new();
    for r in results {
        match r {
            Ok((process, t, w)) => {
                out.push((process, t));
                said.extend(w);
            }
            // One process's unreadable capture or bad --thread name is not the family's error.
            Err(e) => failed.push(e),
        }
    }
    let mut warnings = merged_warnings(said);
    warnings.extend(failed);
    for im in &c.images {
        if let Some(e) = &im.error {
            warnings.push(format!("{}: {e}", im.path.display()));
        }
    }
    if c.peak_at.is_some() {
        warnings.extend(combined::notes(&c.family, &c.images));
    }
    warnings.extend(c.family.warnings.iter().cloned());
    (out, warnings)
}

/// The location standing for process `i` (a frame or label of its own).
fn process_location(family: &Family, i: usize) -> Location {
    let label = family.processes[i].label();
    Location {
        function: Some(label.clone()),
        file: None,
        line: None,
        label,
    }
}

/// The family tree of the capture at `root` for `view`; None when it has no tracked children
/// (the report is then the capture's own).
pub fn build(root: &Path, view: &ViewOptions) -> Result<Option<FamilyTree>, String> {
    let Some(c) = choose(root, view)? else {
        return Ok(None);
    };
    let (trees, warnings) = each_image(&c, view, |capture, a, selection| {
        tree::build(capture, a, selection, view.split_threads)
    });
    let mut tree = CallTree::new();
    let mut process_nodes: Vec<Option<NodeId>> = vec![None; c.family.processes.len()];
    for (process, sub) in trees {
        if sub.root().bytes == 0 && sub.root().allocations == 0 {
            continue;
        }
        let at = *process_nodes[process]
            .get_or_insert_with(|| add_node(&mut tree, ROOT, process_location(&c.family, process)));
        graft(&mut tree, at, &sub);
    }
    sort_children(&mut tree, ROOT);
    for n in process_nodes.into_iter().flatten() {
        sort_children(&mut tree, n);
    }
    let root_total = (tree.root().bytes, tree.root().allocations);
    let title = title(&c, view, root_total);
    Ok(Some(FamilyTree {
        family: c.family,
        tree,
        title,
        warnings,
    }))
}

/// A family's allocation sites for `export`: each site's outermost frame is its process.
pub struct FamilySites {
    pub sites: Sites,
    /// The process of each site (by index): (pid, command), for a format's labels.
    pub processes: Vec<(u32, String)>,
    /// The run's settings (labels, sampling, aggregation): the same in each of its processes.
    pub settings: memtrace_format::settings::Settings,
    pub title: String,
    pub warnings: Vec<String>,
    /// From the root's start to the last process's end.
    pub duration_ns: i64,
    /// The wall-clock time of the first process's start (ns since the epoch).
    pub start_realtime_ns: i64,
}

/// The family's sites of `view` (None without tracked children).
pub fn sites(root: &Path, view: &ViewOptions) -> Result<Option<FamilySites>, String> {
    let Some(mut c) = choose(root, view)? else {
        return Ok(None);
    };
    let of_image = |capture: &Capture, a: &analysis::Analysis, selection: &views::Selection| {
        let map = ModuleMap::new(a.tables.modules.clone(), &capture.header.exe);
        let mut resolver = StackResolver::new(&a.tables, Symbolizer::new(map));
        let sites = export::sites::sites(a, selection, &mut resolver, view.split_threads);
        (
            (sites, a.index.settings.clone()),
            resolver.symbolizer.warnings,
        )
    };
    let (mut per_image, mut warnings) = each_image(&c, view, of_image);
    if view.view == View::Peak {
        // The images that held nothing at the combined peak still made their allocations
        // (pprof's alloc_space, the CSV's allocated bytes): they count with nothing live (they
        // were left out, and their allocations with them).
        let held = std::mem::take(&mut c.chosen);
        c.chosen = (0..c.images.len())
            .filter(|i| !held.contains(i) && c.images[*i].error.is_none())
            .collect();
        let (idle, said) = each_image(&c, view, of_image);
        for (process, (mut list, settings)) in idle {
            for s in &mut list.list {
                s.live = Default::default();
            }
            per_image.push((process, (list, settings)));
        }
        for w in said {
            if !warnings.contains(&w) {
                warnings.push(w);
            }
        }
        c.chosen = held;
    }
    let mut sites = Sites::default();
    let mut processes = Vec::new();
    // The children inherit the run's settings: the first image's.
    let settings = per_image
        .first()
        .map(|(_, (_, s))| s.clone())
        .unwrap_or_default();
    for (process, (list, _)) in per_image {
        let at = process_location(&c.family, process);
        let p = &c.family.processes[process];
        sites.graft(&at, &list);
        processes.extend(std::iter::repeat_n(
            (p.pid, p.command.clone()),
            list.list.len(),
        ));
    }
    let live = sites
        .list
        .iter()
        .fold((0, 0), |(b, n), s| (b + s.live.bytes, n + s.live.count));
    let title = title(&c, view, live);
    let first = c.images.iter().min_by_key(|i| i.start_mono_ns);
    let start = first.map_or(0, |i| i.start_mono_ns);
    let start_realtime_ns = first.map_or(0, |i| i.start_realtime_ns) as i64;
    let end = c
        .images
        .iter()
        .map(|i| i.end_mono_ns)
        .max()
        .unwrap_or(start);
    Ok(Some(FamilySites {
        sites,
        processes,
        settings,
        title,
        warnings,
        duration_ns: end.saturating_sub(start) as i64,
        start_realtime_ns,
    }))
}

fn add_node(tree: &mut CallTree, parent: NodeId, location: Location) -> NodeId {
    let mut node = CallTree::new().nodes.remove(ROOT);
    node.location = Some(location);
    node.parent = Some(parent);
    node.depth = tree.nodes[parent].depth + 1;
    let id = tree.nodes.len();
    tree.nodes.push(node);
    tree.nodes[parent].children.push(id);
    id
}

/// Copies `src` (without its root) under `at`, adding its totals to `at` and its ancestors.
fn graft(tree: &mut CallTree, at: NodeId, src: &CallTree) {
    let offset = tree.nodes.len();
    let base_depth = tree.nodes[at].depth;
    for (i, n) in src.nodes.iter().enumerate().skip(1) {
        let mut n = n.clone();
        n.parent = n
            .parent
            .map(|p| if p == ROOT { at } else { p - 1 + offset });
        n.children = n.children.iter().map(|&c| c - 1 + offset).collect();
        n.depth += base_depth;
        if src.nodes[i].parent == Some(ROOT) {
            let id = tree.nodes.len();
            tree.nodes[at].children.push(id);
        }
        tree.nodes.push(n);
    }
    let r = src.root();
    let mut up = Some(at);
    while let Some(id) = up {
        let node = &mut tree.nodes[id];
        node.bytes += r.bytes;
        node.allocations += r.allocations;
        node.threads.extend(r.threads.iter().copied());
        node.threads.sort_unstable();
        node.threads.dedup();
        up = node.parent;
    }
    tree.nodes[at].own_bytes += r.own_bytes;
    tree.nodes[at].own_allocations += r.own_allocations;
}

fn sort_children(tree: &mut CallTree, id: NodeId) {
    let mut kids = std::mem::take(&mut tree.nodes[id].children);
    let key = |c: &NodeId| {
        let n = &tree.nodes[*c];
        let label = n
            .location
            .as_ref()
            .map(|l| l.label.clone())
            .unwrap_or_default();
        (
            std::cmp::Reverse(n.bytes),
            std::cmp::Reverse(n.allocations),
            label,
        )
    };
    kids.sort_by_key(key);
    tree.nodes[id].children = kids;
}

fn title(c: &Chosen, view: &ViewOptions, (bytes, allocations): (u64, u64)) -> String {
    let n = c.family.processes.iter().filter(|p| p.tracked()).count();
    let what = match (view.view, c.peak_at) {
        (View::Peak, Some(at)) => {
            let root_start = c
                .images
                .iter()
                .find(|i| i.process == 0)
                .map_or(at, |i| i.start_mono_ns);
            format!(
                "Memory live at the combined peak of {n} processes (the highest sum of their live heaps, at {})",
                human::seconds(at.saturating_sub(root_start) as f64 / 1e9)
            )
        }
        (View::All, _) => format!("Every allocation of {n} processes"),
        (View::Leaks, _) => {
            format!("Memory live at exit (or at the end of its capture) of each of {n} processes")
        }
        (View::Temporary, _) => format!("Temporary allocations of {n} processes"),
        (View::Peak, None) => format!("Memory of {n} processes"),
    };
    format!(
        "{what}: {} ({} bytes) in {}",
        human::size(bytes),
        human::count(bytes),
        human::counted(allocations, "allocation")
    )
}

#[cfg(test)]
mod tests {
    use super::merged_warnings;

    #[test]
    fn a_warning_several_captures_share_is_said_once() {
        let said = |f: &str, t: &str| (f.to_string(), t.to_string());
        let out = merged_warnings(vec![
            said("a.bin", "aggregated capture"),
            said("a.bin.7", "capture is incomplete"),
            said("a.bin.7", "aggregated capture"),
            said("a.bin.8", "aggregated capture"),
        ]);
        assert_eq!(
            out,
            [
                "a.bin and 2 more of the family's captures: aggregated capture",
                "a.bin.7: capture is incomplete",
            ]
        );
    }
}
