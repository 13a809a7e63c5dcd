//! A process's (or a thread's) /proc stat file, field by field as proc(5) numbers them. The
//! command, field 2, is in parentheses and may hold spaces and parentheses: the fields after
//! it start after the last closing one.

/// Field `number` (3: the state, 4: the parent, 22: the start time...) of the stat file at
/// `path` (`/proc/PID/stat`, `/proc/PID/task/TID/stat`); None when it cannot be read.
pub fn field(path: &str, number: usize) -> Option<String> {
    let stat = std::fs::read_to_string(path).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    after
        .split_whitespace()
        .nth(number.checked_sub(3)?)
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    #[test]
    fn this_process_s_fields() {
        // The calling thread runs (its process's main thread may wait).
        assert_eq!(
            super::field("/proc/thread-self/stat", 3).as_deref(),
            Some("R")
        );
        let me = format!("/proc/{}/stat", std::process::id());
        let parent = super::field(&me, 4).and_then(|p| p.parse::<u32>().ok());
        assert_eq!(parent, Some(std::os::unix::process::parent_id()));
        assert!(super::field(&me, 22).is_some_and(|t| t.parse::<u64>().is_ok()));
        assert_eq!(super::field(&me, 2), None);
    }
}
