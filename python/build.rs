//! Builds the `memtrace` executable and the tracker library from the workspace around this
//! package (a nested `cargo build --release` of the workspace), and puts them into the Python package directory,
//! where maturin packs them into the wheel: `memtrace/memtrace` (the CLI the `memtrace` console
//! script runs) and `memtrace/_memtrace_tracker.so` (the preload library, also importable as
//! `memtrace._memtrace_tracker`).
//!
//! The nested build uses the workspace's own target directory (`../target`, or
//! `MEMTRACE_ARTIFACTS_TARGET_DIR`), so that what `cargo build --release` built there is reused;
//! this package's own build runs in another target directory, so the two never wait on each
//! other's lock.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Variables of this build that must not reach the nested one.
const CLEARED: &[&str] = &[
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET",
    "CARGO_BUILD_TARGET_DIR",
    "RUSTFLAGS",
    "CARGO_ENCODED_RUSTFLAGS",
    "CARGO_PROFILE_RELEASE_DEBUG",
    "CARGO_PROFILE_RELEASE_PANIC",
];

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let here = PathBuf::from(env::var("CARGO_MANIFEST_DIR").map_err(|e| e.to_string())?);
    let root = here
        .parent()
        .ok_or("the package is not inside the memtrace workspace")?
        .to_path_buf();
    for watched in [
        "Cargo.toml",
        "Cargo.lock",
        "format",
        "tracker",
        "reporter/src",
        "reporter/Cargo.toml",
        "reporter/cli/src",
        "reporter/cli/Cargo.toml",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    println!("cargo:rerun-if-env-changed=MEMTRACE_ARTIFACTS_TARGET_DIR");
    let target_dir = env::var_os("MEMTRACE_ARTIFACTS_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    // The workspace's own `cargo build --release` (the README's): the same features, so what
    // it built is reused as is.
    cmd.args(["build", "--release"])
        .arg("--manifest-path")
        .arg(root.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir);
    for var in CLEARED {
        cmd.env_remove(var);
    }
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run cargo for the memtrace executable: {e}"))?;
    if !status.success() {
        return Err(format!(
            "building the memtrace executable and tracker failed ({status})"
        ));
    }
    let built = target_dir.join("release");
    let package = here.join("memtrace");
    install(&built.join("memtrace"), &package.join("memtrace"))?;
    install(
        &built.join("libmemtrace_tracker.so"),
        &package.join("_memtrace_tracker.so"),
    )?;
    Ok(())
}

/// Copies `from` to `to` through a temporary file and a rename (a running copy stays intact).
fn install(from: &Path, to: &Path) -> Result<(), String> {
    let tmp = to.with_extension("tmp");
    fs::copy(from, &tmp)
        .map_err(|e| format!("cannot copy {} to {}: {e}", from.display(), tmp.display()))?;
    fs::rename(&tmp, to).map_err(|e| format!("cannot rename {}: {e}", tmp.display()))
}
