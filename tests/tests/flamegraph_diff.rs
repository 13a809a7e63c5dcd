//! `memtrace flamegraph --diff BASE NEW`: two runs of a script where one line allocates twice as
//! much in NEW and another the same: the differential page gives the first frame +100% and the
//! second 0%, in its hover texts and its table; the view options apply; bad captures are
//! one-line errors.

use memtrace_e2e::page::{frame_titles, self_contained};
use memtrace_e2e::python::{python, tracked, two_runs, write, TWICE_AND_SAME};
use memtrace_e2e::watchdog::Watched;
use memtrace_e2e::{memtrace_bin, scratch};
use memtrace_reporter::report::human::count as sep;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// `b"\0" * n` is one allocation of the bytes object: a 32-byte header, n bytes and a NUL.
const BLOCK: u64 = 10_000_000 + 33;
const SAME: u64 = 4_000_000 + 33;

struct Runs {
    dir: PathBuf,
    base: PathBuf,
    new: PathBuf,
    /// The script's path, as locations name it.
    file: String,
}

fn runs(name: &str) -> Runs {
    let (dir, script, base, new) = two_runs(name, TWICE_AND_SAME);
    Runs {
        dir,
        base,
        new,
        file: script.display().to_string(),
    }
}

fn flamegraph_diff(args: &[&str], base: &Path, new: &Path) -> Output {
    Command::new(memtrace_bin())
        .arg("flamegraph")
        .args(args)
        .arg("--diff")
        .arg(base)
        .arg(new)
        .output_watched()
}

/// The page written to `out` by `flamegraph --diff ARGS -o out`.
fn page(r: &Runs, args: &[&str], out: &str) -> String {
    let path = r.dir.join(out);
    let mut all = args.to_vec();
    let p = path.to_string_lossy().into_owned();
    all.extend(["-o", &p]);
    let o = flamegraph_diff(&all, &r.base, &r.new);
    assert!(
        o.status.success(),
        "flamegraph --diff {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    std::fs::read_to_string(&path).expect("the page is written")
}

/// The hover text of the frame named `name`.
fn title_of(titles: &[String], name: &str) -> String {
    titles
        .iter()
        .find(|t| t.starts_with(&format!("{name} (")))
        .unwrap_or_else(|| panic!("no frame {name} in {titles:#?}"))
        .clone()
}

/// Checks the hover texts of TWICE_AND_SAME's two lines (`file` the script's path): `block`'s
/// doubled (+100%), `same`'s unchanged; returns their frame names.
fn block_doubled_and_same_kept(titles: &[String], file: &str) -> (String, String) {
    let block = format!("block at {file}:5");
    let same = format!("same at {file}:9");
    assert_eq!(
        title_of(titles, &block),
        format!(
            "{block} ({} → {} bytes, +{} bytes, +100.0%)",
            sep(BLOCK),
            sep(2 * BLOCK),
            sep(BLOCK)
        )
    );
    assert_eq!(
        title_of(titles, &same),
        format!("{same} ({0} → {0} bytes, +0 bytes, 0%)", sep(SAME))
    );
    (block, same)
}

#[test]
fn the_line_allocating_twice_as_much_is_plus_100_percent_and_the_same_one_0() {
    let r = runs("flamediff-twice");
    let out = flamegraph_diff(&[], &r.base, &r.new);
    assert!(out.status.success(), "{out:?}");
    // The default output is NEW with .diff.html.
    let default = r.dir.join("run2.diff.html");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!("memtrace: wrote {}\n", default.display())
    );
    let html = std::fs::read_to_string(&default).expect("written");
    assert!(html.starts_with("<!DOCTYPE html>"));
    self_contained(&html);
    let titles = frame_titles(&html);
    let (block, same) = block_doubled_and_same_kept(&titles, &r.file);
    // The whole picture grew by one block; every frame has its before and after.
    let all = title_of(&titles, "all");
    assert!(
        all.contains(&format!(", +{} bytes, +", sep(BLOCK))),
        "{all}"
    );
    assert!(titles.iter().all(|t| t.contains(" bytes, ")), "{titles:#?}");
    // block's frame is red (it grew), same's is not coloured.
    let svg = memtrace_e2e::page::unescaped(&html);
    let fill = |name: &str| {
        let g = svg
            .split("<g><title>")
            .find(|g| g.starts_with(&format!("{name} (")))
            .expect("frame");
        g.split("fill=\"")
            .nth(1)
            .and_then(|f| f.split('"').next())
            .map(str::to_string)
    };
    assert!(
        fill(&block).is_some_and(|f| f.starts_with("rgb(255,")),
        "{:?}",
        fill(&block)
    );
    assert_eq!(fill(&same).as_deref(), Some("rgb(250,250,250)"));
    // The table: block's line first, +100%; same's has not changed, so it is not listed.
    let first = html
        .split("<tbody>")
        .nth(1)
        .and_then(|t| t.split("</tr>").next())
        .expect("a first row");
    assert_eq!(
        first,
        format!(
            "\n<tr><td>{block}</td><td class=\"n\">{BLOCK}</td><td class=\"n\">{}</td><td class=\"n\">+{BLOCK}</td><td class=\"n\">+100.0%</td>",
            2 * BLOCK
        )
    );
    assert!(!html.contains(&format!("<td>{same}</td>")));
    // The chart shows both heaps.
    assert!(html.contains("BASE heap (live bytes)"));
    assert!(html.contains("NEW heap (live bytes)"));
    assert!(html.len() < 1 << 20, "{} bytes", html.len());
}

