//! What memtrace needs to know about an executable before running it: whether it is an ELF file,
//! whether it is dynamically linked (the tracker can be preloaded), and whether it is a CPython
//! interpreter. Read from the file, without running it.

use memmap2::Mmap;
use object::{Object, ObjectSymbol};
use std::io::Read;
use std::path::Path;

/// The first bytes of a file (enough for the ELF and program headers), empty when unreadable.
pub fn head(path: &Path) -> Vec<u8> {
    let mut head = Vec::new();
    if let Ok(f) = std::fs::File::open(path) {
        let _ = f.take(64 * 1024).read_to_end(&mut head);
    }
    head
}

/// Some(true) for an ELF file with an interpreter (dynamically linked), Some(false) for one
/// without, None when it is not a 64-bit little-endian ELF file (a script, say) or unreadable.
pub fn is_dynamic(head: &[u8]) -> Option<bool> {
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

/// The entry points of CPython's `main`: a `python` executable defines one (libpython linked in)
/// or imports it (from libpython3.X.so). 3.8 and later call `Py_BytesMain`; `Py_Main` and
/// `_Py_UnixMain` are older.
const PYTHON_MAINS: [&str; 3] = ["Py_BytesMain", "Py_Main", "_Py_UnixMain"];

/// Whether the ELF file at `path` is a CPython interpreter: its dynamic symbols name CPython's
/// `main`. Reads the dynamic symbol table only (no process is started).
pub fn is_cpython(path: &Path) -> bool {
    names_any_of(path, &PYTHON_MAINS).is_some()
}

/// The sanitizers whose runtime must be the first object a program loads, by the symbol their
/// instrumented code calls at start-up.
const SANITIZERS: [(&str, &str); 3] = [
    ("__asan_init", "AddressSanitizer"),
    ("__tsan_init", "ThreadSanitizer"),
    ("__msan_init", "MemorySanitizer"),
];

/// The sanitizer the program at `path` was built with, if any (its runtime refuses to start
/// after a preloaded library, or crashes).
pub fn sanitizer(path: &Path) -> Option<&'static str> {
    let init = SANITIZERS.map(|(symbol, _)| symbol);
    let found = names_any_of(path, &init)?;
    SANITIZERS
        .iter()
        .find(|(symbol, _)| *symbol == found)
        .map(|&(_, name)| name)
}

/// The first of `names` that the ELF file at `path` has among its dynamic symbols.
fn names_any_of<'a>(path: &Path, names: &[&'a str]) -> Option<&'a str> {
    let file = std::fs::File::open(path).ok()?;
    // SAFETY: a read-only private map of a file we only read; one replaced in place while we
    // read its symbol table could fault, as it would for any tool reading it.
    let map = unsafe { Mmap::map(&file) }.ok()?;
    let obj = object::File::parse(&*map).ok()?;
    // Compared as bytes: thousands of names, none needs to be checked as UTF-8.
    obj.dynamic_symbols().find_map(|s| {
        let n = s.name_bytes().ok()?;
        names.iter().copied().find(|m| m.as_bytes() == n)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_programs_are_dynamic() {
        assert_eq!(is_dynamic(&head(Path::new("/bin/ls"))), Some(true));
        assert_eq!(is_dynamic(b"#!/bin/sh\necho hi\n"), None);
        assert_eq!(is_dynamic(&head(Path::new("/no/such/file"))), None);
    }

    #[test]
    fn ls_is_not_python() {
        assert!(!is_cpython(Path::new("/bin/ls")));
        assert!(!is_cpython(Path::new("/no/such/file")));
    }
}
