//! The memory a walk may read: the stack the allocating code runs on, from the walk's own stack
//! pointer up to the stack's top (all of it mapped), never anything else.

/// A thread's stack as pthread describes it, read once per thread.
#[derive(Clone, Copy, Default)]
pub struct Stack {
    pub lo: u64,
    pub hi: u64,
}

impl Stack {
    /// The calling thread's stack (empty when pthread cannot tell: the walk then stays within
    /// a signal stack or reads nothing).
    pub fn of_this_thread() -> Stack {
        // SAFETY: pthread_getattr_np fills a zeroed attribute object for the calling thread,
        // which is destroyed after reading; it may allocate (the main thread's reads
        // /proc/self/maps), which the re-entrancy flag keeps out of the capture.
        unsafe {
            let mut attr: libc::pthread_attr_t = core::mem::zeroed();
            if libc::pthread_getattr_np(libc::pthread_self(), &mut attr) != 0 {
                return Stack::default();
            }
            let mut addr: *mut libc::c_void = core::ptr::null_mut();
            let mut size: libc::size_t = 0;
            let ok = libc::pthread_attr_getstack(&attr, &mut addr, &mut size) == 0;
            libc::pthread_attr_destroy(&mut attr);
            if !ok {
                return Stack::default();
            }
            Stack {
                lo: addr as u64,
                hi: (addr as u64).saturating_add(size as u64),
            }
        }
    }

    pub fn contains(&self, sp: u64) -> bool {
        self.lo <= sp && sp < self.hi
    }
}

/// The readable window of the stack holding `sp`: `[sp, top)` of the thread's stack or of its
/// signal stack; None when `sp` is on neither (a coroutine's stack, say).
pub fn window(thread: &Stack, sp: u64) -> Option<Window> {
    if thread.contains(sp) {
        return Some(Window {
            lo: sp,
            hi: thread.hi,
        });
    }
    let alt = signal_stack()?;
    alt.contains(sp).then_some(Window { lo: sp, hi: alt.hi })
}

/// The calling thread's alternate signal stack, if it has one.
fn signal_stack() -> Option<Stack> {
    // SAFETY: stack_t is plain data; sigaltstack with a null new stack only reads the current
    // one into `old`.
    let old = unsafe {
        let mut old: libc::stack_t = core::mem::zeroed();
        if libc::sigaltstack(core::ptr::null(), &mut old) != 0 {
            return None;
        }
        old
    };
    if old.ss_flags & libc::SS_DISABLE != 0 {
        return None;
    }
    let lo = old.ss_sp as u64;
    Some(Stack {
        lo,
        hi: lo.saturating_add(old.ss_size as u64),
    })
}

/// Stack bytes a walk may read.
#[derive(Clone, Copy)]
pub struct Window {
    lo: u64,
    hi: u64,
}

impl Window {
    /// The 8 bytes at `a`, if they are inside the window.
    #[inline]
    pub fn read(&self, a: u64) -> Result<u64, ()> {
        if a < self.lo || a > self.hi.saturating_sub(8) {
            return Err(());
        }
        // SAFETY: [lo, hi) is mapped stack memory of this thread (from its stack pointer up to
        // its top); the value may be anything, and is only used as a number.
        Ok(unsafe { core::ptr::read_volatile(a as *const u64) })
    }

    /// Whether every `(address, value)` of `words` still holds its value, all of them inside the
    /// window; `span` is their lowest and highest address. The same as `read` of each, with one
    /// bounds check and no branch a word.
    #[inline(always)]
    pub fn holds(&self, (lo, hi): (u64, u64), words: &[(u64, u64)]) -> bool {
        if lo < self.lo || hi > self.hi.saturating_sub(8) {
            return false;
        }
        let mut diff = 0;
        for &(a, v) in words {
            debug_assert!(lo <= a && a <= hi);
            // SAFETY: lo <= a <= hi, inside [self.lo, self.hi - 8]: as in `read`.
            diff |= unsafe { core::ptr::read_volatile(a as *const u64) } ^ v;
        }
        diff == 0
    }
}
