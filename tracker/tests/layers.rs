//! The tracker's modules form one-way layers, one folder of tracker/src each, from the bottom
//! up: base → capture → stacks → record → hooks → session. This test reads the sources and fails
//! on any import of a higher layer from a lower one (`use crate::…`, `crate::x::` in code,
//! `super::` chains), listing each, so that the import cycles of old cannot come back.
//!
//! A path like `crate::sys` (the short names lib.rs gives every layer's modules) is resolved to
//! its layer by the folder its file lives in.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// Bottom to top.
const LAYERS: [&str; 6] = ["base", "capture", "stacks", "record", "hooks", "session"];

/// Upward imports still to be removed: (file relative to tracker/src, module imported). Each
/// must still occur (so the list only shrinks); a new one fails the test.
const KNOWN: &[(&str, &str)] = &[];

/// One import found in a file: the line and the path as written.
#[derive(Debug, Clone, PartialEq)]
struct Import {
    line: usize,
    /// Module path from the crate root: `["sys"]`, `["stacks", "python"]`, or `[]` for an item
    /// of the crate root itself (ACTIVE).
    path: Vec<String>,
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .expect("tracker/src is readable")
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// The module path a file defines: `base/sys.rs` → base::sys, `stacks/python/mod.rs` →
/// stacks::python, `lib.rs` → the root.
fn module_path(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().unwrap_or_default();
    let stem = last.trim_end_matches(".rs");
    if stem != "mod" && stem != "lib" {
        parts.push(stem.to_string());
    }
    parts
}

/// The source without comments (line, doc and block comments) and with string contents blanked,
/// lines kept in place.
fn strip_comments(src: &str) -> String {
    let mut out = String::with_capacity(src.len());
    let b = src.as_bytes();
    let mut i = 0;
    let mut in_str = false;
    while i < b.len() {
        let c = b[i];
        if in_str {
            if c == b'\\' && i + 1 < b.len() {
                out.push_str("  ");
                i += 2;
                continue;
            }
            if c == b'"' {
                in_str = false;
                out.push('"');
            } else if c == b'\n' {
                out.push('\n');
            } else if c.is_ascii() {
                out.push(' ');
            }
            i += 1;
        } else if c == b'"' {
            in_str = true;
            out.push('"');
            i += 1;
        } else if c == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if c == b'/' && b.get(i + 1) == Some(&b'*') {
            i += 2;
            while i < b.len() && !(b[i] == b'*' && b.get(i + 1) == Some(&b'/')) {
                if b[i] == b'\n' {
                    out.push('\n');
                }
                i += 1;
            }
            i += 2;
        } else if c == b'\'' && b.get(i + 2) == Some(&b'\'') {
            // A char literal like '"': copied whole so that it opens no string.
            out.push_str(&src[i..i + 3]);
            i += 3;
        } else {
            // Non-ASCII bytes only occur in comments and strings here; keep the text valid.
            let ch = src[i..].chars().next().unwrap_or(' ');
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

fn ident_at(b: &[u8], mut i: usize) -> (String, usize) {
    let start = i;
    while i < b.len() && is_ident(b[i]) {
        i += 1;
    }
    (String::from_utf8_lossy(&b[start..i]).into_owned(), i)
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && b[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

/// The first segments named by a use-tree group `{a, b::{c, d}, self}` starting at `b[i] == '{'`.
fn group_heads(b: &[u8], i: usize) -> Vec<String> {
    let mut heads = Vec::new();
    let mut depth = 0;
    let mut j = i;
    let mut expect_head = false;
    while j < b.len() {
        match b[j] {
            b'{' => {
                depth += 1;
                if depth == 1 {
                    expect_head = true;
                }
                j += 1;
            }
            b'}' => {
                depth -= 1;
                j += 1;
                if depth == 0 {
                    break;
                }
            }
            b',' => {
                if depth == 1 {
                    expect_head = true;
                }
                j += 1;
            }
            c if expect_head && is_ident(c) => {
                let (name, next) = ident_at(b, j);
                heads.push(name);
                expect_head = false;
                j = next;
            }
            c if c.is_ascii_whitespace() => j += 1,
            _ => {
                expect_head = false;
                j += 1;
            }
        }
    }
    heads
}

/// Every path into the crate that a file's code names, resolved against the file's own module
/// path for `super::`.
fn imports(src: &str, own: &[String]) -> Vec<Import> {
    let code = strip_comments(src);
    let b = code.as_bytes();
    let mut found = Vec::new();
    let line_of = |i: usize| code[..i].bytes().filter(|&c| c == b'\n').count() + 1;
    let mut i = 0;
    while i < b.len() {
        let starts_word = i == 0 || !is_ident(b[i - 1]);
        if !starts_word {
            i += 1;
            continue;
        }
        let (base, mut j): (Vec<String>, usize) = if code[i..].starts_with("crate::") {
            (Vec::new(), i + "crate::".len())
        } else if code[i..].starts_with("super::") {
            let mut k = 0;
            let mut j = i;
            while code[j..].starts_with("super::") {
                k += 1;
                j += "super::".len();
            }
            let keep = own.len().saturating_sub(k);
            (own[..keep].to_vec(), j)
        } else {
            i += 1;
            continue;
        };
        j = skip_ws(b, j);
        let heads = if b.get(j) == Some(&b'{') {
            group_heads(b, j)
        } else {
            vec![ident_at(b, j).0]
        };
        for head in heads {
            let mut path = base.clone();
            if head != "self" && !head.is_empty() {
                path.push(head);
            }
            found.push(Import {
                line: line_of(i),
                path,
            });
        }
        i = j;
    }
    found
}

/// Which layer each module name belongs to: the layers themselves and every file or folder
/// directly inside a layer's folder (lib.rs gives them all short paths).
fn layer_names(src: &Path) -> BTreeMap<String, usize> {
    let mut names = BTreeMap::new();
    for (n, layer) in LAYERS.iter().enumerate() {
        names.insert(layer.to_string(), n);
        let dir = src.join(layer);
        for e in fs::read_dir(&dir).unwrap_or_else(|_| panic!("{} is a folder", dir.display())) {
            let p = e.expect("directory entry").path();
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            let name = if p.is_dir() {
                name.into_owned()
            } else if let Some(stem) = name.strip_suffix(".rs") {
                stem.to_string()
            } else {
                continue;
            };
            if name == "mod" {
                continue;
            }
            if let Some(other) = names.insert(name.clone(), n) {
                assert_eq!(
                    other, n,
                    "module name {name} is used in two layers: the short paths are ambiguous"
                );
            }
        }
    }
    names
}

/// The layer a path leads into, or None for an item of the crate root (ACTIVE) or a name that
/// is not a module.
fn target_layer(path: &[String], names: &BTreeMap<String, usize>) -> Option<usize> {
    names.get(path.first()?).copied()
}

/// Every upward import in tracker/src: (file, line, module, from layer, to layer).
fn upward_imports() -> Vec<(String, usize, String, usize, usize)> {
    let src = src_dir();
    let names = layer_names(&src);
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut up = Vec::new();
    for file in files {
        let rel = file.strip_prefix(&src).expect("under src").to_path_buf();
        let own = module_path(&rel);
        let rel_s = rel.to_string_lossy().replace('\\', "/");
        let Some(first) = own.first() else {
            continue; // lib.rs: the root wires the layers together.
        };
        let from = LAYERS
            .iter()
            .position(|l| l == first)
            .unwrap_or_else(|| panic!("{rel_s} is in no layer folder ({})", LAYERS.join(", ")));
        let text = fs::read_to_string(&file).expect("source is UTF-8");
        for imp in imports(&text, &own) {
            if let Some(to) = target_layer(&imp.path, &names) {
                if to > from {
                    up.push((rel_s.clone(), imp.line, imp.path.join("::"), from, to));
                }
            }
        }
    }
    up
}

#[test]
fn no_layer_imports_a_higher_one() {
    let up = upward_imports();
    let mut new = Vec::new();
    for (file, line, path, from, to) in &up {
        let module = path.split("::").next().unwrap_or_default();
        if !KNOWN.iter().any(|(f, m)| f == file && *m == module) {
            new.push(format!(
                "  tracker/src/{file}:{line}: crate::{path} ({} imports {})",
                LAYERS[*from], LAYERS[*to]
            ));
        }
    }
    assert!(
        new.is_empty(),
        "upward imports (a lower layer may not import a higher one; hand it a function at \
         start-up instead, or move the code):\n{}",
        new.join("\n")
    );
    let gone: Vec<_> = KNOWN
        .iter()
        .filter(|(f, m)| {
            !up.iter()
                .any(|(file, _, path, _, _)| file == f && path.split("::").next() == Some(m))
        })
        .collect();
    assert!(
        gone.is_empty(),
        "no longer imported, remove from KNOWN: {gone:?}"
    );
}

/// Module-level import cycles still to be broken, inside one layer (groups of modules that
/// import each other, sorted). Each must still occur; a new one fails the test.
const KNOWN_CYCLES: &[&[&str]] = &[];

/// The module (a file or folder directly in a layer folder) a path names, if any.
fn module_of(path: &[String]) -> Option<&str> {
    match path {
        [layer, module, ..] if LAYERS.contains(&layer.as_str()) => Some(module),
        [module, ..] if !LAYERS.contains(&module.as_str()) => Some(module),
        _ => None,
    }
}

/// Groups of modules that import each other (strongly connected, two or more), sorted.
fn import_cycles() -> Vec<Vec<String>> {
    let src = src_dir();
    let names = layer_names(&src);
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut edges: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let rel = file.strip_prefix(&src).expect("under src").to_path_buf();
        let own = module_path(&rel);
        let Some(from) = module_of(&own).map(str::to_string) else {
            continue; // lib.rs and the layers' mod.rs
        };
        let text = fs::read_to_string(&file).expect("source is UTF-8");
        for imp in imports(&text, &own) {
            if let Some(to) = module_of(&imp.path) {
                if to != from && names.contains_key(to) {
                    edges
                        .entry(from.clone())
                        .or_default()
                        .insert(to.to_string());
                }
            }
        }
    }
    // Reachability by depth-first search from each module (a few dozen of them).
    let reach = |start: &str| {
        let mut seen = std::collections::BTreeSet::new();
        let mut todo = vec![start.to_string()];
        while let Some(m) = todo.pop() {
            for n in edges.get(&m).into_iter().flatten() {
                if seen.insert(n.clone()) {
                    todo.push(n.clone());
                }
            }
        }
        seen
    };
    let reached: BTreeMap<String, _> = edges.keys().map(|m| (m.clone(), reach(m))).collect();
    let mut groups: Vec<Vec<String>> = Vec::new();
    for (m, r) in &reached {
        if !r.contains(m) || groups.iter().any(|g| g.contains(m)) {
            continue;
        }
        let group: Vec<String> = reached
            .iter()
            .filter(|(n, rn)| rn.contains(m) && r.contains(*n))
            .map(|(n, _)| n.clone())
            .collect();
        groups.push(group);
    }
    groups
}

#[test]
fn no_modules_import_each_other_in_a_circle() {
    let cycles = import_cycles();
    let known: Vec<Vec<String>> = KNOWN_CYCLES
        .iter()
        .map(|g| g.iter().map(|s| s.to_string()).collect())
        .collect();
    let new: Vec<_> = cycles.iter().filter(|c| !known.contains(c)).collect();
    assert!(
        new.is_empty(),
        "modules that import each other in a circle: {new:?}"
    );
    let gone: Vec<_> = known.iter().filter(|k| !cycles.contains(k)).collect();
    assert!(
        gone.is_empty(),
        "circle no longer there, remove from KNOWN_CYCLES: {gone:?}"
    );
}

#[test]
fn every_source_file_is_in_a_layer_folder() {
    let src = src_dir();
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    for file in files {
        let rel = file.strip_prefix(&src).expect("under src");
        let own = module_path(rel);
        if let Some(first) = own.first() {
            assert!(
                LAYERS.contains(&first.as_str()),
                "{} is in no layer folder",
                rel.display()
            );
        }
    }
}

/// Every exported symbol is defined in one file: the library's C surface is read there.
#[test]
fn every_export_is_in_session_exports() {
    let src = src_dir();
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut elsewhere = Vec::new();
    for file in files {
        let rel = file
            .strip_prefix(&src)
            .expect("under src")
            .to_string_lossy()
            .into_owned();
        if rel == "session/exports.rs" {
            continue;
        }
        let code = strip_comments(&fs::read_to_string(&file).expect("source is UTF-8"));
        for (n, line) in code.lines().enumerate() {
            if line.contains("no_mangle") || line.contains("export_name") {
                elsewhere.push(format!("tracker/src/{rel}:{}", n + 1));
            }
        }
    }
    assert!(
        elsewhere.is_empty(),
        "exported outside session/exports.rs (define the symbol there, as a jump to the \
         implementation): {elsewhere:?}"
    );
}

#[test]
fn the_reader_finds_every_form_of_import() {
    let own: Vec<String> = ["capture", "file"].iter().map(|s| s.to_string()).collect();
    let src = r#"
//! crate::session in a comment is no import
use crate::{sys, thread::{close_all, X}, ACTIVE};
use crate::lock::SpinLock;
use super::fd::CaptureFd;
fn f() {
    let s = "crate::hooks in a string";
    crate::lifecycle::finish_now();
    super::super::record::thread::close_all();
}
"#;
    let got: Vec<(usize, String)> = imports(src, &own)
        .into_iter()
        .map(|i| (i.line, i.path.join("::")))
        .collect();
    let want: Vec<(usize, String)> = vec![
        (3, "sys".into()),
        (3, "thread".into()),
        (3, "ACTIVE".into()),
        (4, "lock".into()),
        (5, "capture::fd".into()),
        (8, "lifecycle".into()),
        (9, "record".into()),
    ];
    assert_eq!(got, want);
}
