//! Patching the GOT slots of the loaded objects, and putting them back.
//!
//! Every pass runs inside dl_iterate_phdr, one object at a time: an object being visited is on
//! the loader's list, so it cannot be unmapped meanwhile. Which slots of an object to patch is
//! found once and kept ([`super::known`]). Each patched slot is remembered with what it held; a
//! restore writes that back only where the slot still holds the hook (a slot the loader or
//! anyone else rewrote since is left as it is), so a remembered slot of an object closed since
//! is harmless. The pages of the read-only part after relocation (RELRO) that hold slots to
//! write are made writable once per object and pass, and read-only again.

use super::known::{Cache, Known};
use super::targets::{self, Targets};
use crate::elf::Object;
use crate::lock::SpinLock;
use crate::sys;
use libc::{c_int, c_void};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A patched slot: where, what it held, what was put there.
#[derive(Clone, Copy)]
struct Entry {
    slot: usize,
    original: usize,
    hook: usize,
}

/// Slots remembered at most (a hash table by slot address, in an anonymous mapping).
const CAPACITY: usize = 1 << 16;

struct Table {
    entries: *mut Entry,
    /// Entries held. During a restore they are the first `used`, sorted by slot address (see
    /// [`Table::sort_for_restore`]).
    used: usize,
    /// Where in `entries` each of the `used` entries went, in the order they came (a restore
    /// reads those only, not the whole table).
    positions: *mut u32,
    /// The slots to patch of each object seen.
    known: Cache,
}

// SAFETY: the table is only reached through the PATCH lock.
unsafe impl Send for Table {}

static PATCH: SpinLock<Table> = SpinLock::new(Table {
    entries: core::ptr::null_mut(),
    used: 0,
    positions: core::ptr::null_mut(),
    known: Cache::new(),
});

/// Base addresses of the objects never patched: the tracker and the dynamic loader.
static OWN_BASE: AtomicUsize = AtomicUsize::new(usize::MAX);
static LOADER_BASE: AtomicUsize = AtomicUsize::new(usize::MAX);

impl Table {
    fn slots(&mut self) -> Option<&mut [Entry]> {
        self.mapped().then(|| {
            // SAFETY: the mapping holds CAPACITY entries (zeroed: empty), owned by this table.
            unsafe { core::slice::from_raw_parts_mut(self.entries, CAPACITY) }
        })
    }

    /// Maps the entries and their positions at first use.
    fn mapped(&mut self) -> bool {
        sys::map_array_once(&mut self.entries, CAPACITY)
            && sys::map_array_once(&mut self.positions, CAPACITY)
    }

    /// Moves the `used` entries to the front, sorted by slot address, so that each object of a
    /// restore finds its own with a binary search instead of reading the whole table. The hash
    /// layout is given up: the table is emptied after the restore.
    fn sort_for_restore(&mut self) {
        let used = self.used;
        if !self.mapped() {
            return;
        }
        // SAFETY: both mappings are made, of CAPACITY items, owned by this table; the first
        // `used` positions were written by `remember`.
        let (slots, positions) = unsafe {
            (
                core::slice::from_raw_parts_mut(self.entries, CAPACITY),
                core::slice::from_raw_parts_mut(self.positions, used),
            )
        };
        // Visited in ascending order, each entry moves down to the next free place at the
        // front (as a scan of the whole table would move it).
        positions.sort_unstable();
        for (n, &i) in positions.iter().enumerate() {
            slots.swap(n, i as usize);
        }
        slots[..used].sort_unstable_by_key(|e| e.slot);
    }

    /// Half full or more: slots kept patched between captures would pile up there (those of
    /// objects unloaded meanwhile are never forgotten) until new ones no longer fit.
    fn crowded(&self) -> bool {
        self.used * 2 >= CAPACITY
    }

    /// Remembers `e`, replacing an entry for the same slot. False when full.
    fn remember(&mut self, e: Entry) -> bool {
        let full = self.used * 4 >= CAPACITY * 3;
        if !self.mapped() {
            return false;
        }
        // SAFETY: as in `slots`.
        let slots = unsafe { core::slice::from_raw_parts_mut(self.entries, CAPACITY) };
        let mut i = (crate::stacks::hash(e.slot as u64) as usize) & (CAPACITY - 1);
        loop {
            let s = &mut slots[i];
            if s.slot == e.slot {
                *s = e;
                return true;
            }
            if s.slot == 0 {
                if full {
                    return false;
                }
                *s = e;
                // SAFETY: slots() mapped CAPACITY positions; used < CAPACITY (not full).
                unsafe { *self.positions.add(self.used) = i as u32 };
                self.used += 1;
                return true;
            }
            i = (i + 1) & (CAPACITY - 1);
        }
    }
}

