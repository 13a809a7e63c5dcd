//! Chunk framing. Every chunk is a 72-byte header followed by its payload, padded to 8 bytes.
//!
//! A writer fills the payload first and the header last, so a chunk cut short by a kill has no
//! valid header; a reader that meets an invalid header scans forward in 8-byte steps for the next
//! valid one (magic number and header checksum).

pub const CHUNK_MAGIC: u32 = u32::from_le_bytes(*b"MTCK");
pub const CHUNK_HEADER_LEN: usize = 72;
pub const CHUNK_ALIGN: usize = 8;
/// Largest payload a reader accepts.
pub const MAX_PAYLOAD: usize = 64 << 20;
/// The most a thread's chunk (Events or Staging) may decode to: bytes of raw records (codecs 0
/// and 1), of the streams together (codec 2), or a staging area's capacity. Four times what any
/// tracker writes (a staging area of 256 KiB), and far below [`MAX_PAYLOAD`]: a few bytes of
/// zstd frames can claim gigabytes, and a reader holds a batch of decoded chunks at a time, so
/// a chunk claiming more is damage, not a reason to allocate. Meta chunks (raw, in the file)
/// are not bound by it.
pub const MAX_DECODED: usize = 1 << 20;

/// Chunk flag (since 1.4): bytes 68..72 of the header hold the crc32 of the payload.
pub const FLAG_PAYLOAD_CRC: u16 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChunkKind {
    /// A thread's events, complete.
    Events = 1,
    /// A thread's staging area: events appended in place (always raw). `raw_len` is the number of
    /// bytes holding complete records; it is updated as they are written, so a capture of a killed
    /// process still holds them. Chunks of the same (thread, seq) supersede it.
    Staging = 2,
    /// The end of a capture: totals and the end time (raw).
    Trailer = 3,
    /// Process-wide metadata records (loaded modules), not tied to a thread's timeline.
    Meta = 4,
}

