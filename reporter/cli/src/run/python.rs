//! Python runs: `memtrace run script.py | -m module | -c code [args]`. The words after
//! memtrace's own options become the interpreter's command line unchanged, so the program sees
//! what `python script.py` (or `-m`, `-c`) gives it: the same `sys.argv`, `__main__`,
//! `sys.path[0]`, exit status and traceback.

use super::RunError;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Whether `path` names a Python script by its name: a source (`.py`, `.pyw`) or a zip
/// application (`.pyz`, `.pyzw`, what `python -m zipapp` makes), all of which `python PATH`
/// runs.
pub fn is_script_name(path: &Path) -> bool {
    let ext = path.extension().and_then(OsStr::to_str);
    matches!(ext, Some("py" | "pyw" | "pyz" | "pyzw"))
}

/// Whether `path` is a zip archive (its first bytes are a zip entry's), which `python PATH` runs
/// as a zip application whatever its name (`app.zip`); no program runs such a file itself.
fn is_zip_archive(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok_and(|()| magic == *b"PK\x03\x04")
}

/// What the interpreter is asked to run.
#[derive(Debug, PartialEq, Eq)]
pub enum Entry {
    /// A script file, as the user named it.
    Script(OsString),
    /// `-m module`
    Module(OsString),
    /// `-c code`
    Code(OsString),
    /// `-`: the program read from standard input.
    Stdin,
}

/// A Python program and its arguments.
#[derive(Debug, PartialEq, Eq)]
pub struct PythonRun {
    pub entry: Entry,
    pub args: Vec<OsString>,
}

impl PythonRun {
    /// The Python program the words name, when they name one: a first word that is a Python
    /// script by its name ([`is_script_name`]) or a directory with a `__main__.py` (which
    /// `python DIR` runs, as memray's `run` does), or `-m MODULE` / `-c CODE` (also joined,
    /// `-mMODULE`, as python takes them). None for any other program, which memtrace runs as it
    /// is (`memtrace run python3 x.py` included).
    pub fn parse(words: &[OsString]) -> Option<Result<PythonRun, RunError>> {
        let (first, rest) = words.split_first()?;
        let bytes = first.as_bytes();
        let (flag, joined) = match bytes {
            b"-" => {
                return Some(Ok(PythonRun {
                    entry: Entry::Stdin,
                    args: rest.to_vec(),
                }))
            }
            [b'-', f @ (b'm' | b'c'), tail @ ..] => (*f, tail),
            _ => {
                let path = Path::new(first);
                // An executable script named otherwise (`./tool`) whose #! line runs Python is a
                // Python run too (it ran as a native one, without a Python frame, and the hint
                // to add --python was refused).
                if !is_script_name(path)
                    && !path.join("__main__.py").is_file()
                    && !is_zip_archive(path)
                    && super::shebang::python_of(path).is_none()
                {
                    return None;
                }
                return Some(Ok(PythonRun {
                    entry: Entry::Script(first.clone()),
                    args: rest.to_vec(),
                }));
            }
        };
        let (value, args) = if joined.is_empty() {
            match rest.split_first() {
                Some((value, args)) => (value.clone(), args),
                None => {
                    let what = if flag == b'm' {
                        "-m needs a module name: memtrace run -m MODULE [ARGS]"
                    } else {
                        "-c needs the code to run: memtrace run -c CODE [ARGS]"
                    };
                    return Some(Err(RunError(what.into())));
                }
            }
        } else {
            (OsStr::from_bytes(joined).to_os_string(), rest)
        };
        let entry = if flag == b'm' {
            Entry::Module(value)
        } else {
            Entry::Code(value)
        };
        Some(Ok(PythonRun {
            entry,
            args: args.to_vec(),
        }))
    }

    /// Refuses a script that is not there, before anything starts.
    pub fn check(&self) -> Result<(), RunError> {
        match &self.entry {
            Entry::Script(s) if !Path::new(s).exists() => Err(RunError(format!(
                "no such script: {}",
                Path::new(s).display()
            ))),
            Entry::Module(m) if m.is_empty() => Err(RunError("the module name is empty".into())),
            _ => Ok(()),
        }
    }

