//! The closing hint of a run whose program exec'd (`env`, a wrapper script, a launcher): each
//! program has its own capture, and the one the user meant is usually the last. One line says
//! which captures there are; the usual hint then names the last.

use memtrace_reporter::capture::exec;
use std::path::{Path, PathBuf};

/// Prints the line about the execs, if the program exec'd, and returns the capture the final
/// hint is about (the last program's), as a path and as shown.
pub fn announce(capture: &Path, shown: &Path, cwd: &Path) -> (PathBuf, PathBuf) {
    let chain = exec::chain(capture);
    let show = |p: &Path| -> PathBuf {
        p.strip_prefix(cwd)
            .map(Path::to_path_buf)
            .unwrap_or_else(|_| p.to_path_buf())
    };
    let Some((last, last_exec)) = chain.last().filter(|_| chain.len() > 1) else {
        // No exec followed; but an exec into a program that writes no capture is worth a word.
        if let Some((_, Some(e))) = chain.first() {
            crate::say!("{}", untraced(e));
        }
        return (capture.to_path_buf(), shown.to_path_buf());
    };
    let command = chain[chain.len() - 2]
        .1
        .as_ref()
        .map(|e| memtrace_reporter::family::short_command(&e.command()))
        .unwrap_or_default();
    let execs = chain.len() - 1;
    let path = if execs <= 3 {
        chain
            .iter()
            .map(|(p, _)| show(p).display().to_string())
            .collect::<Vec<_>>()
            .join(" -> ")
    } else {
        format!(
            "{} -> ... -> {}",
            show(capture).display(),
            show(last).display()
        )
    };
    let times = if execs == 1 {
        String::new()
    } else {
        format!(" {execs} times")
    };
    crate::say!(
        "memtrace: the program exec'd{times}, one capture per program: {path} (last: {command})"
    );
    if let Some(e) = last_exec {
        crate::say!("{}", untraced(e));
    }
    (last.clone(), show(last))
}

/// The line for an exec whose program wrote no capture.
fn untraced(e: &exec::Exec) -> String {
    format!(
        "memtrace: the program exec'd {}, which wrote no capture (statically linked, set-user-ID, 32-bit, built with a sanitizer, out of the tracker's reach after a chroot, it cleared LD_PRELOAD, its arguments left no room for the tracker's variables, or no capture file could be made)",
        memtrace_reporter::family::short_command(&e.command())
    )
}
