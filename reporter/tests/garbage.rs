//! No input makes the reader panic: random files, and captures with random damage.

use crate::common::{CaptureBuilder, Chunk};
use memtrace_format::Allocator;
use memtrace_reporter::analysis;
use memtrace_reporter::capture::Capture;
use memtrace_reporter::report::stats;
use proptest::prelude::*;

fn read(bytes: Vec<u8>) {
    if let Ok(capture) = Capture::from_bytes("garbage.bin", bytes) {
        let analysis = analysis::analyze(&capture);
        let _ = stats::build(&capture, &analysis, 5);
    }
}

fn sample() -> Vec<u8> {
    let mut b = CaptureBuilder::new();
    for t in 0..3u32 {
        let mut c = Chunk::new();
        let base = u64::from(t) * 0x10000;
        c.thread_name("worker")
            .string(1, "f")
            .python_frame(1, 1, 1, 3)
            .stack(1, 0, 1)
            .alloc(Allocator::Malloc, 10, base + 0x10, 10, 1)
            .alloc(Allocator::Mmap, 11, base + 0x1000, 4096, 0)
            .mremap(12, base + 0x1000, 4096, base + 0x8000, 8192)
            .munmap(13, base + 0x8000, 4096)
            .free_back(14, 2, base + 0x10)
            .exit_marker(15);
        b.events(t + 1, t + 1, 0, &c);
        b.staging(t + 1, t + 1, 1, &c, 512, &[]);
        b.raw_events(t + 1, t + 1, 2, &c);
    }
    b.trailer(100);
    b.bytes()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        read(bytes);
    }

    #[test]
    fn random_bytes_after_a_valid_header(tail in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let mut bytes = CaptureBuilder::new().bytes();
        bytes.extend_from_slice(&tail);
        read(bytes);
    }

    #[test]
    fn random_damage(flips in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..16),
                     cut in any::<prop::sample::Index>()) {
        let mut bytes = sample();
        for (at, x) in flips {
            let i = at.index(bytes.len());
            bytes[i] ^= x;
        }
        read(bytes.clone());
        let keep = cut.index(bytes.len());
        bytes.truncate(keep);
        read(bytes);
    }
}

/// Damage inside checksummed headers is found; damage in payloads must not panic either. Flip
/// every single byte of a small capture in turn.
#[test]
fn every_single_byte_flip() {
    let base = sample();
    for i in 0..base.len() {
        let mut bytes = base.clone();
        bytes[i] ^= 0x5a;
        read(bytes);
    }
}
