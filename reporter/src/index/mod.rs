//! The capture index: what the first report of a capture leaves so that every later report of
//! it answers at once. Reading a capture is one pass over all its events; what the reports
//! take from that pass (an [`Analysis`] once frozen: totals, the sets live at the peak and at
//! exit, the temporary allocations, per-thread sums, the series, the interned tables, the
//! page's time buckets) is small, one entry per (stack, thread) rather than per event. The index
//! stores it, compressed, beside the capture (`.<capture>.mtidx`) or in the per-user cache
//! directory ([`place`]); a later report checks it against the capture and reads it instead of
//! the events. The chunk index and the clock are found again from the capture's chunk headers.
//!
//! - One index holds a few entries, one per set of analysis options that changes the result
//!   (`--include-startup`, `--temporary-threshold`, the page's buckets; for a capture of a
//!   family, its series of steps and the family's combined peak). Views that select from
//!   one result (peak, leaks, a thread, Python-only frames, a process) share an entry. A plain
//!   report's entry computes the temporary allocations too (threshold 1), so `--temporary`
//!   answers from it as well.
//! - Only a finished capture (its trailer read, nothing missing) gets an index: one still being
//!   written, or cut short, is read whole every time.
//! - Stale (the capture's size, time, file or first and last bytes changed) or damaged (a
//!   checksum over the whole index) indexes are rebuilt; an index larger than [`MAX_SHARE`] of
//!   its capture is not written.
//! - `MEMTRACE_INDEX=off` reads and writes none (benchmarks of the full pass).

pub mod codec;
pub mod place;
mod stored;

use crate::analysis::{self, Analysis, Options};
use crate::capture::clock::Clock;
use crate::capture::{scan, Capture};
use codec::{Reader, Store, Writer};
use place::{Identity, Places};
use std::path::{Path, PathBuf};

/// The first bytes of an index, with the layout's version: a change of layout or of what an
/// analysis means changes it, and older indexes are then rebuilt.
const MAGIC: &[u8; 8] = b"MTIDX\x00\x00\x09";

/// An index is at most this share of its capture's size (1/25: 4%).
pub const MAX_SHARE: u64 = 25;

/// Entries one index keeps (the latest first).
const MAX_ENTRIES: usize = 8;

/// The analysis options an entry was computed with (those that change its result).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Key {
    include_startup: bool,
    heap_points: usize,
    temporary: Option<usize>,
    buckets: Option<usize>,
    /// The series follows every step (a family's reports find their combined peak so).
    heap_steps: bool,
    /// The "peak" taken at a moment given from outside (a family's combined peak): its
    /// CLOCK_MONOTONIC ns and its event.
    peak_at: Option<u64>,
    peak_at_event: Option<u64>,
}

impl Key {
    fn of(options: &Options) -> Key {
        Key {
            include_startup: options.include_startup,
            heap_points: options.heap_points,
            temporary: options.temporary,
            buckets: options.buckets,
            heap_steps: options.heap_steps,
            peak_at: options.peak_at_mono_ns,
            peak_at_event: options.peak_at_event,
        }
    }

    /// Whether an entry computed with `self` answers a request of `want`.
    fn answers(&self, want: &Key) -> bool {
        self.include_startup == want.include_startup
            && self.heap_points == want.heap_points
            && self.heap_steps == want.heap_steps
            && self.peak_at == want.peak_at
            && self.peak_at_event == want.peak_at_event
            && (want.temporary.is_none() || self.temporary == want.temporary)
            && (want.buckets.is_none() || self.buckets == want.buckets)
    }
}

impl Store for Key {
    fn put(&self, w: &mut Writer) {
        w.put(&self.include_startup);
        w.put(&self.heap_points);
        w.put(&self.temporary);
        w.put(&self.buckets);
        w.put(&self.heap_steps);
        w.put(&self.peak_at);
        w.put(&self.peak_at_event);
    }
    fn get(r: &mut Reader) -> Option<Key> {
        Some(Key {
            include_startup: r.get()?,
            heap_points: r.get()?,
            temporary: r.get()?,
            buckets: r.get()?,
            heap_steps: r.get()?,
            peak_at: r.get()?,
            peak_at_event: r.get()?,
        })
    }
}

