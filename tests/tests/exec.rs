//! A tracked process that execs (`env`, `sh -c 'exec ...'`, wrappers, os.execv) goes on being
//! tracked: each program writes its own capture (`<capture>.exec<N>`), the one before the exec
//! is complete and names the next; a failed exec changes nothing. And vfork, posix_spawn and
//! chains of forks leave the program's output and exit status unchanged, with children tracked
//! under --follow-fork only. The C program is tests/programs/exec.c: its blocks have known sizes
//! in functions of their own.

use memtrace_e2e::python::{python, untracked, write};
use memtrace_e2e::watchdog::Watched;
use memtrace_e2e::*;
use serde_json::Value;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// `memtrace run -o run.bin [FLAGS] -- WORDS` in `dir` (not quiet: the closing hint is checked).
fn run(dir: &Path, flags: &[&str], words: &[&str]) -> (PathBuf, Output) {
    let cap = dir.join("run.bin");
    let mut args = vec!["run", "-f", "-o", cap.to_str().expect("utf-8")];
    args.extend_from_slice(flags);
    args.push("--");
    args.extend_from_slice(words);
    (cap.clone(), memtrace(&args, dir))
}

/// The program alone, for comparison.
fn plain(dir: &Path, words: &[&str]) -> Output {
    Command::new(words[0])
        .args(&words[1..])
        .current_dir(dir)
        .stdin(Stdio::null())
        .output_watched()
}

/// `stats --json` with long enough top lists to find a program's own functions.
fn full_stats(cap: &Path) -> Value {
    report(&["stats", "--json", "-n", "50"], cap)
}

/// (bytes, count) of the top_by_size location in `function` (0, 0 when absent).
fn site(s: &Value, function: &str) -> (i64, i64) {
    s["top_by_size"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|l| l["function"].as_str() == Some(function))
        .fold((0, 0), |(b, c), l| {
            (b + num(l, "bytes"), c + num(l, "count"))
        })
}

/// The files of `dir` whose names start with `prefix`, sorted.
fn files(dir: &Path, prefix: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(prefix))
        .collect();
    v.sort();
    v
}

/// Checks that `s` is complete and names `next` as the capture of the program it exec'd.
fn assert_execd_into(s: &Value, next: &str, command: &str) {
    assert_eq!(s["complete"].as_bool(), Some(true), "{s}");
    assert_eq!(s["warnings"], serde_json::json!([]), "{}", s["warnings"]);
    let e = &s["exec"];
    assert!(
        e["next_capture"]
            .as_str()
            .is_some_and(|p| p.ends_with(&format!("/{next}"))),
        "{e}"
    );
    assert_eq!(e["next_capture_exists"].as_bool(), Some(true), "{e}");
    assert_eq!(e["command"].as_str(), Some(command), "{e}");
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A script with a known allocation (f, line 3) that prints what it sees of its environment.
const SCRIPT: &str = "\
import os
def f(n):
    return b\"\\0\" * n
keep = f(3_000_000)
print(os.environ.get('X'), os.environ.get('PYTHONPATH'),
      sorted(k for k in os.environ if k.startswith('MEMTRACE') or k == 'LD_PRELOAD'))
";

/// The capture of the script run after an exec: its allocation at its line, Python stacks and
/// the PyMem allocators, complete.
fn assert_python_image(cap: &Path) {
    let s = full_stats(cap);
    assert_eq!(s["complete"].as_bool(), Some(true), "{s}");
    assert_eq!(s["exec"], Value::Null);
    let top = s["top_by_size"][0].clone();
    assert_eq!(top["function"], "f", "{top}");
    assert_eq!(top["line"], 3, "{top}");
    assert_eq!(num(&top, "bytes"), 3_000_000 + 33, "{top}");
    assert_eq!(num(&top, "count"), 1, "{top}");
    let frames: Vec<(String, i64)> = top["stack"]
        .as_array()
        .expect("a stack")
        .iter()
        .map(|f| (f["function"].as_str().unwrap_or("?").into(), num(f, "line")))
        .collect();
    assert_eq!(
        frames,
        [("f".to_string(), 3), ("<module>".to_string(), 4)],
        "{top}"
    );
    assert!(allocator(&s, "pymalloc_malloc") > 0, "{}", s["allocators"]);
    // The report starts with the script (the interpreter's start-up is apart).
    assert!(s["startup_bytes"].as_i64().is_some_and(|b| b > 0), "{s}");
}

#[test]
fn env_runs_the_program_tracked_with_its_own_capture() {
    let dir = scratch("exec-env");
    let prog = compile("exec", &dir);
    let p = prog.to_str().expect("utf-8");
    let words = ["env", "X=1", p, "chain", "0"];
    let (cap, out) = run(&dir, &[], &words);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(out.stdout, plain(&dir, &words).stdout);
    assert_eq!(out.stdout, b"image 0\n");
    assert_execd_into(&full_stats(&cap), "run.bin.exec1", &format!("{p} chain 0"));
    let next = full_stats(&dir.join("run.bin.exec1"));
    assert_eq!(next["complete"].as_bool(), Some(true), "{next}");
    assert_eq!(site(&next, "image_block"), (10_000, 1));
    assert_eq!(num(&next, "total_allocations"), 1);
    // The closing hint names the program's capture.
    let err = stderr(&out);
    assert!(
        err.contains("run.bin -> run.bin.exec1")
            && err.contains("view it with: memtrace stats run.bin.exec1"),
        "{err}"
    );
}

#[test]
fn env_running_python_is_a_python_run() {
    let dir = scratch("exec-env-py");
    write(&dir, "x.py", SCRIPT);
    let py = python().to_str().expect("utf-8");
    let words = ["env", "X=1", "PYTHONPATH=/opt/pp", py, "x.py"];
    let (cap, out) = run(&dir, &[], &words);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    // The program sees its own environment: no hook on PYTHONPATH, no memtrace variables.
    assert_eq!(out.stdout, plain(&dir, &words).stdout);
    assert_eq!(out.stdout, b"1 /opt/pp []\n");
    assert_execd_into(&full_stats(&cap), "run.bin.exec1", &format!("{py} x.py"));
    assert_python_image(&dir.join("run.bin.exec1"));
}

#[test]
fn sh_c_exec_python_is_a_python_run() {
    let dir = scratch("exec-sh-py");
    write(&dir, "x.py", SCRIPT);
    let py = python().to_str().expect("utf-8");
    let line = format!("exec '{py}' x.py");
    let words = ["/bin/sh", "-c", &line];
    let (cap, out) = run(&dir, &[], &words);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(out.stdout, plain(&dir, &words).stdout);
    assert_eq!(out.stdout, b"None None []\n");
    assert_execd_into(&full_stats(&cap), "run.bin.exec1", &format!("{py} x.py"));
    assert_python_image(&dir.join("run.bin.exec1"));
    assert_eq!(files(&dir, "run.bin"), ["run.bin", "run.bin.exec1"]);
}

#[test]
fn os_execv_of_a_python_script_goes_on_as_python() {
    let dir = scratch("exec-os-execv");
    write(&dir, "x.py", SCRIPT);
    let first = write(
        &dir,
        "first.py",
        "import os, sys\nkept = b'1' * 500_000\nos.execv(sys.executable, [sys.executable, 'x.py'])\n",
    );
    let cap = dir.join("run.bin");
    let out =
        memtrace_e2e::python::tracked(python(), &cap, &[first.to_str().expect("utf-8")], &dir, b"");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        out.stdout,
        untracked(python(), &["first.py"], &dir, b"").stdout
    );
    let s = full_stats(&cap);
    assert_execd_into(&s, "run.bin.exec1", &format!("{} x.py", python().display()));
    let kept = s["top_by_size"]
        .as_array()
        .and_then(|l| l.iter().find(|l| l["line"] == 2))
        .unwrap_or_else(|| panic!("line 2 of first.py: {s}"));
    assert_eq!(num(kept, "bytes"), 500_000 + 33);
    assert_python_image(&dir.join("run.bin.exec1"));
}

