//! Names recorded as bytes (file names, function names) that are not UTF-8: each byte that is
//! not part of valid UTF-8 is shown as `\xNN`, so that no two names read the same (a lossy
//! conversion made them all `\u{FFFD}`) and a file name can be turned back into its bytes to
//! open the file (`memtrace lines`).

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

/// `bytes` as text: valid UTF-8 as it is, each other byte as `\xNN`.
pub fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// The bytes an [`escape`]d name stands for, when it has escapes (None otherwise).
pub fn unescape(text: &str) -> Option<OsString> {
    if !text.contains("\\x") {
        return None;
    }
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'\\' && b.get(i + 1) == Some(&b'x') {
            if let (Some(h), Some(l)) = (
                b.get(i + 2).copied().and_then(hex),
                b.get(i + 3).copied().and_then(hex),
            ) {
                out.push((h * 16 + l) as u8);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    Some(OsString::from_vec(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_bytes_round_trip_through_escapes() {
        let name = b"/tmp/bad\xff\xfedir/my script \xc3\xbc.py";
        let text = escape(name);
        assert_eq!(text, "/tmp/bad\\xff\\xfedir/my script \u{fc}.py");
        assert_eq!(unescape(&text), Some(OsString::from_vec(name.to_vec())));
        assert_eq!(escape(b"plain.py"), "plain.py");
        assert_eq!(unescape("plain.py"), None);
    }
}
