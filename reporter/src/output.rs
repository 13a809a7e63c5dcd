//! Files a report writes: never one of its inputs. `memtrace flamegraph cap.html` would
//! otherwise replace the capture it reads (named .html) with the page made from it.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Whether `a` and `b` name one file: the same device and inode (hard links, symbolic links,
/// `./x` and `x` alike), or failing that the same canonical path.
fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
            (Ok(x), Ok(y)) => x == y,
            _ => false,
        },
    }
}

/// Checks that writing `out` leaves every input alone; the error is the one line to show.
pub fn check_not_input(out: &Path, inputs: &[&Path]) -> Result<(), String> {
    match inputs.iter().find(|i| same_file(out, i)) {
        Some(input) => Err(format!(
            "refusing to write the report to {}: it is the input {} (choose another file with -o)",
            out.display(),
            input.display()
        )),
        None => Ok(()),
    }
}

/// Checks that a capture may be written at `out` (`memtrace run -o`, `attach -o`): nothing
/// there, a directory (refused by the caller, in its words) or a regular file, perhaps behind
/// a link. A device, a FIFO or a socket is refused: a capture is a file mapped in memory, and
/// under `-f` the file would take the place of `/dev/null`.
pub fn check_capture_output(out: &Path) -> Result<(), String> {
    match std::fs::metadata(out) {
        Ok(m) if !m.is_file() && !m.is_dir() => Err(format!(
            "cannot write the capture to {}: it is not a regular file (a device, a FIFO or a \
             socket); a capture is a file of its own: name one with -o",
            out.display()
        )),
        _ => Ok(()),
    }
}

/// What an existing file at a report's output path is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Existing {
    /// Nothing there (or nothing readable).
    Nothing,
    /// A capture written by `memtrace run`.
    Capture,
    /// An HTML page memtrace wrote (its generator tag).
    Page,
    /// Anything else.
    Other,
}

/// Looks at the start of the file at `out`.
pub fn existing(out: &Path) -> Existing {
    use std::io::Read;
    let Ok(meta) = std::fs::metadata(out) else {
        return Existing::Nothing;
    };
    // Not opened: a FIFO would wait for a writer.
    if !meta.is_file() {
        return Existing::Other;
    }
    let mut head = [0u8; 512];
    let n = std::fs::File::open(out)
        .and_then(|mut f| f.read(&mut head))
        .unwrap_or(0);
    let head = &head[..n];
    if head.starts_with(&memtrace_format::header::FILE_MAGIC) {
        Existing::Capture
    } else if head
        .windows(PAGE_TAG.len())
        .any(|w| w == PAGE_TAG.as_bytes())
    {
        Existing::Page
    } else {
        Existing::Other
    }
}

/// The generator tag every page memtrace writes carries in its first bytes.
pub const PAGE_TAG: &str = "<meta name=\"generator\" content=\"memtrace";

/// Checks that writing the page `out` loses nothing: a page memtrace wrote is made again, but
/// a capture or any other file is only replaced with `force`. The error is the line to show.
pub fn check_page_output(out: &Path, force: bool) -> Result<(), String> {
    // No --force makes a directory a page: saying to use it led to a second refusal.
    if out.is_dir() {
        return Err(format!(
            "cannot write {}: it is a directory (name a file with -o)",
            out.display()
        ));
    }
    match existing(out) {
        Existing::Nothing | Existing::Page => Ok(()),
        _ if force => Ok(()),
        Existing::Capture => Err(format!(
            "{} is a capture: not overwritten (choose another file with -o, or use --force)",
            out.display()
        )),
        Existing::Other => Err(format!(
            "{} already exists and is not a page memtrace wrote: not overwritten (use --force)",
            out.display()
        )),
    }
}

