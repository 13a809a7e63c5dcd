//! Object types: what is live at exit by Python type (`stats` table and `--json`, `tree
//! --by-type`, `summary --by-type`), with exact counts and bytes for two classes of known sizes
//! on every claimed Python; what is live at the peak by type (typed frees), for two classes
//! whose objects are all freed before exit; a native capture and bad arguments refused in one
//! line each.

use memtrace_e2e::python::{claimed_pythons, tracked, write};
use memtrace_e2e::{compile, memtrace, record, scratch, workspace};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Two classes with `__slots__` (no dict, no weak references: each object is one block of
/// `sys.getsizeof` bytes on every version) and a known number of each live at exit; the script
/// prints the two sizes. A third class with a dict, whose size varies by version, is counted.
const SCRIPT: &str = "\
import sys
class Pair:
    __slots__ = (\"left\", \"right\")

class Quad:
    __slots__ = (\"a\", \"b\", \"c\", \"d\")

class Plain:
    pass

pairs = []
quads = []
for i in range(3000):
    pairs.append(Pair())
for i in range(1200):
    quads.append(Quad())
plain = [Plain() for i in range(700)]
print(sys.getsizeof(pairs[0]), sys.getsizeof(quads[0]))
";
const PAIRS: u64 = 3000;
const QUADS: u64 = 1200;
const PLAINS: u64 = 700;

fn run(python: &Path, dir: &Path) -> (PathBuf, u64, u64) {
    let script = write(dir, "known.py", SCRIPT);
    let capture = dir.join("known.bin");
    let sizes = tracked_sizes(python, &script, &capture, dir);
    assert_eq!(sizes.len(), 2, "{sizes:?}");
    (capture, sizes[0], sizes[1])
}

/// Runs `script` under memtrace into `capture` and returns the sizes it prints.
fn tracked_sizes(python: &Path, script: &Path, capture: &Path, dir: &Path) -> Vec<u64> {
    let out = tracked(
        python,
        capture,
        &[script.to_str().expect("utf-8")],
        dir,
        b"",
    );
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(|w| w.parse().expect("a size"))
        .collect()
}

fn json(args: &[&str], dir: &Path) -> Value {
    let out = memtrace(args, dir);
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).expect("JSON")
}

fn entry<'a>(list: &'a Value, name: &str) -> &'a Value {
    list.as_array()
        .expect("a list")
        .iter()
        .find(|e| e["type"] == name)
        .unwrap_or_else(|| panic!("no type {name} in {list}"))
}

#[test]
fn known_classes_have_exact_counts_and_bytes_on_every_claimed_python() {
    for (minor, python) in claimed_pythons() {
        let dir = scratch(&format!("types-3{minor}"));
        let (capture, pair_size, quad_size) = run(&python, &dir);
        let path = capture.to_str().expect("utf-8");
        let stats = json(&["stats", "--json", path], &dir);
        let types = &stats["types"];
        assert!(
            types["covered"]
                .as_str()
                .is_some_and(|c| c.starts_with("peak and exit")),
            "3.{minor}: {types}"
        );
        // Live at exit, so live at the peak too.
        let peak_pair = entry(&types["peak"], "__main__.Pair");
        assert_eq!(peak_pair["objects"], PAIRS, "3.{minor}: {peak_pair}");
        let exit = &types["exit"];
        let pair = entry(exit, "__main__.Pair");
        assert_eq!(pair["objects"], PAIRS, "3.{minor}: {pair}");
        assert_eq!(pair["bytes"], PAIRS * pair_size, "3.{minor}: {pair}");
        let quad = entry(exit, "__main__.Quad");
        assert_eq!(quad["objects"], QUADS, "3.{minor}: {quad}");
        assert_eq!(quad["bytes"], QUADS * quad_size, "3.{minor}: {quad}");
        assert_eq!(
            entry(exit, "__main__.Plain")["objects"],
            PLAINS,
            "3.{minor}"
        );
        // Every byte live at exit is in exactly one row ("<no object>" included).
        let sum: u64 = exit
            .as_array()
            .expect("rows")
            .iter()
            .map(|e| e["bytes"].as_u64().expect("bytes"))
            .sum();
        assert_eq!(sum, stats["leaked_bytes"], "3.{minor}: {exit}");

        // The by-type views: each type expands to the line that allocated its objects.
        for command in ["tree", "summary"] {
            // At the peak by default, as the other views: every Pair is live there too.
            let v = json(&[command, "--by-type", "--json", path], &dir);
            assert_eq!(v["view"], "peak");
            let pair = entry(&v["types"], "__main__.Pair");
            assert_eq!(
                pair["objects"], PAIRS,
                "3.{minor} {command} at the peak: {pair}"
            );
            assert_eq!(pair["lines"][0]["line"], 14, "3.{minor} {command}: {pair}");
            let v = json(&[command, "--by-type", "--leaks", "--json", path], &dir);
            assert_eq!(v["view"], "leaks");
            let pair = entry(&v["types"], "__main__.Pair");
            assert_eq!(pair["objects"], PAIRS, "3.{minor} {command}: {pair}");
            assert_eq!(pair["bytes"], PAIRS * pair_size, "3.{minor} {command}");
            let lines = pair["lines"].as_array().expect("lines");
            assert_eq!(lines.len(), 1, "3.{minor} {command}: {pair}");
            assert_eq!(lines[0]["line"], 14, "3.{minor} {command}: {pair}");
            assert_eq!(lines[0]["allocations"], PAIRS, "3.{minor} {command}");
            assert_eq!(lines[0]["bytes"], PAIRS * pair_size, "3.{minor} {command}");
            let quad = entry(&v["types"], "__main__.Quad");
            assert_eq!(quad["lines"][0]["line"], 16, "3.{minor} {command}: {quad}");
        }
    }
}

