//! What the tracker knows of each code object it saw running: its qualified name and file, as
//! string ids. The names are read from the code object's own fields (see layout.rs), so naming
//! works on a thread that does not hold the GIL.
//!
//! The table and the per-thread caches (frames.rs) know a code object by its address, which a
//! new code object may take once the old one is gone: a named code object's death is watched
//! (under the GIL, a slot of its `co_extra` whose free function CPython calls when it is
//! deallocated), and takes it out of the table; each thread forgets what its caches hold of it
//! before its next stack, so before the address can serve again ([`deaths`], [`dead_since`]). Where no slot can be had, it is kept alive instead
//! (one reference): the program then keeps every code object that allocated, which held
//! 500 compiled and dropped code objects (10 MB) alive in a test, and each imported module's.

use super::api::Api;
use super::layout::{read, Layout};
use super::Tables;
use crate::lock::SpinLock;
use crate::stacks;
use crate::stacks::FastMap;
use std::sync::atomic::{AtomicIsize, AtomicU64, AtomicUsize, Ordering};

/// What a frame running a code object shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Named {
    Shown {
        function: u64,
        file: u64,
    },
    /// memtrace's own start-up hook: its frames are left out of stacks.
    Hidden,
}

/// Code address → (the tables' epoch its names were made in, its names).
static CODES: SpinLock<Option<FastMap<usize, (u64, Named)>>> = SpinLock::new(None);

/// The `co_extra` slot of the tracker: NO_SLOT_YET until asked for, NO_SLOT when CPython has
/// none to give (255 users took them).
static EXTRA_SLOT: AtomicIsize = AtomicIsize::new(NO_SLOT_YET);
const NO_SLOT_YET: isize = -2;
const NO_SLOT: isize = -1;

/// Named code objects that died: a thread whose caches were made at another count forgets
/// what they hold of the dead ones ([`dead_since`]).
static DEATHS: AtomicU64 = AtomicU64::new(0);
/// The addresses of the last deaths, the n-th at `n % DEAD_KEPT`.
const DEAD_KEPT: usize = 64;
static DEAD: [AtomicUsize; DEAD_KEPT] = [const { AtomicUsize::new(0) }; DEAD_KEPT];

/// How many named code objects died so far (see [`DEATHS`]).
#[inline(always)]
pub fn deaths() -> u64 {
    DEATHS.load(Ordering::Acquire)
}

/// The addresses of the code objects that died after the first `seen` deaths, up to `now`
/// (what [`deaths`] gave); None when they are no longer all known (then every cache goes).
pub fn dead_since(seen: u64, now: u64) -> Option<([usize; DEAD_KEPT], usize)> {
    let n = now.checked_sub(seen)? as usize;
    if n > DEAD_KEPT {
        return None;
    }
    let mut dead = [0; DEAD_KEPT];
    for (i, d) in dead.iter_mut().take(n).enumerate() {
        *d = DEAD[(seen as usize + i) % DEAD_KEPT].load(Ordering::Acquire);
    }
    // Written over meanwhile by later deaths: not all known.
    (deaths() - seen <= DEAD_KEPT as u64).then_some((dead, n))
}

/// CPython's call at the death of a code object whose slot the tracker set: `extra` is its
/// address. Called with the GIL held, from the code object's deallocation.
unsafe extern "C" fn code_died(extra: *mut core::ffi::c_void) {
    let mut codes = CODES.lock();
    if let Some(codes) = codes.as_mut() {
        codes.remove(&(extra as usize));
    }
    // Under the lock: one death at a time, its address in place before it is counted.
    let n = DEATHS.load(Ordering::Relaxed);
    DEAD[n as usize % DEAD_KEPT].store(extra as usize, Ordering::Release);
    DEATHS.store(n + 1, Ordering::Release);
}

