//! Choosing the Python interpreter of a Python run: `--python PATH` if given, else the active
//! virtual environment's (`$VIRTUAL_ENV/bin/python`), else `python3` on PATH.
//!
//! The tracker must be preloaded into the interpreter itself. An ELF interpreter is checked from
//! its file (no process is started); one that is a script, such as pyenv's bash shim (which
//! starts some thirty processes before the real interpreter), is asked once, untracked, for its
//! `sys.executable`, and that real interpreter is run instead.

use super::{elf, program, RunError};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Environment variable naming the active virtual environment's directory.
const VIRTUAL_ENV: &str = "VIRTUAL_ENV";
/// The interpreter looked for on PATH when neither `--python` nor a virtual environment says.
const DEFAULT_NAME: &str = "python3";

/// The interpreter to run (an ELF CPython executable, dynamically linked), by the path through
/// which it is to be run: a virtual environment's `bin/python` stays as it is, since the
/// interpreter finds its environment from that path.
pub fn choose(explicit: Option<&OsStr>) -> Result<PathBuf, RunError> {
    let candidate = match explicit {
        Some(given) => named(given)?,
        None => default()?,
    };
    real(&candidate)
}

/// An interpreter named by a path, or by a name looked up on PATH (`--python`, a `#!` line).
pub fn find(given: &OsStr) -> Option<PathBuf> {
    let path = Path::new(given);
    if given.as_encoded_bytes().contains(&b'/') {
        path.is_file().then(|| path.to_path_buf())
    } else if given.is_empty() {
        None
    } else {
        program::on_path(path)
    }
}

/// `--python PATH`: a path, or a name looked up on PATH.
fn named(given: &OsStr) -> Result<PathBuf, RunError> {
    let path = Path::new(given);
    find(given).ok_or_else(|| {
        RunError(format!(
            "no such Python interpreter: {} (given with --python)",
            path.display()
        ))
    })
}

/// The virtual environment's interpreter, else `python3` on PATH.
fn default() -> Result<PathBuf, RunError> {
    if let Some(venv) = std::env::var_os(VIRTUAL_ENV).filter(|v| !v.is_empty()) {
        let python = Path::new(&venv).join("bin").join("python");
        if python.is_file() {
            return Ok(python);
        }
    }
    program::on_path(Path::new(DEFAULT_NAME)).ok_or_else(|| {
        RunError(format!(
            "no Python interpreter: {DEFAULT_NAME} is not on PATH (name one with --python PATH)"
        ))
    })
}

/// The ELF interpreter behind `candidate`: itself when it is one, else the `sys.executable` it
/// reports. Refuses what is not a CPython interpreter, or cannot be traced.
pub fn real(candidate: &Path) -> Result<PathBuf, RunError> {
    let path = match elf::is_dynamic(&elf::head(candidate)) {
        Some(_) => candidate.to_path_buf(),
        None => ask_executable(candidate)?,
    };
    if !elf::is_cpython(&path) {
        return Err(not_python(candidate, None));
    }
    program::check_traceable(&path)?;
    Ok(path)
}

/// Runs `candidate -c 'import sys; print(sys.executable)'` (untracked, stdin closed) and returns
/// the path it prints, when that is a file.
fn ask_executable(candidate: &Path) -> Result<PathBuf, RunError> {
    let out = Command::new(candidate)
        .args(["-c", "import sys; print(sys.executable)"])
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| RunError(format!("cannot run {}: {e}", candidate.display())))?;
    if !out.status.success() {
        let why = String::from_utf8_lossy(&out.stderr);
        // The first line: a shim's own complaint comes first (pyenv: "python3.12: command
        // not found", then advice).
        let why = why.lines().map(str::trim).find(|l| !l.is_empty());
        return Err(not_python(candidate, why));
    }
    // The last line: a sitecustomize module may print before.
    let text = String::from_utf8_lossy(&out.stdout);
    let exe = text.lines().rev().map(str::trim).find(|l| !l.is_empty());
    match exe
        .map(Path::new)
        .filter(|p| p.is_absolute() && p.is_file())
    {
        Some(p) => Ok(p.to_path_buf()),
        None => Err(not_python(candidate, None)),
    }
}

fn not_python(candidate: &Path, why: Option<&str>) -> RunError {
    let mut msg = format!("{} is not a Python interpreter", candidate.display());
    if let Some(why) = why {
        msg.push_str(&format!(" (it says: {why})"));
    }
    RunError(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_foreign_interpreter_is_refused() {
        let err = choose(Some(OsStr::new("/no/such/python"))).expect_err("missing");
        assert_eq!(
            err.0,
            "no such Python interpreter: /no/such/python (given with --python)"
        );
        let err = choose(Some(OsStr::new("/bin/ls"))).expect_err("not python");
        assert_eq!(err.0, "/bin/ls is not a Python interpreter");
        let err = choose(Some(OsStr::new("/bin/false"))).expect_err("not python");
        assert_eq!(err.0, "/bin/false is not a Python interpreter");
    }
}
