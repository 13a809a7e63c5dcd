//! What `memtrace run` asks of the tracker, read from the environment at start.
//!
//! - MEMTRACE_OUTPUT: the capture path; `{pid}` in it is replaced by the process id.
//! - MEMTRACE_FORCE=1: overwrite an existing capture.
//! - MEMTRACE_FOLLOW_FORK=1: the program's children (forked, spawned) write `<capture>.<pid>`.
//! - MEMTRACE_PARENT_CAPTURE: set for descendants (with --follow-fork): the root capture's path.
//! - MEMTRACE_STATUS: a file where the tracker writes why it could not record.
//! - MEMTRACE_PYTHON=1: the program is the Python interpreter of a script run; with
//!   MEMTRACE_PYTHON_ALLOCATORS=0 the PyMem allocators are not wrapped; with
//!   MEMTRACE_OBJECT_TYPES=0 object types are not recorded (no typed frees, no walk at the script's end).
//! - MEMTRACE_NATIVE=1: record the whole native stack of every allocation (--native).
//! - MEMTRACE_AGGREGATE=1: keep sums per stack and thread instead of every event (--aggregate).
//! - MEMTRACE_PYTHON_HOOK: the start-up hook's directory, for an exec'd image that is CPython.
//! - MEMTRACE_EXEC=N, MEMTRACE_EXEC_BASE: set by the exec hook (exec.rs) for the image a tracked
//!   process exec'd: it is the N-th exec of the process whose first capture is the base;
//!   MEMTRACE_OUTPUT is then the exact path of its capture.
//!
//! Without --follow-fork these variables and the tracker's LD_PRELOAD entry are removed at start,
//! so that the programs this one runs are not traced.

use std::ffi::{CStr, CString};

pub struct Config {
    pub output: Vec<u8>,
    pub force: bool,
    pub follow_fork: bool,
    /// The root capture's path (descendants name theirs after it).
    pub root: Vec<u8>,
    pub status: Option<Vec<u8>>,
    /// True when this process is a followed descendant (exec'd after a fork).
    pub descendant: bool,
    /// The Python run's interpreter: track Python stacks (and the PyMem allocators).
    pub python: bool,
    pub python_allocators: bool,
    /// A Python run: record object types, with each free of an object and for the objects live
    /// when the script finishes (off with MEMTRACE_OBJECT_TYPES=0, `memtrace run --no-types`).
    pub object_types: bool,
    /// Record whole native stacks (--native).
    pub native: bool,
    /// How many execs of this process came before this image (0: the first image).
    pub exec: u32,
    /// The capture of the process's first image (the next exec's capture is named after it).
    pub exec_base: Vec<u8>,
    /// The Python start-up hook's directory (MEMTRACE_PYTHON_HOOK).
    pub python_hook: Option<Vec<u8>>,
    /// Byte sampling: one sample per this many bytes (MEMTRACE_SAMPLE_BYTES); 0 records all.
    pub sample_bytes: u64,
    /// MEMTRACE_SAMPLE_SEED: fixed random streams for sampling (tests); 0 seeds from the clock.
    pub sample_seed: u64,
    /// `key=value` labels separated by NUL bytes (MEMTRACE_LABELS, newline-separated there).
    pub labels: Vec<u8>,
    /// Started in a running process by `memtrace attach` (the header says so).
    pub attached: bool,
    /// Aggregated capture (MEMTRACE_AGGREGATE=1, `memtrace run --aggregate`).
    pub aggregate: bool,
}

/// The settings every image and followed child of a run shares (read from the environment).
#[derive(Clone, Default)]
pub struct Shared {
    pub sample_bytes: u64,
    pub sample_seed: u64,
    pub labels: Vec<u8>,
    pub aggregate: bool,
}

