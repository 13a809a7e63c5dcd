//! A process family: the process `memtrace run` started and every descendant it followed
//! (`--follow-fork`), found from the root capture alone. Each capture's child records
//! (memtrace_format::family) name the processes it started; a child's capture is
//! `<root capture>.<pid>` and an exec'd image's `<that>.exec<N>` (capture::exec). Captures of
//! the family found beside the root that no record names (a child started by libc's `system`)
//! join it too, under the parent their header names.
//!
//! - [`discover`]: the processes and their captures
//! - [`measure`]: each process read (in parallel) and the combined peak ([`combined`])
//! - [`report`]: what `stats` shows of a family
//! - [`view`]: the family's call tree (tree, summary, export); [`page`]: its interactive page

pub mod combined;
pub mod grid;
pub mod page;
pub mod report;
pub mod view;

use crate::capture::scan;
use crate::capture::{exec, family as records, Capture};
use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};

/// One process of a family.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Process {
    pub pid: u32,
    pub parent_pid: u32,
    /// What the process runs: its last image's command line (an exec'd child shows the program
    /// it became), or the command its parent recorded when it has no capture.
    pub command: String,
    /// When it started (realtime ns since the epoch; 0 when unknown).
    pub start_realtime_ns: u64,
    /// Its captures, one per image, in order; empty when it was not tracked (no --follow-fork).
    pub captures: Vec<PathBuf>,
    /// How its parent started it (`memtrace_format::family::how`); None when no child record
    /// names it (the root, a child libc started).
    pub how: Option<u64>,
}

impl Process {
    /// `pid 123: python3 worker.py`: how a report names the process (its outermost frame).
    pub fn label(&self) -> String {
        format!("pid {}: {}", self.pid, short_command(&self.command))
    }

    pub fn tracked(&self) -> bool {
        !self.captures.is_empty()
    }
}

/// A command cut to a length a frame name can show.
fn short_command(command: &str) -> String {
    const MAX: usize = 80;
    if command.chars().count() <= MAX {
        return command.to_string();
    }
    let cut: String = command.chars().take(MAX - 3).collect();
    format!("{cut}...")
}

/// A family: the root process first, then the others in the order they were found (parents
/// before their children).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Family {
    pub root: PathBuf,
    pub processes: Vec<Process>,
    /// The run followed children (--follow-fork): a child without a capture was to have one.
    pub followed: bool,
}

impl Family {
    /// The process `pid`, if it is in the family.
    pub fn process(&self, pid: u32) -> Option<&Process> {
        self.processes.iter().find(|p| p.pid == pid)
    }

    /// More than the root process.
    pub fn has_children(&self) -> bool {
        self.processes.len() > 1
    }

    /// Why process `p`, which has no capture, has none: what a report says after "process
    /// PID ".
    pub fn no_capture_reason(&self, p: &Process) -> String {
        if !self.followed {
            return "was not tracked (run with --follow-fork to track children)".to_string();
        }
        let path = child_capture(&self.root, p.pid);
        match p.how {
            Some(memtrace_format::family::how::FORK) => format!(
                "has no capture: {} was not written (see what memtrace said during the run) or was removed",
                path.display()
            ),
            _ => format!(
                "has no capture: the program it ran was not tracked (its exec failed, or it cannot be, as a static program) or {} was removed",
                path.display()
            ),
        }
    }
}

/// The capture of the family's process `pid` (its first image).
pub fn child_capture(root: &Path, pid: u32) -> PathBuf {
    let mut name = root.as_os_str().to_os_string();
    name.push(format!(".{pid}"));
    PathBuf::from(name)
}

/// The family of the capture at `root`. Errors (the root cannot be read) are the line to print.
pub fn discover(root: &Path) -> Result<Family, String> {
    let capture = Capture::open(root).map_err(|e| e.to_string())?;
    let index = scan::scan_capture(&capture);
    discover_read(root, &capture, &index)
}

