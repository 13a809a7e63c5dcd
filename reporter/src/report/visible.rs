//! Names from a capture (threads, functions, files, modules, the command line) shown safely.
//!
//! A capture is data from the traced program: a thread named `"\x1b]0;PWNED\x07"` printed raw
//! retitles the terminal, and a bidirectional override reorders the text around it. Every
//! control character (C0 but the line break, DEL, C1) and every bidirectional control is shown
//! as an escape instead: `\x1b` and `\u{202e}` in text, `\u001b` and `\u202e` in JSON (the same
//! string once parsed). [`escape`] does it to one string, [`Visible`] to everything written
//! through it.

use std::borrow::Cow;
use std::io::{self, Write};

/// How escapes are spelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    /// `\x1b`, `\u{202e}`: for people.
    Text,
    /// `\u001b`, `\u202e`: valid inside a JSON string, where alone such characters can occur
    /// in JSON text (serde_json escapes C0 itself, not DEL, C1 or bidirectional controls).
    Json,
}

/// A character a terminal could take as a command or that reorders the text around it.
pub fn is_unsafe(c: char) -> bool {
    matches!(c,
        '\0'..='\x09' | '\x0b'..='\x1f' | '\x7f'..='\u{9f}'
        // Bidirectional controls: marks, embeddings and overrides, isolates.
        | '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        // Invisible ones that join nothing: zero width space, word joiner and the invisible
        // operators, the byte order mark (two names that differ by one read the same).
        | '\u{200b}' | '\u{2060}'..='\u{2064}' | '\u{feff}'
        // The line and paragraph separators: a line break to some terminals and pagers.
        | '\u{2028}' | '\u{2029}')
}

fn push_escaped(out: &mut String, c: char, style: Style) {
    use std::fmt::Write as _;
    let _ = match (style, c as u32) {
        (Style::Text, n) if n < 0x80 => write!(out, "\\x{n:02x}"),
        (Style::Text, n) => write!(out, "\\u{{{n:x}}}"),
        (Style::Json, n) => write!(out, "\\u{n:04x}"),
    };
}

