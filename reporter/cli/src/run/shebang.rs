//! The `#!` line of an executable script: `memtrace run ./tool.py` runs the interpreter the
//! script names, as `./tool.py` alone would (a virtual environment's python, a given version,
//! with its options), when that interpreter is a Python.

use std::ffi::OsString;
use std::io::Read;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

/// The kernel reads at most this much of a `#!` line (BINPRM_BUF_SIZE).
const LINE_MAX: usize = 256;

/// The interpreter a script's `#!` line names and the options it passes before the script.
#[derive(Debug, PartialEq, Eq)]
pub struct Shebang {
    /// A path, or for `#!/usr/bin/env NAME` the name looked up on PATH.
    pub interpreter: OsString,
    pub options: Vec<OsString>,
}

/// The Python interpreter `script`'s `#!` line names, when the script is executable (so that
/// running it by its path would use that line) and the line names a `python*` program.
pub fn python_of(script: &Path) -> Option<Shebang> {
    of_executable(script).filter(runs_python)
}

/// Whether `script` is an executable file whose `#!` line runs something other than Python
/// (bash, node, `env -S uv run --script`): running it by its path runs that, not Python.
pub fn runs_another_interpreter(script: &Path) -> bool {
    of_executable(script).is_some_and(|s| !runs_python(&s))
}

fn runs_python(shebang: &Shebang) -> bool {
    Path::new(&shebang.interpreter)
        .file_name()
        .is_some_and(|name| memtrace_format::exec::interpreter_name(name.as_bytes()))
}

/// The `#!` line of `script` when it is an executable file that has one.
fn of_executable(script: &Path) -> Option<Shebang> {
    if !executable(script) {
        return None;
    }
    let mut head = [0u8; LINE_MAX];
    let mut file = std::fs::File::open(script).ok()?;
    let mut n = 0;
    while n < head.len() {
        match file.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(_) => return None,
        }
    }
    parse(&head[..n])
}

fn executable(path: &Path) -> bool {
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: access(2) with a NUL-terminated path.
    unsafe { libc::access(c.as_ptr(), libc::X_OK) == 0 }
}

/// The interpreter and options of a `#!` line, as Linux splits it (the interpreter, then the
/// rest of the line as one argument), with `env NAME` and `env -S NAME ARGS...` resolved to
/// NAME and its arguments.
fn parse(head: &[u8]) -> Option<Shebang> {
    let line = head.strip_prefix(b"#!")?;
    let end = line.iter().position(|&b| b == b'\n').unwrap_or(line.len());
    let line = trim(&line[..end]);
    let split = line.iter().position(|b| b.is_ascii_whitespace());
    let (interpreter, rest) = match split {
        Some(i) => (&line[..i], trim(&line[i..])),
        None => (line, &line[..0]),
    };
    if interpreter.is_empty() {
        return None;
    }
    let words = |b: &[u8]| -> Vec<OsString> {
        b.split(|c| c.is_ascii_whitespace())
            .filter(|w| !w.is_empty())
            .map(|w| OsString::from_vec(w.to_vec()))
            .collect()
    };
    if Path::new(std::ffi::OsStr::from_bytes(interpreter)).file_name()
        == Some(std::ffi::OsStr::new("env"))
    {
        // `env NAME` (one argument, as the kernel passes it) or `env -S NAME ARGS...`.
        let mut args = match rest.strip_prefix(b"-S") {
            Some(split) => words(split),
            None if rest.contains(&b' ') || rest.contains(&b'\t') => return None,
            None => words(rest),
        };
        if args.is_empty() {
            return None;
        }
        let name = args.remove(0);
        return Some(Shebang {
            interpreter: name,
            options: args,
        });
    }
    Some(Shebang {
        interpreter: OsString::from_vec(interpreter.to_vec()),
        options: if rest.is_empty() {
            Vec::new()
        } else {
            vec![OsString::from_vec(rest.to_vec())]
        },
    })
}

fn trim(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &b[start..end.max(start)]
}

/// The option among `options` (Python's) that keeps the start-up hook from loading: `-I`
/// (isolated: no PYTHONPATH), `-E` (no PYTHON* variables) or `-S` (no `site`), alone or among
/// other one-letter flags (`-IB`).
pub fn hides_the_hook(options: &[OsString]) -> Option<String> {
    for word in options {
        for w in word.as_bytes().split(|c| c.is_ascii_whitespace()) {
            let Some(flags) = w.strip_prefix(b"-").filter(|f| !f.starts_with(b"-")) else {
                continue;
            };
            for &c in flags {
                match c {
                    b'I' | b'E' | b'S' => return Some(format!("-{}", c as char)),
                    // The rest of the word is the option's argument.
                    b'X' | b'W' | b'c' | b'm' => break,
                    _ => {}
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sb(interpreter: &str, options: &[&str]) -> Option<Shebang> {
        Some(Shebang {
            interpreter: interpreter.into(),
            options: options.iter().map(OsString::from).collect(),
        })
    }

    #[test]
    fn lines_split_as_the_kernel_and_env_do() {
        assert_eq!(parse(b"#!/v/bin/python\nx"), sb("/v/bin/python", &[]));
        assert_eq!(
            parse(b"#! /usr/bin/python3 -X dev \n"),
            sb("/usr/bin/python3", &["-X dev"])
        );
        assert_eq!(parse(b"#!/usr/bin/env python3\n"), sb("python3", &[]));
        assert_eq!(
            parse(b"#!/usr/bin/env -S python3.12 -X dev\n"),
            sb("python3.12", &["-X", "dev"])
        );
        // `env` given "python3 -u" as one argument finds no such program.
        assert_eq!(parse(b"#!/usr/bin/env python3 -u\n"), None);
        assert_eq!(parse(b"import sys\n"), None);
        assert_eq!(parse(b"#!\n"), None);
        assert_eq!(parse(b"#!/usr/bin/python3"), sb("/usr/bin/python3", &[]));
    }

    #[test]
    fn isolating_flags_are_found_among_others() {
        let opts = |w: &[&str]| w.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(hides_the_hook(&opts(&["-I"])), Some("-I".into()));
        assert_eq!(hides_the_hook(&opts(&["-uS"])), Some("-S".into()));
        assert_eq!(hides_the_hook(&opts(&["-B -E"])), Some("-E".into()));
        assert_eq!(hides_the_hook(&opts(&["-X", "dev"])), None);
        assert_eq!(hides_the_hook(&opts(&["-Xfrozen_modules=IES"])), None);
        assert_eq!(hides_the_hook(&opts(&["-u"])), None);
    }
}
