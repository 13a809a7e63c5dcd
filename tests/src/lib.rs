//! Helpers for the end-to-end tests: find the built `memtrace`, compile test programs, run them
//! under memtrace and read `stats --json`.

pub mod browser;
pub mod netfs;
pub mod page;
pub mod python;
pub mod tmux;
pub mod watchdog;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// The workspace's root directory.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace")
        .to_path_buf()
}

/// Cargo's target directory: $CARGO_TARGET_DIR, else target/ in the workspace.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"))
}

/// The `memtrace` binary under test: $MEMTRACE_BIN, else target/release/memtrace (built by the
/// README's test command before the tests run).
pub fn memtrace_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("MEMTRACE_BIN") {
        return PathBuf::from(p);
    }
    let target = target_dir();
    let bin = target.join("release").join("memtrace");
    assert!(
        bin.is_file() && target.join("release/libmemtrace_tracker.so").is_file(),
        "{} or its tracker library is missing: run `cargo build --release` first",
        bin.display()
    );
    bin
}

/// A fresh scratch directory for one test.
pub fn scratch(name: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "memtrace-e2e-{}-{}-{}",
        std::process::id(),
        name,
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// Links the tracker library into `dir` as `_memtrace_tracker.so`, so that a Python script
/// there can `import _memtrace_tracker` (the in-process tracker without the package).
pub fn link_tracker_module(dir: &Path) {
    let lib = memtrace_bin()
        .parent()
        .expect("the binary's directory")
        .join("libmemtrace_tracker.so");
    std::os::unix::fs::symlink(&lib, dir.join("_memtrace_tracker.so")).expect("link the tracker");
}

/// Whether the tests run as root (CI does): what a few tests need (chroot, another user).
/// Makes the file at `path` executable (mode 755) as a new file that a child process wrote:
/// a file this process wrote was open for writing in the children other tests fork meanwhile,
/// and running it could fail with "Text file busy" (ETXTBSY) until they exec.
pub fn make_executable(path: &Path) {
    let out = Command::new("sh")
        .args([
            "-c",
            "cp \"$1\" \"$1.x\" && chmod 755 \"$1.x\" && mv -f \"$1.x\" \"$1\"",
            "sh",
        ])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .expect("sh runs");
    assert!(
        out.status.success(),
        "make {} executable: {out:?}",
        path.display()
    );
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Compiles tests/programs/<name>.c without optimizations (so every allocation happens).
pub fn compile(name: &str, dir: &Path) -> PathBuf {
    compile_file(
        &workspace().join("tests/programs").join(format!("{name}.c")),
        dir,
    )
}

/// Compiles the C file `src` into `dir` (named after it, without `.c`), as [`compile`] does.
pub fn compile_file(src: &Path, dir: &Path) -> PathBuf {
    let out = dir.join(src.file_stem().expect("a file name"));
    let status = Command::new("gcc")
        .args(["-O0", "-g", "-fno-builtin", "-pthread", "-o"])
        .arg(&out)
        .arg(src)
        .status()
        .expect("gcc runs");
    assert!(status.success(), "compiling {} failed", src.display());
    out
}

/// Compiles the C++ program tests/programs/<name>.cpp into `dir` without optimizations (so no
/// `new` is elided).
pub fn compile_cxx(name: &str, dir: &Path) -> PathBuf {
    let out = dir.join(name);
    let src = workspace()
        .join("tests/programs")
        .join(format!("{name}.cpp"));
    let status = Command::new("g++")
        .args(["-O0", "-g", "-pthread", "-o"])
        .arg(&out)
        .arg(&src)
        .status()
        .expect("g++ runs");
    assert!(status.success(), "compiling {} failed", src.display());
    out
}

/// Compiles tests/programs/`lib`.c into `dir`/lib`lib`.so with `flags`; the library's path.
pub fn compile_shared(lib: &str, dir: &Path, flags: &[&str]) -> PathBuf {
    let out = dir.join(format!("lib{lib}.so"));
    let src = workspace().join("tests/programs").join(format!("{lib}.c"));
    let built = Command::new("gcc")
        .args(flags)
        .args(["-shared", "-fPIC", "-o"])
        .arg(&out)
        .arg(src)
        .status()
        .expect("gcc runs");
    assert!(built.success(), "compiling {lib}.c failed");
    out
}

/// Compiles tests/programs/`lib`.c into `dir`/lib`lib`.so and tests/programs/`prog`.c into
/// `dir`/`name`, linked with it (found there at run time), both with `flags` and the program
/// with `extra` after the library (more libraries); the program's path.
pub fn compile_linked(
    (lib, prog, name): (&str, &str, &str),
    dir: &Path,
    flags: &[&str],
    extra: &[&str],
) -> PathBuf {
    compile_shared(lib, dir, flags);
    let src = workspace().join("tests/programs");
    let out = dir.join(name);
    let built = Command::new("gcc")
        .args(flags)
        .arg("-o")
        .arg(&out)
        .arg(src.join(format!("{prog}.c")))
        .arg(format!("-L{}", dir.display()))
        .arg(format!("-l{lib}"))
        .arg(format!("-Wl,-rpath,{}", dir.display()))
        .args(extra)
        .status()
        .expect("gcc runs");
    assert!(built.success(), "compiling {prog}.c failed");
    out
}

/// Runs `memtrace ARGS...` and returns its output.
/// A run that hangs fails the test after watchdog::LIMIT.
pub fn memtrace(args: &[&str], dir: &Path) -> Output {
    let mut cmd = Command::new(memtrace_bin());
    cmd.args(args).current_dir(dir).stdin(Stdio::null());
    watchdog::output_within(&mut cmd, watchdog::LIMIT)
}

/// Runs `program args` under `memtrace run -q -o <capture>` and returns the capture path.
pub fn record(dir: &Path, capture: &str, program: &Path, args: &[&str]) -> (PathBuf, Output) {
    let cap = dir.join(capture);
    let mut all = vec![
        "run",
        "-q",
        "-f",
        "-o",
        cap.to_str().expect("utf-8 path"),
        "--",
    ];
    let prog = program.to_str().expect("utf-8 path");
    all.push(prog);
    all.extend_from_slice(args);
    let out = memtrace(&all, dir);
    (cap, out)
}

/// `memtrace stats --json` of a capture, parsed.
pub fn stats(capture: &Path) -> Value {
    let out = Command::new(memtrace_bin())
        .args(["stats", "--json"])
        .arg(capture)
        .output()
        .expect("memtrace stats runs");
    assert!(
        out.status.success(),
        "stats failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("stats --json prints JSON");
    // A capture the tracker wrote decodes whole: records it wrote wrongly show up here (a
    // killed run's unfinished chunk is "skipped ... bytes", not damaged records).
    let warnings = v["warnings"].to_string();
    assert!(
        !warnings.contains("damaged records"),
        "{}: {warnings}",
        capture.display()
    );
    v
}

/// A number field of a stats object.
pub fn num(v: &Value, key: &str) -> i64 {
    v[key]
        .as_i64()
        .or_else(|| v[key].as_f64().map(|f| f as i64))
        .unwrap_or_else(|| panic!("{key} missing in {v}"))
}

/// The count of allocator `name` (0 when absent).
pub fn allocator(v: &Value, name: &str) -> i64 {
    v["allocators"][name].as_i64().unwrap_or(0)
}

/// Stats of `mode args` minus stats of the "none" mode of the same program: what the mode itself
/// did, without libc's own start-up allocations.
pub struct Delta {
    pub run: Value,
    pub base: Value,
}

impl Delta {
    pub fn of(dir: &Path, program: &Path, args: &[&str]) -> Delta {
        let (base_cap, out) = record(dir, "base.bin", program, &["none"]);
        assert!(out.status.success(), "baseline run failed: {out:?}");
        let (cap, out) = record(dir, "run.bin", program, args);
        assert!(out.status.success(), "run failed: {out:?}");
        Delta {
            run: stats(&cap),
            base: stats(&base_cap),
        }
    }

    pub fn get(&self, key: &str) -> i64 {
        num(&self.run, key) - num(&self.base, key)
    }

    pub fn allocator(&self, name: &str) -> i64 {
        allocator(&self.run, name) - allocator(&self.base, name)
    }
}

/// `memtrace ARGS... CAPTURE` (a report with `--json`), parsed.
pub fn report(args: &[&str], capture: &Path) -> Value {
    let out = Command::new(memtrace_bin())
        .args(args)
        .arg(capture)
        .output()
        .expect("memtrace runs");
    assert!(
        out.status.success(),
        "memtrace {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the report prints JSON")
}

/// Bytes and allocations of the nodes of a `tree --json` tree whose function is `function`
/// (nodes nested in one another counted once, at the outermost).
pub fn node_sum(node: &Value, function: &str) -> (i64, i64) {
    if node["function"].as_str() == Some(function) {
        return (num(node, "bytes"), num(node, "allocations"));
    }
    let mut sum = (0, 0);
    for c in node["children"].as_array().into_iter().flatten() {
        let (b, a) = node_sum(c, function);
        sum = (sum.0 + b, sum.1 + a);
    }
    sum
}

/// Runs `memtrace run -q -f EXTRA -o CAPTURE PROGRAM READY` in `dir`, where the program writes
/// its pid to the file READY once it holds its memory; waits for that, then `after`, then
/// kills the program with SIGKILL (as the kernel's OOM killer does) and checks that memtrace
/// dies of the same signal.
pub fn kill_when_ready(
    dir: &Path,
    program: &Path,
    capture: &Path,
    extra: &[&str],
    after: std::time::Duration,
) {
    kill_when(dir, program, capture, extra, || {
        std::thread::sleep(after);
        true
    });
}

/// [`kill_when_ready`], the kill once `until` holds after READY (asked every 100 ms, for a
/// minute at most): a state of the capture rather than a time, which a loaded machine outruns.
pub fn kill_when(
    dir: &Path,
    program: &Path,
    capture: &Path,
    extra: &[&str],
    until: impl Fn() -> bool,
) {
    let ready = dir.join("ready");
    let _ = std::fs::remove_file(&ready);
    let child = Command::new(memtrace_bin())
        .args(["run", "-q", "-f"])
        .args(extra)
        .arg("-o")
        .arg(capture)
        .arg(program)
        .arg(&ready)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("memtrace runs");
    let start = std::time::Instant::now();
    let pid = loop {
        if let Ok(text) = std::fs::read_to_string(&ready) {
            break text.trim().parse::<i32>().expect("a pid");
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(60),
            "the program never got ready"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let waited = std::time::Instant::now();
    while !until() {
        assert!(
            waited.elapsed() < std::time::Duration::from_secs(60),
            "the capture never showed what the test waits for"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // SAFETY: kill(2) of the program's pid, which it wrote itself.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    let out = child.wait_with_output().expect("memtrace ends");
    // memtrace dies of the signal that killed the program.
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&out.status),
        Some(libc::SIGKILL),
        "{out:?}"
    );
}
