//! The capture index (memtrace_reporter::index): a second report reads it and equals the
//! first; a stale or damaged index is rebuilt; a directory that cannot be written falls back
//! to the cache directory, else to no index; an index stays within its share of the capture;
//! an unfinished capture gets none.

use crate::common::{CaptureBuilder, Chunk};
use memtrace_reporter::analysis::{self, Analysis};
use memtrace_reporter::capture::Capture;
use memtrace_reporter::index::place::{beside, Places};
use memtrace_reporter::index::{self, Outcome, MAX_SHARE};
use memtrace_reporter::report::load;
use memtrace_reporter::report::stats;
use memtrace_reporter::report::views::{View, ViewOptions};
use std::path::{Path, PathBuf};

/// Two threads allocating from three Python stacks, some 2 × 1.4 × [`EVENTS`] events; a third of the blocks
/// freed at once (temporary), some kept past the exit snapshot (leaks). `extra` bytes more in
/// one allocation make a different capture of the same size class.
fn builder(extra: u64, finished: bool) -> CaptureBuilder {
    builder_of(extra, finished, 60_000)
}

/// [`builder`] with `EVENTS` allocations per thread.
#[allow(non_snake_case)]
fn builder_of(extra: u64, finished: bool, EVENTS: u64) -> CaptureBuilder {
    let mut b = CaptureBuilder::new();
    let mut tick = 1_000;
    for (serial, tid) in [(1u32, 100u32), (2, 200)] {
        let mut seq = 0;
        let mut c = Chunk::new();
        c.thread_name(if serial == 1 { "main" } else { "worker" });
        c.string(1, "make").string(2, "build").string(3, "app.py");
        c.python_frame(10, 1, 3, 2).python_frame(11, 2, 3, 5);
        c.stack(20, 0, 11).stack(21, 20, 10).stack(22, 0, 10);
        let base = u64::from(serial) << 32;
        let mut live: Vec<u64> = Vec::new();
        // A pseudo-random walk of sizes, so that the chunks do not compress to nothing.
        let mut x = 0x9e37_79b9_u64 * u64::from(serial);
        for i in 0..EVENTS {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let addr = base + i * 4096;
            let size = 16 + x % 3000 + if i == 7 && serial == 1 { extra } else { 0 };
            tick += 1 + x % 50;
            c.alloc(
                memtrace_format::Allocator::Malloc,
                tick,
                addr,
                size,
                20 + x % 3,
            );
            if i % 3 == 0 {
                tick += 1;
                c.free(tick, addr);
            } else {
                live.push(addr);
            }
            if live.len() > 200 {
                tick += 1;
                c.free(tick, live.remove((x % 100) as usize));
            }
            if i % 5_000 == 4_999 {
                b.events(serial, tid, seq, &c);
                seq += 1;
                c = Chunk::new();
            }
        }
        if serial == 2 {
            c.exit_marker(tick + 1);
        }
        b.events(serial, tid, seq, &c);
    }
    if finished {
        b.trailer(tick + 10);
    }
    b
}

/// A fresh directory for one test.
fn dir(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("memtrace-index-tests")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("test dir");
    d
}

/// Reads `path` through the index in `places`, as a report of `view` does.
fn read(places: &Places, path: &Path, view: &ViewOptions) -> (Capture, Analysis, Outcome) {
    let capture = Capture::open(path).expect("the capture opens");
    let (analysis, outcome) = index::analyze_in(places, &capture, load::options(view, None));
    (capture, analysis, outcome)
}

/// Every view's stats report of `path`, as JSON: what two reads must agree on, byte for byte.
fn reports(places: &Places, path: &Path) -> (Vec<String>, Vec<Outcome>) {
    let mut out = Vec::new();
    let mut outcomes = Vec::new();
    for view in [View::All, View::Peak, View::Leaks, View::Temporary] {
        for thread in [None, Some("worker".to_string())] {
            let opts = ViewOptions {
                view,
                thread,
                ..ViewOptions::default()
            };
            let (capture, analysis, outcome) = read(places, path, &opts);
            let r = stats::build_view(&capture, &analysis, 10, &opts).expect("the view");
            out.push(serde_json::to_string(&r).expect("json"));
            outcomes.push(outcome);
        }
    }
    (out, outcomes)
}

/// What the capture gives read whole, without any index.
fn reference(path: &Path) -> Vec<String> {
    let none = dir("reference-cache");
    let copy = none.join("copy.bin");
    std::fs::copy(path, &copy).expect("copy");
    // A copy read whole without the index: the analysis itself is the reference.
    let mut out = Vec::new();
    for view in [View::All, View::Peak, View::Leaks, View::Temporary] {
        for thread in [None, Some("worker".to_string())] {
            let opts = ViewOptions {
                view,
                thread,
                ..ViewOptions::default()
            };
            let capture = Capture::open(&copy).expect("open");
            let analysis = analysis::analyze_options(&capture, load::options(&opts, None));
            let mut r = stats::build_view(&capture, &analysis, 10, &opts).expect("the view");
            // The copy's own path aside.
            r.capture = path.display().to_string();
            out.push(serde_json::to_string(&r).expect("json"));
        }
    }
    out
}

