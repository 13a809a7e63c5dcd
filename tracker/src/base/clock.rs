//! Event time: the CPU's time-stamp counter, shifted to a coarser unit (cheap to read, and
//! coarse ticks make small deltas that encode in the record's first byte).
//!
//! Reading the counter costs 11 ns on the machines measured, a quarter of what recording an
//! event costs. So a thread's events within one kernel timer tick (1-10 ms, as the kernel's
//! coarse clock word shows: coarse.rs) take the time of the first of them, while no other
//! thread records in that tick. Its events keep their order (a thread's records are in
//! sequence); after a pause of any length the word has moved and the counter is read afresh,
//! so no time is off by more than one kernel tick. The first thread to read the counter in a
//! kernel tick claims it ([`OWNER`]); the merge of threads orders their events by tick, and an
//! event that follows another thread's must not take a time from before it:
//! - A second thread that records in the tick takes the claim over, once: it claims first and
//!   reads the counter after, so its reading is later than every event of the first thread
//!   that came before its claim (the program synchronized them: Python's threads hand the GIL
//!   over every 5 ms, about once a kernel tick). The first thread no longer owns the tick and
//!   reads the counter at its next event.
//! - A third claim in the tick, or any claim made between a thread's claim and its reading
//!   (two threads reading at once; or a thread that read the next kernel tick's word while
//!   this one was held up, by the kernel's timer interrupt itself), marks the tick contended:
//!   from then on every event of the tick reads the counter.
//! - A reading without a claim (the word read while the kernel updated it, at a second's end;
//!   a thread past the last id) erases every claim before and after it.
//!
//! A process with one busy thread (others waiting) reuses; threads that take turns reuse after
//! each turn's first event; two threads allocating at once pay one more load per event than
//! reading the counter alone.
//! A process of a `--follow-fork` family reads the counter at every event ([`configure`]):
//! the family's reports merge its processes by time.

use crate::coarse;
use crate::tls::Tls;
use memtrace_format::TickSource;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

#[cfg(target_arch = "x86_64")]
pub const SOURCE: TickSource = TickSource::Tsc { shift: SHIFT };
#[cfg(not(target_arch = "x86_64"))]
pub const SOURCE: TickSource = TickSource::MonotonicNs;

#[cfg(target_arch = "x86_64")]
const SHIFT: u8 = 8;

#[inline]
pub fn tick() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: rdtsc is available on every x86_64 CPU.
        unsafe { core::arch::x86_64::_rdtsc() >> SHIFT }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        crate::sys::clock_ns(libc::CLOCK_MONOTONIC)
    }
}

/// Who may reuse a counter reading in the current kernel tick: the low half of the coarse
/// clock's time (coarse::read) in the low half, the id (`Tls::clock_id`) of the thread that
/// claimed the tick in the high half, with [`MOVED`] once the claim changed hands, or
/// [`CONTENDED`] there when no thread may reuse in the tick.
static OWNER: AtomicU64 = AtomicU64::new(0);
/// The high half of [`OWNER`] when no thread may reuse in the tick.
const CONTENDED: u64 = u32::MAX as u64;
/// The claim of the tick was taken over once (a second take-over makes it contended).
const MOVED: u64 = 1 << 63;
/// Thread ids run from 1 to this, exclusive (the claim's bit 63 is [`MOVED`], and an id of
/// all ones below it would read as [`CONTENDED`] without it).
const ID_END: u32 = 0x7FFF_FFFF;
/// The low half of [`OWNER`]: the kernel tick.
const TICK_PART: u64 = 0xFFFF_FFFF;
/// The next thread id (0: none yet).
static NEXT_ID: AtomicU32 = AtomicU32::new(1);
/// The id of threads past the last: they never claim a tick ([`unclaimed_tick`]).
const NO_ID: u32 = u32::MAX;

/// The tick of an event of the calling thread (`t` its block): its last counter reading while
/// the kernel's coarse clock stands still and no other thread recorded since (see the module's
/// note), else the counter.
#[inline(always)]
pub fn event_tick(t: &mut Tls) -> u64 {
    if !REUSE.load(Ordering::Relaxed) {
        return tick();
    }
    event_tick_in(t, &OWNER)
}

/// Whether a thread may reuse a reading (see [`configure`]).
static REUSE: AtomicBool = AtomicBool::new(false);

