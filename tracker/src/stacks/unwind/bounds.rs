//! The memory a walk may read: the stack the allocating code runs on, from the walk's own stack
//! pointer up to the stack's top (all of it mapped), never anything else.

/// A thread's stack, found once per thread: the mapping its stack pointer is in.
#[derive(Clone, Copy, Default)]
pub struct Stack {
    pub lo: u64,
    pub hi: u64,
}

impl Stack {
    /// The calling thread's own stack, whatever stack the code runs on now (a coroutine's):
    /// the main thread's `[stack]` (down to its size limit), another thread's the mapping of
    /// /proc/self/maps that holds its thread block (the C library puts it at the top of the
    /// thread's stack). None on a signal stack (the thread's own is not known from there);
    /// empty when the maps cannot tell (the walk then stays within a signal stack or reads
    /// nothing).
    ///
    /// Not pthread_getattr_np: it takes the thread's lock and allocates while holding it, so a
    /// program's own call of it reaches the hook with the lock held, and a second call from the
    /// hook waits for it forever.
    pub fn of_this_thread() -> Option<Stack> {
        let sp = stack_pointer();
        if signal_stack().is_some_and(|alt| alt.contains(sp)) {
            return None;
        }
        let own = if crate::sys::gettid() == crate::sys::getpid() {
            main_stack()
        } else {
            // SAFETY: pthread_self reads the thread pointer; no lock, no allocation.
            mapping_of(unsafe { libc::pthread_self() } as u64)
        };
        let Some((start, end, main)) = own.or_else(|| mapping_of(sp)) else {
            return Some(Stack::default());
        };
        let lo = if main {
            main_stack_low(start, end)
        } else {
            start
        };
        Some(Stack { lo, hi: end })
    }

    pub fn contains(&self, sp: u64) -> bool {
        self.lo <= sp && sp < self.hi
    }
}

/// About the calling code's stack pointer: the address of a local.
#[inline(always)]
pub fn stack_pointer() -> u64 {
    let here = 0u8;
    core::hint::black_box(&here) as *const u8 as u64
}

/// The bytes of stack below `sp` a walk may use: on the thread's stack or its signal stack;
/// 0 on any other (a stack of unknown size).
pub fn room_below(thread: &Stack, sp: u64) -> u64 {
    if thread.contains(sp) {
        return sp - thread.lo;
    }
    match signal_stack() {
        Some(alt) if alt.contains(sp) => sp - alt.lo,
        _ => 0,
    }
}

/// The main thread's `[stack]` mapping grows down to its size limit.
fn main_stack_low(start: u64, end: u64) -> u64 {
    // SAFETY: getrlimit fills a plain struct.
    let limit = unsafe {
        let mut r: libc::rlimit = core::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_STACK, &mut r) != 0 || r.rlim_cur == libc::RLIM_INFINITY {
            1 << 30
        } else {
            r.rlim_cur as u64
        }
    };
    start.min(end.saturating_sub(limit))
}

/// The `[stack]` mapping: (start, end, true).
fn main_stack() -> Option<(u64, u64, bool)> {
    let m = crate::maps::find(|m| m.named(b"[stack]"))?;
    Some((m.start, m.end, true))
}

/// The mapping holding `addr`: (start, end, whether it is `[stack]`).
fn mapping_of(addr: u64) -> Option<(u64, u64, bool)> {
    let m = crate::maps::find(|m| m.start <= addr && addr < m.end)?;
    Some((m.start, m.end, m.named(b"[stack]")))
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
pub fn signal_stack() -> Option<Stack> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_thread_s_stack_pointer_is_in_a_mapping() {
        let sp = stack_pointer();
        let (start, end, _) = mapping_of(sp).expect("a mapping");
        assert!(start <= sp && sp < end);
        let data = Box::new(0u64);
        let at = &*data as *const u64 as u64;
        let (s, e, stack) = mapping_of(at).expect("a mapping");
        assert!(s <= at && at < e && !stack);
    }
}
