//! The Python version of a capture's interpreter, from the file names the capture recorded:
//! the executable (`python3.11`), a loaded `libpython3.11.so`, or a source file under
//! `lib/python3.11/`. One reading for the page, `lines` and the Python package's metadata.

use super::Capture;
use crate::analysis::Analysis;

/// "3.11" for the capture's executable or the first module whose name shows a Python version,
/// None when none does.
pub fn of_capture(capture: &Capture, analysis: &Analysis) -> Option<String> {
    let names = std::iter::once(capture.header.exe.as_slice())
        .chain(analysis.tables.modules.iter().map(|m| m.path.as_slice()));
    of_names(names)
}

/// "3.11" for the first name that shows a Python version, None when none does.
pub fn of_names<'a>(names: impl IntoIterator<Item = &'a [u8]>) -> Option<String> {
    names.into_iter().find_map(version_in)
}

/// The `X.Y` following `python` in a name (`X.Y` digits only).
fn version_in(name: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(name);
    let mut rest = text.as_ref();
    while let Some(at) = rest.find("python") {
        let after = &rest[at + "python".len()..];
        let major: String = after.chars().take_while(char::is_ascii_digit).collect();
        let tail = &after[major.len()..];
        if !major.is_empty() && tail.starts_with('.') {
            let minor: String = tail[1..].chars().take_while(char::is_ascii_digit).collect();
            if !minor.is_empty() {
                return Some(format!("{major}.{minor}"));
            }
        }
        rest = after;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::of_names;

    #[test]
    fn the_version_comes_from_the_first_name_that_shows_one() {
        let names: [&[u8]; 3] = [
            b"/usr/bin/env",
            b"/usr/lib/libpython3.12.so.1.0",
            b"python3.11",
        ];
        assert_eq!(of_names(names), Some("3.12".to_string()));
        assert_eq!(
            of_names([&b"/opt/py/lib/python3.10/os.py"[..]]),
            Some("3.10".into())
        );
        assert_eq!(of_names([&b"/usr/bin/python3"[..], b"./prog"]), None);
    }
}
