//! The child records of a capture (memtrace_format::family): the processes this one started,
//! with the tick of each start on this capture's clock.

use super::scan::Index;
use memtrace_format::family::{self as record, ChildRecord};
use memtrace_format::{ChunkCodec, Decoder, Record};

/// A child the capture's process started, and when (a tick of this capture).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Child {
    pub record: ChildRecord,
    pub tick: u64,
}

/// The child records of the capture whose bytes and index are given, in file order.
pub fn children(bytes: &[u8], index: &Index) -> Vec<Child> {
    let mut out = Vec::new();
    for entry in index
        .meta
        .iter()
        .filter(|e| e.header.codec == ChunkCodec::Raw)
    {
        for rec in Decoder::new(entry.payload(bytes)) {
            match rec {
                Ok(Record::Extended {
                    kind: record::CHILD_KIND,
                    payload,
                    ..
                }) => {
                    if let Some(r) = record::decode(payload) {
                        out.push(Child {
                            record: r,
                            tick: entry.header.first_tick,
                        });
                    }
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    }
    out
}
