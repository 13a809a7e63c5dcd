//! The start-up hook of a Python run: a directory put first on PYTHONPATH with a
//! `sitecustomize.py` and a link to the tracker named `_memtrace_tracker.so`. Python imports
//! the hook after its own initialization; the hook imports the tracker (which starts tracking
//! Python) and removes every trace of itself (see bootstrap/sitecustomize.py).

use super::RunError;
use std::ffi::OsString;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

const SITECUSTOMIZE: &str = include_str!("bootstrap/sitecustomize.py");
/// The original PYTHONPATH (absent: there was none), restored by the hook.
pub const ORIGINAL_PATH_ENV: &str = "MEMTRACE_PYTHONPATH";
/// The per-user directory that keeps the hook compiled, one file per Python version (see
/// `Bootstrap::compiled_cache`); the hook removes the variable.
pub const COMPILED_CACHE_ENV: &str = "MEMTRACE_HOOK_CACHE";

/// The hook's directory, inside the run's private directory (which removes it after the run).
/// Its name, `memtrace-py-<pid>`, is how the tracker knows the hook's frames.
pub struct Bootstrap {
    dir: PathBuf,
    cache: Option<PathBuf>,
}

impl Bootstrap {
    pub fn create(tracker: &Path, private: &Path) -> Result<Bootstrap, RunError> {
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
        let cache = compiled_cache();
        if let Some(cache) = &cache {
            reuse_compiled(cache, &dir);
        }
        Ok(Bootstrap { dir, cache })
    }

    /// Where the hook keeps its compiled form for the next runs (None: no cache directory).
    /// Compiling it was a quarter of what a Python run added to start-up (the directory is new
    /// each run, so Python never found it compiled);
    /// each file is checked by Python against the hook's source by hash, so a stale or damaged
    /// one is compiled again, never run.
    pub fn compiled_cache(&self) -> Option<&Path> {
        self.cache.as_deref()
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

/// `$XDG_CACHE_HOME/memtrace/py-hook-<hash of the hook>` (or under `~/.cache`): one directory
/// per version of the hook, so another memtrace's hook never meets this one's files.
fn compiled_cache() -> Option<PathBuf> {
    let base = match std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").filter(|v| !v.is_empty())?).join(".cache"),
    };
    if !base.is_absolute() {
        return None;
    }
    let hash = SITECUSTOMIZE
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
        });
    Some(base.join("memtrace").join(format!("py-hook-{hash:016x}")))
}

/// Copies the compiled hooks in `cache` (`sitecustomize.<tag>.pyc`, one per Python version)
/// into the hook's `__pycache__`, where each Python takes its own. Best effort: without them,
/// Python compiles the hook. Only from a directory of the user's own that nobody else can write.
fn reuse_compiled(cache: &Path, dir: &Path) {
    use std::os::unix::fs::MetadataExt;
    let (Ok(theirs), Ok(ours)) = (std::fs::metadata(cache), std::fs::metadata(dir)) else {
        return;
    };
    if theirs.uid() != ours.uid() || theirs.mode() & 0o022 != 0 {
        return;
    }
    let Ok(entries) = std::fs::read_dir(cache) else {
        return;
    };
    let pycache = dir.join("__pycache__");
    let mut made = false;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            continue;
        };
        if !(name.starts_with("sitecustomize.") && name.ends_with(".pyc")) {
            continue;
        }
        if !made {
            if std::fs::DirBuilder::new()
                .mode(0o700)
                .create(&pycache)
                .is_err()
            {
                return;
            }
            made = true;
        }
        let _ = std::fs::copy(entry.path(), pycache.join(name));
    }
}
