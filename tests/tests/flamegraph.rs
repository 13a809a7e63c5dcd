//! `memtrace flamegraph`: the HTML page of a Python script with known allocation sites is one
//! self-contained file whose embedded data names them with their exact bytes, adds up to the
//! peak in every view and time bucket, and embeds the source lines; a capture of thousands of
//! distinct stacks still gives a small file.

use memtrace_e2e::page::{
    each_bucket_holds_its_high_water_mark, innermost, page_data, self_contained,
};
use memtrace_e2e::python::KNOWN_SITE;
use memtrace_e2e::python::{python, tracked, write};
use memtrace_e2e::watchdog::Watched;
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
        .output_watched();
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
    let data = page_data(&html);
    let file = dir.join("known.py").display().to_string();
    let frames: Vec<&str> = data["frames"]
        .as_array()
        .expect("frames")
        .iter()
        .filter_map(|f| f[0].as_str())
        .collect();
    for name in [
        format!("f at {file}:2"),
        format!("g at {file}:6"),
        format!("<module> at {file}:10"),
    ] {
        assert!(frames.contains(&name.as_str()), "{name} not in the page");
    }
    // The largest group at the peak is f's line, with its exact bytes; f's source line is
    // embedded for the hover.
    let groups = data["groups"].as_array().expect("groups");
    let top = groups
        .iter()
        .max_by_key(|g| g["peak"][0].as_u64())
        .expect("a group");
    assert_eq!(innermost(&data, top), format!("f at {file}:2"));
    assert_eq!(top["peak"], serde_json::json!([10_000_033, 1]));
    // Its allocator (a bit per allocator, named in meta): Python's object allocator.
    assert_eq!(data["meta"]["allocators"][9], "pymalloc_malloc");
    assert_eq!(top["a"], 1 << 9);
    let f = data["frames"]
        .as_array()
        .and_then(|fs| {
            fs.iter()
                .find(|f| f[0] == format!("f at {file}:2").as_str())
        })
        .expect("f's frame");
    assert_eq!(f[4], "return b\"\\0\" * n");
    // Nothing is lost: the groups add up to the peak, at the peak and in the time bucket of
    // the peak's high-water mark.
    let peak = data["meta"]["peak"].as_u64().expect("peak");
    let at_peak: u64 = groups.iter().filter_map(|g| g["peak"][0].as_u64()).sum();
    assert_eq!(at_peak, peak);
    let hwm: Vec<u64> = data["buckets"]["hwm"]
        .as_array()
        .expect("hwm")
        .iter()
        .filter_map(|v| v.as_u64())
        .collect();
    assert_eq!(hwm.len(), 200);
    assert_eq!(hwm.iter().max(), Some(&peak));
    each_bucket_holds_its_high_water_mark(&data, &hwm, peak);
    // The chart's series: the heap and the resident size.
    assert!(!data["heap"].as_array().expect("heap").is_empty());
    assert!(!data["rss"].as_array().expect("rss").is_empty());
    assert!(data["meta"]["peak_at_s"].as_f64() > Some(0.0));
    assert_eq!(data["initial"]["inverted"], false);
    assert_eq!(data["initial"]["view"], "peak");
    // -o, --inverted and --leaks start the page there.
    let inverted = dir.join("icicle.html");
    let path = inverted.to_string_lossy().into_owned();
    flamegraph(&cap, &["--inverted", "--leaks", "-o", &path]);
    let icicle = page_data(&std::fs::read_to_string(&inverted).expect("written"));
    assert_eq!(icicle["initial"]["inverted"], true);
    assert_eq!(icicle["initial"]["view"], "leaks");
    assert_eq!(icicle["frames"], data["frames"]);
}

#[test]
fn many_stacks_give_a_small_page() {
    let (dir, cap) = capture("flamegraph-many", MANY_STACKS);
    // The export holds every stack; the page merges the small ones.
    let folded = Command::new(memtrace_bin())
        .args(["export", "--format", "folded"])
        .arg(&cap)
        .output_watched();
    let generated = String::from_utf8_lossy(&folded.stdout)
        .lines()
        .filter(|l| l.contains("generated.py"))
        .count();
    assert!(generated >= 5000, "{generated} generated stacks");
    flamegraph(&cap, &[]);
    let html = std::fs::read_to_string(dir.join("known.html")).expect("written");
    self_contained(&html);
    assert!(html.len() < 1 << 20, "{} bytes", html.len());
    let data = page_data(&html);
    let groups = data["groups"].as_array().expect("groups");
    // Most stacks went into "other", which keeps their share: the groups still add up to the
    // peak, at the peak and at the peak's time bucket.
    assert!(data["merged"].as_u64() > Some(4000), "{}", data["merged"]);
    assert!(groups.len() < 100, "{} groups", groups.len());
    assert!(groups
        .iter()
        .any(|g| innermost(&data, g) == "other (small stacks)"));
    let peak = data["meta"]["peak"].as_u64().expect("peak");
    let at_peak: u64 = groups.iter().filter_map(|g| g["peak"][0].as_u64()).sum();
    assert_eq!(at_peak, peak);
    let hwm: Vec<u64> = data["buckets"]["hwm"]
        .as_array()
        .expect("hwm")
        .iter()
        .filter_map(|v| v.as_u64())
        .collect();
    each_bucket_holds_its_high_water_mark(&data, &hwm, peak);
    let all: u64 = groups.iter().filter_map(|g| g["all"][1].as_u64()).sum();
    assert_eq!(
        all,
        data["meta"]["total_allocations"].as_u64().expect("total")
    );
}