/// Whether the code object at `code` is never deallocated: an immortal object (3.12 on: a
/// negative low half of its reference count), as 3.13's `_Py_InitCleanup` is, which lies in
/// read-only memory where its `co_extra` cannot be set; or a deep-frozen one of 3.11 (a count
/// of 999,999,999 to start with).
fn lives_forever(code: usize) -> bool {
    // SAFETY: a live object's reference count, its first word.
    let count = unsafe { read(code) } as i64;
    (count as i32) < 0 || count >= 999_999_999
}

/// Has CPython tell the tracker when `code` dies (see the module's comment); false when it
/// cannot. The GIL is held.
fn watch_death(api: &Api, code: usize) -> bool {
    let Some(extra) = api.code_extra else {
        return false;
    };
    let mut slot = EXTRA_SLOT.load(Ordering::Relaxed);
    if slot == NO_SLOT_YET {
        // SAFETY: the GIL is held (the interpreter's table of slots is changed under it).
        slot = unsafe { (extra.request_index)(Some(code_died)) }.max(NO_SLOT);
        EXTRA_SLOT.store(slot, Ordering::Relaxed);
    }
    if slot < 0 {
        return false;
    }
    // SAFETY: the GIL is held; `code` is a live code object and `slot` this interpreter's. It
    // fails only when memory for the slots runs out (an exception then, cleared).
    let set = unsafe { (extra.set)(code as *mut _, slot, code as *mut _) } == 0;
    if !set {
        // SAFETY: the GIL is held.
        unsafe { (api.err_clear)() };
    }
    set
}

pub fn lock_for_fork() {
    CODES.raw_lock();
}

pub fn unlock_after_fork() {
    CODES.raw_unlock();
}

/// The names of `code`, and whether they are settled (its death is watched, or it is kept
/// alive, and they may be cached); strings not defined before are written to `tables`.
pub fn name(api: &Api, layout: &Layout, code: usize, tables: &mut dyn Tables) -> (Named, bool) {
    let epoch = stacks::EPOCH.load(Ordering::Relaxed);
    let kept = CODES
        .lock()
        .get_or_insert_with(FastMap::default)
        .get(&code)
        .copied();
    if let Some((e, n)) = kept {
        if e == epoch {
            return (n, true);
        }
    }
    // SAFETY: PyGILState_Check only reads the runtime's state.
    let gil = unsafe { (api.gil_state_check)() } == 1;
    // SAFETY: `code` is the live code object of a frame running on this thread; its name and
    // file fields are set at creation and never change.
    let (function, file) = unsafe {
        (
            text(api, layout, read(code + layout.co_qualname), gil),
            text(api, layout, read(code + layout.co_filename), gil),
        )
    };
    // A file name that is not UTF-8 (Python keeps its bytes as surrogate escapes): its bytes.
    let undecodable;
    let file = match file {
        None if gil => {
            // SAFETY: the GIL is held; the code's file name is a live str (see above).
            undecodable = unsafe { fs_bytes(api, read(code + layout.co_filename)) };
            undecodable.as_deref()
        }
        file => file,
    };
    let readable = function.is_some() && file.is_some();
    let function = function.unwrap_or(b"<unknown>");
    let file = file.unwrap_or(b"<unknown>");
    let named = if is_bootstrap(file) {
        Named::Hidden
    } else {
        Named::Shown {
            function: string(function, tables),
            file: string(file, tables),
        }
    };
    // A code named in an earlier epoch (before a followed fork) is kept already.
    let settled = readable && (kept.is_some() || gil);
    if settled {
        if kept.is_none() && !lives_forever(code) && !watch_death(api, code) {
            // SAFETY: the GIL is held; the new reference stays with the table.
            unsafe { (api.inc_ref)(code as *mut _) };
        }
        CODES
            .lock()
            .get_or_insert_with(FastMap::default)
            .insert(code, (epoch, named));
    }
    (named, settled)
}