fn bases() {
    if OWN_BASE.load(Ordering::Relaxed) != usize::MAX {
        return;
    }
    // SAFETY: dladdr only reads the loader's tables and fills `info`.
    let mut info: libc::Dl_info = unsafe { core::mem::zeroed() };
    // SAFETY: as above, for an address of this library.
    let own = if unsafe { libc::dladdr(bases as *const c_void, &mut info) } != 0 {
        info.dli_fbase as usize
    } else {
        0
    };
    // SAFETY: getauxval has no preconditions; AT_BASE is the dynamic loader's load address.
    let loader = unsafe { libc::getauxval(libc::AT_BASE) } as usize;
    LOADER_BASE.store(loader, Ordering::Relaxed);
    OWN_BASE.store(own, Ordering::Relaxed);
}

/// Whether the object at `info` is one to leave alone.
fn skipped(info: &libc::dl_phdr_info) -> bool {
    let base = info.dlpi_addr as usize;
    if base == OWN_BASE.load(Ordering::Relaxed) || base == LOADER_BASE.load(Ordering::Relaxed) {
        return true;
    }
    if info.dlpi_name.is_null() {
        return false;
    }
    // SAFETY: dlpi_name is a NUL-terminated string owned by the loader.
    let name = unsafe { core::ffi::CStr::from_ptr(info.dlpi_name) }.to_bytes();
    name.starts_with(b"linux-vdso") || name.starts_with(b"linux-gate")
}

struct Pass<'a> {
    table: &'a mut Table,
    targets: &'a Targets,
    /// Slots written (patched or restored).
    written: usize,
    /// What is done to each loaded object (but those `skipped`).
    visit: fn(&Visited<'_>, &mut Pass<'_>),
    /// Base addresses of objects to leave alone as well.
    old: &'a [usize],
}

/// A loaded object being visited: the loader's description and the object read from it.
struct Visited<'a> {
    info: &'a libc::dl_phdr_info,
    /// The loader's count of unloaded objects, where the description has it.
    subs: Option<u64>,
    object: Object<'a>,
}

impl Pass<'_> {
    /// Runs `visit` on every loaded object but those `skipped`; returns the slots written.
    fn run(mut self) -> usize {
        // SAFETY: each_object reads the loader's description of each object.
        unsafe { crate::phdr::iterate_phdr(each_object, &mut self as *mut Pass as *mut c_void) };
        self.written
    }
}

unsafe extern "C" fn each_object(
    info: *mut libc::dl_phdr_info,
    size: usize,
    data: *mut c_void,
) -> c_int {
    // SAFETY: the loader passes a valid info for the call; data is the Pass being run.
    let (info, pass) = unsafe { (&*info, &mut *(data as *mut Pass)) };
    if !skipped(info) && !pass.old.contains(&(info.dlpi_addr as usize)) {
        let has_subs = size >= core::mem::offset_of!(libc::dl_phdr_info, dlpi_subs) + 8;
        let visited = Visited {
            info,
            subs: has_subs.then_some(info.dlpi_subs),
            // SAFETY: a loaded object's description, valid during this callback.
            object: unsafe { Object::new(info) },
        };
        let visit = pass.visit;
        visit(&visited, pass);
    }
    0
}

/// Patches every hooked slot of every loaded object not patched yet. Returns how many slots
/// were patched.
pub fn patch_all() -> usize {
    bases();
    super::relocated::prepare();
    let targets = targets::get();
    let mut table = PATCH.lock();
    Pass {
        table: &mut table,
        targets,
        written: 0,
        visit: patch_object,
        old: &[],
    }
    .run()
}

/// Patches the hooked slots of one loaded object (during `each_object`).
fn patch_object(v: &Visited<'_>, pass: &mut Pass<'_>) {
    if !super::relocated::finished(v.info) {
        return;
    }
    let object = &v.object;
    let targets = pass.targets;
    let mut writes = Writes::new(object);
    // Taken out of the table for the time of the visit: `patch` remembers slots in the table.
    let mut known = core::mem::replace(&mut pass.table.known, Cache::new());
    let table = &mut *pass.table;
    let mut patch = |slots: &[Known]| {
        for k in slots {
            let Some(target) = targets.at(k.target) else {
                continue;
            };
            // SAFETY: a slot in a writable segment of an object loaded during this callback.
            let current = unsafe { read(k.address) };
            // A slot bound to the function itself (or to the stub standing for it), or a lazy
            // slot not yet resolved (it still points into the object's own PLT).
            if current == target.hook || !(target.holds(current) || object.contains(current)) {
                continue;
            }
            let entry = Entry {
                slot: k.address,
                original: current,
                hook: target.hook,
            };
            if table.remember(entry) {
                writes.add(k.address, current, target.hook);
            }
        }
    };
    // SAFETY: the object stays loaded while the loader's callback runs.
    unsafe { known.slots_of(v.info, v.subs, object, targets, &mut patch) };
    pass.table.known = known;
    pass.written += writes.finish();
}

