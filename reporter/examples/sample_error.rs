//! The error of a sampled capture's peak, without running the program again: replays a full
//! capture's events through both samplers the tracker has had (exponential gaps, and the
//! uniform gaps between N/2 and 3N/2 it draws now; memtrace_format::settings::Gaps), one
//! countdown per thread as the tracker keeps them, over many seeds, and prints for each the
//! error of the estimate at the moment of the true peak and of the highest estimate of the run
//! (what `stats` reports as the peak). The peak here counts the interpreter's start-up.
//! `cargo run --release -p memtrace-reporter --example sample_error -- CAPTURE [N] [SEEDS]`
//! (N in bytes, 512K by default; 24 seeds).

use memtrace_format::settings::{splitmix, Gaps, Sampling};
use memtrace_format::Allocator;
use memtrace_reporter::capture::decode::decode_chunk;
use memtrace_reporter::capture::event::EventKind;
use memtrace_reporter::capture::scan;
use memtrace_reporter::capture::Capture;
use std::collections::HashMap;
use std::path::Path;

/// One simulated sampled run.
struct Sampler {
    sampling: Sampling,
    rng: u64,
    /// Per thread: bytes up to and with the next sample (0: not drawn yet).
    left: HashMap<usize, i64>,
    /// Sampled live blocks and what each stands for.
    live: HashMap<u64, u64>,
    estimate: u64,
    highest: u64,
    at_true_peak: u64,
}

impl Sampler {
    fn new(gaps: Gaps, n: u64, seed: u64) -> Sampler {
        Sampler {
            sampling: Sampling { bytes: n, gaps },
            rng: splitmix(seed) | 1,
            left: HashMap::new(),
            live: HashMap::new(),
            estimate: 0,
            highest: 0,
            at_true_peak: 0,
        }
    }

    fn uniform(&mut self) -> f64 {
        self.rng = splitmix(self.rng);
        (self.rng >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Bytes to the next sample after one; `first`: from a thread's start.
    fn gap(&mut self, first: bool) -> i64 {
        let n = self.sampling.bytes as f64;
        let g = match (self.sampling.gaps, first) {
            (Gaps::Exponential, _) => -(1.0 - self.uniform()).ln() * n,
            (Gaps::Uniform, false) => n / 2.0 + self.uniform() * n,
            (Gaps::Uniform, true) if self.uniform() < 0.5 => self.uniform() * n / 2.0 + 1.0,
            (Gaps::Uniform, true) => 1.5 * n - n * self.uniform().sqrt() + 1.0,
        };
        (g as i64).max(1)
    }

    fn alloc(&mut self, thread: usize, addr: u64, size: u64, always: bool) {
        if !always && size < self.sampling.always_from() {
            let mut left = match self.left.get(&thread) {
                Some(&l) => l,
                None => self.gap(true),
            };
            left -= size as i64;
            let sampled = left <= 0;
            if sampled {
                left = match self.sampling.gaps {
                    // Memoryless: a fresh countdown.
                    Gaps::Exponential => self.gap(false),
                    Gaps::Uniform => left + self.gap(false),
                };
            }
            self.left.insert(thread, left);
            if !sampled {
                return;
            }
        }
        let w = if always {
            size
        } else {
            self.sampling.weight(size)
        };
        if let Some(old) = self.live.insert(addr, w) {
            self.estimate -= old;
        }
        self.estimate += w;
        self.highest = self.highest.max(self.estimate);
    }

    fn free(&mut self, addr: u64) {
        if let Some(w) = self.live.remove(&addr) {
            self.estimate -= w;
        }
    }
}

fn parse_bytes(s: &str) -> Option<u64> {
    let (digits, unit) = match s.char_indices().last()? {
        (i, 'K' | 'k') => (&s[..i], 1 << 10),
        (i, 'M' | 'm') => (&s[..i], 1 << 20),
        _ => (s, 1),
    };
    digits
        .parse::<u64>()
        .ok()
        .map(|d| d * unit)
        .filter(|&n| n > 1)
}

fn errors(name: &str, what: &str, values: impl Iterator<Item = u64>, truth: u64) {
    let errs: Vec<f64> = values
        .map(|v| (v as f64 / truth as f64 - 1.0) * 100.0)
        .collect();
    let mean = errs.iter().sum::<f64>() / errs.len() as f64;
    let rms = (errs.iter().map(|e| e * e).sum::<f64>() / errs.len() as f64).sqrt();
    let (lo, hi) = errs
        .iter()
        .fold((f64::MAX, f64::MIN), |(l, h), &e| (l.min(e), h.max(e)));
    println!(
        "{name:<12} {what:<22} mean {mean:+6.2}%  rms {rms:5.2}%  range {lo:+.1}% .. {hi:+.1}%"
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(path) = args.get(1) else {
        eprintln!("usage: sample_error CAPTURE [N] [SEEDS]");
        std::process::exit(2);
    };
    let n = args.get(2).map_or(Some(512 << 10), |a| parse_bytes(a));
    let seeds = args.get(3).map_or(Some(24), |a| a.parse::<u64>().ok());
    let (Some(n), Some(seeds)) = (n, seeds) else {
        eprintln!("sample_error: N is a size such as 512K, SEEDS a number");
        std::process::exit(2);
    };
    let capture = match Capture::open(Path::new(path)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    let index = scan::scan(capture.bytes(), capture.data_start(), capture.header.minor);
    if index.settings.sample_bytes > 0 {
        eprintln!("sample_error: {path} is sampled already; give it a full capture");
        std::process::exit(1);
    }
    // Every thread's events in time order (a chunk's own order kept among equal ticks).
    let mut events = Vec::new();
    for (i, entry) in index.chunks.iter().enumerate() {
        let chunk = decode_chunk(capture.bytes(), entry, i);
        events.extend(chunk.events.into_iter().map(|e| (chunk.thread, e)));
    }
    events.sort_by_key(|(_, e)| e.tick);

    let mut samplers: Vec<Sampler> = [Gaps::Exponential, Gaps::Uniform]
        .into_iter()
        .flat_map(|g| (1..=seeds).map(move |s| Sampler::new(g, n, s * 7919)))
        .collect();
    let mut live: HashMap<u64, u64> = HashMap::new();
    let (mut current, mut peak) = (0u64, 0u64);
    for &(thread, e) in &events {
        let (addr, size, always) = match e.kind() {
            EventKind::Alloc(a) => (e.addr, e.size, a == Allocator::Mmap),
            EventKind::MremapNew => (e.addr, e.size, true),
            EventKind::Free { .. } | EventKind::Munmap | EventKind::MremapOld => {
                if let Some(size) = live.remove(&e.addr) {
                    current -= size;
                }
                samplers.iter_mut().for_each(|s| s.free(e.addr));
                continue;
            }
            _ => continue,
        };
        if let Some(old) = live.insert(addr, size) {
            current -= old;
        }
        current += size;
        samplers
            .iter_mut()
            .for_each(|s| s.alloc(thread, addr, size, always));
        if current > peak {
            peak = current;
            samplers
                .iter_mut()
                .for_each(|s| s.at_true_peak = s.estimate);
        }
    }
    println!(
        "{} events, true peak {peak} bytes; N {n}, {seeds} seeds",
        events.len()
    );
    for (name, group) in ["exponential", "uniform"]
        .iter()
        .zip(samplers.chunks(seeds as usize))
    {
        errors(
            name,
            "at the true peak",
            group.iter().map(|s| s.at_true_peak),
            peak,
        );
        errors(
            name,
            "highest (the peak)",
            group.iter().map(|s| s.highest),
            peak,
        );
    }
}