/// A recursive build: each of its 2**13 leaves is reached through its own path of calls from
/// line 5 and line 6, so no stack holds 0.1% of the peak, and `build` holds nearly all of it.
const RECURSIVE: &str = "\
def build(d):
    if d == 0:
        return bytearray(2000)
    return (build(d - 1),
            build(d - 1))
t = build(13)
";

/// How many of the page's frames are `function`'s (by name, any line), and the bytes at the
/// peak of the groups whose stacks pass through one of them: what the page draws under it.
fn peak_under(data: &serde_json::Value, function: &str) -> (usize, u64) {
    let frames = data["frames"].as_array().expect("frames");
    let ids: Vec<u64> = (0..frames.len() as u64)
        .filter(|&i| {
            frames[i as usize][0]
                .as_str()
                .is_some_and(|n| n.starts_with(function))
        })
        .collect();
    let through = |g: &&serde_json::Value| {
        data["stacks"][g["s"].as_u64().expect("s") as usize]
            .as_array()
            .is_some_and(|s| {
                s.iter()
                    .any(|f| f.as_u64().is_some_and(|f| ids.contains(&f)))
            })
    };
    let bytes = data["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .filter(through)
        .filter_map(|g| g["peak"][0].as_u64())
        .sum();
    (ids.len(), bytes)
}

/// The bytes at the peak under `function` (every line of it, nested calls counted once), as
/// `memtrace summary` (and `tree`) give them. (The tree's JSON of 15,000 stacks is some 20 MB:
/// read into the test's process, its size showed in the resident size other tests measure of
/// the reports they start.)
fn function_total(cap: &Path, function: &str) -> i64 {
    let summary = memtrace_e2e::report(&["summary", "--json", "-n", "100"], cap);
    summary["rows"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["function"] == function))
        .and_then(|r| r["total_bytes"].as_i64())
        .unwrap_or_else(|| panic!("no {function} in {summary}"))
}

#[test]
fn small_stacks_are_merged_under_the_callers_they_share() {
    // They were merged into one "other" at the root: `build` was not on the page at all.
    let (dir, cap) = capture("flamegraph-recursive", RECURSIVE);
    flamegraph(&cap, &[]);
    let data = page_data(&std::fs::read_to_string(dir.join("known.html")).expect("written"));
    assert!(data["merged"].as_u64() > Some(4000), "{}", data["merged"]);
    let (builds, under_build) = peak_under(&data, "build");
    assert!(builds > 0, "{}", data["frames"]);
    // What the page draws under `build` is what `tree` gives it: every group through it.
    let groups = data["groups"].as_array().expect("groups");
    let in_tree = function_total(&cap, "build");
    assert!(in_tree >= 8192 * 2000, "{in_tree}");
    assert_eq!(under_build as i64, in_tree);
    // The "other" frames sit under `build`, none at the root with the bulk of it.
    let at_root_other: u64 = groups
        .iter()
        .filter(|g| {
            data["stacks"][g["s"].as_u64().expect("s") as usize]
                .as_array()
                .map(Vec::len)
                == Some(1)
        })
        .filter(|g| innermost(&data, g) == "other (small stacks)")
        .filter_map(|g| g["peak"][0].as_u64())
        .sum();
    assert!(
        at_root_other * 100 < in_tree as u64,
        "{at_root_other} of {in_tree} at the root"
    );
    // Every byte is still there once.
    let peak = data["meta"]["peak"].as_u64().expect("peak");
    let at_peak: u64 = groups.iter().filter_map(|g| g["peak"][0].as_u64()).sum();
    assert_eq!(at_peak, peak);
}

