//! An address-space limit (RLIMIT_AS: `ulimit -v`, `prlimit --as`, a program's own
//! `resource.setrlimit`) counts the tracker's reservations too. A program that runs under its
//! limit alone must run under memtrace: the capture's mapping takes a sixteenth of the room a
//! limit leaves (capture::file's `map_sizes`), gives back its unused part when the program
//! lowers its limit (session::limits), and when it is full, recording stops and says why.

use memtrace_e2e::python::python;
use memtrace_e2e::watchdog::Watched;
use memtrace_e2e::{memtrace_bin, scratch, stats};
use serde_json::Value;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output};

fn num(s: &Value, key: &str) -> u64 {
    s[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} missing: {s}"))
}

/// `cmd` starts with its `resource` limit (soft and hard) at `limit`.
fn set_limit(cmd: &mut Command, resource: libc::__rlimit_resource_t, limit: u64) {
    set_limits(cmd, resource, limit, limit);
}

/// `cmd` starts with its `resource` limit at `soft`, its hard limit at `hard`.
fn set_limits(cmd: &mut Command, resource: libc::__rlimit_resource_t, soft: u64, hard: u64) {
    // SAFETY: setrlimit in the child before exec: async-signal-safe, no allocation.
    unsafe {
        cmd.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: soft,
                rlim_max: hard,
            };
            if libc::setrlimit(resource, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    };
}

/// `words` run by python alone and under `memtrace run -o capture`, each with RLIMIT_AS set to
/// `limit` at start when given.
fn alone_and_tracked(
    dir: &Path,
    capture: &Path,
    words: &[&str],
    limit: Option<u64>,
) -> (Output, Output) {
    let py = python().to_str().expect("utf-8 path");
    let limited = |mut cmd: Command| -> Output {
        cmd.current_dir(dir);
        if let Some(limit) = limit {
            set_limit(&mut cmd, libc::RLIMIT_AS, limit);
        }
        cmd.output().expect("run")
    };
    let mut alone = Command::new(py);
    alone.args(words);
    let mut tracked = Command::new(memtrace_bin());
    tracked
        .args(["run", "-f", "-o"])
        .arg(capture)
        .args(["--python", py])
        .args(words);
    (limited(alone), limited(tracked))
}

#[test]
fn a_program_that_lowers_its_own_address_space_limit_runs_as_alone() {
    // Under a limit set at run time the terabyte the capture reserved at start made every
    // allocation fail (a MemoryError at once, then an abort of the tracker's own).
    let dir = scratch("rlimit-own");
    let script = "import resource\n\
                  resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))\n\
                  blocks = [bytearray(1 << 20) for _ in range(500)]\n\
                  print('ok', len(blocks))\n";
    std::fs::write(dir.join("own.py"), script).expect("write");
    let cap = dir.join("own.bin");
    let (alone, tracked) = alone_and_tracked(&dir, &cap, &["own.py"], None);
    assert_eq!(alone.status.code(), Some(0), "{alone:?}");
    assert_eq!(tracked.status.code(), Some(0), "{tracked:?}");
    assert_eq!(tracked.stdout, alone.stdout);
    let s = stats(&cap);
    assert_eq!(s["complete"].as_bool(), Some(true), "{s}");
    // The 500 buffers of 1 MiB are live at the end.
    assert!(num(&s, "peak_bytes") >= 500 << 20, "{s}");
}

#[test]
fn a_program_that_lowers_its_limit_close_to_its_need_runs_as_alone() {
    // The shrunk capture kept 64 MiB past what it had written (for reservations in flight),
    // so 230 MiB under a 300 MiB limit set by the program was a MemoryError under memtrace.
    let dir = scratch("rlimit-own-tight");
    let script = "import resource\n\
                  resource.setrlimit(resource.RLIMIT_AS, (300 << 20, 300 << 20))\n\
                  b = bytearray(230 << 20)\n\
                  print('ok', len(b))\n";
    std::fs::write(dir.join("tight.py"), script).expect("write");
    let cap = dir.join("tight.bin");
    let (alone, tracked) = alone_and_tracked(&dir, &cap, &["tight.py"], None);
    assert_eq!(alone.status.code(), Some(0), "{alone:?}");
    assert_eq!(tracked.status.code(), Some(0), "{tracked:?}");
    assert_eq!(tracked.stdout, alone.stdout);
    let s = stats(&cap);
    assert_eq!(s["complete"].as_bool(), Some(true), "{s}");
    assert!(num(&s, "peak_bytes") >= 230 << 20, "{s}");
}

