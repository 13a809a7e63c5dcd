//! `memtrace completions bash|zsh|fish` and `memtrace man`: made from the command line itself,
//! so they name every command and option; bash's completes `memtrace st` to `stats`.

use std::process::{Command, Output};

fn memtrace(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_memtrace"))
        .args(args)
        .output()
        .expect("memtrace runs")
}

fn stdout(args: &[&str]) -> String {
    let out = memtrace(args);
    assert_eq!(out.status.code(), Some(0), "{args:?}: {out:?}");
    String::from_utf8(out.stdout).expect("utf-8")
}

/// What bash's completion offers for the words typed so far (the last one being completed).
fn bash_completes(words: &[&str]) -> Vec<String> {
    let script = stdout(&["completions", "bash"]);
    let dir = std::env::temp_dir().join(format!("memtrace-completions-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temp dir");
    let file = dir.join("memtrace.bash");
    std::fs::write(&file, script).expect("write the script");
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let line = format!(
        "source '{}'; COMP_WORDS=({}); COMP_CWORD={}; COMP_LINE='{}'; COMP_POINT=${{#COMP_LINE}}; \
         _memtrace memtrace '{}' '{}'; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        file.display(),
        quoted.join(" "),
        words.len() - 1,
        words.join(" "),
        words[words.len() - 1],
        words[words.len() - 2],
    );
    let out = Command::new("bash")
        .args(["--norc", "-c", &line])
        .output()
        .expect("bash runs");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

#[test]
fn bash_completes_commands_and_options() {
    assert_eq!(bash_completes(&["memtrace", "st"]), ["stats"]);
    assert_eq!(bash_completes(&["memtrace", "fl"]), ["flamegraph"]);
    let options = bash_completes(&["memtrace", "stats", "--fu"]);
    assert_eq!(options, ["--full-paths"]);
    let colors = bash_completes(&["memtrace", "stats", "--color", ""]);
    assert_eq!(colors, ["auto", "always", "never"]);
}

#[test]
fn zsh_and_fish_scripts_name_every_command() {
    let zsh = stdout(&["completions", "zsh"]);
    assert!(zsh.starts_with("#compdef memtrace\n"), "{zsh}");
    let fish = stdout(&["completions", "fish"]);
    for command in [
        "run",
        "stats",
        "tree",
        "summary",
        "diff",
        "flamegraph",
        "export",
        "completions",
        "man",
    ] {
        assert!(zsh.contains(&format!("'{command}:")), "zsh lacks {command}");
        assert!(
            fish.contains(&format!("-a \"{command}\"")),
            "fish lacks {command}"
        );
    }
    assert!(fish.contains("-l full-paths"), "{fish}");
    // A shell that is not offered is a usage error naming the ones that are.
    let out = memtrace(&["completions", "powershell"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("(possible values: bash, zsh, fish)"), "{err}");
}

#[test]
fn man_prints_the_page_or_writes_one_per_command() {
    let page = stdout(&["man"]);
    assert!(page.contains(".TH memtrace 1"), "{page}");
    assert!(
        page.contains(".SH NAME\nmemtrace \\- Track the memory allocations"),
        "{page}"
    );
    assert!(page.contains("memtrace\\-completions(1)"), "{page}");
    let dir = std::env::temp_dir().join(format!("memtrace-man-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temp dir");
    let d = dir.to_str().expect("utf-8 path");
    stdout(&["man", "-d", d]);
    for name in [
        "memtrace.1",
        "memtrace-run.1",
        "memtrace-stats.1",
        "memtrace-tree.1",
    ] {
        let text = std::fs::read_to_string(dir.join(name)).expect(name);
        assert!(text.starts_with(".ie \\n(.g"), "{name}: {text}");
    }
    let stats = std::fs::read_to_string(dir.join("memtrace-stats.1")).expect("stats page");
    assert!(stats.contains("\\-\\-full\\-paths"), "{stats}");
    // The examples are kept line for line (they were refilled into paragraphs and hyphenated,
    // under "EXTRA").
    assert!(!page.contains(".SH EXTRA"), "{page}");
    let examples = page
        .split(".SH \"NOTES AND EXAMPLES\"\n")
        .nth(1)
        .expect("the examples' section");
    assert!(
        examples.contains(".nf\n  memtrace run ./myprog arg1 arg2     trace a program, write memtrace\\-myprog.<pid>.bin\n"),
        "{examples}"
    );
    let out = memtrace(&["man", "-d", "/nonexistent/memtrace-man"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "memtrace: /nonexistent/memtrace-man: no such directory\n"
    );
}
