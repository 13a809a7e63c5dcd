//! `memtrace lines`: the source listing with each line's memory, on every claimed Python, with
//! exact bytes for a function whose three memory lines are known; a source edited or removed
//! after the run; bad arguments and a native capture refused in one line.

use memtrace_e2e::python::{claimed_pythons, python, track_script, tracked, write};
use memtrace_e2e::{compile, memtrace, record, scratch};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Three lines of `work` each allocate one bytes object of a known size (a 32-byte header, the
/// bytes and a NUL); the caller keeps them, so they are live at the peak and at exit.
const SCRIPT: &str = "\
def work():
    a = b\"\\1\" * 1_000_000
    b = b\"\\2\" * 2_000_000
    c = b\"\\3\" * 3_000_000
    return a, b, c


keep = work()
print(len(keep))
";
const WORK_LINES: [(u64, u64); 3] = [(2, 1_000_033), (3, 2_000_033), (4, 3_000_033)];

fn run(python: &Path, dir: &Path) -> PathBuf {
    let (capture, out) = track_script(python, dir, "work.py", SCRIPT);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "3\n");
    capture
}

fn lines_json(capture: &Path, extra: &[&str]) -> Value {
    let mut args = vec!["lines", "--json", capture.to_str().expect("utf-8")];
    args.extend_from_slice(extra);
    let out = memtrace(&args, capture.parent().expect("dir"));
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).expect("JSON")
}

