//! The kernel's coarse monotonic clock as one word of memory: the nanoseconds of
//! `CLOCK_MONOTONIC_COARSE` in the vDSO's data page, which the kernel rewrites at each timer
//! tick (every 1 to 10 ms). Loading it costs under a nanosecond, where the CPU's time-stamp
//! counter costs 11 ns a read on the machines measured (docs/TRACKER.md, "The clock"); the
//! clock uses it to tell whether a kernel tick passed since a thread's last reading
//! (clock::event_tick).
//!
//! The page's layout is the kernel's own, so the word is found rather than assumed: the first
//! page of `[vvar]` is copied through a pipe (a page the kernel does not back makes the copy
//! fail with EFAULT, where a load would be a SIGBUS), the word is where the (seconds,
//! nanoseconds) pair that `clock_gettime(CLOCK_MONOTONIC_COARSE)` gives lies, and a load of it is
//! then checked against the clock once more. Not found (another layout, a time namespace, no
//! /proc, no descriptor left for the pipe): there is no word, and every event reads the counter.

use crate::sys;
use std::sync::atomic::{AtomicPtr, AtomicU8, Ordering};

static WORD: AtomicPtr<u64> = AtomicPtr::new(core::ptr::null_mut());
/// Where the search is: [`NOT_SEARCHED`], [`SEARCHING`] or [`SEARCHED`] (found or not: a later
/// capture of the process, the pytest plugin's one per test, does not search again). A caller
/// that finds a search under way does not wait for it: the thread searching may be gone (a
/// fork child has only the thread that forked), and the word is only an optimization.
static SEARCH: AtomicU8 = AtomicU8::new(NOT_SEARCHED);
const NOT_SEARCHED: u8 = 0;
const SEARCHING: u8 = 1;
const SEARCHED: u8 = 2;

const PAGE: usize = 4096;
const NS: u64 = 1_000_000_000;

/// The word, or null when it was not found.
#[inline(always)]
pub fn word() -> *const u64 {
    WORD.load(Ordering::Relaxed)
}

/// The coarse clock now as one number, its seconds above bit 30 and its nanoseconds below,
/// plus one (so that 0 names no time); None when there is no word (or the kernel was
/// updating it: rarely, at a second's end). The seconds count: the
/// nanoseconds alone repeat every second (a program that sleeps 1 s wakes in a kernel tick
/// with the same nanoseconds as the one it slept in).
#[inline(always)]
pub fn read() -> Option<u64> {
    let word = word();
    if word.is_null() {
        return None;
    }
    // SAFETY: `locate` checked the word and the seconds before it (in a page the kernel keeps
    // mapped for the process's life); the kernel rewrites each whole (aligned words).
    let (seconds, nanoseconds, again) = unsafe {
        (
            core::ptr::read_volatile(word.sub(1)),
            core::ptr::read_volatile(word),
            core::ptr::read_volatile(word.sub(1)),
        )
    };
    // Seconds that changed while the nanoseconds were read (the kernel's update at a second's
    // end, between its two writes): no time this once, so the counter is read.
    if seconds != again {
        return None;
    }
    Some(packed(seconds, nanoseconds))
}

/// A coarse time as [`read`] gives it: the seconds above bit 30, the nanoseconds below, plus
/// one.
#[inline(always)]
fn packed(seconds: u64, nanoseconds: u64) -> u64 {
    ((seconds << 30) | nanoseconds).wrapping_add(1)
}

/// Keeps the word only while it shows the coarse clock (checked at each capture's start: a
/// process that entered a time namespace, or was restored from a checkpoint, may find another
/// page there, whose value never moves). When it does not, read() says None from then on.
pub fn check() {
    if word().is_null() {
        return;
    }
    let shows_the_clock = (0..3).any(|_| {
        let now = sys::clock_ns(libc::CLOCK_MONOTONIC_COARSE);
        read() == Some(packed(now / NS, now % NS))
    });
    if !shows_the_clock {
        WORD.store(core::ptr::null_mut(), Ordering::Relaxed);
    }
}

