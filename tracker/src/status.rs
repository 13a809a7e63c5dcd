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
