//! The types of the blocks live at exit (analysis::objects): each object-types address is
//! matched to the live block that contains it; addresses in no block, or in blocks freed
//! before the exit, give nothing; what has no object is counted apart.

use crate::common::{CaptureBuilder, Chunk};
use memtrace_reporter::analysis;
use memtrace_reporter::capture::Capture;
use memtrace_reporter::report::types;

fn analyze(b: &CaptureBuilder) -> analysis::Analysis {
    let capture = Capture::from_bytes("types.bin", b.bytes()).expect("a capture");
    analysis::analyze(&capture)
}

#[test]
fn objects_are_matched_to_the_blocks_live_at_exit_that_contain_them() {
    let mut events = Chunk::new();
    events
        .malloc(1, 0x1000, 48) // holds two X objects
        .malloc(2, 0x2000, 64) // one Y at its very start
        .malloc(3, 0x3000, 100) // freed before exit: its object counts nowhere
        .malloc(4, 0x5000, 500) // no object: "<no object>"
        .free(5, 0x3000)
        .exit_marker(6);
    let mut meta = Chunk::new();
    meta.object_types(6, "X", &[0x1010, 0x1020])
        .object_types(6, "Y", &[0x2000, 0x2040, 0x3010])
        .object_types(6, "Z", &[0x0fff, 0x9000]);
    let mut b = CaptureBuilder::new();
    b.events(1, 1, 0, &events);
    b.meta(&meta);
    b.trailer(100);
    let a = analyze(&b);
    let t = a.types.as_ref().expect("types");
    let rows: Vec<(&str, u64, u64, u64)> = t
        .rows
        .iter()
        .map(|r| (r.name.as_str(), r.objects, r.blocks.count, r.blocks.bytes))
        .collect();
    assert_eq!(rows, [("Y", 1, 1, 64), ("X", 2, 1, 48)]);
    assert_eq!((t.untyped.count, t.untyped.bytes), (1, 500));
    let report =
        types::report(&a, memtrace_format::options::PYTHON_ALLOCATORS).expect("a types report");
    let exit: Vec<(&str, u64, u64)> = report
        .exit
        .iter()
        .map(|e| (e.name.as_str(), e.objects, e.bytes))
        .collect();
    assert_eq!(exit, [("Y", 1, 64), ("X", 2, 48), ("<no object>", 1, 500)]);
    assert_eq!(report.peak, None);
    assert_eq!(exit.iter().map(|e| e.2).sum::<u64>(), a.leaked().bytes);
}

#[test]
fn a_capture_without_object_types_has_no_types() {
    let mut events = Chunk::new();
    events.malloc(1, 0x1000, 48).exit_marker(2);
    let mut b = CaptureBuilder::new();
    b.events(1, 1, 0, &events);
    b.trailer(100);
    let a = analyze(&b);
    assert!(a.types.is_none());
    assert_eq!(
        types::report(&a, memtrace_format::options::PYTHON_ALLOCATORS),
        None
    );
}