/// `s` with every unsafe character, the line break too, written as a text escape.
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.chars().any(|c| c == '\n' || is_unsafe(c)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c == '\n' || is_unsafe(c) {
            push_escaped(&mut out, c, Style::Text);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// A writer that escapes the unsafe characters of what goes through it (line breaks pass):
/// put around a report's output, it leaves no name of the capture a way to the terminal. Bytes
/// that are not UTF-8 are written as `\xNN` (text) or U+FFFD (JSON).
pub struct Visible<W: Write> {
    inner: W,
    style: Style,
    /// False: everything passes as it is (data written to a file).
    active: bool,
    /// The start of a character cut by the end of the last write.
    pending: Vec<u8>,
    /// Styles ([`super::paint::Styled`]) are written: a terminal that shows colour.
    color: bool,
}

impl<W: Write> Visible<W> {
    pub fn new(inner: W, style: Style) -> Visible<W> {
        Visible::with(inner, Some(style))
    }

    /// Escaping in `style`, or none.
    pub fn with(inner: W, style: Option<Style>) -> Visible<W> {
        Visible {
            inner,
            style: style.unwrap_or(Style::Text),
            active: style.is_some(),
            pending: Vec::new(),
            color: false,
        }
    }

    fn write_text(&mut self, s: &str) -> io::Result<()> {
        if !s.chars().any(is_unsafe) {
            return self.inner.write_all(s.as_bytes());
        }
        let mut out = String::with_capacity(s.len() + 16);
        for c in s.chars() {
            if is_unsafe(c) {
                push_escaped(&mut out, c, self.style);
            } else {
                out.push(c);
            }
        }
        self.inner.write_all(out.as_bytes())
    }

    fn write_invalid(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self.style {
            Style::Text => bytes
                .iter()
                .try_for_each(|b| write!(self.inner, "\\x{b:02x}")),
            Style::Json => self.inner.write_all("\u{fffd}".as_bytes()),
        }
    }

    /// Writes `bytes` after what is pending.
    fn write_bytes(&mut self, bytes: &[u8]) -> io::Result<()> {
        let joined;
        let mut rest: &[u8] = if self.pending.is_empty() {
            bytes
        } else {
            joined = [std::mem::take(&mut self.pending).as_slice(), bytes].concat();
            &joined
        };
        // Plain ASCII without control characters (nearly every line): as it is.
        if rest
            .iter()
            .all(|&b| (0x20..0x7f).contains(&b) || b == b'\n')
        {
            return self.inner.write_all(rest);
        }
        while !rest.is_empty() {
            match std::str::from_utf8(rest) {
                Ok(s) => return self.write_text(s),
                Err(e) => {
                    let (good, bad) = rest.split_at(e.valid_up_to());
                    // `good` is valid UTF-8, as `valid_up_to` says.
                    self.write_text(std::str::from_utf8(good).unwrap_or_default())?;
                    match e.error_len() {
                        // A character cut by the end of this write: wait for the rest.
                        None => {
                            self.pending = bad.to_vec();
                            return Ok(());
                        }
                        Some(n) => {
                            self.write_invalid(&bad[..n])?;
                            rest = &bad[n..];
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

impl<W: Write> Visible<W> {
    /// With `on`, the styles a report asks for are written (SGR sequences, past the escaping).
    pub fn colored(mut self, on: bool) -> Visible<W> {
        self.color = on;
        self
    }
}

impl<W: Write> super::paint::Styled for Visible<W> {
    fn style(&mut self, code: &str) -> io::Result<()> {
        if self.color && code.bytes().all(|b| b.is_ascii_digit() || b == b';') {
            write!(self.inner, "\x1b[{code}m")?;
        }
        Ok(())
    }
}

impl<W: Write> Write for Visible<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if !self.active {
            return self.inner.write(buf);
        }
        self.write_bytes(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        // A character still cut at a flush will not be completed: show its bytes.
        let pending = std::mem::take(&mut self.pending);
        if !pending.is_empty() {
            self.write_invalid(&pending)?;
        }
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn through(style: Style, pieces: &[&[u8]]) -> String {
        let mut v = Visible::new(Vec::new(), style);
        for p in pieces {
            v.write_all(p).expect("writes");
        }
        v.flush().expect("flushes");
        String::from_utf8(v.inner).expect("utf-8 out")
    }

    #[test]
    fn invisible_characters_are_shown() {
        assert_eq!(escape("a\u{200b}b\u{feff}"), "a\\u{200b}b\\u{feff}");
        // A joiner inside an emoji or a word of a script that needs it stays.
        assert_eq!(
            escape("\u{1f468}\u{200d}\u{1f469}"),
            "\u{1f468}\u{200d}\u{1f469}"
        );
    }

    #[test]
    fn escapes_are_visible() {
        assert_eq!(escape("main"), Cow::Borrowed("main"));
        assert_eq!(escape("\x1b]0;PWNED\x07"), "\\x1b]0;PWNED\\x07");
        assert_eq!(escape("a\nb\tc\x7f"), "a\\x0ab\\x09c\\x7f");
        assert_eq!(escape("\u{9b}31m x\u{202e}y é"), "\\u{9b}31m x\\u{202e}y é");
        assert_eq!(escape("a\u{2028}b\u{2029}"), "a\\u{2028}b\\u{2029}");
    }

    #[test]
    fn the_writer_keeps_line_breaks_and_joins_cut_characters() {
        let text = "t \x1b]0;X\x07 \u{202e}é\n";
        let bytes = text.as_bytes();
        for cut in 0..bytes.len() {
            let out = through(Style::Text, &[&bytes[..cut], &bytes[cut..]]);
            assert_eq!(out, "t \\x1b]0;X\\x07 \\u{202e}é\n", "cut at {cut}");
        }
        assert_eq!(through(Style::Text, &[b"a\xffb"]), "a\\xffb");
        assert_eq!(through(Style::Text, &[b"a\xc3"]), "a\\xc3");
    }

    #[test]
    fn json_stays_json() {
        let v = serde_json::json!({ "name": "a\x1b\u{9b}\u{202e}\x7fb" });
        let mut w = Visible::new(Vec::new(), Style::Json);
        serde_json::to_writer(&mut w, &v).expect("writes");
        w.flush().expect("flushes");
        let out = String::from_utf8(w.inner).expect("utf-8");
        assert!(out.is_ascii(), "{out}");
        assert_eq!(out, r#"{"name":"a\u001b\u009b\u202e\u007fb"}"#);
        let back: serde_json::Value = serde_json::from_str(&out).expect("parses");
        assert_eq!(back, v);
    }
}
