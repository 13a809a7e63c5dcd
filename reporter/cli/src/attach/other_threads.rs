//! Whether another thread of the process holds the allocator's lock while it waits in the
//! kernel: the injected calls (dlopen, the tracker's start) allocate, and would wait for that
//! lock; a holder that itself waits for the main thread (malloc_stats writing to a pipe the
//! main thread drains) then never lets go, and the program hung for good under the attach.
//!
//! Read without stopping the threads: /proc/PID/task/TID/syscall gives a thread waiting in a
//! system call, its stack pointer and instruction; the C library's unwind tables give its real
//! callers inside the library (the allocator calls nothing outside it). A wait on a futex
//! under the allocator is a wait for its lock (held by no one of interest: its holder is seen
//! itself); any other system call there (a write, an mmap) may be made with the lock held.

use super::libc_frames::LibcFrames;
use super::ptrace::read_memory;

/// Bytes of a thread's stack read for its frames (fprintf alone takes 8 KiB).
const STACK_READ: usize = 32 << 10;

/// Whether a thread of process `pid` other than `main` waits in a system call, other than a
/// futex wait, with an allocator function (`allocator`, ranges in the process) among its
/// callers. False where it cannot tell (a thread not in a system call, tables that cannot walk
/// its frames, /proc not readable).
pub fn one_waits_under_the_allocator(
    pid: i32,
    main: i32,
    frames: &LibcFrames,
    allocator: &[(u64, u64)],
) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.flatten().any(|task| {
        let Some(tid) = task
            .file_name()
            .to_str()
            .and_then(|t| t.parse::<i32>().ok())
        else {
            return false;
        };
        if tid == main {
            return false;
        }
        let Some((nr, sp, pc)) = waiting(pid, tid) else {
            return false;
        };
        if nr == libc::SYS_futex {
            return false;
        }
        let mut stack = vec![0u8; STACK_READ];
        let n = read_memory(pid, sp, &mut stack);
        let read = |addr: u64| {
            let at = usize::try_from(addr.checked_sub(sp)?).ok()?;
            let w = stack[..n].get(at..at.checked_add(8)?)?;
            Some(u64::from_ne_bytes(w.try_into().ok()?))
        };
        frames.callers((pc, sp, None), read).is_some_and(|callers| {
            callers
                .iter()
                .any(|&r| allocator.iter().any(|&(s, e)| s <= r && r < e))
        })
    })
}

/// The system call thread `tid` waits in, its stack pointer and its instruction, from
/// /proc/PID/task/TID/syscall ("NR ARG1 .. ARG6 SP PC", hexadecimal but the number); None when
/// it runs, or is not in a system call.
fn waiting(pid: i32, tid: i32) -> Option<(i64, u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/syscall")).ok()?;
    let f: Vec<&str> = text.split_whitespace().collect();
    if f.len() != 9 {
        return None;
    }
    let nr = f[0].parse::<i64>().ok().filter(|&n| n >= 0)?;
    let hex = |s: &str| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok();
    Some((nr, hex(f[7])?, hex(f[8])?))
}

#[cfg(test)]
mod tests {
    use super::waiting;
    use std::io::Read;

    fn tasks() -> Vec<i32> {
        std::fs::read_dir("/proc/self/task")
            .expect("tasks")
            .flatten()
            .filter_map(|t| t.file_name().to_str().and_then(|n| n.parse().ok()))
            .collect()
    }

    #[test]
    fn a_thread_waiting_in_a_system_call_is_read_from_proc() {
        let pid = std::process::id() as i32;
        let before = tasks();
        let (mut ours, mut theirs) = std::os::unix::net::UnixStream::pair().expect("pair");
        // Waits in read until the test writes.
        let t = std::thread::spawn(move || {
            let mut b = [0u8; 1];
            let _ = theirs.read(&mut b);
        });
        let mut seen = None;
        for _ in 0..500 {
            let new: Vec<i32> = tasks()
                .into_iter()
                .filter(|t| !before.contains(t))
                .collect();
            if let Some(found) = new.iter().find_map(|&tid| waiting(pid, tid)) {
                seen = Some(found);
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        std::io::Write::write_all(&mut ours, b"x").expect("write");
        t.join().expect("join");
        let (nr, sp, pc) = seen.expect("the thread seen waiting");
        assert!(nr == libc::SYS_read || nr == libc::SYS_recvfrom, "{nr}");
        assert!(sp != 0 && pc != 0);
    }
}
