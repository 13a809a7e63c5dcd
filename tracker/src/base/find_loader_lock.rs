//! Finds the loader's list lock inside `_rtld_global` (loader_lock.rs says why and how): the
//! one recursive mutex there that this thread owns inside a `dl_iterate_phdr` callback and
//! nobody owns outside it.

use super::loader_lock::{Mutex, PTHREAD_MUTEX_RECURSIVE_NP};

struct Search {
    start: usize,
    len: usize,
    tid: i32,
    found: usize,
    candidates: u32,
}

/// Finds the lock (once; at start-up or the first in-process start, one thread).
pub fn learn() {
    if super::loader_lock::known() {
        return;
    }
    // SAFETY: dlsym with a NUL-terminated name.
    let start = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"_rtld_global".as_ptr()) } as usize;
    let Some(sym) = (start != 0)
        .then(|| super::definition::symbol_entry(start))
        .flatten()
    else {
        return;
    };
    let len = sym.st_size as usize;
    let mut s = Search {
        start,
        len,
        tid: super::sys::gettid() as i32,
        found: 0,
        candidates: 0,
    };
    // SAFETY: `scan` only reads `_rtld_global` (of `len` bytes) and writes `s`.
    unsafe { libc::dl_iterate_phdr(Some(scan), &mut s as *mut Search as *mut libc::c_void) };
    if s.candidates == 1 {
        // SAFETY: the address lies inside `_rtld_global`, found aligned for a mutex.
        unsafe { super::loader_lock::keep_if_free(s.found) };
    }
}

unsafe extern "C" fn scan(
    _info: *mut libc::dl_phdr_info,
    _size: usize,
    data: *mut libc::c_void,
) -> libc::c_int {
    // SAFETY: `data` is the Search given by `learn`.
    let s = unsafe { &mut *(data as *mut Search) };
    let size = core::mem::size_of::<Mutex>();
    let mut at = s.start.next_multiple_of(8);
    while at + size <= s.start + s.len {
        // SAFETY: inside `_rtld_global`, aligned: plain reads of its words.
        let m = unsafe { &*(at as *const Mutex) };
        if m.owner == s.tid
            && m.count >= 1
            && m.lock != 0
            && m.kind & 0x7f == PTHREAD_MUTEX_RECURSIVE_NP
        {
            s.found = at;
            s.candidates += 1;
        }
        at += 8;
    }
    // One callback is enough: the lock is held for the whole iteration.
    1
}
