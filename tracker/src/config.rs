//! What `memtrace run` asks of the tracker, read from the environment at start.
//!
//! - MEMTRACE_OUTPUT: the capture path; `{pid}` in it is replaced by the process id.
//! - MEMTRACE_FORCE=1: overwrite an existing capture.
//! - MEMTRACE_FOLLOW_FORK=1: forked children and exec'd programs write `<capture>.<pid>`.
//! - MEMTRACE_PARENT_CAPTURE: set for descendants (with --follow-fork): the root capture's path.
//! - MEMTRACE_STATUS: a file where the tracker writes why it could not record.
//! - MEMTRACE_PYTHON=1: the program is the Python interpreter of a script run; with
//!   MEMTRACE_PYTHON_ALLOCATORS=0 the PyMem allocators are not wrapped.
//! - MEMTRACE_NATIVE=1: record the whole native stack of every allocation (--native).
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
    /// Record whole native stacks (--native).
    pub native: bool,
}

extern "C" {
    /// glibc's getenv that answers nothing in a set-user-ID or otherwise privileged process
    /// (not declared by the libc crate for Linux).
    fn secure_getenv(name: *const libc::c_char) -> *mut libc::c_char;
}

/// A variable of the environment; none in a privileged process, so that the environment cannot
/// make a set-user-ID program write files where its caller chooses.
fn var(name: &CStr) -> Option<Vec<u8>> {
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
        let native = var(c"MEMTRACE_NATIVE").is_some_and(|v| v == b"1");
        if let Some(root) = var(c"MEMTRACE_PARENT_CAPTURE") {
            return Some(Config {
                output: child_path(&root, pid),
                force: false,
                follow_fork,
                root,
                status,
                descendant: true,
                python,
                python_allocators,
                native,
            });
        }
        let template = var(c"MEMTRACE_OUTPUT")?;
        let output = replace_pid(&template, pid);
        Some(Config {
            root: output.clone(),
            output,
            force: var(c"MEMTRACE_FORCE").is_some_and(|v| v == b"1"),
            follow_fork,
            status,
            descendant: false,
            python,
            python_allocators,
            native,
        })
    }

    /// Leaves the environment for the program's own children: cleaned of the tracker unless
    /// they are to be followed.
    pub fn prepare_environment(&self, tracker_path: &[u8]) {
        if self.follow_fork {
            if !self.descendant {
                if let Ok(root) = CString::new(self.root.clone()) {
                    // SAFETY: setenv copies both strings; called at start-up.
                    unsafe { libc::setenv(c"MEMTRACE_PARENT_CAPTURE".as_ptr(), root.as_ptr(), 1) };
                }
            }
            return;
        }
        for name in [
            c"MEMTRACE_OUTPUT",
            c"MEMTRACE_FORCE",
            c"MEMTRACE_FOLLOW_FORK",
            c"MEMTRACE_PARENT_CAPTURE",
            c"MEMTRACE_STATUS",
            c"MEMTRACE_PYTHON",
            c"MEMTRACE_PYTHON_ALLOCATORS",
            c"MEMTRACE_NATIVE",
        ] {
            // SAFETY: unsetenv with a NUL-terminated name.
            unsafe { libc::unsetenv(name.as_ptr()) };
        }
        remove_from_preload(tracker_path);
    }
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

/// Removes the tracker (by path or file name) from LD_PRELOAD.
fn remove_from_preload(tracker_path: &[u8]) {
    let Some(preload) = var(c"LD_PRELOAD") else {
        return;
    };
    let file_name = |p: &[u8]| -> Vec<u8> { p.rsplit(|&c| c == b'/').next().unwrap_or(p).to_vec() };
    let ours = file_name(tracker_path);
    let kept: Vec<&[u8]> = preload
        .split(|&c| c == b':' || c == b' ')
        .filter(|e| !e.is_empty() && *e != tracker_path && file_name(e) != ours)
        .collect();
    if kept.is_empty() {
        // SAFETY: unsetenv with a NUL-terminated name.
        unsafe { libc::unsetenv(c"LD_PRELOAD".as_ptr()) };
    } else if let Ok(v) = CString::new(kept.join(&b':')) {
        // SAFETY: setenv copies both strings.
        unsafe { libc::setenv(c"LD_PRELOAD".as_ptr(), v.as_ptr(), 1) };
    }
}