#[test]
fn the_view_options_apply() {
    let r = runs("flamediff-views");
    let block = format!("block at {}:5", r.file);
    let plus_100 = format!(
        "{block} ({} → {} bytes, +{} bytes, +100.0%)",
        sep(BLOCK),
        sep(2 * BLOCK),
        sep(BLOCK)
    );
    // --leaks: the blocks are still live at exit; --inverted draws an icicle.
    let html = page(&r, &["--leaks", "--inverted"], "leaks.html");
    assert!(html.contains("var inverted = true"));
    assert!(html.contains("live at exit (--leaks)"));
    assert_eq!(title_of(&frame_titles(&html), &block), plus_100);
    // --threads: one tower per thread, matched by the thread's name (TIDs differ).
    let html = page(&r, &["--threads"], "threads.html");
    let titles = frame_titles(&html);
    assert_eq!(title_of(&titles, &block), plus_100);
    // The one thread's tower, matched across the runs, holds the whole change.
    let all = title_of(&titles, "all");
    let change = all.strip_prefix("all").expect("the root's title");
    assert!(
        titles
            .iter()
            .any(|t| t.starts_with("thread ") && t.ends_with(change)),
        "{titles:#?}"
    );
    // --python-only and --native-only.
    let html = page(&r, &["--python-only"], "python.html");
    assert_eq!(title_of(&frame_titles(&html), &block), plus_100);
    // The native frames regroup the same peak: the root's change is the default page's, exactly
    // (both runs' small allocations at the peak may differ by a few bytes, so not "+BLOCK").
    let html = page(&r, &["--native-only"], "native.html");
    let default = page(&r, &[], "default.html");
    let root = title_of(&frame_titles(&default), "all");
    assert_eq!(title_of(&frame_titles(&html), "all"), root);
    // A capture against itself: nothing changed anywhere.
    let o = flamegraph_diff(
        &["-o", &r.dir.join("self.html").to_string_lossy()],
        &r.new,
        &r.new,
    );
    assert!(o.status.success(), "{o:?}");
    let html = std::fs::read_to_string(r.dir.join("self.html")).expect("written");
    let titles = frame_titles(&html);
    assert!(!titles.is_empty());
    assert!(
        titles.iter().all(|t| t.ends_with(", +0 bytes, 0%)")),
        "{titles:#?}"
    );
}

/// Thousands of functions, each allocating from its own line and stack, all live at the peak.
const MANY_STACKS: &str = "\
source = ''.join(f'def f{i}():\\n    return bytearray({i % 97 + 200})\\n' for i in range(5000))
space = {}
exec(compile(source, 'generated.py', 'exec'), space)
keep = [space[f'f{i}']() for i in range(5000)]
del source, space
big = bytearray(64_000_000)
";

#[test]
fn many_stacks_give_a_small_page() {
    let dir = scratch("flamediff-many");
    let script = write(&dir, "many.py", MANY_STACKS);
    let cap = dir.join("many.bin");
    let out = tracked(python(), &cap, &[&script.to_string_lossy()], &dir, b"");
    assert!(out.status.success(), "{out:?}");
    let page = dir.join("many.html");
    let out = flamegraph_diff(&["-o", &page.to_string_lossy()], &cap, &cap);
    assert!(out.status.success(), "{out:?}");
    let html = std::fs::read_to_string(&page).expect("written");
    self_contained(&html);
    let titles = frame_titles(&html);
    assert!(
        titles
            .iter()
            .any(|t| t.starts_with("other (small frames) (")),
        "{titles:#?}"
    );
    assert!(titles.len() < 200, "{} frames", titles.len());
    assert!(html.len() < 1 << 20, "{} bytes", html.len());
}

