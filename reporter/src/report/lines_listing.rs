//! The annotated source listing of `memtrace lines`: each file's lines with memory, with a few
//! lines of context around them (as `diff -U` does) or every line, in the layout of
//! memory_profiler's table. Also the JSON form and the flat list sorted by a column.

use super::human::{count, size};
use super::lines::{function_matches, function_span, FileMemory, LineMemory};
use serde::Serialize;
use std::io::{self, Write};
use std::path::Path;
use std::time::{Duration, SystemTime};

/// Lines of context shown around a line with memory.
pub const CONTEXT: u64 = 3;

/// A file's source as it is now.
#[derive(Clone, Debug, Default)]
pub struct Source {
    /// Its lines; None when the file cannot be read (gone, or not a file: `<string>`).
    pub lines: Option<Vec<String>>,
    /// Modified after the capture started: its lines may not be those that ran.
    pub changed: bool,
}

impl Source {
    /// Reads `file` and compares its modification time with the run's start (`started`).
    pub fn read(file: &str, started: SystemTime) -> Source {
        // A name that is not UTF-8 was recorded with `\xNN` escapes: its own bytes first.
        let unescaped = crate::analysis::escaped::unescape(file);
        let read = |p: &std::ffi::OsStr| super::source_file::read(Path::new(p));
        let (path, bytes) = match unescaped.as_deref().map(|p| (Path::new(p), read(p))) {
            Some((p, Some(bytes))) => (p, bytes),
            _ => match read(file.as_ref()) {
                Some(bytes) => (Path::new(file), bytes),
                None => return Source::default(),
            },
        };
        let changed = std::fs::metadata(path)
            .and_then(|m| m.modified())
            .is_ok_and(|m| m > started);
        Source {
            lines: Some(super::source_file::lines(&bytes)),
            changed,
        }
    }

    /// The code of a `-c` run, for the file `<string>`.
    pub fn code(code: &str) -> Source {
        Source {
            lines: Some(code.lines().map(str::to_string).collect()),
            changed: false,
        }
    }

    fn line(&self, n: u64) -> Option<&str> {
        let lines = self.lines.as_ref()?;
        lines.get((n as usize).checked_sub(1)?).map(String::as_str)
    }
}

/// The run's start as a time of day, from the capture header's nanoseconds.
pub fn started_at(start_realtime_ns: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_nanos(start_realtime_ns)
}

/// What the listing shows.
#[derive(Clone, Debug)]
pub struct Listing<'a> {
    /// The name of the view's column: `Peak`, `Leaked`, `Temporary`, `All`.
    pub view_column: &'a str,
    /// The view's figure in words, for a sentence: `at the peak`, `leaked`, ...
    pub view_words: &'a str,
    /// The name of the last column: `At exit` (the capture has an exit snapshot), else `At end`
    /// (a killed program's, a Tracker's: as stats says "Live at end").
    pub end_column: &'a str,
    /// Every line of each file, not only those with memory and their context.
    pub all: bool,
    /// Only the lines of this function (the whole function is shown).
    pub function: Option<&'a str>,
}

const HEADER_WIDTH: usize = 78;

/// Writes the listing of `files` (with their sources, in the same order).
pub fn write_text(
    out: &mut impl Write,
    files: &[(FileMemory, Source)],
    listing: &Listing,
) -> io::Result<()> {
    for (i, (file, source)) in files.iter().enumerate() {
        if i > 0 {
            writeln!(out)?;
        }
        write_file(out, file, source, listing)?;
    }
    Ok(())
}

fn write_file(
    out: &mut impl Write,
    file: &FileMemory,
    source: &Source,
    listing: &Listing,
) -> io::Result<()> {
    let note = match (&source.lines, source.changed) {
        (None, _) => "  (source not found: line numbers only)",
        (Some(_), true) => "  (changed since the run: lines may not match)",
        (Some(_), false) => "",
    };
    writeln!(out, "Filename: {}{note}", file.file)?;
    let compile = &file.compile;
    if !compile.is_empty() && listing.function.is_none() {
        writeln!(
            out,
            "Compiling it: {} {}, {} allocated (no line of its text holds it)",
            match compile.view.count {
                0 => "nothing".to_string(),
                _ => bytes_cell(compile.view.bytes, compile.view.count),
            },
            listing.view_words,
            bytes_cell(compile.allocated.bytes, compile.allocated.count),
        )?;
    }
    writeln!(out)?;
    writeln!(
        out,
        "{:>6}  {:>10}  {:>10}  {:>11}  {:>10}  Line Contents",
        "Line #", listing.view_column, "Allocated", "Allocations", listing.end_column
    )?;
    writeln!(out, "{}", "=".repeat(HEADER_WIDTH))?;
    let shown = shown_lines(file, source, listing);
    let mut last = None;
    for n in shown {
        if last.is_some_and(|l| n > l + 1) {
            writeln!(out, "{:>6}", "...")?;
        }
        last = Some(n);
        let text = source.line(n).unwrap_or("");
        match file.lines.get(&n).filter(|m| !m.is_empty()) {
            Some(m) => writeln!(
                out,
                "{n:>6}  {:>10}  {:>10}  {:>11}  {:>10}  {text}",
                bytes_cell(m.view.bytes, m.view.count),
                bytes_cell(m.allocated.bytes, m.allocated.count),
                if m.allocated.count == 0 {
                    String::new()
                } else {
                    count(m.allocated.count)
                },
                bytes_cell(m.exit.bytes, m.exit.count),
            )?,
            None => writeln!(
                out,
                "{n:>6}  {:>10}  {:>10}  {:>11}  {:>10}  {text}",
                "", "", "", ""
            )?,
        }
    }
    Ok(())
}

