//! The interactive page of a family (`memtrace flamegraph` without `--pid`): the single
//! process's page (assets/page.js: views, time range, moment, controls, URL fragment) over
//! every process at once. Each process is the outermost frame of its stacks (`pid 123: python3
//! worker.py`) and a choice of the page's process filter; the chart stacks each process's heap.
//!
//! Every capture is read with its time buckets on the family's grid ([`super::grid`]): a
//! bucket's snapshot is the moment the sum of the heaps was highest, so that a moment or a
//! range adds up across processes. The peak view is what each process held at the combined
//! peak, as `stats` reports it.

use super::combined::{self, Image};
use super::grid::{self, Grid};
use super::{discover, Family};
use crate::analysis::{self, Options};
use crate::capture::Capture;
use crate::flamegraph::data::{self, Buckets, Group, PageData, Start};
use crate::flamegraph::{app, timeline};
use crate::report::views::ViewOptions;
use hashbrown::HashMap;
use rayon::prelude::*;
use serde::Serialize;
use std::path::Path;

/// The frame kind of a process (the page's `K.PROCESS`), beside [`data::kind`]'s.
pub const PROCESS_KIND: u8 = 6;

/// A family's page and the problems met reading its captures (each prefixed with its file).
pub struct FamilyPage {
    pub html: String,
    pub warnings: Vec<String>,
}

/// What the page adds for a family (`D.family` in the script).
#[derive(Serialize)]
struct FamilyData {
    /// Each process's label (`pid 123: python3 worker.py`), by process index.
    processes: Vec<String>,
    /// The process of each group, by group index.
    group_process: Vec<u32>,
    /// The process of each thread, by thread index.
    thread_process: Vec<u32>,
    /// By process, by bucket: its live heap at the bucket's moment (the chart's stack).
    heaps: Vec<Vec<u64>>,
    /// What each process held at the combined peak: (process, bytes), the largest first.
    peak_by_process: Vec<(u32, u64)>,
}

/// The page's data and the family's.
#[derive(Serialize)]
struct FamilyPageData {
    #[serde(flatten)]
    page: PageData,
    family: FamilyData,
}

/// One image's part of the page.
struct Part {
    image: usize,
    data: PageData,
    warnings: Vec<String>,
}

/// The interactive page of the family of `root`, opening on `view`; None when it has no
/// tracked child (the page is then the capture's own). The error is the line to show.
pub fn interactive_page(
    root: &Path,
    view: &ViewOptions,
    inverted: bool,
) -> Result<Option<FamilyPage>, String> {
    if !super::has_child_captures(root) {
        return Ok(None);
    }
    let family = discover(root)?;
    if !family.processes.iter().skip(1).any(|p| p.tracked()) {
        return Ok(None);
    }
    let images = combined::read(&family, view.include_startup);
    let peak = combined::peak(&images, family.processes.len());
    let origin = images
        .iter()
        .find(|i| i.process == 0)
        .map_or(0, |i| i.start_mono_ns);
    let end = images
        .iter()
        .map(|i| i.end_mono_ns.max(i.series.last().map_or(0, |p| p.0)))
        .max()
        .unwrap_or(origin);
    let grid = grid::grid(&images, origin, end, data::BUCKETS);
    let readable: Vec<usize> = (0..images.len())
        .filter(|&i| images[i].error.is_none())
        .collect();
    let share = (data::MAX_GROUPS / readable.len().max(1)).max(200);
    let budget = (data::DATA_LIMIT / readable.len().max(1)).max(512 << 10);
    let start = Start {
        view: view.view,
        inverted,
        split_threads: view.split_threads,
        thread: None,
    };
    // The processes of a family load the same libraries: their debug data are read once.
    let symbols = crate::symbols::LoaderCache::default();
    let parts: Vec<Result<Part, String>> = readable
        .par_iter()
        .map(|&i| {
            read_part(
                &images, i, &grid, &peak, view, &start, share, budget, &symbols,
            )
        })
        .collect();
    let mut warnings: Vec<String> = images
        .iter()
        .filter_map(|im| {
            im.error
                .as_ref()
                .map(|e| format!("{}: {e}", im.path.display()))
        })
        .collect();
    warnings.extend(combined::notes(&family, &images));
    warnings.extend(family.warnings.iter().cloned());
    let mut kept = Vec::new();
    for p in parts {
        match p {
            Ok(p) => kept.push(p),
            Err(e) => warnings.push(e),
        }
    }
    if kept.is_empty() {
        return Err(warnings
            .first()
            .cloned()
            .unwrap_or_else(|| "no capture of the family could be read".to_string()));
    }
    for p in &kept {
        warnings.extend(p.warnings.iter().cloned());
    }
    let all = merge(&family, &images, kept, &grid, &peak, origin, end, &warnings);
    let json = to_script_json(&all);
    Ok(Some(FamilyPage {
        html: app::render(&root.display().to_string(), &json),
        warnings,
    }))
}

