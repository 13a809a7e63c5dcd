//! `memtrace run --native`: whole native stacks of C programs built at -O0 and -O2, with and
//! without frame pointers, through signal handlers (on the thread's stack and on a signal
//! stack), in many threads, in a library loaded and unloaded, across fork; and merged stacks of
//! Python runs (3.10 to 3.13): a script, a ctypes call, sqlite3, json's C accelerator; one
//! call site under two callers in turn; stacks deeper than the frames kept, which stop short
//! and say so. The frames are checked by function and line against markers in the sources.

use memtrace_e2e::python::{claimed_pythons, python, write};
use memtrace_e2e::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

const SRC: &str = "native_stacks";
const LIB: &str = "native_lib";

/// The builds every stack is checked in.
const BUILDS: [&[&str]; 5] = [
    &["-O0"],
    &["-O0", "-fomit-frame-pointer"],
    &["-O2"],
    &["-O2", "-fomit-frame-pointer"],
    &["-O2", "-fno-omit-frame-pointer"],
];

fn source(name: &str) -> PathBuf {
    workspace().join("tests/programs").join(format!("{name}.c"))
}

/// The line of `/* SITE marker */` in a test program.
fn line(name: &str, marker: &str) -> u64 {
    let text = std::fs::read_to_string(source(name)).expect("read the source");
    let tag = format!("/* SITE {marker} */");
    let i = text
        .lines()
        .position(|l| l.contains(&tag))
        .unwrap_or_else(|| panic!("no {tag} in {name}.c"));
    i as u64 + 1
}

fn gcc(dir: &Path, name: &str, flags: &[&str], extra: &[&str]) -> PathBuf {
    let tag: String = flags.concat().replace('-', "_");
    let out = dir.join(format!("{name}{tag}{}", extra.concat().replace('-', "_")));
    let status = Command::new("gcc")
        .args(["-g", "-fno-builtin", "-pthread"])
        .args(flags)
        .args(extra)
        .arg("-o")
        .arg(&out)
        .arg(source(name))
        .arg("-ldl")
        .status()
        .expect("gcc runs");
    assert!(status.success(), "compiling {name} {flags:?} failed");
    out
}

/// `memtrace stats --json -n 100` of a capture: enough sites to find small ones.
fn stats(capture: &Path) -> Value {
    let out = memtrace(
        &[
            "stats",
            "--json",
            "-n",
            "100",
            capture.to_str().expect("utf-8 path"),
        ],
        capture.parent().expect("a directory"),
    );
    assert!(out.status.success(), "stats failed: {out:?}");
    serde_json::from_slice(&out.stdout).expect("stats --json prints JSON")
}

/// Runs `program args` under `memtrace run --native` and returns its stats.
fn run_native(dir: &Path, program: &Path, args: &[&str]) -> Value {
    let cap = dir.join("native.bin");
    let prog = program.to_str().expect("utf-8 path");
    let mut all = vec!["run", "--native", "-q", "-f", "-o"];
    all.push(cap.to_str().expect("utf-8 path"));
    all.push("--");
    all.push(prog);
    all.extend_from_slice(args);
    let out = memtrace(&all, dir);
    assert!(out.status.success(), "{program:?} {args:?} failed: {out:?}");
    stats(&cap)
}

/// A frame as (function, line).
type Frame = (Option<String>, Option<u64>);

/// The stack of the allocation site (a source line) with `count` allocations of `bytes` in all.
fn site(stats: &Value, bytes: u64, count: u64) -> Vec<Frame> {
    let entries = stats["top_by_size"]
        .as_array()
        .into_iter()
        .chain(stats["top_by_count"].as_array())
        .flatten();
    for e in entries {
        if e["bytes"].as_u64() == Some(bytes) && e["count"].as_u64() == Some(count) {
            return e["stack"]
                .as_array()
                .expect("a stack")
                .iter()
                .map(|f| {
                    (
                        f["function"].as_str().map(str::to_string),
                        f["line"].as_u64(),
                    )
                })
                .collect();
        }
    }
    panic!("no site of {count} allocations of {bytes} bytes in {stats}");
}

fn at(function: &str, src: &str, marker: &str) -> Frame {
    (Some(function.to_string()), Some(line(src, marker)))
}

fn function(f: &Frame) -> &str {
    f.0.as_deref().unwrap_or("?")
}

/// The main thread's walk reaches the program's entry point.
fn ends_at_start(stack: &[Frame], flags: &[&str]) {
    assert_eq!(
        stack.last().map(function),
        Some("_start"),
        "{flags:?}: {stack:?}"
    );
}

/// Exactly one of `stacks` starts at `site`, in `caller`, called at `main`'s marker (each
/// function at its own marker line), with `count` allocations; it reaches `_start`.
fn one_stack_under(
    stacks: &[(Vec<Frame>, u64)],
    [site, caller, main]: [&str; 3],
    count: u64,
    flags: &[&str],
) {
    let expected = [
        at(site, SRC, site),
        at(caller, SRC, caller),
        at("main", SRC, main),
    ];
    let under: Vec<_> = stacks
        .iter()
        .filter(|(stack, _)| stack.starts_with(&expected))
        .collect();
    assert_eq!(under.len(), 1, "{flags:?}: {main}: {stacks:?}");
    assert_eq!(under[0].1, count, "{flags:?}: {main}: {stacks:?}");
    ends_at_start(&under[0].0, flags);
}

