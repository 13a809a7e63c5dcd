//! The hooked slots of each loaded object, found by a scan of its relocations and symbol names
//! the first time it is patched and kept for the next starts: the pytest plugin starts a tracker
//! per test, and the names never change while the object stays loaded.
//!
//! An object is known by its base address and program headers' address. Both could be reused
//! only by another object loaded after this one was closed; the loader counts the objects it
//! ever unloaded (`dlpi_subs`), and any change of that count forgets every object. What a slot
//! holds is not kept: each patch checks it again.

use super::targets::Targets;
use crate::elf::Object;
use crate::sys;

/// A slot through which an object calls (or takes the address of) a hooked function.
#[derive(Clone, Copy)]
pub struct Known {
    pub address: usize,
    /// Index of the function in [`Targets`].
    pub target: usize,
}

#[derive(Clone, Copy)]
struct Entry {
    base: usize,
    phdr: usize,
    first: usize,
    count: usize,
}

/// Objects and slots kept at most (a process that loads more starts over: see [`Cache::slots_of`]).
const OBJECTS: usize = 2048;
const SLOTS: usize = 1 << 15;

/// The kept objects and their slots, in anonymous mappings (never the program's allocator: the
/// cache is filled inside the loader's callback, with the hooks in place).
pub struct Cache {
    objects: *mut Entry,
    n_objects: usize,
    slots: *mut Known,
    n_slots: usize,
    /// The loader's count of unloaded objects the kept ones were found with.
    subs: u64,
}

// SAFETY: the cache is only reached through the PATCH lock (got.rs).
unsafe impl Send for Cache {}

impl Cache {
    pub const fn new() -> Cache {
        Cache {
            objects: core::ptr::null_mut(),
            n_objects: 0,
            slots: core::ptr::null_mut(),
            n_slots: 0,
            subs: 0,
        }
    }

    fn forget(&mut self) {
        self.n_objects = 0;
        self.n_slots = 0;
    }

    fn mapped(&mut self) -> bool {
        sys::map_array_once(&mut self.objects, OBJECTS)
            && sys::map_array_once(&mut self.slots, SLOTS)
    }

    /// The hooked slots of the object `info` describes: kept ones, or found now (and kept).
    /// `subs` is the loader's count of unloaded objects, None where it does not give it (then
    /// nothing is kept). Calls `f` with the slots.
    ///
    /// # Safety
    /// `info` and `object` describe a loaded object that stays loaded while this runs (inside
    /// a dl_iterate_phdr callback).
    pub unsafe fn slots_of(
        &mut self,
        info: &libc::dl_phdr_info,
        subs: Option<u64>,
        object: &Object<'_>,
        targets: &Targets,
        f: &mut dyn FnMut(&[Known]),
    ) {
        let (base, phdr) = (info.dlpi_addr as usize, info.dlpi_phdr as usize);
        let Some(subs) = subs.filter(|_| self.mapped()) else {
            let mut one = [Known {
                address: 0,
                target: 0,
            }];
            // SAFETY: the caller's promise.
            unsafe {
                scan(object, targets, &mut |k| {
                    one[0] = k;
                    f(&one);
                    true
                })
            };
            return;
        };
        if subs != self.subs {
            self.forget();
            self.subs = subs;
        }
        // SAFETY: the first n_objects entries of the mapping are written.
        let objects = unsafe { core::slice::from_raw_parts(self.objects, self.n_objects) };
        if let Some(e) = objects.iter().find(|e| e.base == base && e.phdr == phdr) {
            // SAFETY: the entry's slots were written when it was added.
            f(unsafe { core::slice::from_raw_parts(self.slots.add(e.first), e.count) });
            return;
        }
        if self.n_objects == OBJECTS {
            self.forget();
        }
        let first = self.n_slots;
        // SAFETY: the caller's promise; writes stay inside the mapping of SLOTS entries.
        let complete = unsafe {
            scan(object, targets, &mut |k| {
                if self.n_slots == SLOTS {
                    return false;
                }
                *self.slots.add(self.n_slots) = k;
                self.n_slots += 1;
                true
            })
        };
        if !complete {
            // Too many slots kept: start over with this object alone.
            self.forget();
            // SAFETY: as above.
            return unsafe { self.slots_of(info, None, object, targets, f) };
        }
        let entry = Entry {
            base,
            phdr,
            first,
            count: self.n_slots - first,
        };
        // SAFETY: n_objects < OBJECTS (checked above).
        unsafe { *self.objects.add(self.n_objects) = entry };
        self.n_objects += 1;
        // SAFETY: just written.
        f(unsafe { core::slice::from_raw_parts(self.slots.add(first), entry.count) });
    }
}

/// Calls `keep` with each slot of `object` through which it calls a hooked function, in a
/// writable segment; false when `keep` said to stop. Slots of the object that defines the
/// function count too: the C library calls its own malloc through one (strdup, fopen,
/// opendir...) precisely so that a preloaded allocator sees it, and so must the hooks.
///
/// # Safety
/// The object stays loaded while this runs.
pub unsafe fn scan(
    object: &Object<'_>,
    targets: &Targets,
    keep: &mut dyn FnMut(Known) -> bool,
) -> bool {
    let mut going = true;
    // SAFETY: the caller's promise.
    unsafe {
        object.for_each_slot(|slot| {
            if !going || !object.in_writable_segment(slot.address) {
                return;
            }
            if let Some(target) = targets.index(slot.name) {
                going = keep(Known {
                    address: slot.address,
                    target,
                });
            }
        })
    };
    going
}