/// Sets how the capture starting now reads the clock: `family` when its process's events
/// will be merged by time with other processes' (`--follow-fork`): every event then reads the
/// counter, as a reading reused after a short wait (a barrier, a pipe) would place the event
/// up to a kernel tick early against the other processes. Else readings are reused where the
/// coarse clock word is known (call after `coarse::locate`).
pub fn configure(family: bool) {
    REUSE.store(!family && coarse::read().is_some(), Ordering::Relaxed);
}

/// [`event_tick`] with the claim in `owner` (the tests' own, apart from the process's).
#[inline(always)]
fn event_tick_in(t: &mut Tls, owner: &AtomicU64) -> u64 {
    let Some(now) = coarse::read() else {
        // The kernel was updating the word (at a second's end): a reading another thread
        // must not reuse against.
        return unclaimed_tick(owner);
    };
    tick_at(t, now, owner)
}

/// The tick of an event of `t` in the kernel tick whose coarse time is `now`: the thread's
/// last reading when it is of `now` and the claim of `now` is still the thread's, else a
/// fresh one.
#[inline(always)]
fn tick_at(t: &mut Tls, now: u64, owner: &AtomicU64) -> u64 {
    if now == t.tick_word && owner.load(Ordering::Relaxed) & !MOVED == claim_of(now, t.clock_id) {
        return t.tick_last;
    }
    fresh_tick(t, now, owner)
}

/// [`OWNER`]'s value for a claim of the kernel tick `now` (coarse::read) by thread `id`: the
/// low half of `now` (a thread reuses a reading only when the whole of `now` is its own too).
#[inline(always)]
fn claim_of(now: u64, id: u32) -> u64 {
    (now & TICK_PART) | (u64::from(id) << 32)
}

/// The mark of the kernel tick `now` when no thread may reuse in it.
#[inline(always)]
fn contended_of(now: u64) -> u64 {
    (now & TICK_PART) | (CONTENDED << 32)
}

/// [`event_tick`] reading the counter: the thread claims the kernel tick `now` (takes the
/// claim over, or marks the tick contended: see the module's note), then reads the counter.
/// Another thread's event that happened before this one (the program synchronized them) came
/// before this claim, and so before this reading.
#[inline(never)]
fn fresh_tick(t: &mut Tls, now: u64, claim: &AtomicU64) -> u64 {
    let Some(mine) = claim_tick(t, now, claim) else {
        return unclaimed_tick(claim);
    };
    let tick = ordered_tick();
    settle_claim(now, mine, claim);
    t.tick_word = now;
    t.tick_last = tick;
    tick
}

/// Claims the kernel tick `now` for the calling thread (see [`fresh_tick`]): its claim, or
/// None for a thread without an id (past [`ID_END`] threads).
#[inline(always)]
fn claim_tick(t: &mut Tls, now: u64, claim: &AtomicU64) -> Option<u64> {
    if t.clock_id == 0 {
        t.clock_id = new_id(&NEXT_ID);
    }
    if t.clock_id == NO_ID {
        return None;
    }
    let part = now & TICK_PART;
    let mine = claim_of(now, t.clock_id);
    let contended = contended_of(now);
    let mut owner = claim.load(Ordering::Relaxed);
    loop {
        let wanted = if owner & TICK_PART != part {
            mine
        } else if owner & !MOVED == mine || owner == contended {
            break;
        } else if owner & MOVED != 0 {
            contended
        } else {
            mine | MOVED
        };
        match claim.compare_exchange_weak(owner, wanted, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => break,
            Err(o) => owner = o,
        }
    }
    Some(mine)
}

/// After the reading of a claim `mine` of the kernel tick `now`: another thread that claimed
/// a tick (this one or another: a thread that read the next kernel tick's word while this one
/// was held up, by the kernel's timer interrupt itself) between this claim and this reading
/// may have read the counter before this thread did. Neither may reuse: the claim becomes the
/// mark of a contended tick (overwriting another tick's claim only makes its owner read the
/// counter once more).
#[inline(always)]
fn settle_claim(now: u64, mine: u64, claim: &AtomicU64) {
    let contended = contended_of(now);
    let mut owner = claim.load(Ordering::Relaxed);
    while owner & !MOVED != mine && owner != contended {
        match claim.compare_exchange_weak(owner, contended, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => break,
            Err(o) => owner = o,
        }
    }
}

/// A reading that no thread reuses against: every claim is erased before it, and again after
/// it (a claim made meanwhile may come with an earlier reading). For a time without the coarse
/// word (the kernel updating it) and for threads without an id.
#[cold]
fn unclaimed_tick(claim: &AtomicU64) -> u64 {
    claim.store(0, Ordering::Relaxed);
    let tick = ordered_tick();
    claim.store(0, Ordering::Relaxed);
    tick
}

