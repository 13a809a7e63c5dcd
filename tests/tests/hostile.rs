//! Hostile and odd input for every report command: crafted captures whose few bytes claim
//! gigabytes, random damage to a real capture, copies cut short, FIFOs, names with control
//! characters, and a report asked to write over its input. Each run must end (exit 0 or 1,
//! never a panic) within bounded time and memory, and say what it could not read.

use memtrace_e2e::python::{python, tracked, write, KNOWN_LINES};
use memtrace_e2e::{memtrace_bin, scratch};
use memtrace_format::chunk::MAX_DECODED;
use memtrace_format::columns::{self, stream};
use memtrace_format::{
    ChunkCodec, ChunkHeader, ChunkKind, FileHeader, TickSource, CHUNK_ALIGN, MAJOR, MINOR,
};
use serde_json::Value;
use std::ffi::OsString;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// What a report may use at most, whatever the input: a real capture's report takes some
/// 20-70 MiB here (stats symbolizes), the crafted captures below took 300 MiB and more before
/// their claims were bounded.
const MAX_RSS_KIB: i64 = 200 << 10;
/// Generous: the machine may be loaded; a report of these small files takes well under a second.
const TIME_LIMIT: Duration = Duration::from_secs(90);

/// How a report run ended.
struct Outcome {
    what: String,
    code: Option<i32>,
    stdout: Vec<u8>,
    stderr: String,
    max_rss_kib: i64,
}

impl Outcome {
    /// Exit 0 or 1, no panic, memory within bounds.
    fn check(&self) {
        assert!(
            matches!(self.code, Some(0 | 1)),
            "{}: exit {:?}, stderr:\n{}",
            self.what,
            self.code,
            self.stderr
        );
        assert!(
            !self.stderr.contains("panicked at") && !self.stderr.contains("RUST_BACKTRACE"),
            "{}: {}",
            self.what,
            self.stderr
        );
        assert!(
            self.max_rss_kib <= MAX_RSS_KIB,
            "{}: {} KiB resident at most, the bound is {MAX_RSS_KIB}",
            self.what,
            self.max_rss_kib
        );
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.stdout)
            .unwrap_or_else(|e| panic!("{}: not JSON ({e}): {}", self.what, self.stderr))
    }
}

/// Runs `memtrace ARGS` in `dir`, measuring its peak resident size (through
/// tests/programs/peak_rss.c); kills it and fails past `limit`.
fn run_bounded(args: &[OsString], dir: &Path, limit: Duration) -> Outcome {
    run_bounded_to(args, dir, limit, true)
}

/// tests/programs/peak_rss.c, compiled once.
fn peak_rss() -> &'static Path {
    static PROGRAM: OnceLock<PathBuf> = OnceLock::new();
    PROGRAM.get_or_init(|| memtrace_e2e::compile("peak_rss", &scratch("peak-rss")))
}

