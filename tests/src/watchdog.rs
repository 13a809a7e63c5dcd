//! Runs a command with a time limit: a hang (a deadlock of the tracked program, which is what
//! several tests exist to catch) fails its test with the command named, instead of holding the
//! whole suite until CI's own limit ends it without saying which test hung.

use std::io::Read;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Longer than any test's run on a loaded 2-core machine (the slowest take about a minute).
pub const LIMIT: Duration = Duration::from_secs(300);

/// Like `Command::output`, but kills the command and every process below it, and panics, if it
/// has not ended within `limit`.
pub fn output_within(cmd: &mut Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd:?} does not start: {e}"));
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let start = Instant::now();
    let status = loop {
        match child.try_wait().expect("wait for the command") {
            Some(status) => break status,
            None if start.elapsed() > limit => {
                let killed = kill_tree(&mut child);
                panic!(
                    "{cmd:?} hung: not ended after {:?}; killed it and {killed} processes below it",
                    limit
                );
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

/// `Command::output` under the watchdog's `LIMIT`, for the tests' own commands. As with
/// `output`, stdin is /dev/null and a command that does not start fails the test.
pub trait Watched {
    fn output_watched(&mut self) -> Output;
}

impl Watched for Command {
    fn output_watched(&mut self) -> Output {
        output_within(self.stdin(Stdio::null()), LIMIT)
    }
}

/// Reads a pipe to its end in a thread of its own (so that a full pipe never blocks the child).
fn drain(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_end(&mut bytes);
        }
        bytes
    })
}

/// SIGKILLs `child` and its descendants (found through /proc before any is killed); how many
/// descendants there were.
fn kill_tree(child: &mut Child) -> usize {
    let below = descendants(child.id());
    let _ = child.kill();
    for pid in &below {
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .stderr(Stdio::null())
            .status();
    }
    let _ = child.wait();
    below.len()
}

/// Every process whose chain of parents reaches `root`.
fn descendants(root: u32) -> Vec<u32> {
    let parents: Vec<(u32, u32)> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            // The parent is the second field after the command name's closing parenthesis.
            let rest = &stat[stat.rfind(')')? + 2..];
            let ppid: u32 = rest.split(' ').nth(1)?.parse().ok()?;
            Some((pid, ppid))
        })
        .collect();
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(parents.iter().filter(|p| p.1 == parent).map(|p| p.0));
        i += 1;
    }
    found.remove(0);
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hung_command_fails_and_is_killed_with_its_children() {
        // A shell with a child that holds the pipe: both must go, or the test waits 30 s.
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "sleep 30 & sleep 30; :"]);
        let hung = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            output_within(&mut cmd, Duration::from_millis(300))
        }));
        let why = hung.expect_err("the hang is a failure");
        let why = why
            .downcast_ref::<String>()
            .map(String::as_str)
            .unwrap_or("");
        assert!(
            why.contains("hung") && why.contains("2 processes below"),
            "{why}"
        );
    }

    #[test]
    fn a_command_that_ends_gives_its_output() {
        let out = output_within(
            Command::new("sh").args(["-c", "echo out; echo err >&2; exit 3"]),
            LIMIT,
        );
        assert_eq!(out.stdout, b"out\n");
        assert_eq!(out.stderr, b"err\n");
        assert_eq!(out.status.code(), Some(3));
    }

    #[test]
    fn a_watched_command_reads_an_empty_stdin() {
        // `cat` ends at once on /dev/null; with an inherited stdin it could wait for ever.
        let out = Command::new("sh")
            .args(["-c", "cat; echo done"])
            .output_watched();
        assert_eq!(out.stdout, b"done\n");
        assert!(out.status.success());
    }
}