    /// The interpreter's arguments: `script args`, `-m module args` or `-c code args`.
    pub fn interpreter_args(&self) -> Vec<OsString> {
        let mut out = Vec::with_capacity(self.args.len() + 2);
        match &self.entry {
            Entry::Script(s) => out.push(s.clone()),
            Entry::Module(m) => out.extend([OsString::from("-m"), m.clone()]),
            Entry::Code(c) => out.extend([OsString::from("-c"), c.clone()]),
            Entry::Stdin => out.push(OsString::from("-")),
        }
        out.extend(self.args.iter().cloned());
        out
    }

    /// The name in the default capture file: the script's stem, the module, or `c`.
    pub fn capture_stem(&self) -> String {
        match &self.entry {
            Entry::Script(s) => Path::new(s)
                .file_stem()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "script".into()),
            Entry::Module(m) => m.to_string_lossy().replace('/', "_"),
            Entry::Code(_) => "c".into(),
            Entry::Stdin => "stdin".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(w: &[&str]) -> Vec<OsString> {
        w.iter().map(OsString::from).collect()
    }

    fn parse(w: &[&str]) -> Option<PythonRun> {
        PythonRun::parse(&words(w)).map(|r| r.expect("valid"))
    }

    #[test]
    fn zip_applications_and_directories_with_a_main_are_python() {
        let run = parse(&["build/app.pyz", "x"]).expect("python");
        assert_eq!(run.interpreter_args(), words(&["build/app.pyz", "x"]));
        assert_eq!(run.capture_stem(), "app");
        let dir = std::env::temp_dir().join(format!("memtrace-pkg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let name = dir.to_str().expect("utf-8").to_owned();
        assert!(parse(&[&name]).is_none(), "a directory without __main__.py");
        std::fs::write(dir.join("__main__.py"), "").expect("write");
        let run = parse(&[&name, "y"]).expect("python");
        assert_eq!(run.entry, Entry::Script(name.clone().into()));
        std::fs::remove_dir_all(&dir).expect("clean");
        assert!(parse(&["tool.pyc"]).is_none());
    }

    #[test]
    fn scripts_modules_and_code_are_python() {
        let run = parse(&["dir/tool.py", "-q", "x"]).expect("python");
        assert_eq!(run.entry, Entry::Script("dir/tool.py".into()));
        assert_eq!(run.interpreter_args(), words(&["dir/tool.py", "-q", "x"]));
        assert_eq!(run.capture_stem(), "tool");

        let run = parse(&["-m", "http.server", "-m", "8000"]).expect("python");
        assert_eq!(
            run.interpreter_args(),
            words(&["-m", "http.server", "-m", "8000"])
        );
        assert_eq!(run.capture_stem(), "http.server");

        let run = parse(&["-c", "print(1)", "a"]).expect("python");
        assert_eq!(run.interpreter_args(), words(&["-c", "print(1)", "a"]));
        assert_eq!(run.capture_stem(), "c");

        let run = parse(&["-mjson.tool", "f"]).expect("python");
        assert_eq!(run.interpreter_args(), words(&["-m", "json.tool", "f"]));
        let run = parse(&["-cprint(2)"]).expect("python");
        assert_eq!(run.interpreter_args(), words(&["-c", "print(2)"]));
    }

    #[test]
    fn other_programs_are_not() {
        assert!(parse(&["python3", "x.py"]).is_none());
        assert!(parse(&["./a.out", "x.py"]).is_none());
        assert!(parse(&["ls", "-m"]).is_none());
        assert!(parse(&["script.pyc"]).is_none());
        assert!(parse(&["-x"]).is_none());
        assert!(parse(&[]).is_none());
    }

    #[test]
    fn a_flag_without_its_value_is_an_error() {
        for w in [&["-m"][..], &["-c"][..]] {
            let err = PythonRun::parse(&words(w))
                .expect("python")
                .expect_err("no value");
            assert!(err.0.starts_with(w[0]), "{}", err.0);
        }
    }

    #[test]
    fn a_missing_script_is_refused() {
        let run = parse(&["/no/such/dir/x.py"]).expect("python");
        assert_eq!(
            run.check().expect_err("missing").0,
            "no such script: /no/such/dir/x.py"
        );
    }
}
