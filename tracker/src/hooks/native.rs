//! The interposed allocation functions. Each exported symbol (session::exports) is a naked
//! trampoline that pushes its caller's frame pointer, so that the caller's frame pointer and
//! return address (the call site) lie side by side, and passes their address ([`CallSite`]) as
//! one more argument to the hook here.
//!
//! A hook calls the real function and records the event, unless the re-entrancy flag says the
//! tracker itself is running on this thread or recording is off. A free's time is read before
//! the real call and an allocation's after it, so that a block reused by another thread is always
//! seen freed before it is allocated again.

use crate::capture::CAPTURE;
use crate::real::{self, forward, Real};
use crate::{clock, thread, tls, ACTIVE};
use libc::{c_int, c_void, off_t, size_t};
use memtrace_format::{trailer_flags, Allocator};
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{compiler_fence, Ordering};

/// Whether to record on this thread now: Some sets the re-entrancy flag, and the guard it holds
/// clears it again when it goes out of scope (so no return path can leave it set).
#[inline(always)]
pub(crate) fn enter() -> Option<Entered> {
    enter_from(0, 0)
}

/// [`enter`] from an allocation function called at `site`: a native walk (--native) of what
/// the hook records starts there, not in the tracker's own frames.
#[inline(always)]
pub(crate) fn enter_at(site: &CallSite) -> Option<Entered> {
    enter_from(site as *const CallSite as u64, site.ret)
}

#[inline(always)]
fn enter_from(site: u64, ret: u64) -> Option<Entered> {
    if !ACTIVE.load(Ordering::Relaxed) {
        return None;
    }
    let t = tls::get();
    if t.in_tracker != 0 {
        if t.call_site != 0 {
            left_by_a_jump(t, site);
        }
        return None;
    }
    // The call site and its return address are in place before the flag says a hook runs: a
    // signal handler's hook that finds the flag set compares with them (see left_by_a_jump),
    // and compared with the last call's return address it called a hook left by a jump that
    // was not. Stored again after the flag: a handler's hook that ran just before it (the
    // flag still clear) left its own there. The return address goes first each time: a
    // handler that comes between the two stores finds no call site (0, as a finished hook
    // leaves it), never this one beside another call's return address (a handler's exec,
    // which sets the flag itself, took that for a hook left by a jump, and said so).
    t.entry_ret = ret;
    compiler_fence(Ordering::SeqCst);
    t.call_site = site;
    compiler_fence(Ordering::SeqCst);
    t.in_tracker = 1;
    compiler_fence(Ordering::SeqCst);
    t.entry_ret = ret;
    compiler_fence(Ordering::SeqCst);
    t.call_site = site;
    Some(Entered(t))
}

/// `entry_ret` of a thread whose hook was left by a jump (see [`left_by_a_jump`]): no return
/// address is all ones.
const LEFT: u64 = u64::MAX;

/// Another hook came while one set the re-entrancy flag: from inside it (a signal handler's
/// call, the real allocator's own), on the same stack further down or on the alternate signal
/// stack, while the words its trampoline pushed are still there; or from the program after a
/// signal handler that interrupted the hook jumped out of it (`siglongjmp`): at or above the
/// hook's call site, or below it where later calls wrote over those words. Then the flag stays
/// set and the thread records nothing more: the tracker's state may be half changed (a lock
/// held, a record half written), so it stays so, but each event it misses is counted, and the
/// trailer says why (it went unsaid: 40 of 200,000 mmaps and none of 1,000 mallocs, in a
/// capture called complete).
#[cold]
fn left_by_a_jump(t: &mut tls::Tls, site: u64) {
    let gone = || {
        if site >= t.call_site {
            return !crate::sys::on_signal_stack();
        }
        // SAFETY: the hook's call site lies above the calling frame on this thread's stack
        // (this call comes from further down): live stack memory, readable.
        let ret = unsafe { core::ptr::read_volatile((t.call_site + 8) as *const u64) };
        ret != t.entry_ret
    };
    let left = t.entry_ret == LEFT
        || (site != 0 && gone() && {
            t.entry_ret = LEFT;
            crate::capture::CAPTURE.note(trailer_flags::HOOK_LEFT_BY_A_JUMP);
            true
        });
    if left {
        crate::capture::CAPTURE
            .records_dropped
            .fetch_add(1, Ordering::Relaxed);
    }
}

