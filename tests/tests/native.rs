//! C programs with known allocation patterns, run under `memtrace run`, checked through
//! `memtrace stats --json`. Counts and bytes are exact: the "none" mode of the same program is
//! subtracted (libc's own start-up allocations).

use memtrace_e2e::watchdog::Watched;
use memtrace_e2e::*;
use std::os::unix::process::ExitStatusExt;
use std::process::Command;

fn setup(name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = scratch(name);
    let prog = compile("patterns", &dir);
    (dir, prog)
}

#[test]
fn malloc_and_free_counts_and_bytes() {
    let (dir, prog) = setup("malloc");
    let d = Delta::of(&dir, &prog, &["malloc", "1000", "100"]);
    // 1000 mallocs plus the mmap'd pointer array (1000 * 8 bytes).
    assert_eq!(d.allocator("malloc"), 1000);
    assert_eq!(d.allocator("mmap"), 1);
    assert_eq!(d.get("total_allocations"), 1001);
    assert_eq!(d.get("total_bytes"), 100_000 + 8000);
    assert_eq!(d.get("peak_bytes"), 108_000);
    assert_eq!(d.get("leaked_bytes"), 0);
    assert_eq!(d.get("leaked_allocations"), 0);
}

/// The allocation functions looked up in the C library's own handle (ctypes'
/// `CDLL("libc.so.6")`): they were the C library's own, unseen, and a block freed through the
/// handle's `free` stayed live.
#[test]
fn functions_looked_up_in_the_c_library_s_handle_are_recorded() {
    let dir = scratch("libc-handle");
    let prog = compile("libc_handle", &dir);
    // dlvsym too, at the functions' glibc version, in the handle and in RTLD_DEFAULT (where a
    // versioned malloc is the C library's, never the tracker's unversioned one).
    for args in [&["use"][..], &["use", "versioned"]] {
        let d = Delta::of(&dir, &prog, args);
        assert_eq!(d.get("total_allocations"), 5, "{args:?}");
        assert_eq!(d.get("total_bytes"), 21_000_000, "{args:?}");
        assert_eq!(d.get("total_frees"), 4, "{args:?}");
        assert_eq!(d.get("peak_bytes"), 12_000_000, "{args:?}");
        assert_eq!(d.get("leaked_bytes"), 5_000_000, "{args:?}");
        assert_eq!(d.get("leaked_allocations"), 1, "{args:?}");
    }
}

/// A lookup in a library's handle that succeeds leaves no error for dlerror(): the lookups the
/// tracker made of its own failed for names outside the global scope, and their error was the
/// program's (GLib's module loader took it for its own and loaded no module).
#[test]
fn a_lookup_in_a_library_s_handle_leaves_dlerror_as_it_was() {
    let dir = scratch("dlerror-after-lookup");
    let prog = compile("dlerror_after_lookup", &dir);
    let plugin = compile_shared("plugin_fn", &dir, &[]);
    let plugin = plugin.to_str().expect("utf-8");
    let plain = Command::new(&prog).arg(plugin).output_watched();
    assert!(plain.status.success(), "{plain:?}");
    let stdout = String::from_utf8_lossy(&plain.stdout).into_owned();
    assert!(
        stdout.starts_with("plugin_fn found, dlerror (none)\n"),
        "{stdout}"
    );
    let (_cap, out) = record(&dir, "run.bin", &prog, &[plugin]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), stdout);
}

