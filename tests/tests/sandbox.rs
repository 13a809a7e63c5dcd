//! Programs that sandbox themselves with seccomp (tracker/src/session/sandbox): a filter
//! written for the program alone would kill it when the tracker makes a system call it does
//! not allow. Under memtrace such a program prints, exits and forks as it does alone; the
//! capture holds exactly what it did while the tracker could record (all of it when the
//! filter allows the tracker's calls), and `memtrace run` says when recording stopped.

use memtrace_e2e::{compile, memtrace, scratch, stats};
use serde_json::Value;
use std::path::Path;
use std::process::Command;

fn num(s: &Value, key: &str) -> u64 {
    s[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} missing: {s}"))
}

/// The captures a --follow-fork run left for children of `capture` (`<capture>.<pid>`).
fn child_captures(dir: &Path, capture: &str) -> usize {
    std::fs::read_dir(dir)
        .expect("read the scratch directory")
        .filter_map(|e| e.ok())
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_prefix(capture)
                .and_then(|rest| rest.strip_prefix('.'))
                .is_some_and(|pid| pid.bytes().all(|b| b.is_ascii_digit()))
        })
        .count()
}

/// `memtrace run -f -o <dir>/<name> OPTS WORDS...`, which must print and end as the program
/// alone did (`alone`) and say that recording stopped exactly when `stops`: the capture's path.
fn run_as_alone(
    dir: &Path,
    name: &str,
    opts: &[&str],
    words: &[&str],
    alone: &std::process::Output,
    stops: bool,
) -> std::path::PathBuf {
    let cap = dir.join(name);
    let mut args = vec!["run", "-f", "-o", cap.to_str().expect("utf-8 path")];
    args.extend_from_slice(opts);
    args.extend_from_slice(words);
    let out = memtrace(&args, dir);
    assert_eq!(out.status.code(), alone.status.code(), "{name}: {out:?}");
    assert_eq!(out.stdout, alone.stdout, "{name}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.contains("recording stopped where the program sandboxed itself"),
        stops,
        "{name}: {stderr}"
    );
    cap
}

#[cfg(target_arch = "x86_64")]
#[test]
fn a_program_that_sandboxes_itself_runs_as_without_memtrace() {
    let dir = scratch("sandbox");
    let prog = compile("sandboxed", &dir);
    let p = prog.to_str().expect("utf-8 path");
    for mode in ["none", "allow-list", "deny-list", "strict", "exec"] {
        let alone = Command::new(&prog)
            .arg(mode)
            .output()
            .expect("run the program");
        assert_eq!(alone.status.code(), Some(0), "{mode}: {alone:?}");
        // The filter of the allow-list, strict mode and the exec list forbids the tracker's
        // calls: recording stops at the filter, after the 100 blocks of 1,000 bytes. The
        // deny-list forbids none. The exec'd image inherits the filter: it runs without the
        // tracker (whose start-up would be killed), and no capture is made for it.
        let stops = matches!(mode, "allow-list" | "strict" | "exec");
        for opts in [
            &[][..],
            &["--follow-fork"][..],
            &["--aggregate"][..],
            &["--native"][..],
        ] {
            let name = format!("{mode}{}.bin", opts.join(""));
            let cap = run_as_alone(&dir, &name, opts, &["--", p, mode], &alone, stops);
            let s = stats(&cap);
            assert_eq!(s["complete"].as_bool(), Some(true), "{mode} {opts:?}: {s}");
            let expected = if stops {
                (100, 0, 100, 100_000)
            } else {
                (350, 50, 300, 700_000)
            };
            let found = (
                num(&s, "total_allocations"),
                num(&s, "total_frees"),
                num(&s, "leaked_allocations"),
                num(&s, "leaked_bytes"),
            );
            assert_eq!(found, expected, "{mode} {opts:?}");
            assert!(
                !dir.join(format!("{name}.exec1")).exists(),
                "{mode} {opts:?}: a capture for the exec'd image"
            );
            if opts == ["--follow-fork"] {
                // The forked child: its own capture, unless the parent had sandboxed itself
                // against the tracker (strict mode exits before the fork).
                let children = usize::from(matches!(mode, "none" | "deny-list"));
                assert_eq!(child_captures(&dir, &name), children, "{mode}");
            }
        }
    }
}

/// A Python program that installs a filter through ctypes (`syscall(SYS_seccomp)`, as
/// libseccomp does): 100 bytearrays before it, 300,000 strings after it.
const PY_SANDBOX: &str = r#"import ctypes, struct, sys

