//! Where the interpreter's start-up ends and the script begins (Marker::ScriptStart). A run of
//! `memtrace run` finds it on the allocation path: the main thread's first allocation without a
//! Python frame after `site` (which imports the tracker) has returned (python::script). An
//! in-process capture, or a run whose interpreter the tracker cannot read, marks it at once.

use crate::{thread, tls};
use memtrace_format::Marker;

/// Marks the script's start now.
pub fn mark() {
    let t = tls::get();
    let was = t.in_tracker;
    t.in_tracker = 1;
    thread::record_marker(t, Marker::ScriptStart);
    crate::python::script::started();
    tls::get().in_tracker = was;
}