/// The calling thread's state while a hook records: anything the tracker calls that comes
/// back into a hook passes straight through until this is dropped. A plain store on drop, no
/// call.
pub(crate) struct Entered(&'static mut tls::Tls);

impl Deref for Entered {
    type Target = tls::Tls;
    #[inline(always)]
    fn deref(&self) -> &tls::Tls {
        self.0
    }
}

impl DerefMut for Entered {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut tls::Tls {
        self.0
    }
}

impl Drop for Entered {
    #[inline(always)]
    fn drop(&mut self) {
        self.0.call_site = 0;
        self.0.in_tracker = 0;
    }
}

/// The two words a trampoline pushes before it calls its hook: the caller's frame pointer, then
/// the caller's return address (the call site); the caller's stack pointer is just above them.
/// On the stack for the whole call of the hook.
#[repr(C)]
pub struct CallSite {
    pub frame_pointer: u64,
    pub ret: u64,
}

#[inline(always)]
fn real() -> Option<&'static Real> {
    real::get()
}

pub(crate) unsafe extern "C" fn hook_malloc(size: size_t, site: &CallSite) -> *mut c_void {
    let Some(r) = real() else {
        return real::arena_alloc(size, 16);
    };
    let Some(mut t) = enter_at(site) else {
        let p = forward!(r.malloc; size);
        crate::early::alloc(Allocator::Malloc, p as u64, size as u64, site.ret);
        return p;
    };
    let p = forward!(r.malloc; size);
    if !p.is_null() {
        thread::record_alloc(&mut t, Allocator::Malloc, p as u64, size as u64, site.ret);
        return p;
    }
    refused(
        &mut t,
        Allocator::Malloc,
        size as u64,
        site.ret,
        || forward!(r.malloc; size),
    )
}

/// An allocation the allocator refused: made again (`again`) once the capture gave back room
/// it held (an address-space limit lowered from outside), else recorded as refused. Out of
/// the hot path; `ret` is the call site (0 for PyMem's).
#[cold]
#[inline(never)]
pub(crate) fn refused(
    t: &mut tls::Tls,
    allocator: Allocator,
    size: u64,
    ret: u64,
    again: impl FnOnce() -> *mut c_void,
) -> *mut c_void {
    let mut p = core::ptr::null_mut();
    if size > 0 && CAPTURE.give_back_room() {
        p = again();
    }
    if !p.is_null() {
        thread::record_alloc(t, allocator, p as u64, size, ret);
    } else if size > 0 {
        thread::record_failed(t, allocator, size, ret);
    }
    p
}

pub(crate) unsafe extern "C" fn hook_free(p: *mut c_void, site: &CallSite) {
    if p.is_null() || real::in_arena(p) {
        return;
    }
    let Some(r) = real() else { return };
    // A free sampling surely leaves out is passed on before the thread's state is touched
    // (only a running capture samples: no block from before its start is looked for). Sampling
    // is asked first: a full capture's free then reads one flag, not two.
    if thread::surely_unrecorded_free(p as u64) && ACTIVE.load(Ordering::Relaxed) {
        return forward!(r.free; p);
    }
    let Some(mut t) = enter_at(site) else {
        crate::early::free(p as u64);
        return forward!(r.free; p);
    };
    // Asked before the real free: a block another thread gets next is not ours to judge.
    if !thread::take_free(p as u64) {
        return forward!(r.free; p);
    }
    // Timed before the real free (ordered before any reuse of the block), written after it
    // (the real free hides the recorder's cache miss).
    let tick = thread::free_tick(&mut t);
    thread::prefetch_free(&t, p as u64);
    forward!(r.free; p);
    thread::record_free_taken(&mut t, false, p as u64, Some(tick));
}

pub(crate) unsafe extern "C" fn hook_calloc(
    n: size_t,
    size: size_t,
    site: &CallSite,
) -> *mut c_void {
    let Some(r) = real() else {
        return match n.checked_mul(size) {
            Some(total) => real::arena_alloc(total, 16),
            None => core::ptr::null_mut(),
        };
    };
    let Some(mut t) = enter_at(site) else {
        let p = forward!(r.calloc; n, size);
        let total = (n as u64).saturating_mul(size as u64);
        crate::early::alloc(Allocator::Calloc, p as u64, total, site.ret);
        return p;
    };
    let mut p = forward!(r.calloc; n, size);
    let total = (n as u64).saturating_mul(size as u64);
    if p.is_null() && total > 0 && CAPTURE.give_back_room() {
        p = forward!(r.calloc; n, size);
    }
    if !p.is_null() {
        thread::record_alloc(&mut t, Allocator::Calloc, p as u64, total, site.ret);
    } else if total > 0 {
        thread::record_failed(&mut t, Allocator::Calloc, total, site.ret);
    }
    p
}

