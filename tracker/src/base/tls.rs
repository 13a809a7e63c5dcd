//! Access to the per-thread block defined in tls.c (initial-exec TLS).

#[repr(C)]
pub struct Tls {
    pub in_tracker: u32,
    pub exited: u32,
    pub state: *mut core::ffi::c_void,
    pub serial: u32,
    pub next_seq: u32,
    pub epoch: u64,
    /// The thread's Python frame caches (python::frames), or null.
    pub py: *mut core::ffi::c_void,
    /// The thread's native unwinding state (unwind), or null.
    pub native: *mut core::ffi::c_void,
    /// Byte sampling (record::sample): bytes left until the thread's next sample.
    pub sample_left: i64,
    /// Byte sampling: the thread's random state (xorshift), 0 until seeded.
    pub sample_rng: u64,
    /// While an allocation function's hook records: the address of the caller's frame pointer
    /// and return address its trampoline pushed (hooks::native::CallSite), where a native walk
    /// starts; 0 otherwise.
    pub call_site: u64,
    /// The coarse clock's time (coarse::read: 0 matches none) when the thread last read the
    /// time-stamp counter (clock::event_tick), and the tick it read.
    pub tick_word: u64,
    pub tick_last: u64,
    /// The thread's id in the clock's claims of a kernel tick (clock::event_tick), 0 until
    /// it first reads the counter there.
    pub clock_id: u32,
    pub unused: u32,
    /// The return address the trampoline of the hook recording pushed at `call_site`: still
    /// there while the hook runs, overwritten once a jump left it and deeper calls reused its
    /// stack (hooks::native `left_by_a_jump`).
    pub entry_ret: u64,
}

#[cfg(not(target_arch = "x86_64"))]
extern "C" {
    fn memtrace_tls_get() -> *mut Tls;
}

/// This thread's block. Valid for the whole life of the thread.
#[inline(always)]
pub fn get() -> &'static mut Tls {
    // SAFETY: the block is static thread-local storage of this thread; the tracker only uses it
    // from this thread and never keeps two live references across a call that also takes one.
    unsafe { &mut *block() }
}

/// The block's address: on x86-64 read in place, as C code reads an initial-exec variable (the
/// thread pointer plus the offset the loader put in the GOT), two instructions where a call to
/// tls.c's `memtrace_tls_get` cost a call and a return on every hook.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn block() -> *mut Tls {
    let p: *mut Tls;
    // SAFETY: reads this thread's thread pointer (%fs:0, set by the C library for every thread)
    // and the GOT slot of tls.c's `memtrace_tls_block` (declared initial-exec there: the slot
    // holds its offset from the thread pointer, fixed at load); nothing is written.
    unsafe {
        core::arch::asm!(
            "mov {p}, qword ptr fs:[0]",
            "add {p}, qword ptr [rip + memtrace_tls_block@GOTTPOFF]",
            p = out(reg) p,
            options(pure, readonly, nostack),
        );
    }
    p
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn block() -> *mut Tls {
    // SAFETY: tls.c's accessor returns this thread's block.
    unsafe { memtrace_tls_get() }
}

/// Runs `f` with the re-entrancy flag set, so that allocations made on the way are not recorded.
pub fn guarded<R>(f: impl FnOnce() -> R) -> R {
    let t = get();
    let was = t.in_tracker;
    t.in_tracker = 1;
    let r = f();
    get().in_tracker = was;
    r
}
