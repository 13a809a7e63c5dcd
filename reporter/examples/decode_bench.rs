//! The decoding side of a first report alone: every event-bearing chunk of a capture decoded as
//! the report's decoding threads do (`decode_chunk`, then the chunk's totals), on this one
//! thread, and the CPU time per event. Compares builds of the decoder without the replay, the
//! thread pool or the machine's other core in the figure.
//! `cargo run --release -p memtrace-reporter --example decode_bench -- CAPTURE [ROUNDS]`

use memtrace_reporter::analysis::totals::Totals;
use memtrace_reporter::capture::decode::decode_chunk;
use memtrace_reporter::capture::scan;
use memtrace_reporter::capture::Capture;
use std::path::Path;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(path) = args.get(1) else {
        eprintln!("usage: decode_bench CAPTURE [ROUNDS]");
        std::process::exit(2);
    };
    let rounds: usize = args.get(2).and_then(|r| r.parse().ok()).unwrap_or(3);
    let capture = match Capture::open(Path::new(path)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    let index = scan::scan(capture.bytes(), capture.data_start(), capture.header.minor);
    for _ in 0..rounds {
        let (mut events, mut checksum) = (0usize, 0u64);
        let (mut decode_s, mut totals_s) = (0.0, 0.0);
        for (i, entry) in index.chunks.iter().enumerate() {
            let start = Instant::now();
            let chunk = decode_chunk(capture.bytes(), entry, i);
            let decoded = Instant::now();
            let totals = Totals::from_sampled(&chunk.events, chunk.sampling);
            totals_s += decoded.elapsed().as_secs_f64();
            decode_s += (decoded - start).as_secs_f64();
            events += chunk.events.len();
            checksum = checksum.wrapping_add(totals.allocs.bytes);
        }
        let per = |s: f64| s * 1e9 / events.max(1) as f64;
        println!(
            "{events} events: decode {:.1} ns/event, totals {:.1} ns/event (bytes {checksum})",
            per(decode_s),
            per(totals_s)
        );
    }
}
