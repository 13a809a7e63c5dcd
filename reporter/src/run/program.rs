//! Finding the program to run and checking that the tracker can be preloaded into it.

use super::RunError;
use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The program's path: as given when it contains a slash, else found on PATH.
pub fn resolve(program: &OsStr) -> Result<PathBuf, RunError> {
    let given = Path::new(program);
    if given.as_os_str().is_empty() {
        return Err(RunError("the program name is empty".into()));
    }
    if program.to_string_lossy().contains('/') {
        if !given.exists() {
            return Err(RunError(format!("{}: no such file", given.display())));
        }
        if given.is_dir() {
            return Err(RunError(format!(
                "{} is a directory, not a program",
                given.display()
            )));
        }
        if !is_executable(given) {
            return Err(RunError(format!(
                "{}: permission denied (not executable)",
                given.display()
            )));
        }
        return Ok(given.to_path_buf());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join(given);
        if candidate.is_file() && is_executable(&candidate) {
            return Ok(candidate);
        }
    }
    Err(RunError(format!("{}: command not found", given.display())))
}

fn is_executable(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.permissions().mode() & 0o111 != 0)
}

/// Refuses statically linked executables, into which nothing can be preloaded.
pub fn check_traceable(path: &Path) -> Result<(), RunError> {
    let mut head = Vec::new();
    if let Ok(f) = std::fs::File::open(path) {
        let _ = f.take(64 * 1024).read_to_end(&mut head);
    }
    match elf_is_dynamic(&head) {
        Some(false) => Err(RunError(format!(
            "{} is statically linked: memtrace can only trace dynamically linked programs",
            path.display()
        ))),
        _ => Ok(()),
    }
}

/// Some(true) for an ELF file with an interpreter (dynamically linked), Some(false) for one
/// without, None when it is not a 64-bit little-endian ELF file (a script, say) or unreadable.
fn elf_is_dynamic(head: &[u8]) -> Option<bool> {
    if head.len() < 64 || &head[..4] != b"\x7fELF" || head[4] != 2 || head[5] != 1 {
        return None;
    }
    let u16_at = |i: usize| Some(u16::from_le_bytes(head.get(i..i + 2)?.try_into().ok()?));
    let u32_at = |i: usize| Some(u32::from_le_bytes(head.get(i..i + 4)?.try_into().ok()?));
    let u64_at = |i: usize| Some(u64::from_le_bytes(head.get(i..i + 8)?.try_into().ok()?));
    let phoff = usize::try_from(u64_at(0x20)?).ok()?;
    let phentsize = usize::from(u16_at(0x36)?);
    let phnum = usize::from(u16_at(0x38)?);
    const PT_INTERP: u32 = 3;
    for i in 0..phnum {
        let at = phoff.checked_add(i.checked_mul(phentsize)?)?;
        if u32_at(at)? == PT_INTERP {
            return Some(true);
        }
    }
    Some(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_programs_are_dynamic() {
        let mut head = Vec::new();
        std::fs::File::open("/bin/ls")
            .expect("ls exists")
            .take(65536)
            .read_to_end(&mut head)
            .expect("readable");
        assert_eq!(elf_is_dynamic(&head), Some(true));
        assert_eq!(elf_is_dynamic(b"#!/bin/sh\necho hi\n"), None);
    }

    #[test]
    fn missing_programs_are_reported() {
        let err = resolve(OsStr::new("no-such-program-xyz")).expect_err("not found");
        assert!(err.0.contains("command not found"));
        let err = resolve(OsStr::new("./no/such/file")).expect_err("not found");
        assert!(err.0.contains("no such file"));
    }
}
