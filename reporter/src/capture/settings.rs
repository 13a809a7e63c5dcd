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

/// The one line every report (the live view too) shows about a sampled capture: bytes and
/// counts are what the samples stand for.
pub fn sampled_note(sample_bytes: u64) -> String {
    format!(
        "sampled capture (--sample-bytes {}): bytes and allocation totals are estimates from \
         about one sample per {} allocated; counts are estimates too",
        sample_bytes,
        crate::report::human::size(sample_bytes)
    )
}
