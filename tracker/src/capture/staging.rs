//! The sizes of the threads' staging areas in the capture file, and a pool of free ones.
//!
//! A thread's area starts small and doubles (up to `MAX_CLASS`) each time it fills, so that a
//! thread that allocates little costs little file space and memory, and one that allocates much
//! writes large, well compressed chunks. A thread that moves to a bigger area leaves the smaller
//! one here, for the next thread that needs an area of that size. (A thread that exits keeps its
//! area in its state, which the next new thread reuses: see `thread::claim_state`.)

use crate::capture::CAPTURE;
use memtrace_format::CHUNK_HEADER_LEN;
use std::sync::atomic::{AtomicU64, Ordering};

/// Sizes of areas: class `k` holds `MIN_CAPACITY << k` bytes of payload after its header, from
/// 2 KiB to 256 KiB.
const CLASSES: usize = 8;
pub const MAX_CLASS: u8 = CLASSES as u8 - 1;
const MIN_CAPACITY: usize = 2048;

/// Payload bytes (the streams' directory and regions) of an area of `class`.
pub const fn capacity(class: u8) -> usize {
    MIN_CAPACITY << class
}

/// The largest payload of any area.
pub const MAX_CAPACITY: usize = capacity(MAX_CLASS);

/// File bytes of an area of `class` (a multiple of 8, as chunks are).
const fn area_len(class: u8) -> u64 {
    (CHUNK_HEADER_LEN + capacity(class)) as u64
}

/// Free areas kept per class; more are left unused in the file (each an empty Staging chunk,
/// its disk space given back).
const POOL: usize = 64;

/// Free areas by class: the area's file offset, tagged with the capture it belongs to (the
/// high bits), 0 for an empty entry. An entry is taken by swapping it out: no ABA, no lock.
static FREE: [[AtomicU64; POOL]; CLASSES] =
    [const { [const { AtomicU64::new(0) }; POOL] }; CLASSES];
/// Offsets fit below this bit (the mapping is at most 1 TiB).
const TAG_SHIFT: u32 = 44;

fn entry(offset: u64, generation: u64) -> u64 {
    offset | (generation << TAG_SHIFT)
}

/// An area of `class` for a state of the capture `generation`: a free one, or new file space.
/// Null when the capture takes no more.
pub fn take(class: u8, generation: u64) -> Option<*mut u8> {
    let tag = entry(0, generation);
    for e in &FREE[usize::from(class)] {
        if e.load(Ordering::Relaxed) == 0 {
            continue;
        }
        let v = e.swap(0, Ordering::Acquire);
        // An entry of an earlier in-process capture points into a file that is gone.
        if v != 0 && v & !((1 << TAG_SHIFT) - 1) == tag {
            return Some(CAPTURE.at(v & ((1 << TAG_SHIFT) - 1)));
        }
    }
    CAPTURE.reserve(area_len(class))
}

/// Gives back `area` (of `class`, holding no records) for another thread to take, or, when the
/// pool is full, its disk space.
pub fn give(area: *mut u8, class: u8, generation: u64) {
    let v = entry(CAPTURE.offset_of(area), generation);
    for e in &FREE[usize::from(class)] {
        if e.load(Ordering::Relaxed) == 0
            && e.compare_exchange(0, v, Ordering::Release, Ordering::Relaxed)
                .is_ok()
        {
            return;
        }
    }
    punch(area, capacity(class));
}

/// Gives the disk space of an emptied area (its header says it holds no records) back; an area
/// smaller than a page keeps it.
pub fn punch(area: *mut u8, cap: usize) {
    if cap >= 4096 {
        let off = CAPTURE.offset_of(area);
        CAPTURE.punch_hole(off + CHUNK_HEADER_LEN as u64, cap as u64);
    }
}

/// Takes every free area of the capture `generation` out of the pool, calling `f` with each
/// (at the end of the capture, to give their disk space back).
pub fn drain(generation: u64, mut f: impl FnMut(*mut u8, usize)) {
    let tag = entry(0, generation);
    for (class, list) in FREE.iter().enumerate() {
        for e in list {
            let v = e.swap(0, Ordering::Acquire);
            if v != 0 && v & !((1 << TAG_SHIFT) - 1) == tag {
                f(
                    CAPTURE.at(v & ((1 << TAG_SHIFT) - 1)),
                    capacity(class as u8),
                );
            }
        }
    }
}

/// Empties the pool (a new capture, in a fork child: the areas belong to the parent's file).
pub fn clear() {
    for e in FREE.iter().flatten() {
        e.store(0, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Opens the (process-wide) capture on a fresh temporary file.
    fn open_capture() {
        let path = std::env::temp_dir().join(format!("memtrace-staging-{}", std::process::id()));
        let path = path.to_str().expect("utf-8").as_bytes().to_vec();
        let fd = crate::sys::open(
            &[&path[..], b"\0"].concat(),
            libc::O_RDWR | libc::O_CREAT | libc::O_TRUNC,
            0o600,
        )
        .expect("a temporary file opens");
        CAPTURE
            .open(fd, &path, &[0u8; 64])
            .expect("the capture opens");
        let _ = std::fs::remove_file(String::from_utf8_lossy(&path).as_ref());
    }

    #[test]
    fn areas_are_sized_reused_by_size_and_capture_and_drained() {
        open_capture();
        assert_eq!(capacity(0), 2048);
        assert_eq!(MAX_CAPACITY, 256 * 1024);
        let off = |p: *mut u8| CAPTURE.offset_of(p);

        // New areas are consecutive file space of their size.
        let a = take(0, 5).expect("an area");
        let b = take(0, 5).expect("an area");
        assert_eq!(off(b) - off(a), area_len(0));
        let big = take(3, 5).expect("an area");
        assert_eq!(off(big) - off(b), area_len(0));

        // A given-back area is taken again, by its size only.
        give(a, 0, 5);
        let c = take(3, 5).expect("an area");
        assert_eq!(off(c) - off(big), area_len(3), "another size: new space");
        assert_eq!(take(0, 5), Some(a), "the same size: the free area");
        assert_ne!(take(0, 5), Some(a), "taken once only");

        // An area of an earlier capture is never handed out.
        give(b, 1, 4);
        let d = take(1, 5).expect("an area");
        assert_ne!(d, b);

        // Beyond the pool's room areas are left in the file (emptied); the pool gives back
        // what it holds.
        let areas: Vec<*mut u8> = (0..POOL + 3)
            .map(|_| take(2, 5).expect("an area"))
            .collect();
        for &p in &areas {
            give(p, 2, 5);
        }
        give(d, 1, 5);
        let mut drained = Vec::new();
        drain(5, |p, cap| drained.push((off(p), cap)));
        assert_eq!(drained.len(), POOL + 1);
        assert!(drained.contains(&(off(d), capacity(1))));
        assert!(drained.contains(&(off(areas[0]), capacity(2))));
        assert!(!drained.contains(&(off(areas[POOL]), capacity(2))));
        let e = take(2, 5).expect("an area");
        assert!(!areas.contains(&e), "the pool is empty after drain");
    }
}
