//! The start-up hook of a Python run: a directory put first on PYTHONPATH with a
//! `sitecustomize.py` and a link to the tracker named `_memtrace_tracker.so`. Python imports
//! the hook after its own initialization; the hook imports the tracker (which starts tracking
//! Python) and removes every trace of itself (see bootstrap/sitecustomize.py).

mod compiled;

use super::RunError;
use std::ffi::OsString;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

const SITECUSTOMIZE: &str = include_str!("bootstrap/sitecustomize.py");
/// The original PYTHONPATH (absent: there was none), restored by the hook.
pub const ORIGINAL_PATH_ENV: &str = "MEMTRACE_PYTHONPATH";
/// Set for the interpreter memtrace starts (or the tracker adopts), removed by the hook: a
/// subinterpreter, which imports the hook again, does not find it and leaves all alone.
pub const ARMED_ENV: &str = "MEMTRACE_PYTHON_HOOK_ARMED";

/// The hook's directory, inside the run's private directory (which removes it after the run).
/// Its name, `memtrace-py-<pid>`, is how the tracker knows the hook's frames.
pub struct Bootstrap {
    dir: PathBuf,
    /// Where the hook's compiled forms are kept between runs (see `compiled`).
    cache: Option<PathBuf>,
    /// The compiled forms taken from there for this run.
    installed: Vec<String>,
}

impl Bootstrap {
    /// The hook for a run of the interpreter `python` (None: any CPython the program execs).
    pub fn create(
        tracker: &Path,
        private: &Path,
        python: Option<&Path>,
    ) -> Result<Bootstrap, RunError> {
        let dir = private.join(format!("memtrace-py-{}", std::process::id()));
        let shown = dir.display().to_string();
        let fail =
            |e: std::io::Error| RunError(format!("cannot set up the Python hook in {shown}: {e}"));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(fail)?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).map_err(fail)?;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(dir.join("sitecustomize.py"))
            .and_then(|mut f| f.write_all(SITECUSTOMIZE.as_bytes()))
            .map_err(fail)?;
        let tracker = std::fs::canonicalize(tracker).map_err(fail)?;
        std::os::unix::fs::symlink(tracker, dir.join("_memtrace_tracker.so")).map_err(fail)?;
        let cache = compiled::cache_dir(SITECUSTOMIZE);
        let installed = match &cache {
            Some(cache) => {
                let only = python.and_then(compiled::name_for);
                compiled::install(cache, &dir, only.as_deref())
            }
            None => Vec::new(),
        };
        Ok(Bootstrap {
            dir,
            cache,
            installed,
        })
    }

    /// After the run: keeps the hook as the interpreter compiled it, for the next runs.
    pub fn keep_compiled(&self) {
        if let Some(cache) = &self.cache {
            compiled::keep(cache, &self.dir, &self.installed);
        }
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