fn no_cache() -> Places {
    Places { cache: None }
}

#[test]
fn a_second_read_comes_from_the_index_and_equals_the_first() {
    let d = dir("round-trip");
    let path = builder(0, true).write_to(&d.join("cap.bin"));
    let (first, outcomes) = reports(&no_cache(), &path);
    let idx = beside(&path).expect("a name");
    assert_eq!(outcomes[0], Outcome::Written(idx.clone()));
    // Every later view, the temporary one and a thread's included, is read from the index.
    assert!(
        outcomes[1..].iter().all(|o| *o == Outcome::Read),
        "{outcomes:?}"
    );
    let (second, outcomes) = reports(&no_cache(), &path);
    assert!(outcomes.iter().all(|o| *o == Outcome::Read), "{outcomes:?}");
    assert_eq!(first, second);
    assert_eq!(first, reference(&path));
    // The leaks view is not empty and differs from the peak: the check means something.
    assert_ne!(first[2], first[4]);
}

#[test]
fn the_index_stays_within_its_share_of_the_capture() {
    let d = dir("bound");
    let path = builder(0, true).write_to(&d.join("cap.bin"));
    let (_, _, outcome) = read(&no_cache(), &path, &ViewOptions::default());
    let idx = beside(&path).expect("a name");
    assert_eq!(outcome, Outcome::Written(idx.clone()));
    let (cap, size) = (len(&path), len(&idx));
    assert!(
        size * MAX_SHARE <= cap,
        "index {size} bytes for a capture of {cap}"
    );
    // A capture too small for its index to pay gets none.
    let mut b = CaptureBuilder::new();
    let mut c = Chunk::new();
    c.string(1, &"f".repeat(3000))
        .python_frame(10, 1, 1, 1)
        .stack(20, 0, 10);
    c.alloc(memtrace_format::Allocator::Malloc, 10, 0x1000, 64, 20);
    b.events(1, 100, 0, &c);
    b.trailer(100);
    let small = b.write_to(&d.join("small.bin"));
    let (_, a, outcome) = read(&no_cache(), &small, &ViewOptions::default());
    assert_eq!(outcome, Outcome::None);
    assert_eq!(a.totals.allocs.bytes, 64);
    assert!(!beside(&small).expect("a name").exists());
}

#[test]
fn a_stale_index_is_rebuilt() {
    let d = dir("stale");
    let path = builder(0, true).write_to(&d.join("cap.bin"));
    let view = ViewOptions::default();
    let (_, before, _) = read(&no_cache(), &path, &view);
    // The same path, another capture: 1000 bytes more in one allocation.
    builder(1000, true).write_to(&path);
    let (_, after, outcome) = read(&no_cache(), &path, &view);
    assert!(matches!(outcome, Outcome::Written(_)), "{outcome:?}");
    assert_eq!(after.totals.allocs.bytes, before.totals.allocs.bytes + 1000);
    assert_eq!(read(&no_cache(), &path, &view).2, Outcome::Read);
    // The same bytes with a new modification time: stale too.
    let f = std::fs::File::options()
        .write(true)
        .open(&path)
        .expect("open");
    f.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(5))
        .expect("set the time");
    drop(f);
    assert!(matches!(
        read(&no_cache(), &path, &view).2,
        Outcome::Written(_)
    ));
    let (_, again, outcome) = read(&no_cache(), &path, &view);
    assert_eq!(outcome, Outcome::Read);
    assert_eq!(again.totals.allocs, after.totals.allocs);
}

#[test]
fn a_damaged_index_is_rebuilt() {
    let d = dir("damaged");
    let path = builder(0, true).write_to(&d.join("cap.bin"));
    let (first, _) = reports(&no_cache(), &path);
    let idx = beside(&path).expect("a name");
    let good = std::fs::read(&idx).expect("the index");
    let mut flipped = good.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x40;
    for damaged in [
        flipped,
        good[..good.len() / 3].to_vec(),
        Vec::new(),
        b"MTIDX".to_vec(),
    ] {
        std::fs::write(&idx, &damaged).expect("damage");
        let (_, _, outcome) = read(&no_cache(), &path, &ViewOptions::default());
        assert_eq!(outcome, Outcome::Written(idx.clone()));
        let (again, outcomes) = reports(&no_cache(), &path);
        assert!(outcomes.iter().all(|o| *o == Outcome::Read), "{outcomes:?}");
        assert_eq!(again, first);
    }
}