#[test]
fn bad_captures_are_one_line_errors() {
    let r = runs("flamediff-bad");
    let garbage = r.dir.join("garbage.bin");
    std::fs::write(
        &garbage,
        b"not a capture at all, just some bytes\n".repeat(100),
    )
    .expect("write");
    let missing = Path::new("/nonexistent/new.bin");
    for (base, new) in [
        (r.base.as_path(), missing),
        (missing, r.new.as_path()),
        (garbage.as_path(), r.new.as_path()),
        (r.base.as_path(), garbage.as_path()),
    ] {
        let out = flamegraph_diff(&[], base, new);
        assert_eq!(out.status.code(), Some(1), "{base:?} {new:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.starts_with("memtrace: "), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    assert!(!r.dir.join("run2.diff.html").exists());
    assert!(!r.dir.join("new.diff.html").exists());
}

#[test]
fn a_capture_with_native_stacks_against_one_without_matches_by_python_frames() {
    // As `memtrace diff` does: each side's innermost locations differ otherwise (the C
    // function that allocated, the Python line), and every frame read as new or gone.
    let r = runs("flamediff-native");
    let native = r.dir.join("native2.bin");
    let out = tracked(python(), &native, &["--native", &r.file, "2"], &r.dir, b"");
    assert!(out.status.success(), "{out:?}");
    let path = r.dir.join("native.diff.html");
    let o = flamegraph_diff(&["-o", path.to_str().expect("utf-8")], &r.base, &native);
    assert!(o.status.success(), "{o:?}");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains(
            "NEW has native stacks and BASE has not: locations are compared by their Python frames"
        ),
        "{o:?}"
    );
    let html = std::fs::read_to_string(&path).expect("the page");
    let titles = frame_titles(&html);
    block_doubled_and_same_kept(&titles, &r.file);
}

#[test]
fn a_sampled_side_is_named_on_the_page_and_on_stderr() {
    // The page never said a side was sampled: its noise read as changes. Its warnings on
    // stderr did not say which side they were of.
    let r = runs("flamediff-sampled");
    let sampled = r.dir.join("sampled2.bin");
    let out = tracked(
        python(),
        &sampled,
        &["--sample-bytes", "64K", &r.file, "2"],
        &r.dir,
        b"",
    );
    assert!(out.status.success(), "{out:?}");
    let path = r.dir.join("sampled.diff.html");
    let o = flamegraph_diff(&["-o", path.to_str().expect("utf-8")], &r.base, &sampled);
    assert!(o.status.success(), "{o:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    let named = format!(
        "memtrace: warning: NEW {}: sampled capture",
        sampled.display()
    );
    assert!(err.contains(&named), "{err}");
    assert!(err.contains("NEW is sampled and BASE is not"), "{err}");
    let html = std::fs::read_to_string(&path).expect("the page");
    assert!(html.contains("NEW warning"), "no warning on the page");
    assert!(
        html.contains("sampled capture (--sample-bytes 65536)"),
        "no sampled note"
    );
    assert!(
        !html.contains("BASE warning"),
        "BASE has nothing to warn of"
    );
}

#[test]
fn callers_whose_lines_moved_are_still_matched() {
    // NEW's script has a comment line more above the module's calls: every frame under
    // `<module>` was "new" in NEW (0 → all its bytes) and BASE's frames were not drawn.
    let dir = scratch("flamediff-moved");
    let path = write(&dir, "moved.py", TWICE_AND_SAME);
    let file = path.display().to_string();
    let arg = file.clone();
    let base = dir.join("base.bin");
    let out = tracked(python(), &base, &[&arg, "1"], &dir, b"");
    assert!(out.status.success(), "{out:?}");
    let moved = TWICE_AND_SAME.replace("keep = [same()]", "# one line more\nkeep = [same()]");
    write(&dir, "moved.py", &moved);
    let new = dir.join("new.bin");
    let out = tracked(python(), &new, &[&arg, "2"], &dir, b"");
    assert!(out.status.success(), "{out:?}");
    let page = dir.join("moved.diff.html");
    let o = flamegraph_diff(&["-o", page.to_str().expect("utf-8")], &base, &new);
    assert!(o.status.success(), "{o:?}");
    let html = std::fs::read_to_string(&page).expect("the page");
    let titles = frame_titles(&html);
    block_doubled_and_same_kept(&titles, &file);
    // The module's frame, named without its line, holds both runs' bytes.
    let module = title_of(&titles, &format!("<module> at {file}"));
    assert!(!module.contains("(0 → "), "{module}");
    assert!(!titles.iter().any(|t| t.contains(", new)")), "{titles:#?}");
}
