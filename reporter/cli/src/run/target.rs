//! What `memtrace run` starts: the program the user named, or for a Python run
//! (`script.py`, `-m module`, `-c code`) the chosen interpreter with those words.

use super::interpreter;
use super::program;
use super::python::{is_script_name, Entry, PythonRun};
use super::shebang;
use super::RunError;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// A program ready to be started with the tracker preloaded.
#[derive(Debug)]
pub struct Target {
    /// The executable to start.
    pub path: PathBuf,
    /// Its `argv[0]`.
    pub arg0: OsString,
    /// Its other arguments.
    pub args: Vec<OsString>,
    /// The name in the default capture file name, `memtrace-<name>.<pid>.bin`.
    pub name: String,
    /// True for a Python run.
    pub python: bool,
    /// Something the user should know before the run (memtrace run prints it unless -q).
    pub note: Option<String>,
    /// What the interpreter's shim changes in the environment (interpreter::Chosen).
    pub env: Vec<(OsString, Option<OsString>)>,
    /// The process name the kernel would have given the program (a script run through a `#!`
    /// line naming its interpreter by path is named after the script), when it is not the
    /// executable's.
    pub process_name: Option<OsString>,
}

/// The target of `memtrace run [--python PATH] WORDS...`.
pub fn plan(words: &[OsString], python: Option<&OsStr>) -> Result<Target, RunError> {
    // An executable `x.py` (or `x.pyz`) whose #! line names another interpreter (bash, node,
    // uv): run as running it by its path runs it, not with Python.
    if let (Some((first, rest)), None) = (words.split_first(), python) {
        let script = Path::new(first);
        if is_script_name(script) && shebang::runs_another_interpreter(script) {
            let mut explicit = vec![explicit_path(first)];
            explicit.extend_from_slice(rest);
            return native_target(&explicit);
        }
    }
    match PythonRun::parse(words) {
        Some(run) => python_target(run?, python),
        None if python.is_some() => Err(RunError(
            "--python is for Python runs: a script ending in .py (or .pyz, a zip application, or a directory with a __main__.py), -m MODULE, -c CODE or - (the program read from stdin)".into(),
        )),
        None => native_target(words),
    }
}

fn python_target(run: PythonRun, python: Option<&OsStr>) -> Result<Target, RunError> {
    run.check()?;
    // An executable script run without --python: the interpreter its #! line names, as
    // running it by its path would.
    let shebang = match (&run.entry, python) {
        (Entry::Script(script), None) => shebang::python_of(Path::new(script)),
        _ => None,
    };
    let mut note = None;
    let mut process_name = None;
    let (path, mut args) = match shebang {
        Some(line) => {
            // `#!/usr/bin/env NAME` runs NAME, which names the process as memtrace's does.
            if line.interpreter.as_bytes().contains(&b'/') {
                if let Entry::Script(script) = &run.entry {
                    process_name = Path::new(script).file_name().map(OsStr::to_os_string);
                }
            }
            if let Some(flag) = shebang::hides_the_hook(&line.options) {
                note = Some(format!(
                    "the script's #! line runs Python with {flag}, which keeps memtrace's start-up hook out: allocations will have no Python stacks"
                ));
            }
            let found = interpreter::find(&line.interpreter).ok_or_else(|| {
                RunError(format!(
                    "the script's #! line names {}, which was not found (name an interpreter with --python PATH)",
                    Path::new(&line.interpreter).display()
                ))
            })?;
            (interpreter::real(&found)?, line.options)
        }
        None => (interpreter::choose(python)?, Vec::new()),
    };
    let interpreter::Chosen { path, env } = path;
    args.extend(run.interpreter_args());
    Ok(Target {
        arg0: path.clone().into_os_string(),
        path,
        args,
        name: run.capture_stem(),
        // Such an interpreter never imports the hook (it would not take it off PYTHONPATH
        // either: the program and its children would see it): run as a native program.
        python: note.is_none(),
        note,
        env,
        process_name,
    })
}

/// A file name as a path the program resolution takes as a file, not a name to look for on
/// PATH (`x.py` as `./x.py`).
fn explicit_path(word: &OsStr) -> OsString {
    if word.as_bytes().contains(&b'/') {
        return word.to_os_string();
    }
    let mut p = OsString::from("./");
    p.push(word);
    p
}

fn native_target(words: &[OsString]) -> Result<Target, RunError> {
    let (program, rest) = words
        .split_first()
        .ok_or_else(|| RunError("no program given".into()))?;
    let path = program::resolve(program)?;
    program::check_traceable(&path)?;
    let name = Path::new(program)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "program".into());
    Ok(Target {
        path,
        arg0: program.clone(),
        args: rest.to_vec(),
        name,
        python: false,
        note: None,
        env: Vec::new(),
        process_name: None,
    })
}
