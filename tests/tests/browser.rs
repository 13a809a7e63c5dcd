//! The HTML reports render in headless chromium: loaded from a file URL, the flamegraph draws
//! the known functions of a test capture, hovering a frame shows its bytes, clicking one zooms
//! to it; the chart and the table are there. On the interactive page, a two-phase script's
//! phases are picked by dragging over the chart and by clicking it, threads, import frames,
//! the interpreter's frames (--native), `<unknown>`, inversion and the table's sort are toggled,
//! names with markup stay text. A family's page (--follow-fork) stacks each process's heap on
//! the chart, holds the combined peak of `stats`, and filters by process. Screenshots are left in target/browser/ (flamegraph-STEP.png,
//! phases-STEP.png, one per step; flamegraph-diff.png, flamegraph-diff-zoomed.png); those of
//! docs/images/ are copies.
//!
//! Needs Debian's chromium, node and npm (`.ci/run` installs chromium); fails without them.

use memtrace_e2e::browser::{self, Check, Explore, Limit};
use memtrace_e2e::python::{python, tracked, write, TWICE_AND_SAME, TWO_CHILDREN};
use memtrace_e2e::watchdog::Watched;
use memtrace_e2e::{memtrace_bin, scratch};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Two towers of known sizes under `<module>`: g → f (10 MB) and h (6 MB), h called through a
/// builtin (`map`), so that the interpreter's frames lie between `<module>` and `<lambda>`.
const TWO_TOWERS: &str = "\
def f(n):
    return b\"\\0\" * n


def g():
    return f(10_000_000)


def h():
    return bytearray(6_000_000)


keep = [g(), *map(lambda _: h(), [0])]
";

fn capture(dir: &Path, script: &Path, name: &str, args: &[&str]) -> PathBuf {
    let cap = dir.join(name);
    let mut words = vec![script.to_str().expect("utf-8 path")];
    words.extend_from_slice(args);
    let out = tracked(python(), &cap, &words, dir, b"");
    assert!(out.status.success(), "{out:?}");
    cap
}

/// `capture` with `memtrace run` options before the script.
fn capture_with(dir: &Path, script: &Path, name: &str, options: &[&str]) -> PathBuf {
    let cap = dir.join(name);
    let mut words = options.to_vec();
    words.push(script.to_str().expect("utf-8 path"));
    let out = tracked(python(), &cap, &words, dir, b"");
    assert!(out.status.success(), "{out:?}");
    cap
}

