//! How a capture was recorded (memtrace_format::settings): byte sampling and labels. A sampled
//! capture's allocations are weighed by what reads them (analysis::replay, analysis::totals),
//! so that every report shows estimates of the whole program's bytes and allocations.

use super::scan::Index;
use memtrace_format::settings::{self, Settings, SETTINGS_KIND};

/// The settings record of a capture (the last one in its Meta chunks), or the defaults (a
/// full capture without labels).
pub fn read(file: &[u8], index: &Index) -> Settings {
    index
        .meta_extended(file, SETTINGS_KIND)
        .filter_map(|(_, payload)| settings::decode(payload))
        .last()
        .unwrap_or_default()
}

/// The one line every report shows about a sampled capture: every report counts the
/// allocations each sample stands for (`counts_estimated`), but the live view counts its
/// live blocks as the samples they are.
pub fn sampled_note(sample_bytes: u64, counts_estimated: bool) -> String {
    let counts = match counts_estimated {
        true => "counts are estimates too",
        false => "counts of live blocks are of samples",
    };
    format!(
        "sampled capture (--sample-bytes {}): bytes and allocation totals are estimates from \
         about one sample per {} allocated; {counts}",
        sample_bytes,
        crate::report::human::size(sample_bytes)
    )
}
