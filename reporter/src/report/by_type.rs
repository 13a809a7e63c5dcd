//! The "by type" view of `tree --by-type` and `summary --by-type`: the memory live at exit
//! grouped by the type of the Python object in each block (analysis::objects), each type
//! expanded to the lines that allocated its objects (the innermost frame of their stacks).

use super::human::{count, size};
use super::locations;
use crate::analysis::objects::{ExitTypes, NO_OBJECT};
use crate::analysis::totals::Sum;
use crate::analysis::Analysis;
use crate::capture::Capture;
use crate::symbols::modules::ModuleMap;
use crate::symbols::Symbolizer;
use hashbrown::HashMap;
use serde::Serialize;
use std::io::{self, Write};

/// One line that allocated objects of a type. Field names are the JSON keys.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TypeLine {
    /// `function at file:line` (or a native location).
    pub location: String,
    pub function: Option<String>,
    pub file: Option<String>,
    pub line: Option<u64>,
    /// Bytes of the type's blocks allocated there and live at exit.
    pub bytes: u64,
    /// Those blocks.
    pub allocations: u64,
}

/// One type, with its lines, the most bytes first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TypeGroup {
    #[serde(rename = "type")]
    pub name: String,
    /// Objects of the type live at exit ("<no object>": blocks with no object in them).
    pub objects: u64,
    pub bytes: u64,
    pub allocations: u64,
    pub lines: Vec<TypeLine>,
}

/// The error for a capture without object types.
pub fn no_types(capture: &Capture, analysis: &Analysis) -> String {
    if analysis.index.settings.aggregate {
        return crate::analysis::aggregated::unsupported("object types (the by-type view)");
    }
    format!(
        "{} has no object types: the by-type view needs a capture of a Python run (memtrace run script.py) that reached the script's end",
        capture.path().display()
    )
}

/// What was live at exit by type, each type with its lines; errors for a capture without types.
pub fn groups(capture: &Capture, analysis: &Analysis) -> Result<Vec<TypeGroup>, String> {
    let types = analysis
        .types
        .as_ref()
        .ok_or_else(|| no_types(capture, analysis))?;
    Ok(groups_of(capture, analysis, types))
}

/// What was live at the peak by type, each type with its lines; errors for a capture without
/// types at the peak.
pub fn peak_groups(capture: &Capture, analysis: &Analysis) -> Result<Vec<TypeGroup>, String> {
    let types = analysis.peak_types.as_ref().ok_or_else(|| {
        if analysis.types.is_some() {
            format!(
                "{} has object types at exit only (recorded with --no-python-allocators, or by the in-process Tracker): add --leaks",
                capture.path().display()
            )
        } else {
            no_types(capture, analysis)
        }
    })?;
    Ok(groups_of(capture, analysis, types))
}

/// The types of one moment (`analysis.types` at exit, `analysis.peak_types` at the peak), each
/// type with its lines.
pub fn groups_of(capture: &Capture, analysis: &Analysis, types: &ExitTypes) -> Vec<TypeGroup> {
    let map = ModuleMap::new(analysis.tables.modules.clone(), &capture.header.exe);
    let mut symbolizer = Symbolizer::new(map);
    let untyped_row = types.rows.len();
    let mut stacks: Vec<HashMap<u64, Sum>> = vec![HashMap::new(); untyped_row + 1];
    for (&(row, stack, _thread), &sum) in &types.by_site {
        stacks[row].entry(stack).or_default().merge(sum);
    }
    let mut out = Vec::with_capacity(untyped_row + 1);
    for (row, by_stack) in stacks.iter().enumerate() {
        let (name, objects) = match types.rows.get(row) {
            Some(r) => (r.name.clone(), r.objects),
            None => (NO_OBJECT.to_string(), types.untyped.count),
        };
        let mut locs = locations::by_location(by_stack, &analysis.tables, &mut symbolizer);
        locs.sort_by(|a, b| {
            b.sum
                .bytes
                .cmp(&a.sum.bytes)
                .then_with(|| a.location.label.cmp(&b.location.label))
        });
        let total = by_stack.values().fold(Sum::default(), |mut s, x| {
            s.merge(*x);
            s
        });
        if total.count == 0 && objects == 0 {
            continue;
        }
        // "<no object>" counts what no object was found in, mappings included.
        let (bytes, allocations) = if row == untyped_row {
            (types.untyped.bytes, types.untyped.count)
        } else {
            (total.bytes, total.count)
        };
        out.push(TypeGroup {
            name,
            objects,
            bytes,
            allocations,
            lines: locs
                .into_iter()
                .map(|l| TypeLine {
                    location: l.location.label,
                    function: l.location.function,
                    file: l.location.file,
                    line: l.location.line,
                    bytes: l.sum.bytes,
                    allocations: l.sum.count,
                })
                .collect(),
        });
    }
    out
}