/// realloc of a block from the bootstrap arena: a new real block with a copy of the old one.
fn realloc_from_arena(r: Option<&Real>, p: *mut c_void, size: size_t) -> *mut c_void {
    let new = match r {
        // SAFETY: a fresh allocation from the real allocator.
        Some(r) => unsafe { (r.malloc)(size) },
        None => real::arena_alloc(size, 16),
    };
    if !new.is_null() {
        let n = real::arena_size(p).min(size);
        // SAFETY: both blocks hold at least n bytes and do not overlap.
        unsafe { core::ptr::copy_nonoverlapping(p as *const u8, new as *mut u8, n) };
    }
    new
}

/// Records a realloc that returned `new` for `old` (either may be null), with the tick taken
/// before the call for the free half.
fn record_realloc(
    t: &mut tls::Tls,
    old: *mut c_void,
    new: *mut c_void,
    size: u64,
    before: u64,
    site: &CallSite,
) {
    if new.is_null() {
        if size == 0 && !old.is_null() {
            // realloc(p, 0) freed p.
            thread::record_free(t, false, old as u64, Some(before));
        } else if size > 0 {
            thread::record_failed(t, Allocator::Realloc, size, site.ret);
        }
        return;
    }
    if !old.is_null() {
        thread::record_free(t, false, old as u64, Some(before));
    }
    thread::record_alloc(t, Allocator::Realloc, new as u64, size, site.ret);
}

pub(crate) unsafe extern "C" fn hook_realloc(
    p: *mut c_void,
    size: size_t,
    site: &CallSite,
) -> *mut c_void {
    if real::in_arena(p) {
        return realloc_from_arena(real(), p, size);
    }
    let Some(r) = real() else {
        return real::arena_alloc(size, 16);
    };
    let Some(mut t) = enter_at(site) else {
        let new = forward!(r.realloc; p, size);
        if !new.is_null() || size == 0 {
            crate::early::free(p as u64);
        }
        crate::early::alloc(Allocator::Realloc, new as u64, size as u64, site.ret);
        return new;
    };
    // The free's time (none in an aggregated capture, which orders nothing by it).
    let before = thread::free_tick(&mut t);
    let mut new = forward!(r.realloc; p, size);
    if new.is_null() && size > 0 && CAPTURE.give_back_room() {
        new = forward!(r.realloc; p, size);
    }
    record_realloc(&mut t, p, new, size as u64, before, site);
    new
}

pub(crate) unsafe extern "C" fn hook_reallocarray(
    p: *mut c_void,
    n: size_t,
    size: size_t,
    site: &CallSite,
) -> *mut c_void {
    let Some(total) = n.checked_mul(size) else {
        // A request past the address space, failed as glibc fails it: still a failed request.
        if let Some(mut t) = enter_at(site) {
            let asked = (n as u64).saturating_mul(size as u64);
            thread::record_failed(&mut t, Allocator::Realloc, asked, site.ret);
        }
        // SAFETY: errno slot of this thread.
        unsafe { *libc::__errno_location() = libc::ENOMEM };
        return core::ptr::null_mut();
    };
    // SAFETY: same contract as realloc with the checked product.
    unsafe { hook_realloc(p, total, site) }
}

pub(crate) unsafe extern "C" fn hook_posix_memalign(
    out: *mut *mut c_void,
    align: size_t,
    size: size_t,
    site: &CallSite,
) -> c_int {
    let Some(r) = real() else {
        let p = real::arena_alloc(size, align);
        // SAFETY: out is the caller's result pointer.
        unsafe { *out = p };
        return if p.is_null() { libc::ENOMEM } else { 0 };
    };
    let Some(mut t) = enter_at(site) else {
        let rc = forward!(r.posix_memalign; out, align, size);
        if rc == 0 {
            // SAFETY: on success the real function stored the block in *out.
            let p = unsafe { *out };
            crate::early::alloc(Allocator::PosixMemalign, p as u64, size as u64, site.ret);
        }
        return rc;
    };
    let rc = forward!(r.posix_memalign; out, align, size);
    if rc == libc::ENOMEM && size > 0 {
        thread::record_failed(&mut t, Allocator::PosixMemalign, size as u64, site.ret);
    } else if rc == 0 {
        // SAFETY: on success the real function stored the block in *out.
        let p = unsafe { *out };
        thread::record_alloc(
            &mut t,
            Allocator::PosixMemalign,
            p as u64,
            size as u64,
            site.ret,
        );
    }
    rc
}

