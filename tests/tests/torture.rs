//! Programs that are hard on the tracker (tests/programs/torture.c): they close every
//! descriptor and reuse the numbers, fill the disk or the file size limit, or are killed while
//! their threads write. The program must run as it does untracked, byte for byte, and the
//! capture must hold what happened or say exactly what it misses.

use memtrace_e2e::watchdog::Watched;
use memtrace_e2e::{compile, memtrace_bin, num, record, scratch, stats};
use serde_json::Value;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// malloc/free pairs done while the program's file holds the tracker's old descriptor number:
/// enough that the capture must grow then (about 4 bytes a pair: 8 MB).
const PAIRS: &str = "2000000";
const PAIRS_N: i64 = 2_000_000;
/// The program's ring of 64 blocks starts empty: its first free of each slot is free(NULL),
/// which is no event.
const RING: i64 = 64;

/// The files a run left in `dir`/out, by name.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(dir.join("out"))
        .expect("out/ exists")
        .map(|e| {
            let e = e.expect("readable entry");
            let name = e.file_name().to_string_lossy().into_owned();
            (name, std::fs::read(e.path()).expect("readable file"))
        })
        .collect();
    v.sort();
    v
}

/// A fresh directory with an empty out/ for one run.
fn run_dir(name: &str) -> PathBuf {
    let dir = scratch(name);
    std::fs::create_dir(dir.join("out")).expect("create out/");
    dir
}

/// Runs `torture args` untracked in a fresh directory: its output and its files.
fn untracked(prog: &Path, args: &[&str]) -> (Output, Vec<(String, Vec<u8>)>) {
    let dir = run_dir("untracked");
    let out = Command::new(prog)
        .args(args)
        .current_dir(&dir)
        .output_watched();
    (out, files(&dir))
}

/// Runs `torture args` under memtrace in a fresh directory: capture, output, files.
fn tracked(
    prog: &Path,
    args: &[&str],
    env: Option<(&str, &str)>,
) -> (PathBuf, Output, Vec<(String, Vec<u8>)>) {
    let dir = run_dir("tracked");
    let cap = dir.join("run.bin");
    let mut cmd = Command::new(memtrace_bin());
    cmd.args(["run", "-f", "-o"])
        .arg(&cap)
        .arg("--")
        .arg(prog)
        .args(args)
        .current_dir(&dir);
    if let Some((k, v)) = env {
        cmd.env(k, v);
    }
    let out = cmd.output_watched();
    let f = files(&dir);
    (cap, out, f)
}

/// `memtrace run -q -f -o CAPTURE EXTRA -- PROGRAM` started in `dir`: its output. A minute at
/// most: these programs take a second, and a hang is what several of their tests look for.
fn run_quietly(dir: &Path, capture: &Path, extra: &[&str], program: &Path) -> Output {
    let mut cmd = Command::new(memtrace_bin());
    cmd.args(["run", "-q", "-f", "-o"])
        .arg(capture)
        .args(extra)
        .arg("--")
        .arg(program)
        .current_dir(dir);
    memtrace_e2e::watchdog::output_within(&mut cmd, std::time::Duration::from_secs(60))
}

/// The count of events the tracker says it dropped (0 when it says nothing).
fn dropped(s: &Value) -> i64 {
    s["warnings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|w| {
            w.as_str()?
                .strip_prefix("the tracker dropped ")?
                .split(' ')
                .next()
        })
        .map(|n| n.parse::<i64>().expect("a count"))
        .sum()
}

fn events(s: &Value) -> i64 {
    num(s, "total_allocations") + num(s, "total_frees")
}

fn warnings(s: &Value) -> String {
    s["warnings"].to_string()
}

