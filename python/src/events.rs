//! Every allocation and free of a capture, in timeline order, streamed from a reading thread
//! to the Python iterator in bounded batches: memory stays a few batches whatever the capture.

use memtrace_format::Marker;
use memtrace_reporter::capture::decode::{ChunkTables, DecodedChunk};
use memtrace_reporter::capture::event::{code, Event};
use memtrace_reporter::capture::stream::{self, BatchLimits, Consumer};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;

use crate::shared::Shared;

/// Events per batch sent to the iterator.
const BATCH: usize = 16 << 10;
/// Batches waiting for the iterator, at most.
const QUEUED: usize = 4;

/// An event, the index of its thread and its position in the stream (1 for the first event, as
/// the replay numbers them).
pub type Item = (u32, Event, u64);

/// Whether an event is an allocation or a free (not a marker nor a resident-size sample).
pub fn is_record(c: u8) -> bool {
    c < code::ALLOC_END
        || matches!(c, code::FREE | code::PY_FREE | code::MUNMAP)
        || c == code::MREMAP_OLD
        || c == code::MREMAP_NEW
}

struct Sender {
    tx: SyncSender<Vec<Item>>,
    batch: Vec<Item>,
    /// Events are kept from here on (false until a Python run's script starts, unless the
    /// start-up is included).
    started: bool,
    /// The iterator is gone: nothing more to send.
    stopped: bool,
    /// Events seen so far, the skipped ones included.
    position: u64,
}

impl Sender {
    fn flush(&mut self) {
        if self.batch.is_empty() || self.stopped {
            return;
        }
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH));
        if self.tx.send(batch).is_err() {
            self.stopped = true;
        }
    }
}

impl Consumer for Sender {
    type Summary = ();
    // The records keep the sizes asked for; a sample's weight is computed beside it
    // (reader.rs).

    fn summarize(_: &DecodedChunk) {}

    fn chunk_loaded(&mut self, _: Option<usize>, _: ChunkTables, _: Option<()>) {}

    fn events(&mut self, thread: usize, events: &[Event]) {
        if self.stopped {
            return;
        }
        for e in events {
            self.position += 1;
            let c = e.code();
            if !self.started {
                self.started =
                    c == code::MARKER && Marker::from_code(e.size) == Marker::ScriptStart;
                continue;
            }
            if is_record(c) {
                self.batch.push((thread as u32, *e, self.position));
                if self.batch.len() >= BATCH {
                    self.flush();
                }
            }
        }
    }
}

/// Starts reading the capture's events in a thread of its own; the batches arrive on the
/// receiver, which ends when the capture does (or, once dropped, stops the sending).
pub fn start(shared: Arc<Shared>, include_startup: bool) -> Receiver<Vec<Item>> {
    let (tx, rx) = sync_channel(QUEUED);
    std::thread::spawn(move || {
        crate::pool::transient(move || read_into(shared, tx, include_startup));
    });
    rx
}

/// The reading thread's work: every event of the capture, in batches, to `tx`.
fn read_into(shared: Arc<Shared>, tx: SyncSender<Vec<Item>>, include_startup: bool) {
    let mut sender = Sender {
        tx,
        batch: Vec::with_capacity(BATCH),
        started: include_startup || !shared.has_script_start,
        stopped: false,
        position: 0,
    };
    stream::run(
        shared.capture.bytes(),
        &shared.index,
        &mut sender,
        BatchLimits::default(),
    );
    sender.flush();
}