/// Finds the word, once per process image (a fork child keeps the parent's mapping).
pub fn locate() {
    if sys::sandboxed() {
        return;
    }
    if SEARCH
        .compare_exchange(
            NOT_SEARCHED,
            SEARCHING,
            Ordering::Acquire,
            Ordering::Relaxed,
        )
        .is_err()
    {
        return check();
    }
    if let Some(w) = vvar_start().and_then(find_in) {
        WORD.store(w, Ordering::Relaxed);
    }
    SEARCH.store(SEARCHED, Ordering::Release);
}

/// The word in the page at `page`, checked.
fn find_in(page: usize) -> Option<*mut u64> {
    for _ in 0..3 {
        let now = sys::clock_ns(libc::CLOCK_MONOTONIC_COARSE);
        let copy = copy_page(page)?;
        let Some(i) = copy
            .windows(2)
            .position(|w| w[0] == now / NS && w[1] == now % NS)
        else {
            // A tick between the clock and the copy: try again.
            continue;
        };
        let w = (page as *mut u64).wrapping_add(i + 1);
        for _ in 0..3 {
            // SAFETY: the page was copied whole just now, so the kernel backs it; the word is
            // aligned, inside it, and the kernel keeps the mapping for the process's life.
            let loaded = unsafe { core::ptr::read_volatile(w) };
            if loaded == sys::clock_ns(libc::CLOCK_MONOTONIC_COARSE) % NS {
                return Some(w);
            }
        }
    }
    None
}

/// The page at `page` as words, copied by the kernel through a pipe; None when it cannot be
/// read.
fn copy_page(page: usize) -> Option<[u64; PAGE / 8]> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: fds has room for the two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return None;
    }
    let mut copy = [0u64; PAGE / 8];
    // SAFETY: the kernel reads the page (EFAULT if it cannot); `copy` is writable and as long.
    let copied = unsafe {
        libc::write(fds[1], page as *const libc::c_void, PAGE) == PAGE as isize
            && libc::read(fds[0], copy.as_mut_ptr() as *mut libc::c_void, PAGE) == PAGE as isize
    };
    sys::close(fds[0]);
    sys::close(fds[1]);
    copied.then_some(copy)
}

/// The start of the `[vvar]` mapping.
fn vvar_start() -> Option<usize> {
    crate::maps::find(|m| m.named(b"[vvar]")).map(|m| m.start as usize)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// [`locate`], waiting for a search another test started.
    pub(crate) fn located() {
        locate();
        while SEARCH.load(Ordering::Acquire) != SEARCHED {
            std::thread::yield_now();
        }
    }

    #[test]
    fn the_word_follows_the_coarse_clock() {
        located();
        let w = word();
        if w.is_null() {
            // Another layout (or a time namespace): every event reads the counter, as before.
            eprintln!("no coarse clock word on this kernel: nothing to check");
            return;
        }
        let mut changes = 0;
        let mut last = 0;
        let start = sys::clock_ns(libc::CLOCK_MONOTONIC);
        while changes < 3 && sys::clock_ns(libc::CLOCK_MONOTONIC) - start < 1_000_000_000 {
            // SAFETY: found and checked by locate.
            let v = unsafe { core::ptr::read_volatile(w) };
            if v != last {
                changes += 1;
                last = v;
            }
        }
        assert_eq!(changes, 3, "the word did not move with the clock");
        // The word is the clock's nanoseconds, give or take the kernel ticks between the two
        // reads (either may come first).
        let now = sys::clock_ns(libc::CLOCK_MONOTONIC_COARSE) % NS;
        // SAFETY: as above.
        let v = unsafe { core::ptr::read_volatile(w) };
        let apart = (now + NS - v) % NS;
        assert!(apart.min(NS - apart) < 20_000_000, "{v} vs {now}");
        // read() gives the seconds too, give or take one (None: read at a second's end).
        let seconds = sys::clock_ns(libc::CLOCK_MONOTONIC_COARSE) / NS;
        if let Some(r) = read() {
            let read = (r - 1) >> 30;
            assert!(
                read + 1 >= seconds && read <= seconds + 1,
                "{read} vs {seconds}"
            );
        }
        // The check keeps a word that shows the clock.
        check();
        assert!(!word().is_null());
    }
}