/// 15,000 small stacks through five functions, each given a block in each of 30 rounds: many
/// values of the time buckets, more than the page's room when each stack's own are counted.
const SPREAD_OVER_TIME: &str = "\
import time
keep = []
def f0(n, k): g(n, k)
def f1(n, k): g(n, k)
def f2(n, k): g(n, k)
def f3(n, k): g(n, k)
def f4(n, k): g(n, k)
FS = [f0, f1, f2, f3, f4]
def g(n, k):
    if n == 0:
        keep.append(bytearray(200))
        return
    FS[(k // 5 ** (n - 1)) % 5](n - 1, k)
def build():
    for r in range(30):
        for k in range(15000):
            FS[k % 5](6, k)
        time.sleep(0.02)
build()
";

#[test]
fn small_stacks_of_many_moments_are_merged_under_their_callers_too() {
    // Their own values of the time buckets added up past the page's room at every cut, and all
    // of them went to one "other" at the root: `build` drew 3.5% of the peak for its 96%.
    let (dir, cap) = capture("flamegraph-spread", SPREAD_OVER_TIME);
    flamegraph(&cap, &[]);
    let data = page_data(&std::fs::read_to_string(dir.join("known.html")).expect("written"));
    let (_, under_build) = peak_under(&data, "build");
    let in_tree = function_total(&cap, "build");
    assert!(in_tree >= 30 * 15000 * 200, "{in_tree}");
    // All of it but what a line of `build` holding under 0.1% of every view allocated (its
    // `time.sleep`): that goes under `<module>`'s "other".
    let under_build = under_build as i64;
    assert!(
        under_build <= in_tree && under_build * 1000 >= in_tree * 999,
        "{under_build} of {in_tree}"
    );
}

/// One line reached from 3,000 callers, each stack 0.03% of the peak: 75% of the peak at one
/// location.
const ONE_LINE_MANY_CALLERS: &str = "\
keep = []
def alloc(n):
    keep.append(bytearray(n))
source = ''.join(f'def c{i}(): alloc(10_000)\\n' for i in range(3000))
exec(source)
for i in range(3000):
    globals()[f'c{i}']()
";

#[test]
fn a_line_reached_from_many_small_stacks_keeps_its_bytes_on_the_page() {
    // The small stacks were merged into "other" with their innermost frame: the page's table
    // of locations, its search and its inverted view gave `alloc`'s line 35 KiB of 28.8 MiB.
    let (dir, cap) = capture("flamegraph-one-line", ONE_LINE_MANY_CALLERS);
    flamegraph(&cap, &[]);
    let data = page_data(&std::fs::read_to_string(dir.join("known.html")).expect("written"));
    assert!(data["merged"].as_u64() > Some(2000), "{}", data["merged"]);
    let groups = data["groups"].as_array().expect("groups");
    let line_3 = |g: &&serde_json::Value| innermost(&data, g).ends_with("known.py:3");
    let on_page: u64 = groups
        .iter()
        .filter(line_3)
        .filter_map(|g| g["peak"][0].as_u64())
        .sum();
    let csv = Command::new(memtrace_bin())
        .args(["export", "--format", "csv"])
        .arg(&cap)
        .output_watched();
    let csv = String::from_utf8_lossy(&csv.stdout).into_owned();
    let row = csv
        .lines()
        .find(|l| l.contains("known.py:3,"))
        .unwrap_or_else(|| panic!("no line 3 in {csv}"));
    let live: u64 = row
        .split(',')
        .nth(4)
        .and_then(|v| v.parse().ok())
        .expect("live bytes");
    assert!(live >= 3000 * 10_000, "{row}");
    assert_eq!(on_page, live, "{row}");
    // Every byte is still there once.
    let peak = data["meta"]["peak"].as_u64().expect("peak");
    let at_peak: u64 = groups.iter().filter_map(|g| g["peak"][0].as_u64()).sum();
    assert_eq!(at_peak, peak);
}

#[test]
fn a_missing_capture_is_a_one_line_error() {
    let out = Command::new(memtrace_bin())
        .args(["flamegraph", "/nonexistent/x.bin"])
        .output_watched();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("memtrace: "), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

/// A page is made again at its path, but a file memtrace did not write there (another capture,
/// notes) is kept unless --force is given; `export -o` keeps a capture the same way.
#[test]
fn an_existing_capture_or_other_file_is_not_overwritten_without_force() {
    let (dir, cap) = capture("flamegraph-overwrite", "x = bytearray(1000)\n");
    let run = |args: &[&str]| {
        Command::new(memtrace_bin())
            .args(args)
            .current_dir(&dir)
            .output_watched()
    };
    // The default page, twice: a page memtrace wrote is made again.
    flamegraph(&cap, &[]);
    flamegraph(&cap, &[]);
    let notes = dir.join("notes.html");
    let other = dir.join("other.bin");
    std::fs::write(&notes, b"precious").expect("write");
    std::fs::copy(&cap, &other).expect("copy");
    let kept = std::fs::read(&other).expect("read");
    for (args, target) in [
        (vec!["flamegraph", "-o", "notes.html", "known.bin"], &notes),
        (vec!["flamegraph", "-o", "other.bin", "known.bin"], &other),
        (
            vec!["export", "--format", "csv", "-o", "other.bin", "known.bin"],
            &other,
        ),
        // A file that is not an export (it replaced a script named by mistake).
        (
            vec![
                "export",
                "--format",
                "folded",
                "-o",
                "notes.html",
                "known.bin",
            ],
            &notes,
        ),
    ] {
        let before = std::fs::read(target).expect("read");
        let out = run(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains("--force"), "{args:?}: {err}");
        assert_eq!(std::fs::read(target).expect("read"), before, "{args:?}");
    }
    assert_eq!(std::fs::read(&other).expect("read"), kept);
    let out = run(&["flamegraph", "--force", "-o", "notes.html", "known.bin"]);
    assert!(out.status.success(), "{out:?}");
    assert!(std::fs::read_to_string(&notes)
        .expect("read")
        .contains("memtrace"));
    let out = run(&[
        "export",
        "--format",
        "csv",
        "--force",
        "-o",
        "other.bin",
        "known.bin",
    ]);
    assert!(out.status.success(), "{out:?}");
    // The capture was replaced by the table.
    assert!(!std::fs::read(&other)
        .expect("read")
        .starts_with(b"MEMTRACE"));
    // An export memtrace wrote is made again, in any format over any other.
    for format in ["csv", "folded", "speedscope", "pprof", "csv"] {
        let out = run(&["export", "--format", format, "-o", "sites.out", "known.bin"]);
        assert!(out.status.success(), "{format}: {out:?}");
    }
    // `-o -` is stdout, as export's is (it wrote a file named `-`).
    let out = run(&["flamegraph", "-o", "-", "known.bin"]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        out.stdout.ends_with(b"</html>\n"),
        "{} bytes",
        out.stdout.len()
    );
    assert!(!dir.join("-").exists());
}

/// A program that frees half its memory and ends within one coarse tick: the chart's line
/// stayed at the last stretch's highest value, far above what was live at the end.
#[test]
fn the_chart_ends_at_what_was_live_at_the_end() {
    let dir = scratch("flamegraph-chart-end");
    let prog = memtrace_e2e::compile("free_then_end", &dir);
    let cap = dir.join("end.bin");
    let out = Command::new(memtrace_bin())
        .args(["run", "-q", "-f", "-o"])
        .arg(&cap)
        .arg("--")
        .arg(&prog)
        .output_watched();
    assert!(out.status.success(), "{out:?}");
    flamegraph(&cap, &[]);
    let data = page_data(&std::fs::read_to_string(dir.join("end.html")).expect("written"));
    let heap = data["heap"].as_array().expect("the heap's line");
    let last = heap.last().and_then(|p| p[1].as_u64()).expect("a point");
    let live_at_end = data["meta"]["leaked"].as_u64().expect("live at the end");
    assert!(live_at_end >= 500 * 100_000, "{live_at_end}");
    assert_eq!(last, live_at_end, "{heap:?}");
    let highest = heap.iter().filter_map(|p| p[1].as_u64()).max();
    assert_eq!(highest, data["meta"]["peak"].as_u64());
}

/// An existing output the user cannot read is neither taken for an empty export (and replaced
/// through its directory) nor refused as "not a page" with a --force that fails in turn: the
/// line says it cannot be read, and the file is as it was.
#[test]
fn an_output_the_user_cannot_read_is_left_and_the_reason_said() {
    if !memtrace_e2e::is_root() {
        eprintln!("skipped: switching to another user needs root");
        return;
    }
    let (dir, cap) = capture("flamegraph-unreadable", "x = bytearray(1000)\n");
    let locked = dir.join("locked.html");
    std::fs::write(&locked, b"secret").expect("write");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    for p in [&dir, &cap] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    }
    let as_nobody = |args: &[&str]| {
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(memtrace_bin())
            .args(args)
            .current_dir(&dir)
            .output_watched()
    };
    for args in [
        vec!["flamegraph", "-o", "locked.html", "known.bin"],
        vec![
            "export",
            "--format",
            "csv",
            "-o",
            "locked.html",
            "known.bin",
        ],
    ] {
        let out = as_nobody(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        if err.contains("setpriv") {
            eprintln!("skipped: setpriv does not run here: {err}");
            return;
        }
        assert_eq!(out.status.code(), Some(1), "{args:?}: {out:?}");
        assert!(
            err.ends_with("cannot replace locked.html: permission denied (it cannot be read)\n"),
            "{args:?}: {err}"
        );
        assert_eq!(std::fs::read(&locked).expect("read"), b"secret");
    }
}
