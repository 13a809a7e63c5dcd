//! Source lines for the side panel: files read when first asked for, then kept. Relative paths
//! are tried from the current directory, then from the capture's directory (where `memtrace
//! run` writes it by default, the traced program's working directory).

use hashbrown::HashMap;
use std::path::{Path, PathBuf};

#[derive(Default)]
pub struct Sources {
    /// Extra directories for relative paths.
    bases: Vec<PathBuf>,
    /// File name as recorded → its lines, or None when it could not be read.
    files: HashMap<String, Option<Vec<String>>>,
}

impl Sources {
    pub fn new(bases: Vec<PathBuf>) -> Sources {
        Sources {
            bases,
            files: HashMap::new(),
        }
    }

    /// Line `line` (from 1) of `file`, without its end of line.
    pub fn line(&mut self, file: &str, line: u64) -> Option<&str> {
        let index = usize::try_from(line.checked_sub(1)?).ok()?;
        if !self.files.contains_key(file) {
            let lines = self.read(file);
            self.files.insert(file.to_string(), lines);
        }
        let lines = self.files.get(file)?.as_ref()?;
        lines.get(index).map(String::as_str)
    }

    fn read(&self, file: &str) -> Option<Vec<String>> {
        // `<frozen …>`, `<string>`, `<stdin>`: no file behind them.
        if file.is_empty() || file.starts_with('<') {
            return None;
        }
        let path = Path::new(file);
        let candidates = std::iter::once(path.to_path_buf()).chain(
            self.bases
                .iter()
                .filter(|_| path.is_relative())
                .map(|b| b.join(path)),
        );
        // As every report reads a program's source: a regular file of a sensible size that is a
        // Python source (a capture names any file as its code's).
        for candidate in candidates {
            if let Some(bytes) = memtrace_reporter::report::source_file::read(&candidate) {
                let text = String::from_utf8_lossy(&bytes);
                return Some(text.lines().map(str::to_string).collect());
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_that_is_no_python_source_is_not_shown() {
        let dir = std::env::temp_dir().join(format!("memtrace-tui-env-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let secret = dir.join("secret.env");
        std::fs::write(&secret, "TOKEN=s3cr3t\n").expect("write");
        let mut s = Sources::new(Vec::new());
        assert_eq!(s.line(secret.to_str().expect("utf-8"), 1), None);
        assert_eq!(s.line("/etc/passwd", 1), None);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn reads_lines_once_and_from_the_bases() {
        let dir = std::env::temp_dir().join(format!("memtrace-tui-src-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let name = "source_test_file.py";
        let _ = std::fs::write(dir.join(name), "first\n    second line\n");
        let mut sources = Sources::new(vec![dir.clone()]);
        assert_eq!(sources.line(name, 2), Some("    second line"));
        assert_eq!(sources.line(name, 1), Some("first"));
        assert_eq!(sources.line(name, 3), None);
        assert_eq!(sources.line(name, 0), None);
        // Kept: the file is not read again.
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(sources.line(name, 1), Some("first"));
        assert_eq!(sources.line("<frozen importlib._bootstrap>", 1), None);
        assert_eq!(sources.line("/no/such/file.py", 1), None);
    }
}