#[test]
fn the_text_reports_show_the_types() {
    let (_, python) = claimed_pythons().pop().expect("a claimed Python");
    let dir = scratch("types-text");
    let (capture, pair_size, _) = run(&python, &dir);
    let path = capture.to_str().expect("utf-8");
    let out = memtrace(&["stats", path], &dir);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Types live at the peak (peak and exit, CPython 3.10-3.13")
            && text.contains("\nTypes live at exit:\n"),
        "{text}"
    );
    let row = text
        .lines()
        .find(|l| l.trim_start().starts_with("__main__.Pair "))
        .unwrap_or_else(|| panic!("no Pair row in {text}"));
    let words: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(words[1], "3,000", "{row}");
    let kib = format!("{:.1}", (PAIRS * pair_size) as f64 / 1024.0);
    assert_eq!(&words[2..], [kib.as_str(), "KiB"], "{row}");

    let out = memtrace(&["tree", "--by-type", path], &dir);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.ends_with("objects  __main__.Pair"))
        .unwrap_or_else(|| panic!("no Pair node in {text}"));
    assert!(lines[at].contains("3,000 objects"), "{text}");
    let site = format!(
        "allocations  <module> at {}:14",
        dir.join("known.py").display()
    );
    assert!(lines[at + 1].ends_with(&site), "{text}");
}

