//! A capture cut short while a report reads its mapping (`cp other.bin cap.bin` truncates the
//! file in place, `truncate -s`): the next read of a page past the new end faults with SIGBUS,
//! which killed the report with no word. The maps of the captures open are noted here, and a
//! SIGBUS at an address inside one ends the report with one line naming the file and exit 1.
//! A SIGBUS anywhere else is left as it was (the default action). The handler stays installed
//! for all threads: decoding threads read the map at once and fault together, and with the
//! handler reset by the first fault (SA_RESETHAND) the second killed the report by SIGBUS
//! before the first could say why.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Once;

/// Captures noted at once (a diff reads two; a family a few more: the others go unnamed).
const SLOTS: usize = 8;
/// Bytes of a noted path (a longer one is cut).
const PATH_BYTES: usize = 512;

struct Slot {
    /// A map is noted here and not forgotten yet.
    claimed: AtomicBool,
    start: AtomicUsize,
    len: AtomicUsize,
    path_len: AtomicUsize,
    path: [AtomicUsize; PATH_BYTES / 8],
}

#[allow(clippy::declare_interior_mutable_const)]
const EMPTY: Slot = Slot {
    claimed: AtomicBool::new(false),
    start: AtomicUsize::new(0),
    len: AtomicUsize::new(0),
    path_len: AtomicUsize::new(0),
    path: [const { AtomicUsize::new(0) }; PATH_BYTES / 8],
};

static SLOTS_IN_USE: [Slot; SLOTS] = [EMPTY; SLOTS];
static NEXT: AtomicUsize = AtomicUsize::new(0);
static INSTALL: Once = Once::new();
/// A thread of the report is saying the capture was cut short (the others wait for its exit).
static SAYING: AtomicBool = AtomicBool::new(false);

/// Notes the map of the capture at `path`, `len` bytes at `start`, so that a fault in it names
/// the file.
pub fn note(path: &Path, start: *const u8, len: usize) {
    INSTALL.call_once(install);
    // A free slot first (one whose map was forgotten): a family's captures read one after
    // another took the slot of the root's, still read, whose faults then went unnamed.
    let free = SLOTS_IN_USE.iter().position(|s| {
        s.claimed
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    });
    let i = free.unwrap_or_else(|| NEXT.fetch_add(1, Ordering::Relaxed) % SLOTS);
    let slot = &SLOTS_IN_USE[i];
    slot.claimed.store(true, Ordering::Relaxed);
    // Unpublished while the path is written.
    slot.len.store(0, Ordering::Release);
    let bytes = path.as_os_str().as_encoded_bytes();
    let n = bytes.len().min(PATH_BYTES);
    for (w, chunk) in slot.path.iter().zip(bytes[..n].chunks(8)) {
        let mut word = [0u8; 8];
        word[..chunk.len()].copy_from_slice(chunk);
        w.store(usize::from_ne_bytes(word), Ordering::Relaxed);
    }
    slot.path_len.store(n, Ordering::Relaxed);
    slot.start.store(start as usize, Ordering::Relaxed);
    slot.len.store(len, Ordering::Release);
}

/// Forgets the map at `start` (the capture was dropped: its addresses may be reused).
pub fn forget(start: *const u8) {
    for slot in &SLOTS_IN_USE {
        if slot.start.load(Ordering::Relaxed) == start as usize {
            slot.len.store(0, Ordering::Release);
            slot.claimed.store(false, Ordering::Release);
        }
    }
}

fn install() {
    // SAFETY: a sigaction struct zeroed then filled; the handler below only reads atomics and
    // calls write(2) and _exit(2), which may be called from a signal handler.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_sigbus as *const () as usize;
        action.sa_flags = libc::SA_SIGINFO;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(libc::SIGBUS, &action, std::ptr::null_mut());
    }
}

extern "C" fn on_sigbus(_: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo to an SA_SIGINFO handler.
    let addr = unsafe { (*info).si_addr() } as usize;
    let Some(slot) = SLOTS_IN_USE.iter().find(|s| {
        let len = s.len.load(Ordering::Acquire);
        let start = s.start.load(Ordering::Relaxed);
        len != 0 && addr >= start && addr - start < len
    }) else {
        // Not a capture's page: the default action when the faulting instruction runs again.
        // SAFETY: sigaction(2) may be called from a signal handler; a zeroed action is SIG_DFL.
        unsafe {
            let mut default: libc::sigaction = std::mem::zeroed();
            libc::sigemptyset(&mut default.sa_mask);
            libc::sigaction(libc::SIGBUS, &default, std::ptr::null_mut());
        }
        return;
    };
    if SAYING.swap(true, Ordering::AcqRel) {
        // Another thread says it and ends the process.
        loop {
            // SAFETY: pause(2) may be called from a signal handler.
            unsafe { libc::pause() };
        }
    }
    let mut path = [0u8; PATH_BYTES];
    for (chunk, w) in path.chunks_mut(8).zip(&slot.path) {
        chunk.copy_from_slice(&w.load(Ordering::Relaxed).to_ne_bytes());
    }
    let n = slot.path_len.load(Ordering::Relaxed).min(PATH_BYTES);
    let parts: [&[u8]; 3] = [
        b"memtrace: ",
        &path[..n],
        b" was cut short while this report read it (the file was rewritten or truncated in place): run the report again\n",
    ];
    for part in parts {
        // SAFETY: write(2) of a buffer we own, to standard error.
        unsafe { libc::write(2, part.as_ptr().cast(), part.len()) };
    }
    // SAFETY: _exit(2) ends the process at once, as a signal handler may.
    unsafe { libc::_exit(1) };
}
