//! Private directories left by runs that were killed: `memtrace run` removes its directory
//! when it ends, which SIGKILL does not let it do (its program then dies with it through the
//! parent-death signal, and nothing is left to clean). Each directory names its owner in a
//! file, and the next run of the same user removes those whose owner is gone. The start-up
//! hook directories of followed Python children killed before their interpreter started
//! (`memtrace-py-*`) name theirs too, and are removed at the end of the run; one whose child was
//! killed before its owner file was written is known by the pid in its name.
//!
//! Only a directory that says it is memtrace's is removed: a `memtrace-` name of the private
//! directories' length, a real directory (no link) of this user, and an `owner` file naming a
//! process of this pid namespace that no longer runs (its pid gone, or reused by a process
//! started at another time). A directory whose owner file is not written yet, is unreadable, or
//! comes from another pid namespace (a container sharing /tmp) is left alone.

use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

const OWNER: &str = "owner";
/// `memtrace-` and the twelve random characters of a private directory's name.
const NAME_LEN: usize = "memtrace-".len() + 12;
/// Entries of the temporary directory looked at, and directories removed, by one run: a
/// /tmp of many thousand entries costs each run a bounded few milliseconds.
const MAX_LOOKED_AT: usize = 20_000;
const MAX_REMOVED: usize = 64;

/// Writes the owner file of the new private directory `dir`: this process's pid, start time
/// and pid namespace.
pub fn mark(dir: &Path) -> std::io::Result<()> {
    let me = std::process::id() as libc::pid_t;
    let line = format!(
        "{me} {} {}\n",
        start_time(me).unwrap_or(0),
        pid_namespace().unwrap_or_default()
    );
    // Private whatever the umask, as everything in the directory.
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(dir.join(OWNER))?;
    std::io::Write::write_all(&mut file, line.as_bytes())
}

/// Removes the private directories in `parent`, other than `own`, whose owner is gone. Every
/// failure is ignored: cleaning up after others never stops a run.
pub fn sweep(parent: &Path, own: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    let Some(namespace) = pid_namespace() else {
        return;
    };
    // SAFETY: geteuid cannot fail.
    let uid = unsafe { libc::geteuid() };
    let mut removed = 0;
    for entry in entries.take(MAX_LOOKED_AT).flatten() {
        let name = entry.file_name();
        let bytes = name.as_encoded_bytes();
        if !is_memtraces(bytes) {
            continue;
        }
        let path = entry.path();
        if path == own {
            continue;
        }
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if !meta.is_dir() || meta.uid() != uid {
            continue;
        }
        let gone = match owner_gone(&path, &namespace) {
            Some(gone) => gone,
            None => hook_creator_gone(bytes),
        };
        if gone && std::fs::remove_dir_all(&path).is_ok() {
            removed += 1;
            if removed == MAX_REMOVED {
                return;
            }
        }
    }
}

/// Whether a name is one memtrace gives its directories: a run's private directory, or the
/// start-up hook directory the tracker makes for a followed Python child
/// (`memtrace-py-<pid><4 digits>`, tracker/src/session/pyhook.rs).
fn is_memtraces(name: &[u8]) -> bool {
    let hook = name
        .strip_prefix(PYTHON_HOOK_PREFIX.as_bytes())
        .is_some_and(|digits| digits.len() >= 5 && digits.iter().all(u8::is_ascii_digit));
    hook || (name.len() == NAME_LEN && name.starts_with(b"memtrace-"))
}

const PYTHON_HOOK_PREFIX: &str = "memtrace-py-";

/// Removes the start-up hook directories of followed Python children that were killed before
/// their interpreter imported the hook (which removes its directory itself): at the end of a
/// run, where the tracker makes them (/dev/shm, else the temporary directory).
pub fn sweep_python_hooks() {
    let tmp = std::env::temp_dir();
    // As the tracker chooses: $TMPDIR, or /tmp when that has a `:` (PYTHONPATH's separator).
    let mut parents = vec![Path::new("/dev/shm"), tmp.as_path()];
    if tmp != Path::new("/tmp") {
        parents.push(Path::new("/tmp"));
    }
    for parent in parents {
        sweep(parent, Path::new(""));
    }
}

/// A start-up hook directory with no owner file (its child was killed as it made it): whether
/// the process its name holds (`memtrace-py-<pid><4 digits>`) is gone. A run's own private
/// directories without one are kept.
fn hook_creator_gone(name: &[u8]) -> bool {
    let Some(digits) = name.strip_prefix(PYTHON_HOOK_PREFIX.as_bytes()) else {
        return false;
    };
    let pid = std::str::from_utf8(&digits[..digits.len().saturating_sub(4)])
        .ok()
        .and_then(|p| p.parse::<libc::pid_t>().ok());
    pid.is_some_and(|pid| pid > 0 && !Path::new(&format!("/proc/{pid}")).exists())
}

