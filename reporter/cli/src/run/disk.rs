//! After a run whose program failed: whether the capture's file system is full, which may be
//! why (the capture took the space the program needed), said in one line.

use std::path::Path;

/// (bytes free to an unprivileged user, the file system's size) of the file system of `path`.
fn space(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c` is NUL-terminated; statvfs writes the struct it is given, read only on 0.
    let st = unsafe {
        if libc::statvfs(c.as_ptr(), st.as_mut_ptr()) != 0 {
            return None;
        }
        st.assume_init()
    };
    let unit = st.f_frsize as u64;
    Some((
        (st.f_bavail as u64).saturating_mul(unit),
        (st.f_blocks as u64).saturating_mul(unit),
    ))
}

/// Whether `free` bytes of a file system of `total` count as full: under 1% of it, or under
/// 1 MiB.
fn full(free: u64, total: u64) -> bool {
    free < (total / 100).max(1 << 20)
}

/// The line for a program that failed beside a capture `capture_len` bytes long on a full file
/// system (`free` bytes left), if it is full.
fn note(free: u64, total: u64, capture_len: u64) -> Option<String> {
    full(free, total).then(|| {
        format!(
            "memtrace: the capture's file system is full ({} left; the capture takes {}): if the program failed for want of space, write the capture elsewhere (-o)",
            memtrace_reporter::report::human::size(free),
            memtrace_reporter::report::human::size(capture_len),
        )
    })
}

/// Says so when the program failed and the file system of `capture` is full.
pub fn say_if_full(capture: &Path) {
    let Ok(meta) = std::fs::metadata(capture) else {
        return;
    };
    let Some((free, total)) = space(capture) else {
        return;
    };
    if let Some(line) = note(free, total, meta.len()) {
        crate::say!("{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_system_is_full_under_a_hundredth_or_a_mebibyte() {
        assert!(full(0, 10 << 20));
        assert!(full((1 << 20) - 1, 10 << 20));
        assert!(!full(1 << 20, 10 << 20));
        assert!(full(9 << 30, 1 << 40));
        assert!(!full(11 << 30, 1 << 40));
        assert!(note(2 << 20, 10 << 20, 8 << 20).is_none());
        let line = note(4096, 10 << 20, 8 << 20).expect("full");
        assert!(
            line.contains("(4.0 KiB left; the capture takes 8.0 MiB)"),
            "{line}"
        );
    }
}
