//! A lock biased to one thread: while only that thread (the owner) takes it, taking it costs
//! two plain stores and two loads, no locked instruction. A locked `cmpxchg` waits for the
//! processor's store buffer to drain, and an aggregated capture (record::aggregate) takes its
//! lock at every allocation and free: that wait was a tenth of its added time on
//! small_objects.py.
//!
//! The owner marks itself busy and then checks that it still owns the lock; another thread
//! takes the bias away for good (the lock is then a plain spin lock) by taking the inner lock,
//! clearing the owner, issuing a process-wide memory barrier (membarrier(2), as
//! thread::owner does) and waiting until the owner is not busy. After the barrier, either the
//! owner's busy mark is visible to the revoker or the owner's check sees that it lost the lock
//! (the asymmetric Dekker pattern); the owner's release of the busy mark publishes its writes.
//! The bias is given only where the expedited barrier works (barrier::expedited).

use crate::barrier;
use std::cell::UnsafeCell;
use std::sync::atomic::{compiler_fence, AtomicBool, AtomicUsize, Ordering};

pub struct BiasedLock<T> {
    /// The owner's identity (its thread-local block's address), 0 when the lock is not biased.
    owner: AtomicUsize,
    /// The owner is inside (or entering) the lock.
    busy: AtomicBool,
    /// The spin lock every other thread takes (and the owner, once its bias is gone).
    locked: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: access to `value` is serialized: by `locked` or, for the owner, by `busy` and the
// revocation protocol above.
unsafe impl<T: Send> Sync for BiasedLock<T> {}

/// How a holder holds the lock.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Held {
    /// As its owner, through the bias.
    Biased,
    /// Through the spin lock.
    Locked,
}

pub struct Guard<'a, T> {
    lock: &'a BiasedLock<T>,
    held: Held,
}

impl<T> BiasedLock<T> {
    pub const fn new(value: T) -> BiasedLock<T> {
        BiasedLock {
            owner: AtomicUsize::new(0),
            busy: AtomicBool::new(false),
            locked: AtomicBool::new(false),
            value: UnsafeCell::new(value),
        }
    }

    /// Takes the lock for the thread `me` (a nonzero identity no other live thread has).
    #[inline(always)]
    pub fn lock(&self, me: usize) -> Guard<'_, T> {
        Guard {
            lock: self,
            held: self.raw_lock(me),
        }
    }

    /// Takes the lock and gives its bias to `me`, when the process-wide barrier works: `me`'s
    /// later locks take the fast path until another thread takes the lock.
    pub fn lock_and_bias(&self, me: usize) -> Guard<'_, T> {
        let held = self.raw_lock(me);
        if held == Held::Locked && barrier::expedited() {
            // Under the spin lock: no other thread holds the lock, and one that waits for it
            // checks the owner once it has it.
            self.owner.store(me, Ordering::Relaxed);
        }
        Guard { lock: self, held }
    }

    /// Takes the lock without a guard (fork handlers release it in another function).
    #[inline(always)]
    pub fn raw_lock(&self, me: usize) -> Held {
        if self.owner.load(Ordering::Relaxed) == me {
            self.busy.store(true, Ordering::Relaxed);
            // The store must not move after the check below; the hardware's reordering of the
            // two is what the revoker's barrier rules out.
            compiler_fence(Ordering::SeqCst);
            if self.owner.load(Ordering::Relaxed) == me {
                // Pairs with the release of the busy mark or of the spin lock by the last
                // holder (a revoker's writes reach the owner only after it lost the bias).
                compiler_fence(Ordering::Acquire);
                return Held::Biased;
            }
            self.busy.store(false, Ordering::Release);
        }
        self.lock_slow(me)
    }

    /// The spin lock; then, if another thread owns the bias, the bias is taken away.
    #[cold]
    #[inline(never)]
    fn lock_slow(&self, me: usize) -> Held {
        let mut spins = 0u32;
        while self
            .locked
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            spins += 1;
            if spins < 64 {
                std::hint::spin_loop();
            } else {
                crate::lock::sched_yield();
            }
        }
        let owner = self.owner.load(Ordering::Relaxed);
        if owner != 0 && owner != me {
            self.owner.store(0, Ordering::Relaxed);
            // After it, the owner either shows busy here or sees that it lost the bias.
            barrier::all_threads();
            let mut spins = 0u32;
            // Acquire: the owner's writes in the lock are visible once it is out.
            while self.busy.load(Ordering::Acquire) {
                spins += 1;
                if spins < 64 {
                    std::hint::spin_loop();
                } else {
                    crate::lock::sched_yield();
                }
            }
        }
        Held::Locked
    }

    /// Releases the lock as it was taken.
    #[inline(always)]
    pub fn raw_unlock(&self, held: Held) {
        match held {
            Held::Biased => self.busy.store(false, Ordering::Release),
            Held::Locked => self.locked.store(false, Ordering::Release),
        }
    }

    /// In a fork child: the lock is free and biased to no one (its holder, if another thread,
    /// does not exist here).
    pub fn reset_in_child(&self) {
        self.owner.store(0, Ordering::Relaxed);
        self.busy.store(false, Ordering::Relaxed);
        self.locked.store(false, Ordering::Release);
    }

    /// Whether the lock is biased (to anyone).
    #[cfg(test)]
    pub fn is_biased(&self) -> bool {
        self.owner.load(Ordering::Relaxed) != 0
    }
}

