//! The capture index through the command: the first report of a Python run's capture leaves
//! `.<capture>.mtidx`, and every later report, on every view, prints what a whole read prints,
//! byte for byte.

use memtrace_e2e::python::{python, track_script};
use memtrace_e2e::watchdog::Watched;
use memtrace_e2e::*;
use std::path::Path;
use std::process::Command;

/// Two threads building and dropping lists of records: some 3.5 million events, a capture
/// of a few MB whose index is well within its share.
const SCRIPT: &str = r#"
import threading

def make(i):
    return {"id": i, "name": "item-%d" % i}

def build(n):
    return [make(i) for i in range(n)]

kept = []

def work(rounds):
    for r in range(rounds):
        data = build(20_000)
        kept.append(data[r])
        del data

t = threading.Thread(target=work, args=(12,), name="worker")
t.start()
work(14)
t.join()
"#;

/// `memtrace ARGS... CAPTURE`'s stdout, with or without the index.
fn report(args: &[&str], cap: &Path, index: bool) -> String {
    let mut cmd = Command::new(memtrace_bin());
    cmd.args(args).arg(cap);
    if !index {
        cmd.env("MEMTRACE_INDEX", "off");
    }
    let out = cmd.output_watched();
    assert!(out.status.success(), "{args:?}: {out:?}");
    String::from_utf8(out.stdout).expect("utf-8")
}

#[test]
fn later_reports_read_the_index_and_print_the_same() {
    let dir = scratch("index");
    let (cap, out) = track_script(python(), &dir, "churn.py", SCRIPT);
    assert!(out.status.success(), "{out:?}");
    let idx = dir.join(".churn.bin.mtidx");
    let views: [&[&str]; 9] = [
        &["stats"],
        &["stats", "--json"],
        &["tree", "--text"],
        &["summary"],
        &["stats", "--leaks"],
        &["tree", "--text", "--temporary"],
        &["summary", "--thread", "worker"],
        &["tree", "--text", "--python-only"],
        &["summary", "--threads"],
    ];
    let whole: Vec<String> = views.iter().map(|v| report(v, &cap, false)).collect();
    assert!(!idx.exists(), "MEMTRACE_INDEX=off writes no index");
    let first = report(views[0], &cap, true);
    assert!(idx.exists(), "the first report leaves the index");
    assert_eq!(first, whole[0]);
    let (cap_len, idx_len) = (len(&cap), len(&idx));
    assert!(
        idx_len * 25 <= cap_len,
        "index {idx_len} bytes, capture {cap_len}"
    );
    let written = std::fs::metadata(&idx)
        .and_then(|m| m.modified())
        .expect("mtime");
    for (v, want) in views.iter().zip(&whole) {
        assert_eq!(&report(v, &cap, true), want, "{v:?}");
    }
    // Every view came from the index: none wrote it again.
    assert_eq!(
        std::fs::metadata(&idx)
            .and_then(|m| m.modified())
            .expect("mtime"),
        written
    );
    // The views differ: the comparison means something.
    assert_ne!(whole[0], whole[4]);
    assert!(whole[6].contains("worker"), "{}", whole[6]);
}

fn len(p: &Path) -> u64 {
    std::fs::metadata(p).expect("metadata").len()
}

/// What is planted where the index goes is never waited on or read without bound: a FIFO
/// and a link to /dev/zero at the index's name. The report reads the capture and prints what
/// it prints without an index, then writes the index in their place.
#[test]
fn a_planted_index_is_neither_waited_on_nor_read_without_bound() {
    let dir = scratch("index-planted");
    let (cap, out) = track_script(python(), &dir, "churn.py", SCRIPT);
    assert!(out.status.success(), "{out:?}");
    let whole = report(&["stats"], &cap, false);
    let idx = dir.join(".churn.bin.mtidx");
    let fifo = std::ffi::CString::new(idx.to_str().expect("utf-8")).expect("path");
    // SAFETY: mkfifo(3) of a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    assert_eq!(report(&["stats"], &cap, true), whole, "a FIFO at the index");
    std::fs::remove_file(&idx).expect("remove the FIFO");
    std::os::unix::fs::symlink("/dev/zero", &idx).expect("link");
    assert_eq!(
        report(&["stats"], &cap, true),
        whole,
        "/dev/zero at the index"
    );
    std::fs::remove_file(&idx).expect("remove the link");
    // (A link at the temporary file's name: place.rs's tests, which know the writer's pid.)
    assert_eq!(report(&["stats"], &cap, true), whole);
    assert!(idx.exists(), "an index is written again");
}

