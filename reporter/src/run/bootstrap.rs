//! The start-up hook of a Python run: a directory put first on PYTHONPATH with a
//! `sitecustomize.py` and a link to the tracker named `_memtrace_tracker.so`. Python imports
//! the hook after its own initialization; the hook imports the tracker (which starts tracking
//! Python) and removes every trace of itself (see bootstrap/sitecustomize.py).

use super::RunError;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

const SITECUSTOMIZE: &str = include_str!("bootstrap/sitecustomize.py");
/// The original PYTHONPATH (absent: there was none), restored by the hook.
pub const ORIGINAL_PATH_ENV: &str = "MEMTRACE_PYTHONPATH";

/// The hook's directory; removed when dropped (after the run).
pub struct Bootstrap {
    dir: PathBuf,
}

impl Bootstrap {
    pub fn create(tracker: &Path) -> Result<Bootstrap, RunError> {
        let dir = std::env::temp_dir().join(format!("memtrace-py-{}", std::process::id()));
        let shown = dir.display().to_string();
        let fail =
            |e: std::io::Error| RunError(format!("cannot set up the Python hook in {shown}: {e}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).map_err(fail)?;
        let b = Bootstrap { dir };
        std::fs::write(b.dir.join("sitecustomize.py"), SITECUSTOMIZE).map_err(fail)?;
        let tracker = std::fs::canonicalize(tracker).map_err(fail)?;
        std::os::unix::fs::symlink(tracker, b.dir.join("_memtrace_tracker.so")).map_err(fail)?;
        Ok(b)
    }

    /// The hook's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// PYTHONPATH for the interpreter: the hook's directory first.
    pub fn python_path(&self) -> OsString {
        let mut p = self.dir.clone().into_os_string();
        if let Some(existing) = std::env::var_os("PYTHONPATH").filter(|v| !v.is_empty()) {
            p.push(":");
            p.push(existing);
        }
        p
    }
}

impl Drop for Bootstrap {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
