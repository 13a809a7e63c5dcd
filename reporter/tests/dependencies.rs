//! The library stays free of the command line and the terminal: the Python extension depends
//! on it alone, and must not pull in clap, ratatui, crossterm, indicatif or signal-hook (they
//! belong to the `memtrace` command, reporter/cli).

use std::path::Path;
use std::process::Command;

const TERMINAL_CRATES: &[&str] = &["clap", "ratatui", "crossterm", "indicatif", "signal-hook"];

#[test]
fn the_library_has_no_command_line_or_terminal_crates() {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let out = Command::new(cargo)
        .args(["tree", "-p", "memtrace-reporter", "-e", "normal,build"])
        .args(["--prefix", "none", "--format", "{lib}"])
        .arg("--manifest-path")
        .arg(&manifest)
        .output()
        .expect("cargo tree runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8_lossy(&out.stdout);
    let names: Vec<&str> = tree.lines().map(str::trim).collect();
    assert!(names.contains(&"memtrace_reporter"), "{tree}");
    for bad in TERMINAL_CRATES {
        let lib = bad.replace('-', "_");
        assert!(
            !names.iter().any(|n| *n == lib),
            "memtrace-reporter depends on {bad}:\n{tree}"
        );
    }
}

#[test]
fn the_python_extension_depends_on_the_library_not_the_command() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../python/Cargo.toml");
    let text = std::fs::read_to_string(&manifest).expect("python/Cargo.toml");
    assert!(text.contains("memtrace-reporter = { path = \"../reporter\" }"));
    assert!(!text.contains("memtrace-cli"), "{text}");
}