/// A malloc shim preloaded after the tracker that finds its `free` through `dlsym` at its first
/// call: the tracker's own failed lookup at its start (of CPython's `Py_BytesMain`, in a
/// program that is no Python) left an error string that the next dl call frees, through the
/// shim's `free`, which called `dlsym`, which freed it again: `echo` died of SIGSEGV.
#[test]
fn a_shim_that_finds_free_through_dlsym_runs() {
    let dir = scratch("lazy-shim");
    let shim = compile_shared("lazy_free_shim", &dir, &[]);
    let preload = format!("LD_PRELOAD={}", shim.display());
    let env = std::path::Path::new("/usr/bin/env");
    let (_cap, out) = record(&dir, "run.bin", env, &[&preload, "echo", "hi"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n");
}

#[test]
fn leaks_are_live_at_exit() {
    let (dir, prog) = setup("leak");
    let d = Delta::of(&dir, &prog, &["leak", "10", "50"]);
    assert_eq!(d.get("total_allocations"), 10);
    assert_eq!(d.get("leaked_bytes"), 500);
    assert_eq!(d.get("leaked_allocations"), 10);
    assert_eq!(d.get("peak_bytes"), 500);
}

#[test]
fn calloc_counts_the_product() {
    let (dir, prog) = setup("calloc");
    let d = Delta::of(&dir, &prog, &["calloc", "5", "10"]);
    assert_eq!(d.allocator("calloc"), 5);
    assert_eq!(d.get("total_bytes"), 5 * 40);
    assert_eq!(d.get("peak_bytes"), 40);
}

#[test]
fn realloc_chain_is_a_free_and_an_allocation_each() {
    let (dir, prog) = setup("realloc");
    let d = Delta::of(&dir, &prog, &["realloc", "10"]);
    assert_eq!(d.allocator("malloc"), 1);
    assert_eq!(d.allocator("realloc"), 10);
    assert_eq!(d.get("total_allocations"), 11);
    // 16, then 32, 64, ..., 16384
    assert_eq!(
        d.get("total_bytes"),
        16 + (32..=16384)
            .filter(|s: &i64| s.count_ones() == 1)
            .sum::<i64>()
    );
    assert_eq!(d.get("peak_bytes"), 16384);
    assert_eq!(d.get("leaked_bytes"), 0);
}

#[test]
fn aligned_allocators_are_named() {
    let (dir, prog) = setup("aligned");
    let d = Delta::of(&dir, &prog, &["aligned"]);
    for name in [
        "posix_memalign",
        "aligned_alloc",
        "memalign",
        "valloc",
        "pvalloc",
    ] {
        assert_eq!(d.allocator(name), 1, "{name}");
    }
    assert_eq!(d.get("total_bytes"), 1000 + 2048 + 3000 + 5000 + 6000);
    assert_eq!(d.get("peak_bytes"), 6000);
}

#[test]
fn anonymous_mmap_counts_and_partial_munmap_releases() {
    let (dir, prog) = setup("mmap");
    let d = Delta::of(&dir, &prog, &["mmap"]);
    // The file-backed mapping is not heap.
    assert_eq!(d.allocator("mmap"), 1);
    assert_eq!(d.get("peak_bytes"), 16 * 4096);
    assert_eq!(d.get("leaked_bytes"), 0);
}

#[test]
fn peak_in_the_middle() {
    let (dir, prog) = setup("peak");
    let d = Delta::of(&dir, &prog, &["peak"]);
    assert_eq!(d.get("peak_bytes"), (10 << 20) + (1 << 20));
    assert_eq!(d.get("total_bytes"), (10 << 20) + (1 << 20) + (5 << 20));
    assert_eq!(d.get("leaked_bytes"), 0);
    let t = d.run["peak_time_s"].as_f64().expect("peak time");
    let total = d.run["duration_s"].as_f64().expect("duration");
    assert!(t >= 0.0 && t <= total, "peak at {t}s of {total}s");
}

#[test]
fn eight_threads_of_100k_allocations() {
    let (dir, prog) = setup("threads");
    let d = Delta::of(&dir, &prog, &["threads", "8", "100000"]);
    let threads = d.run["threads"].as_array().expect("threads list");
    let workers: Vec<_> = threads
        .iter()
        .filter(|t| t["allocations"].as_i64() == Some(100_000))
        .collect();
    assert_eq!(workers.len(), 8, "threads: {threads:?}");
    for w in workers {
        assert_eq!(w["bytes"].as_i64(), Some(6_400_000));
    }
    assert!(d.allocator("malloc") >= 800_000);
    // The workers free all they allocate; what stays live is glibc's own per-thread bookkeeping
    // (the TLS vector of each finished thread, kept with its cached stack): a few hundred bytes
    // a thread, never the workers' 64-byte blocks.
    let leaked = d.get("leaked_bytes");
    assert!((0..8 * 512).contains(&leaked), "leaked {leaked}");
}

#[test]
fn fork_child_is_not_traced_by_default() {
    let (dir, prog) = setup("fork");
    let d = Delta::of(&dir, &prog, &["fork", "5"]);
    assert_eq!(d.get("leaked_bytes"), 7 * 3000);
    assert_eq!(d.get("total_allocations"), 7);
    let extra: Vec<_> = std::fs::read_dir(&dir)
        .expect("dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("run.bin."))
        .collect();
    assert!(extra.is_empty(), "no child capture without --follow-fork");
}

#[test]
fn follow_fork_writes_the_child_capture() {
    let (dir, prog) = setup("follow");
    let cap = dir.join("run.bin");
    let out = memtrace(
        &[
            "run",
            "-q",
            "--follow-fork",
            "-o",
            cap.to_str().unwrap(),
            "--",
            prog.to_str().unwrap(),
            "fork",
            "5",
        ],
        &dir,
    );
    assert!(out.status.success(), "{out:?}");
    let children: Vec<_> = std::fs::read_dir(&dir)
        .expect("dir")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("run.bin.")
        })
        .collect();
    assert_eq!(children.len(), 1, "{children:?}");
    let child = stats(&children[0]);
    // The child allocates 5 x 1000 and leaves with _exit (no exit handlers): all recovered.
    assert_eq!(num(&child, "total_allocations"), 5);
    assert_eq!(num(&child, "leaked_bytes"), 5000);
    let parent = stats(&cap);
    assert!(num(&parent, "leaked_bytes") >= 21000);
}

#[test]
fn exit_status_passes_through() {
    let (dir, prog) = setup("exit");
    let (cap, out) = record(&dir, "run.bin", &prog, &["exit", "3"]);
    assert_eq!(out.status.code(), Some(3));
    let (base, _) = record(&dir, "base.bin", &prog, &["none"]);
    let leaked = num(&stats(&cap), "leaked_bytes") - num(&stats(&base), "leaked_bytes");
    assert_eq!(leaked, 4242);
}

#[test]
fn sigkill_leaves_a_readable_capture() {
    let (dir, prog) = setup("kill");
    let (cap, out) = record(&dir, "run.bin", &prog, &["kill", "100", "10"]);
    assert_eq!(out.status.signal(), Some(libc::SIGKILL), "{out:?}");
    let (base, _) = record(&dir, "base.bin", &prog, &["none"]);
    let s = stats(&cap);
    let b = stats(&base);
    assert_eq!(
        num(&s, "total_allocations") - num(&b, "total_allocations"),
        100
    );
    assert_eq!(num(&s, "leaked_bytes") - num(&b, "leaked_bytes"), 1000);
    assert_eq!(s["complete"].as_bool(), Some(false));
}

#[test]
fn a_program_ending_itself_with_a_signal_leaves_a_complete_capture() {
    // raise(SIGTERM) runs no exit handlers: the tracker finishes the capture before it.
    let (dir, prog) = setup("raise");
    let (cap, out) = record(&dir, "run.bin", &prog, &["raise", "100", "10"]);
    assert_eq!(out.status.signal(), Some(libc::SIGTERM), "{out:?}");
    let (base, _) = record(&dir, "base.bin", &prog, &["none"]);
    let s = stats(&cap);
    let b = stats(&base);
    assert_eq!(s["complete"].as_bool(), Some(true));
    assert_eq!(
        num(&s, "total_allocations") - num(&b, "total_allocations"),
        100
    );
    assert_eq!(num(&s, "leaked_bytes") - num(&b, "leaked_bytes"), 1000);
}

#[test]
fn a_program_ending_itself_with_sigqueue_pthread_kill_or_tgkill_leaves_a_complete_capture() {
    // Only kill, raise and killpg finished the capture first: these three left it without its
    // end ("the process was killed").
    let dir = scratch("self-signal");
    let prog = compile("self_signal", &dir);
    for (how, name) in [("1", "sigqueue"), ("2", "pthread_kill"), ("3", "tgkill")] {
        let (cap, out) = record(&dir, &format!("{name}.bin"), &prog, &[how]);
        assert_eq!(out.status.signal(), Some(libc::SIGTERM), "{name}: {out:?}");
        let s = stats(&cap);
        assert_eq!(s["complete"].as_bool(), Some(true), "{name}: {s}");
        let program = s["top_modules"]
            .as_array()
            .and_then(|m| m.iter().find(|m| m["module"] == "self_signal"))
            .unwrap_or_else(|| panic!("{name}: {s}"));
        assert_eq!(num(program, "count"), 1000, "{name}: {s}");
        assert_eq!(num(program, "bytes"), 1_000_000, "{name}: {s}");
    }
}

#[test]
fn a_program_ending_its_own_process_group_leaves_a_complete_capture() {
    // kill(0, SIGTERM) and killpg(getpgrp(), SIGTERM) reach the program itself: its capture had
    // no trailer (only kill of its own pid finished it, and glibc's killpg calls no hook).
    use std::os::unix::process::CommandExt;
    let (dir, prog) = setup("killgroup");
    let (base, _) = record(&dir, "base.bin", &prog, &["none"]);
    let b = stats(&base);
    for mode in ["killgroup", "killpg"] {
        // memtrace leads a group of its own, so the program leads one too and its signal
        // reaches no test process.
        let cap = dir.join(format!("{mode}.bin"));
        let out = Command::new(memtrace_bin())
            .args(["run", "-q", "-f", "-o"])
            .arg(&cap)
            .arg("--")
            .arg(&prog)
            .args([mode, "100", "10"])
            .current_dir(&dir)
            .process_group(0)
            .output_watched();
        assert_eq!(out.status.signal(), Some(libc::SIGTERM), "{mode}: {out:?}");
        let plain = Command::new(&prog)
            .args([mode, "100", "10"])
            .process_group(0)
            .output_watched();
        assert_eq!(
            plain.status.signal(),
            Some(libc::SIGTERM),
            "{mode}: {plain:?}"
        );
        let s = stats(&cap);
        assert_eq!(s["complete"].as_bool(), Some(true), "{mode}: {s}");
        assert_eq!(
            num(&s, "total_allocations") - num(&b, "total_allocations"),
            100,
            "{mode}"
        );
        assert_eq!(
            num(&s, "leaked_bytes") - num(&b, "leaked_bytes"),
            1000,
            "{mode}"
        );
    }
}

#[test]
fn stdout_and_stdin_are_untouched() {
    let dir = scratch("stdio");
    let prog = compile("patterns", &dir);
    let input: String = (0..2000)
        .map(|i| format!("line {i} {}\n", "x".repeat(i % 97)))
        .collect();
    let run = |traced: bool| {
        let mut cmd = if traced {
            let mut c = std::process::Command::new(memtrace_bin());
            c.args(["run", "-q", "-f", "-o"])
                .arg(dir.join("io.bin"))
                .arg("--")
                .arg(&prog);
            c
        } else {
            std::process::Command::new(&prog)
        };
        cmd.arg("echo")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .current_dir(&dir);
        let mut child = cmd.spawn().expect("spawn");
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().expect("output")
    };
    let plain = run(false);
    let traced = run(true);
    assert_eq!(traced.status.code(), plain.status.code());
    assert_eq!(traced.stdout, plain.stdout);
    assert!(traced.stdout.starts_with(b"line 0"));
}

#[test]
fn ls_runs_unchanged_and_names_its_capture() {
    let dir = scratch("ls");
    let plain = std::process::Command::new("ls")
        .args(["-la", "/usr"])
        .output()
        .unwrap();
    let out = memtrace(&["run", "ls", "-la", "/usr"], &dir);
    assert_eq!(out.stdout, plain.stdout);
    assert_eq!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let name = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with("memtrace-ls.") && n.ends_with(".bin"))
        .expect("default capture name memtrace-ls.<pid>.bin");
    assert!(stderr.contains(&name), "{stderr}");
    assert!(stderr.contains("memtrace stats"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    let s = stats(&dir.join(&name));
    assert!(num(&s, "total_allocations") > 0);
    // -q silences the line.
    let quiet = memtrace(&["run", "-q", "-o", "q.bin", "ls"], &dir);
    assert!(quiet.stderr.is_empty());
}

#[test]
fn existing_capture_is_not_overwritten_without_force() {
    let dir = scratch("exists");
    std::fs::write(dir.join("taken.bin"), b"precious").unwrap();
    let out = memtrace(&["run", "-o", "taken.bin", "true"], &dir);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("-f"), "{stderr}");
    assert_eq!(std::fs::read(dir.join("taken.bin")).unwrap(), b"precious");
    let out = memtrace(&["run", "-q", "-f", "-o", "taken.bin", "true"], &dir);
    assert_eq!(out.status.code(), Some(0));
    assert_ne!(std::fs::read(dir.join("taken.bin")).unwrap(), b"precious");
}

#[test]
fn missing_program_is_one_clear_line() {
    let dir = scratch("missing");
    let out = memtrace(&["run", "no-such-program-here"], &dir);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("no-such-program-here"), "{stderr}");
}