/// The title of a by-type report at exit.
pub fn title(groups: &[TypeGroup]) -> String {
    titled(
        groups,
        "exit",
        "types of the objects live when the script finished; at the peak: without --leaks",
    )
}

/// The title of a by-type report at the peak.
pub fn peak_title(groups: &[TypeGroup]) -> String {
    titled(
        groups,
        "the peak",
        "types of the objects live at the high-water mark; at exit: --leaks",
    )
}

/// "Memory live at `moment` by type: N in M allocations (`note`)".
fn titled(groups: &[TypeGroup], moment: &str, note: &str) -> String {
    let bytes: u64 = groups.iter().map(|g| g.bytes).sum();
    let allocations: u64 = groups.iter().map(|g| g.allocations).sum();
    format!(
        "Memory live at {moment} by type: {} in {} allocations ({note})",
        size(bytes),
        count(allocations)
    )
}

/// The text tree: each type, then its `lines` biggest lines.
pub fn render_tree(groups: &[TypeGroup], lines: usize, out: &mut impl Write) -> io::Result<()> {
    let total: u64 = groups.iter().map(|g| g.bytes).sum();
    for g in groups {
        writeln!(
            out,
            "{:>10} {:>6}  {:>9} objects  {}",
            size(g.bytes),
            share(g.bytes, total),
            count(g.objects),
            g.name
        )?;
        for l in g.lines.iter().take(lines) {
            writeln!(
                out,
                "  └ {:>10} {:>9} allocations  {}",
                size(l.bytes),
                count(l.allocations),
                l.location
            )?;
        }
        if g.lines.len() > lines {
            writeln!(out, "  └ … {} more lines", g.lines.len() - lines)?;
        }
    }
    Ok(())
}

/// The type column's least and greatest width (a longer name is shortened in its middle).
const TYPE_WIDTH: usize = 32;
const MAX_TYPE_WIDTH: usize = 56;

/// The text table: one row per (type, line), the most bytes first.
pub fn render_table(groups: &[TypeGroup], top: usize, out: &mut impl Write) -> io::Result<()> {
    let mut rows: Vec<(&TypeGroup, &TypeLine)> = groups
        .iter()
        .flat_map(|g| g.lines.iter().map(move |l| (g, l)))
        .collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.1.bytes));
    let longest = rows
        .iter()
        .take(top)
        .map(|(g, _)| g.name.chars().count())
        .max()
        .unwrap_or(0);
    let width = longest.clamp(TYPE_WIDTH, MAX_TYPE_WIDTH);
    writeln!(
        out,
        "{:>10} {:>12}  {:<width$} LINE",
        "BYTES", "ALLOCATIONS", "TYPE"
    )?;
    for (g, l) in rows.iter().take(top) {
        writeln!(
            out,
            "{:>10} {:>12}  {:<width$} {}",
            size(l.bytes),
            count(l.allocations),
            super::types::fitted(&g.name, width),
            l.location
        )?;
    }
    if rows.len() > top {
        writeln!(out, "… {} more rows (-n to see more)", rows.len() - top)?;
    }
    Ok(())
}

fn share(part: u64, whole: u64) -> String {
    if whole == 0 {
        "-".to_string()
    } else {
        format!("{:.1}%", 100.0 * part as f64 / whole as f64)
    }
}