/// The memalign-like functions: (align, size) → block, recorded under `allocator`.
fn aligned(
    allocator: Allocator,
    f: Option<unsafe extern "C" fn(size_t, size_t) -> *mut c_void>,
    align: size_t,
    size: size_t,
    site: &CallSite,
) -> *mut c_void {
    let (Some(_), Some(f)) = (real(), f) else {
        return real::arena_alloc(size, align.min(4096));
    };
    let Some(mut t) = enter_at(site) else {
        let p = forward!(f; align, size);
        crate::early::alloc(allocator, p as u64, size as u64, site.ret);
        return p;
    };
    let mut p = forward!(f; align, size);
    if p.is_null() && size > 0 && out_of_memory() && CAPTURE.give_back_room() {
        p = forward!(f; align, size);
    }
    if !p.is_null() {
        thread::record_alloc(&mut t, allocator, p as u64, size as u64, site.ret);
    } else if size > 0 && out_of_memory() {
        thread::record_failed(&mut t, allocator, size as u64, site.ret);
    }
    p
}

/// A null block for lack of memory (ENOMEM), not for a bad argument (EINVAL).
fn out_of_memory() -> bool {
    // SAFETY: errno slot of this thread.
    unsafe { *libc::__errno_location() == libc::ENOMEM }
}

pub(crate) unsafe extern "C" fn hook_aligned_alloc(
    align: size_t,
    size: size_t,
    site: &CallSite,
) -> *mut c_void {
    aligned(
        Allocator::AlignedAlloc,
        real().and_then(|r| r.aligned_alloc),
        align,
        size,
        site,
    )
}

pub(crate) unsafe extern "C" fn hook_memalign(
    align: size_t,
    size: size_t,
    site: &CallSite,
) -> *mut c_void {
    aligned(
        Allocator::Memalign,
        real().and_then(|r| r.memalign),
        align,
        size,
        site,
    )
}

/// valloc and pvalloc: (size) → page-aligned block.
fn page_aligned(
    allocator: Allocator,
    f: Option<unsafe extern "C" fn(size_t) -> *mut c_void>,
    size: size_t,
    site: &CallSite,
) -> *mut c_void {
    let (Some(_), Some(f)) = (real(), f) else {
        return real::arena_alloc(size, 4096);
    };
    let Some(mut t) = enter_at(site) else {
        let p = forward!(f; size);
        crate::early::alloc(allocator, p as u64, size as u64, site.ret);
        return p;
    };
    let mut p = forward!(f; size);
    if p.is_null() && size > 0 && out_of_memory() && CAPTURE.give_back_room() {
        p = forward!(f; size);
    }
    if !p.is_null() {
        thread::record_alloc(&mut t, allocator, p as u64, size as u64, site.ret);
    } else if size > 0 && out_of_memory() {
        thread::record_failed(&mut t, allocator, size as u64, site.ret);
    }
    p
}

pub(crate) unsafe extern "C" fn hook_valloc(size: size_t, site: &CallSite) -> *mut c_void {
    page_aligned(Allocator::Valloc, real().and_then(|r| r.valloc), size, site)
}

pub(crate) unsafe extern "C" fn hook_pvalloc(size: size_t, site: &CallSite) -> *mut c_void {
    page_aligned(
        Allocator::Pvalloc,
        real().and_then(|r| r.pvalloc),
        size,
        site,
    )
}

type MmapFn = unsafe extern "C" fn(*mut c_void, size_t, c_int, c_int, c_int, off_t) -> *mut c_void;
type MunmapFn = unsafe extern "C" fn(*mut c_void, size_t) -> c_int;
type MremapFn =
    unsafe extern "C" fn(*mut c_void, size_t, size_t, c_int, *mut c_void) -> *mut c_void;

/// The system calls themselves, with the library functions' contract (-1 and errno): what
/// `syscall(SYS_mmap, ...)` and its kin forward to. An allocator may define `mmap` itself and
/// make the system call through `syscall()` (gperftools' tcmalloc): forwarding those to "the
/// real mmap", its own, came back here for ever.
unsafe extern "C" fn raw_mmap(
    addr: *mut c_void,
    len: size_t,
    prot: c_int,
    flags: c_int,
    fd: c_int,
    off: off_t,
) -> *mut c_void {
    let a = [
        addr as usize,
        len,
        prot as usize,
        flags as usize,
        fd as usize,
        off as usize,
    ];
    // SAFETY: the system call with the caller's arguments (not through the `syscall` symbol:
    // the tracker's own, which routes this call here).
    unsafe { crate::sys::raw_syscall(libc::SYS_mmap, a) as *mut c_void }
}

