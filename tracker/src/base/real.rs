//! The real allocation functions (the definitions the process uses besides the tracker's: see
//! `sym`). While dlsym itself runs it may allocate: those requests are served from a
//! small static arena whose blocks are never handed to the real allocator.

use crate::definition::{self, start_of};
use libc::{c_int, c_void, off_t, size_t};
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicPtr, AtomicU8, AtomicUsize, Ordering};

type MallocFn = unsafe extern "C" fn(size_t) -> *mut c_void;
type FreeFn = unsafe extern "C" fn(*mut c_void);
type CallocFn = unsafe extern "C" fn(size_t, size_t) -> *mut c_void;
type ReallocFn = unsafe extern "C" fn(*mut c_void, size_t) -> *mut c_void;
type PosixMemalignFn = unsafe extern "C" fn(*mut *mut c_void, size_t, size_t) -> c_int;
type AlignFn = unsafe extern "C" fn(size_t, size_t) -> *mut c_void;
type MmapFn = unsafe extern "C" fn(*mut c_void, size_t, c_int, c_int, c_int, off_t) -> *mut c_void;
type MunmapFn = unsafe extern "C" fn(*mut c_void, size_t) -> c_int;
type MremapFn =
    unsafe extern "C" fn(*mut c_void, size_t, size_t, c_int, *mut c_void) -> *mut c_void;
pub type ExitFn = unsafe extern "C" fn(c_int) -> !;
pub type KillFn = unsafe extern "C" fn(libc::pid_t, c_int) -> c_int;
pub type RaiseFn = unsafe extern "C" fn(c_int) -> c_int;
pub type PthreadKillFn = unsafe extern "C" fn(libc::pthread_t, c_int) -> c_int;
pub type SigqueueFn = unsafe extern "C" fn(libc::pid_t, c_int, libc::sigval) -> c_int;
pub type DaemonFn = unsafe extern "C" fn(c_int, c_int) -> c_int;
pub type AbortFn = unsafe extern "C" fn() -> !;
pub type AssertFailFn = unsafe extern "C" fn(
    *const libc::c_char,
    *const libc::c_char,
    libc::c_uint,
    *const libc::c_char,
) -> !;
pub type CloseFn = unsafe extern "C" fn(c_int) -> c_int;
pub type Dup2Fn = unsafe extern "C" fn(c_int, c_int) -> c_int;
pub type Dup3Fn = unsafe extern "C" fn(c_int, c_int, c_int) -> c_int;
pub type FcntlFn = unsafe extern "C" fn(c_int, c_int, ...) -> c_int;
pub type MainFn = unsafe extern "C" fn(c_int, *mut *mut i8, *mut *mut i8) -> c_int;
pub type StartMainFn = unsafe extern "C" fn(
    MainFn,
    c_int,
    *mut *mut i8,
    Option<unsafe extern "C" fn()>,
    Option<unsafe extern "C" fn()>,
    Option<unsafe extern "C" fn()>,
    *mut c_void,
) -> c_int;

pub struct Real {
    pub malloc: MallocFn,
    pub free: FreeFn,
    pub calloc: CallocFn,
    pub realloc: ReallocFn,
    pub posix_memalign: PosixMemalignFn,
    pub aligned_alloc: Option<AlignFn>,
    pub memalign: Option<AlignFn>,
    pub valloc: Option<MallocFn>,
    pub pvalloc: Option<MallocFn>,
    pub mmap: MmapFn,
    pub munmap: MunmapFn,
    pub mremap: Option<MremapFn>,
    pub exit: Option<ExitFn>,
    pub underscore_exit: Option<ExitFn>,
    pub kill: Option<KillFn>,
    pub raise: Option<RaiseFn>,
    pub pthread_kill: Option<PthreadKillFn>,
    pub sigqueue: Option<SigqueueFn>,
    pub abort: Option<AbortFn>,
    pub assert_fail: Option<AssertFailFn>,
    pub quick_exit: Option<ExitFn>,
    pub daemon: Option<DaemonFn>,
    pub libc_start_main: Option<StartMainFn>,
    pub close: Option<CloseFn>,
    pub dup: Option<CloseFn>,
    pub dup2: Option<Dup2Fn>,
    pub dup3: Option<Dup3Fn>,
    pub fcntl: Option<FcntlFn>,
    pub fcntl64: Option<FcntlFn>,
    /// The allocator of the tracker's own memory (base/alloc.rs).
    pub heap: Heap,
}

/// The allocator of the tracker's own memory: the C library's when the process uses it, else
/// the tracker's own (base/own_heap.rs), never an allocator the program brings. That one may
/// call a hooked function (its `mmap`) under its lock, where a hook taking memory from it
/// would wait for that lock forever (an attach hung such a program 6 times in 6; jemalloc
/// preloaded or linked hung C++ programs); and with an allocator of its own the program may
/// manage the program break itself, which the C library's heap, grown with `sbrk`, cannot
/// share.
pub struct Heap {
    pub malloc: MallocFn,
    pub free: FreeFn,
    pub realloc: ReallocFn,
    pub posix_memalign: PosixMemalignFn,
}

