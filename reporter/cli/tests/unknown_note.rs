//! `<unknown>` is explained wherever a text report shows it (stats, tree --text, summary), and
//! only there.

use crate::common::{CaptureBuilder, Chunk};
use memtrace_format::Allocator;
use std::path::Path;
use std::process::Command;

const NOTE: &str =
    "<unknown>: allocations recorded without a call site (in a Python run: made while \
their thread ran no Python code,\na thread starting or ending, the interpreter outside any frame); \
`memtrace run --native` records their stacks.\n";

/// A Python frame's 1000 bytes and, with `unknown`, 300 bytes of stack 0, live at exit.
fn capture(unknown: bool) -> CaptureBuilder {
    let mut b = CaptureBuilder::new();
    let mut c = Chunk::new();
    c.thread_name("MainThread")
        .string(1, "f")
        .string(2, "/app/x.py")
        .python_frame(100, 1, 2, 3)
        .stack(1, 0, 100)
        .alloc(Allocator::PymallocMalloc, 1, 0x1000, 1000, 1);
    if unknown {
        c.alloc(Allocator::PymallocMalloc, 2, 0x2000, 300, 0);
    }
    c.exit_marker(3);
    b.events(1, 100, 0, &c);
    b.trailer(1_000_000);
    b
}

fn text(args: &[&str], path: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_memtrace"))
        .args(args)
        .arg(path)
        .output()
        .expect("memtrace runs");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    String::from_utf8(out.stdout).expect("utf-8")
}

#[test]
fn every_text_report_that_shows_unknown_explains_it() {
    let with = capture(true).write("unknown-note");
    let without = capture(false).write("no-unknown-note");
    for args in [
        &["stats"][..],
        &["tree", "--text"][..],
        &["summary"][..],
        &["tree", "--text", "--leaks"][..],
    ] {
        let t = text(args, &with);
        assert!(t.contains("<unknown>"), "{args:?}:\n{t}");
        assert_eq!(t.matches(NOTE).count(), 1, "{args:?}:\n{t}");
        let t = text(args, &without);
        assert!(!t.contains("<unknown>"), "{args:?}:\n{t}");
    }
    // The tree's note follows the tree.
    let t = text(&["tree", "--text"], &with);
    assert!(
        t.ends_with(&format!("├─ <unknown>\n{NOTE}"))
            || t.ends_with(&format!("└─ <unknown>\n{NOTE}")),
        "{t}"
    );
    // JSON has no note.
    assert!(!text(&["stats", "--json"], &with).contains("allocations recorded without a call site"));
}
