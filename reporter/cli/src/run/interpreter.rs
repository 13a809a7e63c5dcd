//! Choosing the Python interpreter of a Python run: `--python PATH` if given, else the active
//! virtual environment's (`$VIRTUAL_ENV/bin/python`), else, for the `memtrace` of a virtual
//! environment's package, that environment's, else `python3` on PATH.
//!
//! The tracker must be preloaded into the interpreter itself. An ELF interpreter is checked from
//! its file (no process is started); one that is a script, such as pyenv's bash shim (which
//! starts some thirty processes before the real interpreter), is asked once, untracked, for its
//! `sys.executable`, and that real interpreter is run instead.

use super::{elf, program, RunError};
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Environment variable naming the active virtual environment's directory.
const VIRTUAL_ENV: &str = "VIRTUAL_ENV";
/// The interpreter looked for on PATH when neither `--python` nor a virtual environment says.
const DEFAULT_NAME: &str = "python3";
/// Set by the Python package's `memtrace` console script when it runs from a virtual
/// environment that is not activated: that environment's interpreter (`venv/bin/memtrace run
/// -m pytest` ran `python3` on PATH, which had no pytest). Taken out of the program's
/// environment.
pub const PACKAGE_PYTHON: &str = "MEMTRACE_PACKAGE_PYTHON";

/// An interpreter chosen: its path, and what the script that stands for it (a shim) changes
/// in the environment before it runs it (pyenv's PATH and PYENV_* variables), for the program
/// to see as it would.
#[derive(Debug)]
pub struct Chosen {
    pub path: PathBuf,
    /// Variables to set (Some) or remove (None).
    pub env: Vec<(OsString, Option<OsString>)>,
}

/// The interpreter to run (an ELF CPython executable, dynamically linked), by the path through
/// which it is to be run: a virtual environment's `bin/python` stays as it is, since the
/// interpreter finds its environment from that path.
pub fn choose(explicit: Option<&OsStr>) -> Result<Chosen, RunError> {
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

/// The active virtual environment's interpreter, else that of the environment whose
/// `memtrace` runs, else `python3` on PATH.
fn default() -> Result<PathBuf, RunError> {
    if let Some(venv) = std::env::var_os(VIRTUAL_ENV).filter(|v| !v.is_empty()) {
        let python = Path::new(&venv).join("bin").join("python");
        if python.is_file() {
            return Ok(python);
        }
    }
    if let Some(python) = std::env::var_os(PACKAGE_PYTHON).filter(|v| !v.is_empty()) {
        let python = PathBuf::from(python);
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
pub fn real(candidate: &Path) -> Result<Chosen, RunError> {
    let chosen = match elf::is_dynamic(&elf::head(candidate)) {
        Some(_) => Chosen {
            path: candidate.to_path_buf(),
            env: Vec::new(),
        },
        None => ask_executable(candidate)?,
    };
    if !elf::is_cpython(&chosen.path) {
        return Err(not_python(candidate, None));
    }
    program::check_traceable(&chosen.path)?;
    Ok(chosen)
}

/// Marks the start of the probe's answer (a shim may print before).
const ANSWER: &[u8] = b"\0memtrace-probe\0";

/// The probe: `sys.executable` and the environment the interpreter was given, NUL-separated,
/// after [`ANSWER`]. Run with -S: no `site`, so nothing of the user's (sitecustomize,
/// usercustomize, .pth files) runs for it. Python 2 too (a shim may name one).
const PROBE: &str = "import os, sys
out = getattr(sys.stdout, 'buffer', sys.stdout)
enc = getattr(os, 'fsencode', lambda s: s)
env = getattr(os, 'environb', os.environ)
out.write(b'\\0memtrace-probe\\0' + b'\\0'.join([enc(sys.executable)] + [k + b'=' + v for k, v in env.items()]))
";

/// Variables the run sets itself from memtrace's own environment, whatever a shim did.
const RUN_S_OWN: [&str; 2] = ["PYTHONPATH", "LD_PRELOAD"];

/// Runs the probe with `candidate` (untracked, stdin closed) and returns the interpreter it
/// names, when that is a file, with what the candidate changed in the environment.
fn ask_executable(candidate: &Path) -> Result<Chosen, RunError> {
    let out = Command::new(candidate)
        .args(["-S", "-c", PROBE])
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
    let answer = out
        .stdout
        .windows(ANSWER.len())
        .rposition(|w| w == ANSWER)
        .map(|at| &out.stdout[at + ANSWER.len()..]);
    let Some(answer) = answer else {
        return Err(not_python(candidate, None));
    };
    let mut fields = answer.split(|&b| b == 0);
    let exe = fields
        .next()
        .map(|b| PathBuf::from(OsStr::from_bytes(b)))
        .filter(|p| p.is_absolute() && p.is_file());
    let Some(path) = exe else {
        return Err(not_python(candidate, None));
    };
    let given: Vec<(OsString, OsString)> = fields
        .filter_map(|e| {
            let eq = e.iter().position(|&b| b == b'=')?;
            Some((
                OsStr::from_bytes(&e[..eq]).to_os_string(),
                OsStr::from_bytes(&e[eq + 1..]).to_os_string(),
            ))
        })
        .collect();
    Ok(Chosen {
        path,
        env: changes(std::env::vars_os(), given),
    })
}

/// What turns the environment `ours` into `given`: variables set or changed, and removed;
/// not those the run sets itself ([`RUN_S_OWN`], memtrace's).
fn changes(
    ours: impl Iterator<Item = (OsString, OsString)>,
    given: Vec<(OsString, OsString)>,
) -> Vec<(OsString, Option<OsString>)> {
    let ours: std::collections::HashMap<OsString, OsString> = ours.collect();
    let own = |k: &OsString| {
        RUN_S_OWN.iter().any(|o| k == o) || k.as_encoded_bytes().starts_with(b"MEMTRACE_")
    };
    let mut out: Vec<(OsString, Option<OsString>)> = given
        .iter()
        .filter(|(k, v)| !own(k) && ours.get(k) != Some(v))
        .map(|(k, v)| (k.clone(), Some(v.clone())))
        .collect();
    let kept: std::collections::HashSet<&OsString> = given.iter().map(|(k, _)| k).collect();
    out.extend(
        ours.keys()
            .filter(|k| !own(k) && !kept.contains(k))
            .map(|k| (k.clone(), None)),
    );
    out.sort();
    out
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