#[test]
fn a_program_closing_every_descriptor_keeps_its_files_and_the_capture_goes_on() {
    // closefrom (glibc calls the system call itself), close_range by syscall(), a plain close
    // loop, and dup2 over the tracker's number: then the program's 2 MiB file gets number 700.
    let dir = run_dir("closeall");
    let prog = compile("torture", &dir);
    let (base, out) = record(&dir, "base.bin", &prog, &["none", "0"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let base = stats(&base);
    for mode in ["closefrom", "close_range", "loop", "dup2"] {
        let (plain, plain_files) = untracked(&prog, &[mode, PAIRS]);
        assert_eq!(plain.status.code(), Some(0), "{mode}: {plain:?}");
        let (cap, out, got) = tracked(&prog, &[mode, PAIRS], None);
        assert_eq!(out.status.code(), Some(0), "{mode}: {out:?}");
        assert_eq!(out.stdout, plain.stdout, "{mode}");
        assert_eq!(got.len(), plain_files.len(), "{mode}: number of files");
        for (a, b) in got.iter().zip(&plain_files) {
            assert!(a == b, "{mode}: {} differs from the untracked run's", a.0);
        }
        let big = got.iter().map(|f| f.1.len()).max();
        assert_eq!(big, Some(2 << 20), "{mode}");
        // The tracker opened its capture again and recorded everything.
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("incomplete"), "{mode}: {stderr}");
        let s = stats(&cap);
        assert_eq!(
            s["complete"].as_bool(),
            Some(true),
            "{mode}: {}",
            warnings(&s)
        );
        assert_eq!(
            num(&s, "total_allocations") - num(&base, "total_allocations"),
            PAIRS_N,
            "{mode}"
        );
        assert_eq!(
            num(&s, "total_frees") - num(&base, "total_frees"),
            PAIRS_N - RING,
            "{mode}"
        );
    }
}

#[test]
fn a_capture_that_cannot_be_reopened_stops_and_says_why() {
    // The program closes every descriptor and renames the capture: the tracker cannot open it
    // again, so it stops (the program's files untouched) and the trailer says why.
    let dir = scratch("lostfd");
    let prog = compile("torture", &dir);
    let (plain, plain_files) = untracked(&prog, &["closefrom", PAIRS]);
    let (full, out, _) = tracked(&prog, &["closefrom", PAIRS], None);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let full = stats(&full);

    let moved_dir = run_dir("moved");
    let cap = moved_dir.join("run.bin");
    let out = Command::new(memtrace_bin())
        .args(["run", "-f", "-o"])
        .arg(&cap)
        .arg("--")
        .arg(&prog)
        .args(["closefrom", PAIRS])
        .env("TORTURE_MOVE", &cap)
        .current_dir(&moved_dir)
        .output_watched();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(out.stdout, plain.stdout);
    assert!(
        files(&moved_dir) == plain_files,
        "the program's files differ"
    );
    let s = stats(&cap.with_extension("bin.moved"));
    assert_eq!(s["complete"].as_bool(), Some(false));
    let w = warnings(&s);
    assert!(
        w.contains("closed or replaced the capture's file descriptor"),
        "{w}"
    );
    assert!(!w.contains("disk full"), "{w}");
    assert!(!w.contains("damaged"), "{w}");
    // Every event is recorded or counted dropped; the "live at exit" marker, after the stop,
    // is one of the dropped.
    assert!(events(&s) < events(&full), "stopped early: {}", events(&s));
    assert_eq!(events(&s) + dropped(&s), events(&full) + 1, "{w}");
}

/// Runs `script` (bash) and returns its output.
fn bash(script: &str, dir: &Path) -> Output {
    Command::new("bash")
        .args(["-c", script])
        .current_dir(dir)
        .output_watched()
}

/// The count in "N events dropped" of memtrace run's last line.
fn run_dropped(stderr: &str) -> i64 {
    let before = stderr
        .split(" events dropped")
        .next()
        .expect("a message")
        .rsplit(' ')
        .next()
        .expect("a count");
    before
        .parse()
        .unwrap_or_else(|_| panic!("no count in {stderr}"))
}

#[test]
fn a_file_size_limit_counts_every_lost_event() {
    // ulimit -f: the capture stops growing at 1000 KB, far from the 2 M events; every later
    // event is counted, so recorded + dropped is every event the program made.
    let dir = scratch("fsize");
    let prog = compile("torture", &dir);
    let (base, _) = record(&dir, "base.bin", &prog, &["pairs", "0"]);
    let base = stats(&base);
    let cap = dir.join("limited.bin");
    let out = bash(
        &format!(
            "ulimit -f 1000; exec {} run -o {} -- {} pairs 1000000",
            memtrace_bin().display(),
            cap.display(),
            prog.display()
        ),
        &dir,
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("file size limit (ulimit -f)"), "{stderr}");
    assert!(!stderr.contains("disk full"), "{stderr}");
    let s = stats(&cap);
    assert_eq!(s["complete"].as_bool(), Some(false));
    assert!(events(&s) < 1_000_000, "stopped early: {}", events(&s));
    assert_eq!(dropped(&s), run_dropped(&stderr));
    // 1 M allocations and 1 M frees, and the "live at exit" marker (dropped).
    assert_eq!(events(&s) + dropped(&s), 2_000_000 + events(&base) + 1);
}

#[test]
fn threads_past_a_write_failure_count_every_lost_event() {
    let dir = scratch("fsize-threads");
    let prog = compile("patterns", &dir);
    let (full, out) = record(&dir, "full.bin", &prog, &["threads", "4", "200000"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let full = stats(&full);
    let cap = dir.join("limited.bin");
    let out = bash(
        &format!(
            "ulimit -f 1000; exec {} run -q -o {} -- {} threads 4 200000",
            memtrace_bin().display(),
            cap.display(),
            prog.display()
        ),
        &dir,
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(out.stdout, b"done threads\n");
    let s = stats(&cap);
    assert_eq!(s["complete"].as_bool(), Some(false));
    // Where the 1,000 KiB limit cuts depends on how the four threads' chunks interleave (the
    // whole run is a 1.6 MB file): it stopped early, and the file stayed within the limit.
    assert!(events(&s) < events(&full), "stopped early: {}", events(&s));
    let len = std::fs::metadata(&cap).expect("capture").len();
    assert!(
        len <= 1000 * 1024,
        "the capture is {len} bytes, over ulimit -f"
    );
    // Events of the staging areas the threads could not flush are recovered, not dropped.
    assert_eq!(
        events(&s) + dropped(&s),
        events(&full) + 1,
        "{}",
        warnings(&s)
    );
}

#[test]
fn a_full_disk_stops_the_capture_and_says_so() {
    // A small tmpfs in a private mount namespace (needs root, as in CI). Where the namespace
    // cannot be made, a_file_size_limit_counts_every_lost_event stands in.
    let dir = scratch("enospc");
    let prog = compile("torture", &dir);
    let (base, _) = record(&dir, "base.bin", &prog, &["pairs", "0"]);
    let base = stats(&base);
    let mnt = dir.join("mnt");
    std::fs::create_dir(&mnt).expect("create mnt/");
    let probe = bash(
        &format!(
            "unshare -m sh -c 'mount -t tmpfs -o size=1m tmpfs {}'",
            mnt.display()
        ),
        &dir,
    );
    if !probe.status.success() {
        eprintln!(
            "skipped: cannot mount a tmpfs in a private mount namespace: {}",
            String::from_utf8_lossy(&probe.stderr)
        );
        return;
    }
    // 6 MB: the disk fills in the fallocated steps past the first megabyte (the last ones
    // smaller, to fit); 512 KiB: it fills during the written steps of the first megabyte.
    // Twice the pairs of the other tests: their capture (some 5 MB) could fit in 6 MB as it
    // compresses better.
    for size in ["6m", "512k"] {
        let script = format!(
            "mount -t tmpfs -o size={size} tmpfs {mnt} && cd {mnt} && \
             {memtrace} run -o full.bin -- {prog} pairs {pairs}; echo status $?; \
             cp full.bin {dir}/",
            mnt = mnt.display(),
            memtrace = memtrace_bin().display(),
            prog = prog.display(),
            dir = dir.display(),
            pairs = 2 * PAIRS_N,
        );
        let out = bash(&format!("unshare -m sh -c '{script}'"), &dir);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("status 0"), "{size}: {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("the disk is full"), "{size}: {stderr}");
        let s = stats(&dir.join("full.bin"));
        assert_eq!(s["complete"].as_bool(), Some(false), "{size}");
        assert!(
            warnings(&s).contains("the disk is full"),
            "{size}: {}",
            warnings(&s)
        );
        assert_eq!(dropped(&s), run_dropped(&stderr), "{size}");
        assert_eq!(
            events(&s) + dropped(&s),
            2 * 2 * PAIRS_N + events(&base) + 1,
            "{size}"
        );
    }

    // Full from the start (the disk filled by another file first): no capture, one line
    // saying why, the program untouched. (With some room left, the capture takes what fits:
    // its file grows in smaller steps when a step does not fit.)
    let script = format!(
        "mount -t tmpfs -o size=32k tmpfs {mnt} && cd {mnt} && \
         (cat /dev/zero > filler 2>/dev/null; true) && \
         {memtrace} run -o full.bin -- {prog} pairs 1000; echo status $?",
        mnt = mnt.display(),
        memtrace = memtrace_bin().display(),
        prog = prog.display(),
    );
    let out = bash(&format!("unshare -m sh -c '{script}'"), &dir);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("status 0"),
        "{out:?}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("No space left on device"), "{stderr}");
}

/// A C program of `n` functions, each allocating 16 + its number bytes: 3 rounds of calling
/// them all, the first two freed, the last kept (`n` distinct stacks: an aggregated capture
/// grows with them).
fn many_stacks_program(dir: &Path, n: usize) -> PathBuf {
    let mut c = String::from("#include <stdlib.h>\nvoid *volatile keep;\n");
    for i in 0..n {
        c += &format!(
            "__attribute__((noinline)) void *f{i}(void) {{ return malloc({}); }}\n",
            16 + i
        );
    }
    let table: Vec<String> = (0..n).map(|i| format!("f{i}")).collect();
    c += &format!(
        "void *(*tab[])(void) = {{{}}};\nint main(void) {{\n    for (int r = 0; r < 3; r++)\n        \
         for (int i = 0; i < {n}; i++) {{\n            void *p = tab[i]();\n            \
         if (r < 2) free(p); else keep = p;\n        }}\n    return 0;\n}}\n",
        table.join(", ")
    );
    let src = dir.join("many_stacks.c");
    std::fs::write(&src, c).expect("write the program");
    let prog = dir.join("many_stacks");
    let built = Command::new("gcc")
        .args(["-O1", "-o"])
        .arg(&prog)
        .arg(&src)
        .output_watched();
    assert!(built.status.success(), "{built:?}");
    prog
}

#[test]
fn a_full_disk_under_aggregate_counts_every_lost_event() {
    // An aggregated capture that cannot write its snapshots any more lost what changed since
    // the last one written, and the allocations after writing stopped: it said "1 events
    // dropped" for hundreds. Read plus dropped is every event now, as in a full capture.
    let dir = scratch("enospc-aggregate");
    let prog = many_stacks_program(&dir, 3000);
    let whole = dir.join("whole.bin");
    let out = Command::new(memtrace_bin())
        .args(["run", "-q", "-f", "--aggregate", "-o"])
        .arg(&whole)
        .arg(&prog)
        .output_watched();
    assert!(out.status.success(), "{out:?}");
    let whole = stats(&whole);
    assert_eq!(events(&whole), 9000 + 6000, "{}", warnings(&whole));
    let mnt = dir.join("mnt");
    std::fs::create_dir(&mnt).expect("create mnt/");
    // 128 KiB: the first snapshot is written, not the next; 136 KiB: most are (the whole
    // capture takes some 160 KB; the file grows in smaller steps when a step does not fit).
    for size in ["128k", "136k"] {
        let script = format!(
            "mount -t tmpfs -o size={size} tmpfs {mnt} && cd {mnt} && \
             {memtrace} run --aggregate -o agg.bin -- {prog}; echo status $?; \
             cp agg.bin {dir}/",
            mnt = mnt.display(),
            memtrace = memtrace_bin().display(),
            prog = prog.display(),
            dir = dir.display(),
        );
        let out = bash(&format!("unshare -m sh -c '{script}'"), &dir);
        if !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("unshare") {
            eprintln!("skipped: cannot mount a tmpfs in a private mount namespace: {out:?}");
            return;
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("status 0"), "{size}: {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("the disk is full"), "{size}: {stderr}");
        let s = stats(&dir.join("agg.bin"));
        assert_eq!(s["complete"].as_bool(), Some(false), "{size}");
        assert!(events(&s) < events(&whole), "{size}: {}", events(&s));
        assert_eq!(dropped(&s), run_dropped(&stderr), "{size}");
        // One record more than the events: the exit marker, dropped too.
        assert_eq!(
            events(&s) + dropped(&s),
            events(&whole) + 1,
            "{size}: {}",
            warnings(&s)
        );
    }
}

#[test]
fn sigkill_while_threads_write_keeps_everything_they_did() {
    // Three threads allocate and free without end, each counting its completed pairs in a
    // shared file; the process is SIGKILLed (the system call: no hook sees it) while they
    // write, compress and flush. The capture holds each thread's pairs: as many as it counted,
    // or one more (the pair in progress at the kill).
    let dir = scratch("killmid");
    let prog = compile("torture", &dir);
    for round in 0..2 {
        let counters = dir.join(format!("counters{round}"));
        let (cap, out) = record(
            &dir,
            &format!("kill{round}.bin"),
            &prog,
            &[
                "kill",
                "3",
                counters.to_str().expect("utf-8 path"),
                "1500000",
            ],
        );
        assert_eq!(out.status.signal(), Some(libc::SIGKILL), "{out:?}");
        let words: Vec<i64> = std::fs::read(&counters)
            .expect("counters")
            .chunks_exact(8)
            .take(6)
            .map(|w| i64::from_le_bytes(w.try_into().expect("8 bytes")))
            .collect();
        let s = stats(&cap);
        assert_eq!(s["complete"].as_bool(), Some(false));
        assert!(!warnings(&s).contains("damaged"), "{}", warnings(&s));
        let threads = s["threads"].as_array().expect("threads");
        for c in words.chunks_exact(2) {
            let (tid, pairs) = (c[0], c[1]);
            let t = threads
                .iter()
                .find(|t| t["tid"].as_i64() == Some(tid))
                .unwrap_or_else(|| panic!("thread {tid} missing: {threads:?}"));
            let allocs = num(t, "allocations");
            assert!(
                allocs == pairs || allocs == pairs + 1,
                "thread {tid}: {allocs} allocations recorded, {pairs} pairs done"
            );
        }
        let total: i64 = words.chunks_exact(2).map(|c| c[1]).sum();
        assert!(total >= 1_500_000);
    }
}

#[test]
fn a_python_script_closing_every_descriptor_keeps_its_files() {
    // os.closerange (closefrom inside libc), then a file at the tracker's old number written
    // while the script allocates: the capture grows meanwhile.
    use memtrace_e2e::python;
    let script = r#"
import os
os.closerange(3, 4096)
fds = []
while True:
    fds.append(os.open(f"out/f{len(fds)}", os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644))
    if fds[-1] >= 700:
        break
total = 0
for i in range(64):
    os.write(fds[-1], bytes([i]) * 32768)
    junk = [bytes([i % 251]) * (100 + (j * 7919) % 900) for j in range(9000)]
    total += sum(len(b) for b in junk)
for i, fd in enumerate(fds):
    os.write(fd, b"file %d\n" % i)
    os.close(fd)
print(len(fds), total)
"#;
    let py = python::python();
    let plain_dir = run_dir("py-plain");
    python::write(&plain_dir, "closeall.py", script);
    let plain = python::untracked(py, &["closeall.py"], &plain_dir, b"");
    assert_eq!(plain.status.code(), Some(0), "{plain:?}");
    let dir = run_dir("py-tracked");
    python::write(&dir, "closeall.py", script);
    let cap = dir.join("run.bin");
    let out = python::tracked(py, &cap, &["closeall.py"], &dir, b"");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(out.stdout, plain.stdout);
    let (got, want) = (files(&dir), files(&plain_dir));
    assert_eq!(got.len(), want.len());
    for (a, b) in got.iter().zip(&want) {
        assert!(a == b, "{} differs from the untracked run's", a.0);
    }
    assert!(got.iter().any(|f| f.1.len() > 2 << 20), "no 2 MiB file");
    let s = stats(&cap);
    assert_eq!(s["complete"].as_bool(), Some(true), "{}", warnings(&s));
    // The 576,000 bytes objects, at least, were recorded.
    assert!(num(&s, "total_allocations") > 576_000);
}

/// A signal handler that jumps out of an allocation function (here the fault of a free of a
/// bad pointer, inside the C library's free) leaves the tracker's hook unfinished: the
/// thread's later events cannot be recorded safely (its state may be half changed). They went
/// missing silently, in a capture called complete; now each is counted and the capture says
/// why, and the program runs as alone.
#[test]
fn a_jump_out_of_an_allocation_function_is_told_not_hidden() {
    let dir = scratch("jump-out");
    let prog = compile("jump_out_of_free", &dir);
    let alone = Command::new(&prog).current_dir(&dir).output_watched();
    assert_eq!(String::from_utf8_lossy(&alone.stdout), "jumped back: 1\n");
    let cap = dir.join("jump.bin");
    let out = memtrace_e2e::memtrace(
        &[
            "run",
            "-f",
            "-o",
            cap.to_str().expect("utf-8 path"),
            "--",
            prog.to_str().expect("utf-8 path"),
        ],
        &dir,
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(out.stdout, alone.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("jumped out of an allocation function"),
        "{err}"
    );
    let s = stats(&cap);
    // 1,000 mallocs, 1,000 frees and stdout's buffer, all after the jump.
    let warnings = s["warnings"].to_string();
    assert!(warnings.contains("siglongjmp"), "{s}");
    assert!(warnings.contains("the tracker dropped 2001 records"), "{s}");
    assert_eq!(num(&s, "total_allocations"), 0, "{s}");
}

/// The bash script that takes the capture's descriptor number for a file of its own: bash
/// saw a close-on-exec descriptor at 10 or above, took it for one it had saved, and put it
/// back after `exec N>>log`, so the script wrote into the capture (which could no longer be
/// read) and its log stayed empty.
const SHELL_TAKING_THE_NUMBER: &str = r#"
n=700
for f in /proc/$$/fd/*; do
    case "$(readlink "$f")" in */run.bin) n=${f##*/};; esac
done
eval "exec $n>>out/log"
echo "to the log" >&$n
s=""
for i in $(seq 1 3000); do s="$s$i,"; done
echo "${#s}" >&$n
eval "exec $n>&-"
cat out/log
"#;

#[test]
fn a_shell_script_taking_the_capture_s_descriptor_number_writes_its_own_file() {
    let bash = Path::new("/bin/bash");
    let plain_dir = run_dir("sh-plain");
    std::fs::write(plain_dir.join("take.sh"), SHELL_TAKING_THE_NUMBER).expect("write");
    let plain = Command::new(bash)
        .arg("take.sh")
        .current_dir(&plain_dir)
        .output_watched();
    assert_eq!(plain.status.code(), Some(0), "{plain:?}");
    assert_eq!(
        String::from_utf8_lossy(&plain.stdout),
        "to the log\n13893\n"
    );
    let dir = run_dir("sh-tracked");
    std::fs::write(dir.join("take.sh"), SHELL_TAKING_THE_NUMBER).expect("write");
    let cap = dir.join("run.bin");
    let out = Command::new(memtrace_bin())
        .args(["run", "-f", "-o"])
        .arg(&cap)
        .args(["--", "/bin/bash", "take.sh"])
        .current_dir(&dir)
        .output_watched();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(out.stdout, plain.stdout);
    assert_eq!(files(&dir), files(&plain_dir));
    let s = stats(&cap);
    assert_eq!(s["complete"].as_bool(), Some(true), "{}", warnings(&s));
    // The 3,000 rounds of the string each allocate in bash.
    assert!(num(&s, "total_allocations") > 3000, "{s}");
}

/// A Python script that asks about the capture's number, then takes it with os.dup2, writes
/// through it and closes it while the capture grows: the number is free for it as it would be
/// without the tracker, and the capture goes on.
#[test]
fn a_python_script_taking_the_capture_s_descriptor_number_finds_it_free() {
    use memtrace_e2e::python;
    let script = r#"
import errno, fcntl, os
n = 700
for name in os.listdir("/proc/self/fd"):
    try:
        if os.readlink(f"/proc/self/fd/{name}").endswith("/run.bin"):
            n = int(name)
    except OSError:
        pass
d = fcntl.fcntl(0, fcntl.F_DUPFD, n)
print("dup at", "n" if d == n else d)
os.close(d)
try:
    fcntl.fcntl(n, fcntl.F_GETFD)
    print("open")
except OSError as e:
    print(errno.errorcode[e.errno])
log = os.open("out/log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
os.dup2(log, n)
os.close(log)
total = 0
for i in range(64):
    os.write(n, b"line %d\n" % i)
    junk = [bytes([i % 251]) * (100 + (j * 7919) % 900) for j in range(9000)]
    total += len(junk)
os.close(n)
with open("out/log") as f:
    print(f.read().count("\n"), total)
"#;
    let py = python::python();
    let plain_dir = run_dir("py-take-plain");
    python::write(&plain_dir, "take.py", script);
    let plain = python::untracked(py, &["take.py"], &plain_dir, b"");
    assert_eq!(plain.status.code(), Some(0), "{plain:?}");
    assert_eq!(
        String::from_utf8_lossy(&plain.stdout),
        "dup at n\nEBADF\n64 576000\n"
    );
    let dir = run_dir("py-take-tracked");
    python::write(&dir, "take.py", script);
    let cap = dir.join("run.bin");
    let out = python::tracked(py, &cap, &["take.py"], &dir, b"");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(out.stdout, plain.stdout);
    assert_eq!(files(&dir), files(&plain_dir));
    let s = stats(&cap);
    assert_eq!(s["complete"].as_bool(), Some(true), "{}", warnings(&s));
    assert!(num(&s, "total_allocations") > 576_000, "{s}");
}

/// A signal handler that ends the process (`_exit`) while the signal interrupted the C
/// library's realloc, which holds its arena's lock while it copies a large block: the capture
/// is finished there, and zstd's context for the last chunk came from the C library's malloc,
/// which waited for the lock its own thread held: the program hung for good, every time.
#[test]
fn a_program_ending_from_a_signal_handler_inside_malloc_ends() {
    use memtrace_e2e::watchdog::output_within;
    use std::time::Duration;
    let dir = run_dir("exit-in-handler");
    let prog = compile("exit_from_handler", &dir);
    let alone = output_within(&mut Command::new(&prog), Duration::from_secs(60));
    assert_eq!(alone.status.code(), Some(7), "{alone:?}");
    for native in [false, true] {
        let cap = dir.join(format!("end-{native}.bin"));
        let mode: &[&str] = if native { &["--native"] } else { &[] };
        let out = run_quietly(&dir, &cap, mode, &prog);
        assert_eq!(out.status.code(), Some(7), "native {native}: {out:?}");
        let s = stats(&cap);
        assert_eq!(s["complete"].as_bool(), Some(true), "{}", warnings(&s));
        // The 20,000 blocks kept before the first realloc, at least.
        assert!(num(&s, "total_allocations") > 20_000, "{s}");
    }
}

/// A single-threaded program whose timer's signal handler forks, many times, while main
/// allocates: the fork's handlers waited for a lock of the tracker's that the hook the signal
/// interrupted held (the module table's, at a chunk's flush), for ever (3 runs in 20 hung).
/// Ten runs: each one of them hung before with a chance of about one in seven.
#[test]
fn a_program_forking_from_a_signal_handler_never_hangs() {
    let dir = run_dir("fork-in-handler");
    let prog = compile("fork_in_handler", &dir);
    for run in 0..10 {
        let cap = dir.join(format!("fork-{run}.bin"));
        let out = run_quietly(&dir, &cap, &[], &prog);
        assert_eq!(out.status.code(), Some(0), "run {run}: {out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "forks: 300 or more\n");
        let s = stats(&cap);
        assert_eq!(s["complete"].as_bool(), Some(true), "{}", warnings(&s));
    }
}

/// A signal handler that maps pages while main allocates interrupts allocation functions
/// often, and jumps out of none: no "jumped out of an allocation function" may be said (it was,
/// in 11 runs of 12: a hook of the handler's compared the call site of the hook it interrupted
/// with the previous call's return address, stored after the re-entrancy flag), and nothing
/// dropped.
#[test]
fn a_signal_handler_that_interrupts_allocations_is_no_jump() {
    let dir = run_dir("handler-no-jump");
    let prog = compile("mmap_in_handler", &dir);
    for run in 0..4 {
        let cap = dir.join(format!("nojump-{run}.bin"));
        let out = run_quietly(&dir, &cap, &[], &prog);
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "kept some\n");
        let s = stats(&cap);
        assert_eq!(s["complete"].as_bool(), Some(true), "{}", warnings(&s));
        assert_eq!(warnings(&s), "[]", "run {run}");
        assert_eq!(dropped(&s), 0);
    }
}

/// A vfork child that allocates records into its parent's thread state (it shares the
/// parent's memory), and its flush, refused as another process's, left that state stuck: every
/// later event of the parent's thread was dropped. The parent records again once the child is
/// gone: its 100 blocks of 300 bytes are in its capture.
#[test]
fn a_vfork_child_that_allocates_leaves_its_parent_recording() {
    let dir = run_dir("vfork-allocates");
    let prog = compile("vfork_child_allocates", &dir);
    let cap = dir.join("vfork.bin");
    let out = run_quietly(&dir, &cap, &[], &prog);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "child exit 3\n");
    let s = stats(&cap);
    let of_300: Vec<i64> = s["histogram"]
        .as_array()
        .expect("a histogram")
        .iter()
        .filter(|h| h["lo"].as_i64() == Some(256))
        .map(|h| num(h, "count"))
        .collect();
    assert_eq!(of_300, vec![100], "{}", s["histogram"]);
}

/// A vfork child that calls exit() runs its parent's exit handlers and this library's
/// destructor in the memory they share: the parent's capture was never finished (it read
/// "killed or still running"). The parent finishes it at its own end, every block in it, its
/// live-at-exit marked at the parent's end (stdout's buffer live), not the child's.
#[test]
fn a_vfork_child_calling_exit_leaves_the_parent_s_capture_whole() {
    let dir = run_dir("vfork-exit");
    let prog = compile("vfork_child_exits", &dir);
    let cap = dir.join("vfork-exit.bin");
    let out = run_quietly(&dir, &cap, &[], &prog);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "child exit 3\n");
    let s = stats(&cap);
    assert_eq!(s["complete"].as_bool(), Some(true), "{}", warnings(&s));
    assert_eq!(num(&s, "total_allocations"), 201);
    assert_eq!(num(&s, "leaked_allocations"), 1, "stdout's buffer");
}

/// Interposed calls given a bad pointer get EFAULT as alone (setrlimit, prlimit and execve's
/// path were read by their hooks first: the program died of SIGSEGV).
#[test]
fn calls_given_a_bad_pointer_fail_as_alone() {
    let dir = run_dir("bad-pointers");
    let prog = compile("bad_pointers", &dir);
    let alone = Command::new(&prog).current_dir(&dir).output_watched();
    let text = String::from_utf8_lossy(&alone.stdout).into_owned();
    assert_eq!(text.matches("-1 errno 14\n").count(), 6, "{text}");
    let cap = dir.join("bad.bin");
    let out = run_quietly(&dir, &cap, &[], &prog);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), text);
}

/// A program that ends with syscall(SYS_exit_group, n) gets a finished capture, as one ending
/// with _exit does (it read "killed or still running"), and its status.
#[test]
fn a_program_ending_with_the_exit_group_call_leaves_a_finished_capture() {
    let dir = run_dir("exit-group");
    let prog = compile("exit_group_call", &dir);
    let cap = dir.join("group.bin");
    let out = run_quietly(&dir, &cap, &[], &prog);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let s = stats(&cap);
    assert_eq!(s["complete"].as_bool(), Some(true), "{}", warnings(&s));
    assert_eq!(num(&s, "total_allocations"), 101);
    assert_eq!(num(&s, "leaked_bytes"), 5555);
}

/// vfork children that close the capture's number before their exec: moving it off there
/// must not happen in a child (it shares its parent's record of the
/// number, which would then name another), or the parent's own fcntl on that number finds the
/// capture there (and it opened the capture again at its next growth, leaking one).
#[test]
fn vfork_children_closing_every_descriptor_leave_the_parent_s_record_alone() {
    let dir = run_dir("vfork-close-loop");
    let prog = compile("vfork_close_loop", &dir);
    let alone = Command::new(&prog).current_dir(&dir).output_watched();
    assert_eq!(String::from_utf8_lossy(&alone.stdout), "after: EBADF\n");
    let cap = dir.join("vfork-close.bin");
    let out = run_quietly(&dir, &cap, &[], &prog);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(out.stdout, alone.stdout);
    let s = stats(&cap);
    assert_eq!(s["complete"].as_bool(), Some(true), "{}", warnings(&s));
    assert!(num(&s, "total_allocations") >= 200, "{s}");
}

/// Children forked from a signal handler that interrupted one of the tracker's hooks were
/// missing from the parent's family (62 forked, none listed): the record could not be written
/// there. It is noted there and written later, with the fork's time.
#[test]
fn children_forked_from_a_signal_handler_are_in_the_family() {
    let dir = run_dir("fork-in-handler-family");
    let src = dir.join("handler_forks.c");
    std::fs::write(
        &src,
        "#include <signal.h>\n#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n\
         #include <sys/time.h>\n#include <sys/wait.h>\n#include <unistd.h>\n\
         static volatile sig_atomic_t forks;\n\
         static void on_timer(int sig) {\n\
             (void)sig;\n\
             pid_t pid = fork();\n\
             if (pid == 0) _exit(0);\n\
             if (pid > 0) { waitpid(pid, NULL, 0); forks++; }\n\
         }\n\
         int main(void) {\n\
             struct sigaction sa; memset(&sa, 0, sizeof sa);\n\
             sa.sa_handler = on_timer; sa.sa_flags = SA_RESTART;\n\
             sigaction(SIGALRM, &sa, NULL);\n\
             struct itimerval every = {{0, 2000}, {0, 2000}};\n\
             setitimer(ITIMER_REAL, &every, NULL);\n\
             while (forks < 100) free(malloc(100));\n\
             struct itimerval off = {{0, 0}, {0, 0}};\n\
             setitimer(ITIMER_REAL, &off, NULL);\n\
             printf(\"forked %d\\n\", (int)forks);\n\
             return 0;\n\
         }\n",
    )
    .expect("write");
    let prog = memtrace_e2e::compile_file(&src, &dir);
    for (run, flags) in [
        &[][..],
        &[][..],
        &["--follow-fork"][..],
        &["--follow-fork"][..],
    ]
    .into_iter()
    .enumerate()
    {
        let cap = dir.join(format!("handler-{run}.bin"));
        let out = run_quietly(&dir, &cap, flags, &prog);
        assert_eq!(out.status.code(), Some(0), "run {run}: {out:?}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let forked: usize = stdout
            .trim()
            .strip_prefix("forked ")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{stdout}"));
        let s = stats(&cap);
        assert_eq!(s["complete"].as_bool(), Some(true), "{}", warnings(&s));
        let procs = s["processes"].as_array().cloned().unwrap_or_default();
        assert_eq!(procs.len(), forked + 1, "run {run}: {}", s["processes"]);
        // Each once, under the program (a followed child wrote the parent's noted ones as its
        // own), and nothing said of the children that record nothing by design.
        let mut pids: Vec<u64> = procs.iter().filter_map(|p| p["pid"].as_u64()).collect();
        pids.sort_unstable();
        pids.dedup();
        assert_eq!(pids.len(), forked + 1, "run {run}");
        assert_eq!(warnings(&s), "[]", "run {run}");
    }
}
