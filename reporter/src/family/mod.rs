//! A process family: the process `memtrace run` started and every descendant it followed
//! (`--follow-fork`), found from the root capture alone. Each capture's child records
//! (memtrace_format::family) name the processes it started; a child's capture is
//! `<root capture>.<pid>` (`.<pid>.<k>` when that name was taken) and an exec'd image's
//! `<that>.exec<N>` (capture::exec). Captures of this run found beside the root that no record
//! names (a child started by libc's `system`) join it too, under the parent their header names;
//! captures beside it of another run are left out with a warning ([`beside`]). The capture a
//! report is given may be any image of any process of the run ([`root`] finds the run's root).
//!
//! - [`discover`]: the processes and their captures
//! - [`measure`]: each process read (in parallel) and the combined peak ([`combined`])
//! - [`report`]: what `stats` shows of a family
//! - [`view`]: the family's call tree (tree, summary, export); [`page`]: its interactive page

mod beside;
pub mod combined;
pub mod grid;
pub mod page;
pub mod report;
mod root;
pub mod view;

use crate::capture::scan;
use crate::capture::{exec, family as records, Capture};
use std::collections::VecDeque;
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
    /// Its parent's index in the family (None: the root). A pid may serve two processes of
    /// a run: the index tells them apart.
    pub parent: Option<usize>,
    /// Its last image exec'd a program that wrote no capture (set-user-ID, static, or its
    /// capture could not be written): that program's command. Its figures stop at the exec.
    pub exec_without_capture: Option<String>,
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

/// A command cut to a length a frame name (or a line) can show.
pub fn short_command(command: &str) -> String {
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
    /// Captures named after the root that were left out (another run's), one line each.
    pub warnings: Vec<String>,
}

impl Family {
    /// The process `pid`, if it is in the family.
    pub fn process(&self, pid: u32) -> Option<&Process> {
        self.processes.iter().find(|p| p.pid == pid)
    }

    /// The index of the process one of whose images is the capture at `path`.
    pub fn process_with_capture(&self, path: &Path) -> Option<usize> {
        self.processes
            .iter()
            .position(|p| p.captures.iter().any(|c| root::same_file(c, path)))
    }