impl Heap {
    /// For a process whose malloc is `malloc` (the definition its code calls).
    fn for_process(
        malloc: MallocFn,
        free: FreeFn,
        realloc: ReallocFn,
        posix_memalign: PosixMemalignFn,
    ) -> Heap {
        let c_library = definition::c_library_definition(b"malloc");
        // Compared as addresses: the C library's definition or another one.
        if c_library != 0 && c_library == malloc as usize {
            return Heap {
                malloc,
                free,
                realloc,
                posix_memalign,
            };
        }
        use crate::own_heap;
        Heap {
            malloc: own_heap::malloc,
            free: own_heap::free,
            realloc: own_heap::realloc,
            posix_memalign: own_heap::posix_memalign,
        }
    }
}

const UNRESOLVED: u8 = 0;
const RESOLVING: u8 = 1;
const RESOLVED: u8 = 2;

static STATE: AtomicU8 = AtomicU8::new(UNRESOLVED);

struct RealCell(UnsafeCell<Option<Real>>);
// SAFETY: written once by the thread that wins the UNRESOLVED→RESOLVING race, read only after
// STATE is RESOLVED (release/acquire).
unsafe impl Sync for RealCell {}
static REAL: RealCell = RealCell(UnsafeCell::new(None));

/// The definition of `name` the process's code calls: the global one (RTLD_DEFAULT), unless
/// that is this library's own (preloaded, it interposes the function), then the next one. So a
/// tracker loaded into a running process (in-process tracking) forwards to what the process
/// used before, whatever comes after the tracker in the search order. A non-PIE executable's
/// PLT stub is never taken for the function (see `definition`): it would lead back to the hook.
///
/// A preloaded tracker can itself be interposed: an executable that wraps `free` and passes
/// the call on with `dlsym(RTLD_NEXT, "free")` reaches the tracker's `free` that way, and
/// forwarding to the global definition (the wrapper) would loop. When the global definition
/// comes before the tracker in load order and the next one after it, the next one is taken.
fn sym(name: &core::ffi::CStr) -> *mut c_void {
    // This library's base, looked up once (resolving runs once, on one thread).
    static OWN: AtomicUsize = AtomicUsize::new(0);
    let mut own = OWN.load(Ordering::Relaxed);
    if own == 0 {
        own = start_of(sym as *const () as usize);
        OWN.store(own, Ordering::Relaxed);
    }
    let (global, base) = definition::global_located(name);
    let global_usable = global.definition != 0 && base != own;
    // Only a definition ahead of the tracker can interpose it (the usual global one is the
    // tracker's own, or comes after it in a process it was loaded into).
    if global_usable && definition::loaded_before(base, own) != Some(true) {
        return global.definition as *mut c_void;
    }
    // SAFETY: dlsym with a NUL-terminated name and a pseudo-handle.
    let next = unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr()) };
    let place = definition::locate(next as usize, name.to_bytes());
    let next_usable = !next.is_null() && place.object != own && !place.stub;
    if global_usable && !(next_usable && definition::loaded_before(own, place.object) == Some(true))
    {
        return global.definition as *mut c_void;
    }
    if !next_usable {
        return core::ptr::null_mut();
    }
    next
}

macro_rules! required {
    ($name:literal, $ty:ty) => {{
        let p = sym($name);
        if p.is_null() {
            // Without the real allocator nothing can run: say so and stop.
            let msg = b"memtrace: cannot find the real allocation functions\n";
            // SAFETY: writing a static message to stderr.
            unsafe { libc::write(2, msg.as_ptr() as *const c_void, msg.len()) };
            // SAFETY: terminating the process.
            unsafe { libc::abort() };
        }
        // SAFETY: the symbol has the C signature of the libc function of that name.
        unsafe { core::mem::transmute::<*mut c_void, $ty>(p) }
    }};
}

macro_rules! optional {
    ($name:literal, $ty:ty) => {{
        let p = sym($name);
        if p.is_null() {
            None
        } else {
            // SAFETY: the symbol has the C signature of the libc function of that name.
            Some(unsafe { core::mem::transmute::<*mut c_void, $ty>(p) })
        }
    }};
}

/// The real functions; None while they are being looked up (use the arena then).
#[inline(always)]
pub fn get() -> Option<&'static Real> {
    if STATE.load(Ordering::Acquire) == RESOLVED {
        // SAFETY: RESOLVED is stored after REAL was written.
        unsafe { (*REAL.0.get()).as_ref() }
    } else {
        resolve()
    }
}