#[test]
fn new_stacks_when_memory_is_short_do_not_abort_the_program() {
    // The tracker's stack, frame and string tables grew with the global allocator: when the
    // program had filled its address space, the first growth that failed aborted the process
    // (Rust's handler: "memory allocation of 204816 bytes failed", SIGABRT), in every mode.
    let dir = scratch("rlimit-tables");
    let mut script = String::from("import sys\nkeep, filler = [], []\ndef many_lines():\n");
    for i in 0..20_000 {
        script.push_str(&format!("    keep.append(bytes({}))\n", 60 + i % 7));
    }
    script.push_str(
        "for size in (1 << 24, 1 << 20, 1 << 16):\n\
         \x20   try:\n\
         \x20       while True:\n\
         \x20           filler.append(bytearray(size))\n\
         \x20   except MemoryError:\n\
         \x20       pass\n\
         mib = [i for i, b in enumerate(filler) if len(b) == 1 << 20][:3]\n\
         for i in reversed(mib):\n\
         \x20   del filler[i]\n\
         try:\n\
         \x20   many_lines()\n\
         \x20   print('ok', len(keep))\n\
         except MemoryError:\n\
         \x20   print('MemoryError', len(keep))\n",
    );
    std::fs::write(dir.join("short.py"), script).expect("write");
    let cap = dir.join("short.bin");
    let (alone, tracked) = alone_and_tracked(&dir, &cap, &["short.py"], Some(300_000_000));
    assert_eq!(alone.status.code(), Some(0), "{alone:?}");
    assert_eq!(String::from_utf8_lossy(&alone.stdout), "ok 20000\n");
    assert_eq!(tracked.status.code(), Some(0), "{tracked:?}");
    assert_eq!(tracked.stdout, alone.stdout);
    let s = stats(&cap);
    assert!(num(&s, "total_allocations") >= 20_000, "{s}");
}

#[test]
fn a_program_started_under_an_address_space_limit_runs_as_alone() {
    let dir = scratch("rlimit-start");
    let cap = dir.join("start.bin");
    let code = "x = bytearray(1400 << 20); print('ok', len(x))";
    let (alone, tracked) = alone_and_tracked(&dir, &cap, &["-c", code], Some(2_000_000_000));
    assert_eq!(alone.status.code(), Some(0), "{alone:?}");
    assert_eq!(tracked.status.code(), Some(0), "{tracked:?}");
    assert_eq!(tracked.stdout, alone.stdout);
    let s = stats(&cap);
    assert_eq!(s["complete"].as_bool(), Some(true), "{s}");
    assert!(num(&s, "peak_bytes") >= 1400 << 20, "{s}");
}

#[test]
fn a_capture_that_fills_the_room_a_limit_leaves_stops_and_says_why() {
    // 200 MB of address space: the capture gets about 10 MB, and 6 million events of random
    // sizes and lifetimes need more. The program runs to its end all the same.
    let dir = scratch("rlimit-full");
    let script = "import random\n\
                  random.seed(1)\n\
                  keep = [None] * 1000\n\
                  for i in range(3_000_000):\n    \
                      keep[random.randrange(1000)] = bytes(random.randrange(1, 300))\n\
                  print('done')\n";
    std::fs::write(dir.join("churn.py"), script).expect("write");
    let cap = dir.join("churn.bin");
    let (alone, tracked) = alone_and_tracked(&dir, &cap, &["churn.py"], Some(200_000_000));
    assert_eq!(alone.status.code(), Some(0), "{alone:?}");
    assert_eq!(tracked.status.code(), Some(0), "{tracked:?}");
    assert_eq!(tracked.stdout, alone.stdout);
    let why = "the capture filled the room the address-space limit (ulimit -v) left it";
    let stderr = String::from_utf8_lossy(&tracked.stderr);
    assert!(stderr.contains(why), "{stderr}");
    let report = Command::new(memtrace_bin())
        .arg("stats")
        .arg(&cap)
        .output()
        .expect("stats");
    assert!(report.status.success(), "{report:?}");
    assert!(
        String::from_utf8_lossy(&report.stderr).contains(why),
        "{report:?}"
    );
    // What was recorded before it filled is there.
    let s = stats(&cap);
    assert!(num(&s, "total_allocations") > 100_000, "{s}");
}

