//! The memory of each Python source line (`memtrace lines`): every line on a stack is charged
//! with the stack's allocations, so a line's figures hold what it allocated directly and through
//! the functions it called (once per stack, however often the line recurs in it).

use super::views::Selection;
use crate::analysis::sets::AllocSet;
use crate::analysis::tables::{Frame, Tables};
use crate::analysis::totals::Sum;
use crate::analysis::Analysis;
use hashbrown::HashMap;
use std::collections::BTreeMap;

/// The memory a line holds in each of the report's columns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LineMemory {
    /// The view's bytes and allocations (live at the peak, live at exit or temporary).
    pub view: Sum,
    /// Everything allocated, freed or not.
    pub allocated: Sum,
    /// Live at exit.
    pub exit: Sum,
}

impl LineMemory {
    pub fn is_empty(&self) -> bool {
        self.view.count == 0 && self.allocated.count == 0 && self.exit.count == 0
    }
}

/// One source file's lines with memory, by line number.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FileMemory {
    pub file: String,
    pub lines: BTreeMap<u64, LineMemory>,
    /// What compiling the file (the script's `<compile>` frame, line 0: no line of its text)
    /// allocated, apart from its lines.
    pub compile: LineMemory,
    /// The functions whose frames stood at each line (for `--function`).
    pub functions: BTreeMap<u64, Vec<String>>,
}

impl FileMemory {
    /// The most view bytes any line of the file holds (files are listed by it).
    pub fn top_bytes(&self) -> u64 {
        self.lines.values().map(|l| l.view.bytes).max().unwrap_or(0)
    }
}

/// Picks one column's figures out of a line's.
type Column = fn(&mut LineMemory) -> &mut Sum;

/// Which Python frames count.
#[derive(Clone, Copy, Debug, Default)]
pub struct LineFilter<'a> {
    /// Only frames of this function (`--function NAME`, a bare or qualified name).
    pub function: Option<&'a str>,
}

/// Every Python line with memory, by file, the file with the largest line first. Empty when the
/// capture has no Python frames.
pub fn by_line(analysis: &Analysis, selection: &Selection, filter: LineFilter) -> Vec<FileMemory> {
    let tables = &analysis.tables;
    let keep = |set: AllocSet| match &selection.threads {
        Some(kept) => set.filter_threads(|t| kept.contains(&t)),
        None => set,
    };
    let columns: [(AllocSet, Column); 3] = [
        (selection.set.clone(), |m| &mut m.view),
        (keep(analysis.all_set()), |m| &mut m.allocated),
        (keep(analysis.replay.exit_set()), |m| &mut m.exit),
    ];
    let mut lines_of: HashMap<u64, Vec<(u64, u64, u64)>> = HashMap::new();
    let mut by_file: HashMap<u64, FileMemory> = HashMap::new();
    for (set, column) in columns {
        for (stack, sum) in set.by_stack() {
            let lines = lines_of
                .entry(stack)
                .or_insert_with(|| python_lines(tables, stack, filter));
            for &(file, line, function) in lines.iter() {
                let f = by_file.entry(file).or_default();
                let m = f.lines.entry(line).or_default();
                let s = column(m);
                s.bytes += sum.bytes;
                s.count += sum.count;
                let name = tables.string(function).unwrap_or_default();
                let names = f.functions.entry(line).or_default();
                if !names.contains(&name) {
                    names.push(name);
                }
            }
        }
    }
    // Two string ids may name one file (a capture that continues after an exec): merge by name.
    let mut named: BTreeMap<String, FileMemory> = BTreeMap::new();
    for (id, f) in by_file {
        let name = tables.string(id).unwrap_or_else(|| "<unknown file>".into());
        let into = named.entry(name.clone()).or_insert_with(|| FileMemory {
            file: name,
            ..FileMemory::default()
        });
        for (line, m) in f.lines {
            let e = into.lines.entry(line).or_default();
            for (a, b) in [
                (&mut e.view, m.view),
                (&mut e.allocated, m.allocated),
                (&mut e.exit, m.exit),
            ] {
                a.bytes += b.bytes;
                a.count += b.count;
            }
        }
        for (line, names) in f.functions {
            let e = into.functions.entry(line).or_default();
            for n in names {
                if !e.contains(&n) {
                    e.push(n);
                }
            }
        }
    }
    let mut files: Vec<FileMemory> = named.into_values().collect();
    for f in &mut files {
        if let Some(compile) = f.lines.remove(&0) {
            f.compile = compile;
            f.functions.remove(&0);
        }
    }
    files.sort_by(|a, b| b.top_bytes().cmp(&a.top_bytes()).then(a.file.cmp(&b.file)));
    files
}

