//! Where a capture's bytes come from: for each stream of its columnar chunks (docs/FORMAT.md,
//! "The columns codec"), the bytes the tracker wrote (raw) and stored (after zstd), summed over
//! the chunks. The streams that compress least are also where the tracker's zstd spends most of
//! its time, so this is the first figure to look at before changing the codec.
//! `cargo run --release -p memtrace-reporter --example stream_sizes -- CAPTURE`

use memtrace_format::chunk::ChunkCodec;
use memtrace_format::columns::{read_frames, stream};
use memtrace_reporter::capture::scan;
use memtrace_reporter::capture::Capture;
use std::path::Path;

/// The streams' names, in their stored order (`memtrace_format::columns::stream`).
const NAMES: [&str; stream::COUNT] = [
    "type",
    "delta",
    "tick",
    "addr",
    "size_lo",
    "size_hi",
    "stack",
    "free",
    "free_addr",
    "other",
];

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: stream_sizes CAPTURE");
        std::process::exit(2);
    };
    let capture = match Capture::open(Path::new(&path)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    let index = scan::scan(capture.bytes(), capture.data_start(), capture.header.minor);
    let (mut raw, mut stored) = ([0usize; stream::COUNT], [0usize; stream::COUNT]);
    let (mut chunks, mut damaged) = (0, 0);
    for c in index
        .chunks
        .iter()
        .filter(|c| c.header.codec == ChunkCodec::Columns)
    {
        let Ok(frames) = read_frames(c.payload(capture.bytes()), c.decoded_len) else {
            damaged += 1;
            continue;
        };
        chunks += 1;
        for (s, f) in frames.iter().enumerate() {
            raw[s] += f.raw_len;
            stored[s] += f.stored.len();
        }
    }
    println!("{chunks} columnar chunks ({damaged} with a damaged frame table left out)");
    println!(
        "{:<10} {:>14} {:>14} {:>8}",
        "stream", "raw bytes", "stored bytes", "stored"
    );
    for s in 0..stream::COUNT {
        let share = stored[s] as f64 / raw[s].max(1) as f64;
        println!(
            "{:<10} {:>14} {:>14} {:>7.1}%",
            NAMES[s],
            raw[s],
            stored[s],
            share * 100.0
        );
    }
    let (r, t): (usize, usize) = (raw.iter().sum(), stored.iter().sum());
    println!(
        "{:<10} {r:>14} {t:>14} {:>7.1}%",
        "all",
        t as f64 / r.max(1) as f64 * 100.0
    );
}
