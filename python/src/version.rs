//! The Python version of a capture's interpreter, from the file names the capture recorded:
//! the executable (`python3.11`), a loaded `libpython3.11.so`, or a source file under
//! `lib/python3.11/`. (Tested by the Python suite: tests/python, on each Python version.)

/// "3.11" for the first name that shows a Python version, None when none does.
pub fn python_version<'a>(names: impl IntoIterator<Item = &'a [u8]>) -> Option<String> {
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
