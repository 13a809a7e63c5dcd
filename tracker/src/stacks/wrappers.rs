//! Allocation wrappers: functions of the C++ and C libraries that only pass a request on to
//! malloc (`operator new` and its variants, `strdup`). Without `--native` an allocation's stack
//! is its call site alone, and a call site inside one of them names no line of the program: all
//! of a C++ program's `new`s read `operator new(unsigned long) in libstdc++.so.6`. The site
//! recorded is then the wrapper's own caller (its caller's, for a wrapper that calls another).
//!
//! At the start of a capture the wrappers are looked up in the libraries that define them (a
//! program's own `operator new` is its code, not a wrapper), and their unwind rules read once:
//! for each byte of a wrapper's code, how far above a return address there the wrapper's own
//! return address lies (a rule through the frame pointer gives none). A hook then steps out of
//! a wrapper by a table lookup and one read of its own thread's stack: no lock, no unwinding,
//! nothing that could wait (a call site inside the loader's lock, a fork child). A C++ library
//! first loaded by `dlopen` later keeps its call sites.

use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};

/// The wrappers looked for, in the C++ library (the mangled `operator new` family) and the C
/// library.
const CXX: [&[u8]; 8] = [
    b"_Znwm",
    b"_Znam",
    b"_ZnwmRKSt9nothrow_t",
    b"_ZnamRKSt9nothrow_t",
    b"_ZnwmSt11align_val_t",
    b"_ZnamSt11align_val_t",
    b"_ZnwmSt11align_val_tRKSt9nothrow_t",
    b"_ZnamSt11align_val_tRKSt9nothrow_t",
];
const LIBC: [&[u8]; 3] = [b"strdup", b"strndup", b"wcsdup"];

const MAX_RANGES: usize = CXX.len() + LIBC.len();
/// Bytes of wrapper code whose steps are kept, in all (these functions are tens of bytes).
const MAX_CODE: usize = 4096;
/// A wrapper larger than this is not one.
const MAX_WRAPPER: usize = 1024;

/// The wrappers' code, `[start, end)` each, with where their steps begin in [`STEPS`].
static RANGES: [(AtomicU64, AtomicU64, AtomicUsize); MAX_RANGES] =
    [const { (AtomicU64::new(0), AtomicU64::new(0), AtomicUsize::new(0)) }; MAX_RANGES];
static COUNT: AtomicUsize = AtomicUsize::new(0);
/// The bounds of the C++ library's wrappers and of the C library's: `[low, high)` each.
static BOUNDS: [(AtomicU64, AtomicU64); 2] =
    [const { (AtomicU64::new(u64::MAX), AtomicU64::new(0)) }; 2];
/// For a return address `start + i` of a wrapper, the distance from its slot up to the slot of
/// the wrapper's own return address (0: none).
static STEPS: [AtomicU8; MAX_CODE] = [const { AtomicU8::new(0) }; MAX_CODE];

/// What [`find`] found last (a mix of the wrappers' ranges; 0: nothing yet).
static FOUND: AtomicU64 = AtomicU64::new(0);

/// Wrappers called within wrappers, followed at most.
const MAX_DEPTH: usize = 4;

/// Finds the wrappers among the loaded libraries and reads their unwind rules (at the start of
/// a capture, before recording).
pub fn find() {
    let (found, n) = located();
    // The same wrappers as at the last start (the pytest plugin starts a capture per test):
    // their rules stand.
    let fingerprint = found[..n].iter().fold(n as u64 + 1, |h, &(start, end, _)| {
        (h ^ start ^ end.rotate_left(32)).wrapping_mul(0x9E37_79B9_7F4A_7C15)
    });
    if FOUND.load(Ordering::Acquire) == fingerprint {
        return;
    }
    // Nothing is stepped while the tables change.
    COUNT.store(0, Ordering::Release);
    for (low, high) in &BOUNDS {
        low.store(u64::MAX, Ordering::Release);
        high.store(0, Ordering::Release);
    }
    let mut kept = 0;
    let mut used = 0;
    let mut bounds = [(u64::MAX, 0u64); 2];
    let mut steps = [0u8; MAX_WRAPPER];
    for &(start, end, library) in &found[..n] {
        let len = (end - start) as usize;
        if used + len > MAX_CODE || !crate::unwind::distances(start, &mut steps[..len]) {
            continue;
        }
        for (slot, &d) in STEPS[used..used + len].iter().zip(&steps[..len]) {
            slot.store(d, Ordering::Relaxed);
        }
        let r = &RANGES[kept];
        r.0.store(start, Ordering::Relaxed);
        r.1.store(end, Ordering::Relaxed);
        r.2.store(used, Ordering::Relaxed);
        used += len;
        kept += 1;
        let b = &mut bounds[library];
        *b = (b.0.min(start), b.1.max(end));
    }
    COUNT.store(kept, Ordering::Release);
    for ((low, high), (l, h)) in BOUNDS.iter().zip(bounds) {
        high.store(h, Ordering::Release);
        low.store(l, Ordering::Release);
    }
    // Read again at the next start when some rules could not be read now (the loader's lock
    // held: a tracker loaded by dlopen).
    FOUND.store(if kept == n { fingerprint } else { 0 }, Ordering::Release);
}