/// Two classes built in a function and all freed when it returns: live at the peak only. The
/// script prints the two sizes (one block each: `__slots__`, no dict).
const PEAK_SCRIPT: &str = "\
import sys
class Left:
    __slots__ = (\"a\",)

class Right:
    __slots__ = (\"a\", \"b\", \"c\")

def build():
    left = [Left() for i in range(8000)]
    right = [Right() for i in range(3000)]
    return sys.getsizeof(left[0]), sys.getsizeof(right[0])

print(*build())
";

#[test]
fn known_classes_at_the_peak_on_every_claimed_python() {
    for (minor, python) in claimed_pythons() {
        let dir = scratch(&format!("types-peak-3{minor}"));
        let script = write(&dir, "peak.py", PEAK_SCRIPT);
        let capture = dir.join("peak.bin");
        let sizes = tracked_sizes(&python, &script, &capture, &dir);
        let stats = json(&["stats", "--json", capture.to_str().expect("utf-8")], &dir);
        let peak = &stats["types"]["peak"];
        for (name, n, size) in [
            ("__main__.Left", 8000u64, sizes[0]),
            ("__main__.Right", 3000, sizes[1]),
        ] {
            let e = entry(peak, name);
            let objects = e["objects"].as_u64().expect("objects");
            // Within 1% (a block whose header the free could not read is "<no object>").
            assert!(
                objects <= n && objects * 100 >= n * 99,
                "3.{minor}: {name} {e}"
            );
            assert_eq!(e["bytes"], objects * size, "3.{minor}: {name} {e}");
            let exit = stats["types"]["exit"].as_array().expect("rows");
            assert!(exit.iter().all(|r| r["type"] != name), "3.{minor}: {name}");
        }
        // Every byte live at the peak is in exactly one row.
        let sum: u64 = peak
            .as_array()
            .expect("rows")
            .iter()
            .map(|e| e["bytes"].as_u64().expect("bytes"))
            .sum();
        assert_eq!(sum, stats["peak_bytes"], "3.{minor}: {peak}");
    }
}

/// A class made in a function and freed before the script's end, whose memory CPython gives to
/// a class made later (`Beta`, seen at the same address on 3.10 to 3.13), with the objects of a
/// class alive to the end (`Gamma`) beside it at the peak. Prints the two classes' object
/// sizes and whether Beta took Alpha's address.
const DEAD_CLASS_SCRIPT: &str = "\
import gc, sys
class Gamma:
    __slots__ = (\"g\",)
def phase():
    class Alpha:
        __slots__ = (\"a\",)
    alphas = [Alpha() for i in range(5000)]
    gammas = [Gamma() for i in range(700)]
    big = bytearray(4_000_000)
    return id(Alpha), sys.getsizeof(alphas[0]), sys.getsizeof(gammas[0])
alpha, alpha_size, gamma_size = phase()
gc.collect()
class Beta:
    __slots__ = (\"b\",)
betas = [Beta() for i in range(10)]
print(alpha_size, gamma_size, int(id(Beta) == alpha))
";

#[test]
fn objects_of_a_class_freed_before_the_end_are_named_from_its_line_on_every_claimed_python() {
    for (minor, python) in claimed_pythons() {
        let dir = scratch(&format!("types-dead-class-3{minor}"));
        let script = write(&dir, "dead.py", DEAD_CLASS_SCRIPT);
        let capture = dir.join("dead.bin");
        let printed = tracked_sizes(&python, &script, &capture, &dir);
        let (alpha_size, gamma_size, reused) = (printed[0], printed[1], printed[2]);
        let stats = json(&["stats", "--json", capture.to_str().expect("utf-8")], &dir);
        let peak = &stats["types"]["peak"];
        // The 5,000 objects of the class made at line 5 and freed: not Beta's, whether or not
        // Beta took Alpha's memory (it did on every version seen: `reused` says).
        let alpha = entry(peak, "<freed class of dead.py:5>");
        let objects = alpha["objects"].as_u64().expect("objects");
        assert!(
            objects <= 5000 && objects * 100 >= 5000 * 99,
            "3.{minor} (reused: {reused}): {alpha}"
        );
        assert_eq!(alpha["bytes"], objects * alpha_size, "3.{minor}: {alpha}");
        let rows = peak.as_array().expect("rows");
        assert!(
            rows.iter().all(|r| r["type"] != "__main__.Beta"),
            "3.{minor} (reused: {reused}): {peak}"
        );
        // A class alive to the end keeps its name.
        let gamma = entry(peak, "__main__.Gamma");
        let objects = gamma["objects"].as_u64().expect("objects");
        assert!(
            objects <= 700 && objects * 100 >= 700 * 99,
            "3.{minor}: {gamma}"
        );
        assert_eq!(gamma["bytes"], objects * gamma_size, "3.{minor}: {gamma}");
        // Every byte live at the peak is in exactly one row.
        let sum: u64 = rows
            .iter()
            .map(|e| e["bytes"].as_u64().expect("bytes"))
            .sum();
        assert_eq!(sum, stats["peak_bytes"], "3.{minor}: {peak}");
        // Beta, alive at the end, is named at exit.
        let exit = &stats["types"]["exit"];
        assert_eq!(
            entry(exit, "__main__.Beta")["objects"],
            10,
            "3.{minor}: {exit}"
        );
    }
}

#[test]
fn a_native_capture_and_bad_arguments_are_one_line_each() {
    let dir = scratch("types-errors");
    let prog = compile("reports", &dir);
    let (native, out) = record(&dir, "native.bin", &prog, &[]);
    assert!(out.status.success(), "{out:?}");
    let native = native.to_str().expect("utf-8");
    // stats: no types for a native program (null in JSON, no table in text).
    let stats = json(&["stats", "--json", native], &dir);
    assert_eq!(stats["types"], Value::Null);
    for command in ["tree", "summary"] {
        let out = memtrace(&[command, "--by-type", native], &dir);
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.starts_with("memtrace: ") && err.contains("has no object types"),
            "{err}"
        );
        let out = memtrace(&[command, "--by-type", "--temporary", native], &dir);
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.contains("'--by-type' cannot be used with '--temporary'"),
            "{err}"
        );
    }
}

#[test]
fn no_types_skips_the_walk_and_changes_no_figure() {
    let (_, python) = claimed_pythons().pop().expect("a claimed Python");
    let dir = scratch("types-off");
    let script = write(&dir, "known.py", SCRIPT);
    let script = script.to_str().expect("utf-8");
    let capture = dir.join("off.bin");
    let path = capture.to_str().expect("utf-8");
    let python = python.to_str().expect("utf-8");
    let out = memtrace(
        &[
            "run",
            "-q",
            "-f",
            "--no-types",
            "-o",
            path,
            "--python",
            python,
            script,
        ],
        &dir,
    );
    assert!(out.status.success(), "{out:?}");
    // The program's output is its own.
    assert_eq!(out.stdout.split(|&b| b == b' ').count(), 2, "{out:?}");
    let stats = json(&["stats", "--json", path], &dir);
    assert_eq!(stats["types"], Value::Null);
    assert!(
        stats["types_missing"]
            .as_str()
            .is_some_and(|w| w.contains("--no-types")),
        "{}",
        stats["types_missing"]
    );
    // Without types the capture has every other record: the classes' blocks are there, at
    // exit, on their lines.
    let on = json(&["lines", "--json", path], &dir);
    let file = &on["files"][0];
    let line14 = file["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .find(|l| l["line"] == 14)
        .expect("line 14");
    assert!(
        line14["exit_allocations"].as_u64().expect("n") >= PAIRS,
        "{line14}"
    );
    let out = memtrace(&["tree", "--by-type", path], &dir);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    // The same for CPython started by a native program (here a shell's exec): its capture
    // (`named.bin.exec1`) has types without the option and none with it.
    let named = dir.join("named.bin");
    let named = named.to_str().expect("utf-8");
    let shell_line = format!("exec {python} {script}");
    for (options, has_types) in [(&["--no-types"][..], false), (&[][..], true)] {
        let mut args = vec!["run", "-q", "-f", "-o", named];
        args.extend_from_slice(options);
        args.extend(["sh", "-c", &shell_line]);
        let out = memtrace(&args, &dir);
        assert!(out.status.success(), "{out:?}");
        let exec = format!("{named}.exec1");
        let types = &json(&["stats", "--json", &exec], &dir)["types"];
        assert_eq!(types != &Value::Null, has_types, "{options:?}: {types}");
    }
}

/// examples/objects.py, memory_profiler's and pympler's example (10,000 strings and 100,000
/// small objects built in one function and kept): exact counts and bytes by type at exit, each
/// on its line, and the objects at the peak. The script prints the two totals of sys.getsizeof.
#[test]
fn the_objects_example_has_exact_figures() {
    let (minor, python) = claimed_pythons().pop().expect("a claimed Python");
    let dir = scratch("types-example");
    let script = workspace().join("examples/objects.py");
    let capture = dir.join("objects.bin");
    let totals = tracked_sizes(&python, &script, &capture, &dir);
    let (string_bytes, point_bytes) = (totals[0], totals[1]);
    let path = capture.to_str().expect("utf-8");
    let v = json(&["tree", "--by-type", "--leaks", "--json", path], &dir);
    let point = entry(&v["types"], "__main__.Point");
    assert_eq!(point["objects"], 100_000, "3.{minor}: {point}");
    assert_eq!(point["bytes"], point_bytes, "3.{minor}: {point}");
    assert_eq!(point["lines"][0]["line"], 28, "3.{minor}: {point}");
    assert_eq!(point["lines"][0]["allocations"], 100_000, "3.{minor}");
    let strings = entry(&v["types"], "str");
    let line27 = strings["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .find(|l| l["line"] == 27)
        .unwrap_or_else(|| panic!("3.{minor}: no line 27 in {strings}"));
    assert_eq!(line27["allocations"], 10_000, "3.{minor}: {line27}");
    assert_eq!(line27["bytes"], string_bytes, "3.{minor}: {line27}");
    let stats = json(&["stats", "--json", path], &dir);
    let at_peak = entry(&stats["types"]["peak"], "__main__.Point");
    assert_eq!(at_peak["objects"], 100_000, "3.{minor}: {at_peak}");
    assert_eq!(at_peak["bytes"], point_bytes, "3.{minor}: {at_peak}");
}

/// Objects reached from several places, and objects the collector does not track (strings),
/// found only through their containers: each typed once. With `FREEZE` replaced by
/// `gc.freeze()` the objects frozen before it are not in `gc.get_objects()`, yet `keep` (made
/// after) leads to them: the walk then takes every object through one seen-set. The script
/// prints the strings' total size.
const REFERENTS_SCRIPT: &str = "\
import gc, sys
class Pair:
    __slots__ = (\"left\", \"right\")
early = [Pair() for i in range(100)]
FREEZE
keep = [early]
pairs = [Pair() for i in range(3000)]
again = {i: p for i, p in enumerate(pairs)}
names = [\"n%d\" % i for i in range(1500)]
both = (names, list(names), pairs)
print(sum(sys.getsizeof(s) for s in names))
";

#[test]
fn objects_reached_twice_or_only_through_containers_are_typed_once() {
    for (minor, python) in claimed_pythons() {
        for freeze in [false, true] {
            let dir = scratch(&format!("types-referents-3{minor}-{freeze}"));
            let text = REFERENTS_SCRIPT.replace("FREEZE", if freeze { "gc.freeze()" } else { "" });
            let script = write(&dir, "referents.py", &text);
            let capture = dir.join("referents.bin");
            let sizes = tracked_sizes(&python, &script, &capture, &dir);
            let path = capture.to_str().expect("utf-8");
            let exit = &json(&["stats", "--json", path], &dir)["types"]["exit"];
            let pair = entry(exit, "__main__.Pair");
            assert_eq!(pair["objects"], 3100, "3.{minor} freeze {freeze}: {pair}");
            let v = json(&["tree", "--by-type", "--leaks", "--json", path], &dir);
            let lines = entry(&v["types"], "str")["lines"]
                .as_array()
                .expect("lines")
                .clone();
            let line9 = lines
                .iter()
                .find(|l| l["line"] == 9)
                .unwrap_or_else(|| panic!("3.{minor} freeze {freeze}: no line 9 in {lines:?}"));
            assert_eq!(
                line9["allocations"], 1500,
                "3.{minor} freeze {freeze}: {line9}"
            );
            assert_eq!(
                line9["bytes"], sizes[0],
                "3.{minor} freeze {freeze}: {line9}"
            );
            let pair_lines = &entry(&v["types"], "__main__.Pair")["lines"];
            let line7 = pair_lines
                .as_array()
                .expect("lines")
                .iter()
                .find(|l| l["line"] == 7)
                .unwrap_or_else(|| panic!("3.{minor}: no line 7 in {pair_lines}"));
            assert_eq!(
                line7["allocations"], 3000,
                "3.{minor} freeze {freeze}: {line7}"
            );
        }
    }
}

/// The walk at the script's end calls the gc module's own functions, not what the program put
/// in their place: its output is its own, and the types are there.
#[test]
fn a_program_s_replaced_gc_functions_are_not_called() {
    let script_text = "\
import gc
gc.get_objects = lambda *a: print(\"PATCHED\") or []
gc.get_freeze_count = lambda: print(\"PATCHED fc\") or 0
class Pair:
    __slots__ = (\"a\", \"b\")
keep = [Pair() for i in range(1000)]
print(\"done\")
";
    for (minor, python) in claimed_pythons() {
        let dir = scratch(&format!("types-gc-patched-3{minor}"));
        let script = write(&dir, "patched.py", script_text);
        let capture = dir.join("patched.bin");
        let out = tracked(
            &python,
            &capture,
            &[script.to_str().expect("utf-8")],
            &dir,
            b"",
        );
        assert!(out.status.success(), "3.{minor}: {out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "done\n", "3.{minor}");
        let exit =
            &json(&["stats", "--json", capture.to_str().expect("utf-8")], &dir)["types"]["exit"];
        assert_eq!(entry(exit, "__main__.Pair")["objects"], 1000, "3.{minor}");
    }
}

/// A program's import finder and audit hook see what it does, and print it: the walk at the
/// script's end imported gc (the finder was asked for it) and called gc.get_objects (an audit
/// event); a hook that ends the program at that event changed its exit status.
const WATCHFUL: &str = "\
import os, sys
class Finder:
    def find_spec(self, name, path=None, target=None):
        print('finder asked for', name)
        return None
sys.meta_path.insert(0, Finder())
def hook(event, args):
    if event == 'import' or event.startswith('gc.'):
        print('audit', event, flush=True)
    if event.startswith('gc.'):
        os._exit(99)
sys.addaudithook(hook)
kept = [bytearray(100) for i in range(1000)]
print('end')
";

#[test]
fn the_walk_at_the_end_is_unseen_by_the_program_s_finders_and_audit_hooks() {
    for (minor, python) in claimed_pythons() {
        let dir = scratch(&format!("types-unseen-3{minor}"));
        let script = write(&dir, "watchful.py", WATCHFUL);
        let script = script.to_string_lossy().into_owned();
        let plain = memtrace_e2e::python::untracked(&python, &[&script], &dir, b"");
        let capture = dir.join("watchful.bin");
        let traced = tracked(&python, &capture, &[&script], &dir, b"");
        let stdout = String::from_utf8_lossy(&traced.stdout).into_owned();
        assert_eq!(plain.status.code(), Some(0), "3.{minor}: {plain:?}");
        // 3.10 and 3.11 have no way to list the collector's objects but gc.get_objects, whose
        // audit event a hook sees (docs/TRACKER.md, "Object types").
        if minor >= 12 {
            assert_eq!(traced.status.code(), Some(0), "3.{minor}: {stdout}");
            assert_eq!(traced.stdout, plain.stdout, "3.{minor}: {stdout}");
        }
        assert!(
            !stdout.contains("finder asked for gc"),
            "3.{minor}: {stdout}"
        );
        assert!(!stdout.contains("audit import"), "3.{minor}: {stdout}");
    }
}

/// A sampled capture's types at exit and at the peak: estimates of the objects of each type,
/// as its bytes and counts are (each object was matched to the sampled block whose weight, the
/// bytes it stands for, covered its address: 4 KiB of neighbours took the first type found).
#[test]
fn a_sampled_capture_s_types_are_estimates_of_each_type() {
    let dir = scratch("types-sampled");
    let script = write(
        &dir,
        "mixed.py",
        "class Point:\n    __slots__ = (\"x\", \"y\")\n    def __init__(self, x, y):\n        \
         self.x = x\n        self.y = y\npoints = [Point(i, float(i)) for i in range(20000)]\n",
    );
    let capture = dir.join("mixed.bin");
    let out = std::process::Command::new(memtrace_e2e::memtrace_bin())
        .args(["run", "-q", "-f", "--sample-bytes", "4096", "--python"])
        .arg(memtrace_e2e::python::python())
        .arg("-o")
        .arg(&capture)
        .arg(&script)
        .env("MEMTRACE_SAMPLE_SEED", "1")
        .current_dir(&dir)
        .output()
        .expect("memtrace runs");
    assert!(out.status.success(), "{out:?}");
    let s = json(&["stats", "--json", capture.to_str().expect("utf-8")], &dir);
    let near = |v: &Value, want: f64| (v.as_f64().unwrap_or(0.0) - want).abs() <= want * 0.3;
    for moment in ["exit", "peak"] {
        let rows = &s["types"][moment];
        for name in ["__main__.Point", "float"] {
            let e = entry(rows, name);
            assert!(near(&e["objects"], 20_000.0), "{moment} {name}: {e}");
        }
        // The points' blocks: 20,000 of the same size (48 bytes on 3.11).
        let points = entry(rows, "__main__.Point");
        let size =
            points["bytes"].as_f64().unwrap_or(0.0) / points["objects"].as_f64().unwrap_or(1.0);
        assert!((24.0..=80.0).contains(&size), "{moment}: {points}");
    }
}

/// Two classes of one `__name__` made in two functions, and a class nested in another: each
/// is its own row, named by its `__qualname__`. Prints the three object sizes.
const SCOPES_SCRIPT: &str = "\
import sys
def first():
    class Local:
        __slots__ = (\"a\",)
    return [Local() for i in range(300)]
def second():
    class Local:
        __slots__ = (\"a\", \"b\")
    return [Local() for i in range(500)]
class Outer:
    class Inner:
        __slots__ = ()
ones, twos, inners = first(), second(), [Outer.Inner() for i in range(70)]
print(sys.getsizeof(ones[0]), sys.getsizeof(twos[0]), sys.getsizeof(inners[0]))
";

#[test]
fn classes_of_one_name_in_different_scopes_are_rows_of_their_own_on_every_claimed_python() {
    for (minor, python) in claimed_pythons() {
        let dir = scratch(&format!("types-scopes-3{minor}"));
        let script = write(&dir, "scopes.py", SCOPES_SCRIPT);
        let capture = dir.join("scopes.bin");
        let sizes = tracked_sizes(&python, &script, &capture, &dir);
        let path = capture.to_str().expect("utf-8");
        let stats = json(&["stats", "--json", path], &dir);
        let exit = &stats["types"]["exit"];
        for (name, n, size) in [
            ("__main__.first.<locals>.Local", 300u64, sizes[0]),
            ("__main__.second.<locals>.Local", 500, sizes[1]),
            ("__main__.Outer.Inner", 70, sizes[2]),
        ] {
            let e = entry(exit, name);
            assert_eq!(e["objects"], n, "3.{minor}: {e}");
            assert_eq!(e["bytes"], n * size, "3.{minor}: {e}");
        }
        let rows = exit.as_array().expect("rows");
        assert!(
            rows.iter().all(|r| r["type"] != "__main__.Local"),
            "3.{minor}: {exit}"
        );
        // The text table keeps its columns: the longest name fits its column.
        let text = memtrace(&["stats", path], &dir);
        let text = String::from_utf8_lossy(&text.stdout).into_owned();
        let row = text
            .lines()
            .find(|l| l.contains("__main__.second.<locals>.Local"))
            .unwrap_or_else(|| panic!("3.{minor}: {text}"));
        let header = text
            .lines()
            .find(|l| l.trim_start().starts_with("TYPE"))
            .expect("a header");
        assert_eq!(
            row.chars().count(),
            header.chars().count(),
            "3.{minor}:\n{header}\n{row}"
        );
    }
}

/// Without the Python allocators' events, pymalloc's small objects live inside arenas the
/// capture knows only as whole mappings: the types table says it counts only the objects in
/// blocks of their own, and counts none of the small ones.
#[test]
fn without_the_python_allocators_the_types_say_what_they_leave_out() {
    let (_, python) = claimed_pythons().pop().expect("a claimed Python");
    let dir = scratch("types-no-pymalloc");
    let script = write(&dir, "known.py", SCRIPT);
    let capture = dir.join("np.bin");
    let path = capture.to_str().expect("utf-8");
    let out = memtrace(
        &[
            "run",
            "-q",
            "-f",
            "--no-python-allocators",
            "-o",
            path,
            "--python",
            python.to_str().expect("utf-8"),
            script.to_str().expect("utf-8"),
        ],
        &dir,
    );
    assert!(out.status.success(), "{out:?}");
    let stats = json(&["stats", "--json", path], &dir);
    let types = &stats["types"];
    let covered = types["covered"].as_str().expect("covered");
    assert!(
        covered.starts_with("exit only, and only objects in blocks of their own")
            && covered.contains("--no-python-allocators"),
        "{covered}"
    );
    assert_eq!(types["peak"], Value::Null, "{types}");
    let rows = types["exit"].as_array().expect("rows");
    assert!(rows.iter().all(|r| r["type"] != "__main__.Pair"), "{types}");
    let text = memtrace(&["stats", path], &dir);
    assert!(
        String::from_utf8_lossy(&text.stdout).contains("(most small objects) are in no block"),
        "{text:?}"
    );
}

/// A script that ends in `os._exit` never reaches the walk at its end: the report says why it
/// has no types rather than leaving the section out.
#[test]
fn a_script_ended_by_os_exit_says_why_it_has_no_types() {
    let (_, python) = claimed_pythons().pop().expect("a claimed Python");
    let dir = scratch("types-os-exit");
    let script = write(
        &dir,
        "quits.py",
        "import os\nkept = [str(i) for i in range(1000)]\nos._exit(3)\n",
    );
    let capture = dir.join("quits.bin");
    let out = tracked(
        &python,
        &capture,
        &[script.to_str().expect("utf-8")],
        &dir,
        b"",
    );
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let path = capture.to_str().expect("utf-8");
    let stats = json(&["stats", "--json", path], &dir);
    assert_eq!(stats["types"], Value::Null);
    assert!(
        stats["types_missing"]
            .as_str()
            .is_some_and(|w| w.starts_with("the script did not finish")),
        "{}",
        stats["types_missing"]
    );
    let text = memtrace(&["stats", path], &dir);
    assert!(
        String::from_utf8_lossy(&text.stdout).contains("Types: none: the script did not finish"),
        "{text:?}"
    );
}