/// The distinct (file, line, function) string ids of a stack's Python frames, outermost first.
fn python_lines(tables: &Tables, stack: u64, filter: LineFilter) -> Vec<(u64, u64, u64)> {
    let mut out: Vec<(u64, u64, u64)> = Vec::new();
    for frame in tables.walk(stack) {
        let Frame::Python {
            function,
            file,
            line,
        } = frame
        else {
            continue;
        };
        if let Some(wanted) = filter.function {
            let name = tables.string(function).unwrap_or_default();
            if !function_matches(&name, wanted) {
                continue;
            }
        }
        if !out.iter().any(|&(f, l, _)| f == file && l == line) {
            out.push((file, line, function));
        }
    }
    out.reverse();
    out
}

/// Whether a frame's function name is the one asked for: the same, or its last dotted part
/// (Python 3.11+ records qualified names such as `Class.method`).
pub fn function_matches(name: &str, wanted: &str) -> bool {
    name == wanted || (!wanted.contains('.') && name.rsplit('.').next() == Some(wanted))
}

/// Whether the capture has Python frames at all.
pub fn has_python_frames(tables: &Tables) -> bool {
    tables
        .frames
        .values()
        .any(|f| matches!(f, Frame::Python { .. }))
}

/// Whether a file belongs to the Python installation or its packages rather than to the
/// program: the default listing leaves these out.
pub fn is_library_file(path: &str) -> bool {
    let versioned_lib = path.contains("/lib")
        && path.split('/').any(|part| {
            part.strip_prefix("python3")
                .and_then(|v| v.strip_prefix('.'))
                .is_some_and(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
        });
    path.starts_with("<frozen")
        || path.contains("/site-packages/")
        || path.contains("/dist-packages/")
        || versioned_lib
}

/// The lines of the function defined on or before `line` of `source` under the name `name`:
/// from its `def` (decorators included) to its last indented line. None when no such `def`
/// encloses the line.
pub fn function_span(source: &[&str], name: &str, line: u64) -> Option<(u64, u64)> {
    let short = name.rsplit('.').next().unwrap_or(name);
    let at = (line as usize).min(source.len());
    for start in (1..=at).rev() {
        let text = source[start - 1];
        let trimmed = text.trim_start();
        let def = trimmed
            .strip_prefix("async ")
            .unwrap_or(trimmed)
            .strip_prefix("def ");
        let Some(rest) = def else { continue };
        if !rest.starts_with(short) || !rest[short.len()..].trim_start().starts_with('(') {
            continue;
        }
        let indent = text.len() - trimmed.len();
        let mut end = start;
        for (i, t) in source.iter().enumerate().skip(start) {
            if t.trim().is_empty() {
                continue;
            }
            if t.len() - t.trim_start().len() <= indent {
                break;
            }
            end = i + 1;
        }
        if (end as u64) < line {
            return None;
        }
        let mut first = start;
        while first > 1 && source[first - 2].trim_start().starts_with('@') {
            first -= 1;
        }
        return Some((first as u64, end as u64));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_function_span_runs_from_its_decorators_to_its_last_indented_line() {
        let src = [
            "import x",         // 1
            "",                 // 2
            "@cache",           // 3
            "def f(a):",        // 4
            "    b = [a] * 10", // 5
            "",                 // 6
            "    return b",     // 7
            "def g():",         // 8
            "    pass",         // 9
        ];
        assert_eq!(function_span(&src, "f", 5), Some((3, 7)));
        assert_eq!(function_span(&src, "f", 7), Some((3, 7)));
        assert_eq!(function_span(&src, "g", 9), Some((8, 9)));
        assert_eq!(function_span(&src, "g", 5), None);
        assert_eq!(function_span(&src, "C.f", 5), Some((3, 7)));
    }

    #[test]
    fn library_files_are_told_from_the_programs() {
        assert!(is_library_file("/usr/lib/python3.11/json/decoder.py"));
        assert!(is_library_file(
            "/root/.pyenv/versions/3.12.1/lib/python3.12/re/_parser.py"
        ));
        assert!(is_library_file(
            "/x/venv/lib/python3.11/site-packages/numpy/core.py"
        ));
        assert!(is_library_file("<frozen importlib._bootstrap>"));
        assert!(!is_library_file("/home/me/project/app.py"));
        assert!(!is_library_file("/home/me/python3/app.py"));
        assert!(!is_library_file("<string>"));
    }

    #[test]
    fn qualified_names_match_their_last_part() {
        assert!(function_matches("build", "build"));
        assert!(function_matches("Store.build", "build"));
        assert!(function_matches("Store.build", "Store.build"));
        assert!(!function_matches("Store.build", "Other.build"));
        assert!(!function_matches("rebuild", "build"));
    }
}
