//! What the tracker knows of each code object it saw running: its qualified name and file, as
//! string ids. The names are read from the code object's own fields (see layout.rs), so naming
//! works on a thread that does not hold the GIL.
//!
//! The table and the per-thread caches (frames.rs) know a code object by its address, which a
//! new code object may take once the old one is gone: a named code object's death is watched
//! (under the GIL, a slot of its `co_extra` whose free function CPython calls when it is
//! deallocated), and takes it out of the table; each thread forgets what its caches hold of it
//! before its next stack, so before the address can serve again ([`deaths`], [`dead_since`]).
//! Where no slot can be had, it is kept alive instead (one reference): the program then keeps
//! every code object that allocated, which held 500 compiled and dropped code objects (10 MB)
//! alive in a test, and each imported module's.
//!
//! Setting the slot allocates (`_PyCode_SetExtra` grows `co_extra` with PyMem_Realloc), which
//! a hook must never do: tracemalloc calls malloc holding its table lock, and the realloc went
//! through tracemalloc's hook to that lock (the program hung for good). A hook takes a
//! reference on a code it names, which keeps its address unique, and queues it; the queue is
//! watched from a pending call (`Py_AddPendingCall`: the main thread, between two bytecodes,
//! outside any allocator), which then drops the reference.

use super::api::Api;
use super::layout::{read, Layout};
use super::Tables;
use crate::lock::SpinLock;
use crate::stacks;
use crate::stacks::FastMap;
use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicU64, AtomicUsize, Ordering};

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

/// Codes named in a hook whose death is to be watched at the next pending call, each held by
/// a reference meanwhile.
struct Queued {
    codes: [usize; QUEUED_MAX],
    len: usize,
}
const QUEUED_MAX: usize = 256;
static QUEUED: SpinLock<Queued> = SpinLock::new(Queued {
    codes: [0; QUEUED_MAX],
    len: 0,
});
/// A pending call to [`watch_queued`] is asked for and has not started.
static SCHEDULED: AtomicBool = AtomicBool::new(false);

/// Keeps `code` (named in a hook, the GIL held) alive and has its death watched later, from a
/// pending call; with no room in the queue, it stays alive (as where no slot can be had).
fn watch_later(api: &Api, code: usize) {
    // SAFETY: the GIL is held; the reference is dropped once the death is watched.
    unsafe { (api.inc_ref)(code as *mut _) };
    if api.code_extra.is_none() || EXTRA_SLOT.load(Ordering::Relaxed) == NO_SLOT {
        return;
    }
    {
        let mut q = QUEUED.lock();
        if q.len == QUEUED_MAX {
            return;
        }
        let n = q.len;
        q.codes[n] = code;
        q.len += 1;
    }
    if !SCHEDULED.swap(true, Ordering::AcqRel) {
        // SAFETY: callable from any thread; it queues the call in a fixed table, under a lock
        // of its own, and allocates nothing.
        let queued = unsafe { (api.add_pending_call)(watch_queued, core::ptr::null_mut()) };
        if queued != 0 {
            // The interpreter's table is full: the next code named asks again.
            SCHEDULED.store(false, Ordering::Release);
        }
    }
}

/// The pending call: watches the queued codes' deaths and drops the references that kept
/// them. Runs in the main thread with the GIL, between two bytecodes.
unsafe extern "C" fn watch_queued(_: *mut core::ffi::c_void) -> libc::c_int {
    // First: a code queued from here on asks for a call of its own.
    SCHEDULED.store(false, Ordering::Release);
    let Some(api) = super::api::get() else {
        return 0;
    };
    let (codes, n) = {
        let mut q = QUEUED.lock();
        let taken = (q.codes, q.len);
        q.len = 0;
        taken
    };
    let mut watched = [false; QUEUED_MAX];
    {
        // What setting the slots allocates is the tracker's, not the program's.
        let t = crate::tls::get();
        let was = t.in_tracker;
        t.in_tracker = 1;
        for (w, &code) in watched.iter_mut().zip(&codes[..n]) {
            *w = watch_death(api, code);
        }
        crate::tls::get().in_tracker = was;
    }
    // Outside the tracker's flag: a code whose last reference this is deallocates here, and
    // what that runs (weak-reference callbacks) is the program's.
    for (&w, &code) in watched.iter().zip(&codes[..n]) {
        if w {
            // SAFETY: the GIL is held; the reference taken in `watch_later`.
            unsafe { (api.dec_ref)(code as *mut _) };
        }
    }
    0
}

pub fn lock_for_fork() {
    CODES.raw_lock();
    QUEUED.raw_lock();
}

pub fn unlock_after_fork() {
    QUEUED.raw_unlock();
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
            text(layout, read(code + layout.co_qualname)),
            text(layout, read(code + layout.co_filename)),
        )
    };
    let readable = function.is_some() && file.is_some();
    let function = function.as_deref().unwrap_or(b"<unknown>");
    let file = file.as_deref().unwrap_or(b"<unknown>");
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
        if kept.is_none() && !lives_forever(code) {
            watch_later(api, code);
        }
        CODES
            .lock()
            .get_or_insert_with(FastMap::default)
            .insert(code, (epoch, named));
    }
    (named, settled)
}