/// A data limit (RLIMIT_DATA, `ulimit -d`) counts the tracker's private memory: its .bss and
/// tables, about 1 MiB (an emergency arena of 2 MiB took more than the program had left). A
/// program that fills 2,000 KiB under a 4,096 KiB limit alone does so under memtrace.
#[test]
fn a_data_limit_leaves_the_program_its_room() {
    let dir = scratch("rlimit-data");
    let prog = memtrace_e2e::compile("data_fill", &dir);
    let limit: u64 = 4096 << 10;
    let limited = |mut cmd: Command| -> Output {
        set_limit(&mut cmd, libc::RLIMIT_DATA, limit);
        cmd.current_dir(&dir).output().expect("run")
    };
    let mut alone = Command::new(&prog);
    alone.arg("2000");
    let alone = limited(alone);
    assert_eq!(
        String::from_utf8_lossy(&alone.stdout),
        "allocated 2000 KiB\n"
    );
    let cap = dir.join("data.bin");
    let mut tracked = Command::new(memtrace_bin());
    tracked
        .args(["run", "-q", "-f", "-o"])
        .arg(&cap)
        .arg("--")
        .arg(&prog)
        .arg("2000");
    let tracked = limited(tracked);
    assert_eq!(tracked.status.code(), Some(0), "{tracked:?}");
    assert_eq!(tracked.stdout, alone.stdout);
    // The 2,000 blocks and stdout's buffer.
    assert_eq!(num(&stats(&cap), "total_allocations"), 2001);
}

/// The C program `source`, compiled into `dir`, run alone and under `memtrace run -o
/// dir/capture`, each with `limit` applied to its command: both outputs, and the capture.
fn alone_and_tracked_under(
    dir: &Path,
    source: &str,
    capture: &str,
    limit: impl Fn(&mut Command),
) -> (Output, Output, std::path::PathBuf) {
    let src = dir.join("prog.c");
    std::fs::write(&src, source).expect("write the program");
    let prog = memtrace_e2e::compile_file(&src, dir);
    let mut alone = Command::new(&prog);
    limit(&mut alone);
    let alone = alone.current_dir(dir).output_watched();
    let cap = dir.join(capture);
    let mut tracked = Command::new(memtrace_e2e::memtrace_bin());
    tracked
        .args(["run", "-q", "-f", "-o"])
        .arg(&cap)
        .arg("--")
        .arg(&prog);
    limit(&mut tracked);
    let tracked = tracked.current_dir(dir).output_watched();
    (alone, tracked, cap)
}

/// Whether `main` made a block of `bytes` in the capture's stats.
fn main_allocated(s: &Value, bytes: u64) -> bool {
    s["top_by_size"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|t| t["bytes"] == bytes && t["function"] == "main")
}

/// A small stack limit (`ulimit -s 48`, soft and hard): memtrace itself died of SIGSEGV while
/// it parsed its arguments (10 runs in 10), before the program ran, which read as the
/// program's crash. It runs on a stack of its own now; the program keeps the user's limit.
#[test]
fn a_small_stack_limit_is_the_program_s_and_memtrace_runs_under_it() {
    let dir = memtrace_e2e::scratch("stack-limit");
    let limit = 48 << 10;
    let (alone, tracked, cap) = alone_and_tracked_under(
        &dir,
        "#include <stdio.h>\n#include <stdlib.h>\n#include <sys/resource.h>\n\
         int main(void) {\n    struct rlimit r;\n    getrlimit(RLIMIT_STACK, &r);\n\
         \x20   void *volatile p = malloc(4321);\n    free(p);\n\
         \x20   printf(\"%llu\\n\", (unsigned long long)r.rlim_cur);\n    return 3;\n}\n",
        "stack.bin",
        |cmd| set_limit(cmd, libc::RLIMIT_STACK, limit),
    );
    assert_eq!(alone.status.code(), Some(3), "{alone:?}");
    assert_eq!(String::from_utf8_lossy(&alone.stdout), format!("{limit}\n"));
    assert_eq!(tracked.status.code(), Some(3), "{tracked:?}");
    assert_eq!(tracked.stdout, alone.stdout);
    let s = memtrace_e2e::stats(&cap);
    assert!(main_allocated(&s, 4321), "{s}");
}

