//! The file header: what was run, when, and how the capture was taken.

use crate::varint;
use std::fmt;

pub const FILE_MAGIC: [u8; 8] = *b"MEMTRACE";
/// A reader refuses a different major version; minor versions only add what old readers skip.
pub const MAJOR: u16 = 1;
pub const MINOR: u16 = 4;
/// Size of the fixed part: magic, major, minor, header length, crc32, reserved.
pub const FIXED_LEN: usize = 24;
/// Chunks start at the header length rounded up to this.
pub const DATA_ALIGN: usize = 64;
/// Longest header a writer produces (command lines are cut to fit).
pub const MAX_HEADER_LEN: usize = 60 * 1024;

/// What a record's tick counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TickSource {
    /// Ticks are CLOCK_MONOTONIC nanoseconds.
    MonotonicNs,
    /// Ticks are the x86 time-stamp counter shifted right by `shift` bits; convert with the
    /// (tick, monotonic ns) pairs of the header, the chunk headers and the trailer.
    Tsc { shift: u8 },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileHeader {
    pub major: u16,
    pub minor: u16,
    pub pid: u32,
    pub ppid: u32,
    pub start_realtime_ns: u64,
    pub start_mono_ns: u64,
    pub start_tick: u64,
    pub tick_source: TickSource,
    /// Bits of `crate::options`.
    pub options: u64,
    pub argv: Vec<Vec<u8>>,
    pub exe: Vec<u8>,
    pub tool_version: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderError {
    TooShort,
    /// The file starts as a capture and ends inside its header: `have` bytes of `need` (None:
    /// the header's length is not there either).
    CutShort {
        have: usize,
        need: Option<usize>,
    },
    NotACapture,
    UnsupportedVersion {
        major: u16,
        minor: u16,
    },
    Corrupt(&'static str),
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderError::TooShort => write!(f, "the file is too short to be a memtrace capture"),
            HeaderError::CutShort { have, need } => {
                write!(f, "a memtrace capture cut short inside its header ({have} ")?;
                match need {
                    Some(need) => write!(f, "of {need} bytes)"),
                    None => write!(f, "bytes)"),
                }
            }
            HeaderError::NotACapture => write!(f, "not a memtrace capture (bad magic number)"),
            HeaderError::UnsupportedVersion { major, minor } => write!(
                f,
                "capture format version {major}.{minor} is not supported by this memtrace (reads {MAJOR}.x)"
            ),
            HeaderError::Corrupt(what) => write!(f, "corrupt capture header: {what}"),
        }
    }
}