#[test]
fn a_full_disk_never_breaks_the_program() {
    // RLIMIT_FSIZE stands in for a full disk: the capture cannot grow past 1000 KB, room for
    // the staging areas (up to 256 KiB a thread) and a few chunks, far from all.
    let (dir, prog) = setup("full");
    let cap = dir.join("full.bin");
    let script = format!(
        "ulimit -f 1000; exec {} run -o {} -- {} threads 4 200000",
        memtrace_bin().display(),
        cap.display(),
        prog.display()
    );
    let out = std::process::Command::new("bash")
        .args(["-c", &script])
        .current_dir(&dir)
        .output_watched();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(out.stdout, b"done threads\n");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("incomplete"), "{stderr}");
    let s = stats(&cap);
    assert_eq!(s["complete"].as_bool(), Some(false));
    let total = num(&s, "total_allocations");
    assert!(total > 0);
    // What was kept is real: no damage, and (but for libc's few start-up blocks) the threads'
    // 64-byte blocks only.
    let warnings = s["warnings"].to_string();
    assert!(!warnings.contains("damaged"), "{warnings}");
    let bins = s["histogram"].as_array().expect("a histogram");
    let of_64 = bins
        .iter()
        .find(|b| b["lo"].as_u64() == Some(64))
        .map_or(0, |b| b["count"].as_i64().unwrap_or(0));
    assert!(
        of_64 + 16 >= total,
        "{of_64} of {total} allocations are 64 bytes"
    );
}

#[test]
fn unwritable_capture_directory_is_refused_before_running() {
    let dir = scratch("nodir");
    let out = memtrace(&["run", "-o", "no/such/dir/x.bin", "true"], &dir);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stderr).lines().count(), 1);
}

fn stress(dir: &std::path::Path) -> std::path::PathBuf {
    compile("stress", dir)
}