/// [`discover`], the root capture already open and scanned (a report that read it).
pub fn discover_read(
    root: &Path,
    capture: &Capture,
    index: &scan::Index,
) -> Result<Family, String> {
    let header = &capture.header;
    let mut processes = vec![Process {
        pid: header.pid,
        parent_pid: header.ppid,
        command: String::new(),
        start_realtime_ns: header.start_realtime_ns,
        captures: Vec::new(),
        how: None,
    }];
    let mut by_pid: BTreeMap<u32, usize> = BTreeMap::from([(processes[0].pid, 0)]);
    let mut queue = VecDeque::from([(0usize, root.to_path_buf())]);
    while let Some((i, first)) = queue.pop_front() {
        let mut found = Vec::new();
        let images: Vec<PathBuf> = if i == 0 {
            // The root as read: its chain goes on only if it exec'd.
            found.extend(records::children(capture.bytes(), index));
            processes[0].command = capture.argv().join(" ");
            let mut images = vec![first.clone()];
            if let Some(next) = exec::of(&first, capture.bytes(), index).map(|e| e.next) {
                if next.is_file() {
                    images.extend(exec::chain(&next).into_iter().map(|(p, _)| p));
                }
            }
            images
        } else {
            exec::chain(&first).into_iter().map(|(p, _)| p).collect()
        };
        let skip = usize::from(i == 0);
        for image in images.iter().skip(skip) {
            let Ok(c) = Capture::open(image) else {
                continue;
            };
            let index = scan::scan_capture(&c);
            found.extend(records::children(c.bytes(), &index));
            processes[i].command = c.argv().join(" ");
        }
        processes[i].captures = images;
        for child in found {
            let r = child.record;
            if by_pid.contains_key(&r.pid) || processes.len() >= MAX_PROCESSES {
                continue;
            }
            let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
            let command = if r.argv.is_empty() {
                text(&r.program)
            } else {
                r.argv.iter().map(|a| text(a)).collect::<Vec<_>>().join(" ")
            };
            by_pid.insert(r.pid, processes.len());
            processes.push(Process {
                pid: r.pid,
                parent_pid: r.parent_pid,
                command,
                start_realtime_ns: r.start_realtime_ns,
                captures: Vec::new(),
                how: Some(r.how),
            });
            let path = child_capture(root, r.pid);
            if path.is_file() {
                queue.push_back((processes.len() - 1, path));
            }
        }
        if queue.is_empty() {
            // Captures of the family that no record named.
            for (pid, path) in unnamed_captures(root, &by_pid) {
                let Ok(c) = Capture::open(&path) else {
                    continue;
                };
                by_pid.insert(pid, processes.len());
                processes.push(Process {
                    pid,
                    parent_pid: c.header.ppid,
                    command: c.argv().join(" "),
                    start_realtime_ns: c.header.start_realtime_ns,
                    captures: Vec::new(),
                    how: None,
                });
                queue.push_back((processes.len() - 1, path));
            }
        }
    }
    Ok(Family {
        root: root.to_path_buf(),
        processes,
        followed: header.options & memtrace_format::options::FOLLOW_FORK != 0,
    })
}

/// Whether a child capture (`<root>.<pid>`) lies beside `root`: without one the family has no
/// tracked child, and a report need not read the root's child records.
pub fn has_child_captures(root: &Path) -> bool {
    !unnamed_captures(root, &BTreeMap::new()).is_empty()
}

/// A family has at most this many processes (a fork bomb's capture stays reportable).
const MAX_PROCESSES: usize = 4096;

/// `<root>.<pid>` files beside the root whose pid is not in `known`.
fn unnamed_captures(root: &Path, known: &BTreeMap<u32, usize>) -> Vec<(u32, PathBuf)> {
    let Some(name) = root.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return Vec::new();
    };
    let dir = match root.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let prefix = format!("{name}.");
    let mut out: Vec<(u32, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let file = e.file_name().to_string_lossy().into_owned();
            let pid: u32 = file.strip_prefix(&prefix)?.parse().ok()?;
            (!known.contains_key(&pid)).then(|| (pid, child_capture(root, pid)))
        })
        .collect();
    out.sort();
    out
}

/// How many of the children the capture at `path` recorded (in all its images) are Python
/// interpreters: an exec'd program called `python*`, or a fork of a process that is Python
/// (`python_parent`). For the hint after a run without --follow-fork.
pub fn python_children(path: &Path, python_parent: bool) -> usize {
    let is_python = |program: &[u8]| {
        let name = program.rsplit(|&b| b == b'/').next().unwrap_or(program);
        name.starts_with(b"python")
    };
    let mut pids = std::collections::BTreeSet::new();
    for (image, _) in exec::chain(path) {
        let Ok(c) = Capture::open(&image) else {
            continue;
        };
        let index = scan::scan_capture(&c);
        for child in records::children(c.bytes(), &index) {
            let r = &child.record;
            let python = if r.how == memtrace_format::family::how::FORK {
                python_parent
            } else {
                is_python(&r.program) || r.argv.first().is_some_and(|a| is_python(a))
            };
            if python {
                pids.insert(r.pid);
            }
        }
    }
    pids.len()
}