    /// The family of process `i`: it and its descendants, it the root.
    pub fn subtree(mut self, i: usize) -> Family {
        if i == 0 {
            return self;
        }
        let mut new_index = vec![None; self.processes.len()];
        new_index[i] = Some(0);
        let mut processes = vec![Process {
            parent: None,
            ..self.processes[i].clone()
        }];
        // Parents come before their children.
        for (j, p) in self.processes.iter().enumerate().skip(i + 1) {
            if let Some(parent) = p.parent.and_then(|k| new_index[k]) {
                new_index[j] = Some(processes.len());
                processes.push(Process {
                    parent: Some(parent),
                    ..p.clone()
                });
            }
        }
        self.processes = processes;
        self
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
            Some(memtrace_format::family::how::FORK_IN_HANDLER) => {
                "was forked by a signal handler that interrupted the tracker: such a child records nothing".to_string()
            }
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

/// The capture of the family's process `pid` (its first image), as the tracker names it first:
/// `<root>.<pid>` (`<root>.<pid>.<k>` when that name was taken; [`beside`] finds it).
pub fn child_capture(root: &Path, pid: u32) -> PathBuf {
    let mut name = root.as_os_str().to_os_string();
    name.push(format!(".{pid}"));
    PathBuf::from(name)
}

/// The family of the capture at `path`. Errors (it cannot be read) are the line to print.
pub fn discover(path: &Path) -> Result<Family, String> {
    let capture = Capture::open(path).map_err(|e| e.to_string())?;
    let index = scan::scan_capture(&capture);
    discover_read(path, &capture, &index)
}

/// [`discover`], the capture already open and scanned (a report that read it).
///
/// The capture may be any image of any process of a run: children are named after the root
/// capture (the first image of the process `memtrace run` started), so the run is read from
/// there, and the family is that process's (all its images, its descendants).
pub fn discover_read(
    path: &Path,
    capture: &Capture,
    index: &scan::Index,
) -> Result<Family, String> {
    if let Some(family) = family_through_root(path, capture) {
        return Ok(family);
    }
    Ok(discover_run(path, capture, index))
}

/// The family of `path` when it is a later image, or a descendant's capture, of a run whose
/// root capture lies beside it.
fn family_through_root(path: &Path, capture: &Capture) -> Option<Family> {
    for root in root::candidates(path) {
        let Ok(rc) = Capture::open(&root) else {
            continue;
        };
        if !root::may_be_root_of(&rc.header, &capture.header) {
            continue;
        }
        let index = scan::scan_capture(&rc);
        let run = discover_run(&root, &rc, &index);
        if let Some(i) = run.process_with_capture(path) {
            return Some(run.subtree(i));
        }
    }
    None
}

/// The run whose root capture is `root`: its process (every image), the children each image
/// recorded with their captures ([`beside`]), theirs, and the captures of this run no record
/// names.
fn discover_run(root: &Path, capture: &Capture, index: &scan::Index) -> Family {
    let header = &capture.header;
    let mut beside = beside::Beside::read(root, header.start_realtime_ns);
    let mut processes = vec![Process {
        pid: header.pid,
        parent_pid: header.ppid,
        command: capture.argv().join(" "),
        start_realtime_ns: header.start_realtime_ns,
        captures: Vec::new(),
        how: None,
        parent: None,
        exec_without_capture: None,
    }];
    let mut queue = VecDeque::from([(0usize, root.to_path_buf())]);
    let mut copies = Vec::new();
    loop {
        while let Some((i, first)) = queue.pop_front() {
            let found = read_process(
                &mut processes[i],
                &first,
                (i == 0).then_some((capture, index)),
            );
            for child in found {
                if processes.len() >= MAX_PROCESSES || known(&processes, &child.record) {
                    continue;
                }
                let r = &child.record;
                let path = beside.take_for(r.pid, r.start_realtime_ns);
                processes.push(recorded_child(r, i));
                if let Some(path) = path {
                    queue.push_back((processes.len() - 1, path));
                }
            }
        }
        // Captures of this run that no record named, under their parent (which may be one of
        // them: again until none joins).
        let joined = beside.take_unnamed(|ppid, start| parent_index(&processes, ppid, start));
        if joined.is_empty() || processes.len() >= MAX_PROCESSES {
            break;
        }
        for (parent, path, h) in joined {
            // The same process again (pid and start): a copy of its capture (`x.<pid>.2` made
            // by the user), not another process.
            if processes.iter().any(|p| {
                p.pid == h.pid
                    && (p.start_realtime_ns == h.start_realtime_ns
                        || p.captures
                            .iter()
                            .any(|c| started_at(c, h.start_realtime_ns)))
            }) {
                copies.push(format!(
                    "{}: a copy of process {}'s capture: left out of the family",
                    path.display(),
                    h.pid
                ));
                continue;
            }
            processes.push(Process {
                pid: h.pid,
                parent_pid: h.ppid,
                command: h.command,
                start_realtime_ns: h.start_realtime_ns,
                captures: Vec::new(),
                how: None,
                parent: Some(parent),
                exec_without_capture: None,
            });
            queue.push_back((processes.len() - 1, path));
        }
    }
    Family {
        root: root.to_path_buf(),
        processes,
        followed: header.options & memtrace_format::options::FOLLOW_FORK != 0,
        warnings: beside.left_out().into_iter().chain(copies).collect(),
    }
}

/// Reads process `p`'s images from its first capture `first` (the root's already open: `open`):
/// its captures and command (its last image's), and the children its images recorded.
fn read_process(
    p: &mut Process,
    first: &Path,
    open: Option<(&Capture, &scan::Index)>,
) -> Vec<records::Child> {
    let mut found = Vec::new();
    // The last image's exec, if it made one.
    let last_exec;
    let images: Vec<PathBuf> = match open {
        Some((capture, index)) => {
            // The root as read: its chain goes on only if it exec'd.
            found.extend(records::children(capture.bytes(), index));
            let mut images = vec![first.to_path_buf()];
            let exec = exec::of(first, capture.bytes(), index);
            match exec.as_ref().map(|e| e.next.clone()) {
                Some(next) if next.is_file() => {
                    let chain = exec::chain(&next);
                    last_exec = chain.last().and_then(|(_, e)| e.clone());
                    images.extend(chain.into_iter().map(|(p, _)| p));
                }
                _ => last_exec = exec,
            }
            images
        }
        None => {
            let chain = exec::chain(first);
            last_exec = chain.last().and_then(|(_, e)| e.clone());
            chain.into_iter().map(|(p, _)| p).collect()
        }
    };
    p.exec_without_capture = last_exec.filter(|e| !e.next.is_file()).map(|e| e.command());
    for image in images.iter().skip(usize::from(open.is_some())) {
        let Ok(c) = Capture::open(image) else {
            continue;
        };
        let index = scan::scan_capture(&c);
        found.extend(records::children(c.bytes(), &index));
        p.command = c.argv().join(" ");
    }
    p.captures = images;
    found
}

/// Whether the capture at `path` started at `start_ns` (its header's wall-clock start).
fn started_at(path: &Path, start_ns: u64) -> bool {
    Capture::open(path).is_ok_and(|c| c.header.start_realtime_ns == start_ns)
}

/// The record names a process already in the family (the root, or a child recorded twice).
fn known(processes: &[Process], r: &memtrace_format::family::ChildRecord) -> bool {
    r.pid == processes[0].pid
        || processes
            .iter()
            .any(|p| p.pid == r.pid && p.start_realtime_ns == r.start_realtime_ns)
}

/// The process a child record of process `parent` names (its captures not yet read).
fn recorded_child(r: &memtrace_format::family::ChildRecord, parent: usize) -> Process {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let command = if r.argv.is_empty() {
        text(&r.program)
    } else {
        r.argv.iter().map(|a| text(a)).collect::<Vec<_>>().join(" ")
    };
    Process {
        pid: r.pid,
        parent_pid: r.parent_pid,
        command,
        start_realtime_ns: r.start_realtime_ns,
        captures: Vec::new(),
        how: Some(r.how),
        parent: Some(parent),
        exec_without_capture: None,
    }
}

/// The family's process `pid` that was alive at `start_ns`: of those with that pid (a pid may
/// serve twice), the last to start before it.
fn parent_index(processes: &[Process], pid: u32, start_ns: u64) -> Option<usize> {
    (0..processes.len())
        .filter(|&i| processes[i].pid == pid && processes[i].start_realtime_ns <= start_ns)
        .max_by_key(|&i| processes[i].start_realtime_ns)
}

/// Whether a child capture (`<root>.<pid>`) lies beside `path` or beside the root capture
/// `path` may be an image or a child of: without one the family has no tracked child, and a
/// report need not read the child records.
pub fn has_child_captures(path: &Path) -> bool {
    root::candidates(path)
        .iter()
        .chain(std::iter::once(&path.to_path_buf()))
        .any(|r| !beside::named_after(r).is_empty())
}

/// The warnings about captures named after the run's root that are not of this run (left out
/// of the family): what a report of the capture at `path` alone still says.
pub fn left_out(path: &Path) -> Vec<String> {
    if !has_child_captures(path) {
        return Vec::new();
    }
    discover(path).map(|f| f.warnings).unwrap_or_default()
}

/// A family has at most this many processes (a fork bomb's capture stays reportable).
const MAX_PROCESSES: usize = 4096;

/// How many of the children the capture at `path` recorded (in all its images) are Python
/// interpreters: an exec'd program called `python*`, or a fork of a process that is Python
/// (`python_parent`). For the hint after a run without --follow-fork.
pub fn python_children(path: &Path, python_parent: bool) -> usize {
    let is_python = |program: &[u8]| {
        let name = program.rsplit(|&b| b == b'/').next().unwrap_or(program);
        memtrace_format::exec::interpreter_name(name)
    };
    let mut pids = std::collections::BTreeSet::new();
    for (image, _) in exec::chain(path) {
        let Ok(c) = Capture::open(&image) else {
            continue;
        };
        let index = scan::scan_capture(&c);
        for child in records::children(c.bytes(), &index) {
            let r = &child.record;
            let copy = [
                memtrace_format::family::how::FORK,
                memtrace_format::family::how::FORK_IN_HANDLER,
            ];
            let python = if copy.contains(&r.how) {
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