#[test]
fn a_directory_that_cannot_be_written_falls_back_to_the_cache_then_to_none() {
    let d = dir("read-only");
    let caps = d.join("captures");
    std::fs::create_dir_all(&caps).expect("dir");
    let path = builder(0, true).write_to(&caps.join("cap.bin"));
    // The index's name taken by a directory: no index can be written beside the capture,
    // even by root, whom permissions do not stop; the directory is made read-only as well.
    std::fs::create_dir(beside(&path).expect("a name")).expect("dir");
    set_writable(&caps, false);
    let places = Places {
        cache: Some(d.join("cache").join("memtrace")),
    };
    let (first, outcomes) = reports(&places, &path);
    let cached = places.in_cache(&path).expect("a cache path");
    assert!(cached.starts_with(d.join("cache").join("memtrace")));
    assert_eq!(outcomes[0], Outcome::Written(cached.clone()));
    assert!(
        outcomes[1..].iter().all(|o| *o == Outcome::Read),
        "{outcomes:?}"
    );
    // No cache directory either: every read is whole, and still right.
    let (none, outcomes) = reports(&no_cache(), &path);
    assert!(outcomes.iter().all(|o| *o == Outcome::None), "{outcomes:?}");
    assert_eq!(none, first);
    set_writable(&caps, true);
}

#[test]
fn an_unfinished_capture_gets_no_index() {
    let d = dir("unfinished");
    let path = builder(0, false).write_to(&d.join("cap.bin"));
    let (_, a, outcome) = read(&no_cache(), &path, &ViewOptions::default());
    assert_eq!(outcome, Outcome::None);
    assert!(a.totals.allocs.count > 0);
    assert!(!beside(&path).expect("a name").exists());
}

fn len(p: &Path) -> u64 {
    std::fs::metadata(p).expect("metadata").len()
}

fn set_writable(dir: &Path, writable: bool) {
    use std::os::unix::fs::PermissionsExt;
    let mode = if writable { 0o755 } else { 0o555 };
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

#[test]
fn an_index_others_may_write_is_not_believed() {
    use std::os::unix::fs::PermissionsExt;
    let d = dir("planted");
    let path = builder(0, true).write_to(&d.join("cap.bin"));
    let view = ViewOptions::default();
    let idx = beside(&path).expect("a name");
    assert_eq!(
        read(&no_cache(), &path, &view).2,
        Outcome::Written(idx.clone())
    );
    assert_eq!(read(&no_cache(), &path, &view).2, Outcome::Read);
    // Writable by others: anyone could have put it there (or changed it).
    std::fs::set_permissions(&idx, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    assert_eq!(
        read(&no_cache(), &path, &view).2,
        Outcome::Written(idx.clone())
    );
    assert_eq!(read(&no_cache(), &path, &view).2, Outcome::Read);
    // Another user's, in a directory others may write (/tmp): not believed, though it
    // matches the capture (everything it is checked against can be read by that user).
    if std::fs::metadata("/proc/self").is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0) {
        let shared = dir("planted-shared");
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).expect("chmod");
        let cap = shared.join("cap.bin");
        std::fs::copy(&path, &cap).expect("copy");
        let planted = beside(&cap).expect("a name");
        assert_eq!(
            read(&no_cache(), &cap, &view).2,
            Outcome::Written(planted.clone())
        );
        std::os::unix::fs::chown(&planted, Some(65534), Some(65534)).expect("chown");
        let (_, a, outcome) = read(&no_cache(), &cap, &view);
        assert_ne!(outcome, Outcome::Read, "another user's index was believed");
        let whole = analysis::analyze_options(
            &Capture::open(&cap).expect("open"),
            load::options(&view, None),
        );
        assert_eq!(a.totals.allocs, whole.totals.allocs);
    } else {
        eprintln!("not root: the planted index of another user is not tried");
    }
}

#[test]
fn a_capture_changed_with_its_time_put_back_is_read_again() {
    use std::io::{Seek, SeekFrom, Write};
    let d = dir("time-put-back");
    let path = builder(0, true).write_to(&d.join("cap.bin"));
    let view = ViewOptions::default();
    let _ = read(&no_cache(), &path, &view);
    let modified = std::fs::metadata(&path)
        .and_then(|m| m.modified())
        .expect("mtime");
    // A byte in the middle changed, the modification time put back (`touch -r`).
    std::thread::sleep(std::time::Duration::from_millis(20));
    let mut f = std::fs::File::options()
        .write(true)
        .open(&path)
        .expect("open");
    f.seek(SeekFrom::Start(len(&path) / 2)).expect("seek");
    f.write_all(&[0x5a]).expect("write");
    f.set_modified(modified).expect("the time put back");
    drop(f);
    assert!(matches!(
        read(&no_cache(), &path, &view).2,
        Outcome::Written(_)
    ));
}

/// Five temporary thresholds and the first again: with four entries a fifth evicted the first,
/// and each report read the capture whole (13-21 s each on a 104 MB capture).
#[test]
fn several_thresholds_keep_their_entries() {
    let d = dir("thresholds");
    // Large enough that five entries fit the index's share of it.
    let path = builder_of(0, true, 400_000).write_to(&d.join("cap.bin"));
    let view = |threshold: usize| ViewOptions {
        view: View::Temporary,
        temporary_threshold: threshold,
        ..ViewOptions::default()
    };
    for t in [2, 3, 4, 5, 6] {
        let outcome = read(&no_cache(), &path, &view(t)).2;
        assert!(matches!(outcome, Outcome::Written(_)), "{t}: {outcome:?}");
    }
    for t in [2, 3, 4, 5, 6] {
        assert_eq!(read(&no_cache(), &path, &view(t)).2, Outcome::Read, "{t}");
    }
}
