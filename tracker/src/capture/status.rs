//! The status file, where the tracker tells `memtrace run` why it could not record. It lives in
//! memtrace's private run directory; it is still opened defensively (no symbolic link followed,
//! never blocking on a FIFO, written only when it is a regular file), so that nothing planted
//! there can hang or redirect the tracked program.

use crate::sys;

/// Appends `msg` and a newline to the status file at `path`; gives up silently otherwise.
pub fn append(path: &[u8], msg: &[u8]) {
    let mut z = path.to_vec();
    z.push(0);
    let flags = libc::O_WRONLY
        | libc::O_CREAT
        | libc::O_APPEND
        | libc::O_NOFOLLOW
        | libc::O_NONBLOCK
        | libc::O_CLOEXEC;
    let Ok(fd) = sys::open(&z, flags, 0o600) else {
        return;
    };
    if is_regular(fd) {
        let mut line = msg.to_vec();
        line.push(b'\n');
        let _ = sys::write_all(fd, &line);
    }
    sys::close(fd);
}

fn is_regular(fd: libc::c_int) -> bool {
    // SAFETY: a zeroed stat is a valid out-buffer for fstat on an open descriptor.
    let mut st: libc::stat = unsafe { core::mem::zeroed() };
    // SAFETY: fd is open and st is writable.
    let ok = unsafe { libc::fstat(fd, &mut st) } == 0;
    ok && st.st_mode & libc::S_IFMT == libc::S_IFREG
}

#[cfg(test)]
mod tests {
    use super::append;

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "memtrace-status-test-{}-{name}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).expect("scratch dir");
        dir
    }

    #[test]
    fn appends_lines_to_a_regular_file_it_creates() {
        let dir = scratch("regular");
        let path = dir.join("status");
        let bytes = path.to_str().expect("utf-8").as_bytes();
        append(bytes, b"first");
        append(bytes, b"second");
        assert_eq!(
            std::fs::read_to_string(&path).ok().as_deref(),
            Some("first\nsecond\n")
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn neither_waits_on_a_fifo_nor_follows_a_link() {
        let dir = scratch("planted");
        let fifo = dir.join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo runs");
        assert!(made.success());
        // No reader: a blocking open would wait forever.
        append(fifo.to_str().expect("utf-8").as_bytes(), b"lost");
        let target = dir.join("target");
        std::fs::write(&target, "kept\n").expect("write");
        let link = dir.join("link");
        std::os::unix::fs::symlink(&target, &link).expect("symlink");
        append(link.to_str().expect("utf-8").as_bytes(), b"lost");
        assert_eq!(
            std::fs::read_to_string(&target).ok().as_deref(),
            Some("kept\n")
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
