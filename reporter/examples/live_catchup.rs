//! Reads a finished capture the way `memtrace live` follows a growing one (poll after poll
//! into the live view's sums) and prints the CPU time per event: the live path's cost alone,
//! without a terminal or a running program (bench/livecost.sh measures it under load).
//! `cargo run --release -p memtrace-reporter --example live_catchup -- CAPTURE [ROUNDS [live]]`

use memtrace_reporter::analysis::live::Live;
use memtrace_reporter::capture::event::Event;
use memtrace_reporter::capture::follow::{EventSink, Follower};
use std::path::Path;

/// A sink that only touches each event (the decoding's cost alone).
#[derive(Default)]
struct Touch(u64);

impl EventSink for Touch {
    fn event(&mut self, _: usize, ev: Event) {
        self.0 = self.0.wrapping_add(ev.addr ^ ev.size);
    }
}

/// Decodes the whole capture into [`Touch`]: (events, CPU seconds).
fn decode_only(path: &str) -> Result<(usize, f64), String> {
    let start = cpu_s();
    let mut follower = Follower::open(Path::new(path))?;
    let mut sink = Touch::default();
    let mut events = 0;
    loop {
        let up = follower.poll(&mut sink).map_err(|e| e.to_string())?;
        events += up.events;
        if up.events == 0 && !up.behind {
            break;
        }
    }
    std::hint::black_box(sink.0);
    Ok((events, cpu_s() - start))
}

/// This process's user + system CPU seconds.
fn cpu_s() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // Fields 14 and 15 of the whole line (utime, stime) are 11 and 12 after the ')'.
    (ticks(11) + ticks(12)) / 100.0
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(path) = args.get(1) else {
        eprintln!("usage: live_catchup CAPTURE [ROUNDS [live]]");
        std::process::exit(2);
    };
    let rounds: usize = args.get(2).and_then(|r| r.parse().ok()).unwrap_or(3);
    // A third argument `live` leaves the decoding alone out (a profile of the live path).
    let live_only = args.get(3).is_some_and(|a| a == "live");
    for _ in 0..rounds {
        match (!live_only).then(|| decode_only(path)) {
            None => {}
            Some(Ok((events, took))) => println!(
                "decoding alone: {:.1} ns/event",
                took * 1e9 / events.max(1) as f64
            ),
            Some(Err(e)) => {
                eprintln!("{e}");
                std::process::exit(1);
            }
        }
        let start = cpu_s();
        let mut live = match Live::open(Path::new(path), false) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("{e}");
                std::process::exit(1);
            }
        };
        let mut events = 0usize;
        loop {
            match live.poll() {
                Ok(p) => {
                    events += p.events;
                    if p.events == 0 && !p.behind {
                        break;
                    }
                }
                Err(e) => {
                    eprintln!("{e}");
                    std::process::exit(1);
                }
            }
        }
        let took = cpu_s() - start;
        println!(
            "{events} events, {:.2} s CPU: {:.1} ns/event; live {} B, peak {} B",
            took,
            took * 1e9 / events.max(1) as f64,
            live.live_bytes(),
            live.peak().bytes
        );
    }
}
