//! "Of what type": the stats report's tables of Python object types (type, objects, bytes), as
//! pympler's summary prints them, from the types of the blocks live at the peak and at exit
//! (analysis::objects). The exit is covered on every CPython 3.10-3.13 (the tracker walks the
//! live objects when the script finishes); the peak too, on the same versions, when the
//! capture has typed frees (`memtrace run` with types on, the default).

use super::human::{count, size};
use crate::analysis::objects::{ExitTypes, NO_OBJECT};
use crate::analysis::Analysis;
use serde::Serialize;
use std::io::{self, Write};

/// What the types cover, in words (the same in JSON and text), for a capture without typed
/// frees.
pub const COVERAGE: &str =
    "exit only: the objects live when the script finished, walked on every CPython 3.10-3.13; no types at the peak (this capture has no typed frees: --no-types or the in-process Tracker)";
/// What the types cover in a capture without the Python allocators' events.
pub const COVERAGE_NO_PYTHON_ALLOCATORS: &str =
    "exit only, and only objects in blocks of their own: this capture has no events of the Python allocators (--no-python-allocators), so the objects pymalloc keeps inside its arenas (most small objects) are in no block it knows and are not counted; no types at the peak";
/// What the types cover with typed frees.
pub const COVERAGE_PEAK: &str =
    "peak and exit, CPython 3.10-3.13: at the peak each block's type as its free or the walk at the script's end named it; at exit the objects live when the script finished";

/// One type's row. Field names are the JSON keys.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TypeEntry {
    #[serde(rename = "type")]
    pub name: String,
    /// Objects of the type (for "<no object>": blocks with no object in them).
    pub objects: u64,
    /// Bytes of the blocks holding them.
    pub bytes: u64,
}

/// The types table of a capture; null in JSON for a capture without types.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TypesReport {
    /// Live at exit, the most bytes first, "<no object>" last (blocks no object was found in:
    /// item arrays, dict keys, buffers, native memory).
    pub exit: Vec<TypeEntry>,
    /// Live at the peak, as `exit`; null for a capture without typed frees.
    pub peak: Option<Vec<TypeEntry>>,
    /// What is covered (see [`COVERAGE`]).
    pub covered: &'static str,
}

/// Rows of the exit's types, "<no object>" last (when it has bytes).
pub fn exit_entries(t: &ExitTypes) -> Vec<TypeEntry> {
    let mut rows: Vec<TypeEntry> = t
        .rows
        .iter()
        .map(|r| TypeEntry {
            name: r.name.clone(),
            objects: r.objects,
            bytes: r.blocks.bytes,
        })
        .collect();
    if t.untyped.count > 0 || t.untyped.bytes > 0 {
        rows.push(TypeEntry {
            name: NO_OBJECT.to_string(),
            objects: t.untyped.count,
            bytes: t.untyped.bytes,
        });
    }
    rows
}

/// Why a Python run's capture has no types: its script did not finish (the walk of the live
/// objects runs when it does), or they were not asked for. None for a capture with types and
/// for other programs.
pub fn missing(analysis: &Analysis) -> Option<&'static str> {
    if analysis.types.is_some() || analysis.replay.script_start.is_none() {
        return None;
    }
    Some(if analysis.index.settings.aggregate {
        "an aggregated capture (--aggregate) keeps sums per stack, not the blocks objects are in"
    } else if analysis.replay.exit.is_none() {
        "the script did not finish (os._exit, a fatal signal or a kill): the objects are walked when it does"
    } else {
        "not recorded (--no-types, or a Tracker without object_types=True)"
    })
}

/// What the types of a capture cover, in words (the stats table's and the page's): the peak
/// too when it has typed frees; exit only, and without pymalloc's objects when it has no
/// events of the Python allocators (the capture's options say).
pub fn coverage(analysis: &Analysis, options: u64) -> &'static str {
    if analysis.peak_types.is_some() {
        COVERAGE_PEAK
    } else if options & memtrace_format::options::PYTHON_ALLOCATORS != 0 {
        COVERAGE
    } else {
        COVERAGE_NO_PYTHON_ALLOCATORS
    }
}

/// The types table of an analysis, None without types; `options`: the capture's header
/// options.
pub fn report(analysis: &Analysis, options: u64) -> Option<TypesReport> {
    analysis.types.as_ref().map(|t| TypesReport {
        exit: exit_entries(t),
        covered: coverage(analysis, options),
        peak: analysis.peak_types.as_ref().map(exit_entries),
    })
}

/// The text tables (the peak's, when known, then the exit's): the `top` types with the most
/// bytes, and "<no object>".
pub fn render(r: &TypesReport, top: usize, out: &mut impl Write) -> io::Result<()> {
    if let Some(peak) = &r.peak {
        writeln!(out, "Types live at the peak ({}):", r.covered)?;
        render_rows(peak, top, out)?;
        writeln!(out)?;
        writeln!(out, "Types live at exit:")?;
    } else {
        writeln!(out, "Types live at exit ({}):", r.covered)?;
    }
    render_rows(&r.exit, top, out)
}

/// The type column's least and greatest width, in characters: a longer name (a class made in a
/// nested function: `__main__.build.<locals>.Record`) is shortened in its middle.
const NAME_WIDTH: usize = 40;
const MAX_NAME_WIDTH: usize = 72;

/// `name` in at most `width` characters: its start and its end (the class's own name) around
/// an ellipsis.
pub(crate) fn fitted(name: &str, width: usize) -> String {
    let chars: Vec<char> = name.chars().collect();
    if chars.len() <= width {
        return name.to_string();
    }
    let tail = (width - 1) * 2 / 3;
    let head = width - 1 - tail;
    let mut s: String = chars[..head].iter().collect();
    s.push('…');
    s.extend(&chars[chars.len() - tail..]);
    s
}

fn render_rows(entries: &[TypeEntry], top: usize, out: &mut impl Write) -> io::Result<()> {
    let (objects, rest): (Vec<&TypeEntry>, Vec<&TypeEntry>) =
        entries.iter().partition(|e| e.name != NO_OBJECT);
    let shown = objects.len().min(top.max(1));
    let rows = || objects[..shown].iter().chain(rest.iter());
    let longest = rows().map(|e| e.name.chars().count()).max().unwrap_or(0);
    let width = longest.clamp(NAME_WIDTH, MAX_NAME_WIDTH);
    writeln!(
        out,
        "  {:<width$} {:>12} {:>12}",
        "TYPE", "OBJECTS", "BYTES"
    )?;
    for e in rows() {
        writeln!(
            out,
            "  {:<width$} {:>12} {:>12}",
            fitted(&e.name, width),
            count(e.objects),
            size(e.bytes)
        )?;
    }
    if objects.len() > shown {
        let more = &objects[shown..];
        writeln!(
            out,
            "  ({} more types: {} objects, {}; --json lists them all)",
            more.len(),
            count(more.iter().map(|e| e.objects).sum()),
            size(more.iter().map(|e| e.bytes).sum())
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::fitted;

    #[test]
    fn a_long_name_keeps_its_start_and_its_class() {
        assert_eq!(fitted("__main__.Pair", 40), "__main__.Pair");
        let long = "__main__.a_function_with_a_long_name.<locals>.AClassWithALongNameIndeed";
        let f = fitted(long, 40);
        assert_eq!(f.chars().count(), 40);
        assert_eq!(f, "__main__.a_fu….AClassWithALongNameIndeed");
        // Characters, not bytes.
        assert_eq!(fitted("ééééé", 4), "é…éé");
    }
}
