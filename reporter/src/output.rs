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
    /// What `memtrace export` writes: its CSV header, speedscope's schema, a gzip file (pprof),
    /// folded stacks (lines ending in a count), or nothing at all (an empty file).
    Export,
    /// Anything else.
    Other,
    /// A file that cannot be read (its permissions): why.
    Unreadable(std::io::ErrorKind),
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
    let n = match std::fs::File::open(out).and_then(|mut f| f.read(&mut head)) {
        Ok(n) => n,
        // Not looked at: never taken for an empty export, nor replaced without --force.
        Err(e) => return Existing::Unreadable(e.kind()),
    };
    let head = &head[..n];
    if head.starts_with(&memtrace_format::header::FILE_MAGIC) {
        Existing::Capture
    } else if head
        .windows(PAGE_TAG.len())
        .any(|w| w == PAGE_TAG.as_bytes())
    {
        Existing::Page
    } else if is_export(head) {
        Existing::Export
    } else {
        Existing::Other
    }
}

/// Whether the first bytes of a file are those of an export (see [`Existing::Export`]).
fn is_export(head: &[u8]) -> bool {
    const GZIP: &[u8] = &[0x1f, 0x8b];
    let speedscope = crate::export::speedscope::SCHEMA.as_bytes();
    if head.is_empty()
        || head.starts_with(GZIP)
        || head.starts_with(crate::export::csv::HEADER.join(",").as_bytes())
        || head.windows(speedscope.len()).any(|w| w == speedscope)
    {
        return true;
    }
    // Folded stacks: every whole line is a stack, a space and a count.
    let whole = match head.iter().rposition(|&b| b == b'\n') {
        Some(end) => &head[..end],
        None => return false,
    };
    whole.split(|&b| b == b'\n').all(|line| {
        let count = line.rsplit(|&b| b == b' ').next().unwrap_or_default();
        line.len() > count.len() + 1 && !count.is_empty() && count.iter().all(u8::is_ascii_digit)
    })
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
        Existing::Other | Existing::Export => Err(format!(
            "{} already exists and is not a page memtrace wrote: not overwritten (use --force)",
            out.display()
        )),
        Existing::Unreadable(why) => Err(unreadable(out, why)),
    }
}

/// The line for an existing output that cannot be read: its reason, not --force (which then
/// failed on the same permissions).
fn unreadable(out: &Path, why: std::io::ErrorKind) -> String {
    format!(
        "cannot replace {}: {} (it cannot be read)",
        out.display(),
        std::io::Error::from(why)
    )
}

