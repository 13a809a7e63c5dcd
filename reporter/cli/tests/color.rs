//! `--color`: the text reports (stats, tree --text, summary, diff) in colour when asked, plain
//! in a pipe by default and with `--color never`. (On a terminal: tests/tests/color.rs.)

use crate::common::{CaptureBuilder, Chunk};
use memtrace_format::Allocator;
use std::path::Path;
use std::process::Command;

/// 9,000 bytes at x.py:3 (live at the peak) and 1,000 at x.py:4.
fn capture() -> CaptureBuilder {
    let mut b = CaptureBuilder::new();
    let mut c = Chunk::new();
    c.thread_name("MainThread")
        .string(1, "f")
        .string(2, "/app/x.py")
        .python_frame(100, 1, 2, 3)
        .python_frame(101, 1, 2, 4)
        .stack(1, 0, 100)
        .stack(2, 0, 101)
        .alloc(Allocator::PymallocMalloc, 1, 0x1000, 9_000, 1)
        .alloc(Allocator::PymallocMalloc, 2, 0x9000, 1_000, 2)
        .exit_marker(3);
    b.events(1, 100, 0, &c);
    b.trailer(1_000_000);
    b
}

fn out(args: &[&str], paths: &[&Path], no_color: bool) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_memtrace"));
    cmd.args(args).args(paths);
    if no_color {
        cmd.env("NO_COLOR", "1");
    } else {
        cmd.env_remove("NO_COLOR");
    }
    let out = cmd.output().expect("memtrace runs");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    String::from_utf8(out.stdout).expect("utf-8")
}

#[test]
fn always_colours_the_peak_the_sizes_and_the_locations() {
    let p = capture().write("color-always");
    let stats = out(&["stats", "--color", "always"], &[&p], false);
    assert!(
        stats.contains(
            "Peak memory:            \x1b[1;31m9.8 KiB (10,000 bytes)\x1b[0m in 2 allocations"
        ),
        "{stats:?}"
    );
    // 9,000 of 10,000 bytes: bold red; 1,000: yellow; the file:line cyan.
    assert!(
        stats.contains("\x1b[1;31m           8.8 KiB\x1b[0m          1 allocation  f\x1b[2m at \x1b[0m\x1b[36m/app/x.py:3\x1b[0m"),
        "{stats:?}"
    );
    assert!(
        stats.contains("\x1b[33m            1000 B\x1b[0m"),
        "{stats:?}"
    );
    let tree = out(&["tree", "--text", "--color", "always"], &[&p], false);
    assert!(
        tree.contains("\x1b[1;31m   8.8 KiB\x1b[0m   90.0%            1  ├─ f\x1b[2m at \x1b[0m\x1b[36m/app/x.py:3\x1b[0m\n"),
        "{tree:?}"
    );
    let summary = out(&["summary", "--color", "always"], &[&p], false);
    assert!(
        summary.contains("f\x1b[2m at \x1b[0m\x1b[36m/app/x.py\x1b[0m"),
        "{summary:?}"
    );
    let diff = out(&["diff", "--color", "always"], &[&p, &p], false);
    assert!(
        diff.contains("Peak                  9.8 KiB -> \x1b[1;31m   9.8 KiB\x1b[0m"),
        "{diff:?}"
    );
    // An explicit --color always wins over NO_COLOR.
    assert!(out(&["stats", "--color", "always"], &[&p], true).contains('\x1b'));
}

#[test]
fn a_pipe_never_and_no_color_are_plain() {
    let p = capture().write("color-plain");
    for (args, no_color) in [
        (&["stats"][..], false),
        (&["stats", "--color", "never"][..], false),
        (&["stats", "--color", "auto"][..], true),
        (&["tree", "--text"][..], false),
        (&["summary", "--color", "never"][..], false),
    ] {
        let text = out(args, &[&p], no_color);
        assert!(text.contains("f at /app/x.py"), "{args:?}: {text}");
        assert!(!text.contains('\x1b'), "{args:?}: {text:?}");
    }
    let diff = out(&["diff"], &[&p, &p], false);
    assert!(!diff.contains('\x1b'), "{diff:?}");
    // JSON never has colour.
    assert!(!out(&["stats", "--json", "--color", "always"], &[&p], false).contains('\x1b'));
}
