//! `memtrace flamegraph`: the HTML page of a Python script with known allocation sites is one
//! self-contained file naming them, with the chart of memory over time; a capture of thousands
//! of distinct stacks still gives a small file.

use memtrace_e2e::page::{self_contained, unescaped};
use memtrace_e2e::python::KNOWN_SITE;
use memtrace_e2e::python::{python, tracked, write};
use memtrace_e2e::{memtrace_bin, scratch};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Thousands of functions, each allocating from its own line and stack, all live at the peak
/// (the last allocation, larger than what compiling them took).
const MANY_STACKS: &str = "\
source = ''.join(f'def f{i}():\\n    return bytearray({i % 97 + 200})\\n' for i in range(5000))
space = {}
exec(compile(source, 'generated.py', 'exec'), space)
keep = [space[f'f{i}']() for i in range(5000)]
del source, space
big = bytearray(64_000_000)
";

fn capture(name: &str, script: &str) -> (PathBuf, PathBuf) {
    let dir = scratch(name);
    let script = write(&dir, "known.py", script);
    let cap = dir.join("known.bin");
    let script_arg = script.to_string_lossy().into_owned();
    let out = tracked(python(), &cap, &[&script_arg], &dir, b"");
    assert!(out.status.success(), "{out:?}");
    (dir, cap)
}

fn flamegraph(cap: &Path, args: &[&str]) -> Output {
    let out = Command::new(memtrace_bin())
        .arg("flamegraph")
        .args(args)
        .arg(cap)
        .output()
        .expect("memtrace runs");
    assert!(
        out.status.success(),
        "flamegraph {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn the_page_shows_the_known_sites_and_the_chart() {
    let (dir, cap) = capture("flamegraph-known", KNOWN_SITE);
    let out = flamegraph(&cap, &[]);
    let page = dir.join("known.html");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!("memtrace: wrote {}\n", page.display())
    );
    let html = std::fs::read_to_string(&page).expect("the default output is FILE.html");
    assert!(html.starts_with("<!DOCTYPE html>"));
    self_contained(&html);
    let text = unescaped(&unescaped(&html));
    let file = dir.join("known.py").display().to_string();
    for name in [
        format!("f at {file}:2"),
        format!("g at {file}:6"),
        format!("<module> at {file}:10"),
    ] {
        assert!(
            html.contains(&name) || text.contains(&name),
            "{name} not in the page"
        );
    }
    // The flamegraph's hover text of f's frame has its exact bytes.
    assert!(text.contains("10,000,033 bytes"), "f's bytes");
    // The top lines table's first row is f's line.
    let first = html
        .split("<tbody>")
        .nth(1)
        .and_then(|t| t.split("</tr>").next())
        .expect("a first row");
    assert_eq!(
        first,
        format!("\n<tr><td>f at {file}:2</td><td class=\"n\">10000033</td><td class=\"n\">1</td>")
    );
    // The chart with both series and the peak.
    assert!(html.contains("<section id=\"timeline\"><svg"));
    assert!(html.contains("Memory over time"));
    assert!(html.contains("heap (live bytes)"));
    assert!(html.contains("resident size"));
    assert!(html.contains(">\npeak\n</text>"));
    assert!(html.contains("var inverted = false"));
    // -o and --inverted.
    let inverted = dir.join("icicle.html");
    let path = inverted.to_string_lossy().into_owned();
    flamegraph(&cap, &["--inverted", "-o", &path]);
    let icicle = std::fs::read_to_string(&inverted).expect("written");
    assert!(icicle.contains("var inverted = true"));
    assert!(icicle.contains(&format!("f at {file}:2")));
}

#[test]
fn many_stacks_give_a_small_page() {
    let (dir, cap) = capture("flamegraph-many", MANY_STACKS);
    // The export holds every stack; the page merges the small ones.
    let folded = Command::new(memtrace_bin())
        .args(["export", "--format", "folded"])
        .arg(&cap)
        .output()
        .expect("memtrace runs");
    let generated = String::from_utf8_lossy(&folded.stdout)
        .lines()
        .filter(|l| l.contains("generated.py"))
        .count();
    assert!(generated >= 5000, "{generated} generated stacks");
    flamegraph(&cap, &[]);
    let html = std::fs::read_to_string(dir.join("known.html")).expect("written");
    self_contained(&html);
    assert!(html.contains("other (small frames)"));
    assert!(html.len() < 1 << 20, "{} bytes", html.len());
    let rows = html.matches("<tr><td>").count();
    assert_eq!(rows, 20);
}

#[test]
fn a_missing_capture_is_a_one_line_error() {
    let out = Command::new(memtrace_bin())
        .args(["flamegraph", "/nonexistent/x.bin"])
        .output()
        .expect("memtrace runs");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("memtrace: "), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}
