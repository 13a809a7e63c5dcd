//! `memtrace stats` as text shows what matters: allocators never called are left out (`--all`
//! lists them), zero-byte allocations are named, files are shown relative to the script's
//! directory or the current one (`--full-paths` keeps them whole).

use crate::common::{CaptureBuilder, Chunk};
use memtrace_format::{Allocator, FileHeader, MAJOR, MINOR};
use std::path::Path;
use std::process::Command;

const APP: &str = "/home/u/proj/app.py";
const UTIL: &str = "/home/u/proj/lib/util.py";

/// `python3 app.py`: 3 × 1000 bytes at app.py:5 (<- <module>:9), one 64-byte allocation in
/// lib/util.py:2 called from app.py:10, and a malloc(0).
fn capture() -> CaptureBuilder {
    let mut header = CaptureBuilder::new().header;
    header.argv = vec![b"/usr/bin/python3".to_vec(), b"app.py".to_vec()];
    let mut b = CaptureBuilder::with_header(FileHeader {
        major: MAJOR,
        minor: MINOR,
        ..header
    });
    let mut c = Chunk::new();
    c.thread_name("MainThread")
        .string(1, "f")
        .string(2, APP)
        .string(3, "<module>")
        .string(4, "helper")
        .string(5, UTIL)
        .python_frame(100, 3, 2, 9)
        .python_frame(101, 1, 2, 5)
        .python_frame(102, 3, 2, 10)
        .python_frame(103, 4, 5, 2)
        .stack(1, 0, 100)
        .stack(2, 1, 101)
        .stack(3, 0, 102)
        .stack(4, 3, 103);
    for i in 0..3 {
        c.alloc(
            Allocator::PymallocMalloc,
            1 + i,
            0x1000 + i * 0x1000,
            1000,
            2,
        );
    }
    c.alloc(Allocator::PymallocMalloc, 10, 0x9000, 64, 4)
        .alloc(Allocator::Malloc, 11, 0xa000, 0, 2)
        .exit_marker(12);
    b.events(1, 100, 0, &c);
    b.trailer(1_000_000);
    b
}

fn stats_text(path: &Path, extra: &[&str], cwd: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_memtrace"))
        .arg("stats")
        .args(extra)
        .arg(path)
        .current_dir(cwd)
        .env_remove("NO_COLOR")
        .output()
        .expect("memtrace runs");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    String::from_utf8(out.stdout).expect("utf-8")
}

#[test]
fn allocators_never_called_are_left_out_unless_all() {
    let p = capture().write("stats-text-allocators");
    let text = stats_text(&p, &[], Path::new("/"));
    let allocators: Vec<&str> = text
        .lines()
        .skip_while(|l| *l != "Allocators:")
        .skip(1)
        .take_while(|l| !l.is_empty())
        .collect();
    assert_eq!(
        allocators,
        [
            "  pymalloc_malloc                 4",
            "  malloc                          1",
            "  (9 others never called: --all lists them)"
        ],
        "{text}"
    );
    let all = stats_text(&p, &["--all"], Path::new("/"));
    assert!(
        all.contains("\n  aligned_alloc                   0\n"),
        "{all}"
    );
    assert!(
        all.contains("\n  free                            0\n"),
        "{all}"
    );
    assert!(!all.contains("never called"), "{all}");
}

#[test]
fn zero_byte_allocations_are_named() {
    let p = capture().write("stats-text-zero");
    let text = stats_text(&p, &[], Path::new("/"));
    assert!(
        text.contains("Total allocations:      5 (1 of zero bytes)\n"),
        "{text}"
    );
    assert!(!text.contains("0 B - 0 B"), "{text}");
    let zero_row = text
        .lines()
        .find(|l| l.trim_start().starts_with("zero-byte |"))
        .unwrap_or_else(|| panic!("a zero-byte row in {text}"));
    assert!(
        zero_row.ends_with("|            1         0 B"),
        "{zero_row}"
    );
    assert!(text.contains("\n           64 B - 127 B |"), "{text}");
}

#[test]
fn files_are_relative_to_the_script_or_the_current_directory() {
    let p = capture().write("stats-text-paths");
    // The current directory is elsewhere: relative to the script's directory, /home/u/proj.
    let text = stats_text(&p, &[], Path::new("/"));
    assert!(
        text.contains("  f at app.py:5\n      ← <module> at app.py:9\n"),
        "{text}"
    );
    assert!(
        text.contains("  helper at lib/util.py:2\n      ← <module> at app.py:10\n"),
        "{text}"
    );
    assert!(text.contains("  app  (app.py)\n"), "{text}");
    assert!(!text.contains("/home/u"), "{text}");
    // --full-paths: as recorded.
    let full = stats_text(&p, &["--full-paths"], Path::new("/"));
    assert!(
        full.contains(&format!("  f at {APP}:5\n      ← <module> at {APP}:9\n")),
        "{full}"
    );
    assert!(full.contains(&format!("  helper at {UTIL}:2\n")), "{full}");
    // JSON keeps full paths.
    let json = stats_text(&p, &["--json"], Path::new("/"));
    let v: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    assert_eq!(v["top_by_size"][0]["file"], APP);
    assert_eq!(v["top_by_size"][0]["location"], format!("f at {APP}:5"));
}

#[test]
fn tree_and_summary_show_files_as_stats_does() {
    let p = capture().write("tree-text-paths");
    let tree = stats_text_of(&["tree", "--text"], &p);
    assert!(tree.contains("├─ <module> at app.py:9\n"), "{tree}");
    assert!(tree.contains("└─ helper at lib/util.py:2\n"), "{tree}");
    assert!(!tree.contains("/home/u"), "{tree}");
    let full = stats_text_of(&["tree", "--text", "--full-paths"], &p);
    assert!(
        full.contains(&format!("├─ <module> at {APP}:9\n")),
        "{full}"
    );
    let summary = stats_text_of(&["summary"], &p);
    assert!(summary.contains("  f at app.py\n"), "{summary}");
    assert!(summary.contains("  helper at lib/util.py\n"), "{summary}");
    let full = stats_text_of(&["summary", "--full-paths"], &p);
    assert!(full.contains(&format!("  f at {APP}\n")), "{full}");
}

/// `memtrace ARGS CAPTURE` run in `/`.
fn stats_text_of(args: &[&str], path: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_memtrace"))
        .args(args)
        .arg(path)
        .current_dir("/")
        .output()
        .expect("memtrace runs");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    String::from_utf8(out.stdout).expect("utf-8")
}