/// A new thread id from `next`, from 1 up to [`ID_END`]; [`NO_ID`] after that (two threads
/// with one id would each take the other's claim for its own).
#[cold]
fn new_id(next: &AtomicU32) -> u32 {
    match next.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
        (n < ID_END).then_some(n + 1)
    }) {
        Ok(id) if id != 0 => id,
        _ => NO_ID,
    }
}

/// The counter, read after every load and store before it (the claim) and before every one
/// after it (the check of the claim): `rdtsc` alone may run ahead of them or behind.
#[inline(always)]
fn ordered_tick() -> u64 {
    fence_for_counter();
    let t = tick();
    fence_for_counter();
    t
}

/// Keeps the counter's reading on its side of the loads and stores around it: `lfence` on
/// x86-64 (which orders `rdtsc`), a full fence elsewhere.
#[inline(always)]
fn fence_for_counter() {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: lfence is part of SSE2, which every x86_64 CPU has.
    unsafe {
        core::arch::x86_64::_mm_lfence()
    };
    #[cfg(not(target_arch = "x86_64"))]
    std::sync::atomic::fence(Ordering::SeqCst);
}

/// A (tick, monotonic ns) pair read together, for converting ticks to time.
pub fn pair() -> (u64, u64) {
    let t = tick();
    (t, crate::sys::clock_ns(libc::CLOCK_MONOTONIC))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;
    use std::sync::Arc;

    fn block() -> Tls {
        // SAFETY: Tls is plain data (integers and raw pointers): all zeros is a valid value.
        unsafe { core::mem::zeroed() }
    }

    #[test]
    fn one_thread_reuses_its_reading_within_a_kernel_tick_and_not_across() {
        coarse::tests::located();
        // A claim of its own: the process's is the other tests' too (they record).
        let owner = AtomicU64::new(0);
        let mut t = block();
        let (first, second) = (event_tick_in(&mut t, &owner), event_tick_in(&mut t, &owner));
        assert!(second >= first);
        if coarse::word().is_null() {
            eprintln!("no coarse clock word on this kernel: every event reads the counter");
            return;
        }
        // Within a kernel tick a reading is the one before; after 30 ms it cannot be.
        let word = coarse::read;
        let (mut last, mut last_word, mut checked) = (0, None, 0);
        for _ in 0..1000 {
            let w = word();
            let tick = event_tick_in(&mut t, &owner);
            let stood = w == word();
            if stood && last_word == Some(w) {
                // The word stood still around this reading and the one before.
                assert_eq!(tick, last);
                checked += 1;
            }
            (last, last_word) = (tick, stood.then_some(w));
        }
        assert!(checked > 0, "every reading crossed a kernel tick");
        let before = event_tick_in(&mut t, &owner);
        std::thread::sleep(std::time::Duration::from_millis(30));
        let after = event_tick_in(&mut t, &owner);
        assert!(after > before + 30_000_000 / 4096, "{before} -> {after}");
    }

    /// Waits until the counter has moved past `t` (a fresh reading then differs from `t`).
    fn past(t: u64) {
        while tick() <= t + 1 {
            std::hint::spin_loop();
        }
    }

    #[test]
    fn a_second_thread_takes_a_kernel_tick_over_once_and_a_third_claim_ends_reuse() {
        coarse::tests::located();
        if coarse::word().is_null() {
            eprintln!("no coarse clock word on this kernel: every event reads the counter");
            return;
        }
        // Two blocks stand for two threads taking turns (as the claim sees them), within one
        // kernel tick: a sequence that crossed one is tried again.
        for _ in 0..1000 {
            let owner = AtomicU64::new(0);
            let (mut a, mut b) = (block(), block());
            let word = coarse::read();
            let turn = |t: &mut Tls, last: u64| {
                past(last);
                event_tick_in(t, &owner)
            };
            let a1 = turn(&mut a, 0);
            let a2 = turn(&mut a, a1);
            let b1 = turn(&mut b, a2);
            let after_takeover = owner.load(Ordering::Relaxed);
            let b2 = turn(&mut b, b1);
            let a3 = turn(&mut a, b2);
            let after_third = owner.load(Ordering::Relaxed);
            let b3 = turn(&mut b, a3);
            if coarse::read() != word {
                continue;
            }
            let now = word.expect("the word is known");
            assert_eq!(a2, a1, "the first thread reuses its reading");
            assert!(b1 > a2, "the second reads the counter");
            assert_eq!(after_takeover, claim_of(now, b.clock_id) | MOVED);
            assert_eq!(b2, b1, "the second reuses its reading");
            assert!(a3 > b2, "the first, no longer the owner, reads the counter");
            assert_eq!(after_third, contended_of(now));
            assert!(b3 > a3, "no thread reuses in a contended tick");
            return;
        }
        panic!("every sequence crossed a kernel tick");
    }

    /// Two kernel ticks' coarse times (any values: the claim compares them, nothing else).
    const TICK_N: u64 = 5_000_000;
    const TICK_N1: u64 = 9_000_000;

    #[test]
    fn a_claim_of_the_next_kernel_tick_between_a_claim_and_its_reading_ends_its_reuse() {
        // Z claims tick N and is held up before its reading (the kernel's timer interrupt);
        // meanwhile Y reads the word of tick N+1, claims it and reads the counter. Z reads
        // after: Z's event, then (the program hands over) Y's, which must not take Y's earlier
        // reading.
        let owner = AtomicU64::new(0);
        let (mut z, mut y) = (block(), block());
        let mine = claim_tick(&mut z, TICK_N, &owner).expect("an id");
        let early = tick_at(&mut y, TICK_N1, &owner);
        past(early);
        let z_tick = ordered_tick();
        settle_claim(TICK_N, mine, &owner);
        past(z_tick);
        let after = tick_at(&mut y, TICK_N1, &owner);
        assert!(after >= z_tick, "{after} < {z_tick}: Y reused {early}");
    }

    #[test]
    fn a_reading_without_a_claim_ends_every_reuse() {
        // Y claims and reads; another thread reads the counter while the kernel updates the
        // word (no time to claim): Y's next event, after it, reads the counter too.
        let owner = AtomicU64::new(0);
        let mut y = block();
        let early = tick_at(&mut y, TICK_N, &owner);
        past(early);
        let other = unclaimed_tick(&owner);
        past(other);
        let after = tick_at(&mut y, TICK_N, &owner);
        assert!(after >= other, "{after} < {other}: Y reused {early}");
    }

    #[test]
    fn thread_ids_stop_at_the_last_and_a_thread_without_one_never_reuses() {
        let next = AtomicU32::new(ID_END - 2);
        let ids: Vec<u32> = (0..4).map(|_| new_id(&next)).collect();
        assert_eq!(ids, [ID_END - 2, ID_END - 1, NO_ID, NO_ID]);
        let owner = AtomicU64::new(0);
        let (mut x, mut late) = (block(), block());
        late.clock_id = NO_ID;
        let first = tick_at(&mut late, TICK_N, &owner);
        past(first);
        assert!(
            tick_at(&mut late, TICK_N, &owner) > first,
            "no reuse without an id"
        );
        // Nor does a thread with an id reuse after it.
        let mine = tick_at(&mut x, TICK_N, &owner);
        past(mine);
        let late_tick = tick_at(&mut late, TICK_N, &owner);
        past(late_tick);
        assert!(tick_at(&mut x, TICK_N, &owner) > late_tick);
    }

    #[test]
    fn an_event_after_another_threads_event_never_takes_an_earlier_time() {
        coarse::tests::located();
        // Two threads take turns (each turn follows the other's through `baton`): each event's
        // tick must be at least the tick of the other thread's event before it.
        let baton = Arc::new(AtomicU64::new(0));
        let owner = Arc::new(AtomicU64::new(0));
        let last = Arc::new(AtomicU64::new(0));
        let turns = 20_000u64;
        let player = |me: u64| {
            let (baton, last) = (Arc::clone(&baton), Arc::clone(&last));
            let owner = Arc::clone(&owner);
            std::thread::spawn(move || {
                let mut t = block();
                for turn in (me..turns).step_by(2) {
                    while baton.load(Ordering::Acquire) != turn {
                        // Yields: on one CPU a spin would wait out the other's time slice.
                        std::thread::yield_now();
                    }
                    // A few events of its own in between, which may reuse.
                    for _ in 0..3 {
                        event_tick_in(&mut t, &owner);
                    }
                    let tick = event_tick_in(&mut t, &owner);
                    let before = last.load(Ordering::Relaxed);
                    assert!(tick >= before, "turn {turn}: {tick} after {before}");
                    last.store(tick, Ordering::Relaxed);
                    baton.store(turn + 1, Ordering::Release);
                }
            })
        };
        let (a, b) = (player(0), player(1));
        a.join().expect("first thread");
        b.join().expect("second thread");
    }
}