/// The loaded objects: base address and path (the executable's is empty).
pub fn loaded_objects() -> Vec<(usize, std::ffi::CString)> {
    let mut objects = Vec::with_capacity(64);
    crate::phdr::each_object(|info| {
        let name = if info.dlpi_name.is_null() {
            std::ffi::CString::default()
        } else {
            // SAFETY: the loader's NUL-terminated name of a loaded object, valid during the walk.
            unsafe { core::ffi::CStr::from_ptr(info.dlpi_name) }.to_owned()
        };
        objects.push((info.dlpi_addr as usize, name));
        false
    });
    objects
}

/// The loader's count of the objects it ever added (0 where it does not say).
pub fn objects_added() -> u64 {
    let mut adds = 0;
    crate::phdr::each_object(|info| {
        adds = info.dlpi_adds;
        true
    });
    adds
}

/// Whether the object loaded at `base` is listed but not yet relocated (a dlopen in another
/// thread is loading it).
pub fn is_loading(base: usize) -> bool {
    super::relocated::prepare();
    let mut loading = false;
    crate::phdr::each_object(|info| {
        if info.dlpi_addr as usize == base {
            loading = !super::relocated::finished(info);
            return true;
        }
        false
    });
    loading
}

/// Under `memtrace run`: patches the slots of the objects loaded since `old` (their base
/// addresses) that hold one of `targets` or are not bound yet. Nothing is remembered: a
/// preloaded tracker's hooks stay for the life of the process. Returns the slots patched.
pub fn patch_new_objects(targets: &Targets, old: &[usize]) -> usize {
    bases();
    super::relocated::prepare();
    let mut table = PATCH.lock();
    Pass {
        table: &mut table,
        targets,
        written: 0,
        visit: patch_new_object,
        old,
    }
    .run()
}

/// Patches one object of [`patch_new_objects`] (during `each_object`).
fn patch_new_object(v: &Visited<'_>, pass: &mut Pass<'_>) {
    if !super::relocated::finished(v.info) {
        return;
    }
    let object = &v.object;
    let targets = pass.targets;
    let mut writes = Writes::new(object);
    let mut patch = |k: Known| {
        if let Some(target) = targets.at(k.target) {
            // SAFETY: a slot in a writable segment of an object loaded during this callback.
            let current = unsafe { read(k.address) };
            if current != target.hook && (target.holds(current) || object.contains(current)) {
                writes.add(k.address, current, target.hook);
            }
        }
        true
    };
    // SAFETY: the object stays loaded while the loader's callback runs.
    unsafe { super::known::scan(object, targets, &mut patch) };
    pass.written += writes.finish();
}

/// Whether the table of patched slots is half full or more (see [`Table::crowded`]).
pub fn crowded() -> bool {
    PATCH.lock().crowded()
}

/// Puts back every patched slot that still holds its hook, and forgets them all. Returns how
/// many were put back.
pub fn restore_all() -> usize {
    let mut table = PATCH.lock();
    if table.used == 0 {
        return 0;
    }
    table.sort_for_restore();
    let written = Pass {
        table: &mut table,
        targets: targets::get(),
        written: 0,
        visit: restore_object,
        old: &[],
    }
    .run();
    // The entries are all at the front (sort_for_restore swapped the empty ones behind).
    let used = table.used;
    if let Some(slots) = table.slots() {
        slots[..used].fill(Entry {
            slot: 0,
            original: 0,
            hook: 0,
        });
    }
    table.used = 0;
    written
}

/// Puts back the patched slots of one loaded object (during `each_object`).
fn restore_object(v: &Visited<'_>, pass: &mut Pass<'_>) {
    let object = &v.object;
    let used = pass.table.used;
    let Some(slots) = pass.table.slots() else {
        return;
    };
    let slots = &slots[..used];
    let mut writes = Writes::new(object);
    for (start, end) in object.writable_segments() {
        let first = slots.partition_point(|e| e.slot < start);
        for e in slots[first..].iter().take_while(|e| e.slot < end) {
            if !object.in_writable_segment(e.slot) {
                continue;
            }
            // SAFETY: the slot lies in a writable segment of an object that stays loaded
            // during this callback.
            if unsafe { read(e.slot) } == e.hook {
                writes.add(e.slot, e.hook, e.original);
            }
        }
    }
    pass.written += writes.finish();
}