#[test]
fn three_levels_and_an_inlined_function_in_every_build() {
    let dir = scratch("native-levels");
    for flags in BUILDS {
        let prog = gcc(&dir, SRC, flags, &[]);
        let s = run_native(&dir, &prog, &["levels"]);
        let outer = [
            at("level2", SRC, "level2"),
            at("level1", SRC, "level1"),
            at("main", SRC, "main_levels"),
        ];
        let plain = site(&s, 2222, 1);
        assert_eq!(
            plain[0],
            at("level3", SRC, "level3"),
            "{flags:?}: {plain:?}"
        );
        assert_eq!(plain[1..4], outer, "{flags:?}: {plain:?}");
        ends_at_start(&plain, flags);
        // The inlined function, then level3 at the line of the inlined call (one machine
        // frame, two source frames).
        let inlined = site(&s, 3333, 1);
        assert_eq!(
            inlined[..2],
            [
                at("inlined_alloc", SRC, "inlined_alloc"),
                at("level3", SRC, "level3_inlined")
            ],
            "{flags:?}: {inlined:?}"
        );
        assert_eq!(inlined[2..5], outer, "{flags:?}: {inlined:?}");
        ends_at_start(&inlined, flags);
        // An anonymous mmap: the walk goes through mmap's trampoline to the caller.
        let mapped = site(&s, 7 * 4096, 1);
        assert_eq!(
            mapped[..2],
            [
                at("map_pages", SRC, "map_pages"),
                at("main", SRC, "main_map")
            ],
            "{flags:?}: {mapped:?}"
        );
        ends_at_start(&mapped, flags);
    }
}

