//! The cgroup v2 memory limit the process runs under (`memory.max` of its cgroup or of the
//! nearest ancestor that sets one), recorded in the capture's settings record so that reports
//! can show how close the program came to it. Read once at start, a cold path.
//!
//! MEMTRACE_CGROUP_ROOT replaces the cgroup v2 mount point, /sys/fs/cgroup (tests: a machine
//! whose memory controller is not on cgroup v2 cannot set a limit there).

/// The smallest `memory.max` on the way from the process's cgroup up to the root; None when
/// none is set (all `max`) or there is no cgroup v2 hierarchy.
pub fn memory_limit(root_override: Option<&[u8]>) -> Option<u64> {
    let mut buf = [0u8; 4096];
    let n = crate::sys::read_file(b"/proc/self/cgroup\0", &mut buf);
    // The v2 line: "0::/path".
    let line = buf[..n]
        .split(|&b| b == b'\n')
        .find(|l| l.starts_with(b"0::"))?;
    let mut path: Vec<u8> = line[3..].to_vec();
    let root: &[u8] = root_override.unwrap_or(b"/sys/fs/cgroup");
    let mut limit: Option<u64> = None;
    loop {
        let mut file = root.to_vec();
        file.extend_from_slice(&path);
        if !file.ends_with(b"/") {
            file.push(b'/');
        }
        file.extend_from_slice(b"memory.max\0");
        let mut v = [0u8; 64];
        let n = crate::sys::read_file(&file, &mut v);
        let text = std::str::from_utf8(&v[..n]).unwrap_or("").trim();
        if let Ok(bytes) = text.parse::<u64>() {
            limit = Some(limit.map_or(bytes, |l| l.min(bytes)));
        }
        match path.iter().rposition(|&b| b == b'/') {
            Some(0) if path.len() > 1 => path.truncate(1),
            Some(i) if i > 0 => path.truncate(i),
            _ => break,
        }
    }
    limit
}
