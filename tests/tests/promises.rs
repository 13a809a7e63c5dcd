//! Promises of the README that had no test of their own: `memtrace run` refuses a statically
//! linked program (one line, status 1, the program not run, no capture), and under
//! `--follow-fork` a child's capture holds exactly the child's allocations while the parent's
//! holds none of them.

use memtrace_e2e::watchdog::Watched;
use memtrace_e2e::{memtrace, num, scratch, stats, workspace};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Compiles tests/programs/`name`.c with extra gcc flags.
fn build(name: &str, dir: &Path, flags: &[&str]) -> PathBuf {
    let src = workspace().join("tests/programs").join(format!("{name}.c"));
    let out = dir.join(name);
    let built = Command::new("gcc")
        .args(["-O0", "-g", "-fno-builtin"])
        .args(flags)
        .arg("-o")
        .arg(&out)
        .arg(&src)
        .output_watched();
    assert!(
        built.status.success(),
        "gcc {flags:?} {}: {built:?}",
        src.display()
    );
    out
}

#[test]
fn a_statically_linked_program_is_refused() {
    let dir = scratch("static");
    // libc6-dev ships libc.a, so -static links here and in CI.
    let prog = build("static_hello", &dir, &["-static"]);
    let ran = Command::new(&prog).output().expect("runs");
    assert_eq!(ran.stdout, b"static program ran\n");

    let cap = dir.join("static.bin");
    let out = memtrace(
        &[
            "run",
            "-o",
            cap.to_str().expect("utf-8"),
            "--",
            prog.to_str().expect("utf-8"),
        ],
        &dir,
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    // Refused, not run untracked.
    assert!(out.stdout.is_empty(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(
        err.trim_end(),
        format!(
            "memtrace: {} is statically linked: memtrace can only trace dynamically linked programs",
            prog.display()
        )
    );
    assert!(!cap.exists(), "a capture was written");
}

/// `export --format csv` rows as (function, live_bytes, live_allocations, allocated_bytes,
/// allocations), by the README's columns.
fn sites(cap: &Path) -> Vec<(String, i64, i64, i64, i64)> {
    sites_of(cap, &[])
}

/// `sites` with more options for `export` (`--pid N`).
fn sites_of(cap: &Path, extra: &[&str]) -> Vec<(String, i64, i64, i64, i64)> {
    let mut args = vec!["export", cap.to_str().expect("utf-8"), "--format", "csv"];
    args.extend_from_slice(extra);
    let out = memtrace(&args, cap.parent().expect("dir"));
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("location,function,file,line,live_bytes,live_allocations,allocated_bytes,allocations")
    );
    lines
        .map(|l| {
            // The location may hold commas only when quoted; these paths have none.
            let f: Vec<&str> = l.split(',').collect();
            assert_eq!(f.len(), 8, "{l}");
            let n = |i: usize| f[i].parse::<i64>().unwrap_or_else(|_| panic!("{l}"));
            (f[1].to_string(), n(4), n(5), n(6), n(7))
        })
        .collect()
}

#[test]
fn follow_fork_captures_hold_each_process_own_allocations() {
    let dir = scratch("fork-known");
    let prog = build("fork_known", &dir, &[]);
    let cap = dir.join("fk.bin");
    let out = memtrace(
        &[
            "run",
            "-q",
            "--follow-fork",
            "-o",
            cap.to_str().expect("utf-8"),
            "--",
            prog.to_str().expect("utf-8"),
        ],
        &dir,
    );
    assert!(out.status.success(), "{out:?}");
    let children: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("dir")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().contains("fk.bin."))
        .collect();
    assert_eq!(children.len(), 1, "{children:?}");
    let child_cap = &children[0];

    // The child: from the fork on, 4 x 1001 kept and 2 x 2002 freed, nothing else.
    let child = stats(child_cap);
    let pid = child_cap
        .to_string_lossy()
        .rsplit('.')
        .next()
        .map(str::to_string);
    assert_eq!(Some(num(&child, "pid").to_string()), pid);
    assert_eq!(num(&child, "total_allocations"), 6);
    assert_eq!(num(&child, "total_bytes"), 4 * 1001 + 2 * 2002);
    assert_eq!(num(&child, "total_frees"), 2);
    assert_eq!(num(&child, "leaked_bytes"), 4004);
    assert_eq!(num(&child, "peak_bytes"), 4004 + 2002);
    let mut rows = sites(child_cap);
    rows.sort();
    assert_eq!(
        rows,
        [
            ("child_temp".to_string(), 2002, 1, 4004, 2),
            ("child_work".to_string(), 4004, 4, 4004, 4)
        ]
    );

    // The parent: its 3 x 3001, none of the child's, though the child ran its hooks too.
    let parent = stats(&cap);
    assert_ne!(num(&parent, "pid"), num(&child, "pid"));
    assert_eq!(num(&parent, "total_allocations"), 3);
    assert_eq!(num(&parent, "total_bytes"), 3 * 3001);
    assert_eq!(num(&parent, "total_frees"), 0);
    // Reports of the parent's file show the family unless --pid names one process: the
    // parent's own sites are its capture's.
    let parent_pid = num(&parent, "pid").to_string();
    assert_eq!(
        sites_of(&cap, &["--pid", &parent_pid]),
        [("parent_work".to_string(), 9003, 3, 9003, 3)]
    );
}