/// Reads image `i` with its snapshots at the grid's moments and its peak at the combined
/// peak, and makes its part of the page (at most `share` groups and about `budget` bytes).
#[allow(clippy::too_many_arguments)]
fn read_part(
    images: &[Image],
    i: usize,
    grid: &Grid,
    peak: &combined::Peak,
    view: &ViewOptions,
    start: &Start,
    share: usize,
    budget: usize,
    symbols: &crate::symbols::LoaderCache,
) -> Result<Part, String> {
    let image = &images[i];
    let shown = image.path.display().to_string();
    let capture = Capture::open(&image.path).map_err(|e| format!("{shown}: {}", e.kind))?;
    let mut a = analysis::analyze_options(
        &capture,
        Options {
            temporary: Some(view.temporary_threshold.max(1)),
            freeze: true,
            include_startup: view.include_startup,
            peak_at_mono_ns: Some(peak.mono_ns),
            peak_at_event: peak.by_image_event.get(i).copied().flatten(),
            bucket_moments: Some(grid.moments.clone()),
            ..Options::default()
        },
    );
    a.tables.frame_view = view.frame_view;
    let mut max_groups = share;
    let mut data = loop {
        let (d, kept) = data::build(&capture, &a, start, max_groups, symbols);
        if kept == 0 || data::to_script_json(&d).len() <= budget {
            break d;
        }
        max_groups = data::fewer_groups(kept);
    };
    // What it held at the combined peak: nothing when it had ended or not begun.
    if peak.by_image.get(i).copied().unwrap_or(0) == 0 {
        for g in &mut data.groups {
            g.peak = [0, 0];
        }
    }
    let end = grid::end_bucket(image, &grid.moments.moments_mono_ns);
    for g in &mut data.groups {
        cut_at(g, end);
    }
    let warnings = a.warnings.iter().map(|w| format!("{shown}: {w}")).collect();
    Ok(Part {
        image: i,
        data,
        warnings,
    })
}

/// A group's values from bucket `end` on are nothing (its process's heap is gone then).
fn cut_at(g: &mut Group, end: usize) {
    let end = end as u64;
    for h in &mut g.live {
        // [bucket of allocation, then (snapshot, bytes, allocations)...]
        let mut len = 1;
        while len + 2 < h.len() && h[len] < end {
            len += 3;
        }
        h.truncate(len);
        let last = if len > 1 { h[len - 2] } else { 0 };
        if last > 0 && h[0] < end {
            h.extend([end, 0, 0]);
        }
    }
    g.live.retain(|h| h[0] < end && h.len() > 1);
}

