//! Names of threads that were running when tracking started (or still run when it stops),
//! learnt from Python's `threading` by the thread that starts or stops tracking: each thread's
//! name goes into its own records, so it is given to the thread's state when the state next
//! flushes (thread::ThreadState::update_name).

use crate::lock::SpinLock;

const SLOTS: usize = 256;
const NAME_MAX: usize = 64;

#[derive(Clone, Copy)]
struct Named {
    tid: u32,
    len: u8,
    name: [u8; NAME_MAX],
}

const EMPTY: Named = Named {
    tid: 0,
    len: 0,
    name: [0; NAME_MAX],
};

static NAMES: SpinLock<[Named; SLOTS]> = SpinLock::new([EMPTY; SLOTS]);

/// Forgets every name (a new capture starts).
pub fn clear() {
    NAMES.lock().fill(EMPTY);
}

/// Remembers the name of thread `tid` (cut to 64 bytes at a character boundary).
pub fn set(tid: u32, name: &[u8]) {
    if tid == 0 {
        return;
    }
    let mut len = name.len().min(NAME_MAX);
    while len < name.len() && len > 0 && name[len] & 0xc0 == 0x80 {
        len -= 1;
    }
    let mut names = NAMES.lock();
    let slot = names
        .iter()
        .position(|n| n.tid == tid)
        .or_else(|| names.iter().position(|n| n.tid == 0));
    if let Some(i) = slot {
        let n = &mut names[i];
        n.tid = tid;
        n.len = len as u8;
        n.name[..len].copy_from_slice(&name[..len]);
    }
}

/// The name of thread `tid`, copied into `out`; its length.
pub fn get(tid: u32, out: &mut [u8; NAME_MAX]) -> Option<usize> {
    let names = NAMES.lock();
    let n = names.iter().find(|n| n.tid == tid && tid != 0)?;
    let len = n.len as usize;
    out[..len].copy_from_slice(&n.name[..len]);
    Some(len)
}

pub const MAX: usize = NAME_MAX;

pub fn lock_for_fork() {
    NAMES.raw_lock();
}

pub fn unlock_after_fork() {
    NAMES.raw_unlock();
}