#[cold]
fn resolve() -> Option<&'static Real> {
    if STATE
        .compare_exchange(UNRESOLVED, RESOLVING, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        // Another thread (or dlsym on this one) is resolving: serve from the arena meanwhile.
        if STATE.load(Ordering::Acquire) == RESOLVED {
            // SAFETY: as in get().
            return unsafe { (*REAL.0.get()).as_ref() };
        }
        return None;
    }
    let (malloc, free, realloc, posix_memalign) = (
        required!(c"malloc", MallocFn),
        required!(c"free", FreeFn),
        required!(c"realloc", ReallocFn),
        required!(c"posix_memalign", PosixMemalignFn),
    );
    let real = Real {
        malloc,
        free,
        calloc: required!(c"calloc", CallocFn),
        realloc,
        posix_memalign,
        aligned_alloc: optional!(c"aligned_alloc", AlignFn),
        memalign: optional!(c"memalign", AlignFn),
        valloc: optional!(c"valloc", MallocFn),
        pvalloc: optional!(c"pvalloc", MallocFn),
        mmap: required!(c"mmap", MmapFn),
        munmap: required!(c"munmap", MunmapFn),
        mremap: optional!(c"mremap", MremapFn),
        exit: optional!(c"exit", ExitFn),
        underscore_exit: optional!(c"_exit", ExitFn),
        kill: optional!(c"kill", KillFn),
        raise: optional!(c"raise", RaiseFn),
        pthread_kill: optional!(c"pthread_kill", PthreadKillFn),
        sigqueue: optional!(c"sigqueue", SigqueueFn),
        abort: optional!(c"abort", AbortFn),
        assert_fail: optional!(c"__assert_fail", AssertFailFn),
        quick_exit: optional!(c"quick_exit", ExitFn),
        daemon: optional!(c"daemon", DaemonFn),
        libc_start_main: optional!(c"__libc_start_main", StartMainFn),
        close: optional!(c"close", CloseFn),
        dup: optional!(c"dup", CloseFn),
        dup2: optional!(c"dup2", Dup2Fn),
        dup3: optional!(c"dup3", Dup3Fn),
        fcntl: optional!(c"fcntl", FcntlFn),
        fcntl64: optional!(c"fcntl64", FcntlFn),
        heap: Heap::for_process(malloc, free, realloc, posix_memalign),
    };
    // SAFETY: only the thread that won the race writes, before publishing RESOLVED.
    unsafe { *REAL.0.get() = Some(real) };
    STATE.store(RESOLVED, Ordering::Release);
    // SAFETY: just written.
    unsafe { (*REAL.0.get()).as_ref() }
}

/// The bootstrap arena: bump allocation, never freed.
const ARENA_SIZE: usize = 256 * 1024;
#[repr(C, align(64))]
struct Arena(UnsafeCell<[u8; ARENA_SIZE]>);
// SAFETY: blocks are handed out by an atomic bump pointer, each to one caller.
unsafe impl Sync for Arena {}
static ARENA: Arena = Arena(UnsafeCell::new([0; ARENA_SIZE]));
static ARENA_USED: AtomicUsize = AtomicUsize::new(0);
static ARENA_LAST: AtomicPtr<u8> = AtomicPtr::new(core::ptr::null_mut());

/// A zeroed block of the arena (each block is preceded by its size), or null when exhausted.
pub fn arena_alloc(size: usize, align: usize) -> *mut c_void {
    let align = align.max(16);
    let need = size.div_ceil(16) * 16 + align;
    let start = ARENA_USED.fetch_add(need, Ordering::Relaxed);
    if start + need > ARENA_SIZE {
        return core::ptr::null_mut();
    }
    let base = ARENA.0.get() as *mut u8 as usize;
    let user = (base + start + 16).div_ceil(align) * align;
    // SAFETY: [user - 8, user + size) lies inside this caller's reserved range.
    unsafe { *((user - 8) as *mut usize) = size };
    ARENA_LAST.store(user as *mut u8, Ordering::Relaxed);
    user as *mut c_void
}

pub fn in_arena(p: *mut c_void) -> bool {
    let base = ARENA.0.get() as *mut u8 as usize;
    let p = p as usize;
    p >= base && p < base + ARENA_SIZE
}

/// Size of an arena block.
pub fn arena_size(p: *mut c_void) -> usize {
    // SAFETY: p came from arena_alloc, which stored the size just before it.
    unsafe { *((p as usize - 8) as *const usize) }
}

/// Passes a request on: calls `$f`, the function a hook stands in for (the real C library
/// function or Python's original allocator), with the caller's own arguments, unchanged. The
/// one place that says why that is sound, instead of a copy of the reason at every hook.
macro_rules! forward {
    ($f:expr; $($arg:expr),* $(,)?) => {{
        let f = $f;
        // SAFETY: the program called the hook with these arguments, under the C contract of
        // the function it meant; `f` is that function (same signature, same contract), so
        // passing the request on is exactly as safe as the program's own call was.
        unsafe { f($($arg),*) }
    }};
}
pub(crate) use forward;