/// Every stack of a capture's tree (`tree --json`), innermost frame first, with the
/// allocations made there.
fn tree_stacks(dir: &Path, capture: &Path) -> Vec<(Vec<Frame>, u64)> {
    fn leaves(v: &Value, path: &mut Vec<Frame>, out: &mut Vec<(Vec<Frame>, u64)>) {
        let children = v["children"].as_array().map_or(&[][..], |c| &c[..]);
        if let Some(own) = v["own_allocations"].as_u64().filter(|&n| n > 0) {
            out.push((path.iter().rev().cloned().collect(), own));
        }
        for c in children {
            path.push((
                c["function"].as_str().map(str::to_string),
                c["line"].as_u64(),
            ));
            leaves(c, path, out);
            path.pop();
        }
    }
    let out = memtrace(
        &["tree", "--json", capture.to_str().expect("utf-8 path")],
        dir,
    );
    assert!(out.status.success(), "tree failed: {out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).expect("tree --json prints JSON");
    let mut stacks = Vec::new();
    leaves(&v["tree"], &mut Vec::new(), &mut stacks);
    stacks
}

/// The same call site reached from two callers in turn, with the same registers: each
/// allocation has its own caller (a thread's last stack is given again only when the stack
/// words its walk read are unchanged).
#[test]
fn one_call_site_under_two_callers_in_turn_keeps_each_caller() {
    let dir = scratch("native-callers");
    for flags in BUILDS {
        let prog = gcc(&dir, SRC, flags, &[]);
        run_native(&dir, &prog, &["callers"]);
        let stacks = tree_stacks(&dir, &dir.join("native.bin"));
        for (caller, main) in [("caller_a", "main_a"), ("caller_b", "main_b")] {
            one_stack_under(&stacks, ["shared_alloc", caller, main], 500, flags);
        }
        let at_the_site: u64 = stacks
            .iter()
            .filter(|(stack, _)| stack.first() == Some(&at("shared_alloc", SRC, "shared_alloc")))
            .map(|(_, n)| n)
            .sum();
        assert_eq!(at_the_site, 1000, "{flags:?}: {stacks:?}");
    }
}

/// Two call sites in turn, one under two callers, the other called from two lines: the walks a
/// thread keeps give each allocation its own call path, never another's (the walks of a few
/// call paths in turn are given again, each from its own).
#[test]
fn call_paths_in_turn_each_keep_their_own_stack() {
    let dir = scratch("native-rotate");
    for flags in BUILDS {
        let prog = gcc(&dir, SRC, flags, &[]);
        run_native(&dir, &prog, &["rotate"]);
        let stacks = tree_stacks(&dir, &dir.join("native.bin"));
        for path in [
            ["shared_alloc", "caller_a", "main_rot_a"],
            ["shared_alloc", "caller_b", "main_rot_b"],
            ["other_alloc", "other_via", "main_rot_other"],
            ["other_alloc", "other_via", "main_rot_other2"],
        ] {
            one_stack_under(&stacks, path, 400, flags);
        }
        for site in ["shared_alloc", "other_alloc"] {
            let at_the_site: u64 = stacks
                .iter()
                .filter(|(stack, _)| stack.first() == Some(&at(site, SRC, site)))
                .map(|(_, n)| n)
                .sum();
            assert_eq!(at_the_site, 800, "{flags:?}: {site}: {stacks:?}");
        }
    }
}

/// A call site whose frame pointer is another value at every call (at -O2 the function keeps
/// one of its values in rbp), reached from two callers in runs and in turn: the walk's trace,
/// which then does not compare the frame pointer, still gives each allocation its own caller.
#[test]
fn a_frame_pointer_used_as_a_register_keeps_each_caller() {
    let dir = scratch("native-busy");
    for flags in BUILDS {
        let prog = gcc(&dir, SRC, flags, &[]);
        run_native(&dir, &prog, &["busy"]);
        let stacks = tree_stacks(&dir, &dir.join("native.bin"));
        for (caller, main, count) in [
            ("busy_a", "main_busy_a", 300),
            ("busy_b", "main_busy_b", 300),
            ("busy_a", "main_busy_a2", 200),
            ("busy_b", "main_busy_b2", 200),
        ] {
            one_stack_under(&stacks, ["busy_alloc", caller, main], count, flags);
        }
        let at_the_site: u64 = stacks
            .iter()
            .filter(|(stack, _)| stack.first() == Some(&at("busy_alloc", SRC, "busy_alloc")))
            .map(|(_, n)| n)
            .sum();
        assert_eq!(at_the_site, 1000, "{flags:?}: {stacks:?}");
    }
}

/// The handler's frame, then the interrupted code and its callers down to main.
fn check_signal_stack(stack: &[Frame], flags: &[&str]) {
    assert_eq!(
        stack[0],
        at("handler", SRC, "handler"),
        "{flags:?}: {stack:?}"
    );
    let trigger = stack
        .iter()
        .position(|f| function(f) == "trigger")
        .unwrap_or_else(|| panic!("{flags:?}: no trigger frame in {stack:?}"));
    assert_eq!(
        stack[trigger..trigger + 2],
        [
            at("trigger", SRC, "trigger"),
            at("main", SRC, "main_signal")
        ],
        "{flags:?}: {stack:?}"
    );
    ends_at_start(stack, flags);
}

#[test]
fn a_signal_handler_allocating_has_the_interrupted_stack_below_it() {
    let dir = scratch("native-signal");
    for flags in BUILDS {
        let prog = gcc(&dir, SRC, flags, &[]);
        for mode in ["signal", "altsignal"] {
            let s = run_native(&dir, &prog, &[mode]);
            check_signal_stack(&site(&s, 3333, 1), flags);
        }
    }
}

#[test]
fn sixteen_threads_have_their_stacks_down_to_the_thread_start() {
    let dir = scratch("native-threads");
    for flags in [&["-O0"][..], &["-O2", "-fomit-frame-pointer"]] {
        let prog = gcc(&dir, SRC, flags, &[]);
        let s = run_native(&dir, &prog, &["threads", "16"]);
        assert!(num(&s, "total_frees") >= 16_000, "{s}");
        let stack = site(&s, 4444 * 16_000, 16_000);
        assert_eq!(
            stack[..2],
            [
                at("thread_alloc", SRC, "thread_alloc"),
                at("thread_main", SRC, "thread_main")
            ],
            "{flags:?}: {stack:?}"
        );
        // Below thread_main only the C library's thread start (start_thread, clone3).
        assert!(stack.len() <= 4, "{flags:?}: {stack:?}");
        assert!(
            !stack.iter().any(|f| function(f) == "main"),
            "{flags:?}: {stack:?}"
        );
    }
}

#[test]
fn a_library_loaded_called_and_closed_three_times() {
    let dir = scratch("native-dlopen");
    for flags in [&["-O0"][..], &["-O2", "-fomit-frame-pointer"]] {
        let lib = gcc(&dir, LIB, flags, &["-shared", "-fPIC"]);
        let prog = gcc(&dir, SRC, flags, &[]);
        let s = run_native(&dir, &prog, &["dlopen", lib.to_str().expect("utf-8 path")]);
        let stack = site(&s, 5555 * 3, 3);
        assert_eq!(
            stack[..3],
            [
                at("lib_inner", LIB, "lib_inner"),
                at("lib_alloc", LIB, "lib_alloc"),
                at("main", SRC, "main_dlopen"),
            ],
            "{flags:?}: {stack:?}"
        );
        ends_at_start(&stack, flags);
        // Allocations after each dlclose are unwound with the new module list.
        let stack = site(&s, 6666 + 6667 + 6668, 3);
        assert_eq!(
            stack[0],
            at("level3", SRC, "level3"),
            "{flags:?}: {stack:?}"
        );
        ends_at_start(&stack, flags);
    }
}

/// Runs `script` with --native under `python` and returns the stats.
fn run_python_native(dir: &Path, python: &Path, script: &Path, capture: &str) -> Value {
    let cap = dir.join(capture);
    let out = memtrace(
        &[
            "run",
            "--native",
            "-q",
            "-f",
            "-o",
            cap.to_str().expect("utf-8 path"),
            "--python",
            python.to_str().expect("utf-8 path"),
            script.to_str().expect("utf-8 path"),
        ],
        dir,
    );
    assert!(out.status.success(), "{out:?}");
    stats(&cap)
}

/// The top stacks by size as (function, file, line).
fn top_stacks(s: &Value) -> Vec<Vec<(String, String, u64)>> {
    s["top_by_size"]
        .as_array()
        .expect("top sites")
        .iter()
        .map(|e| {
            e["stack"]
                .as_array()
                .expect("a stack")
                .iter()
                .map(|f| {
                    (
                        f["function"].as_str().unwrap_or("?").to_string(),
                        f["file"].as_str().unwrap_or("").to_string(),
                        f["line"].as_u64().unwrap_or(0),
                    )
                })
                .collect()
        })
        .collect()
}

const MERGE_SCRIPT: &str =
    "def work():\n    return [bytearray(100_000) for _ in range(20)]\nkept = work()\n";

#[test]
fn python_frames_are_merged_below_the_evaluation_loop_in_3_10_to_3_13() {
    let dir = scratch("native-merge");
    let script = write(&dir, "merge.py", MERGE_SCRIPT);
    for (minor, python) in claimed_pythons() {
        let s = run_python_native(&dir, &python, &script, &format!("m{minor}.bin"));
        let stacks = top_stacks(&s);
        let stack = stacks
            .iter()
            .find(|st| st.iter().any(|f| f.0 == "work" && f.2 == 2))
            .unwrap_or_else(|| panic!("3.{minor}: no stack through work in {stacks:?}"));
        let py: Vec<usize> = (0..stack.len())
            .filter(|&i| stack[i].1.ends_with("merge.py"))
            .collect();
        // The script's frames innermost first (the comprehension's own frame before 3.12),
        // ending with the module's: from 3.11 one run of the evaluation loop, in one block; on
        // 3.10 a run per frame, each below the C frames of its call.
        let (first, last) = (py[0], py[py.len() - 1]);
        if minor >= 11 {
            assert_eq!(last - first + 1, py.len(), "3.{minor}: {stack:?}");
        } else {
            assert!(
                py.windows(2).all(|w| w[1] > w[0] + 1),
                "3.{minor}: {stack:?}"
            );
        }
        let names: Vec<(&str, u64)> = py
            .iter()
            .map(|&i| (stack[i].0.as_str(), stack[i].2))
            .collect();
        assert_eq!(
            names[names.len() - 2..],
            [("work", 2), ("<module>", 3)],
            "3.{minor}: {stack:?}"
        );
        assert!(names.len() <= 3, "3.{minor}: {stack:?}");
        // C frames of the allocation above the block, the interpreter's below it.
        assert!(first >= 2 && stack.len() > last + 3, "3.{minor}: {stack:?}");
        assert!(
            !stack[..first]
                .iter()
                .any(|f| f.0.contains("EvalFrameDefault")),
            "3.{minor}: {stack:?}"
        );
    }
}

#[test]
fn a_python_script_runs_with_native_stacks() {
    let dir = scratch("native-python");
    let script = write(
        &dir,
        "native.py",
        "import json, threading\n\
         def work():\n    return [bytearray(100_000) for _ in range(20)]\n\
         t = threading.Thread(target=work)\nt.start()\nt.join()\n\
         kept = work()\nprint(len(json.dumps({'a': list(range(1000))})))\n",
    );
    let cap = dir.join("py.bin");
    let out = memtrace(
        &[
            "run",
            "--native",
            "-q",
            "-f",
            "-o",
            cap.to_str().expect("utf-8 path"),
            "--python",
            python().to_str().expect("utf-8 path"),
            script.to_str().expect("utf-8 path"),
        ],
        &dir,
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "4897");
    // The native frames alone (the default merged view shows Python frames in place of the
    // evaluation loop).
    let out = memtrace(
        &[
            "stats",
            "--json",
            "--native-only",
            cap.to_str().expect("utf-8"),
        ],
        &dir,
    );
    let s: Value = serde_json::from_slice(&out.stdout).expect("json");
    // The bytearrays' buffers, made in both threads: the C function that allocates, the
    // interpreter's evaluation loop that called it, and the thread's start below.
    let stacks: Vec<Vec<String>> = s["top_by_size"]
        .as_array()
        .expect("top sites")
        .iter()
        .map(|e| {
            e["stack"]
                .as_array()
                .expect("a stack")
                .iter()
                .map(|f| f["function"].as_str().unwrap_or("?").to_string())
                .collect()
        })
        .collect();
    let evaluated = stacks
        .iter()
        .filter(|st| st.iter().any(|f| f == "_PyEval_EvalFrameDefault"))
        .count();
    assert!(evaluated >= 2, "{stacks:?}");
    assert!(num(&s, "total_allocations") > 40, "{s}");
}

#[test]
fn fork_while_threads_unwind_never_deadlocks_and_children_follow() {
    let dir = scratch("native-fork");
    let prog = compile("stress", &dir);
    for follow in [false, true] {
        let cap = dir.join(format!("fork{follow}.bin"));
        let mut args = vec!["run", "--native", "-q", "-f", "-o"];
        args.push(cap.to_str().expect("utf-8 path"));
        if follow {
            args.push("--follow-fork");
        }
        args.extend(["--", prog.to_str().expect("utf-8 path"), "fork-threads"]);
        let out = memtrace(&args, &dir);
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        assert_eq!(out.stdout, b"children ok: 50\n");
        let s = stats(&cap);
        assert_eq!(s["complete"].as_bool(), Some(true));
        assert!(num(&s, "total_allocations") > 1000, "{s}");
        // The spinning threads' allocations: spin_alloc below the C library's thread start.
        let top = &s["top_by_count"][0]["stack"];
        assert_eq!(top[0]["function"].as_str(), Some("spin_alloc"), "{top}");
        assert!(top.as_array().is_some_and(|a| a.len() <= 3), "{top}");
    }
}

#[test]
fn sqlite3_allocations_show_the_library_below_the_script_line() {
    let dir = scratch("native-sqlite");
    let script = write(
        &dir,
        "sq.py",
        "import sqlite3\n\
         db = sqlite3.connect(':memory:')\n\
         db.execute('create table t (a integer, b text)')\n\
         db.executemany('insert into t values (?, ?)', ((i, 'x' * 100) for i in range(20000)))\n\
         print(db.execute('select count(*) from t').fetchone()[0])\n",
    );
    let s = run_python_native(&dir, python(), &script, "sq.bin");
    let stacks = top_stacks(&s);
    // The inserts' memory: libsqlite3's step function, called from the module's line 4 through
    // the sqlite3 extension.
    let (stack, step, module) = below_script_line(&stacks, "sqlite3_step", 4);
    assert!(
        stack[step..module]
            .iter()
            .any(|f| f.0.contains("executemany")),
        "{stack:?}"
    );
}

#[test]
fn json_s_c_accelerator_is_below_the_script_line() {
    let dir = scratch("native-json");
    let script = write(
        &dir,
        "js.py",
        "import json\n\
         data = [{'k%d' % i: 'v' * 50, 'n': list(range(20))} for i in range(20000)]\n\
         text = json.dumps(data)\n\
         back = json.loads(text)\n",
    );
    let s = run_python_native(&dir, python(), &script, "js.bin");
    let stacks = top_stacks(&s);
    // dumps' number strings and loads' objects are made by the C accelerator's encoder and
    // scanner, below the script's lines 3 and 4.
    for (function, line) in [("encoder_listencode_obj", 3), ("scan_once_unicode", 4)] {
        below_script_line(&stacks, function, line);
    }
}

type MergedStack = Vec<(String, String, u64)>;

/// The first of `stacks` through the native `function`, checked to have the script's module
/// frame below it at `line`; with the positions of both frames.
fn below_script_line<'s>(
    stacks: &'s [MergedStack],
    function: &str,
    line: u64,
) -> (&'s MergedStack, usize, usize) {
    let stack = stacks
        .iter()
        .find(|st| st.iter().any(|f| f.0 == function))
        .unwrap_or_else(|| panic!("no stack through {function} in {stacks:?}"));
    let native = stack.iter().position(|f| f.0 == function).expect("found");
    let module = stack
        .iter()
        .position(|f| f.0 == "<module>")
        .unwrap_or_else(|| panic!("no Python frame in {stack:?}"));
    assert!(native < module, "{stack:?}");
    assert_eq!(stack[module].2, line, "{stack:?}");
    (stack, native, module)
}