/// Checks, before a report's work, that `out` can be written: an existing file opened for
/// writing (not truncated), or a new one made and removed again. The error, the one line the
/// write itself would give, then comes at once rather than after the whole analysis (seconds on
/// a large capture).
pub fn check_writable(out: &Path) -> Result<(), String> {
    let cannot = |e: std::io::Error| format!("cannot write {}: {e}", out.display());
    match std::fs::metadata(out) {
        Ok(m) if m.is_dir() => Err(format!("cannot write {}: it is a directory", out.display())),
        Ok(_) => std::fs::OpenOptions::new()
            .write(true)
            .open(out)
            .map(drop)
            .map_err(cannot),
        Err(_) => {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(out)
                .map_err(|e| format!("cannot create {}: {e}", out.display()))?;
            std::fs::remove_file(out).map_err(cannot)
        }
    }
}

/// Checks that an export to `out` loses no capture: an existing capture is only replaced with
/// `force` (any other file is replaced, as a shell's `>` would).
pub fn check_export_output(out: &Path, force: bool) -> Result<(), String> {
    if existing(out) == Existing::Capture && !force {
        return Err(format!(
            "{} is a capture: not overwritten (choose another file with -o, or use --force)",
            out.display()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_output_that_cannot_be_written_is_said_before_any_work() {
        let dir = std::env::temp_dir().join(format!("memtrace-writable-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let new = dir.join("new.html");
        assert_eq!(check_writable(&new), Ok(()));
        // Checked, not left behind.
        assert!(!new.exists());
        let missing = dir.join("no/such/dir/x.html");
        let err = check_writable(&missing).expect_err("no directory");
        assert!(
            err.starts_with(&format!("cannot create {}: ", missing.display())),
            "{err}"
        );
        let err = check_writable(&dir).expect_err("a directory");
        assert!(err.ends_with("it is a directory"), "{err}");
        let kept = dir.join("kept.html");
        std::fs::write(&kept, "page").expect("write");
        assert_eq!(check_writable(&kept), Ok(()));
        // Not truncated.
        assert_eq!(std::fs::read_to_string(&kept).expect("read"), "page");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_page_is_made_again_but_a_capture_or_another_file_needs_force() {
        let dir = std::env::temp_dir().join(format!("memtrace-overwrite-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let (page, capture, other, none) = (
            dir.join("page.html"),
            dir.join("cap.bin"),
            dir.join("notes.html"),
            dir.join("none.html"),
        );
        std::fs::write(
            &page,
            format!("<!DOCTYPE html><html><head>{PAGE_TAG} 0.1.0\">"),
        )
        .expect("write");
        std::fs::write(&capture, b"MEMTRACE\x01\x00rest").expect("write");
        std::fs::write(&other, b"precious").expect("write");
        assert_eq!(existing(&none), Existing::Nothing);
        assert!(check_page_output(&none, false).is_ok());
        assert!(check_page_output(&page, false).is_ok());
        assert!(check_page_output(&capture, false).is_err());
        assert!(check_page_output(&other, false).is_err());
        assert!(check_page_output(&capture, true).is_ok());
        assert!(check_page_output(&other, true).is_ok());
        assert!(check_export_output(&capture, false).is_err());
        assert!(check_export_output(&capture, true).is_ok());
        assert!(check_export_output(&other, false).is_ok());
        // A directory: refused with or without --force, and the line does not offer it.
        for force in [false, true] {
            let e = check_page_output(&dir, force).expect_err("a directory");
            assert!(
                e.ends_with("it is a directory (name a file with -o)"),
                "{e}"
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_input_is_refused_by_any_name() {
        let dir = std::env::temp_dir().join(format!("memtrace-output-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let input = dir.join("cap.html");
        std::fs::write(&input, b"capture").expect("write");
        let link = dir.join("link.html");
        let hard = dir.join("hard.html");
        let _ = std::fs::remove_file(&link);
        let _ = std::fs::remove_file(&hard);
        std::os::unix::fs::symlink(&input, &link).expect("symlink");
        std::fs::hard_link(&input, &hard).expect("hard link");
        for out in [&input, &link, &hard, &dir.join(".").join("cap.html")] {
            assert!(
                check_not_input(out, &[&input]).is_err(),
                "{}",
                out.display()
            );
        }
        assert!(check_not_input(&dir.join("other.html"), &[&input]).is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