impl std::error::Error for HeaderError {}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_u64(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn put_u64(out: &mut Vec<u8>, v: u64) {
    let mut tmp = [0u8; varint::MAX_VARINT_LEN];
    let end = varint::put(&mut tmp, 0, v);
    out.extend_from_slice(&tmp[..end]);
}

impl FileHeader {
    /// Encodes the header; `data_start(len)` gives where the first chunk goes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(512);
        out.extend_from_slice(&FILE_MAGIC);
        out.extend_from_slice(&MAJOR.to_le_bytes());
        out.extend_from_slice(&MINOR.to_le_bytes());
        out.extend_from_slice(&[0u8; 12]); // header length, crc, reserved: filled below
        put_u64(&mut out, u64::from(self.pid));
        put_u64(&mut out, u64::from(self.ppid));
        put_u64(&mut out, self.start_realtime_ns);
        put_u64(&mut out, self.start_mono_ns);
        put_u64(&mut out, self.start_tick);
        match self.tick_source {
            TickSource::MonotonicNs => put_u64(&mut out, 0),
            TickSource::Tsc { shift } => {
                put_u64(&mut out, 1);
                put_u64(&mut out, u64::from(shift));
            }
        }
        put_u64(&mut out, self.options);
        // Arguments are cut so that the header stays bounded.
        let budget = MAX_HEADER_LEN - 1024 - self.exe.len().min(4096);
        let mut used = 0usize;
        let mut argv: Vec<&[u8]> = Vec::new();
        for arg in &self.argv {
            if used + arg.len() > budget {
                break;
            }
            used += arg.len() + 10;
            argv.push(arg);
        }
        put_u64(&mut out, argv.len() as u64);
        for arg in argv {
            put_bytes(&mut out, arg);
        }
        put_bytes(&mut out, &self.exe[..self.exe.len().min(4096)]);
        put_bytes(
            &mut out,
            &self.tool_version[..self.tool_version.len().min(256)],
        );
        let len = out.len() as u32;
        out[12..16].copy_from_slice(&len.to_le_bytes());
        let crc = crate::crc::crc32(&out[FIXED_LEN..]);
        out[16..20].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// Where chunks begin for a header of `header_len` bytes.
    pub fn data_start(header_len: usize) -> usize {
        header_len.div_ceil(DATA_ALIGN) * DATA_ALIGN
    }

    /// Decodes a header from the start of a file; returns it and its encoded length.
    pub fn decode(buf: &[u8]) -> Result<(FileHeader, usize), HeaderError> {
        if buf.len() < 8 {
            return Err(HeaderError::TooShort);
        }
        if buf[..8] != FILE_MAGIC {
            return Err(HeaderError::NotACapture);
        }
        if buf.len() < FIXED_LEN {
            return Err(HeaderError::CutShort {
                have: buf.len(),
                need: None,
            });
        }
        let major = u16::from_le_bytes([buf[8], buf[9]]);
        let minor = u16::from_le_bytes([buf[10], buf[11]]);
        if major != MAJOR {
            return Err(HeaderError::UnsupportedVersion { major, minor });
        }
        let len = u32::from_le_bytes([buf[12], buf[13], buf[14], buf[15]]) as usize;
        if !(FIXED_LEN..=MAX_HEADER_LEN).contains(&len) {
            return Err(HeaderError::Corrupt("impossible header length"));
        }
        if buf.len() < len {
            return Err(HeaderError::CutShort {
                have: buf.len(),
                need: Some(len),
            });
        }
        let crc = u32::from_le_bytes([buf[16], buf[17], buf[18], buf[19]]);
        if crate::crc::crc32(&buf[FIXED_LEN..len]) != crc {
            return Err(HeaderError::Corrupt("checksum mismatch"));
        }
        let body = &buf[..len];
        let mut pos = FIXED_LEN;
        let bad = HeaderError::Corrupt("truncated field");
        let mut next = || varint::get(body, &mut pos);
        let pid = next().ok_or(bad.clone())? as u32;
        let ppid = next().ok_or(bad.clone())? as u32;
        let start_realtime_ns = next().ok_or(bad.clone())?;
        let start_mono_ns = next().ok_or(bad.clone())?;
        let start_tick = next().ok_or(bad.clone())?;
        let tick_source = match next().ok_or(bad.clone())? {
            0 => TickSource::MonotonicNs,
            1 => TickSource::Tsc {
                shift: next().ok_or(bad.clone())?.min(63) as u8,
            },
            _ => return Err(HeaderError::Corrupt("unknown tick source")),
        };
        let options = next().ok_or(bad.clone())?;
        let take_bytes = |pos: &mut usize| -> Result<Vec<u8>, HeaderError> {
            let n = varint::get(body, pos).ok_or(bad.clone())? as usize;
            let end = pos
                .checked_add(n)
                .filter(|&e| e <= body.len())
                .ok_or(bad.clone())?;
            let v = body[*pos..end].to_vec();
            *pos = end;
            Ok(v)
        };
        let argc = varint::get(body, &mut pos).ok_or(HeaderError::Corrupt("truncated field"))?;
        let mut argv = Vec::new();
        for _ in 0..argc {
            argv.push(take_bytes(&mut pos)?);
        }
        let exe = take_bytes(&mut pos)?;
        let tool_version = take_bytes(&mut pos)?;
        Ok((
            FileHeader {
                major,
                minor,
                pid,
                ppid,
                start_realtime_ns,
                start_mono_ns,
                start_tick,
                tick_source,
                options,
                argv,
                exe,
                tool_version,
            },
            len,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> FileHeader {
        FileHeader {
            major: MAJOR,
            minor: MINOR,
            pid: 42,
            ppid: 7,
            start_realtime_ns: 1_700_000_000_000_000_000,
            start_mono_ns: 123_456,
            start_tick: 99,
            tick_source: TickSource::Tsc { shift: 8 },
            options: crate::options::FOLLOW_FORK,
            argv: vec![b"./prog".to_vec(), b"arg one".to_vec()],
            exe: b"/tmp/prog".to_vec(),
            tool_version: b"0.1.0".to_vec(),
        }
    }

    #[test]
    fn round_trip() {
        let h = sample();
        let bytes = h.encode();
        let (back, len) = FileHeader::decode(&bytes).expect("decodes");
        assert_eq!(back, h);
        assert_eq!(len, bytes.len());
    }

    #[test]
    fn rejects_bad_input() {
        let bytes = sample().encode();
        assert_eq!(
            FileHeader::decode(b"hello world, not a capture"),
            Err(HeaderError::NotACapture)
        );
        assert_eq!(FileHeader::decode(&bytes[..4]), Err(HeaderError::TooShort));
        assert_eq!(
            FileHeader::decode(&bytes[..10]),
            Err(HeaderError::CutShort {
                have: 10,
                need: None
            })
        );
        assert_eq!(
            FileHeader::decode(&bytes[..30]),
            Err(HeaderError::CutShort {
                have: 30,
                need: Some(bytes.len())
            })
        );
        let mut v2 = bytes.clone();
        v2[8] = 2;
        assert!(matches!(
            FileHeader::decode(&v2),
            Err(HeaderError::UnsupportedVersion { major: 2, .. })
        ));
        let mut flipped = bytes.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 0x55;
        assert!(matches!(
            FileHeader::decode(&flipped),
            Err(HeaderError::Corrupt(_))
        ));
    }
}