fn line(file: &Value, n: u64) -> &Value {
    file["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .find(|l| l["line"] == n)
        .unwrap_or_else(|| panic!("no line {n} in {file}"))
}

#[test]
fn each_memory_line_has_its_exact_bytes_on_every_claimed_python() {
    for (minor, python) in claimed_pythons() {
        let dir = scratch(&format!("lines-3{minor}"));
        let capture = run(&python, &dir);
        let v = lines_json(&capture, &[]);
        let files = v["files"].as_array().expect("files");
        // The program's own file only (not the interpreter's library files).
        assert_eq!(files.len(), 1, "3.{minor}: {v}");
        let file = &files[0];
        assert!(file["file"].as_str().expect("a path").ends_with("/work.py"));
        assert_eq!(file["found"], true);
        assert_eq!(file["changed"], false);
        for (n, bytes) in WORK_LINES {
            let l = line(file, n);
            assert_eq!(l["bytes"], bytes, "3.{minor} line {n}: {l}");
            assert_eq!(l["allocations_live"], 1, "3.{minor} line {n}: {l}");
            assert_eq!(l["allocated_bytes"], bytes, "3.{minor} line {n}: {l}");
            assert_eq!(l["allocations"], 1, "3.{minor} line {n}: {l}");
            assert_eq!(l["exit_bytes"], bytes, "3.{minor} line {n}: {l}");
        }
        assert_eq!(line(file, 3)["text"], "    b = b\"\\2\" * 2_000_000");
        // Compiling the script holds no line of its text: it is the file's `compile`, not a
        // line 0 (which showed with no text, and pulled context lines into the listing).
        assert!(
            file["lines"]
                .as_array()
                .expect("lines")
                .iter()
                .all(|l| l["line"] != 0),
            "3.{minor}: {file}"
        );
        assert!(
            file["compile"]["allocations"].as_u64() > Some(0),
            "3.{minor}: {file}"
        );
        // The call line holds its callee's memory: at least the three objects.
        let call = line(file, 8)["bytes"].as_u64().expect("bytes");
        assert!(call >= 6_000_099, "3.{minor}: {call}");
        // --function keeps the function's own lines and leaves the call out.
        let f = lines_json(&capture, &["--function", "work"]);
        let only = &f["files"][0];
        let numbers: Vec<u64> = only["lines"]
            .as_array()
            .expect("lines")
            .iter()
            .map(|l| l["line"].as_u64().expect("n"))
            .filter(|n| WORK_LINES.iter().any(|(w, _)| w == n) || *n == 8)
            .collect();
        assert_eq!(numbers, vec![2, 3, 4], "3.{minor}: {f}");
    }
}

#[test]
fn the_text_listing_is_memory_profilers_table_with_context() {
    let dir = scratch("lines-text");
    let capture = run(python(), &dir);
    let out = memtrace(
        &[
            "lines",
            capture.to_str().expect("utf-8"),
            "--function",
            "work",
        ],
        &dir,
    );
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let rows: Vec<&str> = text.lines().collect();
    let header = rows
        .iter()
        .position(|l| l.starts_with("Line #"))
        .unwrap_or_else(|| panic!("no header:\n{text}"));
    assert!(rows[header].ends_with("Line Contents"), "{text}");
    assert!(rows[header - 2].starts_with("Filename: ") && rows[header - 2].ends_with("/work.py"));
    // The whole function, def to return, each memory line with its size in binary units.
    let body: Vec<&str> = rows[header + 2..].to_vec();
    assert_eq!(body.len(), 5, "{text}");
    assert!(
        body[0].starts_with("     1 ") && body[0].ends_with("def work():"),
        "{text}"
    );
    assert!(
        body[1].starts_with("     2   976.6 KiB   976.6 KiB            1   976.6 KiB      a = "),
        "{text}"
    );
    assert!(
        body[2].starts_with("     3     1.9 MiB     1.9 MiB            1     1.9 MiB      b = "),
        "{text}"
    );
    assert!(
        body[3].starts_with("     4     2.9 MiB     2.9 MiB            1     2.9 MiB      c = "),
        "{text}"
    );
    assert!(body[4].ends_with("    return a, b, c"), "{text}");
}

#[test]
fn a_source_edited_or_removed_after_the_run_is_flagged() {
    let dir = scratch("lines-changed");
    let capture = run(python(), &dir);
    // A modification time clearly after the run's start, whatever the file system's precision.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    write(&dir, "work.py", &SCRIPT.replace("work", "other"));
    let v = lines_json(&capture, &[]);
    assert_eq!(v["files"][0]["changed"], true, "{v}");
    let out = memtrace(&["lines", capture.to_str().expect("utf-8")], &dir);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("(changed since the run: lines may not match)"),
        "{text}"
    );

    std::fs::remove_file(dir.join("work.py")).expect("remove");
    let v = lines_json(&capture, &[]);
    let file = &v["files"][0];
    assert_eq!(file["found"], false, "{v}");
    assert_eq!(line(file, 2)["bytes"], 1_000_033);
    assert_eq!(line(file, 2)["text"], Value::Null);
    let out = memtrace(&["lines", capture.to_str().expect("utf-8")], &dir);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("(source not found: line numbers only)"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l == "     3     1.9 MiB     1.9 MiB            1     1.9 MiB  "),
        "{text}"
    );
}

#[test]
fn code_run_with_dash_c_is_listed_from_the_command_line() {
    let dir = scratch("lines-c");
    let capture = dir.join("c.bin");
    let code = "x = 1\ny = b'\\0' * 500_000\nprint(len(y))";
    let out = tracked(python(), &capture, &["-c", code], &dir, b"");
    assert!(out.status.success(), "{out:?}");
    let v = lines_json(&capture, &[]);
    let file = v["files"]
        .as_array()
        .expect("files")
        .iter()
        .find(|f| f["file"] == "<string>")
        .unwrap_or_else(|| panic!("no <string> file: {v}"));
    assert_eq!(line(file, 2)["bytes"], 500_033);
    assert_eq!(line(file, 2)["text"], "y = b'\\0' * 500_000");
}

