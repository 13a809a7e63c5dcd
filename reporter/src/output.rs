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

#[cfg(test)]
mod tests {
    use super::*;

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
