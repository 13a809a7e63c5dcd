//! Event buffers used again: a decoded chunk's buffer goes back here once the merge has
//! delivered its events, and the next chunk decodes into it, so that the pages of large buffers
//! are not handed back to the system and faulted in again for every chunk.

use super::event::Event;
use std::sync::Mutex;

/// Buffers kept at most (about as many as are decoded and waiting at a time).
const KEPT: usize = 8;

static POOL: Mutex<Vec<Vec<Event>>> = Mutex::new(Vec::new());

/// An empty buffer, with room if one was given back.
pub fn take() -> Vec<Event> {
    match POOL.lock() {
        Ok(mut p) => p.pop().unwrap_or_default(),
        Err(_) => Vec::new(),
    }
}

/// Gives a buffer back.
pub fn give(mut events: Vec<Event>) {
    if events.capacity() == 0 {
        return;
    }
    events.clear();
    if let Ok(mut p) = POOL.lock() {
        if p.len() < KEPT {
            p.push(events);
        }
    }
}
