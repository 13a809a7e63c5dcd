//! The captures beside a root that are named after it: `<root>.<pid>`, or `<root>.<pid>.<k>`
//! when the tracker found that name taken (a pid used twice in one run, or a file an earlier
//! run left: `-f` replaces the root, not its children's files). Which of them belong to this
//! run is decided here: a capture joins the family only when it started after the root did and
//! either a child record of the family names its pid (the capture whose start is nearest the
//! record's) or its parent is a process of the family. The others are left out, each with one
//! warning.

use crate::capture::Capture;
use std::path::{Path, PathBuf};

/// What a capture's header says of its process.
#[derive(Clone, Debug)]
pub struct Header {
    pub pid: u32,
    pub ppid: u32,
    pub start_realtime_ns: u64,
    pub command: String,
}

/// A file named after the root.
#[derive(Clone, Debug)]
struct Candidate {
    path: PathBuf,
    /// The pid its name carries.
    pid: u32,
    /// None: it is not readable as a capture.
    header: Option<Header>,
    /// It joined the family.
    taken: bool,
}

/// The captures named after one root, and which of them joined its family.
pub struct Beside {
    root: PathBuf,
    root_start_ns: u64,
    candidates: Vec<Candidate>,
}

/// The pid (and the tracker's `.k`) of a file name's part after `<root>.`: `123` or `123.2`.
fn pid_of_suffix(rest: &str) -> Option<u32> {
    let mut parts = rest.split('.');
    let pid = parts.next()?;
    let k = parts.next();
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if parts.next().is_some() || !all_digits(pid) || k.is_some_and(|k| !all_digits(k)) {
        return None;
    }
    pid.parse().ok()
}

/// The directory holding `root` (`.` for a bare file name).
fn directory_of(root: &Path) -> PathBuf {
    match root.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// `<root>.<pid>` and `<root>.<pid>.<k>` files beside `root`, by name: (pid, path), sorted.
pub fn named_after(root: &Path) -> Vec<(u32, PathBuf)> {
    let Some(name) = root.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return Vec::new();
    };
    let dir = directory_of(root);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let prefix = format!("{name}.");
    let mut out: Vec<(u32, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let file = e.file_name().to_string_lossy().into_owned();
            let pid = pid_of_suffix(file.strip_prefix(&prefix)?)?;
            Some((pid, root.with_file_name(&file)))
        })
        .collect();
    out.sort();
    out
}

fn read_header(path: &Path) -> Option<Header> {
    let c = Capture::open(path).ok()?;
    Some(Header {
        pid: c.header.pid,
        ppid: c.header.ppid,
        start_realtime_ns: c.header.start_realtime_ns,
        command: c.argv().join(" "),
    })
}

impl Beside {
    /// The captures named after `root`, whose capture started at `root_start_ns` (realtime).
    pub fn read(root: &Path, root_start_ns: u64) -> Beside {
        let candidates = named_after(root)
            .into_iter()
            .map(|(pid, path)| Candidate {
                header: read_header(&path),
                path,
                pid,
                taken: false,
            })
            .collect();
        Beside {
            root: root.to_path_buf(),
            root_start_ns,
            candidates,
        }
    }

    /// A readable capture of process `pid` that started after the root (an earlier run's
    /// started before).
    fn of_this_run(&self, c: &Candidate, pid: u32) -> bool {
        !c.taken
            && c.pid == pid
            && c.header
                .as_ref()
                .is_some_and(|h| h.pid == pid && h.start_realtime_ns >= self.root_start_ns)
    }

    /// The capture of the child a record names (`pid`, started at `start_ns`): of this run's
    /// captures of that pid, the one whose start is nearest the record's (a pid used twice in
    /// the run has two, far apart in time). Else a file of that pid that is not readable as a
    /// capture (damaged: the report says so). None: it has no capture.
    pub fn take_for(&mut self, pid: u32, start_ns: u64) -> Option<PathBuf> {
        let distance = |c: &Candidate| {
            c.header
                .as_ref()
                .map_or(u64::MAX, |h| h.start_realtime_ns.abs_diff(start_ns))
        };
        let nearest = (0..self.candidates.len())
            .filter(|&i| self.of_this_run(&self.candidates[i], pid))
            .min_by_key(|&i| distance(&self.candidates[i]));
        let unreadable = || {
            (0..self.candidates.len()).find(|&i| {
                let c = &self.candidates[i];
                !c.taken && c.pid == pid && c.header.is_none()
            })
        };
        let i = nearest.or_else(unreadable)?;
        self.candidates[i].taken = true;
        Some(self.candidates[i].path.clone())
    }

    /// Captures of this run that no record named (a child libc started, as `system` does) whose
    /// parent is in the family: `parent_of(ppid, start)` finds it. Each (its parent's index, its
    /// capture, its header), taken.
    pub fn take_unnamed(
        &mut self,
        parent_of: impl Fn(u32, u64) -> Option<usize>,
    ) -> Vec<(usize, PathBuf, Header)> {
        let root_start = self.root_start_ns;
        let mut out = Vec::new();
        for c in self.candidates.iter_mut().filter(|c| !c.taken) {
            let Some(h) = c.header.as_ref() else {
                continue;
            };
            if h.pid != c.pid || h.start_realtime_ns < root_start {
                continue;
            }
            if let Some(parent) = parent_of(h.ppid, h.start_realtime_ns) {
                c.taken = true;
                out.push((parent, c.path.clone(), h.clone()));
            }
        }
        out
    }

    /// A warning for each readable capture named after the root that did not join the family,
    /// saying why. (A file that is not a capture is not the family's: nothing is said.)
    pub fn left_out(&self) -> Vec<String> {
        let root = self.root.display();
        self.candidates
            .iter()
            .filter(|c| !c.taken)
            .filter_map(|c| {
                let h = c.header.as_ref()?;
                let why = if h.start_realtime_ns < self.root_start_ns {
                    format!("an earlier run's capture (it started before {root})")
                } else if h.pid != c.pid {
                    format!("its process is {}, not the {} its name says", h.pid, c.pid)
                } else {
                    format!(
                        "not this run's (no process of the family started it: its parent {} is not in the family)",
                        h.ppid
                    )
                };
                Some(format!("{}: left out: {why}", c.path.display()))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_capture_name_is_a_pid_and_maybe_the_trackers_second_try() {
        assert_eq!(pid_of_suffix("123"), Some(123));
        assert_eq!(pid_of_suffix("123.2"), Some(123));
        assert_eq!(pid_of_suffix("123.exec1"), None);
        assert_eq!(pid_of_suffix("exec1"), None);
        assert_eq!(pid_of_suffix("123.2.3"), None);
        assert_eq!(pid_of_suffix(""), None);
        assert_eq!(pid_of_suffix("12."), None);
    }
}