/// The wrappers' code in the loaded libraries: `[start, end)` and the library (0: C++, 1: C)
/// of each, and how many.
fn located() -> ([(u64, u64, usize); MAX_RANGES], usize) {
    let mut found: [(u64, u64, usize); MAX_RANGES] = [(0, 0, 0); MAX_RANGES];
    let mut n = 0;
    crate::phdr::each_object(|info| {
        let (names, library): (&[&[u8]], usize) = match library(info) {
            Some(Library::Cxx) => (&CXX, 0),
            Some(Library::C) => (&LIBC, 1),
            None => return false,
        };
        // SAFETY: the loader's description of a loaded object, inside its callback.
        let object = unsafe { crate::elf::Object::new(info) };
        for name in names {
            // SAFETY: as above: the object stays loaded during the callback.
            if let Some((start, end)) = unsafe { object.function_extent(name) } {
                if n < MAX_RANGES && end - start <= MAX_WRAPPER {
                    found[n] = (start as u64, end as u64, library);
                    n += 1;
                }
            }
        }
        false
    });
    (found, n)
}

/// Whether `pc` lies within the bounds of one library's wrappers.
#[inline(always)]
fn near_wrappers(pc: u64) -> bool {
    BOUNDS
        .iter()
        .any(|(low, high)| low.load(Ordering::Relaxed) <= pc && pc < high.load(Ordering::Relaxed))
}

enum Library {
    Cxx,
    C,
}

/// Which library of wrappers an object is, by its file name (`libstdc++.so.6`, `libc.so.6`).
fn library(info: &libc::dl_phdr_info) -> Option<Library> {
    if info.dlpi_name.is_null() {
        return None;
    }
    // SAFETY: the loader's NUL-terminated name of the object.
    let path = unsafe { core::ffi::CStr::from_ptr(info.dlpi_name) }.to_bytes();
    let name = path.rsplit(|&b| b == b'/').next().unwrap_or(path);
    if name.starts_with(b"libstdc++.so") {
        Some(Library::Cxx)
    } else if name.starts_with(b"libc.so") {
        Some(Library::C)
    } else {
        None
    }
}

/// The call site to record for an allocation whose hook was called from `ret`, its return
/// address held at the stack slot `slot` (0: not known): `ret` itself, unless it lies in a
/// wrapper, then the first return address outside the wrappers (or the last one found, where a
/// wrapper's rule gives no step).
#[inline(always)]
pub fn outer_site(slot: u64, ret: u64) -> u64 {
    if slot == 0 || !near_wrappers(ret) {
        return ret;
    }
    outer_site_of_wrapper(slot, ret)
}

#[cold]
#[inline(never)]
fn outer_site_of_wrapper(mut slot: u64, mut ret: u64) -> u64 {
    // SAFETY: `slot` is the hook's call site's return address slot on this thread's stack,
    // live while the hook runs.
    if unsafe { core::ptr::read_volatile(slot as *const u64) } != ret {
        return ret;
    }
    for _ in 0..MAX_DEPTH {
        let Some(distance) = step(ret) else {
            break;
        };
        let up = slot + distance;
        // SAFETY: `up` is the slot of the return address of the wrapper's caller, in the
        // frames that called the hook on this thread's stack (live while it runs): the unwind
        // rule of the wrapper's code at `ret` puts it there.
        let caller = unsafe { core::ptr::read_volatile(up as *const u64) };
        if caller == 0 {
            break;
        }
        (slot, ret) = (up, caller);
        if !near_wrappers(ret) {
            break;
        }
    }
    ret
}

/// The distance from the slot of the return address `pc` to its wrapper's own return
/// address, when `pc` lies inside a wrapper whose rule there gives one.
fn step(pc: u64) -> Option<u64> {
    let n = COUNT.load(Ordering::Acquire);
    let (start, _, at) = RANGES[..n].iter().find(|(start, end, _)| {
        start.load(Ordering::Relaxed) < pc && pc < end.load(Ordering::Relaxed)
    })?;
    let i = at.load(Ordering::Relaxed) + (pc - start.load(Ordering::Relaxed)) as usize;
    let d = u64::from(STEPS.get(i)?.load(Ordering::Relaxed));
    (d > 0 && d.is_multiple_of(8)).then_some(d)
}