#[test]
fn code_made_from_strings_at_run_time_is_not_the_dash_c_program_s() {
    // A dataclass's __init__ is exec'd from a string (file "<string>", its own line 4): its
    // frame's memory showed at line 4 of the -c program, a line that allocates nothing. The
    // factory lambda (line 5 of the program) holds the 4 MB lists.
    let dir = scratch("lines-c-exec");
    let capture = dir.join("c.bin");
    let code = "from dataclasses import dataclass, field\n@dataclass\nclass C:\n    a: int = 0\n    buf: list = field(default_factory=lambda: [0] * 500_000)\nobjs = [C() for _ in range(5)]\n";
    let out = tracked(python(), &capture, &["-c", code], &dir, b"");
    assert!(out.status.success(), "{out:?}");
    let v = lines_json(&capture, &[]);
    let files = v["files"].as_array().expect("files");
    let file = files
        .iter()
        .find(|f| f["file"] == "<string>")
        .unwrap_or_else(|| panic!("no <string> file: {v}"));
    // Five lists of 500,000 pointers at line 5 (the lambda), none at line 4.
    let at5 = line(file, 5)["bytes"].as_u64().expect("line 5");
    assert!((20_000_000..20_100_000).contains(&at5), "{v}");
    assert!(
        file["lines"]
            .as_array()
            .expect("lines")
            .iter()
            .filter(|l| l["line"] == 4)
            .all(|l| l["bytes"] == 0),
        "{v}"
    );
    // What exec made is listed apart, when asked for.
    assert!(
        files
            .iter()
            .all(|f| f["file"] != "<string> (code made at run time)"),
        "{v}"
    );
    let v = lines_json(&capture, &["<string> (code made at run time)"]);
    let made = &v["files"][0];
    assert_eq!(made["file"], "<string> (code made at run time)", "{v}");
    let at4 = line(made, 4)["bytes"].as_u64().expect("line 4");
    assert!((20_000_000..20_100_000).contains(&at4), "{v}");
}

fn one_line_error(args: &[&str], dir: &Path, expected: &str) {
    let out = memtrace(args, dir);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("memtrace: ") && err.contains(expected),
        "{err}"
    );
    assert!(out.stdout.is_empty(), "{out:?}");
}

#[test]
fn bad_arguments_and_native_captures_are_one_line_each() {
    let dir = scratch("lines-errors");
    let capture = run(python(), &dir);
    let cap = capture.to_str().expect("utf-8");
    one_line_error(&["lines", "nosuch.bin"], &dir, "nosuch.bin");
    one_line_error(
        &["lines", cap, "nosuch.py"],
        &dir,
        "no memory at any line of nosuch.py",
    );
    one_line_error(
        &["lines", cap, "--function", "nosuch"],
        &dir,
        "no memory in a function named \"nosuch\"",
    );
    let prog = compile("reports", &dir);
    let (native, out) = record(&dir, "native.bin", &prog, &[]);
    assert!(out.status.success(), "{out:?}");
    one_line_error(
        &["lines", native.to_str().expect("utf-8")],
        &dir,
        "for a native program",
    );
    // A Python memtrace does not track (3.9, where pyenv has one) is named as such, not taken
    // for a native program.
    if let Some(old) = memtrace_e2e::python::pyenv_python(9) {
        let (old_cap, out) = tracked_run(&old, &dir);
        assert!(out.status.success(), "{out:?}");
        one_line_error(
            &["lines", old_cap.to_str().expect("utf-8")],
            &dir,
            "its Python (3.9) ran without Python tracking",
        );
    }
}

/// `memtrace run -q -f -o old.bin PYTHON work.py` (without --python: a Python memtrace may not
/// take as one runs as a native program).
fn tracked_run(python: &Path, dir: &Path) -> (PathBuf, std::process::Output) {
    write(dir, "work.py", SCRIPT);
    let cap = dir.join("old.bin");
    let out = memtrace(
        &[
            "run",
            "-q",
            "-f",
            "-o",
            cap.to_str().expect("utf-8"),
            python.to_str().expect("utf-8"),
            "work.py",
        ],
        dir,
    );
    (cap, out)
}