/// Slot writes of one object, made in batches: the RELRO pages they need are made writable
/// once per batch (two mprotect calls), not once per slot.
struct Writes {
    page: usize,
    /// The object's RELRO pages (see [`protected`]).
    locked: Option<(usize, usize)>,
    /// (slot, what it must hold, what to write).
    batch: [(usize, usize, usize); 64],
    n: usize,
    written: usize,
}

impl Writes {
    fn new(object: &Object<'_>) -> Writes {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as usize;
        Writes {
            page,
            locked: object.relro().map(|r| protected(r, page)),
            batch: [(0, 0, 0); 64],
            n: 0,
            written: 0,
        }
    }

    /// Writes `new` into `slot` if it still holds `old` (now or with the batch).
    fn add(&mut self, slot: usize, old: usize, new: usize) {
        if !slot.is_multiple_of(8) {
            return;
        }
        if self.n == self.batch.len() {
            self.flush();
        }
        self.batch[self.n] = (slot, old, new);
        self.n += 1;
    }

    /// Makes the batch's writes; returns the slots written in all.
    fn finish(mut self) -> usize {
        self.flush();
        self.written
    }

    fn flush(&mut self) {
        let batch = &self.batch[..self.n];
        self.n = 0;
        let is_locked = |slot: usize| self.locked.is_some_and(|(s, e)| s <= slot && slot < e);
        // The pages from the first locked slot's to the last's: all RELRO, all read-only.
        let span = batch
            .iter()
            .map(|w| w.0)
            .filter(|&slot| is_locked(slot))
            .fold(None, |span: Option<(usize, usize)>, slot| {
                let at = slot & !(self.page - 1);
                Some(span.map_or((at, at + self.page), |(s, e)| {
                    (s.min(at), e.max(at + self.page))
                }))
            });
        let unlocked =
            span.is_some_and(|(s, e)| mprotect(s, e - s, libc::PROT_READ | libc::PROT_WRITE));
        for &(slot, old, new) in batch {
            if is_locked(slot) && !unlocked {
                continue;
            }
            // SAFETY: the slot is an aligned word of a writable (or just made writable) page
            // of a loaded object; other threads load it concurrently, so it is swapped
            // atomically.
            let done = unsafe {
                (*(slot as *const AtomicUsize))
                    .compare_exchange(old, new, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
            };
            self.written += usize::from(done);
        }
        if let (Some((s, e)), true) = (span, unlocked) {
            mprotect(s, e - s, libc::PROT_READ);
        }
    }
}

/// # Safety
/// `slot` must be a mapped, 8-aligned word.
unsafe fn read(slot: usize) -> usize {
    // SAFETY: the caller's promise; other threads read the slot concurrently, so atomically.
    unsafe { (*(slot as *const AtomicUsize)).load(Ordering::Acquire) }
}

/// The pages of `[start, end)` the loader made read-only: whole pages only (glibc protects from
/// the start's page to the end rounded down).
fn protected(relro: (usize, usize), page: usize) -> (usize, usize) {
    (relro.0 & !(page - 1), relro.1 & !(page - 1))
}

fn mprotect(at: usize, len: usize, prot: c_int) -> bool {
    let _errno = sys::ErrnoGuard::new();
    // SAFETY: changes the protection of a page of a loaded object's relocated data only.
    unsafe { libc::syscall(libc::SYS_mprotect, at, len, prot) == 0 }
}

pub fn lock_for_fork() {
    PATCH.raw_lock();
}

pub fn unlock_after_fork() {
    PATCH.raw_unlock();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_whole_pages_of_relro_are_protected() {
        assert_eq!(protected((0x1e10, 0x5008), 0x1000), (0x1000, 0x5000));
        assert_eq!(protected((0x1000, 0x3000), 0x1000), (0x1000, 0x3000));
    }

    #[test]
    fn a_table_half_full_is_crowded() {
        let mut table = Table {
            entries: core::ptr::null_mut(),
            used: CAPACITY / 2 - 1,
            positions: core::ptr::null_mut(),
            known: Cache::new(),
        };
        assert!(!table.crowded());
        table.used += 1;
        assert!(table.crowded());
    }
}
