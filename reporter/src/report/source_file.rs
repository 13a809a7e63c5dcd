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
    let Some(bytes) = regular_file::read(path, MAX_SOURCE_BYTES, Links::Follow) else {
        return named_python.then(|| in_zip_application(path)).flatten();
    };
    (named_python || python_shebang(&bytes)).then_some(bytes)
}

/// A source inside a zip application (`app.pyz/__main__.py`, `app.zip/pkg/mod.py`): the
/// member of the first of `path`'s ancestors that is a file, when it is a zip archive.
fn in_zip_application(path: &Path) -> Option<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    let archive = path.ancestors().skip(1).find(|a| a.is_file())?;
    let member = path.strip_prefix(archive).ok()?;
    let bytes = regular_file::read(archive, MAX_SOURCE_BYTES, Links::Follow)?;
    super::zip_member::read(&bytes, member.as_os_str().as_bytes(), MAX_SOURCE_BYTES)
}

/// The lines of a Python source file's bytes, decoded as [`text`] says, split as the
/// interpreter counts them: at `\n`, `\r\n` and a lone `\r` (universal newlines; a file of
/// old Mac line endings was one line).
pub fn lines(bytes: &[u8]) -> Vec<String> {
    let text = text(bytes);
    if !text.contains('\r') {
        return text.lines().map(str::to_string).collect();
    }
    text.replace("\r\n", "\n")
        .replace('\r', "\n")
        .lines()
        .map(str::to_string)
        .collect()
}

/// The text of a Python source file's bytes, as the interpreter decodes them: UTF-8 with a
/// leading byte-order mark left out, unless a PEP 263 coding line (a comment in the first two
/// lines, `# -*- coding: latin-1 -*-`) names Latin-1 or Windows-1252, which are decoded here.
/// Other encodings are read as UTF-8, bytes that are not shown as U+FFFD.
fn text(bytes: &[u8]) -> String {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    match declared_encoding(bytes) {
        Some(Declared::Latin1) => bytes.iter().map(|&b| char::from(b)).collect(),
        Some(Declared::Windows1252) => bytes.iter().map(|&b| windows_1252(b)).collect(),
        None => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// An encoding a coding line may name that is not UTF-8 and is decoded here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Declared {
    Latin1,
    Windows1252,
}

/// The encoding a PEP 263 coding line names, when it is one decoded here. As the interpreter
/// looks: the first line, then the second only when the first is a comment or blank.
fn declared_encoding(bytes: &[u8]) -> Option<Declared> {
    for line in bytes.split(|&b| b == b'\n').take(2) {
        let line = line.trim_ascii_start();
        if !line.starts_with(b"#") {
            if line.trim_ascii().is_empty() {
                continue;
            }
            return None;
        }
        let Some(at) = line.windows(6).position(|w| w == b"coding") else {
            continue;
        };
        let rest = &line[at + 6..];
        if !matches!(rest.first(), Some(b':' | b'=')) {
            continue;
        }
        let name: String = rest[1..]
            .iter()
            .skip_while(|&&b| b == b' ' || b == b'\t')
            .take_while(|&&b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            .map(|&b| match b {
                b'_' => '-',
                _ => char::from(b.to_ascii_lowercase()),
            })
            .collect();
        return match name.as_str() {
            "latin-1" | "latin1" | "l1" | "iso-8859-1" | "iso8859-1" | "iso-latin-1" => {
                Some(Declared::Latin1)
            }
            "cp1252" | "windows-1252" => Some(Declared::Windows1252),
            _ => None,
        };
    }
    None
}

/// Windows-1252: Latin-1 but for 0x80-0x9F (five of which it leaves undefined: U+FFFD).
fn windows_1252(b: u8) -> char {
    const HIGH: [u16; 32] = [
        0x20AC, 0xFFFD, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
        0x2039, 0x0152, 0xFFFD, 0x017D, 0xFFFD, 0xFFFD, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
        0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0xFFFD, 0x017E, 0x0178,
    ];
    match b {
        0x80..=0x9F => char::from_u32(u32::from(HIGH[usize::from(b - 0x80)])).unwrap_or('\u{FFFD}'),
        _ => char::from(b),
    }
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
    fn lines_end_where_the_interpreter_ends_them() {
        assert_eq!(lines(b"a = 1\rb = 2\rc = 3\r"), ["a = 1", "b = 2", "c = 3"]);
        assert_eq!(lines(b"a\r\nb\nc"), ["a", "b", "c"]);
        assert_eq!(lines(b"a\n\nb\n"), ["a", "", "b"]);
        assert_eq!(lines(b"a\r\rb"), ["a", "", "b"]);
        assert!(lines(b"").is_empty());
    }

    #[test]
    fn sources_decode_as_their_coding_line_says() {
        // é in Latin-1 (0xE9), and Windows-1252's euro sign (0x80).
        let latin = b"# -*- coding: latin-1 -*-\ns = \"\xe9t\xe9\"\n";
        assert_eq!(text(latin).lines().nth(1), Some("s = \"\u{e9}t\u{e9}\""));
        let cp = b"#!/usr/bin/env python3\n# vim: set fileencoding=cp1252 :\np = \"\x80\"\n";
        assert_eq!(text(cp).lines().nth(2), Some("p = \"\u{20ac}\""));
        // A coding line after code does not count; a BOM is left out.
        let late = b"x = 1\n# coding: latin-1\ns = \"\xe9\"\n";
        assert_eq!(text(late).lines().nth(2), Some("s = \"\u{fffd}\""));
        assert_eq!(text(b"\xEF\xBB\xBFimport sys\n"), "import sys\n");
        assert_eq!(text("s = \"\u{e9}\"\n".as_bytes()), "s = \"\u{e9}\"\n");
        // Another encoding: read as UTF-8.
        assert_eq!(
            text(b"# coding: shift_jis\nx\n"),
            "# coding: shift_jis\nx\n"
        );
    }

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
