//! `memtrace run --live`: the program runs with its output in a file (named in the view) while
//! the live view follows its capture in the terminal; its exit status passes through as in a
//! plain run.

use super::RunError;
use crate::tui::live::{self, LiveSetup};
use memtrace_reporter::analysis::live::Live;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long the tracker may take to create the capture before the view gives up waiting.
const CAPTURE_PATIENCE: Duration = Duration::from_secs(30);

/// The file the program's output goes to until it has a pid: the capture's name with `.out`
/// added, for a template with `{pid}` in it (the default capture) a name of this memtrace's
/// own, which [`settle_output`] renames once the program's pid is known.
pub fn output_path(template: &Path) -> PathBuf {
    let text = template.to_string_lossy();
    if !text.contains("{pid}") {
        return PathBuf::from(format!("{text}.out"));
    }
    let name = text.replace(".{pid}", "").replace("{pid}", "");
    PathBuf::from(format!("{name}.out.{}.part", std::process::id()))
}

/// The output's name once the capture's is known (`capture` with `.out` added): the file made
/// by [`output_path`] is renamed to it, unless another file has that name and `force` is not
/// given (then it keeps the name it has). Returns where the output is.
pub fn settle_output(made: &Path, capture: &Path, force: bool) -> PathBuf {
    let mut wanted = capture.as_os_str().to_os_string();
    wanted.push(".out");
    let wanted = PathBuf::from(wanted);
    if made == wanted {
        return wanted;
    }
    // A link, then the old name removed: never over a file without -f.
    let moved = if force {
        std::fs::rename(made, &wanted).is_ok()
    } else {
        std::fs::hard_link(made, &wanted).is_ok() && std::fs::remove_file(made).is_ok()
    };
    if moved {
        wanted
    } else {
        made.to_path_buf()
    }
}

/// Sends the program's stdout and stderr to `out` (created; an existing file is overwritten
/// only with `force`, as the capture is) and gives it no terminal input: the terminal is the
/// view's.
pub fn redirect(cmd: &mut Command, out: &Path, force: bool) -> Result<(), RunError> {
    if !force && std::fs::symlink_metadata(out).is_ok() {
        return Err(RunError(format!(
            "{} already exists (the program's output goes there; use -f to overwrite it)",
            out.display()
        )));
    }
    let file = File::create(out).map_err(|e| {
        RunError(format!(
            "cannot write the program's output to {}: {e}",
            out.display()
        ))
    })?;
    let err = file.try_clone().map_err(|e| {
        RunError(format!(
            "cannot write the program's output to {}: {e}",
            out.display()
        ))
    })?;
    cmd.stdin(Stdio::null()).stdout(file).stderr(err);
    Ok(())
}

/// Shows the live view of `capture` while the program `pid` runs, until the user quits (the
/// program then goes on; memtrace waits for it as in a plain run).
pub fn view(capture: &Path, pid: u32, command: String, out: &Path) -> Result<(), RunError> {
    let start = Instant::now();
    let live = loop {
        // Only the program's own: under -f the file there may still be an earlier capture.
        let opened = Live::open(capture, false).and_then(|live| {
            let writer = live.follower().header.pid;
            if writer == pid {
                Ok(live)
            } else {
                Err(format!(
                    "{} is another process's capture (pid {writer})",
                    capture.display()
                ))
            }
        });
        match opened {
            Ok(live) => break live,
            Err(e) => {
                if let Some(how) = ended(pid) {
                    return Err(RunError(format!(
                        "the program {how} before its capture could be read: {e}"
                    )));
                }
                if start.elapsed() > CAPTURE_PATIENCE {
                    return Err(RunError(format!("no capture to show: {e}")));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    };
    let setup = LiveSetup {
        command,
        note: Some(format!("output: {}", out.display())),
        quit_on_hangup: false,
        ended: Box::new(move |_| ended(pid)),
    };
    live::run(live, setup).map_err(|e| RunError(format!("the live view failed: {e}")))?;
    // Quit before the program ended: the terminal is the shell's again, and would look hung.
    if ended(pid).is_none() {
        crate::say!(
            "memtrace: the view is closed; the program goes on (its output goes to {}) and memtrace waits for it: Ctrl-C stops it",
            out.display()
        );
    }
    Ok(())
}

/// How the child `pid` ended, if it has (left unreaped for the run's own wait).
fn ended(pid: u32) -> Option<String> {
    // Without waiting, leaving it unreaped (WNOWAIT).
    let info =
        super::waiting::wait_child(pid, libc::WEXITED | libc::WNOHANG | libc::WNOWAIT).ok()?;
    // SAFETY: si_pid and si_status are set by waitid for a child that changed state.
    let (who, status) = unsafe { (info.si_pid(), info.si_status()) };
    if who == 0 {
        return None;
    }
    Some(match info.si_code {
        libc::CLD_EXITED => format!("exited with status {status}"),
        _ => format!("was killed by signal {status}"),
    })
}