unsafe extern "C" fn raw_munmap(addr: *mut c_void, len: size_t) -> c_int {
    // SAFETY: as raw_mmap.
    unsafe { crate::sys::raw_syscall(libc::SYS_munmap, [addr as usize, len, 0, 0, 0, 0]) as c_int }
}

unsafe extern "C" fn raw_mremap(
    old: *mut c_void,
    old_len: size_t,
    new_len: size_t,
    flags: c_int,
    new_addr: *mut c_void,
) -> *mut c_void {
    let a = [
        old as usize,
        old_len,
        new_len,
        flags as usize,
        new_addr as usize,
        0,
    ];
    // SAFETY: as raw_mmap.
    unsafe { crate::sys::raw_syscall(libc::SYS_mremap, a) as *mut c_void }
}

pub(crate) unsafe extern "C" fn hook_mmap(
    addr: *mut c_void,
    len: size_t,
    prot: c_int,
    flags: c_int,
    fd: c_int,
    off: off_t,
    site: &CallSite,
) -> *mut c_void {
    let f = real().map_or(raw_mmap as MmapFn, |r| r.mmap);
    // SAFETY: the caller's request, passed on.
    unsafe { mmap_through(f, addr, len, prot, flags, fd, off, site) }
}

/// `syscall(SYS_mmap, ...)`, routed here by the exported syscall.
pub(crate) unsafe extern "C" fn hook_syscall_mmap(
    addr: *mut c_void,
    len: size_t,
    prot: c_int,
    flags: c_int,
    fd: c_int,
    off: off_t,
    site: &CallSite,
) -> *mut c_void {
    // SAFETY: the caller's request, passed on.
    unsafe { mmap_through(raw_mmap, addr, len, prot, flags, fd, off, site) }
}

/// An mmap made by `f` and recorded.
///
/// # Safety
/// Same contract as mmap; `f` has mmap's.
#[allow(clippy::too_many_arguments)]
unsafe fn mmap_through(
    f: MmapFn,
    addr: *mut c_void,
    len: size_t,
    prot: c_int,
    flags: c_int,
    fd: c_int,
    off: off_t,
    site: &CallSite,
) -> *mut c_void {
    if real().is_none() {
        // SAFETY: the caller's request, before anything can be recorded.
        return unsafe { f(addr, len, prot, flags, fd, off) };
    }
    let anonymous = flags & libc::MAP_ANONYMOUS != 0;
    // A fixed mapping replaces whatever was there, a file's too (MAP_FIXED_NOREPLACE fails
    // instead).
    let replaces = flags & libc::MAP_FIXED != 0;
    let t = if anonymous || replaces {
        enter_at(site)
    } else {
        None
    };
    let Some(mut t) = t else {
        let p = forward!(f; addr, len, prot, flags, fd, off);
        if p != libc::MAP_FAILED {
            if replaces {
                crate::early::unmap(p as u64, whole_pages(len));
            }
            if anonymous {
                crate::early::alloc(Allocator::Mmap, p as u64, len as u64, site.ret);
            }
        }
        return p;
    };
    let mut p = forward!(f; addr, len, prot, flags, fd, off);
    if p == libc::MAP_FAILED && out_of_memory() && CAPTURE.give_back_room() {
        p = forward!(f; addr, len, prot, flags, fd, off);
    }
    if p != libc::MAP_FAILED {
        if replaces {
            let tick = clock::event_tick(&mut t);
            thread::record_munmap(&mut t, p as u64, whole_pages(len), tick);
        }
        if anonymous {
            thread::record_alloc(&mut t, Allocator::Mmap, p as u64, len as u64, site.ret);
        }
    }
    p
}

/// The length the kernel maps or unmaps for `len`: whole pages (a mapping's recorded size is
/// the one asked for; what an unmap takes away is every page it touches).
#[inline]
fn whole_pages(len: size_t) -> u64 {
    let page = page_size();
    (len as u64).div_ceil(page) * page
}

/// The page size, read once.
fn page_size() -> u64 {
    static PAGE: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);
    let mut page = PAGE.load(Ordering::Relaxed);
    if page == 0 {
        page = crate::sys::page_size() as u64;
        PAGE.store(page, Ordering::Relaxed);
    }
    page
}