/// A size, or blank where there were no allocations (`0 B` stays for zero-byte ones).
fn bytes_cell(bytes: u64, allocations: u64) -> String {
    if allocations == 0 {
        String::new()
    } else {
        size(bytes)
    }
}

/// The line numbers to print, in order.
fn shown_lines(file: &FileMemory, source: &Source, listing: &Listing) -> Vec<u64> {
    let with_memory: Vec<u64> = file
        .lines
        .iter()
        .filter(|(_, m)| !m.is_empty())
        .map(|(&n, _)| n)
        .collect();
    let len = source.lines.as_ref().map(|l| l.len() as u64);
    if let (Some(name), Some(lines)) = (listing.function, source.lines.as_ref()) {
        let text: Vec<&str> = lines.iter().map(String::as_str).collect();
        let mut out = Vec::new();
        for &n in &with_memory {
            let ours = file
                .functions
                .get(&n)
                .is_some_and(|names| names.iter().any(|f| function_matches(f, name)));
            if !ours || out.contains(&n) {
                continue;
            }
            match function_span(&text, name, n) {
                Some((a, b)) => out.extend(a..=b),
                None => out.push(n),
            }
        }
        out.sort_unstable();
        out.dedup();
        return out;
    }
    match (listing.all, len) {
        (true, Some(len)) => (1..=len.max(with_memory.last().copied().unwrap_or(0))).collect(),
        _ => {
            let Some(len) = len else {
                return with_memory;
            };
            let mut out: Vec<u64> = Vec::new();
            for &n in &with_memory {
                let from = n.saturating_sub(CONTEXT).max(1);
                let to = (n + CONTEXT).min(len.max(n));
                for l in from..=to {
                    if out.last().is_none_or(|&last| l > last) {
                        out.push(l);
                    }
                }
            }
            out
        }
    }
}

/// One line in the JSON form.
#[derive(Serialize)]
pub struct JsonLine {
    pub line: u64,
    pub bytes: u64,
    pub allocations_live: u64,
    pub allocated_bytes: u64,
    pub allocations: u64,
    pub exit_bytes: u64,
    pub exit_allocations: u64,
    /// The source line, when the file could be read.
    pub text: Option<String>,
}

/// One file in the JSON form.
#[derive(Serialize)]
pub struct JsonFile {
    pub file: String,
    pub found: bool,
    pub changed: bool,
    pub lines: Vec<JsonLine>,
    /// What compiling the file allocated (no line of its text holds it; null when nothing).
    pub compile: Option<JsonLine>,
}

/// The JSON form of the files: every line with memory (of the function, with `--function`).
pub fn json_files(files: &[(FileMemory, Source)], listing: &Listing) -> Vec<JsonFile> {
    files
        .iter()
        .map(|(file, source)| JsonFile {
            file: file.file.clone(),
            found: source.lines.is_some(),
            changed: source.changed,
            lines: file
                .lines
                .iter()
                .filter(|(n, m)| !m.is_empty() && of_function(file, **n, listing))
                .map(|(&n, m)| json_line(n, m, source))
                .collect(),
            compile: (!file.compile.is_empty() && listing.function.is_none())
                .then(|| json_line(0, &file.compile, source)),
        })
        .collect()
}

fn of_function(file: &FileMemory, n: u64, listing: &Listing) -> bool {
    listing.function.is_none_or(|name| {
        file.functions
            .get(&n)
            .is_some_and(|names| names.iter().any(|f| function_matches(f, name)))
    })
}