/// The UTF-8 text of the str object at `s`: read in place when it is compact ASCII (its bytes
/// follow the header and never change), else through the C API when the GIL is held.
///
/// # Safety
/// `s` is a live str object of the layout's version, alive as long as the returned slice is.
unsafe fn text<'a>(api: &Api, layout: &Layout, s: usize, gil: bool) -> Option<&'a [u8]> {
    if s == 0 {
        return None;
    }
    // SAFETY: per the caller: PyASCIIObject's length (offset 16) and state bits (offset 32:
    // compact is bit 5, ascii bit 6 in 3.10 to 3.13) are readable.
    let (len, state) = unsafe { (read(s + 16) as isize, ((s + 32) as *const u32).read()) };
    const COMPACT_ASCII: u32 = (1 << 5) | (1 << 6);
    if state & COMPACT_ASCII == COMPACT_ASCII && len >= 0 {
        // SAFETY: a compact ASCII str keeps its `len` characters right after its header.
        return Some(unsafe {
            core::slice::from_raw_parts((s + layout.ascii_data) as *const u8, len as usize)
        });
    }
    if !gil {
        return None;
    }
    let mut n: isize = 0;
    // SAFETY: the GIL is held; the UTF-8 buffer is cached in the str object, which outlives
    // the slice per the caller.
    unsafe {
        let p = (api.unicode_as_utf8_and_size)(s as *mut _, &mut n);
        if p.is_null() || n < 0 {
            (api.err_clear)();
            return None;
        }
        Some(core::slice::from_raw_parts(p as *const u8, n as usize))
    }
}

/// The bytes of the str at `s` as the file system's encoding gives them (with surrogate
/// escapes back to the bytes they stand for), copied.
///
/// # Safety
/// The GIL is held; `s` is a live str object (or 0).
unsafe fn fs_bytes(api: &Api, s: usize) -> Option<Vec<u8>> {
    if s == 0 {
        return None;
    }
    // SAFETY: per the caller; the bytes object's buffer is copied before it is released.
    unsafe {
        let b = (api.unicode_encode_fs_default)(s as *mut _);
        if b.is_null() {
            (api.err_clear)();
            return None;
        }
        let mut p: *mut libc::c_char = core::ptr::null_mut();
        let mut n: isize = 0;
        let out = if (api.bytes_as_string_and_size)(b, &mut p, &mut n) == 0 && n >= 0 {
            Some(core::slice::from_raw_parts(p as *const u8, n as usize).to_vec())
        } else {
            (api.err_clear)();
            None
        };
        (api.dec_ref)(b);
        out
    }
}

/// memtrace's start-up hook (`memtrace-py-<pid>/sitecustomize.py`, see
/// reporter/src/run/bootstrap.rs).
fn is_bootstrap(file: &[u8]) -> bool {
    let Some(dir) = file.strip_suffix(b"/sitecustomize.py") else {
        return false;
    };
    let name = dir.rsplit(|&b| b == b'/').next().unwrap_or(dir);
    name.strip_prefix(b"memtrace-py-")
        .is_some_and(|pid| !pid.is_empty() && pid.iter().all(u8::is_ascii_digit))
}

fn string(bytes: &[u8], tables: &mut dyn Tables) -> u64 {
    match stacks::string(bytes) {
        Ok(id) => id,
        Err(id) => {
            tables.string(id, bytes);
            id
        }
    }
}

#[cfg(test)]
mod tests {
    use super::is_bootstrap;

    #[test]
    fn only_the_start_up_hook_is_hidden() {
        assert!(is_bootstrap(b"/tmp/memtrace-py-1234/sitecustomize.py"));
        assert!(!is_bootstrap(b"/usr/lib/python3/sitecustomize.py"));
        assert!(!is_bootstrap(b"/tmp/memtrace-py-/sitecustomize.py"));
        assert!(!is_bootstrap(b"/tmp/memtrace-py-12/other.py"));
    }
}