/// An index read from a file: the capture it is of and its entries (zstd-compressed).
struct IndexFile {
    identity: Identity,
    entries: Vec<(Key, Vec<u8>)>,
}

impl IndexFile {
    fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.bytes.extend_from_slice(MAGIC);
        w.put(&self.identity);
        w.u64(self.entries.len() as u64);
        for (key, payload) in &self.entries {
            w.put(key);
            w.raw(payload);
        }
        let crc = crc32fast::hash(&w.bytes);
        w.bytes.extend_from_slice(&crc.to_le_bytes());
        w.bytes
    }

    /// None when the bytes are not a whole, undamaged index.
    fn decode(bytes: &[u8]) -> Option<IndexFile> {
        let (body, crc) = bytes.split_at_checked(bytes.len().checked_sub(4)?)?;
        if crc32fast::hash(body).to_le_bytes() != crc {
            return None;
        }
        let mut r = Reader::new(body.strip_prefix(MAGIC)?);
        let identity = r.get()?;
        let n = r.count()?;
        let mut entries = Vec::with_capacity(n);
        for _ in 0..n {
            let key = r.get()?;
            entries.push((key, r.raw()?.to_vec()));
        }
        r.at_end().then_some(IndexFile { identity, entries })
    }
}

/// The index read for a capture (the first of [`place::candidates`] that is of it now).
fn read_index(places: &Places, capture: &Path, identity: &Identity) -> Option<IndexFile> {
    let limit = most_bytes(identity);
    // Everything an index is checked against can be read by anyone who can read the capture:
    // in a directory others may write (/tmp), one of them could plant an index that matches.
    // Only the reader's own, the capture's owner's or root's are believed (the capture's
    // owner could write the capture itself), and only when no one else may write them.
    let owners = [place::effective_uid(), identity.owner(), 0];
    places.candidates(capture).into_iter().find_map(|p| {
        // Never a link: what is planted where the index goes is not followed.
        let bytes = crate::regular_file::read_owned(&p, limit, &owners)?;
        IndexFile::decode(&bytes).filter(|f| f.identity == *identity)
    })
}

/// The most bytes an index of the capture `identity` names is read with, its entries
/// decompressed to: far more than one takes (a few percent of the capture), and a bound on
/// what a file planted where the index goes can make a report read.
fn most_bytes(identity: &Identity) -> u64 {
    identity.size().saturating_mul(4).saturating_add(64 << 20)
}

/// Whether the index is off (`MEMTRACE_INDEX=off`).
fn disabled() -> bool {
    std::env::var_os("MEMTRACE_INDEX").is_some_and(|v| v == "off")
}

/// What was found of an index by [`analyze`] (tests and benchmarks ask).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The analysis came from the index.
    Read,
    /// The capture was read whole and an index written there.
    Written(PathBuf),
    /// The capture was read whole; no index (off, unfinished capture, too large, no place).
    None,
}

/// Reads a capture as `options` say, from its index when one answers, else whole (then
/// leaving an index for the next report). The result is the one
/// [`analysis::analyze_options`] gives.
pub fn analyze(capture: &Capture, options: Options) -> Analysis {
    analyze_in(&Places::from_env(), capture, options).0
}

/// [`analyze`] with the index in `places`, and whether the index answered.
pub fn analyze_in(places: &Places, capture: &Capture, mut options: Options) -> (Analysis, Outcome) {
    // A result kept unfrozen, or on a grid of buckets given from outside (a family's page), is
    // not stored. One at a moment given from outside (a family's combined peak) is, under that
    // moment: the family's next report asks for the same.
    let usable = options.freeze
        && options.bucket_moments.is_none()
        && !disabled()
        && place::indexable(capture.path());
    let identity = usable.then(|| Identity::of(capture)).flatten();
    let Some(identity) = identity else {
        return (analysis::analyze_options(capture, options), Outcome::None);
    };
    let want = Key::of(&options);
    let found = read_index(places, capture.path(), &identity);
    if let Some(file) = &found {
        for (key, payload) in &file.entries {
            if key.answers(&want) {
                if let Some(a) = from_entry(capture, payload, &want, most_bytes(&identity)) {
                    if let Some(p) = &mut options.progress {
                        p(analysis::Step::Finished);
                    }
                    return (a, Outcome::Read);
                }
            }
        }
    }
    // Read whole, with the temporary allocations too: `--temporary` then answers from it.
    options.temporary = options.temporary.or(Some(1));
    let key = Key::of(&options);
    let mut analysis = analysis::analyze_options(capture, options);
    let outcome = write_entry(places, capture, &identity, found, key, &analysis);
    trim(&mut analysis, &want);
    (analysis, outcome)
}