#[test]
fn a_library_called_through_ctypes_has_the_python_frames_above_it() {
    let dir = scratch("native-ctypes");
    let lib = gcc(&dir, LIB, &["-O2"], &["-shared", "-fPIC"]);
    let script = write(
        &dir,
        "ct.py",
        &format!(
            "import ctypes\n\
             lib = ctypes.CDLL({lib:?})\n\
             lib.lib_alloc.restype = ctypes.c_void_p\n\
             def call(n):\n    return lib.lib_alloc(n)\n\
             kept = [call(7777) for _ in range(3)]\n"
        ),
    );
    for (minor, python) in claimed_pythons() {
        let s = run_python_native(&dir, &python, &script, &format!("ct{minor}.bin"));
        let stack = site(&s, 7777 * 3, 3);
        assert_eq!(
            stack[..2],
            [
                at("lib_inner", LIB, "lib_inner"),
                at("lib_alloc", LIB, "lib_alloc")
            ],
            "3.{minor}: {stack:?}"
        );
        // Through libffi and _ctypes up to the Python function that called, and its caller.
        let call = stack
            .iter()
            .position(|f| f == &(Some("call".to_string()), Some(5)))
            .unwrap_or_else(|| panic!("3.{minor}: no Python frame call in {stack:?}"));
        assert!(call > 2, "3.{minor}: {stack:?}");
        assert!(
            stack[call + 1..]
                .iter()
                .any(|f| function(f) == "<module>" && f.1 == Some(6)),
            "3.{minor}: {stack:?}"
        );
    }
}