fn memtrace(args: &[&str]) {
    let out = Command::new(memtrace_bin()).args(args).output_watched();
    assert!(
        out.status.success(),
        "memtrace {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The page's "by type" section on examples/objects.py (100,000 `Point`s built on line 28 and
/// kept): the type is live at the peak and at exit, and opening it shows its line.
#[test]
fn the_page_shows_the_types_in_chromium() {
    let dir = scratch("browser-types");
    let script = memtrace_e2e::workspace().join("examples/objects.py");
    let cap = capture(&dir, &script, "objects.bin", &[]);
    let report = dir.join("objects.html");
    flamegraph_page(&cap, &report);
    let file = script.display().to_string();
    let points = format!("build at {file}:28");
    let shots = browser::explore(&Explore {
        report: &report,
        name: "types",
        names: &[format!("<module> at {file}:32"), points.clone()],
        zoom: &points,
        beside: &format!("build at {file}:27"),
        hover: &format!("Frame: {points} ("),
        phases: None,
        native: None,
        types: Some(serde_json::json!({
            "type": "__main__.Point",
            "line": "objects.py:28",
            "objects": "100,000",
        })),
    });
    assert!(
        shots.iter().any(|s| s.ends_with("types-types.png")),
        "{shots:?}"
    );
}

/// A recursion 3,990 calls deep under `<module>` (stacks are kept to 4,096 frames), beside a
/// shallow block.
const DEEP: &str = "\
import sys
sys.setrecursionlimit(10_000)
def leaf():
    return bytearray(2_000_000)
def down(n):
    if n == 0:
        return leaf()
    return down(n - 1)
def other():
    return bytearray(1_000_000)
keep = [down(3990), other()]
";

#[test]
fn a_page_of_stacks_thousands_of_frames_deep_works_in_chromium() {
    // The page laid its frames out with a JavaScript call per level, which gave out near 3,300
    // levels: nothing was drawn and every control threw.
    let dir = scratch("browser-deep");
    let script = write(&dir, "deep.py", DEEP);
    let cap = capture(&dir, &script, "deep.bin", &[]);
    let report = dir.join("deep.html");
    flamegraph_page(&cap, &report);
    let file = script.display().to_string();
    let leaf = format!("leaf at {file}:4");
    browser::explore(&Explore {
        report: &report,
        name: "deep",
        names: &[
            format!("<module> at {file}:11"),
            format!("down at {file}:8"),
            format!("down at {file}:7"),
            leaf.clone(),
        ],
        zoom: &format!("down at {file}:7"),
        beside: &format!("other at {file}:10"),
        // Its own bytes and blocks (none: leaf made them), and those below it.
        hover: "own 0 B in 0 allocations; 2 allocations in all",
        phases: None,
        native: None,
        types: None,
    });
}

#[test]
fn the_report_renders_and_zooms_in_chromium() {
    let dir = scratch("browser-report");
    let script = write(&dir, "towers.py", TWO_TOWERS);
    // --native: the interpreter's frames are recorded, hidden by default.
    let cap = capture_with(&dir, &script, "towers.bin", &["--native"]);
    let report = dir.join("towers.html");
    flamegraph_page(&cap, &report);
    let file = script.display().to_string();
    let h = format!("h at {file}:10");
    let shots = browser::explore(&Explore {
        report: &report,
        name: "flamegraph",
        names: &[
            format!("<module> at {file}:13"),
            format!("g at {file}:6"),
            format!("f at {file}:2"),
            h.clone(),
        ],
        zoom: &h,
        beside: &format!("g at {file}:6"),
        hover: &format!("Frame: {h} (5.7 MiB, 6,000,"),
        phases: None,
        native: Some(serde_json::json!({
            "outer": format!("<module> at {file}:13"),
            "inner": format!("<lambda> at {file}:13"),
            "between": "_PyEval_EvalFrameDefault",
            "below": "PyByteArray_Resize",
        })),
        types: None,
    });
    eprintln!("screenshots: {shots:?}");
}

#[test]
fn the_differential_report_renders_and_zooms_in_chromium() {
    let dir = scratch("browser-diff");
    let script = write(&dir, "twice.py", TWICE_AND_SAME);
    let base = capture(&dir, &script, "run1.bin", &["1"]);
    let new = capture(&dir, &script, "run2.bin", &["2"]);
    let report = dir.join("diff.html");
    memtrace(&[
        "flamegraph",
        "-o",
        report.to_str().expect("utf-8 path"),
        "--diff",
        base.to_str().expect("utf-8 path"),
        new.to_str().expect("utf-8 path"),
    ]);
    let file = script.display().to_string();
    let same = format!("same at {file}:9");
    let (shot, zoomed) = browser::check(&Check {
        report: &report,
        name: "flamegraph-diff",
        names: &[format!("block at {file}:5"), same.clone()],
        zoom: &same,
        beside: &format!("block at {file}:5"),
        hover: &format!("Frame: {same} (4,000,033 → 4,000,033 bytes, +0 bytes, 0%)"),
    });
    eprintln!("screenshots: {} {}", shot.display(), zoomed.display());
}

/// Two phases a sleep apart, each holding its own line's memory; a thread in phase two; a
/// module whose import keeps memory; a function and a file named with markup; at the end, an
/// allocation on a thread that runs no Python code.
const PHASES: &str = "\
import threading
import time

import helper

space = {}
exec(compile('def evil():\\n    return bytearray(2_000_000)\\n', '<script>alert(1)</script>', 'exec'), space)
evil = space['evil']
name = '<img src=x onerror=alert(2)>'
changes = {'co_name': name}
if hasattr(evil.__code__, 'co_qualname'):
    changes['co_qualname'] = name
evil.__code__ = evil.__code__.replace(**changes)


def phase_one():
    return [bytearray(1_000_000) for _ in range(20)]


def worker(out):
    out.append(bytearray(3_000_000))


def phase_two():
    kept = [bytearray(1_000_000) for _ in range(30)]
    out = []
    t = threading.Thread(target=worker, args=(out,))
    t.start()
    t.join()
    return kept, out, evil()


def main():
    a = phase_one()
    time.sleep(0.6)
    del a
    b = phase_two()
    time.sleep(0.6)
    del b


main()
# A thread that runs no Python code (it calls bytearray straight from C, and len on it): its
# allocation has no frame, the page's <unknown>. The script waits for it (a fixed sleep ended
# before the thread ran on a loaded machine).
done = __import__('collections').deque()
__import__('_thread').start_new_thread(done.extend, (map(len, map(bytearray, [100_000])),))
for _ in range(6000):
    if done:
        break
    time.sleep(0.01)
";

#[test]
fn the_page_picks_ranges_moments_threads_and_frames_in_chromium() {
    let dir = scratch("browser-phases");
    write(&dir, "helper.py", "DATA = bytearray(5_000_000)\n");
    let script = write(&dir, "phases.py", PHASES);
    let cap = capture(&dir, &script, "phases.bin", &[]);
    let report = dir.join("phases.html");
    flamegraph_page(&cap, &report);
    let file = script.display().to_string();
    let helper = dir.join("helper.py").display().to_string();
    let outer = format!("<module> at {file}:42");
    let two = format!("phase_two at {file}:25");
    let shots = browser::explore(&Explore {
        report: &report,
        name: "phases",
        names: &[outer.clone(), format!("main at {file}:37"), two.clone()],
        zoom: &two,
        beside: &format!("<module> at {helper}:1"),
        hover: &format!("Frame: {two} ("),
        phases: Some(serde_json::json!({
            "one": format!("phase_one at {file}:17"),
            "source_one": "return [bytearray(1_000_000) for _ in range(20)]",
            "two": two,
            "worker": format!("worker at {file}:21"),
            "module": format!("<module> at {helper}:1"),
            "evil": "<img src=x onerror=alert(2)> at <script>alert(1)</script>:2",
            "outer": outer,
        })),
        native: None,
        types: None,
    });
    assert_eq!(shots.len(), 9, "{shots:?}");
    eprintln!("screenshots: {shots:?}");
}

#[test]
fn the_family_page_stacks_each_process_and_filters_by_process_in_chromium() {
    let dir = scratch("browser-family");
    let script = write(&dir, "both.py", TWO_CHILDREN);
    let cap = dir.join("family.bin");
    let out = Command::new(memtrace_bin())
        .args(["run", "-q", "-f", "--follow-fork", "-o"])
        .arg(&cap)
        .arg("--python")
        .arg(python())
        .arg(&script)
        .current_dir(&dir)
        .output_watched();
    assert!(out.status.success(), "{out:?}");
    let kids: Vec<u32> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    assert_eq!(kids.len(), 2, "{out:?}");
    let stats = Command::new(memtrace_bin())
        .args(["stats", "--json"])
        .arg(&cap)
        .output_watched();
    assert!(stats.status.success(), "{stats:?}");
    let s: serde_json::Value = serde_json::from_slice(&stats.stdout).expect("JSON");
    let combined = s["combined_peak_bytes"].as_u64().expect("a combined peak");
    assert!(combined >= 60_000_000, "{combined}");
    // The children's labels, as the page names them (`pid 123: command`, cut at 80).
    let label = |pid: u32| {
        let p = s["processes"]
            .as_array()
            .expect("processes")
            .iter()
            .find(|p| p["pid"].as_u64() == Some(u64::from(pid)))
            .unwrap_or_else(|| panic!("no process {pid}"));
        let command = p["command"].as_str().expect("a command");
        let short = if command.chars().count() <= 80 {
            command.to_string()
        } else {
            format!("{}...", command.chars().take(77).collect::<String>())
        };
        format!("pid {pid}: {short}")
    };
    let processes: Vec<String> = kids.iter().map(|&k| label(k)).collect();
    let report = dir.join("family.html");
    flamegraph_page(&cap, &report);
    let shots = browser::family(&browser::Family {
        report: &report,
        name: "family",
        combined_peak: combined,
        processes: &processes,
        pick: &processes[0],
        pick_frame: &format!("hold at {}:5", script.display()),
    });
    assert_eq!(shots.len(), 3, "{shots:?}");
    eprintln!("screenshots: {shots:?}");
}

/// Writes the flamegraph page of `cap` to `report`.
fn flamegraph_page(cap: &Path, report: &Path) {
    memtrace(&[
        "flamegraph",
        "-o",
        report.to_str().expect("utf-8 path"),
        cap.to_str().expect("utf-8 path"),
    ]);
}

/// A capture made under a cgroup v2 memory limit (a stand-in cgroup tree: MEMTRACE_CGROUP_ROOT)
/// and its page: `limit` bytes recorded; None when this machine has no cgroup v2 hierarchy.
fn capture_under_limit(dir: &Path, script: &Path, name: &str, limit: u64) -> Option<PathBuf> {
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").expect("/proc/self/cgroup");
    let path = cgroups.lines().find_map(|l| l.strip_prefix("0::"))?;
    let root = dir.join(format!("cgroup-{name}"));
    let own = root.join(path.trim_start_matches('/'));
    std::fs::create_dir_all(&own).expect("mkdir");
    std::fs::write(own.join("memory.max"), format!("{limit}\n")).expect("write memory.max");
    let cap = dir.join(format!("{name}.bin"));
    let out = Command::new(memtrace_bin())
        .args(["run", "-q", "-f", "--python"])
        .arg(python())
        .arg("-o")
        .arg(&cap)
        .arg(script)
        .env("MEMTRACE_CGROUP_ROOT", &root)
        .current_dir(dir)
        .output_watched();
    assert!(out.status.success(), "{out:?}");
    let report = dir.join(format!("{name}.html"));
    flamegraph_page(&cap, &report);
    Some(report)
}

/// The cgroup memory limit on the page's chart: a dashed line at its height, labelled with it,
/// when it is within 4 times the heap's highest value (64 MiB over a 20 MB heap); only its
/// label, at the top, when far above (8 GiB).
#[test]
fn the_page_draws_the_cgroup_memory_limit_in_chromium() {
    let dir = scratch("browser-limit");
    let script = write(&dir, "twenty.py", "keep = bytearray(20_000_000)\n");
    let Some(on_scale) = capture_under_limit(&dir, &script, "on-scale", 64 << 20) else {
        eprintln!("no cgroup v2 hierarchy here: skipped");
        return;
    };
    let above = capture_under_limit(&dir, &script, "above", 8 << 30).expect("cgroup v2");
    let shots = browser::limit(&Limit {
        on_scale: (&on_scale, 64 << 20, "cgroup memory limit 64.0 MiB"),
        above: (
            &above,
            8 << 30,
            "cgroup memory limit 8.0 GiB (above the chart's scale)",
        ),
    });
    assert_eq!(shots.len(), 2, "{shots:?}");
}

/// The page's sizes read as `memtrace stats` prints them: one decimal, an exact tie (a value
/// ending in .25 or .75) to the even digit, as Rust formats it (toFixed rounded 781.25 up).
#[test]
fn the_page_rounds_sizes_as_the_command_line_does() {
    let js = std::fs::read_to_string(
        memtrace_e2e::workspace().join("reporter/src/flamegraph/assets/page.js"),
    )
    .expect("page.js");
    let start = js.find("  function fixed1(").expect("fixed1");
    let end = start + js[start..].find("  function size(").expect("size");
    let values = [
        781.25, 781.75, 0.25, 0.75, 1.05, 2.5, 781.3, 1023.95, 12.349,
    ];
    let list: Vec<String> = values.iter().map(f64::to_string).collect();
    let program = format!(
        "{}\nconsole.log([{}].map(fixed1).join(' '));",
        &js[start..end],
        list.join(",")
    );
    let out = Command::new("node")
        .args(["-e", &program])
        .output()
        .expect("the browser tests need node on PATH");
    assert!(out.status.success(), "{out:?}");
    let want: Vec<String> = values.iter().map(|v| format!("{v:.1}")).collect();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), want.join(" "));
}
