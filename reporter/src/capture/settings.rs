//! How a capture was recorded (memtrace_format::settings): byte sampling and labels. A sampled
//! capture's allocations are weighed here, as they are decoded, so that every analysis and
//! report built on the event stream shows estimates of the whole program's bytes.

use super::event::{code, Event};
use super::scan::Index;
use memtrace_format::settings::{self, Sampling, Settings, SETTINGS_KIND};
use memtrace_format::Allocator;

/// The settings record of a capture (the last one in its Meta chunks), or the defaults (a
/// full capture without labels).
pub fn read(file: &[u8], index: &Index) -> Settings {
    index
        .meta_extended(file, SETTINGS_KIND)
        .filter_map(|(_, payload)| settings::decode(payload))
        .last()
        .unwrap_or_default()
}

/// Replaces the size of each sampled allocation by the bytes it stands for (mappings are
/// always recorded and keep theirs). Nothing for a full capture.
pub fn weigh(events: &mut [Event], sampling: Sampling) {
    if !sampling.is_sampled() {
        return;
    }
    for e in events {
        let c = e.code();
        if c < code::ALLOC_END && c != Allocator::Mmap as u8 {
            e.size = sampling.weight(e.size);
        }
    }
}

/// The one line every report shows about a sampled capture, `aggregated` or not: the
/// aggregated tracker sums each sample's estimated count, so all its counts are estimates (a
/// full capture's live blocks and frees are counted as the samples they are).
pub fn sampled_note(sample_bytes: u64, aggregated: bool) -> String {
    let counts = match aggregated {
        true => "counts are estimates too",
        false => "counts of live blocks and frees are of samples",
    };
    format!(
        "sampled capture (--sample-bytes {}): bytes and allocation totals are estimates from \
         about one sample per {} allocated; {counts}",
        sample_bytes,
        crate::report::human::size(sample_bytes)
    )
}