fn json_line(n: u64, m: &LineMemory, source: &Source) -> JsonLine {
    JsonLine {
        line: n,
        bytes: m.view.bytes,
        allocations_live: m.view.count,
        allocated_bytes: m.allocated.bytes,
        allocations: m.allocated.count,
        exit_bytes: m.exit.bytes,
        exit_allocations: m.exit.count,
        text: source.line(n).map(str::to_string),
    }
}

/// What the flat list is sorted by (largest first).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineSort {
    /// The view's bytes.
    Bytes,
    Allocated,
    Allocations,
    Exit,
}

/// Every line with memory across the files, sorted by `by` (largest first), at most `top`.
pub fn write_sorted(
    out: &mut impl Write,
    files: &[(FileMemory, Source)],
    listing: &Listing,
    by: LineSort,
    top: usize,
) -> io::Result<()> {
    let mut rows: Vec<(u64, &FileMemory, &Source, u64, &LineMemory)> = Vec::new();
    for (file, source) in files {
        for (&n, m) in &file.lines {
            if m.is_empty() || !of_function(file, n, listing) {
                continue;
            }
            let key = match by {
                LineSort::Bytes => m.view.bytes,
                LineSort::Allocated => m.allocated.bytes,
                LineSort::Allocations => m.allocated.count,
                LineSort::Exit => m.exit.bytes,
            };
            rows.push((key, file, source, n, m));
        }
    }
    rows.sort_by(|a, b| {
        b.0.cmp(&a.0)
            .then(a.1.file.cmp(&b.1.file))
            .then(a.3.cmp(&b.3))
    });
    writeln!(
        out,
        "{:>10}  {:>10}  {:>11}  {:>10}  Location and line",
        listing.view_column, "Allocated", "Allocations", listing.end_column
    )?;
    for (_, file, source, n, m) in rows.into_iter().take(top) {
        writeln!(
            out,
            "{:>10}  {:>10}  {:>11}  {:>10}  {}:{n}  {}",
            bytes_cell(m.view.bytes, m.view.count),
            bytes_cell(m.allocated.bytes, m.allocated.count),
            count(m.allocated.count),
            bytes_cell(m.exit.bytes, m.exit.count),
            file.file,
            source.line(n).map(str::trim).unwrap_or(""),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::totals::Sum;

    fn file(lines: &[(u64, u64)]) -> FileMemory {
        let mut f = FileMemory {
            file: "/p/a.py".into(),
            ..FileMemory::default()
        };
        for &(n, bytes) in lines {
            f.lines.insert(
                n,
                LineMemory {
                    view: Sum { count: 1, bytes },
                    allocated: Sum {
                        count: 2,
                        bytes: 2 * bytes,
                    },
                    exit: Sum::default(),
                },
            );
            f.functions.insert(n, vec!["f".into()]);
        }
        f
    }

    fn source(n: usize) -> Source {
        Source {
            lines: Some((1..=n).map(|i| format!("line {i}")).collect()),
            changed: false,
        }
    }

    const LISTING: Listing<'static> = Listing {
        view_column: "Peak",
        view_words: "at the peak",
        end_column: "At exit",
        all: false,
        function: None,
    };

    #[test]
    fn lines_with_memory_come_with_three_lines_of_context() {
        let f = file(&[(5, 10), (20, 30)]);
        assert_eq!(
            shown_lines(&f, &source(22), &LISTING),
            vec![2, 3, 4, 5, 6, 7, 8, 17, 18, 19, 20, 21, 22]
        );
        let all = Listing {
            all: true,
            ..LISTING
        };
        assert_eq!(
            shown_lines(&f, &source(22), &all),
            (1..=22).collect::<Vec<_>>()
        );
        // Without a source, only the lines with memory.
        assert_eq!(shown_lines(&f, &Source::default(), &LISTING), vec![5, 20]);
    }

    #[test]
    fn the_table_has_memory_profilers_columns_and_a_gap_marker() {
        let f = file(&[(2, 1536), (12, 4)]);
        let mut out = Vec::new();
        write_text(&mut out, &[(f, source(12))], &LISTING).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "Filename: /p/a.py");
        assert!(
            lines[2].starts_with(
                "Line #        Peak   Allocated  Allocations     At exit  Line Contents"
            ),
            "{text}"
        );
        assert_eq!(
            lines[4],
            "     1                                                   line 1"
        );
        assert_eq!(
            lines[5],
            "     2     1.5 KiB     3.0 KiB            2              line 2"
        );
        assert_eq!(lines[9], "   ...");
        assert_eq!(
            lines[10],
            "     9                                                   line 9"
        );
        assert_eq!(
            lines[13],
            "    12         4 B         8 B            2              line 12"
        );
    }
}
