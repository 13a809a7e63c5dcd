//! The child records of a capture (memtrace_format::family): the processes this one started,
//! with the tick of each start on this capture's clock.

use super::scan::Index;
use memtrace_format::family::{self as record, ChildRecord};

/// A child the capture's process started, and when (a tick of this capture).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Child {
    pub record: ChildRecord,
    pub tick: u64,
}

/// The child records of the capture whose bytes and index are given, in file order.
pub fn children(bytes: &[u8], index: &Index) -> Vec<Child> {
    index
        .meta_extended(bytes, record::CHILD_KIND)
        .filter_map(|(entry, payload)| {
            Some(Child {
                record: record::decode(payload)?,
                tick: entry.header.first_tick,
            })
        })
        .collect()
}