/// The UTF-8 text of the str object at `s`, read in place: a compact ASCII str's characters
/// (they follow its header and never change), a compact str's cached UTF-8 form, or its code
/// points (one, two or four bytes each) encoded here, with surrogate escapes (U+DC80 to
/// U+DCFF, how Python keeps a file name's bytes that are not UTF-8) back to the bytes they
/// stand for, as the file system encoding gives them. Never through the C API: that allocates
/// (the UTF-8 cache, a bytes object), and a hook may run where CPython's allocator must not be
/// entered (tracemalloc calls malloc holding its table lock: a non-ASCII name hung the
/// program); and it needs no GIL.
///
/// # Safety
/// `s` is a live str object of the layout's version, alive as long as the returned slice is.
pub(super) unsafe fn text<'a>(layout: &Layout, s: usize) -> Option<Cow<'a, [u8]>> {
    if s == 0 {
        return None;
    }
    // SAFETY: per the caller: PyASCIIObject's length (offset 16) and state bits (offset 32:
    // kind is bits 2 to 4, compact bit 5, ascii bit 6 in 3.10 to 3.13) are readable.
    let (len, state) = unsafe { (read(s + 16) as isize, ((s + 32) as *const u32).read()) };
    const COMPACT: u32 = 1 << 5;
    const ASCII: u32 = 1 << 6;
    if state & COMPACT == 0 || len < 0 {
        return None;
    }
    let len = len as usize;
    if state & ASCII != 0 {
        // SAFETY: a compact ASCII str keeps its `len` characters right after its header.
        return Some(Cow::Borrowed(unsafe {
            core::slice::from_raw_parts((s + layout.ascii_data) as *const u8, len)
        }));
    }
    // PyCompactUnicodeObject: utf8_length, utf8, (3.10 and 3.11: wstr_length), then the data.
    // SAFETY: a compact str's header holds these fields after PyASCIIObject's.
    let (utf8_len, utf8) = unsafe {
        (
            read(s + layout.ascii_data) as isize,
            read(s + layout.ascii_data + 8),
        )
    };
    if utf8 != 0 && utf8_len >= 0 {
        // SAFETY: the UTF-8 form, once made, stays with the str until it dies.
        return Some(Cow::Borrowed(unsafe {
            core::slice::from_raw_parts(utf8 as *const u8, utf8_len as usize)
        }));
    }
    let data = s + layout.ascii_data + if layout.ascii_data == 48 { 24 } else { 16 };
    let width = match (state >> 2) & 7 {
        kind @ (1 | 2 | 4) => kind as usize,
        _ => return None,
    };
    let mut out = Vec::with_capacity(len * 2);
    for i in 0..len.min(MAX_CHARACTERS) {
        // SAFETY: `len` code points of `width` bytes follow the compact header.
        let point = unsafe {
            match width {
                1 => u32::from(*((data + i) as *const u8)),
                2 => u32::from(((data + 2 * i) as *const u16).read_unaligned()),
                _ => ((data + 4 * i) as *const u32).read_unaligned(),
            }
        };
        push_utf8(&mut out, point);
    }
    Some(Cow::Owned(out))
}

/// Names are cut in the capture (record::thread MAX_STRING); a longer str is not read whole.
const MAX_CHARACTERS: usize = 4096;

/// Appends code point `point` as UTF-8; a surrogate escape as the byte it stands for, another
/// surrogate (or a value past Unicode) as U+FFFD.
fn push_utf8(out: &mut Vec<u8>, point: u32) {
    if (0xDC80..=0xDCFF).contains(&point) {
        out.push((point - 0xDC00) as u8);
        return;
    }
    let c = char::from_u32(point).unwrap_or(char::REPLACEMENT_CHARACTER);
    let mut buf = [0u8; 4];
    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
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
    fn code_points_are_written_as_utf8_and_escapes_as_their_bytes() {
        let mut out = Vec::new();
        for c in "fünf Größe €𝄞".chars() {
            super::push_utf8(&mut out, c as u32);
        }
        assert_eq!(out, "fünf Größe €𝄞".as_bytes());
        let mut out = Vec::new();
        for point in [u32::from(b'a'), 0xDCFF, 0xDC80, 0xD800] {
            super::push_utf8(&mut out, point);
        }
        assert_eq!(out, b"a\xff\x80\xef\xbf\xbd");
    }

    #[test]
    fn only_the_start_up_hook_is_hidden() {
        assert!(is_bootstrap(b"/tmp/memtrace-py-1234/sitecustomize.py"));
        assert!(!is_bootstrap(b"/usr/lib/python3/sitecustomize.py"));
        assert!(!is_bootstrap(b"/tmp/memtrace-py-/sitecustomize.py"));
        assert!(!is_bootstrap(b"/tmp/memtrace-py-12/other.py"));
    }
}