/// Every node of a `tree --json` tree as (function, file).
fn tree_nodes(v: &Value, out: &mut Vec<(String, String)>) {
    out.push((
        v["function"].as_str().unwrap_or("").to_string(),
        v["file"].as_str().unwrap_or("").to_string(),
    ));
    for c in v["children"].as_array().into_iter().flatten() {
        tree_nodes(c, out);
    }
}

#[test]
fn merged_python_only_and_native_only_views() {
    let dir = scratch("native-views");
    let lib = gcc(&dir, LIB, &["-O2"], &["-shared", "-fPIC"]);
    let script = write(
        &dir,
        "views.py",
        &format!(
            "import ctypes\n\
             lib = ctypes.CDLL({lib:?})\n\
             lib.lib_alloc.restype = ctypes.c_void_p\n\
             def call(n):\n    return lib.lib_alloc(n)\n\
             kept = [call(7777) for _ in range(3)]\n"
        ),
    );
    run_python_native(&dir, python(), &script, "views.bin");
    let cap = dir.join("views.bin");
    // What is live at exit (the three blocks kept): the peak may be an import's, which frees
    // its module's code object (and more) when it ends.
    let tree = |view: &[&str]| -> Vec<(String, String)> {
        let mut args = vec!["tree", "--json", "--leaks"];
        args.extend_from_slice(view);
        args.push(cap.to_str().expect("utf-8"));
        let out = memtrace(&args, &dir);
        assert!(out.status.success(), "{out:?}");
        // Merged native and Python stacks nest deeper than serde_json's default limit.
        let mut de = serde_json::Deserializer::from_slice(&out.stdout);
        de.disable_recursion_limit();
        let v: Value = serde::Deserialize::deserialize(&mut de).expect("json");
        let mut nodes = Vec::new();
        tree_nodes(&v["tree"], &mut nodes);
        nodes
    };
    let is_py = |file: &str| file.ends_with(".py") || file.starts_with("<frozen");
    // Merged: Python frames stand in for the evaluation loop that ran them.
    let merged = tree(&[]);
    assert!(merged.iter().any(|(f, _)| f == "lib_inner"), "{merged:?}");
    assert!(merged.iter().any(|(f, file)| f == "call" && is_py(file)));
    assert!(
        !merged.iter().any(|(f, _)| f == "_PyEval_EvalFrameDefault"),
        "{merged:?}"
    );
    // Python only: the library's bytes are call's own.
    let py = tree(&["--python-only"]);
    assert!(py.iter().any(|(f, _)| f == "call"));
    assert!(
        !py.iter().any(|(f, _)| f == "lib_inner" || f == "lib_alloc"),
        "{py:?}"
    );
    let out = memtrace(
        &[
            "stats",
            "--json",
            "-n",
            "50",
            "--python-only",
            cap.to_str().expect("utf-8"),
        ],
        &dir,
    );
    let s: Value = serde_json::from_slice(&out.stdout).expect("json");
    let call = s["top_by_size"]
        .as_array()
        .and_then(|l| l.iter().find(|l| l["function"] == "call" && l["line"] == 5))
        .unwrap_or_else(|| panic!("call at line 5: {}", s["top_by_size"]));
    assert!(num(call, "bytes") >= 3 * 7777, "{call}");
    // Native only: the evaluation loop is back, no Python frame.
    let native = tree(&["--native-only"]);
    assert!(native.iter().any(|(f, _)| f == "lib_inner"));
    assert!(
        native.iter().any(|(f, _)| f == "_PyEval_EvalFrameDefault"),
        "{native:?}"
    );
    assert!(
        !native.iter().any(|(_, file)| file.ends_with(".py")),
        "{native:?}"
    );
}

