//! "Of what type": the stats report's table of Python object types (type, objects, bytes), as
//! pympler's summary prints it, from the types of the blocks live at exit
//! (analysis::objects). Only the exit is covered, on every CPython 3.10-3.13: the tracker walks
//! the live objects when the script finishes and records no types at the peak.

use super::human::{count, size};
use crate::analysis::objects::{ExitTypes, NO_OBJECT};
use crate::analysis::Analysis;
use serde::Serialize;
use std::io::{self, Write};

/// What the types cover, in words (the same in JSON and text).
pub const COVERAGE: &str =
    "exit only: the objects live when the script finished, walked on every CPython 3.10-3.13; no types at the peak";

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
    /// Live at the peak: null, the tracker records no types there.
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

/// The types table of an analysis, None without types.
pub fn report(analysis: &Analysis) -> Option<TypesReport> {
    analysis.types.as_ref().map(|t| TypesReport {
        exit: exit_entries(t),
        peak: None,
        covered: COVERAGE,
    })
}

/// The text table: the `top` types with the most bytes, and "<no object>".
pub fn render(r: &TypesReport, top: usize, out: &mut impl Write) -> io::Result<()> {
    writeln!(out, "Types live at exit ({}):", r.covered)?;
    writeln!(out, "  {:<40} {:>12} {:>12}", "TYPE", "OBJECTS", "BYTES")?;
    let (objects, rest): (Vec<&TypeEntry>, Vec<&TypeEntry>) =
        r.exit.iter().partition(|e| e.name != NO_OBJECT);
    let shown = objects.len().min(top.max(1));
    for e in objects[..shown].iter().chain(rest.iter()) {
        writeln!(
            out,
            "  {:<40} {:>12} {:>12}",
            e.name,
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
