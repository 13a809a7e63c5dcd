//! The hook's compiled form, kept between runs per user: compiling the hook is a good part of
//! a Python run's start-up (its directory is new each run, so the interpreter's own
//! `__pycache__` never outlives it).
//!
//! After a run, each `__pycache__/sitecustomize.<tag>.pyc` the interpreter wrote in the hook's
//! directory is kept in `$XDG_CACHE_HOME/memtrace/hook-<hash of the hook>/` (else
//! `~/.cache/...`), made an unchecked hash-based pyc (PEP 552): the interpreter then loads it
//! without comparing it with the source, whose modification time is new each run. Its 8-byte
//! source-hash field, which the interpreter does not read for such a pyc, holds a hash of the
//! code after the header, checked before the file is used again: a damaged file is never put
//! before the interpreter. Before a run, the kept files go into the new hook's `__pycache__`;
//! the interpreter takes the one of its own tag and magic number, and compiles the source for
//! any other. Whatever fails here (no home, a read-only cache, a full disk) leaves the
//! interpreter to compile the hook, as without a cache.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// A pyc's header: magic number, flags, then 8 bytes (a time and size, or a source hash).
const HEADER: usize = 16;
/// PEP 552 flags: hash-based (bit 0), source not checked (bit 1 clear).
const UNCHECKED_HASH: u32 = 0b01;

/// FNV-1a, 64 bits: the cache's key and a pyc's check (no adversary: the cache is the user's).
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The cache directory of this hook's compiled forms (not created), or None without a home.
pub fn cache_dir(source: &str) -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| Path::new(v).is_absolute())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| Path::new(v).is_absolute())
                .map(|h| PathBuf::from(h).join(".cache"))
        })?;
    Some(
        base.join("memtrace")
            .join(format!("hook-{:016x}", fnv(source.as_bytes()))),
    )
}

/// Whether `name` is a compiled hook: `sitecustomize.<tag>.pyc`.
fn is_compiled_hook(name: &str) -> bool {
    name.starts_with("sitecustomize.") && name.ends_with(".pyc") && !name.contains('/')
}

/// Whether `pyc` is one this module kept: unchecked hash-based, its check matching its code.
fn verified(pyc: &[u8]) -> bool {
    pyc.len() > HEADER
        && pyc[4..8] == UNCHECKED_HASH.to_le_bytes()
        && pyc[8..16] == fnv(&pyc[HEADER..]).to_le_bytes()
}

/// The kept form of a pyc the interpreter wrote: unchecked hash-based, with its check; None
/// for a file too short to be a pyc.
fn to_kept(mut pyc: Vec<u8>) -> Option<Vec<u8>> {
    if pyc.len() <= HEADER {
        return None;
    }
    let check = fnv(&pyc[HEADER..]);
    pyc[4..8].copy_from_slice(&UNCHECKED_HASH.to_le_bytes());
    pyc[8..16].copy_from_slice(&check.to_le_bytes());
    Some(pyc)
}

/// The compiled hook an interpreter takes, when the name of its file (links followed) says its
/// version: `python3.11` takes `sitecustomize.cpython-311.pyc`. None otherwise (then every
/// kept form is offered).
pub fn name_for(python: &Path) -> Option<String> {
    let real = std::fs::canonicalize(python).ok()?;
    let version = real.file_name()?.to_str()?.strip_prefix("python")?;
    let (major, minor) = version.split_once('.')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    (digits(major) && digits(minor)).then(|| format!("sitecustomize.cpython-{major}{minor}.pyc"))
}

/// Puts the verified compiled hooks of `cache` into `hook`'s `__pycache__`: the one named
/// `only`, else all. Each is linked where the file systems allow it (no file to write, and
/// none to free after the run), else copied. Returns the names put there.
pub fn install(cache: &Path, hook: &Path, only: Option<&str>) -> Vec<String> {
    let names: Vec<String> = match only {
        Some(name) => vec![name.to_string()],
        None => match std::fs::read_dir(cache) {
            Ok(entries) => entries
                .flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .collect(),
            Err(_) => return Vec::new(),
        },
    };
    let target = hook.join("__pycache__");
    let mut installed = Vec::new();
    for name in names.into_iter().filter(|n| is_compiled_hook(n)) {
        let kept = cache.join(&name);
        let Ok(pyc) = std::fs::read(&kept) else {
            continue;
        };
        if !verified(&pyc) {
            continue;
        }
        if installed.is_empty()
            && std::fs::DirBuilder::new()
                .mode(0o700)
                .create(&target)
                .is_err()
            && !target.is_dir()
        {
            break;
        }
        let at = target.join(&name);
        if std::fs::hard_link(&kept, &at).is_ok() || write_new(&at, &pyc).is_ok() {
            installed.push(name);
        }
    }
    installed
}

/// Keeps in `cache` the compiled hooks the interpreter wrote in `hook`'s `__pycache__` that
/// `cache` does not have yet (those `install` put there came from it).
pub fn keep(cache: &Path, hook: &Path, installed: &[String]) {
    let Ok(entries) = std::fs::read_dir(hook.join("__pycache__")) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name
            .to_str()
            .filter(|n| is_compiled_hook(n) && !installed.iter().any(|i| i == n))
        else {
            continue;
        };
        let kept = cache.join(name);
        if std::fs::read(&kept).is_ok_and(|k| verified(&k)) {
            continue;
        }
        let Some(pyc) = std::fs::read(entry.path()).ok().and_then(to_kept) else {
            continue;
        };
        if std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(cache)
            .is_err()
        {
            return;
        }
        // Written aside and renamed: a reader never sees half a file.
        let aside = cache.join(format!(".{name}.{}", std::process::id()));
        if write_new(&aside, &pyc).is_err() || std::fs::rename(&aside, &kept).is_err() {
            let _ = std::fs::remove_file(&aside);
        }
    }
}