#[test]
fn fork_while_threads_allocate_never_deadlocks() {
    let dir = scratch("forkthreads");
    let prog = stress(&dir);
    let (cap, out) = record(&dir, "run.bin", &prog, &["fork-threads"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(out.stdout, b"children ok: 50\n");
    let s = stats(&cap);
    assert_eq!(s["complete"].as_bool(), Some(true));
    // The spinning threads free everything they allocate.
    assert!(num(&s, "total_allocations") > 1000);
}

/// A thread allocating inside its own `dl_iterate_phdr` callbacks (the loader's list lock
/// held) while other threads flush: this hung every run when the tracker read the loader's list
/// from inside the callback. Each run ends with the program's own output, and with `--native`
/// the callback's allocations are all at its line.
#[test]
fn allocations_inside_dl_iterate_phdr_callbacks_never_deadlock() {
    let dir = scratch("phdr-alloc");
    let prog = compile("phdr_alloc", &dir);
    for (i, native) in [false, true].into_iter().enumerate() {
        let cap = dir.join(format!("run{i}.bin"));
        let mut args = vec!["run", "-q", "-f", "-o", cap.to_str().expect("utf-8 path")];
        if native {
            args.push("--native");
        }
        args.extend(["--", prog.to_str().expect("utf-8 path"), "20000"]);
        let out = memtrace(&args, &dir);
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let (count, bytes) = stdout
            .strip_prefix("callback: ")
            .and_then(|rest| rest.trim_end().split_once(" allocations, "))
            .and_then(|(c, b)| {
                Some((
                    c.parse::<i64>().ok()?,
                    b.strip_suffix(" bytes")?.parse::<i64>().ok()?,
                ))
            })
            .unwrap_or_else(|| panic!("unexpected output: {stdout}"));
        assert!(count >= 20000 * 64 * 3, "{stdout}");
        let s = stats(&cap);
        assert_eq!(s["complete"].as_bool(), Some(true));
        assert!(num(&s, "total_allocations") > count, "{s}");
        if native {
            let at_callback = s["top_by_size"].as_array().is_some_and(|a| {
                a.iter()
                    .any(|l| num(l, "bytes") == bytes && num(l, "count") == count)
            });
            assert!(
                at_callback,
                "no site with {count} allocations of {bytes} bytes: {}",
                s["top_by_size"]
            );
        }
    }
}

#[test]
fn a_crash_keeps_its_events_and_its_status() {
    let dir = scratch("segv");
    let prog = stress(&dir);
    let cap = dir.join("run.bin");
    let out = memtrace(
        &[
            "run",
            "-f",
            "-o",
            cap.to_str().unwrap(),
            prog.to_str().unwrap(),
            "segv",
        ],
        &dir,
    );
    assert_eq!(out.status.signal(), Some(libc::SIGSEGV), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("signal 11"), "{stderr}");
    let s = stats(&cap);
    assert_eq!(num(&s, "leaked_bytes"), 3 * 777);
    assert_eq!(num(&s, "total_allocations"), 3);
}

#[test]
fn failed_allocations_record_nothing() {
    let dir = scratch("huge");
    let prog = stress(&dir);
    let (cap, out) = record(&dir, "run.bin", &prog, &["huge"]);
    assert_eq!(out.stdout, b"huge: failed\n");
    assert_eq!(num(&stats(&cap), "total_allocations"), 0);
}

#[test]
fn exit_with_threads_still_allocating_loses_nothing_before_it() {
    let dir = scratch("exitthreads");
    let prog = stress(&dir);
    let (cap, out) = record(&dir, "run.bin", &prog, &["exit-threads"]);
    assert_eq!(out.status.code(), Some(0));
    let s = stats(&cap);
    assert_eq!(s["complete"].as_bool(), Some(true));
    let allocs = num(&s, "total_allocations");
    let frees = num(&s, "total_frees");
    // Each spinning thread holds at most one block when the capture ends.
    assert!(
        allocs > 1000 && allocs - frees <= 4 + 8,
        "{allocs} allocations, {frees} frees"
    );
}

#[test]
fn exec_keeps_events_and_the_execd_program_has_its_own_capture() {
    // Before the exec: the block, in a complete capture that names the next one. The shell the
    // program became is tracked too (without --follow-fork: it is the same process).
    let dir = scratch("exec");
    let prog = stress(&dir);
    let (cap, out) = record(&dir, "run.bin", &prog, &["exec"]);
    assert_eq!(out.stdout, b"from-exec\n");
    let s = stats(&cap);
    assert_eq!(num(&s, "total_allocations"), 1);
    assert_eq!(num(&s, "leaked_bytes"), 555);
    assert_eq!(s["complete"].as_bool(), Some(true));
    assert_eq!(s["exec"]["command"], "sh -c echo from-exec");
    let extra: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("run.bin."))
        .collect();
    assert_eq!(extra, ["run.bin.exec1"]);
    assert_eq!(
        stats(&dir.join("run.bin.exec1"))["command"],
        "sh -c echo from-exec"
    );
}

#[test]
fn an_executable_that_wraps_malloc_and_free_with_rtld_next_is_tracked() {
    // The wrapper's RTLD_NEXT leads to the tracker, whose real function was the wrapper again:
    // the program crashed (SIGSEGV, the stack exhausted) and left no capture.
    let dir = scratch("wrapped-allocator");
    let src = workspace().join("tests/programs/wrapped_allocator.c");
    let prog = dir.join("wrapped_allocator");
    let built = std::process::Command::new("gcc")
        .args(["-O0", "-g", "-fno-builtin", "-o"])
        .arg(&prog)
        .arg(&src)
        .arg("-ldl")
        .output_watched();
    assert!(built.status.success(), "{built:?}");
    let d = Delta::of(&dir, &prog, &["wrap", "25"]);
    assert_eq!(d.allocator("malloc"), 26);
    assert_eq!(d.get("total_allocations"), 26);
    assert_eq!(d.get("total_frees"), 25);
    assert_eq!(d.get("total_bytes"), 25 * 4321 + 777);
    assert_eq!(d.get("leaked_bytes"), 777);
    assert_eq!(d.get("leaked_allocations"), 1);
    let (_, out) = record(&dir, "again.bin", &prog, &["wrap", "3"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ok\n");
}

#[test]
fn abort_a_failed_assert_and_quick_exit_leave_a_complete_capture() {
    // None runs exit handlers, and libc sends abort's SIGABRT from inside: the capture had no
    // trailer, and an aggregated one lost everything after its last snapshot. C99's _Exit too
    // (glibc's _exit under another name, which no hook saw).
    let dir = scratch("abnormal-end");
    let prog = compile("abnormal_end", &dir);
    let p = prog.to_str().expect("utf-8 path");
    let run = |mode: &[&str], how: &str| {
        let cap = dir.join(format!("{how}.bin"));
        let mut args = vec!["run", "-q", "-f", "-o", cap.to_str().expect("utf-8 path")];
        args.extend_from_slice(mode);
        args.extend_from_slice(&["--", p, how]);
        (memtrace(&args, &dir), cap)
    };
    for mode in [&[][..], &["--aggregate"][..], &["--native"][..]] {
        let (base_out, base) = run(mode, "none");
        assert!(base_out.status.success(), "{base_out:?}");
        let base = stats(&base);
        // (how, exit code, or the signal memtrace dies of as the program did).
        for (how, code, signal) in [
            ("abort", None, Some(libc::SIGABRT)),
            ("assert", None, Some(libc::SIGABRT)),
            ("quick_exit", Some(3), None),
            ("_Exit", Some(4), None),
        ] {
            let (out, cap) = run(mode, how);
            assert_eq!(
                (out.status.code(), out.status.signal()),
                (code, signal),
                "{how} {mode:?}: {out:?}"
            );
            if how == "assert" {
                assert!(
                    String::from_utf8_lossy(&out.stderr).contains("Assertion `argc == 0' failed"),
                    "{out:?}"
                );
            }
            let s = stats(&cap);
            assert_eq!(s["complete"].as_bool(), Some(true), "{how} {mode:?}: {s}");
            let delta = |key: &str| num(&s, key) - num(&base, key);
            // The program's own: 1000 freed, 100 of 1000 bytes live at the end.
            assert_eq!(delta("total_allocations"), 1100, "{how} {mode:?}");
            assert_eq!(delta("total_frees"), 1000, "{how} {mode:?}");
            assert_eq!(delta("leaked_allocations"), 100, "{how} {mode:?}");
            assert_eq!(delta("leaked_bytes"), 100_000, "{how} {mode:?}");
        }
    }
}

/// A program with its own entry point (-nostartfiles): nothing runs the libraries' destructors
/// at its exit, so the capture was never finished ("incomplete") although the program exited
/// normally. Finished by an exit handler the tracker registers at start.
#[cfg(target_arch = "x86_64")]
#[test]
fn a_program_with_its_own_entry_point_leaves_a_complete_capture() {
    let dir = scratch("own-start");
    let src = workspace().join("tests/programs/own_start.c");
    let prog = dir.join("own_start");
    let built = Command::new("gcc")
        .args(["-O0", "-fno-builtin", "-nostartfiles", "-o"])
        .arg(&prog)
        .arg(&src)
        .status()
        .expect("gcc runs");
    assert!(built.success());
    let alone = Command::new(&prog).output().expect("run");
    assert_eq!(alone.status.code(), Some(7));
    let p = prog.to_str().expect("utf-8 path");
    for mode in [&[][..], &["--aggregate"][..], &["--native"][..]] {
        let cap = dir.join("own.bin");
        let mut args = vec!["run", "-q", "-f", "-o", cap.to_str().expect("utf-8 path")];
        args.extend_from_slice(mode);
        args.extend_from_slice(&["--", p]);
        let out = memtrace(&args, &dir);
        assert_eq!(out.status.code(), Some(7), "{mode:?}: {out:?}");
        assert_eq!(out.stdout, alone.stdout, "{mode:?}");
        let s = stats(&cap);
        assert_eq!(s["complete"].as_bool(), Some(true), "{mode:?}: {s}");
        assert_eq!(s["total_allocations"].as_u64(), Some(10), "{mode:?}: {s}");
        assert_eq!(s["total_frees"].as_u64(), Some(5), "{mode:?}: {s}");
        assert_eq!(
            s["leaked_bytes"].as_u64(),
            Some(105 + 106 + 107 + 108 + 109),
            "{mode:?}"
        );
    }
}

/// A child made without fork()'s handlers (glibc's `_Fork`, a raw clone system call) runs the
/// parent's image: it must neither write into the parent's capture (shared memory) nor finish it
/// at its exit (which cut the file under the parent: SIGBUS). With --follow-fork a `_Fork`
/// child gets a capture of its own, as a fork child does; a raw clone cannot be seen.
#[test]
fn a_child_made_without_fork_s_handlers_leaves_the_parent_s_capture_alone() {
    let dir = scratch("fork-without-handlers");
    let prog = compile("fork_without_handlers", &dir);
    let p = prog.to_str().expect("utf-8 path");
    for how in ["_Fork", "clone"] {
        let alone = Command::new(&prog).arg(how).output().expect("run");
        assert_eq!(alone.status.code(), Some(0), "{how}");
        assert_eq!(alone.stdout, b"child exited 3\n", "{how}");
        for mode in [
            &[][..],
            &["--aggregate"][..],
            &["--native"][..],
            &["--follow-fork"][..],
        ] {
            let cap = dir.join(format!("{how}.bin"));
            let mut args = vec!["run", "-q", "-f", "-o", cap.to_str().expect("utf-8 path")];
            args.extend_from_slice(mode);
            args.extend_from_slice(&["--", p, how]);
            let out = memtrace(&args, &dir);
            assert_eq!(out.status.code(), Some(0), "{how} {mode:?}: {out:?}");
            assert_eq!(out.stdout, alone.stdout, "{how} {mode:?}");
            let s = stats(&cap);
            assert_eq!(s["complete"].as_bool(), Some(true), "{how} {mode:?}: {s}");
            // The parent's own: 10 + 1,000 + 10 and stdout's buffer; none of the child's 50.
            assert_eq!(
                s["total_allocations"].as_u64(),
                Some(1021),
                "{how} {mode:?}: {s}"
            );
            assert_eq!(s["total_frees"].as_u64(), Some(1000), "{how} {mode:?}: {s}");
            assert_eq!(
                s["leaked_bytes"].as_u64(),
                Some(10 * 1000 + 10 * 1001 + 4096),
                "{how} {mode:?}: {s}"
            );
            let children: Vec<_> = std::fs::read_dir(&dir)
                .expect("scratch")
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(&format!("{how}.bin.")))
                .collect();
            if how == "_Fork" && mode == ["--follow-fork"] {
                assert_eq!(children.len(), 1, "{children:?}");
                let c = stats(&dir.join(&children[0]));
                assert_eq!(c["complete"].as_bool(), Some(true), "{c}");
                assert_eq!(c["total_allocations"].as_u64(), Some(50), "{c}");
                assert_eq!(c["total_frees"].as_u64(), Some(50), "{c}");
            } else {
                assert!(children.is_empty(), "{how} {mode:?}: {children:?}");
            }
            for c in children {
                std::fs::remove_file(dir.join(c)).expect("remove the child's capture");
            }
        }
    }
}

/// An executable with an allocator of its own that holds its lock while it maps memory hung
/// for ever in every mode: its mmap, recorded, filled the thread's staging area, and zstd,
/// asked for a compression context, called the global calloc, the program's, which waited for
/// the lock its own thread held. zstd's memory now comes from the real allocator.
#[test]
fn an_executable_with_its_own_allocator_that_maps_under_its_lock_runs() {
    let dir = scratch("own-allocator");
    let prog = compile("own_allocator", &dir);
    let p = prog.to_str().expect("utf-8 path");
    for mode in [
        &[][..],
        &["--native"][..],
        &["--aggregate"][..],
        &["--sample-bytes", "64K"][..],
    ] {
        let cap = dir.join("own.bin");
        let mut args = vec!["run", "-q", "-f", "-o", cap.to_str().expect("utf-8 path")];
        args.extend_from_slice(mode);
        args.extend_from_slice(&["--", p]);
        let out = memtrace(&args, &dir);
        assert_eq!(out.status.code(), Some(0), "{mode:?}: {out:?}");
        assert_eq!(out.stdout, b"done\n", "{mode:?}");
        let s = stats(&cap);
        assert_eq!(s["complete"].as_bool(), Some(true), "{mode:?}: {s}");
        // The program's blocks are its own mappings: 20,000 and stdout's buffer.
        assert_eq!(allocator(&s, "mmap"), 20_001, "{mode:?}: {s}");
        assert_eq!(s["total_frees"].as_u64(), Some(20_000), "{mode:?}: {s}");
    }
    // Its malloc calls reach no hook: memtrace says so (it said nothing, and the capture held
    // the allocator's mappings alone).
    let cap = dir.join("told.bin");
    let out = memtrace(
        &[
            "run",
            "-f",
            "-o",
            cap.to_str().expect("utf-8 path"),
            "--",
            p,
        ],
        &dir,
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("the program's executable defines malloc and free itself"),
        "{err}"
    );
    // A program using the C library's malloc is told nothing of the kind.
    let plain = memtrace(&["run", "-f", "-o", "ls.bin", "--", "/bin/ls", "/"], &dir);
    assert!(!String::from_utf8_lossy(&plain.stderr).contains("defines malloc"));
}

/// A library with an allocator of its own (as jemalloc's or tcmalloc's, whose operator new the
/// program calls without passing through malloc) that holds its lock while it maps memory: the
/// tracker's own memory (zstd's context here) came from "the real malloc", that library's, and
/// a recorded mmap waited for the lock its own thread held (2 runs of 2; jemalloc preloaded
/// or linked hung a C++ program 5 times in 5). It comes from the C library's allocator now.
#[test]
fn a_library_with_its_own_allocator_that_maps_under_its_lock_runs() {
    let dir = scratch("lib-allocator");
    // A C++ program's (its code calls operator new; its runtime is loaded after the library,
    // whose operator new comes first), and a C program's.
    let build = |name: &str, cxx: bool| {
        let flags = ["-O0", "-g", "-fno-builtin", "-pthread"];
        let extra: &[&str] = if cxx {
            &["-DCXX", "-Wl,--no-as-needed", "-lstdc++"]
        } else {
            &[]
        };
        compile_linked(
            ("lib_allocator", "lib_allocator_main", name),
            &dir,
            &flags,
            extra,
        )
    };
    let prog = build("lib_allocator_main", true);
    let c_prog = build("lib_allocator_c", false);
    let cap = dir.join("c.bin");
    let out = memtrace(
        &[
            "run",
            "-q",
            "-f",
            "-o",
            cap.to_str().expect("utf-8 path"),
            "--",
        ]
        .into_iter()
        .chain([c_prog.to_str().expect("utf-8 path")])
        .collect::<Vec<_>>(),
        &dir,
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    // A C program news nothing: nothing is missing.
    assert_eq!(stats(&cap)["warnings"], serde_json::json!([]));
    let p = prog.to_str().expect("utf-8 path");
    for mode in [&[][..], &["--native"][..], &["--aggregate"][..]] {
        let cap = dir.join("lib.bin");
        let mut args = vec!["run", "-q", "-f", "-o", cap.to_str().expect("utf-8 path")];
        args.extend_from_slice(mode);
        args.extend_from_slice(&["--", p]);
        let out = memtrace(&args, &dir);
        assert_eq!(out.status.code(), Some(0), "{mode:?}: {out:?}");
        assert_eq!(out.stdout, b"done\n", "{mode:?}");
        let s = stats(&cap);
        assert_eq!(s["complete"].as_bool(), Some(true), "{mode:?}: {s}");
        // The library's blocks are its mappings, 20,000 and the one of the operator new call
        // (the mallocs are the C library's and the C++ runtime's: stdout's buffer, its
        // exception pool but under --native).
        assert_eq!(allocator(&s, "mmap"), 20_001, "{mode:?}: {s}");
        let library = s["top_modules"]
            .as_array()
            .and_then(|m| m.iter().find(|m| m["module"] == "liblib_allocator.so"))
            .unwrap_or_else(|| panic!("{mode:?}: {s}"));
        assert_eq!(num(library, "count"), 20_001, "{mode:?}: {s}");
        assert_eq!(s["total_frees"].as_u64(), Some(20_000), "{mode:?}: {s}");
        // Its operator new is its own: what goes through it is not seen, and that is said.
        let warnings = s["warnings"].to_string();
        assert!(warnings.contains("own operator new"), "{mode:?}: {s}");
    }
}

/// A library allocator that manages the program break itself (`brk(end)` to grow): when the
/// tracker's memory came from the C library's malloc, grown with sbrk, that allocator's next
/// brk cut the tracker's heap off, and the program died (SIGSEGV with --native, "double free
/// or corruption" without; 3 runs of 3 each). The tracker's memory is its own mappings there.
#[test]
fn a_library_allocator_that_moves_the_program_break_itself_runs() {
    let dir = scratch("brk-allocator");
    let flags = [
        "-O1",
        "-fno-builtin",
        "-fno-omit-frame-pointer",
        "-fno-optimize-sibling-calls",
    ];
    let prog = compile_linked(
        ("brk_allocator", "brk_allocator_main", "brk_allocator_main"),
        &dir,
        &flags,
        &[],
    );
    let alone = Command::new(&prog).current_dir(&dir).output_watched();
    assert!(alone.status.success(), "{alone:?}");
    let p = prog.to_str().expect("utf-8 path");
    for mode in [&[][..], &["--native"][..]] {
        let cap = dir.join("brk.bin");
        let mut args = vec!["run", "-q", "-f", "-o", cap.to_str().expect("utf-8 path")];
        args.extend_from_slice(mode);
        args.extend_from_slice(&["--", p]);
        let out = memtrace(&args, &dir);
        assert_eq!(out.status.code(), Some(0), "{mode:?}: {out:?}");
        assert_eq!(out.stdout, alone.stdout, "{mode:?}");
        // The program's page mappings, each unmapped (its mallocs are its own allocator's).
        let s = stats(&cap);
        assert_eq!(allocator(&s, "mmap"), 300_000, "{mode:?}: {s}");
    }
}

#[test]
fn thousands_of_call_sites_leave_no_chunk_damaged() {
    // Each new call site writes two table records (its frame and its stack) after one
    // reservation: with 6,000 of them, some fall where a chunk's record types have one byte of
    // room left, which once dropped the second record's type and damaged the chunk.
    let dir = scratch("call-sites");
    let sites = 6000u64;
    let mut src = String::from("#include <stdlib.h>\n");
    for k in 0..sites {
        let size = k % 200 + 1;
        src.push_str(&format!(
            "__attribute__((noinline)) void f{k}(void) {{ void *volatile p = malloc({size}); free(p); }}\n"
        ));
    }
    src.push_str("int main(void) {\n  for (int r = 0; r < 2; r++) {\n");
    for k in 0..sites {
        src.push_str(&format!("    f{k}();\n"));
    }
    src.push_str("  }\n  return 0;\n}\n");
    let c = dir.join("sites.c");
    std::fs::write(&c, src).expect("write the program");
    let prog = compile_file(&c, &dir);
    // Where the chunks end depends on the addresses' encoding (address space layout
    // randomization): a few runs cover several places (one run met the fault 17 times in 20).
    let bytes: u64 = (0..sites).map(|k| k % 200 + 1).sum();
    let mut cap = dir.join("sites.bin");
    for _ in 0..5 {
        let out;
        (cap, out) = record(&dir, "sites.bin", &prog, &[]);
        assert!(out.status.success(), "run failed: {out:?}");
        let v = stats(&cap);
        assert_eq!(v["warnings"], serde_json::json!([]), "stats: {v}");
        assert_eq!(num(&v, "total_allocations"), 2 * sites as i64);
        assert_eq!(num(&v, "total_frees"), 2 * sites as i64);
        assert_eq!(num(&v, "total_bytes"), 2 * bytes as i64);
    }
    // Each block is freed at once: every site is in the temporary allocations' tree, each
    // with its own stack and its function named.
    let tree = report(&["tree", "--temporary", "--json"], &cap);
    let sites_seen = tree["tree"]["children"].as_array().map_or(0, |c| c.len());
    assert_eq!(sites_seen, sites as usize);
    assert_eq!(node_sum(&tree["tree"], "f4321"), (2 * (4321 % 200 + 1), 2));
}

#[test]
fn a_linked_library_s_constructor_allocations_are_recorded() {
    // Its constructor runs before the tracker's: the block it keeps was missing (and its
    // realloc read as a new block with no free).
    let (dir, _) = setup("native-ctor");
    let src = workspace().join("tests/programs");
    let lib = dir.join("libctor.so");
    let built = Command::new("gcc")
        .args(["-O0", "-g", "-fno-builtin", "-shared", "-fPIC", "-o"])
        .arg(&lib)
        .arg(src.join("ctor_lib.c"))
        .status()
        .expect("gcc runs");
    assert!(built.success());
    let prog = dir.join("ctor_main");
    let built = Command::new("gcc")
        .args(["-O0", "-g", "-fno-builtin", "-o"])
        .arg(&prog)
        .arg(src.join("ctor_main.c"))
        .arg(format!("-L{}", dir.display()))
        .arg("-lctor")
        .arg(format!("-Wl,-rpath,{}", dir.display()))
        .status()
        .expect("gcc runs");
    assert!(built.success());
    let (cap, out) = record(&dir, "ctor.bin", &prog, &[]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "table=1\n");
    let s = stats(&cap);
    let at = |function: &str, line: i64| {
        s["top_by_size"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|t| t["function"] == function && t["line"] == line)
            .map(|t| (num(t, "bytes"), num(t, "count")))
    };
    assert_eq!(at("init", 7), Some((100_000, 1)), "{s}");
    assert_eq!(at("init", 8), None, "freed before the start: {s}");
    assert_eq!(at("main", 8), Some((200_000, 1)), "{s}");
    // The table and its realloc'd successor are both freed: only stdio's buffer is left.
    assert_eq!(num(&s, "total_frees"), 2, "{s}");
    assert!(num(&s, "leaked_bytes") <= 8192, "{s}");
}

#[test]
fn a_library_loaded_with_deepbind_is_recorded() {
    // RTLD_DEEPBIND binds a library's malloc and free to the C library's ahead of the
    // preloaded tracker: its 3 blocks, its calloc grown by realloc and its mapping went
    // unseen, and a block of its freed by the program was an unknown free. The exported
    // dlopen patches the objects such a dlopen loads, bound now or lazily.
    let dir = scratch("native_deepbind");
    let prog = compile_file(&workspace().join("tests/programs/deepbind_main.c"), &dir);
    let lib_src = workspace().join("tests/programs/deepbind_lib.c");
    for binding in ["now", "lazy"] {
        let lib = dir.join(format!("libdeep_{binding}.so"));
        let built = Command::new("gcc")
            .args([
                "-O0",
                "-g",
                "-shared",
                "-fPIC",
                &format!("-Wl,-z,{binding}"),
                "-o",
            ])
            .arg(&lib)
            .arg(&lib_src)
            .output_watched();
        assert!(built.status.success(), "{built:?}");
        let lib = lib.to_str().expect("utf-8 path");
        let (cap, out) = record(&dir, &format!("{binding}.bin"), &prog, &[lib, binding]);
        assert!(out.status.success(), "{out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "1\n");
        let leaks = report(&["tree", "--json", "--leaks"], &cap);
        assert_eq!(
            node_sum(&leaks["tree"], "deep_alloc"),
            (7001, 1),
            "{binding}: {leaks}"
        );
        assert_eq!(
            node_sum(&leaks["tree"], "deep_realloc"),
            (7005, 1),
            "{binding}: {leaks}"
        );
        assert_eq!(
            node_sum(&leaks["tree"], "deep_calloc"),
            (0, 0),
            "{binding}: {leaks}"
        );
        assert_eq!(
            node_sum(&leaks["tree"], "deep_map"),
            (7 * 4096, 1),
            "{binding}: {leaks}"
        );
        let all = stats(&cap);
        let by_size = all["top_by_size"].as_array().expect("top_by_size");
        let allocated = |function: &str| {
            by_size
                .iter()
                .find(|l| l["function"].as_str() == Some(function))
                .map(|l| (num(l, "bytes"), num(l, "count")))
        };
        assert_eq!(
            allocated("deep_alloc"),
            Some((3 * 7001, 3)),
            "{binding}: {all}"
        );
        assert_eq!(
            allocated("deep_calloc"),
            Some((7003, 1)),
            "{binding}: {all}"
        );
        // Eight threads opening it at once: a thread whose dlopen found it loaded by another
        // called into it before that one had patched it (up to seven threads' blocks lost).
        for round in 0..5 {
            let (cap, out) = record(&dir, "threads.bin", &prog, &[lib, "threads"]);
            assert!(out.status.success(), "{out:?}");
            assert_eq!(String::from_utf8_lossy(&out.stdout), "1\n");
            let leaks = report(&["tree", "--json", "--leaks"], &cap);
            assert_eq!(
                node_sum(&leaks["tree"], "deep_alloc"),
                (8 * 7001, 8),
                "{binding}, round {round}: {leaks}"
            );
        }
    }
}

#[test]
fn mapping_calls_are_followed_as_the_kernel_makes_them() {
    // Unmaps take whole pages (a short length left a phantom tail live for good); mmap, munmap
    // and mremap made through syscall() went unseen; a file mapped with MAP_FIXED over
    // anonymous pages left them live; MREMAP_DONTUNMAP was taken for a move.
    let dir = scratch("native_mapping_edges");
    let prog = compile("mapping_edges", &dir);
    for mode in [
        "short_unmap",
        "head_unmap",
        "short_mremap",
        "raw",
        "fixed_file",
        "dontunmap",
    ] {
        for extra in [&[][..], &["--aggregate"][..]] {
            let cap = dir.join(format!("{mode}.bin"));
            let mut args = vec!["run", "-q", "-f"];
            args.extend_from_slice(extra);
            args.extend_from_slice(&["-o", cap.to_str().expect("utf-8 path"), "--"]);
            args.extend_from_slice(&[prog.to_str().expect("utf-8 path"), mode]);
            let out = memtrace(&args, &dir);
            assert!(out.status.success(), "{mode} {extra:?}: {out:?}");
            let said = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if said == "unsupported" {
                continue;
            }
            let (bytes, mappings) = said.split_once(' ').expect("two figures");
            let s = stats(&cap);
            let live = (num(&s, "leaked_bytes"), num(&s, "leaked_allocations"));
            let expected: (i64, i64) = (
                bytes.parse().expect("a number"),
                mappings.parse().expect("a number"),
            );
            assert_eq!(live, expected, "{mode} {extra:?}: {s}");
        }
    }
}

#[test]
fn mappings_a_linked_library_makes_before_the_start_are_recorded() {
    // The loader runs a linked library's constructor before the preloaded tracker's: its
    // malloc'd blocks were noted and recorded at the start, its mappings were not.
    let dir = scratch("native_early_maps");
    let prog = compile_linked(
        ("early_maps_lib", "early_maps", "early_maps"),
        &dir,
        &["-O0", "-g"],
        &[],
    );
    let (cap, out) = record(&dir, "early.bin", &prog, &[]);
    assert!(out.status.success(), "{out:?}");
    let s = stats(&cap);
    // What was mapped when the capture opened: trimmed and moved mappings as they were then
    // (a partial unmap or an mremap before the start left the mapping's first form noted).
    assert_eq!(num(&s, "leaked_bytes"), (16 + 32 + 12) * 4096 + 1111, "{s}");
    assert_eq!(num(&s, "leaked_allocations"), 4, "{s}");
    assert_eq!(
        num(&s, "total_bytes"),
        (16 + 2 + 32 + 12) * 4096 + 1111,
        "{s}"
    );
    assert_eq!(allocator(&s, "mmap"), 4, "{s}");
}

#[test]
fn what_at_quick_exit_handlers_do_is_recorded() {
    // quick_exit finished the capture before the C library ran the handlers: their free and
    // allocation were missing.
    let dir = scratch("native_quick_exit");
    let prog = compile("quick_exit_handlers", &dir);
    let (cap, out) = record(&dir, "qe.bin", &prog, &[]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "handler ran 1\n");
    let s = stats(&cap);
    assert_eq!(s["complete"].as_bool(), Some(true), "{s}");
    assert_eq!(num(&s, "total_allocations"), 2, "{s}");
    assert_eq!(num(&s, "total_bytes"), 2777, "{s}");
    assert_eq!(num(&s, "total_frees"), 1, "{s}");
    assert_eq!(num(&s, "leaked_bytes"), 2000, "{s}");
}

#[test]
fn a_deep_bound_dlopen_searches_as_the_caller_would() {
    // The tracker made a deep-bound dlopen itself, as the caller would have made it only in
    // part: a bare name found through the RPATH of the caller's loader was not found.
    let dir = scratch("native_deepbind_chain");
    let src = workspace().join("tests/programs");
    std::fs::create_dir_all(dir.join("plugins")).expect("mkdir");
    let gcc = |args: &[&str]| {
        let out = Command::new("gcc")
            .args(args)
            .current_dir(&dir)
            .output_watched();
        assert!(out.status.success(), "{args:?}: {out:?}");
    };
    let s = |name: &str| src.join(name).to_string_lossy().into_owned();
    gcc(&[
        "-O0",
        "-g",
        "-shared",
        "-fPIC",
        "-o",
        "plugins/libdeepplugin.so",
        &s("deepbind_lib.c"),
    ]);
    gcc(&[
        "-O0",
        "-g",
        "-shared",
        "-fPIC",
        "-o",
        "libdeepcaller.so",
        &s("deepbind_caller.c"),
    ]);
    gcc(&[
        "-O0",
        "-g",
        "-shared",
        "-fPIC",
        "-o",
        "libdeeploader.so",
        &s("deepbind_loader.c"),
        "-L.",
        "-ldeepcaller",
        "-Wl,--disable-new-dtags",
        "-Wl,-rpath,$ORIGIN/plugins:$ORIGIN",
    ]);
    gcc(&[
        "-O0",
        "-g",
        "-o",
        "chain",
        &s("deepbind_chain_main.c"),
        "-L.",
        "-ldeeploader",
        "-ldeepcaller",
        "-Wl,-rpath,$ORIGIN",
    ]);
    let alone = Command::new(dir.join("chain")).output_watched();
    assert_eq!(
        String::from_utf8_lossy(&alone.stdout),
        "loaded\n",
        "{alone:?}"
    );
    let (cap, out) = record(&dir, "chain.bin", &dir.join("chain"), &[]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "loaded\n", "{out:?}");
    let leaks = report(&["tree", "--json", "--leaks"], &cap);
    assert_eq!(node_sum(&leaks["tree"], "deep_alloc"), (7001, 1), "{leaks}");
}

#[test]
fn threads_calling_quick_exit_at_once_leave_a_finished_capture() {
    // With the capture finished by the tracker's at_quick_exit handler, a second thread's
    // quick_exit (its handler list empty) ended the process while the first was finishing:
    // 11 captures of 12 had no trailer.
    let dir = scratch("native_quick_exit_threads");
    let prog = compile("quick_exit_threads", &dir);
    for round in 0..6 {
        let (cap, out) = record(&dir, "qe.bin", &prog, &[]);
        let code = out.status.code().unwrap_or(-1);
        assert!((10..18).contains(&code), "round {round}: {out:?}");
        let s = stats(&cap);
        assert_eq!(s["complete"].as_bool(), Some(true), "round {round}: {s}");
    }
}

#[test]
fn a_library_whose_mmap_calls_syscall_runs_and_is_recorded() {
    // gperftools' tcmalloc defines mmap and makes the system call through syscall(): the
    // tracker's syscall sent it to the mmap hook, which passed it on to "the next mmap",
    // tcmalloc's, and so on until the stack overflowed (every tcmalloc program died at start).
    let dir = scratch("native_syscall_mmap_lib");
    let prog = compile_linked(
        ("syscall_mmap_lib", "syscall_mmap_main", "syscall_mmap_main"),
        &dir,
        &["-O0", "-g"],
        &[],
    );
    let (cap, out) = record(&dir, "sm.bin", &prog, &[]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "mapped\n");
    let s = stats(&cap);
    assert_eq!(num(&s, "leaked_bytes"), 10 * 4096, "{s}");
    assert_eq!(num(&s, "total_bytes"), 14 * 4096, "{s}");
}

#[test]
fn a_preloaded_library_that_interposes_dlsym_still_answers() {
    // The tracker's own dlsym went on to the C library's (found by version), past a library
    // preloaded after it that defines dlsym without a version: its answers were lost.
    let dir = scratch("native_dlsym_shim");
    let prog = compile("dlsym_shim_main", &dir);
    let shim = dir.join("libdlsym_shim.so");
    let built = Command::new("gcc")
        .args(["-O0", "-g", "-shared", "-fPIC", "-o"])
        .arg(&shim)
        .arg(workspace().join("tests/programs/dlsym_shim.c"))
        .output_watched();
    assert!(built.status.success(), "{built:?}");
    let out = Command::new(memtrace_bin())
        .args(["run", "-q", "-f", "-o", "shim.bin", "--"])
        .arg(&prog)
        .env("LD_PRELOAD", &shim)
        .current_dir(&dir)
        .output_watched();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "4242\n", "{out:?}");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

/// A program moved or deleted after its run: the report shows its addresses as offsets and
/// says why (it said nothing, where a rebuilt file gets a warning).
#[test]
fn a_program_gone_since_the_run_is_named_in_a_warning() {
    let (dir, prog) = setup("gone-program");
    let (cap, out) = record(&dir, "gone.bin", &prog, &["malloc", "10", "100"]);
    assert!(out.status.success(), "{out:?}");
    // Read whole each time: an index would answer without the symbols.
    let text_stats = || {
        Command::new(memtrace_bin())
            .args(["stats", cap.to_str().expect("utf-8")])
            .env("MEMTRACE_INDEX", "off")
            .current_dir(&dir)
            .output_watched()
    };
    let moved = dir.join("patterns.moved");
    std::fs::rename(&prog, &moved).expect("rename");
    let out = text_stats();
    assert!(out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "memtrace: warning: {} is gone (moved or deleted since the capture): its addresses are shown as offsets",
            prog.display()
        )),
        "{err}"
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("patterns+0x"),
        "{out:?}"
    );
    // Back in place: no warning.
    std::fs::rename(&moved, &prog).expect("rename back");
    let out = text_stats();
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("warning"),
        "{out:?}"
    );
}
