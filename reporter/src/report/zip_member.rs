//! A Python source inside a zip application (`python app.pyz` names its frames
//! `app.pyz/__main__.py`): the member read from the archive's central directory, stored or
//! deflated, as zipimport reads it. The archive may start with a `#!` line (`zipapp -p`): its
//! offsets count from where the zip data starts.

use flate2::read::DeflateDecoder;
use std::io::Read;

/// The end of central directory record's signature and fixed length.
const END_SIGNATURE: &[u8; 4] = b"PK\x05\x06";
const END_LEN: usize = 22;
const ENTRY_SIGNATURE: &[u8; 4] = b"PK\x01\x02";
const LOCAL_SIGNATURE: &[u8; 4] = b"PK\x03\x04";

fn u16_at(b: &[u8], at: usize) -> Option<usize> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?) as usize)
}

fn u32_at(b: &[u8], at: usize) -> Option<usize> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?) as usize)
}

/// The bytes of member `name` of the zip archive `archive`, at most `limit` of them once
/// inflated; None when the archive has no such member, is damaged, or uses another method.
pub fn read(archive: &[u8], name: &[u8], limit: u64) -> Option<Vec<u8>> {
    // The end record: the last signature in the final 64 KiB (a comment may follow it).
    let from = archive.len().saturating_sub(END_LEN + 0xFFFF);
    let end = (from..=archive.len().checked_sub(END_LEN)?)
        .rev()
        .find(|&i| archive[i..].starts_with(END_SIGNATURE))?;
    let entries = u16_at(archive, end + 10)?;
    let dir_len = u32_at(archive, end + 12)?;
    let dir_at = u32_at(archive, end + 16)?;
    // Data before the archive (a `#!` line): the directory ends where the end record starts.
    let base = end.checked_sub(dir_len)?.checked_sub(dir_at)?;
    let mut at = base + dir_at;
    for _ in 0..entries {
        if !archive.get(at..)?.starts_with(ENTRY_SIGNATURE) {
            return None;
        }
        let method = u16_at(archive, at + 10)?;
        let stored_len = u32_at(archive, at + 20)?;
        let full_len = u32_at(archive, at + 24)?;
        let name_len = u16_at(archive, at + 28)?;
        let extra_len = u16_at(archive, at + 30)?;
        let comment_len = u16_at(archive, at + 32)?;
        let local = base + u32_at(archive, at + 42)?;
        if archive.get(at + 46..at + 46 + name_len)? == name {
            if full_len as u64 > limit || !archive.get(local..)?.starts_with(LOCAL_SIGNATURE) {
                return None;
            }
            let data_at = local + 30 + u16_at(archive, local + 26)? + u16_at(archive, local + 28)?;
            let data = archive.get(data_at..data_at.checked_add(stored_len)?)?;
            return match method {
                0 => Some(data.to_vec()),
                8 => {
                    let mut out = Vec::with_capacity(full_len);
                    DeflateDecoder::new(data)
                        .take(limit)
                        .read_to_end(&mut out)
                        .ok()?;
                    Some(out)
                }
                _ => None,
            };
        }
        at += 46 + name_len + extra_len + comment_len;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A zip of one stored member and one deflated one, as Python's zipfile writes them, behind
    /// a `#!` line.
    fn archive() -> Vec<u8> {
        let mut out = b"#!/usr/bin/env python3\n".to_vec();
        let base = out.len();
        let members: [(&[u8], &[u8], u16); 2] = [
            (b"a.py", b"x = 1\n", 0),
            (
                b"pkg/__main__.py",
                b"print('hi')\nprint('hi')\nprint('hi')\n",
                8,
            ),
        ];
        let mut dir = Vec::new();
        for (name, text, method) in members {
            let data = match method {
                0 => text.to_vec(),
                _ => {
                    use std::io::Write;
                    let mut e =
                        flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
                    e.write_all(text).expect("deflate");
                    e.finish().expect("deflate")
                }
            };
            let local = (out.len() - base) as u32;
            out.extend_from_slice(LOCAL_SIGNATURE);
            out.extend_from_slice(&[20, 0, 0, 0]);
            out.extend_from_slice(&method.to_le_bytes());
            out.extend_from_slice(&[0; 8]);
            out.extend_from_slice(&(data.len() as u32).to_le_bytes());
            out.extend_from_slice(&(text.len() as u32).to_le_bytes());
            out.extend_from_slice(&(name.len() as u16).to_le_bytes());
            out.extend_from_slice(&[0, 0]);
            out.extend_from_slice(name);
            out.extend_from_slice(&data);
            dir.extend_from_slice(ENTRY_SIGNATURE);
            dir.extend_from_slice(&[20, 0, 20, 0, 0, 0]);
            dir.extend_from_slice(&method.to_le_bytes());
            dir.extend_from_slice(&[0; 8]);
            dir.extend_from_slice(&(data.len() as u32).to_le_bytes());
            dir.extend_from_slice(&(text.len() as u32).to_le_bytes());
            dir.extend_from_slice(&(name.len() as u16).to_le_bytes());
            dir.extend_from_slice(&[0; 12]);
            dir.extend_from_slice(&local.to_le_bytes());
            dir.extend_from_slice(name);
        }
        let dir_at = (out.len() - base) as u32;
        out.extend_from_slice(&dir);
        out.extend_from_slice(END_SIGNATURE);
        out.extend_from_slice(&[0, 0, 0, 0, 2, 0, 2, 0]);
        out.extend_from_slice(&(dir.len() as u32).to_le_bytes());
        out.extend_from_slice(&dir_at.to_le_bytes());
        out.extend_from_slice(&[0, 0]);
        out
    }

    #[test]
    fn members_stored_and_deflated_behind_a_shebang() {
        let zip = archive();
        assert_eq!(
            read(&zip, b"a.py", 1 << 20).as_deref(),
            Some(&b"x = 1\n"[..])
        );
        let main = read(&zip, b"pkg/__main__.py", 1 << 20).expect("member");
        assert_eq!(main, b"print('hi')\nprint('hi')\nprint('hi')\n");
        assert_eq!(read(&zip, b"b.py", 1 << 20), None);
        assert_eq!(read(&zip, b"pkg/__main__.py", 10), None);
        assert_eq!(read(&zip[..zip.len() - 5], b"a.py", 1 << 20), None);
        assert_eq!(read(b"not a zip", b"a.py", 1 << 20), None);
    }
}
