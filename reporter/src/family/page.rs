//! The flamegraph page of a family (`memtrace flamegraph` without `--pid`): the family's tree,
//! each process its outermost frame, and the sum of the processes' live heaps over time with
//! the combined peak marked. (Each process's own series is in [`FamilyTree::process_heaps`],
//! for a chart that stacks them.)

use super::view::FamilyTree;
use crate::flamegraph::report::{view_name, TOP_LINES};
use crate::flamegraph::{html, page, svg, timeline};
use crate::report::human;
use crate::report::views::View;
use crate::report::visible::escape;
use std::path::Path;

/// The page of the family of `root`, whose tree `f` is of `view`. The error is the line to show.
pub fn html_page(
    root: &Path,
    f: &FamilyTree,
    view: View,
    inverted: bool,
) -> Result<String, String> {
    let flamegraph = svg::render(
        &page::folded(&f.tree),
        &svg::Look {
            title: &f.title,
            subtitle: None,
            inverted,
        },
    )
    .map_err(|e| format!("cannot draw the flamegraph: {e}"))?;
    let chart = timeline::render(&timeline::Curves {
        heap: &f.heap,
        rss: &[],
        peak: f.peak,
        base_heap: None,
    })
    .map_err(|e| format!("cannot draw the chart: {e}"))?;
    let top = page::top_lines(&f.tree, TOP_LINES);
    let heading = format!("memtrace: {}", root.display());
    let command = f
        .family
        .processes
        .first()
        .map(|p| p.command.clone())
        .unwrap_or_default();
    let combined = f.peak.map_or(0, |p| p.1);
    Ok(html::render(&html::Page {
        title: &heading,
        facts: vec![
            ("Command", escape(&command).into_owned()),
            ("Processes", human::count(f.family.processes.len() as u64)),
            (
                "Combined peak",
                format!(
                    "{} ({} bytes)",
                    human::size(combined),
                    human::count(combined)
                ),
            ),
            ("View", format!("{}: {}", view_name(view), escape(&f.title))),
        ],
        chart_svg: Some(&chart),
        flamegraph_svg: &flamegraph,
        table: &page::top_lines_table(&top),
    }))
}
