//! Colour and emphasis for text reports on a terminal: the peak stands out, sizes are graded by
//! their share (half or more: bold red; a tenth: yellow; under a hundredth: dim), and a
//! location's `file:line` is cyan. A report writes through a [`Styled`] writer, which writes the
//! terminal's SGR sequences only when colour is on ([`super::visible::Visible::colored`]); the
//! sequences go around the escaping of the capture's names, so a name still cannot reach the
//! terminal as a command.

use super::locations::UNKNOWN;
use std::fmt::Display;
use std::io::{self, Write};

/// A report's output that may carry colour.
pub trait Styled: Write {
    /// Starts the SGR style `code` (`"1;31"`), or ends styling (`"0"`), when colour is on.
    fn style(&mut self, code: &str) -> io::Result<()>;
}

/// A writer without colour.
pub struct Plain<W: Write>(pub W);

impl<W: Write> Write for Plain<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl<W: Write> Styled for Plain<W> {
    fn style(&mut self, _: &str) -> io::Result<()> {
        Ok(())
    }
}

pub const BOLD: &str = "1";
pub const DIM: &str = "2";
/// The peak, and sizes of half the whole or more.
pub const STRONG: &str = "1;31";
pub const YELLOW: &str = "33";
pub const CYAN: &str = "36";
pub const RED: &str = "31";
pub const GREEN: &str = "32";

/// Writes `text` in style `code` (no style when `code` is empty).
pub fn paint(out: &mut impl Styled, code: &str, text: impl Display) -> io::Result<()> {
    if code.is_empty() {
        return write!(out, "{text}");
    }
    out.style(code)?;
    write!(out, "{text}")?;
    out.style("0")
}

/// The style of a size that is `part` of `whole`.
pub fn by_share(part: u64, whole: u64) -> &'static str {
    if whole == 0 {
        return "";
    }
    let share = part as f64 / whole as f64;
    if share >= 0.5 {
        STRONG
    } else if share >= 0.1 {
        YELLOW
    } else if share >= 0.01 {
        ""
    } else {
        DIM
    }
}

/// Writes a location's label with its `file:line` in cyan (`f at app.py:3`: `app.py:3`; a
/// label that is only a file too); `<unknown>` is dim; other labels (a native address) plain.
pub fn location(out: &mut impl Styled, label: &str) -> io::Result<()> {
    // A line break in a name (a function, file or symbol of the program's) would start a row
    // of its own in the report: written as `\x0a`, as the other control characters are.
    let label = &*super::visible::escape(label);
    if label == UNKNOWN {
        return paint(out, DIM, label);
    }
    match label.rfind(" at ") {
        Some(at) => {
            write!(out, "{}", &label[..at])?;
            paint(out, DIM, " at ")?;
            paint(out, CYAN, &label[at + 4..])
        }
        None if looks_like_file(label) => paint(out, CYAN, label),
        None => write!(out, "{label}"),
    }
}

/// `app.py:3`, `/a/b.c:10`, `<frozen x>:4`: a file and line without a function.
fn looks_like_file(label: &str) -> bool {
    label
        .rsplit_once(':')
        .is_some_and(|(file, line)| !file.is_empty() && line.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that shows styles as `[code]`.
    struct Marked(Vec<u8>);
    impl Write for Marked {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.write(buf)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    impl Styled for Marked {
        fn style(&mut self, code: &str) -> io::Result<()> {
            write!(self.0, "[{code}]")
        }
    }

    fn shown(label: &str) -> String {
        let mut m = Marked(Vec::new());
        location(&mut m, label).unwrap();
        String::from_utf8(m.0).unwrap()
    }

    #[test]
    fn locations_and_shares() {
        assert_eq!(shown("f at app.py:3"), "f[2] at [0][36]app.py:3[0]");
        assert_eq!(shown("app.py:3"), "[36]app.py:3[0]");
        assert_eq!(shown("<unknown>"), "[2]<unknown>[0]");
        assert_eq!(shown("libc.so.6+0x1234"), "libc.so.6+0x1234");
        assert_eq!(by_share(60, 100), STRONG);
        assert_eq!(by_share(10, 100), YELLOW);
        assert_eq!(by_share(5, 100), "");
        assert_eq!(by_share(0, 100), DIM);
        let mut p = Plain(Vec::new());
        paint(&mut p, STRONG, "x").unwrap();
        assert_eq!(p.0, b"x");
    }
}
