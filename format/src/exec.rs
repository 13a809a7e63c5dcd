//! The exec record: the tracked image replaced itself with another program (execve and
//! family), whose capture is another file. Written by the tracker just before the exec, as an
//! extended record (kind [`EXEC_KIND`]) in a Meta chunk; readers that do not know it skip it.
//!
//! It counts only when the capture's trailer carries `trailer_flags::EXEC` (an exec that failed
//! leaves its record behind, and the capture goes on to a trailer without the flag). When there
//! are several, the last one in the file is the exec that happened.
//!
//! Payload: byte string `next` (the path of the next image's capture), byte string `program`
//! (the file given to exec), varint argc, then argc byte strings (the new program's arguments,
//! cut to [`MAX_ARGS_BYTES`] in all).

use crate::varint;

/// Whether an executable's file name is an interpreter's: `python`, then a version (digits and
/// dots), then ABI letters, then maybe `-dbg` (`python3.12`, `python3.13t`, `python3.11-dbg`).
/// A program that embeds Python (`python-apphost`, a host linking libpython statically) is not
/// one: the tracker gives an exec'd interpreter the Python run's start-up hook, and `memtrace
/// run` tells a native run of one how to get Python frames.
pub fn interpreter_name(name: &[u8]) -> bool {
    let Some(rest) = name.strip_prefix(b"python") else {
        return false;
    };
    let rest = rest.strip_suffix(b"-dbg").unwrap_or(rest);
    let version_end = rest
        .iter()
        .position(|c| !(c.is_ascii_digit() || *c == b'.'))
        .unwrap_or(rest.len());
    rest[version_end..].iter().all(|c| c.is_ascii_lowercase())
}

/// Whether this build's tracker library can be loaded into the ELF program whose first bytes
/// are `head`: the same class (64-bit), byte order and, on x86-64 and AArch64, machine. None
/// when `head` is not an ELF header. `memtrace run` refuses such a program; the tracker runs
/// an exec'd one untracked with its own environment.
pub fn fits_this_build(head: &[u8]) -> Option<bool> {
    if head.len() < 20 || &head[..4] != b"\x7fELF" {
        return None;
    }
    let class = if cfg!(target_pointer_width = "64") {
        2
    } else {
        1
    };
    let machine: Option<u16> = if cfg!(target_arch = "x86_64") {
        Some(62)
    } else if cfg!(target_arch = "aarch64") {
        Some(183)
    } else {
        None
    };
    let theirs = u16::from_le_bytes([head[18], head[19]]);
    Some(head[4] == class && head[5] == 1 && machine.is_none_or(|m| m == theirs))
}

/// The extended record kind of an exec record.
pub const EXEC_KIND: u64 = 2;
/// The arguments are cut to about this many bytes (the record stays small).
pub const MAX_ARGS_BYTES: usize = 4096;
/// Paths longer than this are cut (they would not name a file anyway).
pub const MAX_PATH: usize = 4096;
/// Room an encoded payload never exceeds.
pub const MAX_PAYLOAD: usize =
    2 * (MAX_PATH + varint::MAX_VARINT_LEN) + MAX_ARGS_BYTES + 64 * varint::MAX_VARINT_LEN + 16;

/// A decoded exec record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecRecord {
    pub next: Vec<u8>,
    pub program: Vec<u8>,
    pub argv: Vec<Vec<u8>>,
}

fn put_bytes(buf: &mut [u8], pos: usize, bytes: &[u8]) -> usize {
    let pos = varint::put(buf, pos, bytes.len() as u64);
    buf[pos..pos + bytes.len()].copy_from_slice(bytes);
    pos + bytes.len()
}

/// Encodes the payload into `buf` (at least [`MAX_PAYLOAD`] bytes) without allocating; `args`
/// yields the arguments in order. Returns the length.
pub fn encode<'a>(
    buf: &mut [u8],
    next: &[u8],
    program: &[u8],
    args: impl Iterator<Item = &'a [u8]> + Clone,
) -> usize {
    let next = &next[..next.len().min(MAX_PATH)];
    let program = &program[..program.len().min(MAX_PATH)];
    let mut pos = put_bytes(buf, 0, next);
    pos = put_bytes(buf, pos, program);
    // The arguments that fit, whole (the last one cut), at most 64 of them.
    let mut budget = MAX_ARGS_BYTES;
    let mut argc = 0u64;
    for a in args.clone().take(64) {
        argc += 1;
        if a.len() >= budget {
            break;
        }
        budget -= a.len();
    }
    pos = varint::put(buf, pos, argc);
    let mut budget = MAX_ARGS_BYTES;
    for a in args.take(argc as usize) {
        let a = &a[..a.len().min(budget)];
        budget -= a.len();
        pos = put_bytes(buf, pos, a);
    }
    pos
}

/// Decodes a payload; None when it is damaged.
pub fn decode(payload: &[u8]) -> Option<ExecRecord> {
    let mut pos = 0;
    let bytes = |pos: &mut usize| -> Option<Vec<u8>> {
        let n = usize::try_from(varint::get(payload, pos)?).ok()?;
        let end = pos.checked_add(n).filter(|&e| e <= payload.len())?;
        let v = payload[*pos..end].to_vec();
        *pos = end;
        Some(v)
    };
    let next = bytes(&mut pos)?;
    let program = bytes(&mut pos)?;
    let argc = varint::get(payload, &mut pos)?.min(64);
    let mut argv = Vec::new();
    for _ in 0..argc {
        argv.push(bytes(&mut pos)?);
    }
    Some(ExecRecord {
        next,
        program,
        argv,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpreters_are_told_from_programs_that_embed_python() {
        for name in [
            "python",
            "python3",
            "python3.12",
            "python3.13t",
            "python3.11-dbg",
            "python3.7m",
            "pythonw",
        ] {
            assert!(interpreter_name(name.as_bytes()), "{name}");
        }
        for name in [
            "python-apphost",
            "python3-config.sh",
            "mypython",
            "statichost",
            "py",
            "python3.12_app",
        ] {
            assert!(!interpreter_name(name.as_bytes()), "{name}");
        }
    }

    #[test]
    fn round_trip() {
        let mut buf = vec![0u8; MAX_PAYLOAD];
        let args: [&[u8]; 3] = [b"python3", b"x.py", b"--flag"];
        let n = encode(
            &mut buf,
            b"/tmp/run.bin.exec1",
            b"/usr/bin/python3",
            args.into_iter(),
        );
        let r = decode(&buf[..n]).expect("decodes");
        assert_eq!(r.next, b"/tmp/run.bin.exec1");
        assert_eq!(r.program, b"/usr/bin/python3");
        assert_eq!(r.argv, args.map(|a| a.to_vec()).to_vec());
        assert_eq!(decode(&buf[..n - 1]), None);
    }

    #[test]
    fn long_arguments_are_cut_to_fit() {
        let mut buf = vec![0u8; MAX_PAYLOAD];
        let big = vec![b'a'; 3000];
        let many: Vec<&[u8]> = vec![&big; 100];
        let n = encode(&mut buf, &big, &big, many.iter().copied());
        assert!(n <= MAX_PAYLOAD);
        let r = decode(&buf[..n]).expect("decodes");
        assert_eq!(r.argv.len(), 2);
        assert_eq!(r.argv[0].len(), 3000);
        assert_eq!(r.argv[1].len(), MAX_ARGS_BYTES - 3000);
    }
}