impl<T> Guard<'_, T> {
    /// How this guard holds the lock.
    #[cfg(test)]
    pub fn held(&self) -> Held {
        self.held
    }
}

impl<T> core::ops::Deref for Guard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard holds the lock.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> core::ops::DerefMut for Guard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard holds the lock exclusively.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for Guard<'_, T> {
    #[inline(always)]
    fn drop(&mut self) {
        self.lock.raw_unlock(self.held);
    }
}

#[cfg(test)]
mod tests {
    use super::{BiasedLock, Held};
    use std::sync::atomic::{AtomicBool, Ordering};

    /// A counter of two halves that must stay equal: a holder that is not alone breaks it.
    struct Pair(u64, u64);

    fn bump(lock: &BiasedLock<Pair>, me: usize) -> Held {
        let mut g = lock.lock(me);
        let v = g.0;
        std::hint::black_box(&mut *g);
        g.0 = v + 1;
        let w = g.1;
        g.1 = w + 1;
        g.held()
    }

    #[test]
    fn the_owner_takes_the_fast_path_until_another_thread_takes_the_lock() {
        crate::barrier::init();
        let lock = BiasedLock::new(Pair(0, 0));
        let owner = 0x1000;
        drop(lock.lock_and_bias(owner));
        if !crate::barrier::expedited() {
            // No expedited barrier here: never biased, always the spin lock.
            assert!(!lock.is_biased());
            assert_eq!(bump(&lock, owner), Held::Locked);
            return;
        }
        assert!(lock.is_biased());
        assert_eq!(bump(&lock, owner), Held::Biased);
        assert_eq!(bump(&lock, 0x2000), Held::Locked);
        assert!(!lock.is_biased());
        // For good: the former owner takes the spin lock too.
        assert_eq!(bump(&lock, owner), Held::Locked);
        let g = lock.lock(owner);
        assert_eq!((g.0, g.1), (3, 3));
    }

    #[test]
    fn an_owner_and_other_threads_never_hold_the_lock_together() {
        crate::barrier::init();
        for _ in 0..20 {
            let lock = BiasedLock::new(Pair(0, 0));
            let inside = AtomicBool::new(false);
            const EACH: u64 = 20_000;
            std::thread::scope(|scope| {
                let (lock, inside) = (&lock, &inside);
                scope.spawn(move || {
                    let me = 0x1000;
                    drop(lock.lock_and_bias(me));
                    for _ in 0..EACH {
                        let g = lock.lock(me);
                        assert!(!inside.swap(true, Ordering::Relaxed), "two holders at once");
                        std::hint::black_box(&g);
                        inside.store(false, Ordering::Relaxed);
                        drop(g);
                        bump(lock, me);
                    }
                });
                for k in 0..2usize {
                    scope.spawn(move || {
                        let me = 0x2000 + k * 0x100;
                        for _ in 0..EACH / 4 {
                            bump(lock, me);
                        }
                    });
                }
            });
            let g = lock.lock(0x9000);
            // Every increment of both halves counted: no holder ever raced another.
            assert_eq!(g.0, EACH + 2 * (EACH / 4));
            assert_eq!(g.1, g.0);
        }
    }
}