#[test]
fn symbols_come_from_a_separate_debug_file() {
    // A stripped program whose DWARF is in prog.debug, named by its .gnu_debuglink: its
    // allocation site still has its file and line; without the debug file, only the name.
    let dir = scratch("native-debuglink");
    let src = write(
        &dir,
        "p.c",
        "#include <stdlib.h>\n\
         #include <stdio.h>\n\
         __attribute__((noinline)) void *make_block(size_t n) {\n\
         \x20   return malloc(n);\n\
         }\n\
         int main(void) {\n\
         \x20   void *p = make_block(123457);\n\
         \x20   printf(\"%d\\n\", p != 0);\n\
         \x20   return 0;\n\
         }\n",
    );
    let prog = dir.join("p");
    let run = |cmd: &str, args: &[&std::ffi::OsStr]| {
        let st = Command::new(cmd).args(args).current_dir(&dir).status();
        assert!(st.is_ok_and(|s| s.success()), "{cmd} {args:?}");
    };
    run(
        "gcc",
        &[
            "-O0".as_ref(),
            "-g".as_ref(),
            "-o".as_ref(),
            prog.as_os_str(),
            src.as_os_str(),
        ],
    );
    run(
        "objcopy",
        &[
            "--only-keep-debug".as_ref(),
            "p".as_ref(),
            "p.debug".as_ref(),
        ],
    );
    run("strip", &["--strip-debug".as_ref(), "p".as_ref()]);
    run(
        "objcopy",
        &["--add-gnu-debuglink=p.debug".as_ref(), "p".as_ref()],
    );
    let (cap, out) = record(&dir, "p.bin", &prog, &[]);
    assert!(out.status.success(), "{out:?}");
    let site = |s: &Value| {
        s["top_by_size"]
            .as_array()
            .and_then(|l| l.iter().find(|l| l["bytes"] == 123457).cloned())
            .unwrap_or_else(|| panic!("no site: {s}"))
    };
    let with = site(&stats(&cap));
    assert_eq!(with["function"], "make_block");
    assert_eq!(with["line"], 4);
    assert!(
        with["file"].as_str().is_some_and(|f| f.ends_with("p.c")),
        "{with}"
    );
    std::fs::remove_file(dir.join("p.debug")).expect("remove");
    let without = site(&stats(&cap));
    assert_eq!(without["function"], "make_block");
    assert!(without["line"].is_null(), "{without}");
}

