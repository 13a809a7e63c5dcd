//! Every key docs/TUI.md lists, pressed in `memtrace tree` running in tmux, each with the effect
//! the document promises seen on the screen (the selected row's position in the footer, the
//! panel's function and line, rows folding and unfolding). A key mapped to the wrong action
//! (`g` and `G` swapped, say) fails here. Skipped when tmux is missing.

use memtrace_e2e::python::{python, tracked, write};
use memtrace_e2e::tmux::{have_tmux, Tmux};
use memtrace_e2e::{memtrace_bin, scratch};
use std::path::{Path, PathBuf};

/// `keys.py`: `main` calls `big` (9 MB, the biggest path, opened), `chain1` → `chain2` →
/// `chain3` (7 MB), imports `heavy` (5 MB at import time, under importlib's frames) and calls
/// `f00`..`f29`, each keeping less than the one before: the tree at the peak has some 74 rows when
/// it opens, more than a page.
fn script() -> String {
    let mut lines: Vec<String> = ["import sys", "sys.path.insert(0, '.')", "KEEP = []", ""]
        .map(String::from)
        .to_vec();
    let mut add = |l: &[&str]| lines.extend(l.iter().map(|s| s.to_string()));
    add(&["def big():", "    KEEP.append(b'\\0' * 9_000_000)", ""]);
    add(&["def chain3():", "    KEEP.append(b'\\1' * 7_000_000)", ""]);
    add(&[
        "def chain2():",
        "    chain3()",
        "",
        "def chain1():",
        "    chain2()",
        "",
    ]);
    for i in 0..30 {
        lines.push(format!("def f{i:02}():"));
        lines.push(format!("    KEEP.append(b'\\2' * {})", (40 - i) * 10_000));
        lines.push(String::new());
    }
    lines.extend(
        [
            "def main():",
            "    big()",
            "    chain1()",
            "    import heavy",
            "    KEEP.append(heavy)",
        ]
        .map(String::from),
    );
    for i in 0..30 {
        lines.push(format!("    f{i:02}()"));
    }
    lines.extend(["", "main()", ""].map(String::from));
    lines.join("\n")
}

fn capture(dir: &Path) -> PathBuf {
    let script = write(dir, "keys.py", &script());
    write(dir, "heavy.py", "DATA = b\"\\3\" * 5_000_000\n");
    let capture = dir.join("keys.bin");
    let arg = script.to_string_lossy().into_owned();
    let out = tracked(python(), &capture, &[&arg], dir, b"");
    assert!(out.status.success(), "{out:?}");
    capture
}

/// The bottom line: the prompt, a message, and the selected row's position "N/ROWS".
fn footer(screen: &[String]) -> &str {
    screen
        .iter()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(String::as_str)
        .unwrap_or("")
}

/// The panel names the selected node `name` (and, when given, at keys.py:`line`).
fn selected(screen: &[String], name: &str, line: Option<u32>) -> bool {
    let named = screen.iter().any(|l| l.starts_with(&format!("│{name} ")));
    let at = line.is_none_or(|n| {
        screen
            .iter()
            .any(|l| l.starts_with("│at ") && l.contains(&format!("/keys.py:{n} ")))
    });
    named && at
}

/// Presses `key`, then waits until the selection is row `pos` ("N/ROWS") and is `name`.
fn press(tmux: &Tmux, key: &str, pos: &str, name: &str, line: Option<u32>) -> Vec<String> {
    tmux.key(key);
    tmux.wait(&format!("{key}: row {pos}, {name} {line:?}"), |s| {
        footer(s).ends_with(&format!(" {pos}")) && selected(s, name, line)
    })
}

/// The number of rows the tree has now (the footer's "N/ROWS").
/// Presses `key`, which must select the root row (the whole view) of a tree of `t` rows.
fn to_root(tmux: &Tmux, key: &str, t: u32) -> Vec<String> {
    press(
        tmux,
        key,
        &format!("1/{t}"),
        "all memory live at the peak",
        None,
    )
}

