//! A memory barrier on every thread of the process, so that the allocation path can do without
//! locked instructions (see thread::acquire).

use std::sync::atomic::{AtomicI32, Ordering};

const MEMBARRIER_CMD_GLOBAL: i32 = 1;
const MEMBARRIER_CMD_PRIVATE_EXPEDITED: i32 = 8;
const MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED: i32 = 16;

/// The membarrier command that works here, or 0 when none does.
static COMMAND: AtomicI32 = AtomicI32::new(0);

fn membarrier(cmd: i32) -> bool {
    // SAFETY: membarrier(2) takes a command and flags only.
    unsafe { libc::syscall(libc::SYS_membarrier, cmd, 0, 0) == 0 }
}

/// Registers the process for the fast (expedited) barrier; called once at start.
pub fn init() {
    let cmd = if membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) {
        MEMBARRIER_CMD_PRIVATE_EXPEDITED
    } else {
        MEMBARRIER_CMD_GLOBAL
    };
    COMMAND.store(cmd, Ordering::Relaxed);
}

/// Whether the expedited barrier works in this process now (registered, and a call succeeds):
/// a barrier that merely lets time pass is not enough for a biased lock (biased_lock.rs).
pub fn expedited() -> bool {
    let _errno = crate::sys::ErrnoGuard::new();
    COMMAND.load(Ordering::Relaxed) == MEMBARRIER_CMD_PRIVATE_EXPEDITED
        && membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)
}

/// Every thread has passed a full barrier when this returns (or, where the kernel offers no
/// membarrier, some time has passed for them to).
pub fn all_threads() {
    let _errno = crate::sys::ErrnoGuard::new();
    let cmd = COMMAND.load(Ordering::Relaxed);
    if cmd == 0 || !membarrier(cmd) {
        std::sync::atomic::fence(Ordering::SeqCst);
        crate::sys::sleep_us(2000);
    }
}
