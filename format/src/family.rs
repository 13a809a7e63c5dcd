//! The child record: a tracked process started a child process. Written by the parent when it
//! learns of the child (its fork returned, a vfork child execs, posix_spawn returned), as an
//! extended record (kind [`CHILD_KIND`]) in a raw Meta chunk whose tick is the child's start on
//! the parent's clock. Readers that do not know the kind skip it, so captures with and without
//! it stay readable by every reader.
//!
//! With the records a report finds a family from the parent's capture alone: each child's
//! capture is `<root capture>.<pid>` (its execs `<that>.exec<N>`), and each child's capture
//! holds the records of its own children.
//!
//! Payload: varint pid, varint parent pid, varint start time (realtime ns since the epoch),
//! varint how ([`how`]), byte string `program`, varint argc, then argc byte strings (the
//! command; for a fork, the parent's own: the child is its copy until it execs). The command is
//! cut as the exec record's is ([`crate::exec::MAX_ARGS_BYTES`]).

use crate::varint;

/// The extended record kind of a child record.
pub const CHILD_KIND: u64 = 3;

/// How the child was started.
pub mod how {
    /// fork(): the child is a copy of the parent.
    pub const FORK: u64 = 1;
    /// A vfork() child that exec'd the command (Python's subprocess and multiprocessing).
    pub const VFORK_EXEC: u64 = 2;
    /// posix_spawn() or posix_spawnp() of the command.
    pub const SPAWN: u64 = 3;
    /// fork() from a signal handler that interrupted one of the tracker's hooks: a copy of the
    /// parent that records nothing (the tracker's locks may be held in it).
    pub const FORK_IN_HANDLER: u64 = 4;
}

/// Room an encoded payload never exceeds.
pub const MAX_PAYLOAD: usize = crate::exec::MAX_PAYLOAD + 4 * varint::MAX_VARINT_LEN;

/// A decoded child record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChildRecord {
    pub pid: u32,
    pub parent_pid: u32,
    pub start_realtime_ns: u64,
    pub how: u64,
    pub program: Vec<u8>,
    pub argv: Vec<Vec<u8>>,
}

/// Encodes the payload into `buf` (at least [`MAX_PAYLOAD`] bytes) without allocating; `args`
/// yields the command's words. Returns the length.
pub fn encode<'a>(
    buf: &mut [u8],
    pid: u32,
    parent_pid: u32,
    start_realtime_ns: u64,
    how: u64,
    program: &[u8],
    args: impl Iterator<Item = &'a [u8]> + Clone,
) -> usize {
    let mut pos = varint::put(buf, 0, u64::from(pid));
    pos = varint::put(buf, pos, u64::from(parent_pid));
    pos = varint::put(buf, pos, start_realtime_ns);
    pos = varint::put(buf, pos, how);
    // The exec record's encoding of (next, program, args), `next` empty: its one zero byte is
    // overwritten by what follows.
    let n = crate::exec::encode(&mut buf[pos..], b"", program, args);
    buf.copy_within(pos + 1..pos + n, pos);
    pos + n - 1
}

/// Decodes a payload; None when it is damaged.
pub fn decode(payload: &[u8]) -> Option<ChildRecord> {
    let mut pos = 0;
    let pid = u32::try_from(varint::get(payload, &mut pos)?).ok()?;
    let parent_pid = u32::try_from(varint::get(payload, &mut pos)?).ok()?;
    let start_realtime_ns = varint::get(payload, &mut pos)?;
    let how = varint::get(payload, &mut pos)?;
    // The rest is the exec record's (program, args) after an empty `next`.
    let mut rest = Vec::with_capacity(payload.len() - pos + 1);
    rest.push(0);
    rest.extend_from_slice(&payload[pos..]);
    let r = crate::exec::decode(&rest)?;
    Some(ChildRecord {
        pid,
        parent_pid,
        start_realtime_ns,
        how,
        program: r.program,
        argv: r.argv,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut buf = vec![0u8; MAX_PAYLOAD];
        let args: [&[u8]; 3] = [b"python3", b"-c", b"from multiprocessing.spawn import x"];
        let n = encode(
            &mut buf,
            4_000_123,
            77,
            1_700_000_000_123_456_789,
            how::VFORK_EXEC,
            b"/usr/bin/python3",
            args.into_iter(),
        );
        let r = decode(&buf[..n]).expect("decodes");
        assert_eq!(r.pid, 4_000_123);
        assert_eq!(r.parent_pid, 77);
        assert_eq!(r.start_realtime_ns, 1_700_000_000_123_456_789);
        assert_eq!(r.how, how::VFORK_EXEC);
        assert_eq!(r.program, b"/usr/bin/python3");
        assert_eq!(r.argv, args.map(|a| a.to_vec()).to_vec());
        assert_eq!(decode(&buf[..n - 1]), None);
    }

    #[test]
    fn a_long_command_fits() {
        let mut buf = vec![0u8; MAX_PAYLOAD];
        let big = vec![b'a'; 5000];
        let many: Vec<&[u8]> = vec![&big; 100];
        let n = encode(&mut buf, 1, 2, 3, how::FORK, &big, many.iter().copied());
        assert!(n <= MAX_PAYLOAD);
        let r = decode(&buf[..n]).expect("decodes");
        assert_eq!(r.argv.len(), 1);
        assert_eq!(r.program.len(), 4096);
    }
}
