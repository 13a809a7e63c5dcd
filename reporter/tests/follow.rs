//! Following a capture as it grows (`memtrace live`): the file is written step by step as the
//! tracker writes it (a staging area filled in place, flushed as an Events chunk, a second
//! thread, the trailer in its place), and after each poll the live heap is what a model says.
//! A poll with nothing new costs the same however long the capture has grown.

use crate::common::{write_bytes, CaptureBuilder, Chunk};
use memtrace_reporter::analysis::live::{Live, Moment};
use memtrace_reporter::capture::follow::TRAILER_SLOT;

/// A builder with the trailer's place reserved, as the tracker leaves it.
fn start() -> CaptureBuilder {
    let mut b = CaptureBuilder::new();
    b.zeros(TRAILER_SLOT);
    b
}

#[test]
fn live_follows_staging_flushes_threads_and_the_trailer() {
    // Step 1: thread 1's staging area (4 KiB) holds two mallocs.
    let mut step = Chunk::new();
    step.malloc(10, 0x1000, 100).malloc(20, 0x2000, 200);
    let mut b = start();
    let staging_at = b.staging(1, 101, 0, &step, 4096, &[]);
    let path = write_bytes("follow", &b.bytes());
    let mut live = Live::open(&path, true).expect("opens");
    let p = live.poll().expect("poll");
    assert_eq!(p.events, 2);
    assert_eq!(live.live_bytes(), 300);
    assert!(!live.finished());

    // Step 2: the same area, a free added in place.
    step.free(30, 0x1000);
    let mut b2 = start();
    assert_eq!(b2.staging(1, 101, 0, &step, 4096, &[]), staging_at);
    std::fs::write(&path, b2.bytes()).expect("write");
    assert_eq!(live.poll().expect("poll").events, 1);
    assert_eq!(live.live_bytes(), 200);

    // Step 3: the area is flushed as Events chunk seq 0 (the same records: nothing new) and
    // starts seq 1 empty; thread 2 writes a chunk of its own.
    let mut b3 = start();
    let empty = Chunk::new();
    b3.staging(1, 101, 1, &empty, 4096, &[]);
    b3.events(1, 101, 0, &step);
    let mut other = Chunk::new();
    other.malloc(40, 0x3000, 5000);
    b3.events(2, 102, 0, &other);
    std::fs::write(&path, b3.bytes()).expect("write");
    let p = live.poll().expect("poll");
    assert_eq!((p.events, p.new_threads), (1, 1));
    assert_eq!(live.live_bytes(), 5200);
    assert_eq!(live.peak().bytes, 5200);
    // Thread filter: the second thread alone.
    assert_eq!(live.set(Moment::Now, Some(1)).total().bytes, 5000);

    // Step 4: thread 1 frees 0x2000 in its seq-1 area; the trailer comes.
    let mut seq1 = Chunk::new();
    seq1.free(50, 0x2000);
    let mut file = b3.bytes();
    // The staging area of step 3 rewritten with seq 1's record, and the trailer in its place.
    let mut b5 = start();
    b5.staging(1, 101, 1, &seq1, 4096, &[]);
    let staging_bytes = &b5.file[staging_at..];
    file[staging_at..staging_at + staging_bytes.len()].copy_from_slice(staging_bytes);
    let mut t = CaptureBuilder::new();
    let trailer_at = t.trailer(60);
    let trailer = t.file[trailer_at..].to_vec();
    file[trailer_at..trailer_at + trailer.len()].copy_from_slice(&trailer);
    std::fs::write(&path, &file).expect("write");
    assert_eq!(live.poll().expect("poll").events, 1);
    assert_eq!(live.live_bytes(), 5000);
    assert!(live.finished());
    // Live now: the second thread's block; at the peak: both blocks.
    assert_eq!(live.set(Moment::Now, None).total().bytes, 5000);
    assert_eq!(live.set(Moment::Peak, None).total().bytes, 5200);
}

#[test]
fn a_quiet_poll_costs_the_same_however_long_the_capture() {
    let mut b = start();
    let add = |b: &mut CaptureBuilder, from: u32, n: u32| {
        for seq in from..from + n {
            let mut c = Chunk::new();
            let t = u64::from(seq) * 10 + 1;
            c.malloc(t, 0x10_0000 + u64::from(seq) * 64, 32)
                .free(t + 1, 0x10_0000 + u64::from(seq) * 64);
            b.events(1, 101, seq, &c);
        }
    };
    add(&mut b, 0, 200);
    let path = write_bytes("follow_quiet", &b.bytes());
    let mut live = Live::open(&path, true).expect("opens");
    // A poll takes a bounded share of a backlog: polls until caught up.
    let drain = |live: &mut Live| {
        let mut events = 0;
        let mut polls = 0;
        loop {
            let p = live.poll().expect("poll");
            events += p.events;
            polls += 1;
            if !p.behind {
                return (events, polls);
            }
        }
    };
    assert_eq!(drain(&mut live), (400, 7));
    let quiet = |live: &mut Live| {
        let before = live.follower().bytes_read;
        assert_eq!(live.poll().expect("poll").events, 0);
        live.follower().bytes_read - before
    };
    let short = quiet(&mut live);
    add(&mut b, 200, 2000);
    std::fs::write(&path, b.bytes()).expect("write");
    let (events, polls) = drain(&mut live);
    assert_eq!(events, 4000);
    assert!(polls > 1, "{polls}");
    let long = quiet(&mut live);
    assert_eq!(short, long);
    assert!(short < 1024, "{short}");
    assert_eq!(live.live_bytes(), 0);
}
