//! Which capture is the root of the run a capture belongs to. The tracker names every child's
//! capture after the root (`<root>.<pid>`, or `<root>.<pid>.<k>` when that name was taken) and
//! every exec'd image's after its process's first capture (`<first>.exec<N>`, or
//! `<first>.exec<N>.<k>`): a report of `cap.bin.exec1` or of `cap.bin.4242` finds the family
//! beside `cap.bin`, not beside itself. A name alone may mislead (`-o run.5`): a candidate is
//! only a guess until the run read from it holds the capture.

use memtrace_format::FileHeader;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// `name` without a last `.<digits>` (None when it has none).
fn without_number(name: &str) -> Option<&str> {
    let (stem, last) = name.rsplit_once('.')?;
    all_digits(last).then_some(stem)
}

/// `name` without a last `.exec<N>`.
fn without_last_exec(name: &str) -> Option<&str> {
    let (stem, last) = name.rsplit_once('.')?;
    all_digits(last.strip_prefix("exec")?).then_some(stem)
}

/// `name` without an exec suffix, `.exec<N>` or `.exec<N>.<k>`.
fn without_exec(name: &str) -> Option<&str> {
    without_last_exec(name).or_else(|| without_last_exec(without_number(name)?))
}

/// `name` without a child's suffix, `.<pid>` or `.<pid>.<k>`: both readings.
fn without_pid(name: &str) -> Vec<&str> {
    let once = without_number(name);
    let twice = once.and_then(without_number);
    once.into_iter().chain(twice).collect()
}

/// The names the run's root capture of `path` may have, the shortest first (a child's image
/// `cap.bin.42.exec1` first tries `cap.bin`, then its own first capture `cap.bin.42`). Only
/// files that exist; `path` itself is not one.
pub fn candidates(path: &Path) -> Vec<PathBuf> {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return Vec::new();
    };
    let mut names: Vec<&str> = Vec::new();
    let execless = without_exec(name);
    for n in std::iter::once(name).chain(execless) {
        names.extend(without_pid(n));
    }
    names.extend(execless);
    names.sort_by_key(|n| n.len());
    names.dedup();
    names
        .into_iter()
        .map(|n| path.with_file_name(n))
        .filter(|p| p.is_file())
        .collect()
}

/// Whether the capture with header `root` may be the root of the run the capture with
/// `header` belongs to: a run that followed children, started no later. (Without
/// --follow-fork a later image's report stays its own.)
pub fn may_be_root_of(root: &FileHeader, header: &FileHeader) -> bool {
    let followed = root.options & memtrace_format::options::FOLLOW_FORK != 0;
    followed && root.start_realtime_ns <= header.start_realtime_ns
}

/// The two paths name one file.
pub fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixes_of_children_and_execs_come_off() {
        assert_eq!(without_exec("cap.bin.exec1"), Some("cap.bin"));
        assert_eq!(without_exec("cap.bin.exec12.2"), Some("cap.bin"));
        assert_eq!(without_exec("cap.bin.42"), None);
        assert_eq!(without_exec("cap.bin"), None);
        assert_eq!(without_pid("cap.bin.42"), vec!["cap.bin"]);
        assert_eq!(without_pid("cap.bin.42.2"), vec!["cap.bin.42", "cap.bin"]);
        assert!(without_pid("cap.bin").is_empty());
        assert!(without_pid("cap.bin.exec1").is_empty());
    }
}
