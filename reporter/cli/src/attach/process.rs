//! What /proc says about a process to attach to: whether it lives, runs or is stopped, who
//! owns and traces it, why ptrace refuses it, and which of its threads makes the calls.

use super::target;
use std::path::Path;

/// Whether `pid` exists (a zombie too).
pub fn alive(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Whether process `pid` has not ended: a zombie (ended, not yet reaped by its parent) has,
/// and its files under /proc/PID/root are gone with it. A main thread that ended (a zombie
/// thread) does not end a process whose other threads run.
pub fn not_ended(pid: i32) -> bool {
    let thread = injection_thread(pid);
    alive(pid)
        && !matches!(
            state_of(&format!("/proc/{pid}/task/{thread}/stat")),
            Some('Z' | 'X') | None
        )
}

/// The process's state letter from /proc/PID/stat (R, S, D, T stopped, t traced, Z zombie...).
fn state(pid: i32) -> Option<char> {
    state_of(&format!("/proc/{pid}/stat"))
}

/// The state letter of the stat file `path` (a process's or a thread's).
fn state_of(path: &str) -> Option<char> {
    crate::proc_stat::field(path, 3)?.chars().next()
}

/// Why `pid` cannot take part in an attach or detach now, from its state: gone (a zombie) or
/// stopped. The line to show.
pub fn not_running(pid: i32, detach: bool) -> Option<String> {
    match state(pid)? {
        // A main thread that ended with pthread_exit while others run: a live process.
        'Z' if injection_thread(pid) != pid => None,
        'Z' | 'X' => Some(format!(
            "process {pid} has exited (a zombie: its parent has not waited for it yet)"
        )),
        'T' | 't' if detach => Some(format!(
            "process {pid} is stopped: it stops tracking when it runs again (kill -CONT {pid})"
        )),
        // Stopped by its tracer (a debugger, strace): that one has to let it go.
        't' if traced_by(pid).is_some() => traced_by(pid),
        'T' | 't' => Some(format!(
            "process {pid} is stopped (kill -CONT {pid} first): the tracker is loaded by a call the process makes"
        )),
        _ => None,
    }
}

/// The uid owning `pid`.
pub fn owner(pid: i32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The line for a process that another tracer (strace, gdb) holds, if one does.
fn traced_by(pid: i32) -> Option<String> {
    let tracer = target::tracer_of(pid)?;
    let name = std::fs::read_to_string(format!("/proc/{tracer}/comm")).unwrap_or_default();
    Some(format!(
        "cannot attach to process {pid}: it is already traced by process {tracer} ({}); a process has one tracer at a time",
        name.trim()
    ))
}

/// Why ptrace was refused, and what to change.
pub fn not_permitted(pid: i32) -> String {
    // A process has one tracer (strace, gdb, another memtrace attaching).
    if let Some(why) = traced_by(pid) {
        return why;
    }
    // SAFETY: getuid has no preconditions.
    let me = unsafe { libc::getuid() };
    if owner(pid).is_some_and(|u| u != me) && me != 0 {
        return format!(
            "cannot attach to process {pid}: it belongs to another user (run memtrace as that user, or as root)"
        );
    }
    let scope = std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok());
    match scope {
        Some(s) if s >= 1 && me != 0 => format!(
            "cannot attach to process {pid}: ptrace is restricted (kernel.yama.ptrace_scope = {s}); run as root, or allow it with: sysctl kernel.yama.ptrace_scope=0"
        ),
        Some(3) => format!(
            "cannot attach to process {pid}: ptrace is disabled (kernel.yama.ptrace_scope = 3, until reboot)"
        ),
        _ => format!(
            "cannot attach to process {pid}: ptrace is not permitted here (a container without CAP_SYS_PTRACE, a seccomp policy, or a process that made itself non-dumpable); give memtrace CAP_SYS_PTRACE (docker run --cap-add SYS_PTRACE)"
        ),
    }
}

/// The thread that makes the calls: the main thread, unless it ended (pthread_exit) while
/// others run on, then the first of those.
pub fn injection_thread(pid: i32) -> i32 {
    if state(pid) != Some('Z') {
        return pid;
    }
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return pid;
    };
    let mut tids: Vec<i32> = tasks
        .flatten()
        .filter_map(|t| t.file_name().to_str()?.parse().ok())
        .collect();
    tids.sort_unstable();
    tids.into_iter()
        .find(|&t| {
            !matches!(
                state_of(&format!("/proc/{pid}/task/{t}/stat")),
                Some('Z' | 'X') | None
            )
        })
        .unwrap_or(pid)
}

/// Bytes of stack below `sp` that thread `tid` of its process can still use; None when
/// /proc does not say. The main thread's stack (`[stack]`) grows down to its size limit
/// (RLIMIT_STACK, /proc/TID/limits) and to the kernel's guard gap above the mapping below it;
/// any other thread's is its anonymous mapping. A stack inside the heap or a file's mapping (a
/// coroutine's, taken from malloc or a static array) has 0: what lies below it is the
/// program's data (the whole heap below was counted as stack, and an attach wrote over 1,595
/// bytes of a block there).
pub fn stack_room(tid: i32, sp: u64) -> Option<u64> {
    let maps = std::fs::read_to_string(format!("/proc/{tid}/maps")).ok()?;
    let mut below_end = 0u64;
    for line in maps.lines() {
        let (start, end) = target::maps_range(line.split_whitespace().next()?)?;
        if !(start..end).contains(&sp) {
            if end <= sp {
                below_end = end;
            }
            continue;
        }
        if !line.ends_with("[stack]") {
            // Anonymous: five fields, no name (a thread's stack, one mapped for a coroutine).
            let anonymous = line.split_whitespace().count() == 5;
            return Some(if anonymous { sp - start } else { 0 });
        }
        /// The kernel's default stack_guard_gap: 256 pages.
        const GUARD_GAP: u64 = 256 * 4096;
        let lowest_by_limit = match stack_limit(tid) {
            Some(limit) => end.saturating_sub(limit),
            None => 0,
        };
        let lowest = lowest_by_limit.max(below_end.saturating_add(GUARD_GAP));
        return Some(sp.saturating_sub(lowest));
    }
    None
}

/// The soft stack size limit of `tid`'s process in bytes (None: unlimited or unknown).
fn stack_limit(tid: i32) -> Option<u64> {
    let limits = std::fs::read_to_string(format!("/proc/{tid}/limits")).ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max stack size"))?;
    line.trim_start_matches("Max stack size")
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}