/// [`run_bounded`], its output kept or (`keep_stdout` false) thrown away.
// The child is reaped by wait4, which std does not know of.
#[allow(clippy::zombie_processes)]
fn run_bounded_to(args: &[OsString], dir: &Path, limit: Duration, keep_stdout: bool) -> Outcome {
    static RUNS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let what = format!(
        "memtrace {}",
        args.iter()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let peak_file = std::env::temp_dir().join(format!(
        "memtrace-e2e-peak-rss.{}.{}",
        std::process::id(),
        RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let mut child = Command::new(peak_rss())
        .arg(&peak_file)
        .arg(memtrace_bin())
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(if keep_stdout {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("memtrace starts");
    let out = child.stdout.take();
    let mut err = child.stderr.take().expect("stderr");
    let out_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        if let Some(mut out) = out {
            let _ = out.read_to_end(&mut v);
        }
        v
    });
    let err_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let pid = child.id() as libc::pid_t;
    let start = Instant::now();
    let (status, usage) = loop {
        let mut status = 0;
        // SAFETY: an all-zero rusage is a valid value for wait4 to fill.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: waits for our own child without blocking; both pointers are to locals.
        let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if r == pid {
            break (status, usage);
        }
        assert!(r == 0, "{what}: wait4 failed");
        if start.elapsed() > limit {
            // SAFETY: kill(2) of the process group this test made (the wrapper and memtrace).
            unsafe { libc::kill(-pid, libc::SIGKILL) };
            let _ = child.kill();
            panic!("{what}: still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let stdout = out_reader.join().expect("stdout reader");
    let stderr = String::from_utf8_lossy(&err_reader.join().expect("stderr reader")).into_owned();
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    let max_rss_kib = std::fs::read_to_string(&peak_file)
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "{what}: no peak resident size from peak_rss ({usage_note})",
                usage_note = usage.ru_maxrss
            )
        });
    let _ = std::fs::remove_file(&peak_file);
    Outcome {
        what,
        code,
        stdout,
        stderr,
        max_rss_kib,
    }
}

/// `memtrace stats --json FILE` run bounded in `dir`, checked (exit 0 or 1, no panic, memory
/// bounded).
fn stats_json(file: &Path, dir: &Path) -> Outcome {
    let out = run_bounded(
        &["stats".into(), "--json".into(), file.into()],
        dir,
        TIME_LIMIT,
    );
    out.check();
    out
}

/// The report commands, each as the arguments for a capture `file` (outputs go to `dir`;
/// `other` is a second, valid capture for the two-capture commands).
fn commands(file: &Path, other: &Path, dir: &Path) -> Vec<Vec<OsString>> {
    let f = file.as_os_str();
    let o = other.as_os_str();
    let page = dir.join("page.html");
    let pprof = dir.join("out.pb.gz");
    let diff_page = dir.join("diff.html");
    let cmd = |words: &[&str], tail: &[&std::ffi::OsStr]| -> Vec<OsString> {
        let words = words.iter().map(OsString::from);
        words.chain(tail.iter().map(|t| t.to_os_string())).collect()
    };
    vec![
        cmd(&["stats"], &[f]),
        cmd(&["stats", "--json"], &[f]),
        cmd(&["stats", "--leaks", "--threads"], &[f]),
        cmd(&["summary"], &[f]),
        cmd(&["summary", "--temporary", "--json"], &[f]),
        cmd(&["tree", "--text"], &[f]),
        cmd(&["tree", "--json", "--threads"], &[f]),
        cmd(&["flamegraph", "-o"], &[page.as_os_str(), f]),
        cmd(&["export", "-f", "folded"], &[f]),
        cmd(&["export", "-f", "speedscope"], &[f]),
        cmd(&["export", "-f", "pprof", "-o"], &[pprof.as_os_str(), f]),
        cmd(&["export", "-f", "csv", "--leaks"], &[f]),
        cmd(&["diff"], &[o, f]),
        cmd(&["diff", "--json"], &[f, o]),
        cmd(
            &["flamegraph", "-o"],
            &[diff_page.as_os_str(), "--diff".as_ref(), o, f],
        ),
    ]
}

// ---------------------------------------------------------------------------------------------
// Real captures, recorded once per test run.

/// A capture of KNOWN_LINES making `n` churn allocations.
fn record_known_lines(name: &str, n: u32) -> PathBuf {
    let dir = scratch(name);
    let script = write(&dir, "known_lines.py", KNOWN_LINES);
    let capture = dir.join("known_lines.bin");
    let n = n.to_string();
    let words = [script.to_str().expect("utf-8 path"), n.as_str()];
    let out = tracked(python(), &capture, &words, &dir, b"");
    assert!(out.status.success(), "{out:?}");
    capture
}

/// A small real capture (a few chunks), to damage.
fn small_capture() -> &'static Path {
    static CAPTURE: OnceLock<PathBuf> = OnceLock::new();
    CAPTURE.get_or_init(|| record_known_lines("hostile-small", 20_000))
}

/// A real capture whose Events chunks take most of the file (about 1 MB).
fn large_capture() -> &'static Path {
    static CAPTURE: OnceLock<PathBuf> = OnceLock::new();
    CAPTURE.get_or_init(|| record_known_lines("hostile-large", 250_000))
}

// ---------------------------------------------------------------------------------------------
// Crafted captures.

fn file_header() -> Vec<u8> {
    let h = FileHeader {
        major: MAJOR,
        minor: MINOR,
        pid: 7,
        ppid: 1,
        start_realtime_ns: 1_700_000_000_000_000_000,
        start_mono_ns: 0,
        start_tick: 0,
        tick_source: TickSource::MonotonicNs,
        options: 0,
        argv: vec![b"crafted".to_vec()],
        exe: b"/nonexistent/crafted".to_vec(),
        tool_version: b"hostile".to_vec(),
    };
    let mut file = h.encode();
    file.resize(FileHeader::data_start(file.len()), 0);
    file
}

fn events_header(codec: ChunkCodec, seq: u32, raw_len: usize, records: u32) -> ChunkHeader {
    ChunkHeader {
        kind: ChunkKind::Events,
        codec,
        flags: 0,
        payload_crc: 0,
        thread_serial: 1,
        tid: 100,
        seq,
        stored_len: 0,
        raw_len: raw_len as u32,
        record_count: records,
        first_tick: 0,
        last_tick: 0,
        flush_mono_ns: 1000,
        flush_tick: 1000,
    }
}

fn push_chunk(file: &mut Vec<u8>, mut h: ChunkHeader, payload: &[u8]) {
    h.stored_len = payload.len() as u32;
    file.extend_from_slice(&h.encode());
    file.extend_from_slice(payload);
    file.resize(file.len().div_ceil(CHUNK_ALIGN) * CHUNK_ALIGN, 0);
}

/// A columnar payload of `streams`, each compressed (zeros shrink to almost nothing).
fn columns_payload(streams: &[Vec<u8>; stream::COUNT]) -> Vec<u8> {
    let mut lens = [(0usize, 0usize); stream::COUNT];
    let mut body = Vec::new();
    for (s, len) in streams.iter().zip(lens.iter_mut()) {
        let stored = if s.is_empty() {
            Vec::new()
        } else {
            zstd::bulk::compress(s, 19).expect("compress")
        };
        *len = (s.len(), stored.len());
        body.extend_from_slice(&stored);
    }
    let mut payload = vec![0u8; columns::MAX_FRAME_TABLE];
    let n = columns::write_frame_table(&lens, &mut payload);
    payload.truncate(n);
    payload.extend_from_slice(&body);
    payload
}

/// Streams of `n` mallocs of 0 bytes at address 0, all zeros (a zero address code escapes to a
/// second varint: two bytes each).
fn malloc_streams(n: usize) -> [Vec<u8>; stream::COUNT] {
    let mut s: [Vec<u8>; stream::COUNT] = Default::default();
    s[stream::TYPE] = vec![0; n];
    s[stream::DELTA] = vec![0; n.div_ceil(2)];
    s[stream::ADDR] = vec![0; 2 * n];
    s[stream::SIZE_LO] = vec![0; n];
    s[stream::SIZE_HI] = vec![0; n];
    s[stream::STACK] = vec![0; n];
    s
}

/// Crafted captures, by name: a few KiB each that once decoded to hundreds of MiB.
fn crafted() -> Vec<(&'static str, Vec<u8>)> {
    let mut out = Vec::new();

    // One columnar chunk whose streams (4 Mi mallocs, 22 MiB) its raw_len covers.
    let streams = malloc_streams(4 << 20);
    let total: usize = streams.iter().map(Vec::len).sum();
    let mut file = file_header();
    push_chunk(
        &mut file,
        events_header(ChunkCodec::Columns, 0, total, 4 << 20),
        &columns_payload(&streams),
    );
    out.push(("columns-bomb", file));

    // One zstd chunk of 16 MiB of zeros: 4 Mi raw mallocs of four bytes.
    let zeros = vec![0u8; 16 << 20];
    let mut file = file_header();
    push_chunk(
        &mut file,
        events_header(ChunkCodec::Zstd, 0, zeros.len(), 4 << 20),
        &zstd::bulk::compress(&zeros, 19).expect("compress"),
    );
    out.push(("zstd-bomb", file));

    // Chunks whose header claims little and whose streams claim four times more each (what
    // a reader of format 1.1 allowed a stream), several of them.
    let streams = malloc_streams(64 << 10);
    let mut file = file_header();
    for seq in 0..8 {
        push_chunk(
            &mut file,
            events_header(ChunkCodec::Columns, seq, 64 << 10, 64 << 10),
            &columns_payload(&streams),
        );
    }
    out.push(("streams-beyond-raw-len", file));

    // A frame table claiming the largest lengths a varint holds.
    let mut payload = vec![stream::COUNT as u8];
    for _ in 0..stream::COUNT {
        payload.extend_from_slice(&[0xff; 9]);
        payload.push(0x01);
        payload.push(0);
    }
    let mut file = file_header();
    push_chunk(
        &mut file,
        events_header(ChunkCodec::Columns, 0, MAX_DECODED, 1),
        &payload,
    );
    out.push(("huge-frame-table", file));

    // A staging chunk claiming the largest capacity, cut by the end of the file.
    let mut file = file_header();
    let mut h = events_header(ChunkCodec::Columns, 0, 1 << 20, 0);
    h.kind = ChunkKind::Staging;
    h.stored_len = 64 << 20;
    file.extend_from_slice(&h.encode());
    file.extend_from_slice(&[0u8; 4096]);
    out.push(("staging-past-the-end", file));

    out
}

#[test]
fn crafted_captures_are_refused_in_bounded_memory() {
    let dir = scratch("hostile-crafted");
    let other = small_capture();
    for (name, bytes) in crafted() {
        let path = dir.join(format!("{name}.bin"));
        std::fs::write(&path, &bytes).expect("write");
        assert!(bytes.len() < 64 << 10, "{name}: {} bytes", bytes.len());
        for args in commands(&path, other, &dir) {
            run_bounded(&args, &dir, TIME_LIMIT).check();
        }
        let stats = run_bounded(
            &[
                OsString::from("stats"),
                OsString::from("--json"),
                path.into(),
            ],
            &dir,
            TIME_LIMIT,
        );
        stats.check();
        let v = stats.json();
        assert_eq!(v["total_allocations"], 0, "{name}: {v}");
        assert_eq!(v["complete"], false, "{name}");
        let warnings = v["warnings"].to_string();
        assert!(
            warnings.contains("damaged") || warnings.contains("truncated"),
            "{name}: {warnings}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Random damage to a real capture.

/// xorshift64*: the same damage on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Offsets of the chunk headers of `file` (valid ones, in order).
fn chunk_offsets(file: &[u8]) -> Vec<(usize, ChunkHeader)> {
    let (_, header_len) = FileHeader::decode(file).expect("a real capture");
    let mut pos = FileHeader::data_start(header_len);
    let mut out = Vec::new();
    while pos + memtrace_format::CHUNK_HEADER_LEN <= file.len() {
        match ChunkHeader::decode(&file[pos..]) {
            Some(h) if pos + h.total_len() <= file.len() => {
                out.push((pos, h));
                pos += h.total_len();
            }
            Some(_) => break,
            None => pos += CHUNK_ALIGN,
        }
    }
    out
}

/// The damage of seed `seed` to `real`: flipped bytes, zeroed or overwritten ranges, a cut, or
/// chunk headers re-signed with hostile fields.
fn damaged(real: &[u8], seed: u64) -> Vec<u8> {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut f = real.to_vec();
    let chunks = chunk_offsets(real);
    match seed % 6 {
        0 => {
            for _ in 0..1 + rng.below(16) {
                let at = rng.below(f.len());
                f[at] ^= 1 + rng.below(255) as u8;
            }
        }
        1 => {
            let at = rng.below(f.len());
            let end = (at + 1 + rng.below(8192)).min(f.len());
            f[at..end].fill(0);
        }
        2 => {
            let at = rng.below(f.len());
            let end = (at + 1 + rng.below(1024)).min(f.len());
            for b in &mut f[at..end] {
                *b = rng.next() as u8;
            }
        }
        3 => f.truncate(rng.below(f.len())),
        4 => {
            // A chunk header with one field changed, and a valid checksum.
            let (at, mut h) = chunks[rng.below(chunks.len())];
            let v = rng.next() as u32;
            match rng.below(8) {
                0 => h.raw_len = v % (64 << 20),
                1 => h.stored_len = v % (h.stored_len + 64).max(1),
                2 => h.record_count = v,
                3 => h.seq = v % 4,
                4 => h.thread_serial = v % 4,
                5 => {
                    h.codec =
                        [ChunkCodec::Raw, ChunkCodec::Zstd, ChunkCodec::Columns][v as usize % 3]
                }
                6 => {
                    h.kind = [
                        ChunkKind::Events,
                        ChunkKind::Staging,
                        ChunkKind::Meta,
                        ChunkKind::Trailer,
                    ][v as usize % 4]
                }
                _ => h.first_tick = rng.next(),
            }
            f[at..at + memtrace_format::CHUNK_HEADER_LEN].copy_from_slice(&h.encode());
        }
        _ => {
            // Bytes of a payload's start (a frame table, a directory, the first records).
            let (at, h) = chunks[rng.below(chunks.len())];
            let start = at + memtrace_format::CHUNK_HEADER_LEN;
            let len = (h.stored_len as usize).clamp(1, 96);
            for _ in 0..1 + rng.below(4) {
                let i = start + rng.below(len);
                if i < f.len() {
                    f[i] = rng.next() as u8;
                }
            }
        }
    }
    f
}

/// Every report the library makes of damaged copies (in this process: fast enough for many),
/// without a panic.
#[test]
fn random_damage_to_a_real_capture_never_breaks_the_library() {
    use memtrace_reporter::analysis;
    use memtrace_reporter::capture::Capture;
    use memtrace_reporter::report::{stats, views};
    let real = std::fs::read(small_capture()).expect("read");
    for seed in 0..72u64 {
        let bytes = damaged(&real, seed);
        let result = std::panic::catch_unwind(|| {
            let Ok(capture) = Capture::from_bytes("damaged.bin", bytes) else {
                return;
            };
            let a = analysis::analyze(&capture);
            // The stats report symbolizes the capture's modules (a few hundred ms): some seeds.
            if seed % 16 == 0 {
                let _ = stats::build(&capture, &a, 5);
            }
            let view = [views::View::Peak, views::View::Leaks, views::View::All][seed as usize % 3];
            {
                let opts = views::ViewOptions {
                    view,
                    split_threads: seed % 2 == 0,
                    ..views::ViewOptions::default()
                };
                if let Ok(sel) = views::select(&a, &opts) {
                    let _ = memtrace_reporter::report::tree::build(
                        &capture,
                        &a,
                        &sel,
                        opts.split_threads,
                    );
                }
            }
        });
        assert!(
            result.is_ok(),
            "damage of seed {seed} made the reader panic"
        );
    }
}

/// Each command on damaged copies, as a user runs it: exit 0 or 1, bounded memory and time.
#[test]
fn random_damage_to_a_real_capture_every_command() {
    let dir = scratch("hostile-damage");
    let real_path = small_capture();
    let real = std::fs::read(real_path).expect("read");
    let n = commands(real_path, real_path, &dir).len();
    for seed in 0..12u64 {
        let path = dir.join(format!("damaged-{seed}.bin"));
        std::fs::write(&path, damaged(&real, seed)).expect("write");
        let all = commands(&path, real_path, &dir);
        // stats --json on each; the other commands in turn, each on two copies at least.
        let r = run_bounded(&all[1], &dir, TIME_LIMIT);
        r.check();
        if r.code == Some(0) {
            let _ = r.json();
        }
        for k in 0..3 {
            let i = (seed as usize * 3 + k) % n;
            run_bounded(&all[i], &dir, TIME_LIMIT).check();
        }
    }
}

/// A recursion 3,001 levels deep allocating three objects (lines 10-12) at each of its deepest
/// 150 levels: 450 stacks, each some 3,000 frames deep. The levels are links of a chain built
/// beforehand, so that the recursion itself makes no integers to allocate.
const DEEP_RECURSION: &str = "\
import sys
sys.setrecursionlimit(10000)
keep = []
chain = None
for i in range(3001):
    chain = (chain, i < 150)
def descend(link):
    rest, allocate = link
    if allocate:
        keep.append(bytearray(100))
        keep.append(bytearray(200))
        keep.append(bytearray(300))
    if rest is not None:
        descend(rest)
descend(chain)
";

/// Every report of deep stacks in memory that grows with the number of stacks, not with their
/// number times their depth: resolving each stack whole took 1.5 GB for `tree` of a recursion
/// 2,000 deep. The exports write every stack whole (their output is that large); what they
/// hold is bounded by it.
#[test]
fn reports_of_deep_stacks_stay_small() {
    let dir = scratch("hostile-deep");
    let script = write(&dir, "deep.py", DEEP_RECURSION);
    let capture = dir.join("deep.bin");
    let out = tracked(
        python(),
        &capture,
        &[script.to_str().expect("utf-8")],
        &dir,
        b"",
    );
    assert!(out.status.success(), "{out:?}");
    // The exports' outputs (some 80 MB) are not kept: this process's size would count in the
    // next children's.
    for args in commands(&capture, &capture, &dir) {
        let r = run_bounded_to(&args, &dir, TIME_LIMIT, false);
        r.check();
        assert_eq!(r.code, Some(0), "{}: {}", r.what, r.stderr);
    }
    // The folded export has each stack whole: 150 for each line that allocates, the deepest
    // with every level.
    let folded = dir.join("deep.folded");
    let args = ["export", "-f", "folded", "-o"].map(OsString::from);
    let args = [&args[..], &[s(&folded), s(&capture)]].concat();
    run_bounded_to(&args, &dir, TIME_LIMIT, false).check();
    let mut stacks = [0; 3];
    let mut deepest = [0; 3];
    let file = std::io::BufReader::new(std::fs::File::open(&folded).expect("folded"));
    for text in std::io::BufRead::lines(file) {
        let text = text.expect("a line");
        for (i, line) in [10, 11, 12].into_iter().enumerate() {
            if text.contains(&format!("deep.py:{line} ")) {
                stacks[i] += 1;
                deepest[i] = deepest[i].max(text.matches("descend at").count());
            }
        }
    }
    assert_eq!(stacks, [150; 3], "stacks allocating at lines 10, 11, 12");
    assert_eq!(
        deepest, [3001; 3],
        "the outermost level down to the innermost"
    );
    let _ = std::fs::remove_file(&folded);
}

// ---------------------------------------------------------------------------------------------
// Copies cut short.

/// Records in the whole chunks of `file` that the trailer counts (Events and Meta), by their
/// headers: what a reader can still find in a copy cut short.
fn records_in_chunks(file: &[u8]) -> (u64, usize) {
    let mut records = 0;
    let mut events = 0;
    for (_, h) in chunk_offsets(file) {
        match h.kind {
            ChunkKind::Events => {
                records += u64::from(h.record_count);
                events += 1;
            }
            ChunkKind::Meta => records += u64::from(h.record_count),
            _ => {}
        }
    }
    (records, events)
}

#[test]
fn truncated_copies_report_what_they_hold() {
    let real_path = large_capture();
    let real = std::fs::read(real_path).expect("read");
    let dir = scratch("hostile-truncated");
    let whole = run_bounded(
        &["stats".into(), "--json".into(), real_path.into()],
        &dir,
        TIME_LIMIT,
    );
    whole.check();
    let whole = whole.json();
    assert_eq!(whole["complete"], true, "{}", whole["warnings"]);
    let written = whole["records_written"].as_u64().expect("a trailer");
    assert_eq!(whole["records_found"].as_u64(), Some(written));
    assert_eq!(records_in_chunks(&real).0, written);

    // A cut at a chunk boundary: the end of the Events chunk nearest 60% of the file.
    let chunks = chunk_offsets(&real);
    let boundary = chunks
        .iter()
        .filter(|(_, h)| h.kind == ChunkKind::Events)
        .map(|(at, h)| at + h.total_len())
        .filter(|&end| end < real.len())
        .min_by_key(|&end| end.abs_diff(real.len() * 3 / 5))
        .expect("several Events chunks");
    for (name, len) in [
        ("half", real.len() / 2),
        ("third", real.len() / 3),
        ("boundary", boundary),
    ] {
        let cut = &real[..len];
        let path = dir.join(format!("{name}.bin"));
        std::fs::write(&path, cut).expect("write");
        let (expected, events) = records_in_chunks(cut);
        assert!(expected > 0 && expected < written, "{name}: {expected}");
        let v = stats_json(&path, &dir).json();
        assert_eq!(v["complete"], false, "{name}: {v}");
        assert_eq!(v["records_found"].as_u64(), Some(expected), "{name}");
        assert_eq!(v["records_written"].as_u64(), Some(written), "{name}");
        let warning = format!("its chunks hold {expected} of the {written} records");
        assert!(
            v["warnings"].as_array().is_some_and(|w| w
                .iter()
                .any(|w| w.as_str().is_some_and(|w| w.contains(&warning)))),
            "{name}: {}",
            v["warnings"]
        );
        if events > 0 {
            // What the chunks left hold is reported: allocations, and a peak.
            assert!(v["total_allocations"].as_u64() > Some(0), "{name}: {v}");
            assert!(v["peak_bytes"].as_u64() > Some(0), "{name}");
        }
        let text = run_bounded(&["stats".into(), path.clone().into()], &dir, TIME_LIMIT);
        text.check();
        assert!(text.stderr.contains(&warning), "{name}: {}", text.stderr);
        assert!(
            String::from_utf8_lossy(&text.stdout).contains("(incomplete capture)"),
            "{name}"
        );
    }
    // The cut at a boundary keeps Events chunks: the test covers reporting what they hold.
    assert!(records_in_chunks(&real[..boundary]).1 > 0);

    // Cut at or inside the trailer's place (reserved right after the header when the tracker
    // starts): the file is cut, which the report says, rather than blaming the process.
    let (_, header_len) = FileHeader::decode(&real).expect("a real capture");
    let data_start = FileHeader::data_start(header_len);
    for len in [data_start, data_start + 20, data_start + 100] {
        let path = dir.join(format!("cut-{len}.bin"));
        std::fs::write(&path, &real[..len]).expect("write");
        let v = stats_json(&path, &dir).json();
        assert_eq!(v["complete"], false, "{len}: {v}");
        let warnings = v["warnings"].as_array().expect("warnings");
        assert_eq!(warnings.len(), 1, "{len}: {warnings:?}");
        let w = warnings[0].as_str().unwrap_or("");
        assert!(
            w.contains(&format!("the file ends at byte {len}")) && !w.contains("killed"),
            "{len}: {w}"
        );
    }
}

/// A capture followed by gigabytes of holes (space reserved and never written, as a killed
/// run's last step of growth leaves, or a file extended by hand): the reports read the holes
/// page by page, in time and memory as large as the file (4 GiB resident, half a minute), and
/// called 4 GiB of zeros before 8 bytes of garbage "4294961552 bytes of damaged data". Holes
/// are jumped over now; only the garbage is damage.
#[test]
fn holes_after_a_capture_are_jumped_over() {
    let dir = scratch("hostile-holes");
    let real = std::fs::read(small_capture()).expect("read");
    let expected = {
        let r = run_bounded(
            &["stats".into(), "--json".into(), small_capture().into()],
            &dir,
            TIME_LIMIT,
        );
        r.check();
        r.json()
    };
    const HOLE_END: u64 = 4 << 30;
    for (name, garbage) in [("hole.bin", &b""[..]), ("hole_garbage.bin", b"garbage!")] {
        let path = dir.join(name);
        {
            use std::io::{Seek, SeekFrom, Write};
            let mut f = std::fs::File::create(&path).expect("create");
            f.write_all(&real).expect("write");
            f.set_len(HOLE_END).expect("a sparse file");
            f.seek(SeekFrom::End(0)).expect("seek");
            f.write_all(garbage).expect("write");
        }
        for args in commands(&path, small_capture(), &dir) {
            run_bounded_to(&args, &dir, TIME_LIMIT, false).check();
        }
        let r = run_bounded(
            &["stats".into(), "--json".into(), path.clone().into()],
            &dir,
            TIME_LIMIT,
        );
        r.check();
        let v = r.json();
        for key in [
            "total_allocations",
            "total_bytes",
            "peak_bytes",
            "leaked_bytes",
        ] {
            assert_eq!(v[key], expected[key], "{name}: {key}");
        }
        // stats --json gives its warnings in the JSON.
        let warnings = v["warnings"].to_string();
        if garbage.is_empty() {
            assert!(!warnings.contains("damaged"), "{name}: {warnings}");
        } else {
            let damage = format!("skipped 8 bytes of damaged data at offset {HOLE_END}");
            assert!(warnings.contains(&damage), "{name}: {warnings}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Files that are not captures, and outputs that are inputs.

#[test]
fn a_fifo_or_a_device_is_refused_at_once() {
    let dir = scratch("hostile-fifo");
    let fifo = dir.join("fifo");
    let made = Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo runs");
    assert!(made.success());
    let real = small_capture();
    for input in [fifo.as_path(), Path::new("/dev/null")] {
        for args in commands(input, real, &dir) {
            // Nothing writes into the FIFO: a reader that opens it for reading waits forever.
            let r = run_bounded(&args, &dir, Duration::from_secs(30));
            r.check();
            assert_eq!(r.code, Some(1), "{}", r.what);
            let lines: Vec<&str> = r.stderr.lines().collect();
            assert_eq!(lines.len(), 1, "{}: {}", r.what, r.stderr);
            assert!(lines[0].contains("is not a regular file"), "{}", lines[0]);
        }
    }
}

#[test]
fn a_report_never_writes_over_its_input() {
    let dir = scratch("hostile-overwrite");
    let real = std::fs::read(small_capture()).expect("read");
    let html = dir.join("cap.html");
    std::fs::write(&html, &real).expect("write");
    let link = dir.join("link.bin");
    std::os::unix::fs::symlink(&html, &link).expect("symlink");
    let cases: Vec<Vec<OsString>> = vec![
        // The default output of `flamegraph cap.html` is cap.html.
        vec!["flamegraph".into(), "cap.html".into()],
        vec![
            "flamegraph".into(),
            "-o".into(),
            "./cap.html".into(),
            s(&html),
        ],
        vec!["flamegraph".into(), "-o".into(), s(&html), s(&link)],
        vec![
            "flamegraph".into(),
            "--diff".into(),
            s(&html),
            s(&link),
            "-o".into(),
            s(&html),
        ],
        vec![
            "export".into(),
            "-f".into(),
            "folded".into(),
            "-o".into(),
            s(&link),
            s(&html),
        ],
        vec![
            "export".into(),
            "-f".into(),
            "pprof".into(),
            "-o".into(),
            "cap.html".into(),
            s(&link),
        ],
    ];
    for args in cases {
        let r = run_bounded(&args, &dir, TIME_LIMIT);
        r.check();
        assert_eq!(r.code, Some(1), "{}", r.what);
        assert_eq!(r.stderr.lines().count(), 1, "{}: {}", r.what, r.stderr);
        assert!(r.stderr.contains("refusing to write"), "{}", r.stderr);
        assert_eq!(std::fs::read(&html).expect("read"), real, "{}", r.what);
    }
    // Another name is written as asked.
    let r = run_bounded(
        &[
            "flamegraph".into(),
            "-o".into(),
            "page.html".into(),
            s(&html),
        ],
        &dir,
        TIME_LIMIT,
    );
    r.check();
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(dir.join("page.html").is_file());
}

// ---------------------------------------------------------------------------------------------
// Names with control characters.

const EVIL_NAME: &str = "\x1b]0;PWNED\x07\u{202e}";

#[test]
fn control_characters_in_names_are_shown_escaped() {
    let dir = scratch("hostile-names");
    let script = write(
        &dir,
        "names.py",
        "import threading\n\
         def work():\n    return [bytes(1000) for _ in range(100)]\n\
         t = threading.Thread(target=work, name='\\x1b]0;PWNED\\x07\\u202e')\n\
         t.start()\nt.join()\n",
    );
    let capture = dir.join("names.bin");
    let words = [script.to_str().expect("utf-8"), "\x1b[31mARG"];
    let out = tracked(python(), &capture, &words, &dir, b"");
    assert!(out.status.success(), "{out:?}");
    let c = s(&capture);
    let text_commands: Vec<Vec<OsString>> = vec![
        vec!["stats".into(), "--threads".into(), c.clone()],
        vec!["summary".into(), "--threads".into(), c.clone()],
        vec![
            "tree".into(),
            "--text".into(),
            "--threads".into(),
            c.clone(),
        ],
        vec!["diff".into(), "--threads".into(), c.clone(), c.clone()],
    ];
    for args in text_commands {
        let r = run_bounded(&args, &dir, TIME_LIMIT);
        r.check();
        assert_eq!(r.code, Some(0), "{}: {}", r.what, r.stderr);
        let text = String::from_utf8(r.stdout.clone()).expect("utf-8");
        assert!(
            !text
                .chars()
                .any(|ch| ch == '\x1b' || ch == '\x07' || ch == '\u{202e}'),
            "{}: a control character reached the output",
            r.what
        );
        if !r.what.starts_with("memtrace diff") {
            assert!(
                text.contains("\\x1b]0;PWNED\\x07\\u{202e}"),
                "{}:\n{text}",
                r.what
            );
        }
    }
    let r = run_bounded(&["stats".into(), c.clone()], &dir, TIME_LIMIT);
    assert!(String::from_utf8_lossy(&r.stdout).contains("\\x1b[31mARG"));
    // JSON keeps the names (escaped in JSON's own way, the same once parsed).
    let r = run_bounded(
        &["stats".into(), "--json".into(), c.clone()],
        &dir,
        TIME_LIMIT,
    );
    r.check();
    assert!(!r.stdout.iter().any(|&b| b == 0x1b || b == 0x07));
    let v = r.json();
    let names: Vec<&str> = v["threads"]
        .as_array()
        .expect("threads")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(names.contains(&EVIL_NAME), "{names:?}");
    // The flamegraph page neither.
    let page = dir.join("names.html");
    let r = run_bounded(
        &[
            "flamegraph".into(),
            "--threads".into(),
            "-o".into(),
            s(&page),
            c,
        ],
        &dir,
        TIME_LIMIT,
    );
    r.check();
    let html = std::fs::read(&page).expect("page");
    assert!(!html.iter().any(|&b| b == 0x1b || b == 0x07));
    // Nor a bidirectional override; the thread's name is shown with its escapes.
    let text = String::from_utf8(html).expect("utf-8");
    assert!(!text.contains('\u{202e}'));
    let data = memtrace_e2e::page::page_data(&text);
    let threads: Vec<&str> = data["threads"]
        .as_array()
        .expect("threads")
        .iter()
        .filter_map(|t| t.as_str())
        .collect();
    assert!(
        threads
            .iter()
            .any(|t| t.contains("\\x1b]0;PWNED\\x07\\u{202e}")),
        "{threads:?}"
    );
}

fn s(p: &Path) -> OsString {
    OsString::from(p)
}

#[test]
fn reports_show_source_lines_of_python_files_only() {
    // A program names any file as its code's (`compile(text, path, "exec")`): the page and the
    // lines view read a frame's file on the machine that makes the report, and pages get
    // shared. Lines of a file that is no Python source (a secret, /etc/passwd) stay out.
    let dir = scratch("hostile-source");
    let secret = dir.join("secret.env");
    std::fs::write(&secret, "API_TOKEN=s3cr3t-token-value\n").expect("write");
    let script = write(
        &dir,
        "leak.py",
        &format!(
            "keep = []\n\
             exec(compile('keep.append(bytearray(500_000))', {secret:?}, 'exec'))\n\
             exec(compile('keep.append(bytearray(400_000))', '/etc/passwd', 'exec'))\n\
             keep.append(bytearray(300_000))  # the script's own line\n",
            secret = secret.to_str().expect("utf-8"),
        ),
    );
    let capture = dir.join("leak.bin");
    let out = tracked(
        python(),
        &capture,
        &[script.to_str().expect("utf-8")],
        &dir,
        b"",
    );
    assert!(out.status.success(), "{out:?}");
    let c = s(&capture);
    let page = dir.join("leak.html");
    let mut outputs = Vec::new();
    for args in [
        vec!["lines".into(), c.clone()],
        vec!["lines".into(), "--json".into(), c.clone()],
        vec![
            "lines".into(),
            c.clone(),
            secret.clone().into_os_string(),
            "/etc/passwd".into(),
        ],
        vec!["flamegraph".into(), "-o".into(), s(&page), c.clone()],
    ] {
        let r = run_bounded_to(&args, &dir, TIME_LIMIT, true);
        r.check();
        outputs.push((
            r.what.clone(),
            String::from_utf8_lossy(&r.stdout).into_owned(),
        ));
    }
    outputs.push((
        "the page".into(),
        std::fs::read_to_string(&page).expect("the page"),
    ));
    for (what, text) in &outputs {
        assert!(!text.contains("s3cr3t"), "{what}:\n{text}");
        assert!(!text.contains("root:x:0:0"), "{what}:\n{text}");
    }
    // The script's own lines are read as before.
    assert!(
        outputs[0].1.contains("# the script's own line"),
        "{}",
        outputs[0].1
    );
    assert!(outputs[4].1.contains("# the script"), "the page");
}

#[test]
fn a_capture_cut_short_while_a_report_reads_it_ends_the_report_in_one_line() {
    // `cp other.bin cap.bin` truncates the file in place: the report's next read of its map
    // past the new end faulted (SIGBUS, exit 135, no word).
    // The report is stopped once it has mapped the capture, the capture cut to its first
    // page, and the report let go on (tried again when the report was done before its stop,
    // or had read the whole capture by then: a loaded machine may stop it late).
    let mut tries = 0;
    let (capture, out) = loop {
        tries += 1;
        let capture = record_known_lines("hostile-shrink", 3_000_000);
        let mut child = Command::new(memtrace_bin())
            .arg("stats")
            .arg(&capture)
            .env("MEMTRACE_INDEX", "off")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("memtrace starts");
        let maps = format!("/proc/{}/maps", child.id());
        let name = capture.to_str().expect("utf-8").to_string();
        let start = Instant::now();
        while !std::fs::read_to_string(&maps).is_ok_and(|m| m.contains(&name)) {
            assert!(start.elapsed() < TIME_LIMIT, "the capture was never mapped");
            std::thread::sleep(Duration::from_millis(1));
        }
        let pid = child.id() as libc::pid_t;
        // SAFETY: kill(2) of the report this test started.
        unsafe { libc::kill(pid, libc::SIGSTOP) };
        if child.try_wait().expect("wait").is_some() {
            assert!(tries < 5, "the report ended before its stop {tries} times");
            continue;
        }
        std::fs::OpenOptions::new()
            .write(true)
            .open(&capture)
            .and_then(|f| f.set_len(4096))
            .expect("truncate");
        // SAFETY: as above.
        unsafe { libc::kill(pid, libc::SIGCONT) };
        let start = Instant::now();
        while child.try_wait().expect("wait").is_none() {
            assert!(start.elapsed() < TIME_LIMIT, "the report hangs");
            std::thread::sleep(Duration::from_millis(10));
        }
        let out = child.wait_with_output().expect("output");
        if out.status.success() && tries < 5 {
            continue;
        }
        break (capture, out);
    };
    let name = capture.to_str().expect("utf-8");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{:?}: {err}", out.status);
    assert_eq!(
        err.trim_end(),
        format!(
            "memtrace: {name} was cut short while this report read it (the file was rewritten \
             or truncated in place): run the report again"
        )
    );
}

#[test]
fn a_capture_read_through_dev_stdin_leaves_no_index_in_dev() {
    // As root, `memtrace stats /dev/stdin < cap.bin` left /dev/.stdin.mtidx (a capture large
    // enough for an index).
    let capture = &record_known_lines("hostile-stdin", 3_000_000);
    let planted = Path::new("/dev/.stdin.mtidx");
    let _ = std::fs::remove_file(planted);
    let out = Command::new(memtrace_bin())
        .args(["stats", "--json", "/dev/stdin"])
        .stdin(std::fs::File::open(capture).expect("the capture"))
        .output()
        .expect("memtrace runs");
    assert!(out.status.success(), "{out:?}");
    let read: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let whole = run_bounded(
        &["stats".into(), "--json".into(), s(capture)],
        capture.parent().expect("dir"),
        TIME_LIMIT,
    )
    .json();
    assert_eq!(read["total_bytes"], whole["total_bytes"]);
    assert!(
        read["total_bytes"].as_u64().is_some_and(|b| b > 0),
        "{read}"
    );
    assert!(!planted.exists());
}

#[test]
fn a_name_of_100_kb_is_kept_cut_not_lost() {
    // A function and a file name of 100 KB, the first strings of a new thread: the string
    // record did not fit the thread's first staging area and was lost for good, the frame
    // read as `<unknown>`. Now the first 4,096 bytes are kept.
    let dir = scratch("hostile-long-name");
    let script = write(
        &dir,
        "long.py",
        "import threading\n\
         keep = []\n\
         ns = {'keep': keep}\n\
         exec(compile('def g():\\n    keep.append(bytearray(1_000_000))\\n', 'f' * 100_000 + '.py', 'exec'), ns)\n\
         g = ns['g']\n\
         import sys\n\
         names = ['co_name', 'co_qualname'] if sys.version_info >= (3, 11) else ['co_name']\n\
         g.__code__ = g.__code__.replace(**{n: 'a' + 'N' * 100_000 for n in names})\n\
         t = threading.Thread(target=g)\n\
         t.start()\n\
         t.join()\n",
    );
    let capture = dir.join("long.bin");
    let out = tracked(
        python(),
        &capture,
        &[script.to_str().expect("utf-8")],
        &dir,
        b"",
    );
    assert!(out.status.success(), "{out:?}");
    let r = run_bounded(
        &["stats".into(), "--json".into(), s(&capture)],
        &dir,
        TIME_LIMIT,
    );
    r.check();
    let v = r.json();
    let top = &v["top_at_peak"][0];
    let function = top["function"].as_str().unwrap_or_default();
    let file = top["file"].as_str().unwrap_or_default();
    let short = |t: &str| t.chars().take(20).collect::<String>();
    let what = format!(
        "function {}... ({} bytes), file {}... ({} bytes), line {}, {} bytes",
        short(function),
        function.len(),
        short(file),
        file.len(),
        top["line"],
        top["bytes"]
    );
    assert!(
        function.len() == 4096 && function.starts_with("aNNN"),
        "{what}"
    );
    assert!(file.len() == 4096 && file.starts_with("fff"), "{what}");
    assert_eq!(top["line"], 2, "{what}");
    assert!(
        top["bytes"]
            .as_u64()
            .is_some_and(|b| (1_000_000..1_000_200).contains(&b)),
        "{what}"
    );
}

#[test]
fn a_file_name_cannot_write_escape_sequences_to_the_terminal() {
    // memtrace's own messages printed file names raw: `memtrace stats evil*.bin` retitled the
    // terminal and wrote to its clipboard (OSC 52) from a file dropped in a shared directory.
    let dir = scratch("hostile-file-name");
    let evil = "cap\x1b]52;c;cm0gLXJmIH4K\x07\x1b]0;PWNED\x07.bin";
    std::fs::write(dir.join(evil), b"not a capture").expect("write");
    for command in ["stats", "summary", "tree", "flamegraph"] {
        let out = Command::new(memtrace_bin())
            .arg(command)
            .arg(dir.join(evil))
            .current_dir(&dir)
            .output()
            .expect("memtrace runs");
        assert_eq!(out.status.code(), Some(1), "{command}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !err.contains('\x1b') && !err.contains('\x07'),
            "{command}: {err:?}"
        );
        assert!(err.contains("\\x1b]52;"), "{command}: {err:?}");
    }
}

#[test]
fn a_usage_error_beside_an_argument_that_is_not_utf8_is_one_line() {
    // The usage error's message read the command line with std::env::args, which panics on an
    // argument that is not UTF-8 (SIGABRT, a Rust panic message).
    use std::os::unix::ffi::OsStringExt;
    let dir = scratch("hostile-non-utf8-argument");
    for args in [
        vec![OsString::from_vec(vec![0xff])],
        vec![
            OsString::from("stats"),
            OsString::from("--bogus"),
            OsString::from_vec(b"cap\xff.bin".to_vec()),
        ],
    ] {
        let out = Command::new(memtrace_bin())
            .args(&args)
            .env_remove("RUST_BACKTRACE")
            .current_dir(&dir)
            .output()
            .expect("memtrace runs");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(err.starts_with("memtrace: "), "{args:?}: {err}");
    }
}

#[test]
fn a_line_break_in_a_name_starts_no_row_of_a_text_report() {
    // Every other control character of a name was escaped; a line break was written as it is,
    // so a function named "leak\n  99.9 GiB ... totally_fake" forged a row of its own.
    let dir = scratch("hostile-line-break");
    let script = write(
        &dir,
        "forged.py",
        "import threading\ndef make(name):\n    ns = {}\n    exec(compile('def f(n):\\n    return bytearray(n)\\n', 'innocent.py', 'exec'), ns)\n    f = ns['f']\n    f.__code__ = f.__code__.replace(co_name=name, co_qualname=name)\n    return f\nkeep = [make('leak\\nFORGED_ROW')(500000)]\nt = threading.Thread(target=lambda: keep.append(bytearray(1000)), name='worker\\nFORGED_THREAD')\nt.start()\nt.join()\n",
    );
    let cap = dir.join("forged.bin");
    let arg = script.to_string_lossy().into_owned();
    // The command line and a thread's name too (stats wrote both raw).
    let out = tracked(python(), &cap, &[&arg, "x\nFORGED_ARG"], &dir, b"");
    assert!(out.status.success(), "{out:?}");
    let out = Command::new(memtrace_bin())
        .args(["stats", "--threads"])
        .arg(&cap)
        .output()
        .expect("memtrace runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("x\\x0aFORGED_ARG"), "{text}");
    assert!(text.contains("worker\\x0aFORGED_THREAD"), "{text}");
    assert!(!text.lines().any(|l| l.starts_with("FORGED")), "{text}");
    for args in [&["tree", "--text"][..], &["summary"][..], &["stats"][..]] {
        let out = Command::new(memtrace_bin())
            .args(args)
            .arg(&cap)
            .output()
            .expect("memtrace runs");
        assert!(out.status.success(), "{args:?}: {out:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("leak\\x0aFORGED_ROW"), "{args:?}: {text}");
        assert!(
            !text.lines().any(|l| l.starts_with("FORGED_ROW")),
            "{args:?}: {text}"
        );
    }
}

#[test]
fn an_unknown_thread_lists_the_capture_s_thread_names_escaped_and_few() {
    // The one-line error listed every thread name raw: a program's thread name retitled the
    // terminal, and 3,000 threads made a line of 70 KB.
    let dir = scratch("hostile-thread-list");
    let script = write(
        &dir,
        "threads.py",
        "import threading\nkeep = []\ndef work():\n    keep.append(bytearray(1000))\nts = [threading.Thread(target=work, name='t\\x1b]0;PWNED\\x07%d' % i) for i in range(30)]\nfor t in ts: t.start()\nfor t in ts: t.join()\n",
    );
    let cap = dir.join("threads.bin");
    let arg = script.to_string_lossy().into_owned();
    let out = tracked(python(), &cap, &[&arg], &dir, b"");
    assert!(out.status.success(), "{out:?}");
    let out = Command::new(memtrace_bin())
        .args(["summary", "--thread", "nosuch"])
        .arg(&cap)
        .output()
        .expect("memtrace runs");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(!err.contains('\x1b') && !err.contains('\x07'), "{err:?}");
    assert!(err.contains("\\x1b]0;PWNED"), "{err}");
    assert!(
        err.contains("more: see memtrace summary --threads"),
        "{err}"
    );
}

/// Only `stats --json` said that a capture was cut short, sampled or aggregated: the JSON of
/// `tree`, `summary`, `lines` and `diff` gave a cut capture's figures as whole ones, and
/// `diff`'s warnings did not say which capture they were about. Each JSON carries the
/// capture's state now, and each diff warning and side names its capture.
#[test]
fn every_json_report_says_when_its_capture_is_incomplete() {
    let dir = scratch("hostile-json-state");
    let real = std::fs::read(small_capture()).expect("read");
    let cut = dir.join("cut.bin");
    std::fs::write(&cut, &real[..real.len() * 2 / 3]).expect("write");
    let whole = small_capture();
    for (args, name) in [
        (vec!["tree", "--json"], "tree"),
        (vec!["summary", "--json"], "summary"),
        (vec!["lines", "--json"], "lines"),
    ] {
        let mut all: Vec<OsString> = args.iter().map(OsString::from).collect();
        all.push(cut.clone().into());
        let r = run_bounded(&all, &dir, TIME_LIMIT);
        r.check();
        let v = r.json();
        assert_eq!(v["complete"], false, "{name}: {v}");
        assert_eq!(v["aggregated"], false, "{name}");
        assert_eq!(v["sample_bytes"], 0, "{name}");
        assert!(
            v["warnings"].to_string().contains("truncated"),
            "{name}: {}",
            v["warnings"]
        );
        let mut all: Vec<OsString> = args.iter().map(OsString::from).collect();
        all.push(whole.into());
        let v = run_bounded(&all, &dir, TIME_LIMIT).json();
        assert_eq!(v["complete"], true, "{name}: {}", v["warnings"]);
    }
    let d = run_bounded(
        &[
            "diff".into(),
            "--json".into(),
            whole.into(),
            cut.clone().into(),
        ],
        &dir,
        TIME_LIMIT,
    );
    d.check();
    let v = d.json();
    assert_eq!(v["base_capture"]["complete"], true, "{v}");
    assert_eq!(v["new_capture"]["complete"], false, "{v}");
    let text = run_bounded(
        &["diff".into(), whole.into(), cut.clone().into()],
        &dir,
        TIME_LIMIT,
    );
    text.check();
    let stdout = String::from_utf8_lossy(&text.stdout);
    let new_line = stdout.lines().nth(1).unwrap_or_default();
    assert!(new_line.ends_with("(incomplete capture)"), "{stdout}");
    assert!(
        text.stderr
            .lines()
            .all(|l| l.starts_with(&format!("memtrace: warning: NEW {}", cut.display()))),
        "{}",
        text.stderr
    );
}

/// A capture of KNOWN_LINES recorded with `extra` options (an aggregated one, a sampled one).
fn record_known_lines_with(name: &str, extra: &[&str]) -> PathBuf {
    let dir = scratch(name);
    let script = write(&dir, "known_lines.py", KNOWN_LINES);
    let capture = dir.join("known_lines.bin");
    let out = Command::new(memtrace_bin())
        .args(["run", "-q", "-f", "-o"])
        .arg(&capture)
        .args(extra)
        .arg("--python")
        .arg(python())
        .arg(&script)
        .arg("20000")
        .current_dir(&dir)
        .stdin(Stdio::null())
        .output()
        .expect("memtrace runs");
    assert!(out.status.success(), "{out:?}");
    capture
}

/// One flipped bit in the payload of any chunk the tracker finished (Events, Meta with the
/// modules, settings, children and aggregate snapshots, the trailer) is damage that a report
/// names: not complete, one warning, never figures changed in silence. Raw payloads (streams
/// stored raw, raw Meta chunks, snapshots) had no check before the payload checksum (1.4).
#[test]
fn a_flipped_bit_in_any_chunk_s_payload_is_reported_as_damage() {
    let full = small_capture().to_path_buf();
    let aggregated = record_known_lines_with("hostile-flip-aggregate", &["--aggregate"]);
    let dir = scratch("hostile-flip");
    for capture in [full, aggregated] {
        let real = std::fs::read(&capture).expect("read");
        let chunks = chunk_offsets(&real);
        let finished: Vec<_> = chunks
            .iter()
            .filter(|(_, h)| h.kind != ChunkKind::Staging)
            .collect();
        assert!(finished.len() >= 3, "{}: {chunks:?}", capture.display());
        for (at, h) in &finished {
            assert!(
                h.has_payload_crc(),
                "{}: a chunk the tracker finished carries no payload checksum: {h:?}",
                capture.display()
            );
            // Meta and trailer chunks each, and up to four Events chunks.
            let nth_events = finished
                .iter()
                .filter(|(o, c)| c.kind == ChunkKind::Events && o <= at)
                .count();
            if h.kind == ChunkKind::Events && nth_events > 4 {
                continue;
            }
            let start = at + memtrace_format::CHUNK_HEADER_LEN;
            let len = h.checked_len();
            for (i, bit) in [(0, 0u8), (len / 2, 3), (len - 1, 7)] {
                let mut bytes = real.clone();
                bytes[start + i] ^= 1 << bit;
                let copy = dir.join("flipped.bin");
                std::fs::write(&copy, &bytes).expect("write");
                let out = stats_json(&copy, &dir);
                let what = format!(
                    "{}: bit {bit} of payload byte {i} of the {:?} chunk at {at}",
                    capture.display(),
                    h.kind
                );
                if out.code == Some(1) {
                    assert!(
                        out.stderr.contains("does not match its checksum")
                            || out.stderr.contains("damaged"),
                        "{what}: {}",
                        out.stderr
                    );
                    continue;
                }
                let j = out.json();
                assert_eq!(j["complete"], false, "{what}: reported complete");
                let warnings = j["warnings"].to_string();
                assert!(
                    warnings.contains("does not match its checksum")
                        || warnings.contains("damaged trailer"),
                    "{what}: {warnings}"
                );
            }
        }
    }
}