/// A virtual environment with numpy (target/test-venv, made once), or None with a note when
/// it cannot be made here (no package index).
fn numpy_python() -> Option<PathBuf> {
    let venv = workspace().join("target/test-venv");
    let py = venv.join("bin/python");
    let has_numpy = |py: &Path| {
        Command::new(py)
            .args(["-c", "import numpy"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if py.is_file() && has_numpy(&py) {
        return Some(py);
    }
    let made = Command::new(python())
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .is_ok_and(|s| s.success())
        && Command::new(&py)
            .args(["-m", "pip", "install", "-q", "numpy"])
            .status()
            .is_ok_and(|s| s.success());
    if made && has_numpy(&py) {
        Some(py)
    } else {
        eprintln!("skipped: numpy cannot be installed here");
        None
    }
}

#[test]
fn numpy_allocations_show_numpy_and_its_blas_below_the_script() {
    let Some(py) = numpy_python() else {
        return;
    };
    let dir = scratch("native-numpy");
    let script = write(
        &dir,
        "np_work.py",
        "import numpy as np\n\
         def step(n):\n\
         \x20   a = np.random.default_rng(0).random((n, n))\n\
         \x20   b = a @ a.T\n\
         \x20   c = np.sort(b, axis=None)\n\
         \x20   return float(c[-1])\n\
         print(sum(step(n) for n in (200, 400)))\n",
    );
    run_python_native(&dir, &py, &script, "np.bin");
    let cap = dir.join("np.bin");
    let out = memtrace(
        &[
            "stats",
            "--json",
            "-n",
            "30",
            "--native-only",
            cap.to_str().expect("utf-8"),
        ],
        &dir,
    );
    assert!(out.status.success(), "{out:?}");
    let s: Value = serde_json::from_slice(&out.stdout).expect("json");
    // numpy's own allocation functions, in the native frames of the top sites.
    let functions: Vec<String> = s["top_by_size"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|l| l["stack"].as_array().cloned().unwrap_or_default())
        .filter_map(|f| f["function"].as_str().map(str::to_string))
        .collect();
    assert!(
        functions
            .iter()
            .any(|f| f.starts_with("PyArray_") || f.starts_with("PyDataMem")),
        "{functions:?}"
    );
    // Modules by their innermost native frame: numpy's extension among them.
    let modules: Vec<String> = s["top_modules"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["module"].as_str().map(str::to_string))
        .collect();
    assert!(
        modules.iter().any(|m| m.contains("multiarray")),
        "{modules:?}"
    );
    // Merged: the arrays' memory sits below the script's lines 3 to 5.
    let merged = stats(&cap);
    let lines: Vec<i64> = merged["top_by_size"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|l| l["stack"].as_array().cloned().unwrap_or_default())
        .filter(|f| {
            f["file"]
                .as_str()
                .is_some_and(|f| f.ends_with("np_work.py"))
        })
        .filter_map(|f| f["line"].as_i64())
        .collect();
    assert!(lines.iter().any(|l| (3..=5).contains(l)), "{lines:?}");
}

/// The label of the mark where a stack stops short (`<stack stops short: …>`).
fn is_mark(function: &str) -> bool {
    function.starts_with("<stack stops short")
}

#[test]
fn a_native_stack_deeper_than_kept_is_marked_where_it_stops() {
    let dir = scratch("native-deep");
    let prog = gcc(&dir, "deep_stack", &["-O0"], &[]);
    let s = run_native(&dir, &prog, &[]);
    // The innermost 128 frames (the allocating call, then 127 recursive calls), then the mark.
    let stack = site(&s, 4242, 1);
    assert_eq!(stack.len(), 129, "{stack:?}");
    assert_eq!(stack[0], at("recurse", "deep_stack", "deep_alloc"));
    let call = at("recurse", "deep_stack", "deep_call");
    assert!(stack[1..128].iter().all(|f| *f == call), "{stack:?}");
    assert_eq!(
        stack[128].0.as_deref(),
        Some("<stack stops short: deeper than kept, outer frames left out>")
    );
    assert_eq!(num(&s, "peak_stops_short_bytes"), 4242, "{s}");
    assert_eq!(num(&s, "peak_stops_short_allocations"), 1, "{s}");
    let cap = dir.join("native.bin");
    let out = memtrace(&["stats", cap.to_str().expect("utf-8 path")], &dir);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Stacks stop short:      100.0% of the peak (4.1 KiB in 1 allocation)"),
        "{text}"
    );
}

/// Forty levels of Python recursion through `map` (C frames between the Python ones): a native
/// stack far deeper than the 128 frames kept.
const DEEP_SCRIPT: &str = "def down(n):\n    if n == 0:\n        return bytearray(1_000_000)\n    return list(map(down, [n - 1]))[0]\nkept = down(40)\n";

/// The Python frames of DEEP_SCRIPT's allocation, innermost first.
fn deep_python_frames() -> Vec<(String, u64)> {
    let mut v = vec![("down".to_string(), 3)];
    v.extend(std::iter::repeat_n(("down".to_string(), 4), 40));
    v.push(("<module>".to_string(), 5));
    v
}

#[test]
fn a_python_stack_that_stops_short_has_every_python_frame_and_says_so() {
    let dir = scratch("native-deep-python");
    let script = write(&dir, "deep.py", DEEP_SCRIPT);
    let mut pythons = vec![python().to_path_buf()];
    pythons.extend(claimed_pythons().into_iter().map(|(_, p)| p));
    for (i, py) in pythons.iter().enumerate() {
        let name = format!("deep{i}.bin");
        let s = run_python_native(&dir, py, &script, &name);
        let cap = dir.join(&name);
        let stacks = top_stacks(&s);
        let stack = stacks
            .iter()
            .find(|st| st.iter().any(|f| f.0 == "down" && f.2 == 3))
            .unwrap_or_else(|| panic!("{py:?}: no stack through down:3 in {stacks:?}"));
        // Merged: the script's frames in order, each evaluation-loop frame replaced by its
        // Python frames, also those of the runs whose loop frames are beyond the kept ones:
        // they come outside the mark.
        let python: Vec<(String, u64)> = stack
            .iter()
            .filter(|f| f.1.ends_with("deep.py"))
            .map(|f| (f.0.clone(), f.2))
            .collect();
        assert_eq!(python, deep_python_frames(), "{py:?}: {stack:?}");
        assert!(
            !stack.iter().any(|f| f.0.contains("EvalFrameDefault")),
            "{py:?}: {stack:?}"
        );
        let marks: Vec<usize> = (0..stack.len()).filter(|&i| is_mark(&stack[i].0)).collect();
        assert_eq!(marks.len(), 1, "{py:?}: {stack:?}");
        let (inside, outside) = (&stack[..marks[0]], &stack[marks[0] + 1..]);
        assert!(
            inside.iter().any(|f| f.1.ends_with("deep.py"))
                && inside.iter().any(|f| f.0 == "map_next"),
            "{py:?}: {stack:?}"
        );
        assert!(
            !outside.is_empty() && outside.iter().all(|f| f.1.ends_with("deep.py")),
            "{py:?}: {stack:?}"
        );
        // Python only: the whole Python stack, as without --native.
        let out = memtrace(
            &[
                "stats",
                "--json",
                "--python-only",
                cap.to_str().expect("utf-8 path"),
            ],
            &dir,
        );
        let p: Value = serde_json::from_slice(&out.stdout).expect("stats --json");
        let row = p["top_by_size"]
            .as_array()
            .and_then(|l| l.iter().find(|l| l["function"] == "down" && l["line"] == 3))
            .unwrap_or_else(|| panic!("{py:?}: no down:3 in {}", p["top_by_size"]));
        let frames: Vec<(String, u64)> = row["stack"]
            .as_array()
            .expect("a stack")
            .iter()
            .map(|f| {
                (
                    f["function"].as_str().unwrap_or("?").to_string(),
                    f["line"].as_u64().unwrap_or(0),
                )
            })
            .collect();
        assert_eq!(frames, deep_python_frames(), "{py:?}: {row}");
        // The report says how much of the peak is under stacks that stop short.
        assert!(
            num(&s, "peak_stops_short_bytes") >= 1_000_000,
            "{py:?}: {}",
            s["peak_stops_short_bytes"]
        );
        let out = memtrace(&["stats", cap.to_str().expect("utf-8 path")], &dir);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.lines().any(|l| l.starts_with("Stacks stop short:")
                && l.contains("% of the peak (")
                && l.contains("under stacks that stop short")),
            "{py:?}: {text}"
        );
    }
}

#[test]
fn small_stacks_and_a_thread_inside_pthread_getattr_np_keep_running() {
    // A thread of PTHREAD_STACK_MIN and a SIGSTKSZ signal stack overflowed under the walk
    // (SIGSEGV); a thread whose first allocation was inside its own pthread_getattr_np hung
    // (the walk asked pthread_getattr_np for the stack, which waited for the lock the
    // program's call held).
    let dir = scratch("small-stacks");
    let program = gcc(&dir, "small_stacks", &["-O0"], &[]);
    let plain = Command::new(&program).output().expect("runs");
    assert_eq!(String::from_utf8_lossy(&plain.stdout), "ok 15\n");
    let s = run_native(&dir, &program, &[]);
    assert_eq!(s["complete"].as_bool(), Some(true), "{s}");
    // Where there is no room to walk, the call site stands for the stack.
    for (bytes, count, marker) in [(11110, 10, "small_thread"), (6666, 3, "signal_stack")] {
        let stack = site(&s, bytes, count);
        assert_eq!(
            stack.first().and_then(|f| f.1),
            Some(line("small_stacks", marker)),
            "{marker}: {stack:?}"
        );
    }
    // With room, the whole stack: the site, then its caller in the thread.
    let stack = site(&s, 6666, 2);
    assert_eq!(
        stack[0].1,
        Some(line("small_stacks", "after_getattr")),
        "{stack:?}"
    );
    assert_eq!(function(&stack[1]), "getattr_thread", "{stack:?}");
}

/// --python-only on a native program's capture, and --native-only on a Python program's
/// recorded without --native, change nothing: each report says so in one warning (stderr, and
/// `warnings` in JSON), and prints what it prints without the option.
#[test]
fn a_frame_view_that_cannot_apply_says_so() {
    let dir = scratch("native-views-unused");
    let prog = compile("reports", &dir);
    let (native, out) = record(&dir, "native.bin", &prog, &[]);
    assert!(out.status.success(), "{out:?}");
    let script = write(&dir, "py.py", "data = [bytes(100) for _ in range(100)]\n");
    let py = dir.join("py.bin");
    let out = memtrace(
        &[
            "run",
            "-q",
            "-f",
            "-o",
            py.to_str().expect("utf-8"),
            "--python",
            python().to_str().expect("utf-8"),
            script.to_str().expect("utf-8"),
        ],
        &dir,
    );
    assert!(out.status.success(), "{out:?}");
    for (capture, option, says) in [
        (
            &native,
            "--python-only",
            "--python-only changes nothing: the capture has no Python frames",
        ),
        (
            &py,
            "--native-only",
            "--native-only changes nothing: the capture has no native stacks",
        ),
    ] {
        let path = capture.to_str().expect("utf-8");
        let plain = memtrace(&["tree", "--text", path], &dir);
        let with = memtrace(&["tree", "--text", option, path], &dir);
        assert!(with.status.success(), "{with:?}");
        assert_eq!(with.stdout, plain.stdout, "{option}");
        let err = String::from_utf8_lossy(&with.stderr);
        assert!(err.contains(&format!("memtrace: warning: {says}")), "{err}");
        let json = memtrace(&["stats", "--json", option, path], &dir);
        let v: Value = serde_json::from_slice(&json.stdout).expect("JSON");
        assert!(
            v["warnings"].to_string().contains(says),
            "{option}: {}",
            v["warnings"]
        );
    }
}

/// An allocation on a coroutine's own stack (bounds the tracker cannot know) or on a thread
/// stack of PTHREAD_STACK_MIN (no room for the walk) keeps its call site under a mark, and
/// counts in the share of the peak that stops short (it was a one-frame stack that passed for
/// a whole one).
#[test]
fn a_stack_the_walk_may_not_use_is_marked_where_it_stops() {
    let dir = scratch("native-no-room");
    let prog = gcc(&dir, "short_stacks", &["-O0"], &[]);
    let s = run_native(&dir, &prog, &[]);
    let mark =
        "<stack stops short: on a stack too small to walk or of unknown bounds (a coroutine's)>";
    for (bytes, function, marker) in [
        (5555, "coroutine_inner", "coroutine"),
        (6666, "small_thread_inner", "small_thread"),
    ] {
        let stack = site(&s, bytes, 1);
        assert_eq!(stack.len(), 2, "{stack:?}");
        assert_eq!(stack[0], at(function, "short_stacks", marker));
        assert_eq!(stack[1].0.as_deref(), Some(mark), "{stack:?}");
    }
    assert_eq!(num(&s, "peak_stops_short_bytes"), 5555 + 6666, "{s}");
    assert_eq!(num(&s, "peak_stops_short_allocations"), 2, "{s}");
}