/// A long module: the line of each allocation is found with a cursor in the module's line table
/// (CPython's PyCode_Addr2Line scans the table from its start at every call: a module of
/// 100,000 lines ran 150 times slower than alone). Each of 2,000 lines allocates one bytes
/// object of its own size, twice (a loop: the second pass goes back to the table's start).
#[test]
fn every_line_of_a_long_module_has_its_exact_bytes() {
    const N: u64 = 2000;
    let mut script = format!("keep = [None] * {N}\nfor rep in range(2):\n");
    for k in 0..N {
        script.push_str(&format!("    keep[{k}] = b\"\\1\" * {}\n", 10_000 + k));
    }
    for (minor, python) in claimed_pythons() {
        let dir = scratch(&format!("lines-long-3{minor}"));
        let (capture, out) = track_script(&python, &dir, "long.py", &script);
        assert!(out.status.success(), "3.{minor}: {out:?}");
        let v = lines_json(&capture, &[]);
        let file = &v["files"][0];
        assert!(file["file"].as_str().expect("a path").ends_with("/long.py"));
        for k in 0..N {
            let l = line(file, 3 + k);
            assert_eq!(
                l["allocated_bytes"],
                2 * (10_000 + k + 33),
                "3.{minor} line {}: {l}",
                3 + k
            );
            assert_eq!(l["allocations"], 2, "3.{minor} line {}: {l}", 3 + k);
        }
    }
}

/// A script in a directory whose name is not UTF-8: its frames name the file with `\xNN` for
/// the bytes that are not (they showed as `<unknown>`), and `lines` finds its source.
#[test]
fn a_file_name_that_is_not_utf8_is_named_and_its_source_found() {
    use std::os::unix::ffi::OsStrExt;
    let dir = scratch("lines-bytes");
    let odd = dir.join(std::ffi::OsStr::from_bytes(b"bad\xff\xfedir"));
    std::fs::create_dir(&odd).expect("mkdir");
    let script = write(&odd, "work.py", SCRIPT);
    let capture = dir.join("odd.bin");
    let py = python();
    let mut cmd = std::process::Command::new(memtrace_e2e::memtrace_bin());
    cmd.args(["run", "-q", "-f", "-o"])
        .arg(&capture)
        .arg("--python")
        .arg(py)
        .arg(&script)
        .current_dir(&odd);
    let out = cmd.output().expect("memtrace run");
    assert!(out.status.success(), "{out:?}");
    let v = lines_json(&capture, &[]);
    let file = &v["files"][0];
    assert!(
        file["file"]
            .as_str()
            .is_some_and(|f| f.ends_with("/bad\\xff\\xfedir/work.py")),
        "{v}"
    );
    assert_eq!(file["found"], true, "{v}");
    for (n, bytes) in WORK_LINES {
        assert_eq!(line(file, n)["bytes"], bytes, "line {n}");
    }
    assert_eq!(line(file, 3)["text"], "    b = b\"\\2\" * 2_000_000");
}

/// What a function allocates before its frame begins (3.11+: MAKE_CELL, RETURN_GENERATOR in
/// its prologue, before `_co_firsttraceable`; 3.13's `__init__` cleanup shim, which never
/// begins) is its caller's line's, as CPython's tracebacks and tracemalloc count it. memtrace
/// charged every generator to its `def` line and every closure cell to a frame of no line, and
/// put a frame `__init__` of a file `__init__` under every 3.13 constructor call.
const PROLOGUES: &str = "\
def deco(fn):
    def wrapper():
        return fn
    return wrapper

def gen():
    yield 1

class Node:
    def __init__(self):
        self.data = bytes(60000)

W = [deco(len) for i in range(1000)]
G = [gen() for i in range(1000)]
N = [Node() for i in range(10)]
";

/// Every node of a `tree --json` tree, depth first.
fn tree_nodes<'a>(node: &'a Value, out: &mut Vec<&'a Value>) {
    out.push(node);
    for c in node["children"].as_array().into_iter().flatten() {
        tree_nodes(c, out);
    }
}