/// Checks, before a report's work, that `out` can be written: an existing file opened for
/// writing (not truncated), or a new one made and removed again. The error, the one line the
/// write itself would give, then comes at once rather than after the whole analysis (seconds on
/// a large capture).
pub fn check_writable(out: &Path) -> Result<(), String> {
    let cannot = |e: std::io::Error| format!("cannot write {}: {e}", out.display());
    match std::fs::metadata(out) {
        Ok(m) if m.is_dir() => Err(format!("cannot write {}: it is a directory", out.display())),
        // A FIFO or a device is opened once, by the write: opened and closed here, a FIFO's
        // reader took the close for the end and left, and the write waited for good.
        Ok(m) if !m.is_file() => Ok(()),
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

/// Writes the file `out` with `write`, whole or not at all: a regular file (or a new one) is
/// written beside it under a temporary name and renamed over it once complete, so that a write
/// that fails (a full disk) leaves the earlier file as it was, and no part-written one (it
/// left a cut page in place of a good one). A FIFO or a device is written in place, as is a
/// file in a directory where no other file can be made. A link is followed: the file it
/// names is the one replaced.
pub fn write_whole(
    out: &Path,
    write: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>,
) -> std::io::Result<()> {
    use std::io::Write;
    let target = match std::fs::metadata(out) {
        Ok(m) if !m.is_file() => return in_place(out, write),
        Ok(m) => Some((std::fs::canonicalize(out)?, m)),
        Err(_) => None,
    };
    let path = target.as_ref().map_or(out, |(p, _)| p.as_path());
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let temporary = path.with_file_name(format!(".{name}.{}.part", std::process::id()));
    let file = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&temporary)
    {
        Ok(f) => f,
        Err(_) => return in_place(out, write),
    };
    let written = (|| {
        if let Some((_, meta)) = &target {
            // The file keeps its permissions.
            file.set_permissions(meta.permissions())?;
        }
        let mut w = std::io::BufWriter::new(&file);
        write(&mut w)?;
        w.flush()?;
        drop(w);
        std::fs::rename(&temporary, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written
}

/// [`write_whole`] where no temporary file can be made or used.
fn in_place(
    out: &Path,
    write: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>,
) -> std::io::Result<()> {
    use std::io::Write;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(out)?;
    let mut w = std::io::BufWriter::new(file);
    write(&mut w)?;
    w.flush()
}

/// Checks that an export to `out` loses nothing: an export memtrace wrote is made again, but a
/// capture or any other file (a script named by mistake) is only replaced with `force`.
pub fn check_export_output(out: &Path, force: bool) -> Result<(), String> {
    match existing(out) {
        Existing::Nothing | Existing::Export => Ok(()),
        // A FIFO or a device: written to, not replaced.
        _ if std::fs::metadata(out).is_ok_and(|m| !m.is_file()) => Ok(()),
        _ if force => Ok(()),
        Existing::Capture => Err(format!(
            "{} is a capture: not overwritten (choose another file with -o, or use --force)",
            out.display()
        )),
        Existing::Page | Existing::Other => Err(format!(
            "{} already exists and is not an export memtrace wrote: not overwritten (use --force)",
            out.display()
        )),
        Existing::Unreadable(why) => Err(unreadable(out, why)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exports_are_told_from_other_files() {
        assert!(is_export(b""));
        assert!(is_export(b"location,function,file,line,live_bytes,live_allocations,allocated_bytes,allocations\n"));
        assert!(is_export(
            b"{\"$schema\":\"https://www.speedscope.app/file-format-schema.json\","
        ));
        assert!(is_export(&[0x1f, 0x8b, 8, 0]));
        assert!(is_export(
            b"main;f at a.py:3 4096\npid 7: x;g 12\npartial line wit"
        ));
        assert!(!is_export(b"import os\nx = 5\n"));
        assert!(!is_export(b"x = 5\nprint(x)\n"));
        assert!(!is_export(b"no newline 5"));
        assert!(!is_export(b"12\n"));
    }

    #[test]
    fn a_failed_write_leaves_the_earlier_file_whole() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("memtrace-whole-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let out = dir.join("page.html");
        std::fs::write(&out, "the good page").expect("write");
        std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o640)).expect("mode");
        let failed = write_whole(&out, |w| {
            w.write_all(b"half a pa")?;
            Err(std::io::Error::other("disk full"))
        });
        assert!(failed.is_err());
        assert_eq!(
            std::fs::read_to_string(&out).expect("read"),
            "the good page"
        );
        // Nothing left beside it; a write that works replaces it, its mode kept.
        let names = || {
            let mut n: Vec<String> = std::fs::read_dir(&dir)
                .expect("list")
                .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                .collect();
            n.sort();
            n
        };
        assert_eq!(names(), ["page.html"]);
        write_whole(&out, |w| w.write_all(b"a new page")).expect("written");
        assert_eq!(std::fs::read_to_string(&out).expect("read"), "a new page");
        let mode = std::fs::metadata(&out).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o640);
        // Through a link, the file it names is replaced and the link stays.
        let link = dir.join("link.html");
        std::os::unix::fs::symlink(&out, &link).expect("link");
        write_whole(&link, |w| w.write_all(b"through the link")).expect("written");
        assert!(std::fs::symlink_metadata(&link).expect("meta").is_symlink());
        assert_eq!(
            std::fs::read_to_string(&out).expect("read"),
            "through the link"
        );
        // A new file that fails is not left behind.
        let new = dir.join("new.csv");
        assert!(write_whole(&new, |_| Err(std::io::Error::other("no"))).is_err());
        assert!(!new.exists());
        assert_eq!(names(), ["link.html", "page.html"]);
        std::fs::remove_dir_all(&dir).expect("clean");
    }

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
        // Another file is not an export's to replace (a script named by mistake).
        assert!(check_export_output(&other, false).is_err());
        assert!(check_export_output(&other, true).is_ok());
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
