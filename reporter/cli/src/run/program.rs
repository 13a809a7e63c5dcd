//! Finding the program to run and checking that the tracker can be preloaded into it.

use super::{elf, RunError};
use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The program's path: as given when it contains a slash, else found on PATH.
pub fn resolve(program: &OsStr) -> Result<PathBuf, RunError> {
    let given = Path::new(program);
    if given.as_os_str().is_empty() {
        return Err(RunError("the program name is empty".into()));
    }
    if program.to_string_lossy().contains('/') {
        if !given.exists() {
            return Err(RunError(format!("{}: no such file", given.display())));
        }
        if given.is_dir() {
            return Err(RunError(format!(
                "{} is a directory, not a program",
                given.display()
            )));
        }
        if !is_executable(given) {
            return Err(RunError(format!(
                "{}: permission denied (not executable)",
                given.display()
            )));
        }
        return Ok(given.to_path_buf());
    }
    on_path(given).ok_or_else(|| {
        // The program's words take hyphens (-m, -c, the program's own options), so a misspelt
        // option of memtrace's ends up here: name it as one.
        if program.as_encoded_bytes().starts_with(b"-") {
            let hint = match closest_option(&program.to_string_lossy()) {
                Some(o) => format!("did you mean '{o}'?"),
                None => "see memtrace run --help".to_string(),
            };
            RunError(format!(
                "{}: not an option of memtrace run ({hint}), nor a program",
                given.display()
            ))
        } else {
            RunError(format!("{}: command not found", given.display()))
        }
    })
}

/// The option of `memtrace run` closest to a misspelt `--name` (as clap suggests for the other
/// commands, whose words are not a program's).
fn closest_option(word: &str) -> Option<String> {
    use clap::Args;
    let name = word.split('=').next()?.strip_prefix("--")?;
    let run = super::RunArgs::augment_args(clap::Command::new("run"));
    run.get_arguments()
        .filter_map(|a| a.get_long())
        .map(|long| (strsim::jaro_winkler(name, long), long))
        .filter(|&(score, _)| score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, long)| format!("--{long}"))
}

/// The first executable file called `name` in the directories of $PATH.
pub fn on_path(name: &Path) -> Option<PathBuf> {
    // Without PATH, as execvp(3) and the shells: glibc's default search path.
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/bin:/usr/bin".into());
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file() && is_executable(candidate))
}

fn is_executable(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.permissions().mode() & 0o111 != 0)
}

/// Refuses statically linked executables, into which nothing can be preloaded, and those of
/// another ELF class or machine than the tracker's (a 32-bit program), whose loader cannot
/// load it.
pub fn check_traceable(path: &Path) -> Result<(), RunError> {
    let head = elf::head(path);
    if memtrace_format::exec::fits_this_build(&head) == Some(false) {
        return Err(RunError(format!(
            "{} is not a 64-bit {} program: memtrace's tracker cannot be loaded into it",
            path.display(),
            std::env::consts::ARCH
        )));
    }
    match elf::is_dynamic(&head) {
        Some(false) => Err(RunError(format!(
            "{} is statically linked: memtrace can only trace dynamically linked programs",
            path.display()
        ))),
        Some(true) => match elf::sanitizer(path) {
            // Its runtime must be the first object loaded, and the tracker, preloaded, comes
            // before it: AddressSanitizer refuses to start, ThreadSanitizer crashes.
            Some(name) => Err(RunError(format!(
                "{} is built with {name}, whose runtime must be loaded before any other library: memtrace cannot run it (build it without the sanitizer to track its memory)",
                path.display()
            ))),
            None => Ok(()),
        },
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_programs_are_reported() {
        let err = resolve(OsStr::new("no-such-program-xyz")).expect_err("not found");
        assert!(err.0.contains("command not found"));
        let err = resolve(OsStr::new("./no/such/file")).expect_err("not found");
        assert!(err.0.contains("no such file"));
    }

    #[test]
    fn a_misspelt_option_is_named_as_one() {
        let err = resolve(OsStr::new("--nativ")).expect_err("not an option");
        assert_eq!(
            err.0,
            "--nativ: not an option of memtrace run (did you mean '--native'?), nor a program"
        );
        let err = resolve(OsStr::new("--follow-forks")).expect_err("not an option");
        assert!(err.0.contains("did you mean '--follow-fork'?"), "{}", err.0);
        let err = resolve(OsStr::new("--no-object-types")).expect_err("not an option");
        assert_eq!(
            err.0,
            "--no-object-types: not an option of memtrace run (see memtrace run --help), nor a program"
        );
    }
}