#[test]
fn what_a_frame_allocates_before_it_begins_is_its_caller_s() {
    let mut pythons: Vec<(String, PathBuf)> = claimed_pythons()
        .into_iter()
        .map(|(minor, p)| (format!("3.{minor}"), p))
        .collect();
    if Path::new("/usr/bin/python3").exists() {
        pythons.push(("Debian's".to_string(), PathBuf::from("/usr/bin/python3")));
    }
    for (name, python) in pythons {
        let dir = scratch("lines-prologues");
        let (capture, out) = track_script(&python, &dir, "prologues.py", PROLOGUES);
        assert!(out.status.success(), "{name}: {out:?}");
        let v = lines_json(&capture, &[]);
        let files = v["files"].as_array().expect("files");
        // The script's file alone: no file `__init__` (3.13's shim).
        assert_eq!(files.len(), 1, "{name}: {v}");
        let file = &files[0];
        let exit = |n: u64| {
            file["lines"]
                .as_array()
                .expect("lines")
                .iter()
                .find(|l| l["line"] == n)
                .map_or(0, |l| l["exit_bytes"].as_u64().expect("bytes"))
        };
        // `def gen():` holds its function object (two blocks, some 560 bytes), none of the
        // 1,000 generators (176 bytes each and more), which are line 14's.
        assert!(exit(6) < 1000, "{name}: line 6 {}", exit(6));
        assert!(exit(14) >= 1000 * 176, "{name}: line 14 {}", exit(14));
        // The constructor's bytes objects (33 bytes more than their length each).
        assert!(
            (600_330..601_000).contains(&exit(11)),
            "{name}: line 11 {}",
            exit(11)
        );
        // No frame without a line (the cells were under `deco` at none), none of the shim.
        let out = memtrace(
            &[
                "tree",
                "--json",
                "--leaks",
                capture.to_str().expect("utf-8"),
            ],
            &dir,
        );
        assert!(out.status.success(), "{out:?}");
        let tree: Value = serde_json::from_slice(&out.stdout).expect("JSON");
        let mut nodes = Vec::new();
        tree_nodes(&tree["tree"], &mut nodes);
        for n in nodes {
            let in_script = n["file"]
                .as_str()
                .is_some_and(|f| f.ends_with("prologues.py"));
            let function = n["function"].as_str().unwrap_or("");
            // (`<compile>` stands for the script's compilation, which has no line.)
            if in_script && function != "<compile>" {
                assert!(n["line"].as_i64().is_some_and(|l| l > 0), "{name}: {n}");
            }
            assert_ne!(n["file"], "__init__", "{name}: {n}");
            assert_ne!(function, "gen", "{name}: {n}");
        }
    }
}

/// Each column of the text listing is named once: `--leaks` named its view's column "At exit",
/// as the exit column is named, and `--all` "Allocated".
#[test]
fn the_listing_s_columns_have_names_of_their_own() {
    let dir = scratch("lines-columns");
    let capture = run(python(), &dir);
    for view in ["--leaks", "--all", "--temporary", ""] {
        let mut args = vec!["lines", capture.to_str().expect("utf-8")];
        if !view.is_empty() {
            args.push(view);
        }
        let out = memtrace(&args, &dir);
        assert!(out.status.success(), "{view}: {out:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        let header = text
            .lines()
            .find(|l| l.starts_with("Line #"))
            .unwrap_or_else(|| panic!("{view}: {text}"));
        let names: Vec<&str> = header
            .trim_start_matches("Line #")
            .trim_end_matches("Line Contents")
            .split("  ")
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .collect();
        let mut unique = names.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "{view}: {header}");
        // The run ended normally: its exit snapshot is the last column.
        assert_eq!(names.last(), Some(&"At exit"), "{view}: {header}");
    }
    // A program killed before its exit has none: what was live at the capture's end, as stats
    // says "Live at end".
    let (killed, _) = track_script(
        python(),
        &dir,
        "killed.py",
        "import os\nkept = bytearray(1_000_000)\nos.kill(os.getpid(), 9)\n",
    );
    let out = memtrace(&["lines", killed.to_str().expect("utf-8")], &dir);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let header = text
        .lines()
        .find(|l| l.starts_with("Line #"))
        .expect("a header");
    assert!(
        header.trim_end().ends_with("At end  Line Contents"),
        "{header}"
    );
}