/// Presses `key`, which must select the last row of a tree of `t` rows: a child of the root
/// (depth 1). Returns the name the panel gives it.
fn to_last(tmux: &Tmux, key: &str, t: u32) -> String {
    tmux.key(key);
    let s = tmux.wait(&format!("{key}: the last row, {t}/{t}"), |s| {
        footer(s).ends_with(&format!(" {t}/{t}")) && depth(s) == Some(1)
    });
    // The panel: the name on the line above "at FILE:LINE".
    s.windows(2)
        .find(|w| w[1].starts_with("│at "))
        .and_then(|w| w[0].strip_prefix('│'))
        .and_then(|l| l.split_whitespace().next())
        .map(String::from)
        .unwrap_or_else(|| panic!("no panel:\n{}", s.join("\n")))
}

/// The selected row's depth, as the panel gives it ("…; depth N").
fn depth(screen: &[String]) -> Option<u32> {
    screen.iter().find_map(|l| {
        let rest = l.split_once("; depth ")?.1;
        rest.split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    })
}

fn rows(screen: &[String]) -> u32 {
    let f = footer(screen);
    f.rsplit_once('/')
        .and_then(|(_, n)| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no row count in {f:?}"))
}

fn has(screen: &[String], text: &str) -> bool {
    screen.iter().any(|l| l.contains(text))
}

/// `memtrace tree` on the script's capture (in the scratch folder `name`), in an 80×24 window
/// that reports how the UI exited.
fn open_tree(name: &str) -> Tmux {
    let capture = capture(&scratch(name));
    let command = format!(
        "'{}' tree '{}'; echo \"EXITED $?\"; sleep 60",
        memtrace_bin().display(),
        capture.display()
    );
    Tmux::start(&command, 80, 24)
}

#[test]
fn every_documented_key_does_what_the_document_says() {
    if !have_tmux() {
        return;
    }
    let tmux = open_tree("tui-keys");
    // Opens on big (row 4): the whole view, <module>, main, big. The rows: main's 32 calls
    // under <module>, and the little the module's other lines allocate (74 here).
    let s = tmux.wait("the tree", |s| {
        footer(s).contains(" 4/") && selected(s, "big", Some(6))
    });
    let t = rows(&s);
    assert!(t > 40, "{t} rows");

    // ↑ ↓, k j: move by one row.
    press(&tmux, "k", &format!("3/{}", t), "main", Some(108));
    press(&tmux, "Up", &format!("2/{}", t), "<module>", Some(143));
    press(&tmux, "j", &format!("3/{}", t), "main", Some(108));
    press(&tmux, "Down", &format!("4/{}", t), "big", Some(6));

    // G, End: the last row; g, Home: the first (the whole view). The last row is the root's
    // smallest child (only the biggest path is open), some start-up allocation of CPython's
    // whose name varies by version: G and End must both select it.
    let last = to_last(&tmux, "G", t);
    to_root(&tmux, "g", t);
    assert_eq!(to_last(&tmux, "End", t), last);
    to_root(&tmux, "Home", t);

    // PageDown, PageUp: by a page (the 12 rows the tree shows above the panel).
    press(&tmux, "PageDown", &format!("13/{}", t), "main", Some(118));
    press(&tmux, "PageDown", &format!("25/{}", t), "main", Some(130));
    press(&tmux, "PageUp", &format!("13/{}", t), "main", Some(118));

    // To main calling chain1 (row 5, folded).
    to_root(&tmux, "g", t);
    press(&tmux, "j", &format!("2/{}", t), "<module>", Some(143));
    press(&tmux, "j", &format!("3/{}", t), "main", Some(108));
    press(&tmux, "j", &format!("4/{}", t), "big", Some(6));
    let s = press(&tmux, "j", &format!("5/{}", t), "main", Some(109));
    assert!(has(&s, "▸ main  keys.py:109"), "{}", s.join("\n"));

    // l: expands; on an expanded node, to its first child.
    let s = press(&tmux, "l", &format!("5/{}", t + 1), "main", Some(109));
    assert!(has(&s, "▾ main  keys.py:109"), "{}", s.join("\n"));
    assert!(has(&s, "▸ chain1  keys.py:15"), "{}", s.join("\n"));
    press(&tmux, "l", &format!("6/{}", t + 1), "chain1", Some(15));
    // h: on a collapsed node, to its parent; on an expanded one, collapses.
    press(&tmux, "h", &format!("5/{}", t + 1), "main", Some(109));
    let s = press(&tmux, "h", &format!("5/{}", t), "main", Some(109));
    assert!(has(&s, "▸ main  keys.py:109"), "{}", s.join("\n"));
    assert!(!has(&s, "chain1  keys.py"), "{}", s.join("\n"));

    // → ←, Enter, space: the same folding.
    press(&tmux, "Right", &format!("5/{}", t + 1), "main", Some(109));
    press(&tmux, "Left", &format!("5/{}", t), "main", Some(109));
    press(&tmux, "Enter", &format!("5/{}", t + 1), "main", Some(109));
    press(&tmux, "Enter", &format!("5/{}", t), "main", Some(109));
    press(&tmux, "Space", &format!("5/{}", t + 1), "main", Some(109));
    press(&tmux, "Space", &format!("5/{}", t), "main", Some(109));

    // e: the whole subtree, down to chain3.
    let s = press(&tmux, "e", &format!("5/{}", t + 3), "main", Some(109));
    for row in [
        "▾ chain1  keys.py:15",
        "▾ chain2  keys.py:12",
        "chain3  keys.py:9",
    ] {
        assert!(has(&s, row), "{row}:\n{}", s.join("\n"));
    }

    // /: search from the top; n, N: next and previous match.
    press(
        &tmux,
        "g",
        &format!("1/{}", t + 3),
        "all memory live at the peak",
        None,
    );
    tmux.key("/");
    tmux.wait("the search prompt", |s| footer(s).starts_with('/'));
    tmux.text("F0");
    tmux.wait("the typed search", |s| footer(s).starts_with("/F0"));
    tmux.key("Enter");
    tmux.wait("the first of f00..f09", |s| {
        footer(s).starts_with("match 1 of 10") && selected(s, "f00", Some(18))
    });
    tmux.key("n");
    tmux.wait("the next match", |s| {
        footer(s).starts_with("match 2 of 10") && selected(s, "f01", Some(21))
    });
    tmux.key("N");
    tmux.wait("the previous match", |s| {
        footer(s).starts_with("match 1 of 10") && selected(s, "f00", Some(18))
    });
    // Esc cancels a search being typed: the selection stays, the UI too.
    tmux.key("/");
    tmux.text("chain");
    tmux.wait("the typed search", |s| footer(s).starts_with("/chain"));
    tmux.key("Escape");
    let s = tmux.wait("the search cancelled", |s| !footer(s).starts_with('/'));
    assert!(selected(&s, "f00", Some(18)), "{}", s.join("\n"));

    // i: importlib's frames hidden (heavy's module directly below main), then shown again.
    tmux.key("/");
    tmux.text("heavy");
    tmux.key("Enter");
    let s = tmux.wait("heavy's module", |s| {
        footer(s).starts_with("match 1 of 1") && has(s, "│at ") && has(s, "heavy.py:1")
    });
    assert!(has(&s, "depth 8"), "{}", s.join("\n"));
    assert!(has(&s, "_call_with_frames_removed"), "{}", s.join("\n"));
    tmux.key("i");
    let s = tmux.wait("imports hidden", |s| {
        footer(s).contains("imports hidden") && has(s, "depth 3")
    });
    assert!(has(&s, "heavy.py:1"), "{}", s.join("\n"));
    assert!(!has(&s, "<frozen"), "{}", s.join("\n"));
    tmux.key("i");
    tmux.wait("imports shown", |s| {
        !footer(s).contains("imports hidden") && has(s, "depth 8") && has(s, "<frozen")
    });

    // Esc (outside a search) quits, status 0.
    tmux.key("Escape");
    let s = tmux.wait("the UI to quit", |s| has(s, "EXITED"));
    assert!(has(&s, "EXITED 0"), "{}", s.join("\n"));
    assert!(!has(&s, "allocs"), "{}", s.join("\n"));
}

#[test]
fn q_quits() {
    if !have_tmux() {
        return;
    }
    let tmux = open_tree("tui-keys-q");
    tmux.wait("the tree", |s| footer(s).contains(" 4/"));
    tmux.key("q");
    let s = tmux.wait("the UI to quit", |s| has(s, "EXITED"));
    assert!(has(&s, "EXITED 0"), "{}", s.join("\n"));
}

#[test]
fn ctrl_z_gives_the_terminal_back_and_fg_takes_it_again() {
    // In raw mode Ctrl-Z is a key: the view ignored it; and a SIGTSTP from outside stopped it
    // with the terminal still in its alternate screen and raw mode, the shell's prompt drawn
    // into the view, and no redraw at `fg`.
    if !have_tmux() {
        return;
    }
    let dir = scratch("tui-suspend");
    let cap = capture(&dir);
    let command = format!(
        "cd {} && PS1='SHELL$ ' exec bash --norc --noprofile -i",
        dir.display()
    );
    let tmux = Tmux::start(&command, 100, 30);
    tmux.wait_for("SHELL$");
    tmux.text(&format!(
        "{} tree {}",
        memtrace_bin().display(),
        cap.display()
    ));
    tmux.key("Enter");
    tmux.wait_for("all memory live at the peak");
    tmux.key("C-z");
    // The shell has the terminal back, in its own modes.
    tmux.wait_for("Stopped");
    tmux.text("stty -a | grep -o -- '-*icanon' | sed s/^/mode:/");
    tmux.key("Enter");
    let screen = tmux.wait("the terminal's mode", |s| {
        s.iter().any(|l| l.trim().starts_with("mode:"))
    });
    assert!(
        screen.iter().any(|l| l.trim() == "mode:icanon"),
        "{screen:#?}"
    );
    assert!(!has(&screen, "all memory live at the peak"), "{screen:#?}");
    tmux.text("fg");
    tmux.key("Enter");
    // Drawn anew, and keys work again.
    tmux.wait_for("all memory live at the peak");
    tmux.key("q");
    tmux.wait("the shell's prompt after q", |s| {
        s.iter().filter(|l| l.starts_with("SHELL$")).count() >= 3
            && !has(s, "all memory live at the peak")
    });
    tmux.text("jobs | wc -l | sed s/^/jobs:/");
    tmux.key("Enter");
    let screen = tmux.wait("the count of jobs", |s| {
        s.iter().any(|l| l.trim().starts_with("jobs:"))
    });
    assert!(screen.iter().any(|l| l.trim() == "jobs:0"), "{screen:#?}");
}

#[test]
fn ctrl_z_without_job_control_is_ignored() {
    // Under `sh -c` (tmux's, ssh -t's, docker -it's command) the group is orphaned: the
    // kernel drops its SIGTSTP, and the view's own stop was never continued (memtrace stopped
    // for good). The view ignores Ctrl-Z there, as the terminal would.
    if !have_tmux() {
        return;
    }
    let dir = scratch("tui-suspend-orphan");
    let cap = capture(&dir);
    let command = format!(
        "sh -c '{} tree {}; echo EXITED $?; sleep 60'",
        memtrace_bin().display(),
        cap.display()
    );
    let tmux = Tmux::start(&command, 100, 30);
    tmux.wait_for("all memory live at the peak");
    tmux.key("C-z");
    std::thread::sleep(std::time::Duration::from_millis(500));
    tmux.key("q");
    let screen = tmux.wait_for("EXITED");
    assert!(screen.iter().any(|l| l.trim() == "EXITED 0"), "{screen:#?}");
}
