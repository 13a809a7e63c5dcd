//! A program's source file read for a report (its lines beside the figures): a regular file
//! of a sensible size (crate::regular_file), never a FIFO planted at a script's path, a device
//! or a huge generated file; and a Python source, by its name or its `#!` line. The file names
//! come from the capture, which the program wrote (`compile(text, "/etc/shadow", "exec")`
//! names any file), and a report's lines end up in pages that get shared: a capture someone
//! sent must not copy the reader's other files (keys, `.env`, `/proc/self/environ`) into them.

use crate::regular_file::{self, Links};
use std::path::Path;

/// The largest source file read.
pub const MAX_SOURCE_BYTES: u64 = 16 << 20;

/// The bytes of the source file at `path`; None when it is not a regular file of at most
/// [`MAX_SOURCE_BYTES`], or cannot be read.
pub fn read(path: &Path) -> Option<Vec<u8>> {
    let named_python = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| PYTHON_SUFFIXES.contains(&e));
    let bytes = regular_file::read(path, MAX_SOURCE_BYTES, Links::Follow)?;
    (named_python || python_shebang(&bytes)).then_some(bytes)
}

/// Names of Python sources (Cython's too: its frames name its .pyx files).
const PYTHON_SUFFIXES: [&str; 5] = ["py", "pyw", "pyx", "pxd", "pxi"];

/// A script of no Python name that starts with a `#!` line running Python (`./tool`).
fn python_shebang(bytes: &[u8]) -> bool {
    let first = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
    first.starts_with(b"#!") && first.windows(6).any(|w| w == b"python")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_of_a_sensible_size_are_read() {
        assert_eq!(read(Path::new("/dev/zero")), None);
        assert_eq!(read(Path::new("/dev/null")), None);
        assert_eq!(read(Path::new("/no/such/file")), None);
        let dir = std::env::temp_dir().join(format!("memtrace-source-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let small = dir.join("s.py");
        std::fs::write(&small, b"x = 1\n").expect("write");
        assert_eq!(read(&small).as_deref(), Some(&b"x = 1\n"[..]));
        let big = dir.join("big.py");
        let f = std::fs::File::create(&big).expect("create");
        f.set_len(MAX_SOURCE_BYTES + 1).expect("grow");
        assert_eq!(read(&big), None);
        let fifo = dir.join("fifo.py");
        let c = std::ffi::CString::new(fifo.to_str().expect("utf-8")).expect("path");
        // SAFETY: mkfifo(3) of a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert_eq!(read(&fifo), None);
        std::fs::remove_dir_all(&dir).expect("clean");
    }

    #[test]
    fn only_python_sources_are_read() {
        let dir = std::env::temp_dir().join(format!("memtrace-source-py-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = |name: &str, text: &str| {
            let p = dir.join(name);
            std::fs::write(&p, text).expect("write");
            p
        };
        for (name, text, read_it) in [
            ("m.py", "x = 1\n", true),
            ("m.pyx", "x = 1\n", true),
            ("tool", "#!/usr/bin/env python3\nx = 1\n", true),
            ("tool2", "#!/opt/venv/bin/python3.12 -u\n", true),
            (".env", "API_TOKEN=s3cr3t\n", false),
            ("id_rsa", "-----BEGIN OPENSSH PRIVATE KEY-----\n", false),
            ("run.sh", "#!/bin/sh\npython3 x.py\n", false),
            ("notes.txt", "python\n", false),
        ] {
            let p = file(name, text);
            assert_eq!(read(&p).is_some(), read_it, "{name}");
        }
        assert_eq!(read(Path::new("/etc/passwd")), None);
        assert_eq!(read(Path::new("/proc/self/environ")), None);
        std::fs::remove_dir_all(&dir).expect("clean");
    }
}
