//! Captures that end with an exec: the image replaced itself with another program, recorded in
//! another capture. The exec record (memtrace_format::exec) says which program and where; it
//! counts only when the trailer carries the EXEC flag (a failed exec leaves a record behind and
//! the capture goes on).

use super::scan::Index;
use super::Capture;
use memtrace_format::exec::{self as record, ExecRecord};
use memtrace_format::trailer_flags;
use std::path::{Path, PathBuf};

/// The program an image exec'd, and its capture.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exec {
    /// The file given to exec.
    pub program: String,
    /// The new program's arguments (cut if very long).
    pub argv: Vec<String>,
    /// The next image's capture: beside this capture when it is there (captures moved
    /// together), else where the tracker wrote it.
    pub next: PathBuf,
}

impl Exec {
    /// The command, its arguments joined by spaces.
    pub fn command(&self) -> String {
        if self.argv.is_empty() {
            self.program.clone()
        } else {
            self.argv.join(" ")
        }
    }
}

/// The exec that ended the capture at `path` (whose bytes and index are given), if it ended
/// with one.
pub fn of(path: &Path, bytes: &[u8], index: &Index) -> Option<Exec> {
    let flags = index.trailer.as_ref()?.flags;
    if flags & trailer_flags::EXEC == 0 {
        return None;
    }
    let rec: ExecRecord = index
        .meta_extended(bytes, record::EXEC_KIND)
        .filter_map(|(_, payload)| record::decode(payload))
        .last()?;
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let recorded = PathBuf::from(text(&rec.next));
    let beside = recorded.file_name().map(|n| path.with_file_name(n));
    let next = match beside {
        Some(b) if b.exists() => b,
        _ => recorded,
    };
    Some(Exec {
        program: text(&rec.program),
        argv: rec.argv.iter().map(|a| text(a)).collect(),
        next,
    })
}

/// The captures of a process that exec'd, from `first`: each (capture, the exec that ended it),
/// the last one with None (it did not exec, or its exec's capture is missing or unreadable).
pub fn chain(first: &Path) -> Vec<(PathBuf, Option<Exec>)> {
    let mut out: Vec<(PathBuf, Option<Exec>)> = Vec::new();
    let mut path = first.to_path_buf();
    // Bounded: a chain that comes back to a capture it saw ends there.
    while out.len() < 1000 && !out.iter().any(|(p, _)| *p == path) {
        let exec = Capture::open(&path).ok().and_then(|c| {
            let index = super::scan::scan_capture(&c);
            of(&path, c.bytes(), &index)
        });
        let next = exec.as_ref().map(|e| e.next.clone());
        out.push((path, exec));
        match next {
            Some(n) if n.is_file() => path = n,
            _ => break,
        }
    }
    out
}
