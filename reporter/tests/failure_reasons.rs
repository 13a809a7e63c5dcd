//! What the reporter says about a capture that stopped early: the reason the tracker gave, and
//! an unfinished chunk of a killed process told apart from damage.

use crate::common::{CaptureBuilder, Chunk};
use memtrace_format::{trailer_flags, Trailer};
use memtrace_reporter::analysis;
use memtrace_reporter::capture::Capture;
use memtrace_reporter::report::stats::{self, StatsReport};

fn report_bytes(bytes: Vec<u8>) -> StatsReport {
    let capture = Capture::from_bytes("test.bin", bytes).expect("a capture");
    let analysis = analysis::analyze(&capture);
    stats::build(&capture, &analysis, 5)
}

fn with_flags(flags: u64) -> StatsReport {
    let mut b = CaptureBuilder::new();
    let mut c = Chunk::new();
    c.malloc(1, 0x10, 100);
    b.events(1, 1, 0, &c);
    b.trailer_with(&Trailer {
        end_mono_ns: 50,
        end_tick: 50,
        records_written: 1,
        records_dropped: 7,
        flags,
        threads: 1,
    });
    report_bytes(b.bytes())
}

#[test]
fn each_write_failure_names_its_reason() {
    let cases = [
        (
            trailer_flags::DESCRIPTOR_LOST,
            "the program closed or replaced the capture's file descriptor",
        ),
        (
            trailer_flags::FILE_SIZE_LIMIT,
            "the file size limit (ulimit -f) was reached",
        ),
        (trailer_flags::NO_SPACE, "the disk is full"),
        (0, "disk full or I/O error"),
    ];
    for (why, words) in cases {
        let r = with_flags(trailer_flags::WRITE_FAILED | why);
        assert!(!r.complete, "{why}");
        let failed: Vec<_> = r
            .warnings
            .iter()
            .filter(|w| w.starts_with("writing the capture failed"))
            .collect();
        assert_eq!(failed.len(), 1, "{:?}", r.warnings);
        assert!(failed[0].contains(words), "{:?}", r.warnings);
        assert!(r
            .warnings
            .iter()
            .any(|w| w == "the tracker dropped 7 records"));
    }
    // A reason without the failure flag is no failure.
    assert!(with_flags(trailer_flags::NO_SPACE).complete);
}

#[test]
fn an_unfinished_chunk_of_a_killed_process_is_not_called_damage() {
    // A killed process leaves no trailer; a chunk it was writing has its payload and no header.
    let mut b = CaptureBuilder::new();
    let mut c = Chunk::new();
    c.malloc(1, 0x10, 100).malloc(2, 0x20, 200);
    b.events(1, 1, 0, &c);
    let second = b.events(1, 1, 1, &c);
    let mut bytes = b.bytes();
    let end = bytes.len();
    bytes[second..second + 8].fill(0);
    let r = report_bytes(bytes);
    assert_eq!(r.total_allocations, 2);
    let expect = format!(
        "skipped {} bytes at offset {second}: a chunk the process was writing when it ended",
        end - second
    );
    assert!(r.warnings.contains(&expect), "{:?}", r.warnings);
    assert!(!r.warnings.iter().any(|w| w.contains("damaged")));
}