/// The images' parts as one page's data: frames shared, each stack under its process's
/// frame, threads and groups one after the other.
#[allow(clippy::too_many_arguments)]
fn merge(
    family: &Family,
    images: &[Image],
    parts: Vec<Part>,
    grid: &Grid,
    peak: &combined::Peak,
    origin: u64,
    end: u64,
    warnings: &[String],
) -> FamilyPageData {
    let mut frames: Vec<(String, u8, String, u64, String)> = Vec::new();
    let mut frame_index: HashMap<(String, u8, String, u64), u32> = HashMap::new();
    let mut intern = |f: &(String, u8, String, u64, String)| -> u32 {
        let key = (f.0.clone(), f.1, f.2.clone(), f.3);
        *frame_index.entry(key).or_insert_with(|| {
            frames.push(f.clone());
            (frames.len() - 1) as u32
        })
    };
    let labels: Vec<String> = family.processes.iter().map(|p| p.label()).collect();
    let mut stacks = Vec::new();
    let mut groups = Vec::new();
    let mut threads = Vec::new();
    let mut group_process = Vec::new();
    let mut thread_process = Vec::new();
    let mut merged = 0;
    let (mut total_bytes, mut total_allocations, mut peak_allocations) = (0, 0, 0);
    let (mut leaked, mut leaked_allocations) = (0, 0);
    let mut exit_snapshot = true;
    let mut root_meta = None;
    let mut root_first = None;
    let mut parts = parts;
    parts.sort_by_key(|p| p.image);
    for part in parts {
        let process = images[part.image].process;
        let d = part.data;
        let process_frame = intern(&(
            labels[process].clone(),
            PROCESS_KIND,
            String::new(),
            0,
            String::new(),
        ));
        let frame_map: Vec<u32> = d.frames.iter().map(&mut intern).collect();
        let stack_base = stacks.len() as u32;
        for s in &d.stacks {
            let mut out = Vec::with_capacity(s.len() + 1);
            out.push(process_frame);
            out.extend(s.iter().map(|&f| frame_map[f as usize]));
            stacks.push(out);
        }
        let thread_base = threads.len() as i64;
        for t in &d.threads {
            threads.push(format!("pid {}: {t}", family.processes[process].pid));
            thread_process.push(process as u32);
        }
        for mut g in d.groups {
            g.s += stack_base;
            if g.t >= 0 {
                g.t += thread_base;
            }
            peak_allocations += g.peak[1];
            groups.push(g);
            group_process.push(process as u32);
        }
        merged += d.merged;
        total_bytes += d.meta.total_bytes;
        total_allocations += d.meta.total_allocations;
        // Live at exit: each process's last image's.
        let last = family.processes[process].captures.last() == Some(&images[part.image].path);
        if last {
            leaked += d.meta.leaked;
            leaked_allocations += d.meta.leaked_allocations;
            exit_snapshot &= d.meta.exit_snapshot;
        }
        if process == 0 && root_meta.is_none() {
            root_first = Some(d.buckets.first);
            root_meta = Some((d.meta, d.initial));
        }
    }
    let mut heaps = vec![vec![0u64; grid.hwm.len()]; family.processes.len()];
    for (i, held) in grid.held.iter().enumerate() {
        for (b, v) in held.iter().enumerate() {
            heaps[images[i].process][b] += v;
        }
    }
    let seconds = |ns: u64| ns.saturating_sub(origin) as f64 / 1e9;
    let (mut meta, initial) = match root_meta {
        Some(m) => m,
        None => {
            // The root's capture could not be read: the page's facts from the family.
            let empty = crate::flamegraph::data::Initial {
                view: "peak",
                inverted: false,
                split_threads: false,
                thread: None,
            };
            (empty_meta(), empty)
        }
    };
    meta.path = crate::report::visible::escape(&family.root.display().to_string()).into_owned();
    meta.command = crate::report::visible::escape(&family.processes[0].command).into_owned();
    meta.duration_s = seconds(end);
    meta.peak = peak.bytes;
    meta.peak_allocations = peak_allocations;
    meta.peak_at_s = seconds(peak.mono_ns);
    meta.total_bytes = total_bytes;
    meta.total_allocations = total_allocations;
    meta.leaked = leaked;
    meta.leaked_allocations = leaked_allocations;
    meta.exit_snapshot = exit_snapshot;
    meta.warnings = warnings.to_vec();
    let width_s = grid.moments.width_ns as f64 / 1e9;
    let page = PageData {
        meta,
        buckets: Buckets {
            t0_s: 0.0,
            width_s,
            first: root_first.unwrap_or(0),
            hwm: grid.hwm.clone(),
            at_s: grid
                .moments
                .moments_mono_ns
                .iter()
                .map(|&m| seconds(m))
                .collect(),
        },
        heap: timeline::downsample(
            &combined::sum_series(images, origin, crate::analysis::series::MAX_POINTS),
            timeline::MAX_POINTS,
        ),
        rss: Vec::new(),
        // The by-type section is per process (`--pid`); a family's page has none.
        types: None,
        threads,
        frames,
        stacks,
        groups,
        merged,
        initial,
    };
    FamilyPageData {
        page,
        family: FamilyData {
            processes: labels
                .iter()
                .map(|l| crate::report::visible::escape(l).into_owned())
                .collect(),
            group_process,
            thread_process,
            heaps,
            peak_by_process: peak
                .by_process
                .iter()
                .map(|&(p, b)| (p as u32, b))
                .collect(),
        },
    }
}

/// The facts of a page whose root capture could not be read (the family's fill them in).
fn empty_meta() -> data::Meta {
    data::Meta {
        path: String::new(),
        command: String::new(),
        python: None,
        mode: "full".to_string(),
        duration_s: 0.0,
        peak: 0,
        peak_allocations: 0,
        peak_at_s: 0.0,
        total_bytes: 0,
        total_allocations: 0,
        leaked: 0,
        leaked_allocations: 0,
        exit_snapshot: false,
        temporary_threshold: 1,
        unknown_help: data::UNKNOWN_HELP,
        allocators: memtrace_format::Allocator::ALL
            .iter()
            .map(|a| a.name())
            .collect(),
        version: env!("CARGO_PKG_VERSION"),
        warnings: Vec::new(),
        aggregated: false,
        memory_limit: None,
    }
}

/// The data as JSON safe in a `<script>` (as [`data::to_script_json`]).
fn to_script_json(data: &FamilyPageData) -> String {
    let json = serde_json::to_string(data).unwrap_or_else(|_| "{}".to_string());
    json.replace('<', "\\u003c")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(live: Vec<Vec<u64>>) -> Group {
        Group {
            s: 0,
            t: 0,
            peak: [0, 0],
            leak: [0, 0],
            temp: [0, 0],
            all: [0, 0],
            a: 0,
            live,
        }
    }

    #[test]
    fn a_process_holds_nothing_from_its_end_on() {
        let mut g = group(vec![
            vec![0, 0, 10, 1, 2, 20, 2, 5, 7, 1],
            vec![1, 1, 4, 1],
            vec![4, 4, 9, 1],
        ]);
        cut_at(&mut g, 3);
        assert_eq!(
            g.live,
            vec![
                vec![0, 0, 10, 1, 2, 20, 2, 3, 0, 0],
                vec![1, 1, 4, 1, 3, 0, 0]
            ]
        );
    }
}