/// A source in Latin-1 (a PEP 263 coding line) was read as UTF-8: `s = "\u{fffd}t\u{fffd}"`
/// for `s = "été"`; a UTF-8 byte-order mark showed as `\u{feff}` before the first line.
#[test]
fn a_source_is_shown_in_the_encoding_its_coding_line_names() {
    let dir = scratch("lines-encoding");
    let latin: &[u8] = b"# -*- coding: latin-1 -*-\ns = \"\xe9t\xe9\"\ndef work():\n    return b\"\\1\" * 1_000_000\nkeep = work()\nprint(len(s), len(keep))\n";
    std::fs::write(dir.join("latin.py"), latin).expect("write");
    let bom: &[u8] = b"\xEF\xBB\xBFimport sys\ndef work():\n    return b\"\\1\" * 1_000_000\nkeep = work()\nprint(len(keep))\n";
    std::fs::write(dir.join("bom.py"), bom).expect("write");
    for (script, shown, allocating) in [
        ("latin.py", ("     2 ", "  s = \"\u{e9}t\u{e9}\""), 4),
        ("bom.py", ("     1 ", "  import sys"), 3),
    ] {
        let capture = dir.join(format!("{script}.bin"));
        let out = tracked(python(), &capture, &[script], &dir, b"");
        assert!(out.status.success(), "{out:?}");
        let out = memtrace(&["lines", "--all", capture.to_str().expect("utf-8")], &dir);
        let text = String::from_utf8_lossy(&out.stdout);
        let (number, contents) = shown;
        assert!(
            text.lines()
                .any(|l| l.starts_with(number) && l.ends_with(contents)),
            "{script}: {text}"
        );
        assert!(
            !text.contains("feff") && !text.contains('\u{fffd}'),
            "{text}"
        );
        let v = lines_json(&capture, &[]);
        let file = v["files"]
            .as_array()
            .expect("files")
            .iter()
            .find(|f| f["file"].as_str().is_some_and(|n| n.ends_with(script)))
            .unwrap_or_else(|| panic!("no {script} in {v}"));
        assert_eq!(line(file, allocating)["bytes"], 1_000_033, "{script}");
    }
}

/// Options that shape nothing in `lines` are said so, not dropped in silence; `--temporary
/// --json` gives its threshold as `stats --json` does.
#[test]
fn options_lines_does_not_use_are_said_and_the_threshold_is_given() {
    let dir = scratch("lines-options");
    let capture = run(python(), &dir);
    let cap = capture.to_str().expect("utf-8");
    let out = memtrace(&["lines", "--threads", cap], &dir);
    assert!(out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--threads"), "{err}");
    let out = memtrace(&["lines", "--json", "-s", "bytes", "-n", "2", cap], &dir);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--json gives every line"));
    let v = lines_json(&capture, &["--temporary", "--temporary-threshold", "3"]);
    assert_eq!(v["temporary_threshold"], 3, "{v}");
    assert_eq!(
        lines_json(&capture, &[])["temporary_threshold"],
        Value::Null
    );
}

/// An executable script whose name has no `.py` and whose `#!` line runs Python is a Python
/// run: it ran as a native program (no Python frame, `lines` refused it) and the hint to add
/// --python was refused for its name.
#[test]
fn an_executable_python_script_named_without_py_is_a_python_run() {
    let dir = scratch("lines-shebang");
    let text = format!(
        "#!{}\nkeep = bytearray(1_500_000)\nprint(len(keep))\n",
        python().display()
    );
    let script = write(&dir, "tool", &text);
    memtrace_e2e::make_executable(&script);
    let out = memtrace(&["run", "-q", "-f", "-o", "tool.bin", "./tool"], &dir);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1500000\n");
    let v = lines_json(&dir.join("tool.bin"), &[]);
    let file = &v["files"][0];
    assert!(
        file["file"].as_str().expect("a path").ends_with("/tool"),
        "{v}"
    );
    assert_eq!(line(file, 2)["bytes"], 1_500_057, "{v}");
}