impl Shared {
    pub fn from_env() -> Shared {
        let number = |name: &CStr| {
            var(name)
                .and_then(|v| std::str::from_utf8(&v).ok()?.parse::<u64>().ok())
                .unwrap_or(0)
        };
        let labels = var(c"MEMTRACE_LABELS")
            .map(|v| v.iter().map(|&b| if b == b'\n' { 0 } else { b }).collect())
            .unwrap_or_default();
        Shared {
            sample_bytes: number(c"MEMTRACE_SAMPLE_BYTES"),
            sample_seed: number(c"MEMTRACE_SAMPLE_SEED"),
            labels,
            aggregate: var(c"MEMTRACE_AGGREGATE").is_some_and(|v| v == b"1"),
        }
    }
}

/// The variables the tracker reads (removed for the program's children unless followed).
pub const VARIABLES: [&CStr; 16] = [
    c"MEMTRACE_OUTPUT",
    c"MEMTRACE_FORCE",
    c"MEMTRACE_FOLLOW_FORK",
    c"MEMTRACE_PARENT_CAPTURE",
    c"MEMTRACE_STATUS",
    c"MEMTRACE_PYTHON",
    c"MEMTRACE_PYTHON_ALLOCATORS",
    c"MEMTRACE_OBJECT_TYPES",
    c"MEMTRACE_NATIVE",
    c"MEMTRACE_PYTHON_HOOK",
    c"MEMTRACE_EXEC",
    c"MEMTRACE_EXEC_BASE",
    c"MEMTRACE_SAMPLE_BYTES",
    c"MEMTRACE_SAMPLE_SEED",
    c"MEMTRACE_LABELS",
    c"MEMTRACE_AGGREGATE",
];

extern "C" {
    /// glibc's getenv that answers nothing in a set-user-ID or otherwise privileged process
    /// (not declared by the libc crate for Linux).
    fn secure_getenv(name: *const libc::c_char) -> *mut libc::c_char;
}

/// A variable of the environment; none in a privileged process, so that the environment cannot
/// make a set-user-ID program write files where its caller chooses.
pub fn var(name: &CStr) -> Option<Vec<u8>> {
    // SAFETY: secure_getenv with a NUL-terminated name; the result is copied at once.
    let p = unsafe { secure_getenv(name.as_ptr()) };
    if p.is_null() {
        None
    } else {
        // SAFETY: a non-null secure_getenv result is a NUL-terminated string.
        Some(unsafe { CStr::from_ptr(p) }.to_bytes().to_vec())
    }
}

fn decimal(mut v: u32) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        out.push(b'0' + (v % 10) as u8);
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.reverse();
    out
}

/// `path.<pid>`
pub fn child_path(root: &[u8], pid: u32) -> Vec<u8> {
    let mut p = root.to_vec();
    p.push(b'.');
    p.extend_from_slice(&decimal(pid));
    p
}

impl Config {
    /// None when the tracker was loaded without `memtrace run` (no output asked for).
    pub fn from_env(pid: u32) -> Option<Config> {
        let follow_fork = var(c"MEMTRACE_FOLLOW_FORK").is_some_and(|v| v == b"1");
        let status = var(c"MEMTRACE_STATUS");
        let python = var(c"MEMTRACE_PYTHON").is_some_and(|v| v == b"1");
        let python_allocators = var(c"MEMTRACE_PYTHON_ALLOCATORS").is_none_or(|v| v != b"0");
        let object_types = var(c"MEMTRACE_OBJECT_TYPES").is_none_or(|v| v != b"0");
        let native = var(c"MEMTRACE_NATIVE").is_some_and(|v| v == b"1");
        let python_hook = var(c"MEMTRACE_PYTHON_HOOK");
        let shared = Shared::from_env();
        if let Some(exec) = exec_image() {
            let output = var(c"MEMTRACE_OUTPUT")?;
            return Some(Config {
                root: var(c"MEMTRACE_PARENT_CAPTURE").unwrap_or_else(|| exec.1.clone()),
                output,
                force: var(c"MEMTRACE_FORCE").is_some_and(|v| v == b"1"),
                follow_fork,
                status,
                descendant: false,
                python: false,
                python_allocators,
                object_types,
                native,
                exec: exec.0,
                exec_base: exec.1,
                python_hook,
                sample_bytes: shared.sample_bytes,
                sample_seed: shared.sample_seed,
                labels: shared.labels.clone(),
                attached: false,
                aggregate: shared.aggregate,
            });
        }
        if let Some(root) = var(c"MEMTRACE_PARENT_CAPTURE") {
            let output = child_path(&root, pid);
            return Some(Config {
                exec_base: output.clone(),
                output,
                force: false,
                follow_fork,
                root,
                status,
                descendant: true,
                python,
                python_allocators,
                object_types,
                native,
                exec: 0,
                python_hook,
                sample_bytes: shared.sample_bytes,
                sample_seed: shared.sample_seed,
                labels: shared.labels.clone(),
                attached: false,
                aggregate: shared.aggregate,
            });
        }
        let template = var(c"MEMTRACE_OUTPUT")?;
        let output = replace_pid(&template, pid);
        Some(Config {
            root: output.clone(),
            exec_base: output.clone(),
            output,
            force: var(c"MEMTRACE_FORCE").is_some_and(|v| v == b"1"),
            follow_fork,
            status,
            descendant: false,
            python,
            python_allocators,
            object_types,
            native,
            exec: 0,
            python_hook,
            sample_bytes: shared.sample_bytes,
            sample_seed: shared.sample_seed,
            labels: shared.labels,
            attached: false,
            aggregate: shared.aggregate,
        })
    }