/// The index names the program's functions, files and sizes as the capture does: it was
/// readable by all (0644) beside a capture kept to its owner.
#[test]
fn an_index_is_readable_only_by_whom_its_capture_is() {
    use std::os::unix::fs::PermissionsExt;
    let dir = scratch("index-private");
    let (cap, out) = track_script(python(), &dir, "private.py", SCRIPT);
    assert!(out.status.success(), "{out:?}");
    std::fs::set_permissions(&cap, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    report(&["stats"], &cap, true);
    let idx = dir.join(".private.bin.mtidx");
    let mode = std::fs::metadata(&idx)
        .expect("an index beside")
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "{mode:o}");
}

/// Many objects live at the script's end: the index held each one's address and type, and at
/// megabytes it was over its bound, so none was written and every report read the capture
/// whole.
const MANY_OBJECTS: &str = "\
def record(i):
    return {'id': i, 'name': 'item-%d' % i, 'tags': (i % 7, i % 11)}
keep = [record(i) for i in range(200_000)]
";

#[test]
fn a_capture_with_many_objects_live_at_exit_gets_its_index() {
    let dir = scratch("index-objects");
    let (cap, out) = track_script(python(), &dir, "objects.py", MANY_OBJECTS);
    assert!(out.status.success(), "{out:?}");
    let views: [&[&str]; 4] = [
        &["stats"],
        &["tree", "--text", "--by-type"],
        &["summary", "--by-type", "--leaks"],
        &["stats", "--json"],
    ];
    let whole: Vec<String> = views.iter().map(|v| report(v, &cap, false)).collect();
    assert!(whole[0].contains("dict"), "{}", whole[0]);
    report(&["stats"], &cap, true);
    let idx = dir.join(".objects.bin.mtidx");
    assert!(idx.exists(), "no index beside {}", cap.display());
    assert!(
        len(&idx) * 25 <= len(&cap),
        "{} for {}",
        len(&idx),
        len(&cap)
    );
    for (v, w) in views.iter().zip(&whole) {
        assert_eq!(&report(v, &cap, true), w, "{v:?}");
    }
}

/// A family's reports (a capture of `--follow-fork`) read each process's capture twice, for the
/// family's combined peak and then at it: both are kept in each capture's index (when they fit
/// its share: captures of a few MB read whole in a moment), and a later report of the family
/// reads none of them whole (they were read whole every time).
#[test]
fn a_family_s_later_reports_read_its_captures_indexes() {
    let dir = scratch("index-family");
    let prog = compile("fork_churn", &dir);
    let cap = dir.join("fam.bin");
    // Captures of some 35 MB each: a family's series of steps (up to 262,144 points) fits
    // within an index's share of them.
    let out = memtrace(
        &[
            "run",
            "-q",
            "-f",
            "--follow-fork",
            "-o",
            cap.to_str().expect("utf-8"),
            "--",
            prog.to_str().expect("utf-8"),
            "6000000",
        ],
        &dir,
    );
    assert!(out.status.success(), "{out:?}");
    let views: [&[&str]; 5] = [
        &["stats"],
        &["stats", "--json"],
        &["tree", "--text"],
        &["summary"],
        &["stats", "--leaks"],
    ];
    let whole: Vec<String> = views.iter().map(|v| report(v, &cap, false)).collect();
    let indexes = || -> Vec<std::path::PathBuf> {
        let mut found: Vec<_> = std::fs::read_dir(&dir)
            .expect("the directory")
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
                name.is_some_and(|n| n.starts_with(".fam.bin") && n.ends_with(".mtidx"))
            })
            .collect();
        found.sort();
        found
    };
    assert!(indexes().is_empty(), "MEMTRACE_INDEX=off writes no index");
    assert_eq!(report(views[0], &cap, true), whole[0]);
    let written = indexes();
    assert_eq!(written.len(), 2, "one index per process: {written:?}");
    let times = || -> Vec<std::time::SystemTime> {
        written
            .iter()
            .map(|p| {
                std::fs::metadata(p)
                    .and_then(|m| m.modified())
                    .expect("mtime")
            })
            .collect()
    };
    let first = times();
    // The first report of each view may add its entry; the second of each reads them all.
    for (v, want) in views.iter().zip(&whole) {
        assert_eq!(&report(v, &cap, true), want, "{v:?}");
    }
    let settled = times();
    for (v, want) in views.iter().zip(&whole) {
        assert_eq!(&report(v, &cap, true), want, "{v:?}");
    }
    assert_eq!(times(), settled, "a later report wrote an index again");
    assert!(first.len() == 2);
    assert!(whole[0].contains("Processes"), "{}", whole[0]);
}