fn write_new(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?
        .write_all(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("memtrace-compiled-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("scratch directory");
        d
    }

    /// A timestamp pyc as the interpreter writes it: magic, flags 0, time, size, code.
    fn written_pyc(code: &[u8]) -> Vec<u8> {
        let mut pyc = vec![0xa7, 0x0d, 0x0d, 0x0a, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8];
        pyc.extend_from_slice(code);
        pyc
    }

    #[test]
    fn a_kept_hook_goes_into_the_next_run_unchecked_and_whole() {
        let (cache, first, second) = (scratch("c").join("hook"), scratch("h1"), scratch("h2"));
        std::fs::create_dir_all(first.join("__pycache__")).unwrap();
        let code = b"\xe3marshalled code".to_vec();
        let pyc = written_pyc(&code);
        std::fs::write(
            first.join("__pycache__/sitecustomize.cpython-311.pyc"),
            &pyc,
        )
        .unwrap();
        std::fs::write(first.join("__pycache__/other.cpython-311.pyc"), &pyc).unwrap();
        keep(&cache, &first, &[]);
        assert_eq!(
            install(&cache, &second, None),
            ["sitecustomize.cpython-311.pyc"]
        );
        let got = std::fs::read(second.join("__pycache__/sitecustomize.cpython-311.pyc")).unwrap();
        assert_eq!(got[..4], pyc[..4], "the magic number is the interpreter's");
        assert_eq!(got[4..8], [1, 0, 0, 0], "unchecked hash-based");
        assert_eq!(got[HEADER..], code[..]);
        assert!(!second.join("__pycache__/other.cpython-311.pyc").exists());
    }

    #[test]
    fn an_interpreter_named_by_version_gets_its_own_hook_alone() {
        let (cache, first, second) = (scratch("v").join("hook"), scratch("v1"), scratch("v2"));
        std::fs::create_dir_all(first.join("__pycache__")).unwrap();
        for tag in ["310", "311", "312"] {
            let pyc = written_pyc(format!("code of {tag}").as_bytes());
            let name = format!("__pycache__/sitecustomize.cpython-{tag}.pyc");
            std::fs::write(first.join(name), &pyc).unwrap();
        }
        keep(&cache, &first, &[]);
        let only = "sitecustomize.cpython-311.pyc";
        assert_eq!(install(&cache, &second, Some(only)), [only]);
        let listed: Vec<_> = std::fs::read_dir(second.join("__pycache__"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(listed, [only]);
        let got = std::fs::read(second.join("__pycache__").join(only)).unwrap();
        assert_eq!(got[HEADER..], *b"code of 311");
        // What was put there came from the cache: not read back after the run.
        let kept = cache.join(only);
        std::fs::write(&kept, b"changed meanwhile").unwrap();
        keep(&cache, &second, &[only.to_string()]);
        assert_eq!(std::fs::read(&kept).unwrap(), b"changed meanwhile");
        assert!(install(&cache, &second, Some("sitecustomize.cpython-399.pyc")).is_empty());
    }

    #[test]
    fn the_hook_s_name_comes_from_the_interpreter_s_file_name() {
        let dir = scratch("names");
        let real = dir.join("python3.12");
        std::fs::write(&real, b"").unwrap();
        std::os::unix::fs::symlink(&real, dir.join("python3")).unwrap();
        std::fs::write(dir.join("python"), b"").unwrap();
        std::fs::write(dir.join("python3.x"), b"").unwrap();
        let name = |n: &str| name_for(&dir.join(n));
        let want = Some("sitecustomize.cpython-312.pyc".to_string());
        assert_eq!(name("python3.12"), want);
        assert_eq!(name("python3"), want);
        assert_eq!(name("python"), None);
        assert_eq!(name("python3.x"), None);
        assert_eq!(name("missing3.11"), None);
    }

    #[test]
    fn a_damaged_kept_hook_is_not_used() {
        let (cache, first, second) = (scratch("d").join("hook"), scratch("d1"), scratch("d2"));
        std::fs::create_dir_all(first.join("__pycache__")).unwrap();
        let pyc = written_pyc(b"\xe3marshalled code");
        std::fs::write(
            first.join("__pycache__/sitecustomize.cpython-312.pyc"),
            &pyc,
        )
        .unwrap();
        keep(&cache, &first, &[]);
        let kept = cache.join("sitecustomize.cpython-312.pyc");
        let mut bytes = std::fs::read(&kept).unwrap();
        bytes.truncate(bytes.len() - 3);
        std::fs::write(&kept, &bytes).unwrap();
        assert!(install(&cache, &second, None).is_empty());
        assert!(!second
            .join("__pycache__/sitecustomize.cpython-312.pyc")
            .exists());
        // The next run's own pyc replaces the damaged one.
        keep(&cache, &first, &[]);
        assert!(verified(&std::fs::read(&kept).unwrap()));
    }
}