    /// Leaves the environment for the program's own children: cleaned of the tracker unless
    /// they are to be followed.
    pub fn prepare_environment(&self, tracker_path: &[u8]) {
        // These describe this image only: a followed child is not an exec of this process.
        for name in [c"MEMTRACE_EXEC", c"MEMTRACE_EXEC_BASE"] {
            crate::environ::unset(name);
        }
        if self.follow_fork {
            if !self.descendant {
                if let Ok(root) = CString::new(self.root.clone()) {
                    crate::environ::set(c"MEMTRACE_PARENT_CAPTURE", &root);
                }
            }
            return;
        }
        for name in VARIABLES {
            crate::environ::unset(name);
        }
        remove_from_preload(tracker_path);
    }
}

/// (N, base) of an image a tracked process exec'd (MEMTRACE_EXEC=N, MEMTRACE_EXEC_BASE).
fn exec_image() -> Option<(u32, Vec<u8>)> {
    let n = var(c"MEMTRACE_EXEC")?;
    let n = std::str::from_utf8(&n).ok()?.parse::<u32>().ok()?;
    Some((n, var(c"MEMTRACE_EXEC_BASE")?))
}

fn replace_pid(template: &[u8], pid: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(template.len() + 10);
    let mut i = 0;
    while i < template.len() {
        if template[i..].starts_with(b"{pid}") {
            out.extend_from_slice(&decimal(pid));
            i += 5;
        } else {
            out.push(template[i]);
            i += 1;
        }
    }
    out
}

/// Removes the tracker (by path or file name) from LD_PRELOAD, the rest left as it was; the
/// entry goes when the tracker was all of it. The tracker is in the last LD_PRELOAD entry, the
/// one the loader took (an exec may give the variable twice): that one is changed, the others
/// stay as they were.
fn remove_from_preload(tracker_path: &[u8]) {
    // Nothing in a privileged process (secure_getenv answers nothing there).
    if var(c"LD_PRELOAD").is_none() {
        return;
    }
    let Some(last) = crate::environ::last_value(b"LD_PRELOAD=") else {
        return;
    };
    let Some(rest) = crate::preload_var::without_tracker(&last, tracker_path) else {
        return;
    };
    if rest.is_empty() && !rest.separated {
        return crate::environ::replace_last(b"LD_PRELOAD=", None);
    }
    if let Ok(entry) = CString::new([&b"LD_PRELOAD="[..], rest.before, rest.after].concat()) {
        // The environment keeps the entry for good, as setenv would.
        crate::environ::replace_last(b"LD_PRELOAD=", Some(Box::leak(entry.into_boxed_c_str())));
    }
}
