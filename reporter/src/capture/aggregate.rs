//! Reading an aggregated capture's snapshots (memtrace_format::aggregate): each holds the
//! (stack, thread) entries that changed since the one before, so they are applied in order,
//! the latest value of an entry winning, into what the last complete snapshot says (and what
//! the "live at exit" one said).

use super::scan::Index;
use hashbrown::HashMap;
use memtrace_format::aggregate::{self, flags, Entry, Head, AGGREGATE_KIND};

/// Live allocations and bytes by (stack, thread serial).
pub type LiveSums = HashMap<(u64, u64), (u64, u64)>;

/// The sums of an aggregated capture, as of its last snapshot.
#[derive(Clone, Debug, Default)]
pub struct Aggregated {
    /// The last snapshot's head (totals, live now, the peak).
    pub head: Head,
    /// Allocations and bytes in all, per histogram bin.
    pub histogram: Vec<(usize, u64, u64)>,
    /// Every (stack, thread serial) seen, with its latest sums.
    pub entries: HashMap<(u64, u64), Entry>,
    /// Live memory over time: (tick, the highest live bytes of a window), in order.
    pub series: Vec<(u64, u64)>,
    /// The "live at exit" snapshot: its head and what was live then by (stack, serial).
    pub exit: Option<(Head, LiveSums)>,
    /// Snapshots read.
    pub snapshots: usize,
}

/// The snapshots of a capture, applied in order; None when it has none.
pub fn read(file: &[u8], index: &Index) -> (Option<Aggregated>, Vec<String>) {
    let mut raw: Vec<(u64, &[u8])> = index
        .meta_extended(file, AGGREGATE_KIND)
        .map(|(entry, payload)| (u64::from(entry.header.seq), payload))
        .collect();
    let mut warnings = Vec::new();
    if raw.is_empty() {
        return (None, warnings);
    }
    raw.sort_by_key(|r| r.0);
    let mut a = Aggregated::default();
    let mut prev_tick = 0;
    let mut prev_seq = 0;
    for (seq, payload) in raw {
        let Some(s) = aggregate::decode(payload, prev_tick) else {
            warnings.push(format!(
                "aggregate snapshot {seq} is damaged: the reports show the snapshots before it"
            ));
            break;
        };
        if seq != prev_seq + 1 {
            warnings.push(format!(
                "aggregate snapshots {}..{} are missing: the sums of what changed then may be short",
                prev_seq + 1,
                seq - 1
            ));
        }
        prev_seq = seq;
        prev_tick = s.head.tick;
        apply(&mut a, s);
    }
    (Some(a), warnings)
}

/// Applies one snapshot.
fn apply(a: &mut Aggregated, s: aggregate::Snapshot) {
    if s.head.flags & flags::AFRESH != 0 {
        a.entries.clear();
        a.series.clear();
        a.exit = None;
        a.head = Head::default();
    }
    // A new peak since the snapshot before: an entry that has not changed since then was the
    // same at the new peak as it is now.
    if s.head.peak_bytes != a.head.peak_bytes || s.head.peak_tick != a.head.peak_tick {
        for e in a.entries.values_mut() {
            e.peak_count = e.live_count;
            e.peak_bytes = e.live_bytes;
        }
    }
    for e in s.entries {
        a.entries.insert((e.stack, e.serial), e);
    }
    a.series.extend(s.series);
    if s.head.flags & flags::EXIT != 0 && a.exit.is_none() {
        let live = a
            .entries
            .iter()
            .filter(|(_, e)| e.live_count > 0 || e.live_bytes > 0)
            .map(|(&k, e)| (k, (e.live_count, e.live_bytes)))
            .collect();
        a.exit = Some((s.head, live));
    }
    a.head = s.head;
    a.histogram = s.histogram;
    a.snapshots += 1;
}

#[cfg(test)]
mod tests {
    use super::*;
    use memtrace_format::aggregate::Snapshot;

    fn entry(stack: u64, live: u64, peak: u64, total: u64) -> Entry {
        Entry {
            stack,
            serial: 1,
            live_count: u64::from(live > 0),
            live_bytes: live,
            peak_count: u64::from(peak > 0),
            peak_bytes: peak,
            total_count: 1,
            total_bytes: total,
        }
    }

    #[test]
    fn deltas_and_a_later_peak() {
        let mut a = Aggregated::default();
        let head = |seq, peak_bytes, peak_tick| Head {
            seq,
            peak_bytes,
            peak_tick,
            ..Head::default()
        };
        apply(
            &mut a,
            Snapshot {
                head: head(1, 150, 10),
                entries: vec![entry(1, 100, 100, 100), entry(2, 0, 50, 50)],
                ..Snapshot::default()
            },
        );
        // A new peak of 100 + 70 later: stack 1 did not change, so it was 100 then.
        apply(
            &mut a,
            Snapshot {
                head: head(2, 170, 20),
                entries: vec![entry(3, 70, 70, 70)],
                ..Snapshot::default()
            },
        );
        assert_eq!(a.entries[&(1, 1)].peak_bytes, 100);
        assert_eq!(a.entries[&(2, 1)].peak_bytes, 0);
        assert_eq!(a.entries[&(3, 1)].peak_bytes, 70);
    }
}
