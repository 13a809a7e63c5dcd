//! Allocation wrappers: functions of the C++ and C libraries that only pass a request on to
//! malloc (`operator new` and its variants, `strdup`). Without `--native` an allocation's stack
//! is its call site alone, and a call site inside one of them names no line of the program: all
//! of a C++ program's `new`s read `operator new(unsigned long) in libstdc++.so.6`. The site
//! recorded is then the wrapper's own caller (its caller's, for a wrapper that calls another),
//! found by one unwind step per wrapper: the distance between the two return addresses on the
//! stack, learnt from the wrapper's unwind rule at its first call and kept.
//!
//! The wrappers are looked up once, at the start, in the libraries that define them (a
//! program's own `operator new` is its code, not a wrapper); a C++ library loaded later by
//! `dlopen` keeps its call sites.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

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

/// The wrappers' code, `[start, end)` each, and the bounds of them all (the one test an
/// allocation from anywhere else pays). Written at the start, before recording begins.
static RANGES: [(AtomicU64, AtomicU64); MAX_RANGES] =
    [const { (AtomicU64::new(0), AtomicU64::new(0)) }; MAX_RANGES];
static COUNT: AtomicUsize = AtomicUsize::new(0);
static LOW: AtomicU64 = AtomicU64::new(u64::MAX);
static HIGH: AtomicU64 = AtomicU64::new(0);

/// Return addresses inside wrappers (a call of malloc, or of another wrapper) and the distance
/// from the slot holding one up to the slot of its wrapper's own return address; [`NO_STEP`]
/// where the wrapper's rule gives none.
const STEPS: usize = 32;
static STEP_PC: [AtomicU64; STEPS] = [const { AtomicU64::new(0) }; STEPS];
static STEP_DISTANCE: [AtomicU64; STEPS] = [const { AtomicU64::new(0) }; STEPS];
static STEPS_LEARNT: crate::lock::SpinLock<usize> = crate::lock::SpinLock::new(0);
/// How many of the steps are learnt (read without the lock).
static LEARNT: AtomicUsize = AtomicUsize::new(0);
const NO_STEP: u64 = u64::MAX;

/// Wrappers called within wrappers, followed at most.
const MAX_DEPTH: usize = 4;

/// Finds the wrappers among the loaded libraries (at the start of a capture).
pub fn find() {
    let mut found: [(u64, u64); MAX_RANGES] = [(0, 0); MAX_RANGES];
    let mut n = 0;
    crate::phdr::each_object(|info| {
        let names: &[&[u8]] = match library(info) {
            Some(Library::Cxx) => &CXX,
            Some(Library::C) => &LIBC,
            None => return false,
        };
        // SAFETY: the loader's description of a loaded object, inside its callback.
        let object = unsafe { crate::elf::Object::new(info) };
        for name in names {
            // SAFETY: as above: the object stays loaded during the callback.
            if let Some((start, end)) = unsafe { object.function_extent(name) } {
                if n < MAX_RANGES {
                    found[n] = (start as u64, end as u64);
                    n += 1;
                }
            }
        }
        false
    });
    for (slot, &(start, end)) in RANGES.iter().zip(&found[..n]) {
        slot.0.store(start, Ordering::Relaxed);
        slot.1.store(end, Ordering::Relaxed);
    }
    COUNT.store(n, Ordering::Release);
    let low = found[..n].iter().map(|r| r.0).min().unwrap_or(u64::MAX);
    let high = found[..n].iter().map(|r| r.1).max().unwrap_or(0);
    LOW.store(low, Ordering::Release);
    HIGH.store(high, Ordering::Release);
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
/// step is not known).
#[inline(always)]
pub fn outer_site(slot: u64, ret: u64) -> u64 {
    if ret < LOW.load(Ordering::Relaxed) || ret >= HIGH.load(Ordering::Relaxed) || slot == 0 {
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
        let Some(distance) = distance(ret, slot) else {
            break;
        };
        let Some(up) = slot.checked_add(distance) else {
            break;
        };
        // SAFETY: `up` is the slot of the return address of the wrapper's caller, in the
        // frames that called the hook on this thread's stack (live while it runs): the unwind
        // rule of the wrapper's code at `ret` puts it there.
        let caller = unsafe { core::ptr::read_volatile(up as *const u64) };
        if caller == 0 {
            break;
        }
        (slot, ret) = (up, caller);
        if ret < LOW.load(Ordering::Relaxed) || ret >= HIGH.load(Ordering::Relaxed) {
            break;
        }
    }
    ret
}

fn in_wrapper(pc: u64) -> bool {
    let n = COUNT.load(Ordering::Acquire);
    RANGES[..n]
        .iter()
        .any(|(start, end)| start.load(Ordering::Relaxed) <= pc && pc < end.load(Ordering::Relaxed))
}

/// The step learnt for the return address `pc` among the first `upto`.
fn learnt(pc: u64, upto: usize) -> Option<u64> {
    (0..upto.min(STEPS)).find_map(|i| {
        (STEP_PC[i].load(Ordering::Acquire) == pc).then(|| STEP_DISTANCE[i].load(Ordering::Relaxed))
    })
}

/// The distance from the slot of the return address `pc` to its wrapper's own return
/// address, when `pc` lies in a wrapper: learnt at the first call from `pc` (a few return
/// addresses in all, looked up before the wrappers' ranges), kept after.
fn distance(pc: u64, slot: u64) -> Option<u64> {
    let d = match learnt(pc, LEARNT.load(Ordering::Acquire)) {
        Some(d) => d,
        None if !in_wrapper(pc) => return None,
        None => {
            let mut learning = STEPS_LEARNT.lock();
            match learnt(pc, *learning) {
                Some(d) => d,
                None => {
                    let d = crate::unwind::distance_to_caller(pc, slot).unwrap_or(NO_STEP);
                    if *learning < STEPS {
                        STEP_DISTANCE[*learning].store(d, Ordering::Relaxed);
                        STEP_PC[*learning].store(pc, Ordering::Release);
                        *learning += 1;
                        LEARNT.store(*learning, Ordering::Release);
                    }
                    d
                }
            }
        }
    };
    (d != NO_STEP && d > 0 && d.is_multiple_of(8)).then_some(d)
}