def ins(code, jt, jf, k):
    return struct.pack("HBBI", code, jt, jf, k)

def deny(numbers):
    """Kills the process on any of `numbers`, allows every other call."""
    prog = ins(0x20, 0, 0, 0)
    for n in numbers:
        prog += ins(0x15, 0, 1, n) + ins(0x06, 0, 0, 0x80000000)
    return prog + ins(0x06, 0, 0, 0x7FFF0000)

class Fprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]

def sandbox(numbers):
    libc = ctypes.CDLL(None, use_errno=True)
    code = deny(numbers)
    fprog = Fprog(len(code) // 8, code)
    assert libc.prctl(38, 1, 0, 0, 0) == 0
    assert libc.syscall(317, 1, 0, ctypes.byref(fprog)) == 0, ctypes.get_errno()

before = [bytearray(1000) for _ in range(100)]
# ptrace only; or also calls of the tracker's that this program never makes (ftruncate,
# fallocate, gettid, readlinkat, sync_file_range, pwritev, membarrier, fstatfs, mincore,
# getpid, getppid).
# prlimit64 alone: the tracker reads the file size limit at each growth of the capture.
if sys.argv[1] == "ptrace":
    sandbox([101])
elif sys.argv[1] == "prlimit":
    sandbox([302])
else:
    sandbox([101, 77, 285, 186, 267, 277, 296, 324, 138, 27, 39, 110])
after = [str(i) * 3 for i in range(300000)]
print(len(before), len(after), sum(map(len, after)))
"#;

/// The 1-based line of `text` that starts with `start`.
fn line_of(text: &str, start: &str) -> u64 {
    let i = text
        .lines()
        .position(|l| l.starts_with(start))
        .unwrap_or_else(|| panic!("no line starts with {start}"));
    i as u64 + 1
}

#[cfg(target_arch = "x86_64")]
#[test]
fn a_python_program_that_sandboxes_itself_runs_as_without_memtrace() {
    use memtrace_e2e::python::python;
    let dir = scratch("sandbox-py");
    std::fs::write(dir.join("sandboxed.py"), PY_SANDBOX).expect("write the script");
    let (before, after) = (
        line_of(PY_SANDBOX, "before = "),
        line_of(PY_SANDBOX, "after = "),
    );
    let py = python().to_str().expect("utf-8 path");
    for mode in ["ptrace", "tracker", "prlimit"] {
        let alone = Command::new(py)
            .args(["sandboxed.py", mode])
            .current_dir(&dir)
            .output()
            .expect("run python");
        assert_eq!(alone.status.code(), Some(0), "{mode}: {alone:?}");
        let stops = mode != "ptrace";
        // (--native: the C program's test; its locations are native frames.)
        for opts in [&[][..], &["--aggregate"][..], &["--no-types"][..]] {
            let name = format!("{mode}{}.bin", opts.join(""));
            let words = ["--python", py, "sandboxed.py", mode];
            let cap = run_as_alone(&dir, &name, opts, &words, &alone, stops);
            let out = Command::new(memtrace_e2e::memtrace_bin())
                .args(["stats", "--json", "-n", "1000"])
                .arg(&cap)
                .output()
                .expect("memtrace stats");
            assert!(out.status.success(), "{out:?}");
            let s: Value = serde_json::from_slice(&out.stdout).expect("JSON");
            assert_eq!(s["complete"].as_bool(), Some(true), "{mode} {opts:?}");
            let at_line = |line: u64| -> (u64, u64) {
                s["top_at_peak"]
                    .as_array()
                    .expect("top_at_peak")
                    .iter()
                    .filter(|r| {
                        r["file"]
                            .as_str()
                            .is_some_and(|f| f.ends_with("sandboxed.py"))
                    })
                    .filter(|r| r["line"].as_u64() == Some(line))
                    .fold((0, 0), |(c, b), r| {
                        (c + num(r, "count"), b + num(r, "bytes"))
                    })
            };
            // The bytearrays: an object and a buffer of 1,000 bytes each.
            let (count, bytes) = at_line(before);
            assert!(
                count >= 200 && bytes >= 100_000,
                "{mode} {opts:?}: {count} {bytes}"
            );
            let (count, _) = at_line(after);
            if stops {
                assert_eq!(count, 0, "{mode} {opts:?}: recorded after the filter");
                assert!(num(&s, "total_allocations") < 300_000, "{mode} {opts:?}");
            } else {
                assert!(count >= 300_000, "{mode} {opts:?}: {count}");
            }
        }
    }
}
