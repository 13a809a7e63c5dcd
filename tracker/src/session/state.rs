//! Whether this image's capture is started, finished and its own: the state lifecycle keeps and
//! exec reads, in a module of its own so that exec need not import lifecycle (which configures
//! exec at start-up).

use crate::sys;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

/// A capture of this process was started (and not abandoned by a fork child).
pub(crate) static STARTED: AtomicBool = AtomicBool::new(false);
pub(crate) static FINISHED: AtomicBool = AtomicBool::new(false);
/// The process whose capture is open: a vfork child shares the parent's memory (and no fork
/// handler runs in it), so it must not finish the parent's capture.
pub(crate) static CAPTURE_PID: AtomicU32 = AtomicU32::new(0);

/// This image records its own capture now: not a vfork child (which shares the parent's
/// memory), not a fork child that is not followed, not after the end.
pub fn records_this_image() -> bool {
    STARTED.load(Ordering::Acquire)
        && !FINISHED.load(Ordering::Acquire)
        && sys::getpid() == CAPTURE_PID.load(Ordering::Relaxed)
}