impl ChunkKind {
    pub fn from_u8(v: u8) -> Option<ChunkKind> {
        match v {
            1 => Some(ChunkKind::Events),
            2 => Some(ChunkKind::Staging),
            3 => Some(ChunkKind::Trailer),
            4 => Some(ChunkKind::Meta),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChunkCodec {
    Raw = 0,
    Zstd = 1,
    /// The records split into streams, each stored raw or as a zstd frame (`crate::columns`).
    Columns = 2,
}

impl ChunkCodec {
    pub fn from_u8(v: u8) -> Option<ChunkCodec> {
        match v {
            0 => Some(ChunkCodec::Raw),
            1 => Some(ChunkCodec::Zstd),
            2 => Some(ChunkCodec::Columns),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkHeader {
    pub kind: ChunkKind,
    pub codec: ChunkCodec,
    /// [`FLAG_PAYLOAD_CRC`] (since 1.4); other bits are 0.
    pub flags: u16,
    /// With [`FLAG_PAYLOAD_CRC`]: crc32 of the payload a reader reads (see
    /// [`ChunkHeader::checked_len`]). Not covered by the header's own crc: a flipped bit here
    /// fails the payload's check, which only costs the chunk.
    pub payload_crc: u32,
    /// The tracker's serial number of the thread (unique within a capture; 0 for process-wide
    /// chunks). OS thread ids can be reused, serials are not.
    pub thread_serial: u32,
    pub tid: u32,
    /// Position of the chunk in its thread's sequence, from 0.
    pub seq: u32,
    /// Bytes of payload stored after the header (for staging: its capacity).
    pub stored_len: u32,
    /// Bytes of decoded payload (for staging: bytes of complete records so far).
    pub raw_len: u32,
    pub record_count: u32,
    /// Ticks of the first and last timed record (0 when unknown, as in staging).
    pub first_tick: u64,
    pub last_tick: u64,
    /// CLOCK_MONOTONIC nanoseconds and the tick, read together when the chunk was written: a pair
    /// for converting ticks to time.
    pub flush_mono_ns: u64,
    pub flush_tick: u64,
}

impl ChunkHeader {
    /// The header of a trailer chunk with `payload_len` bytes of payload (the encoded
    /// `trailer`, zero padded): its clock pair is the trailer's end.
    pub fn trailer(trailer: &crate::Trailer, payload_len: usize) -> ChunkHeader {
        ChunkHeader {
            kind: ChunkKind::Trailer,
            codec: ChunkCodec::Raw,
            flags: 0,
            payload_crc: 0,
            thread_serial: 0,
            tid: 0,
            seq: 0,
            stored_len: payload_len as u32,
            raw_len: payload_len as u32,
            record_count: 0,
            first_tick: trailer.end_tick,
            last_tick: trailer.end_tick,
            flush_mono_ns: trailer.end_mono_ns,
            flush_tick: trailer.end_tick,
        }
    }

    /// Total bytes the chunk occupies in the file, header and padding included.
    pub fn total_len(&self) -> usize {
        CHUNK_HEADER_LEN + (self.stored_len as usize).div_ceil(CHUNK_ALIGN) * CHUNK_ALIGN
    }

    pub fn encode(&self) -> [u8; CHUNK_HEADER_LEN] {
        let mut b = [0u8; CHUNK_HEADER_LEN];
        b[0..4].copy_from_slice(&CHUNK_MAGIC.to_le_bytes());
        b[4] = self.kind as u8;
        b[5] = self.codec as u8;
        b[6..8].copy_from_slice(&self.flags.to_le_bytes());
        b[8..12].copy_from_slice(&self.thread_serial.to_le_bytes());
        b[12..16].copy_from_slice(&self.tid.to_le_bytes());
        b[16..20].copy_from_slice(&self.seq.to_le_bytes());
        b[20..24].copy_from_slice(&self.stored_len.to_le_bytes());
        b[24..28].copy_from_slice(&self.raw_len.to_le_bytes());
        b[28..32].copy_from_slice(&self.record_count.to_le_bytes());
        b[32..40].copy_from_slice(&self.first_tick.to_le_bytes());
        b[40..48].copy_from_slice(&self.last_tick.to_le_bytes());
        b[48..56].copy_from_slice(&self.flush_mono_ns.to_le_bytes());
        b[56..64].copy_from_slice(&self.flush_tick.to_le_bytes());
        let crc = header_crc(&b);
        b[64..68].copy_from_slice(&crc.to_le_bytes());
        b[68..72].copy_from_slice(&self.payload_crc.to_le_bytes());
        b
    }

    /// The header with `crc`, the crc32 of its payload (the bytes [`ChunkHeader::checked_len`]
    /// counts), as a writer of 1.4 stores every chunk it finishes (not a live staging area).
    pub fn with_payload_crc(self, crc: u32) -> ChunkHeader {
        ChunkHeader {
            flags: self.flags | FLAG_PAYLOAD_CRC,
            payload_crc: crc,
            ..self
        }
    }

    /// The payload bytes the checksum covers: the records of a raw chunk (`raw_len`), the whole
    /// stored payload of any other (`stored_len`).
    pub fn checked_len(&self) -> usize {
        match self.codec {
            ChunkCodec::Raw => (self.raw_len as usize).min(self.stored_len as usize),
            _ => self.stored_len as usize,
        }
    }

    /// Whether the header carries a checksum of its payload.
    pub fn has_payload_crc(&self) -> bool {
        self.flags & FLAG_PAYLOAD_CRC != 0 && self.kind != ChunkKind::Staging
    }

    /// Decodes a header; None when the magic number or the checksum does not match.
    pub fn decode(b: &[u8]) -> Option<ChunkHeader> {
        let b: &[u8; CHUNK_HEADER_LEN] = b.get(..CHUNK_HEADER_LEN)?.try_into().ok()?;
        if u32::from_le_bytes(b[0..4].try_into().ok()?) != CHUNK_MAGIC {
            return None;
        }
        if u32::from_le_bytes(b[64..68].try_into().ok()?) != header_crc(b) {
            return None;
        }
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let u64_at = |i: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[i..i + 8]);
            u64::from_le_bytes(a)
        };
        let header = ChunkHeader {
            kind: ChunkKind::from_u8(b[4])?,
            codec: ChunkCodec::from_u8(b[5])?,
            flags: u16::from_le_bytes([b[6], b[7]]),
            payload_crc: u32_at(68),
            thread_serial: u32_at(8),
            tid: u32_at(12),
            seq: u32_at(16),
            stored_len: u32_at(20),
            raw_len: u32_at(24),
            record_count: u32_at(28),
            first_tick: u64_at(32),
            last_tick: u64_at(40),
            flush_mono_ns: u64_at(48),
            flush_tick: u64_at(56),
        };
        if header.stored_len as usize > MAX_PAYLOAD || header.raw_len as usize > MAX_PAYLOAD {
            return None;
        }
        Some(header)
    }
}

/// Byte offset of the live `raw_len` field of a staging header.
pub const STAGING_USED_OFFSET: usize = 24;

/// crc32 of the header with the checksum itself and, for staging chunks, the live fields
/// (raw_len, record_count, ticks) left out.
fn header_crc(b: &[u8; CHUNK_HEADER_LEN]) -> u32 {
    let mut h = crate::crc::Crc32::new();
    if b[4] == ChunkKind::Staging as u8 {
        h.update(&b[0..24]);
        h.update(&b[48..64]);
    } else {
        h.update(&b[0..64]);
    }
    h.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(kind: ChunkKind) -> ChunkHeader {
        ChunkHeader {
            kind,
            codec: ChunkCodec::Zstd,
            flags: 0,
            payload_crc: 0,
            thread_serial: 3,
            tid: 1234,
            seq: 9,
            stored_len: 1001,
            raw_len: 5000,
            record_count: 700,
            first_tick: 10,
            last_tick: 20,
            flush_mono_ns: 30,
            flush_tick: 40,
        }
    }

    #[test]
    fn round_trip_and_length() {
        let h = sample(ChunkKind::Events);
        assert_eq!(ChunkHeader::decode(&h.encode()), Some(h));
        assert_eq!(h.total_len(), 72 + 1008);
    }

    #[test]
    fn payload_checksum_round_trips_and_covers_what_a_reader_reads() {
        let payload = b"some records, and padding a raw chunk does not count";
        let mut h = sample(ChunkKind::Meta);
        h.codec = ChunkCodec::Raw;
        h.stored_len = payload.len() as u32;
        h.raw_len = 13;
        let h = h.with_payload_crc(crate::crc::crc32(&payload[..h.checked_len()]));
        assert!(h.has_payload_crc());
        assert_eq!(h.payload_crc, crate::crc::crc32(b"some records,"));
        let back = ChunkHeader::decode(&h.encode()).expect("valid");
        assert_eq!(back, h);
        let mut z = sample(ChunkKind::Events);
        z.stored_len = payload.len() as u32;
        assert_eq!(z.checked_len(), payload.len());
        assert!(!z.has_payload_crc(), "a 1.3 header has no payload checksum");
    }

    #[test]
    fn staging_live_fields_do_not_break_the_checksum() {
        let h = sample(ChunkKind::Staging);
        let mut b = h.encode();
        b[STAGING_USED_OFFSET..STAGING_USED_OFFSET + 4].copy_from_slice(&77u32.to_le_bytes());
        let back = ChunkHeader::decode(&b).expect("still valid");
        assert_eq!(back.raw_len, 77);
    }

    #[test]
    fn corruption_is_detected() {
        let mut b = sample(ChunkKind::Events).encode();
        b[17] ^= 1;
        assert_eq!(ChunkHeader::decode(&b), None);
        assert_eq!(ChunkHeader::decode(&[0u8; 72]), None);
        assert_eq!(ChunkHeader::decode(&[0u8; 10]), None);
    }
}