pub(crate) unsafe extern "C" fn hook_munmap(
    addr: *mut c_void,
    len: size_t,
    site: &CallSite,
) -> c_int {
    let f = real().map_or(raw_munmap as MunmapFn, |r| r.munmap);
    // SAFETY: the caller's request, passed on.
    unsafe { munmap_through(f, addr, len, site) }
}

/// `syscall(SYS_munmap, ...)`, routed here by the exported syscall.
pub(crate) unsafe extern "C" fn hook_syscall_munmap(
    addr: *mut c_void,
    len: size_t,
    site: &CallSite,
) -> c_int {
    // SAFETY: the caller's request, passed on.
    unsafe { munmap_through(raw_munmap, addr, len, site) }
}

/// An munmap made by `f` and recorded.
///
/// # Safety
/// Same contract as munmap; `f` has munmap's.
unsafe fn munmap_through(f: MunmapFn, addr: *mut c_void, len: size_t, site: &CallSite) -> c_int {
    if real().is_none() {
        // SAFETY: the caller's request, before anything can be recorded.
        return unsafe { f(addr, len) };
    }
    let Some(mut t) = enter_at(site) else {
        let rc = forward!(f; addr, len);
        if rc == 0 {
            crate::early::unmap(addr as u64, whole_pages(len));
        }
        return rc;
    };
    let before = clock::event_tick(&mut t);
    let rc = forward!(f; addr, len);
    if rc == 0 {
        thread::record_munmap(&mut t, addr as u64, whole_pages(len), before);
    }
    rc
}

pub(crate) unsafe extern "C" fn hook_mremap(
    old: *mut c_void,
    old_len: size_t,
    new_len: size_t,
    flags: c_int,
    new_addr: *mut c_void,
    site: &CallSite,
) -> *mut c_void {
    let f = real()
        .and_then(|r| r.mremap)
        .unwrap_or(raw_mremap as MremapFn);
    // SAFETY: the caller's request, passed on.
    unsafe { mremap_through(f, old, old_len, new_len, flags, new_addr, site) }
}

/// `syscall(SYS_mremap, ...)`, routed here by the exported syscall.
pub(crate) unsafe extern "C" fn hook_syscall_mremap(
    old: *mut c_void,
    old_len: size_t,
    new_len: size_t,
    flags: c_int,
    new_addr: *mut c_void,
    site: &CallSite,
) -> *mut c_void {
    // SAFETY: the caller's request, passed on.
    unsafe { mremap_through(raw_mremap, old, old_len, new_len, flags, new_addr, site) }
}

/// An mremap made by `f` and recorded.
///
/// # Safety
/// Same contract as mremap; `f` has mremap's.
unsafe fn mremap_through(
    f: MremapFn,
    old: *mut c_void,
    old_len: size_t,
    new_len: size_t,
    flags: c_int,
    new_addr: *mut c_void,
    site: &CallSite,
) -> *mut c_void {
    if real().is_none() {
        // SAFETY: the caller's request, before anything can be recorded.
        return unsafe { f(old, old_len, new_len, flags, new_addr) };
    }
    let Some(mut t) = enter_at(site) else {
        let p = forward!(f; old, old_len, new_len, flags, new_addr);
        // Before the start: a noted mapping moves or changes size.
        if p != libc::MAP_FAILED {
            let kept = flags & libc::MREMAP_DONTUNMAP != 0;
            if kept || crate::early::unmap(old as u64, whole_pages(old_len)) {
                crate::early::unmap(p as u64, whole_pages(new_len));
                crate::early::alloc(Allocator::Mmap, p as u64, new_len as u64, site.ret);
            }
        }
        return p;
    };
    let before = clock::event_tick(&mut t);
    let p = forward!(f; old, old_len, new_len, flags, new_addr);
    if p != libc::MAP_FAILED && flags & libc::MREMAP_DONTUNMAP != 0 {
        // The old range stays mapped (emptied): the new one is a mapping more, made here.
        thread::record_munmap(&mut t, p as u64, whole_pages(new_len), before);
        thread::record_alloc(&mut t, Allocator::Mmap, p as u64, new_len as u64, site.ret);
    } else if p != libc::MAP_FAILED {
        thread::record_mremap(
            &mut t,
            (old as u64, whole_pages(old_len)),
            (p as u64, new_len as u64),
            site.ret,
            before,
        );
    }
    p
}