/// Whether the owner file of `dir` names a process of `namespace` that is no longer running;
/// None when there is none, or it says nothing (empty, cut short: its writer was killed as it
/// wrote it).
fn owner_gone(dir: &Path, namespace: &str) -> Option<bool> {
    let Ok(file) = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(dir.join(OWNER))
    else {
        return None;
    };
    let mut text = String::new();
    if file.take(256).read_to_string(&mut text).is_err() {
        return None;
    }
    let mut fields = text.split_whitespace();
    let (Some(pid), Some(start), Some(ns)) = (
        fields.next().and_then(|f| f.parse::<libc::pid_t>().ok()),
        fields.next().and_then(|f| f.parse::<u64>().ok()),
        fields.next(),
    ) else {
        return None;
    };
    if ns != namespace || pid <= 0 {
        return Some(false);
    }
    Some(match start_time(pid) {
        None => !Path::new(&format!("/proc/{pid}")).exists(),
        Some(now) => start != 0 && now != start,
    })
}

/// The start time of process `pid` (/proc/PID/stat's 22nd field, in clock ticks since boot).
fn start_time(pid: libc::pid_t) -> Option<u64> {
    crate::proc_stat::field(&format!("/proc/{pid}/stat"), 22)?
        .parse()
        .ok()
}

/// This process's pid namespace, as /proc/self/ns/pid names it (`pid:[4026531836]`).
fn pid_namespace() -> Option<String> {
    let link = std::fs::read_link("/proc/self/ns/pid").ok()?;
    Some(link.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_named(parent: &Path, name: &str) -> std::path::PathBuf {
        let d = parent.join(name);
        std::fs::create_dir(&d).expect("mkdir");
        d
    }

    #[test]
    fn only_directories_of_runs_that_are_gone_are_removed() {
        let parent = tempfile::tempdir().expect("tmp");
        let p = parent.path();
        let ns = pid_namespace().expect("a pid namespace");
        let own = dir_named(p, "memtrace-ownownownown");
        mark(&own).expect("mark");
        // Gone: a pid that cannot run (above pid_max), or a live pid with another start time.
        let gone = dir_named(p, "memtrace-gonegonegone");
        std::fs::write(gone.join(OWNER), format!("99999999 5 {ns}\n")).expect("write");
        let reused = dir_named(p, "memtrace-reusedreused");
        std::fs::write(reused.join(OWNER), format!("1 12345678901 {ns}\n")).expect("write");
        // Kept: a live owner, no owner file, another namespace, another name, a link.
        let live = dir_named(p, "memtrace-livelivelive");
        mark(&live).expect("mark");
        let unmarked = dir_named(p, "memtrace-unmarkedunma");
        let foreign = dir_named(p, "memtrace-foreignforei");
        std::fs::write(foreign.join(OWNER), "99999999 5 pid:[1]\n").expect("write");
        let other = dir_named(p, "memtrace-other");
        std::fs::write(other.join(OWNER), format!("99999999 5 {ns}\n")).expect("write");
        // A followed Python child's hook directory: removed when its owner is gone.
        let hook_gone = dir_named(p, "memtrace-py-999999991234");
        std::fs::write(hook_gone.join(OWNER), format!("99999999 5 {ns}\n")).expect("write");
        let hook_live = dir_named(p, "memtrace-py-123451234");
        mark(&hook_live).expect("mark");
        // Killed before its owner file was written: its name's pid is gone.
        let hook_unmarked = dir_named(p, "memtrace-py-999999990000");
        let hook_cut_short = dir_named(p, "memtrace-py-999999980000");
        std::fs::write(hook_cut_short.join(OWNER), "").expect("write");
        let run_cut_short = dir_named(p, "memtrace-cutshortcuts");
        std::fs::write(run_cut_short.join(OWNER), "").expect("write");
        let hook_named_wrong = dir_named(p, "memtrace-py-12ab");
        std::fs::write(hook_named_wrong.join(OWNER), format!("99999999 5 {ns}\n")).expect("write");
        let target = dir_named(p, "target");
        std::fs::write(target.join(OWNER), format!("99999999 5 {ns}\n")).expect("write");
        std::os::unix::fs::symlink(&target, p.join("memtrace-linklinklink")).expect("link");
        sweep(p, &own);
        assert!(!gone.exists());
        assert!(!reused.exists());
        assert!(!hook_gone.exists());
        assert!(!hook_unmarked.exists());
        assert!(!hook_cut_short.exists());
        assert!(run_cut_short.exists());
        for kept in [
            &own,
            &live,
            &unmarked,
            &foreign,
            &other,
            &target,
            &hook_live,
            &hook_named_wrong,
        ] {
            assert!(kept.exists(), "{} was removed", kept.display());
        }
        assert!(p.join("memtrace-linklinklink").exists());
    }
}