/// A small open-file limit (`ulimit -Sn 5`; the hard limit higher): memtrace refused to run the
/// program ("cannot set up signal handling" or "cannot run: Too many open files"), which runs
/// under it alone. memtrace raises its own soft limit as the hard one lets it; the program
/// gets the limit it was given.
#[test]
fn a_small_open_file_limit_is_the_program_s_and_memtrace_runs_under_it() {
    let dir = memtrace_e2e::scratch("file-limit");
    let (alone, tracked, cap) = alone_and_tracked_under(
        &dir,
        "#include <fcntl.h>\n#include <stdio.h>\n#include <stdlib.h>\n#include <sys/resource.h>\n\
         int main(void) {\n    struct rlimit r;\n    getrlimit(RLIMIT_NOFILE, &r);\n\
         \x20   int fd = open(\"/dev/null\", O_RDONLY);\n\
         \x20   void *volatile p = malloc(4321);\n    free(p);\n\
         \x20   printf(\"limit %llu, opened %d\\n\", (unsigned long long)r.rlim_cur, fd >= 0);\n\
         \x20   return 3;\n}\n",
        "files.bin",
        |cmd| set_limits(cmd, libc::RLIMIT_NOFILE, 5, 4096),
    );
    assert_eq!(alone.status.code(), Some(3), "{alone:?}");
    assert_eq!(
        String::from_utf8_lossy(&alone.stdout),
        "limit 5, opened 1\n"
    );
    assert_eq!(tracked.status.code(), Some(3), "{tracked:?}");
    assert_eq!(tracked.stdout, alone.stdout);
    let s = memtrace_e2e::stats(&cap);
    assert!(main_allocated(&s, 4321), "{s}");
}

/// mlockall(MCL_CURRENT) by a user without CAP_IPC_LOCK: the kernel compares the whole address
/// space with the lock limit, and the capture's reservation alone exceeded it (ENOMEM, 2 runs
/// of 2). memtrace then locks the program's own mappings as mlockall would.
#[test]
fn a_program_that_locks_its_memory_still_can() {
    if !memtrace_e2e::is_root() {
        eprintln!("skipped: switching to another user needs root");
        return;
    }
    let dir = memtrace_e2e::scratch("lock-all");
    let prog = memtrace_e2e::compile("lock_all", &dir);
    // Readable and writable by the user the program runs as.
    for p in [&dir, &prog] {
        std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(0o777))
            .expect("chmod");
    }
    let as_nobody = |words: &[&std::ffi::OsStr]| {
        let mut cmd = Command::new("setpriv");
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .args(words)
            .current_dir(&dir);
        // The default lock limit, whatever this machine's is.
        set_limit(&mut cmd, libc::RLIMIT_MEMLOCK, 8 << 20);
        cmd.output_watched()
    };
    let alone = as_nobody(&[prog.as_os_str()]);
    if alone.status.code() != Some(0) && String::from_utf8_lossy(&alone.stderr).contains("setpriv")
    {
        eprintln!("skipped: setpriv does not run here: {alone:?}");
        return;
    }
    assert_eq!(
        String::from_utf8_lossy(&alone.stdout),
        "mlockall: ok\n",
        "{alone:?}"
    );
    let cap = dir.join("lock.bin");
    let bin = memtrace_e2e::memtrace_bin();
    let tracked = as_nobody(&[
        bin.as_os_str(),
        "run".as_ref(),
        "-q".as_ref(),
        "-f".as_ref(),
        "-o".as_ref(),
        cap.as_os_str(),
        "--".as_ref(),
        prog.as_os_str(),
    ]);
    assert_eq!(tracked.status.code(), Some(0), "{tracked:?}");
    assert_eq!(tracked.stdout, alone.stdout);
    let s = stats(&cap);
    assert!(
        s["top_by_size"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|t| t["bytes"] == 1_000_000 && t["count"] == 1000 && t["function"] == "main"),
        "{s}"
    );
}
