//! Per-thread recording. Each thread owns a staging area inside the capture file where its
//! events are encoded in place (so they survive a crash or a kill), and compresses it into an
//! Events chunk when it fills; the area starts small and grows as the thread writes more (see
//! `staging`). States are reached from the thread's TLS block and listed in a process-wide
//! registry so that the finisher can flush every thread at exit; the state of a thread that
//! exited, with its area, is taken by the next new thread.
//!
//! One module a job: `state` (the state's fields), `registry` (the list of states and the
//! capture's numbering), `owner` (attaching and claiming a state for an event), `chunk` (the
//! staging area and its flush), `events` (the entry points the hooks call), `sites` (an
//! event's stack), `tables` (the stacks layer's table records), `name` (thread names), `allocated` (the bytes a capture allocated), `model`
//! (the size of the index of recent addresses), `exit` (the thread-exit destructor), `finish`
//! (the end of a capture) and `exec_pause` (around an exec).

mod allocated;
mod chunk;
mod events;
mod exec_pause;
mod exit;
mod finish;
mod model;
mod name;
mod owner;
mod registry;
mod sites;
mod state;
mod tables;

pub use allocated::allocated_bytes;
pub use events::{
    free_tick, prefetch_free, record_alloc, record_failed, record_free, record_free_taken,
    record_marker, record_mremap, record_munmap, record_typed_free, surely_unrecorded_free,
    take_free,
};
pub use exec_pause::{flush_current, pause_others, restart_current, resume_others};
pub use exit::init_key;
pub use finish::flush_all_and_close;
pub use model::set_python_run;
pub use name::set_python_name;
pub use registry::{begin_capture, close_all, reset_for_new_capture, threads_seen, wait_idle};