#[test]
fn two_execs_in_a_row_make_three_captures() {
    let dir = scratch("exec-chain");
    let prog = compile("exec", &dir);
    let p = prog.to_str().expect("utf-8");
    let (cap, out) = run(&dir, &[], &[p, "chain", "2"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(out.stdout, b"image 2\nimage 1\nimage 0\n");
    assert_eq!(
        files(&dir, "run.bin"),
        ["run.bin", "run.bin.exec1", "run.bin.exec2"]
    );
    let caps = [cap, dir.join("run.bin.exec1"), dir.join("run.bin.exec2")];
    for (i, c) in caps.iter().enumerate() {
        let s = full_stats(c);
        // Each image's own block, and nothing of another image.
        assert_eq!(site(&s, "image_block"), (10_002 - i as i64, 1), "{s}");
        assert_eq!(num(&s, "total_allocations"), 1, "{s}");
        assert_eq!(s["pid"], full_stats(&caps[0])["pid"]);
        if i < 2 {
            assert_execd_into(
                &s,
                &format!("run.bin.exec{}", i + 1),
                &format!("exec chain {}", 1 - i),
            );
        } else {
            assert_eq!(s["complete"].as_bool(), Some(true));
            assert_eq!(s["exec"], Value::Null);
        }
    }
    let err = stderr(&out);
    assert!(
        err.contains("exec'd 2 times")
            && err.contains("run.bin -> run.bin.exec1 -> run.bin.exec2")
            && err.contains("memtrace stats run.bin.exec2"),
        "{err}"
    );
    // The text report says it too.
    let text = memtrace(&["stats", caps[0].to_str().expect("utf-8")], &dir);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("Exec'd:       exec chain 1\n") && text.contains("its capture: "),
        "{text}"
    );
}

#[test]
fn a_failed_exec_goes_on_in_the_same_capture() {
    let dir = scratch("exec-fail");
    let prog = compile("exec", &dir);
    let p = prog.to_str().expect("utf-8");
    // A program that is not there (ENOENT), one that is not executable (EACCES) and one that
    // is not a program (ENOEXEC): the last two fail after the capture was made ready.
    let not_exec = write(&dir, "not-executable", "data");
    let bad = write(&dir, "bad-program", "\x7fELF not really");
    memtrace_e2e::make_executable(&bad);
    for target in [
        None,
        Some(not_exec.to_str().expect("utf-8")),
        Some(bad.to_str().expect("utf-8")),
    ] {
        let mut words = vec![p, "fail"];
        words.extend(target);
        let (cap, out) = run(&dir, &[], &words);
        let alone = plain(&dir, &words);
        assert_eq!(out.status.code(), Some(7), "{out:?}");
        assert_eq!(out.stdout, alone.stdout);
        assert!(out.stdout.starts_with(b"exec failed: -1 "), "{out:?}");
        let s = full_stats(&cap);
        assert_eq!(s["complete"].as_bool(), Some(true), "{s}");
        assert_eq!(s["warnings"], serde_json::json!([]), "{}", s["warnings"]);
        assert_eq!(s["exec"], Value::Null, "{s}");
        assert_eq!(site(&s, "image_block"), (1111, 1));
        assert_eq!(site(&s, "after_block"), (3 * 2222, 3));
        assert_eq!(num(&s, "total_allocations"), 4);
        assert_eq!(files(&dir, "run.bin"), ["run.bin"]);
        assert!(
            stderr(&out).contains("memtrace: wrote run.bin; view it with"),
            "{}",
            stderr(&out)
        );
    }
}

#[test]
fn every_exec_function_is_followed() {
    let dir = scratch("exec-via");
    let prog = compile("exec", &dir);
    let p = prog.to_str().expect("utf-8");
    for f in [
        "execl", "execle", "execlp", "execv", "execve", "execvp", "execvpe", "fexecve",
    ] {
        let (cap, out) = run(&dir, &[], &[p, "via", f]);
        assert_eq!(out.status.code(), Some(0), "{f}: {out:?}");
        assert_eq!(out.stdout, b"image 0\n", "{f}");
        let s = full_stats(&cap);
        assert_eq!(site(&s, "image_block"), (3000, 1), "{f}");
        assert_execd_into(&s, "run.bin.exec1", "exec chain 0");
        let next = full_stats(&dir.join("run.bin.exec1"));
        assert_eq!(site(&next, "image_block"), (10_000, 1), "{f}: {next}");
    }
}

#[test]
fn an_exec_while_threads_allocate() {
    let dir = scratch("exec-threads");
    let prog = compile("exec", &dir);
    for _ in 0..3 {
        let (cap, out) = run(&dir, &[], &[prog.to_str().expect("utf-8"), "threads"]);
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        assert_eq!(out.stdout, b"image 0\n");
        let s = full_stats(&cap);
        assert_execd_into(&s, "run.bin.exec1", "exec chain 0");
        assert!(num(&s, "total_allocations") > 100, "{s}");
        let next = full_stats(&dir.join("run.bin.exec1"));
        assert_eq!(site(&next, "image_block"), (10_000, 1), "{next}");
    }
}

#[test]
fn a_bash_script_keeps_the_tracker_from_its_children() {
    // bash defines its own unsetenv, which does nothing before the shell has started: the
    // tracker's variables must still be gone from what its children get.
    let dir = scratch("exec-bash");
    let (cap, out) = run(
        &dir,
        &[],
        &[
            "/bin/bash",
            "-c",
            "/bin/cat /proc/self/environ | /usr/bin/tr '\\0' '\\n' | /bin/grep -c -e ^MEMTRACE_ -e ^LD_PRELOAD=; exit 0",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(out.stdout, b"0\n");
    assert_eq!(
        stderr(&out),
        "memtrace: wrote run.bin; view it with: memtrace stats run.bin\n"
    );
    assert_eq!(stats(&cap)["complete"].as_bool(), Some(true));
    assert_eq!(files(&dir, "run.bin"), ["run.bin"]);
}

/// Runs `exec MODE ARGS` alone, tracked, and tracked with --follow-fork: the output and exit
/// status are the same each time. Returns the directory and the tracked runs' (capture stats,
/// children's captures), the followed run's files left in place.
fn three_ways(name: &str, mode: &[&str]) -> (PathBuf, [(Value, Vec<String>); 2]) {
    let dir = scratch(name);
    let prog = compile("exec", &dir);
    let mut words = vec![prog.to_str().expect("utf-8")];
    words.extend_from_slice(mode);
    let alone = plain(&dir, &words);
    assert!(alone.status.success(), "{alone:?}");
    let runs = [&[][..], &["--follow-fork"][..]].map(|flags| {
        for f in files(&dir, "run.bin") {
            std::fs::remove_file(dir.join(f)).expect("remove");
        }
        let (cap, out) = run(&dir, flags, &words);
        assert_eq!(out.status.code(), alone.status.code(), "{flags:?}: {out:?}");
        assert_eq!(out.stdout, alone.stdout, "{flags:?}");
        let s = full_stats(&cap);
        assert_eq!(s["complete"].as_bool(), Some(true), "{s}");
        assert_eq!(s["warnings"], serde_json::json!([]), "{}", s["warnings"]);
        let children: Vec<String> = files(&dir, "run.bin.")
            .into_iter()
            .inspect(|c| {
                let cs = full_stats(&dir.join(c));
                assert_eq!(cs["complete"].as_bool(), Some(true), "{c}: {cs}");
            })
            .collect();
        if flags.is_empty() {
            assert!(children.is_empty(), "{children:?}");
        }
        (s, children)
    });
    (dir, runs)
}

#[test]
fn vfork_children_run_as_they_would() {
    let (_, [(s, _), (fs, children)]) = three_ways("exec-vfork", &["vfork"]);
    for s in [&s, &fs] {
        assert_eq!(site(s, "after_block"), (4444, 1));
    }
    // Followed: the echo the first child became (the second one's exec fails: no capture).
    assert_eq!(children.len(), 1, "{children:?}");
}

#[test]
fn posix_spawn_children_run_as_they_would() {
    let (_, [(s, _), (fs, children)]) = three_ways("exec-spawn", &["spawn"]);
    for s in [&s, &fs] {
        assert_eq!(site(s, "after_block"), (5555, 1));
    }
    assert_eq!(children.len(), 1, "{children:?}");
}

#[test]
fn a_chain_of_forks_runs_as_it_would() {
    let (dir, [(s, _), (fs, children)]) = three_ways("exec-forks", &["forks", "3"]);
    for s in [&s, &fs] {
        assert_eq!(site(s, "image_block"), (6000, 1));
    }
    // Followed: each child at depth d has its own capture with its block of 6000 + d.
    let mut blocks: Vec<(i64, i64)> = children
        .iter()
        .map(|c| site(&full_stats(&dir.join(c)), "image_block"))
        .collect();
    blocks.sort();
    assert_eq!(blocks, [(6001, 1), (6002, 1), (6003, 1)]);
}

#[test]
fn a_followed_child_that_execs_has_a_capture_per_program() {
    let (dir, [(s, _), (_, children)]) = three_ways("exec-forkexec", &["forkexec"]);
    assert_eq!(s["exec"], Value::Null);
    // run.bin.<pid> (the forked child: its block of 7777) and run.bin.<pid>.exec1.
    assert_eq!(children.len(), 2, "{children:?}");
    let (child, execd) = (&children[0], &children[1]);
    assert_eq!(execd, &format!("{child}.exec1"));
    let cs = full_stats(&dir.join(child));
    assert_eq!(site(&cs, "image_block"), (7777, 1));
    assert_execd_into(&cs, execd, "exec chain 0");
    assert_eq!(
        site(&full_stats(&dir.join(execd)), "image_block"),
        (10_000, 1)
    );
}

#[test]
fn python_isolated_mode_is_tracked_natively_and_sees_its_own_environment() {
    // -I ignores PYTHONPATH: the start-up hook cannot run, so nothing of it is set up.
    let dir = scratch("exec-py-isolated");
    write(&dir, "x.py", SCRIPT);
    let py = python().to_str().expect("utf-8");
    let line = format!("PYTHONPATH=/opt/pp exec '{py}' -I x.py");
    let words = ["/bin/sh", "-c", &line];
    let (_, out) = run(&dir, &[], &words);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(out.stdout, plain(&dir, &words).stdout);
    assert_eq!(out.stdout, b"None /opt/pp []\n");
    let s = full_stats(&dir.join("run.bin.exec1"));
    assert_eq!(s["complete"].as_bool(), Some(true), "{s}");
    assert_eq!(site(&s, "f"), (0, 0));
    assert_eq!(allocator(&s, "pymalloc_malloc"), 0, "{}", s["allocators"]);
    assert!(num(&s, "total_bytes") >= 3_000_000, "{s}");
}

#[test]
fn an_exec_of_a_program_that_cannot_be_traced_is_reported() {
    // Debian's ldconfig is statically linked: nothing can be preloaded into it.
    let dir = scratch("exec-static");
    let words = ["/bin/sh", "-c", "exec /sbin/ldconfig --version"];
    let (cap, out) = run(&dir, &[], &words);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(out.stdout, plain(&dir, &words).stdout);
    let s = full_stats(&cap);
    assert_eq!(s["complete"].as_bool(), Some(true), "{s}");
    assert_eq!(
        s["exec"]["next_capture_exists"].as_bool(),
        Some(false),
        "{s}"
    );
    let err = stderr(&out);
    assert!(
        err.contains("the program exec'd /sbin/ldconfig --version, which wrote no capture")
            && err.contains("memtrace: wrote run.bin; view it with: memtrace stats run.bin"),
        "{err}"
    );
    assert_eq!(files(&dir, "run.bin"), ["run.bin"]);
}

#[test]
fn a_statically_linked_program_exec_d_sees_nothing_of_memtrace() {
    // No loader preloads into it: it gets the environment it was given, so neither it nor the
    // programs it starts (not followed without --follow-fork) see the tracker's variables, and
    // no child writes a capture in its name.
    let dir = scratch("exec-static-env");
    let src = memtrace_e2e::workspace().join("tests/programs/static_env.c");
    let prog = dir.join("static_env");
    let built = Command::new("gcc")
        .args(["-O0", "-static", "-o"])
        .arg(&prog)
        .arg(&src)
        .status()
        .expect("gcc runs");
    assert!(built.success(), "gcc -static (libc6-dev's libc.a)");
    let line = format!("exec '{}' /bin/true", prog.display());
    let words = ["/bin/sh", "-c", line.as_str()];
    let (cap, out) = run(&dir, &[], &words);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(out.stdout, plain(&dir, &words).stdout, "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "LD_PRELOAD=(none)\nMEMTRACE variables: 0\nchild exited 0\n"
    );
    assert_eq!(files(&dir, "run.bin"), ["run.bin"]);
    let s = full_stats(&cap);
    assert_eq!(
        s["exec"]["next_capture_exists"].as_bool(),
        Some(false),
        "{s}"
    );
    assert!(
        stderr(&out).contains("which wrote no capture"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_program_run_under_valgrind_is_tracked_through_its_static_tool() {
    // valgrind's launcher execs its tool, a statically linked program, which runs the guest in
    // the same process through the guest's own loader: the tool keeps the environment (as no
    // other static program does), so the guest is tracked.
    let dir = scratch("exec-valgrind");
    let prog = compile("valgrind_guest", &dir);
    let valgrind = Command::new("valgrind").arg("--version").output();
    assert!(
        valgrind.is_ok_and(|o| o.status.success()),
        "valgrind is needed (.ci/run installs it)"
    );
    let words = [
        "valgrind",
        "--tool=none",
        "-q",
        prog.to_str().expect("utf-8"),
    ];
    let (_, out) = run(&dir, &[], &words);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert_eq!(out.stdout, b"guest done\n", "{out:?}");
    // Its call site is found by its figures, whatever valgrind makes of its frames' names.
    let holding: Vec<String> = files(&dir, "run.bin")
        .into_iter()
        .filter(|f| {
            let s = full_stats(&dir.join(f));
            s["top_by_size"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|l| num(l, "bytes") == 7 * 4321 && num(l, "count") == 7)
        })
        .collect();
    assert_eq!(
        holding.len(),
        1,
        "one capture holds the guest's 7 blocks: {holding:?}"
    );
}

#[test]
fn a_capture_killed_after_a_failed_exec_is_incomplete_and_readable() {
    // The failed exec's trailer was withdrawn: a kill afterwards leaves an incomplete capture
    // (no trailer), whose records are all readable.
    use std::io::{BufRead, BufReader};
    let dir = scratch("exec-fail-kill");
    let prog = compile("exec", &dir);
    let not_exec = write(&dir, "not-executable", "data");
    let cap = dir.join("run.bin");
    let mut child = Command::new(memtrace_bin())
        .args(["run", "-q", "-o"])
        .arg(&cap)
        .arg("--")
        .arg(&prog)
        .arg("failwait")
        .arg(&not_exec)
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("memtrace runs");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let first = lines.next().expect("a line").expect("utf-8");
    assert!(first.starts_with("exec failed: -1 "), "{first}");
    let pid: i32 = lines
        .next()
        .expect("the pid")
        .expect("utf-8")
        .trim()
        .parse()
        .expect("a pid");
    // SAFETY: kill(2) of the program this test started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    let status = child.wait().expect("memtrace ends");
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
    let s = full_stats(&cap);
    assert_eq!(s["complete"].as_bool(), Some(false), "{s}");
    let warnings = s["warnings"].as_array().expect("warnings");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0]
            .as_str()
            .is_some_and(|w| w.contains("no trailer")),
        "{warnings:?}"
    );
    assert_eq!(site(&s, "image_block"), (1111, 1));
    assert_eq!(site(&s, "after_block"), (3 * 2222, 3));
}

#[test]
fn a_taken_name_is_not_overwritten_without_force() {
    let dir = scratch("exec-taken");
    let prog = compile("exec", &dir);
    std::fs::write(dir.join("run.bin.exec1"), "someone's file").expect("write");
    let cap = dir.join("run.bin");
    let out = memtrace(
        &[
            "run",
            "-q",
            "-o",
            cap.to_str().expect("utf-8"),
            "--",
            prog.to_str().expect("utf-8"),
            "chain",
            "1",
        ],
        &dir,
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        std::fs::read(dir.join("run.bin.exec1")).expect("read"),
        b"someone's file"
    );
    assert_execd_into(&full_stats(&cap), "run.bin.exec1.2", "exec chain 0");
    let next = full_stats(&dir.join("run.bin.exec1.2"));
    assert_eq!(site(&next, "image_block"), (10_000, 1));
}

#[test]
fn an_exec_from_a_signal_handler() {
    // The handler may run while the tracker records the loop's allocations on the same thread:
    // then only the steps that take no lock and touch no thread state run before the exec.
    let dir = scratch("exec-signal");
    let prog = compile("exec", &dir);
    for _ in 0..5 {
        let (cap, out) = run(&dir, &[], &[prog.to_str().expect("utf-8"), "signal"]);
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        assert_eq!(out.stdout, b"image 0\n");
        let s = full_stats(&cap);
        // A handler that interrupted the thread halfway through writing a chunk leaves that
        // chunk unfinished (its events stay readable in the thread's staging area): reported
        // as skipped bytes, as after a kill.
        let warnings = s["warnings"].as_array().expect("warnings");
        assert!(
            warnings.iter().all(|w| {
                w.as_str().is_some_and(|w| {
                    w.starts_with("skipped ") && w.contains(" bytes of damaged data")
                })
            }),
            "{warnings:?}"
        );
        let mut s = s.clone();
        s["warnings"] = serde_json::json!([]);
        assert_execd_into(&s, "run.bin.exec1", "exec chain 0");
        assert!(num(&s, "total_allocations") > 100, "{s}");
        let next = full_stats(&dir.join("run.bin.exec1"));
        assert_eq!(site(&next, "image_block"), (10_000, 1), "{next}");
    }
}

#[test]
fn a_failed_exec_while_threads_allocate_loses_nothing() {
    // The other threads wait while the exec is tried, and record on after it failed.
    let dir = scratch("exec-threads-fail");
    let prog = compile("exec", &dir);
    let not_exec = write(&dir, "not-executable", "data");
    for _ in 0..3 {
        let (cap, out) = run(
            &dir,
            &[],
            &[
                prog.to_str().expect("utf-8"),
                "threadsfail",
                not_exec.to_str().expect("utf-8"),
            ],
        );
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        assert_eq!(out.stdout, b"exec failed: -1 Permission denied\n");
        let s = full_stats(&cap);
        assert_eq!(s["complete"].as_bool(), Some(true), "{s}");
        assert_eq!(s["warnings"], serde_json::json!([]), "{}", s["warnings"]);
        assert_eq!(s["exec"], Value::Null);
        assert_eq!(site(&s, "after_block"), (2222, 1));
        // Every block the threads allocated was freed, and each free was seen: no event was
        // lost while the exec was tried (after_block's is the one malloc without a free).
        assert_eq!(
            allocator(&s, "malloc") - allocator(&s, "free"),
            1,
            "{}",
            s["allocators"]
        );
        assert_eq!(files(&dir, "run.bin"), ["run.bin"]);
    }
}

#[test]
fn a_program_execd_with_a_standard_stream_closed_and_few_descriptors_never_gets_the_capture() {
    // Under an open-file limit of 700 or less the new capture could not move to its usual
    // number, 700 and up; it kept the number it was opened at, the free standard stream's, and
    // the program read the capture as its stdin or wrote its output into it.
    let dir = scratch("exec-closed-stream");
    for words in [
        [
            "/bin/sh",
            "-c",
            "ulimit -n 512; exec 0<&-; exec /usr/bin/wc -c",
        ],
        [
            "/bin/sh",
            "-c",
            "ulimit -n 64; exec 1>&-; exec /bin/echo hello",
        ],
    ] {
        let (cap, out) = run(&dir, &[], &words);
        let alone = plain(&dir, &words);
        assert_eq!(out.status.code(), alone.status.code(), "{words:?}: {out:?}");
        assert_eq!(out.stdout, alone.stdout, "{words:?}");
        // The program's complaint about its closed stream is there, as without memtrace.
        let complaint = stderr(&alone)
            .lines()
            .next()
            .unwrap_or_default()
            .to_string();
        assert!(!complaint.is_empty(), "{words:?}: {alone:?}");
        assert!(
            stderr(&out).contains(&complaint),
            "{words:?}: {}",
            stderr(&out)
        );
        // Both captures are whole: nothing of the program went into the exec'd one.
        let next = format!("{}.exec1", cap.display());
        assert_execd_into(
            &full_stats(&cap),
            "run.bin.exec1",
            words[2].rsplit("exec ").next().unwrap_or_default(),
        );
        let s = full_stats(Path::new(&next));
        assert_eq!(s["complete"].as_bool(), Some(true), "{s}");
        assert_eq!(s["warnings"], serde_json::json!([]), "{}", s["warnings"]);
    }
}

/// A root holding /bin/env, /bin/sh and the libraries `ldd` names for them.
fn root_with_env(dir: &Path) -> PathBuf {
    let root = dir.join("root");
    let copy = |from: &Path| {
        let to = root.join(from.strip_prefix("/").expect("absolute"));
        std::fs::create_dir_all(to.parent().expect("a parent")).expect("mkdir");
        std::fs::copy(from, &to).expect("copied");
    };
    std::fs::create_dir_all(root.join("bin")).expect("mkdir");
    for (program, name) in [("/usr/bin/env", "env"), ("/bin/sh", "sh")] {
        let real = std::fs::canonicalize(program).expect("the program");
        copy(&real);
        std::fs::copy(&real, root.join("bin").join(name)).expect("copied");
        let ldd = Command::new("ldd").arg(&real).output().expect("ldd runs");
        for line in String::from_utf8_lossy(&ldd.stdout).lines() {
            // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or "/lib64/ld-linux... (0x...)"
            if let Some(lib) = line.split_whitespace().find(|w| w.starts_with('/')) {
                copy(Path::new(lib));
            }
        }
    }
    root
}

#[test]
fn an_exec_after_a_chroot_runs_as_it_would_without_the_tracker_s_traces() {
    // The tracker's library is out of the new root's reach: the loader printed an error about
    // the preload on the program's stderr and the program saw the tracker's variables. It now
    // gets its own environment and runs untracked; the capture before the exec is whole.
    if !is_root() {
        eprintln!("skipped: chroot needs root (CI runs as root)");
        return;
    }
    let dir = scratch("exec-chroot");
    let prog = compile("chroot_exec", &dir);
    let root = root_with_env(&dir);
    let words = [prog.to_str().expect("utf-8"), root.to_str().expect("utf-8")];
    let (cap, out) = run(&dir, &[], &words);
    let alone = plain(&dir, &words);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(alone.status.code(), Some(0), "{alone:?}");
    // The same variables (memtrace passes the environment on sorted; `_` is the shell's).
    let vars = |o: &Output| {
        let mut v: Vec<String> = String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter(|l| !l.starts_with("_="))
            .map(String::from)
            .collect();
        v.sort();
        v
    };
    assert_eq!(vars(&out), vars(&alone));
    let err = stderr(&out);
    assert!(!err.contains("ld.so"), "{err}");
    assert!(err.contains("which wrote no capture"), "{err}");
    let s = full_stats(&cap);
    assert_eq!(s["complete"].as_bool(), Some(true), "{s}");
}

/// Under --follow-fork the environment holds the tracker's variables and LD_PRELOAD entry: a
/// fork child's exec and `system` (which execs inside libc, where no hook runs) after a chroot
/// had the loader print "ld.so: object ... cannot be preloaded" on the program's stderr. A
/// chroot that leaves the tracker out of reach now drops them from the environment.
#[test]
fn children_after_a_chroot_run_as_without_the_tracker_under_follow_fork() {
    if !is_root() {
        eprintln!("skipped: chroot needs root (CI runs as root)");
        return;
    }
    let dir = scratch("exec-chroot-children");
    let prog = compile("chroot_exec", &dir);
    let root = root_with_env(&dir);
    let vars = |o: &Output| {
        let mut v: Vec<String> = String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter(|l| !l.starts_with("_=") && !l.starts_with("PWD=") && !l.starts_with("SHLVL="))
            .map(String::from)
            .collect();
        v.sort();
        v
    };
    for how in ["", "fork", "system"] {
        let words = [
            prog.to_str().expect("utf-8"),
            root.to_str().expect("utf-8"),
            how,
        ];
        let alone = plain(&dir, &words);
        assert_eq!(alone.status.code(), Some(0), "{how}: {alone:?}");
        let (cap, out) = run(&dir, &["--follow-fork"], &words);
        assert_eq!(out.status.code(), Some(0), "{how}: {out:?}");
        let err = stderr(&out);
        assert!(!err.contains("ld.so"), "{how}: {err}");
        assert_eq!(vars(&out), vars(&alone), "{how}");
        let s = full_stats(&cap);
        assert_eq!(s["complete"].as_bool(), Some(true), "{how}: {s}");
    }
}

#[test]
fn a_program_of_another_elf_class_is_refused_in_one_line() {
    // A 32-bit program's loader cannot load the 64-bit tracker: memtrace says so, as it does
    // for a statically linked one, instead of running it with the loader's error on its stderr.
    let dir = scratch("run-elf32");
    let mut header = vec![0u8; 64];
    header[..4].copy_from_slice(b"\x7fELF");
    header[4] = 1; // ELFCLASS32
    header[5] = 1;
    header[18] = 3; // EM_386
    let prog = dir.join("prog32");
    std::fs::write(&prog, &header).expect("written");
    memtrace_e2e::make_executable(&prog);
    let out = memtrace(&["run", "-o", "x.bin", prog.to_str().expect("utf-8")], &dir);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("prog32 is not a 64-bit"), "{err}");
    assert!(!dir.join("x.bin").exists());
}

#[test]
fn a_program_that_becomes_a_daemon_leaves_a_whole_capture() {
    // daemon()'s parent ends with an _exit inside libc that no hook sees: its capture was
    // always incomplete. The daemon itself, followed, writes its own.
    let dir = scratch("exec-daemon");
    let prog = compile("daemonize", &dir);
    for follow in [false, true] {
        let done = dir.join(format!("done-{follow}"));
        let mut args = vec!["run", "-f", "-o", "run.bin"];
        if follow {
            args.push("--follow-fork");
        }
        args.extend([
            "--",
            prog.to_str().expect("utf-8"),
            done.to_str().expect("utf-8"),
        ]);
        let out = memtrace(&args, &dir);
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        assert!(!stderr(&out).contains("incomplete"), "{}", stderr(&out));
        let s = full_stats(&dir.join("run.bin"));
        assert_eq!(s["complete"].as_bool(), Some(true), "{s}");
        assert_eq!(site(&s, "main").0, 4321, "{s}");
        let start = std::time::Instant::now();
        while !std::fs::read_to_string(&done).is_ok_and(|t| t == "daemon done\n") {
            assert!(start.elapsed().as_secs() < 30, "the daemon did not finish");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        if follow {
            let children: Vec<String> = files(&dir, "run.bin")
                .into_iter()
                .filter(|f| f != "run.bin")
                .collect();
            assert_eq!(children.len(), 1, "{children:?}");
            // Its capture is finished once the daemon has ended.
            let child = dir.join(&children[0]);
            let start = std::time::Instant::now();
            let c = loop {
                let c = full_stats(&child);
                if c["complete"].as_bool() == Some(true) || start.elapsed().as_secs() > 30 {
                    break c;
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            };
            assert_eq!(c["complete"].as_bool(), Some(true), "{c}");
            // Its own allocations (the block from before the fork is its parent's).
            assert_eq!(site(&c, "main"), (1234, 1), "{c}");
            for f in children {
                let _ = std::fs::remove_file(dir.join(f));
            }
        }
    }
}

/// A daemon's capture names the process that forked it as its parent, though that parent
/// ends at once (daemon()): its header was written after the parent had gone, naming init (in
/// 4 runs of 6), and a reader building the tree from `parent_pid` put the daemon at the top.
#[test]
fn a_daemon_s_parent_is_the_process_that_forked_it() {
    let dir = scratch("exec-daemon-parent");
    let prog = compile("daemonize", &dir);
    for round in 0..5 {
        let out_dir = dir.join(format!("r{round}"));
        std::fs::create_dir(&out_dir).expect("mkdir");
        let done = out_dir.join("done");
        let args = [
            "run",
            "-q",
            "-f",
            "--follow-fork",
            "-o",
            "run.bin",
            "--",
            prog.to_str().expect("utf-8"),
            done.to_str().expect("utf-8"),
        ];
        let out = memtrace(&args, &out_dir);
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        let start = std::time::Instant::now();
        let family = loop {
            let s = full_stats(&out_dir.join("run.bin"));
            let finished = std::fs::read_to_string(&done).is_ok_and(|t| t == "daemon done\n")
                && s["processes"].as_array().is_some_and(|p| {
                    p.len() == 2 && p.iter().all(|r| r["complete"].as_bool() == Some(true))
                });
            if finished || start.elapsed().as_secs() > 30 {
                break s;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        let rows = family["processes"]
            .as_array()
            .unwrap_or_else(|| panic!("round {round}: no family: {family}"));
        assert_eq!(rows.len(), 2, "{family}");
        let root = family["pid"].as_u64().expect("pid");
        let daemon = rows
            .iter()
            .find(|r| r["pid"].as_u64() != Some(root))
            .expect("the daemon's row");
        assert_eq!(
            daemon["parent_pid"].as_u64(),
            Some(root),
            "round {round}: {family}"
        );
    }
}

#[test]
fn an_exec_keeps_the_program_s_environment_in_its_order() {
    // The new program gets its environment in the order the exec gave it, with its own
    // LD_PRELOAD entry where it was (the tracker's library joins that entry): a program that
    // prints, compares or hashes its environment sees what it would see alone.
    for (n, preload) in ["LD_PRELOAD=", "LD_PRELOAD=/lib/x86_64-linux-gnu/libc.so.6"]
        .into_iter()
        .enumerate()
    {
        let dir = scratch(&format!("exec-env-order-{n}"));
        let words = ["/usr/bin/env", "-i", "A=1", preload, "X=2", "/usr/bin/env"];
        let expected = format!("A=1\n{preload}\nX=2\n");
        let alone = plain(&dir, &words);
        assert_eq!(String::from_utf8_lossy(&alone.stdout), expected);
        let (_, out) = run(&dir, &[], &words);
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), expected);
        // The program after the exec was tracked: its entry held the tracker's library.
        let s = full_stats(&dir.join("run.bin.exec1"));
        assert_eq!(s["complete"].as_bool(), Some(true), "{s}");
    }
}

/// Builds tests/programs/static_env.c into `dir` as `name`, statically linked or not.
fn env_printer(dir: &Path, name: &str, static_link: bool) -> PathBuf {
    let src = memtrace_e2e::workspace().join("tests/programs/static_env.c");
    let prog = dir.join(name);
    let mut gcc = Command::new("gcc");
    gcc.arg("-O0");
    if static_link {
        gcc.arg("-static");
    }
    let built = gcc
        .arg("-o")
        .arg(&prog)
        .arg(&src)
        .status()
        .expect("gcc runs");
    assert!(built.success(), "gcc static_env.c");
    prog
}

/// fexecve and execveat of a statically linked program passed it the tracker's variables (and
/// LD_PRELOAD) under --follow-fork: the file behind the descriptor was not checked, as an
/// execve's path is. It gets the environment it was given now, whichever way it is run.
#[test]
fn a_statically_linked_program_run_through_a_descriptor_sees_nothing_of_memtrace() {
    let dir = scratch("exec-descriptor-static");
    env_printer(&dir, "static_env", true);
    let runner = compile("exec_by_descriptor", &dir);
    let runner = runner.to_str().expect("utf-8");
    for mode in ["fexecve", "execveat", "empty_path"] {
        for flags in [&[][..], &["--follow-fork"][..]] {
            let words = [runner, mode, "./static_env"];
            let (_, out) = run(&dir, flags, &words);
            assert_eq!(out.status.code(), Some(0), "{mode} {flags:?}: {out:?}");
            // (The test's own environment may hold a MEMTRACE_ variable: MEMTRACE_BIN.)
            let alone = plain(&dir, &words).stdout;
            assert!(alone.starts_with(b"LD_PRELOAD=(none)\n"), "{alone:?}");
            assert_eq!(out.stdout, alone, "{mode} {flags:?}");
        }
    }
}

/// A set-user-ID program exec'd by another user runs in the loader's secure mode, which drops
/// LD_PRELOAD: it saw the tracker's other variables (MEMTRACE_OUTPUT...). It gets the
/// environment it was given now, as a statically linked program does.
#[test]
fn a_set_user_id_program_sees_nothing_of_memtrace() {
    if !is_root() || Command::new("setpriv").arg("--help").output().is_err() {
        return;
    }
    let dir = scratch("exec-setuid");
    // The other user runs memtrace from here, and writes its capture here.
    for file in ["memtrace", "libmemtrace_tracker.so"] {
        let from = memtrace_bin().with_file_name(file);
        std::fs::copy(&from, dir.join(file)).expect("copy memtrace");
    }
    let prog = env_printer(&dir, "env_suid", false);
    let runner = compile("exec_by_descriptor", &dir);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o4755)).expect("chmod");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let as_nobody = |words: &[&str]| {
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .args(words)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .output_watched()
    };
    let runner = runner.to_str().expect("utf-8");
    let memtrace = dir.join("memtrace");
    let memtrace = memtrace.to_str().expect("utf-8");
    let alone = as_nobody(&[runner, "execveat", "./env_suid"]);
    assert!(
        alone.stdout.starts_with(b"LD_PRELOAD=(none)\n"),
        "{alone:?}"
    );
    for flags in [&[][..], &["--follow-fork"][..]] {
        let mut words = vec![memtrace, "run", "-q", "-f", "-o", "run.bin"];
        words.extend_from_slice(flags);
        words.extend_from_slice(&["--", "/bin/sh", "-c", "exec ./env_suid"]);
        let out = as_nobody(&words);
        assert_eq!(out.status.code(), Some(0), "{flags:?}: {out:?}");
        assert_eq!(out.stdout, alone.stdout, "{flags:?}: {out:?}");
    }
}

/// `memtrace run` inside a `memtrace run --follow-fork`: the outer tracker put its own
/// variables over the ones the inner run gave its program, which then wrote into the outer
/// family and the inner run found no capture. The inner run's program is the inner run's.
#[test]
fn a_memtrace_run_inside_a_followed_family_writes_its_own_capture() {
    let dir = scratch("exec-nested-run");
    let prog = compile("exec", &dir);
    let memtrace = memtrace_bin();
    let words = [
        memtrace.to_str().expect("utf-8"),
        "run",
        "-q",
        "-f",
        "-o",
        "inner.bin",
        prog.to_str().expect("utf-8"),
        "chain",
        "0",
    ];
    let (_, out) = run(&dir, &["--follow-fork"], &words);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let inner = full_stats(&dir.join("inner.bin"));
    assert_eq!(inner["complete"].as_bool(), Some(true), "{inner}");
    assert_eq!(site(&inner, "image_block"), (10_000, 1), "{inner}");
    let outer = full_stats(&dir.join("run.bin"));
    assert_eq!(outer["complete"].as_bool(), Some(true), "{outer}");
}

/// Under --follow-fork the tracker's variables take some 300 bytes of every exec's
/// environment: an exec just below the system's argument limit failed (E2BIG) where it works
/// untracked. The exec goes on without them now (the program untracked), as without
/// --follow-fork.
#[test]
fn an_exec_at_the_argument_limit_works_under_follow_fork() {
    let dir = scratch("exec-e2big");
    let prog = compile("exec_limits", &dir);
    let prog = prog.to_str().expect("utf-8");
    let probe = plain(&dir, &[prog, "probe"]);
    let limit = String::from_utf8_lossy(&probe.stdout).trim().to_string();
    assert!(limit.parse::<u64>().is_ok_and(|n| n > 100_000), "{probe:?}");
    let words = [prog, "run", limit.as_str()];
    assert_eq!(plain(&dir, &words).stdout, b"child exec ok\n");
    for flags in [&[][..], &["--follow-fork"][..]] {
        let (_, out) = run(&dir, flags, &words);
        assert_eq!(out.status.code(), Some(0), "{flags:?}: {out:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "child exec ok\n",
            "{flags:?}"
        );
    }
}

/// Under --follow-fork a child started with an environment of its own (subprocess.run(env=...),
/// execve with a given envp after vfork, posix_spawn) was not followed, without a word, when
/// libc used vfork or posix_spawn (fork + execve was). Each is followed now, its capture
/// holding exactly its program's allocations.
#[test]
fn a_child_given_an_environment_of_its_own_is_followed() {
    let dir = scratch("exec-own-environment");
    let starter = compile("own_environment", &dir);
    let child = compile("exec", &dir);
    for mode in ["fork", "vfork", "spawn"] {
        let words = [
            starter.to_str().expect("utf-8"),
            mode,
            child.to_str().expect("utf-8"),
            "chain",
            "0",
        ];
        let (cap, out) = run(&dir, &["--follow-fork", "-q"], &words);
        assert_eq!(out.status.code(), Some(0), "{mode}: {out:?}");
        // The child prints its image number first.
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("image 0\n{mode}: child exited 0\n")
        );
        let s = full_stats(&cap);
        let procs = s["processes"].as_array().expect("a family");
        assert_eq!(procs.len(), 2, "{mode}: {}", s["processes"]);
        assert_eq!(procs[1]["tracked"], true, "{mode}: {}", procs[1]);
        let captures = procs[1]["captures"].as_array().expect("captures");
        let last = captures.last().and_then(|c| c.as_str()).expect("a capture");
        let c = full_stats(Path::new(last));
        assert_eq!(site(&c, "image_block"), (10_000, 1), "{mode}: {c}");
    }
}