/// Drops what `want` did not ask for, so that the result is the one a pass with its options
/// gives.
fn trim(analysis: &mut Analysis, want: &Key) {
    if want.temporary.is_none() {
        analysis.replay.temporary = None;
    }
    if want.buckets.is_none() {
        analysis.buckets = None;
    }
}

/// The analysis of an entry, the capture's chunk index found again; None when the entry is
/// damaged or decompresses to more than `limit` bytes.
fn from_entry(capture: &Capture, payload: &[u8], want: &Key, limit: u64) -> Option<Analysis> {
    use std::io::Read;
    let mut bytes = Vec::new();
    zstd::stream::read::Decoder::new(payload)
        .ok()?
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .ok()?;
    if bytes.len() as u64 > limit {
        return None;
    }
    let mut r = Reader::new(&bytes);
    let totals = r.get()?;
    let replay = r.get()?;
    let tables = r.get()?;
    let threads = r.get()?;
    let types = r.get()?;
    let peak_types = r.get()?;
    let last_tick = r.get()?;
    let buckets = r.get()?;
    let warnings = r.get()?;
    if !r.at_end() {
        return None;
    }
    let file = capture.bytes();
    let index = scan::scan_capture_releasing(capture, |upto| capture.release(0..upto));
    capture.release(0..file.len());
    let clock = Clock::new(&capture.header, index.latest_pair);
    let mut analysis = Analysis {
        index,
        clock,
        totals,
        replay,
        tables,
        threads,
        types,
        peak_types,
        last_tick,
        buckets,
        warnings,
    };
    trim(&mut analysis, want);
    Some(analysis)
}

/// The encoded entry of an analysis.
fn entry_payload(a: &Analysis) -> Vec<u8> {
    let mut w = Writer::default();
    w.put(&a.totals);
    w.put(&a.replay);
    w.put(&a.tables);
    w.put(&a.threads);
    w.put(&a.types);
    w.put(&a.peak_types);
    w.put(&a.last_tick);
    w.put(&a.buckets);
    w.put(&a.warnings);
    zstd::bulk::compress(&w.bytes, 3).unwrap_or_default()
}

/// Adds the entry of `analysis` to the capture's index (the entries it answers for replaced)
/// and writes it, when the capture is finished, unchanged since `identity`, and the index
/// small enough.
fn write_entry(
    places: &Places,
    capture: &Capture,
    identity: &Identity,
    found: Option<IndexFile>,
    key: Key,
    analysis: &Analysis,
) -> Outcome {
    if !analysis.complete() || Identity::of(capture).as_ref() != Some(identity) {
        return Outcome::None;
    }
    let payload = entry_payload(analysis);
    if payload.is_empty() {
        return Outcome::None;
    }
    let mut entries = vec![(key, payload)];
    entries.extend(
        found
            .map(|f| f.entries)
            .unwrap_or_default()
            .into_iter()
            .filter(|(old, _)| !key.answers(old))
            .take(MAX_ENTRIES - 1),
    );
    let mut file = IndexFile {
        identity: identity.clone(),
        entries,
    };
    let bound = identity.size() / MAX_SHARE;
    let mut bytes = file.encode();
    while bytes.len() as u64 > bound && file.entries.len() > 1 {
        file.entries.pop();
        bytes = file.encode();
    }
    if bytes.len() as u64 > bound {
        return Outcome::None;
    }
    match places.write(capture.path(), &bytes) {
        Some(p) => Outcome::Written(p),
        None => Outcome::None,
    }
}
