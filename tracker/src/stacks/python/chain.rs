//! The walk of the allocating thread's frame chain, innermost first, which stops where the last
//! chain takes over.
//!
//! Each frame of the last chain was kept (a step) with what was read of it: its address, its
//! code, where it was in that code (`WalkFields::place`) and its link to its caller. A walk
//! looks each frame it meets up in a small index of those addresses; at a frame of the last
//! chain it checks that chain from there to its outermost frame: each frame still runs the same
//! code at the same place and still links to the next one (directly, or through one shim) or,
//! for the outermost, to nothing. The frames from there on then give the last chain's steps and
//! stack ids: a stack is a function of exactly what is read, so it does not matter whether a
//! frame is the same call or a later call of the same code at the same address (CPython reuses
//! frames' memory at once). A code not kept alive (codes.rs) is never checked: its address
//! could name another code now.
//!
//! No freed frame is read: the check reads a frame only once the frame before it (the one the
//! walk found, for the first) was seen linking to it, so every frame read is on the live chain.
//! The next address is taken from the step (the value just compared) rather than from the load,
//! so that the loads of one frame need not wait for those of the frame before.

use super::frames::Step;
use super::layout::WalkFields;

/// Frames followed per stack; the outermost frames of a deeper stack are left out.
pub const CAPACITY: usize = 4096;
/// Frames met per walk, shims included (a chain of shims alone ends the walk as well).
pub const MAX_STEPS: usize = 4 * CAPACITY;
/// Slots of the index of the last chain's frame addresses (a power of two).
const INDEX_SLOTS: usize = 256;

/// How a frame reaches its caller's frame (zero, the value of fresh pages: directly).
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Link {
    /// Its `previous` is the caller (or 0 for the outermost).
    Direct = 0,
    /// Through one shim (3.12+: C called Python here).
    Shim = 1,
    /// Through frames a check does not follow (several shims, a frame without code), or the
    /// frame's code is not one to check: no walk stops there.
    Other = 2,
}

/// A step's `previous` as the check compares it: a link other than direct sets bit 0 (frames
/// are aligned), so that the one comparison of the usual case fails and the link is looked at.
#[inline(always)]
pub fn checked_prev(prev: usize, link: Link) -> usize {
    prev | (link != Link::Direct) as usize
}

/// A frame as walked.
#[derive(Clone, Copy)]
pub struct Walked {
    pub addr: usize,
    pub code: usize,
    /// What `WalkFields::place` read.
    pub place: usize,
    /// Its `previous` as read.
    pub prev: usize,
    /// See `WalkFields::position`; plus one below a shim.
    pub position: isize,
    pub link: Link,
    /// The frames (shims included) met before it in its walk.
    pub met: u32,
}

/// The index of the last chain's steps by frame address (a step's index; stale slots are told
/// by the step's address).
pub type Index = [u16; INDEX_SLOTS];

#[inline(always)]
fn slot(addr: usize) -> usize {
    (addr.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 56) & (INDEX_SLOTS - 1)
}

/// Notes that step `i` of the chain is the frame at `addr`.
#[inline(always)]
pub fn index(ix: &mut Index, addr: usize, i: usize) {
    ix[slot(addr)] = i as u16;
}

/// The step of `chain` at the frame `addr`, if the index has it.
#[inline(always)]
pub fn find(ix: &Index, chain: &[Step], addr: usize) -> Option<usize> {
    let i = ix[slot(addr)] as usize;
    (i < chain.len() && chain[i].addr == addr).then_some(i)
}

/// What a walk found.
pub struct Walk {
    /// The new frames, in `scratch[..n]`, innermost first.
    pub n: usize,
    /// The steps of the last chain that stay, outermost first: the chain goes on with them
    /// outside the new frames.
    pub kept: usize,
    /// The walk reached the outermost frame (no frame was left out).
    pub complete: bool,
    /// The frames (shims included) of the whole chain.
    pub met: u32,
    /// Where the frame of the last step kept is now (`WalkFields::place`): it may have moved
    /// on in its code.
    pub place: usize,
}

/// Walks the chain from `first` into `scratch`, stopping at a frame of `last` (outermost
/// first; a complete chain, or empty) from which on `last` still holds.
///
/// # Safety
/// `first` is 0 or the innermost frame of the calling thread's chain, of the version `fields`
/// and `MINOR` describe; every frame on that chain is alive, and so is each frame's code while
/// it runs.
#[inline(always)]
pub unsafe fn walk<const MINOR: u32>(
    fields: &WalkFields,
    first: usize,
    last: &[Step],
    ix: &Index,
    scratch: &mut [Walked; CAPACITY],
) -> Walk {
    let mut frame = first;
    let mut met = 0usize;
    let mut n = 0;
    let mut look = !last.is_empty();
    // SAFETY: per the caller, `frame` is on the live chain at each turn: it is `first`, or the
    // `previous` of a frame on it.
    unsafe {
        loop {
            if frame == 0 {
                return Walk {
                    n,
                    kept: 0,
                    complete: true,
                    met: met as u32,
                    place: 0,
                };
            }
            if met >= MAX_STEPS {
                break;
            }
            if look {
                // The last chain's innermost frame (the usual case), or another of its frames.
                let at = match last.last() {
                    Some(s) if s.addr == frame => Some(last.len() - 1),
                    _ => find(ix, last, frame),
                };
                if let Some(i) = at {
                    let rest = last[i].met as usize;
                    // Within the limits a whole walk has, so that it would read the same frames
                    // (strictly below CAPACITY: a whole walk would stop before the shims outside
                    // the last step).
                    if n + i + 1 < CAPACITY && met + rest <= MAX_STEPS {
                        match holds::<MINOR>(fields, &last[..=i], frame) {
                            Held::Yes => {
                                return Walk {
                                    n,
                                    kept: i + 1,
                                    complete: true,
                                    met: (met + rest) as u32,
                                    place: fields.place::<MINOR>(frame),
                                }
                            }
                            // Another code or caller here: the caller may still be the last
                            // chain's.
                            Held::NotHere => {}
                            // The last chain changed further out: no frame of it will do.
                            Held::No => look = false,
                        }
                    } else {
                        look = false;
                    }
                }
            }
            met += 1;
            let prev = fields.previous(frame);
            if fields.is_shim::<MINOR>(frame) {
                if n > 0 {
                    let w = &mut scratch[n - 1];
                    w.position |= 1;
                    w.link = if w.link == Link::Direct {
                        Link::Shim
                    } else {
                        Link::Other
                    };
                }
            } else {
                let code = fields.code(frame);
                if code != 0 {
                    let place = fields.place::<MINOR>(frame);
                    scratch[n] = Walked {
                        addr: frame,
                        code,
                        place,
                        prev,
                        position: fields.position::<MINOR>(code, place),
                        link: Link::Direct,
                        met: met as u32 - 1,
                    };
                    n += 1;
                    // A chain of exactly CAPACITY frames is whole.
                    if n == CAPACITY && prev != 0 {
                        break;
                    }
                } else if n > 0 {
                    scratch[n - 1].link = Link::Other;
                }
            }
            frame = prev;
        }
    }
    Walk {
        n,
        kept: 0,
        complete: false,
        met: met as u32,
        place: 0,
    }
}

pub enum Held {
    Yes,
    /// The frame found runs another code or has another caller than its step.
    NotHere,
    /// A frame outside it differs from its step.
    No,
}

/// Whether the chain from `frame`, found on the live chain where `kept`'s last step was, is
/// still the chain of `kept`, step for step, to its outermost frame; the frame found itself
/// may be at another place in its code (the others are suspended in calls).
///
/// # Safety
/// As for [`walk`]; `frame` is on the live chain.
#[inline(always)]
pub unsafe fn holds<const MINOR: u32>(fields: &WalkFields, kept: &[Step], frame: usize) -> Held {
    let Some((found, rest)) = kept.split_last() else {
        return Held::Yes;
    };
    // SAFETY: each frame read is on the live chain: the first per the caller, the others were
    // read as the `previous` of one on it (through a shim that was too).
    unsafe {
        let Some(mut addr) = caller::<MINOR>(fields, found, fields.code(frame), frame) else {
            return Held::NotHere;
        };
        for s in rest.iter().rev() {
            let place = fields.place::<MINOR>(addr);
            let prev = fields.previous(addr);
            // From 3.11 a place is an address in the code object's own bytecode: a step's
            // place names its code (kept alive: no other object can be at that address; a
            // step of a code not kept alive has a link other than direct, whose `prev` never
            // matches). 3.10's is an offset: the code is compared too.
            let same = if MINOR >= 11 {
                (place ^ s.place) | (prev ^ s.prev) == 0
            } else {
                (fields.code(addr) ^ s.code) | (place ^ s.place) | (prev ^ s.prev) == 0
            };
            if same {
                // The usual case: a direct link (or the end); the caller is `prev`. Read
                // from the step, not taken from the frame's load: the compiler, seeing them
                // equal, would use the loaded value, and each frame's loads would wait for the
                // one before (a pointer chase through the chain, ~4x slower on deep stacks).
                addr = core::ptr::read_volatile(&s.prev);
                continue;
            }
            if place != s.place {
                return Held::No;
            }
            let code = fields.code(addr);
            addr = match caller::<MINOR>(fields, s, code, addr) {
                Some(next) => next,
                None => return Held::No,
            };
        }
    }
    Held::Yes
}

/// The caller's frame of `frame` (0 for none), which runs `code`, if both are as step `s`
/// says.
///
/// # Safety
/// As for [`holds`].
#[inline(always)]
unsafe fn caller<const MINOR: u32>(
    fields: &WalkFields,
    s: &Step,
    code: usize,
    frame: usize,
) -> Option<usize> {
    // SAFETY: per the caller: `frame` is on the live chain, and so is a shim it links to.
    unsafe {
        let prev = fields.previous(frame);
        if (code ^ s.code) | (prev ^ s.prev) == 0 {
            Some(s.prev)
        } else if (code ^ s.code) | (prev ^ s.prev ^ 1) == 0
            && s.link == Link::Shim
            && fields.is_shim::<MINOR>(prev)
            && fields.previous(prev) == s.caller
        {
            Some(s.caller)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{checked_prev, holds, Held, Link, Step, WalkFields};

    /// A frame of 3.12's layout: code at 0, previous at 8, instruction pointer at 56, owner
    /// byte at 70 (3 for a shim).
    #[derive(Clone, Copy, Default)]
    #[repr(C, align(8))]
    struct Frame([usize; 10]);

    fn set(f: &mut Frame, code: usize, instr: usize, prev: usize, shim: bool) {
        f.0[0] = code;
        f.0[1] = prev;
        f.0[7] = instr;
        f.0[8] = if shim { 3 << 48 } else { 0 };
    }

    fn addr(frames: &[Frame], i: usize) -> usize {
        &frames[i] as *const Frame as usize
    }

    fn step(frames: &[Frame], i: usize, link: Link, caller: usize) -> Step {
        let f = &frames[i];
        Step::for_check(
            addr(frames, i),
            f.0[0],
            f.0[7],
            checked_prev(f.0[1], link),
            link,
            caller,
        )
    }

    /// outer (0) <- shim (1) <- middle (2) <- inner (3), and the steps a walk kept of them.
    fn chain() -> (Box<[Frame; 4]>, Vec<Step>) {
        let mut frames = Box::new([Frame::default(); 4]);
        let (a0, a1, a2) = (
            addr(&frames[..], 0),
            addr(&frames[..], 1),
            addr(&frames[..], 2),
        );
        set(&mut frames[0], 0x1000, 0x1100, 0, false);
        set(&mut frames[1], 0x9000, 0x9100, a0, true);
        set(&mut frames[2], 0x2000, 0x2100, a1, false);
        set(&mut frames[3], 0x3000, 0x3100, a2, false);
        let steps = vec![
            step(&frames[..], 0, Link::Direct, 0),
            step(&frames[..], 2, Link::Shim, a0),
            step(&frames[..], 3, Link::Direct, a2),
        ];
        (frames, steps)
    }

    fn check(frames: &[Frame], steps: &[Step]) -> Held {
        let fields = WalkFields::of::<12>();
        let inner = steps[steps.len() - 1].addr;
        assert_eq!(inner, addr(frames, 3));
        // SAFETY: the frames are alive in `frames`, linked as a 3.12 chain.
        unsafe { holds::<12>(&fields, steps, inner) }
    }

    #[test]
    fn a_chain_holds_while_only_its_innermost_frame_moves_on() {
        let (mut frames, steps) = chain();
        assert!(matches!(check(&frames[..], &steps), Held::Yes));
        frames[3].0[7] = 0x3180;
        assert!(matches!(check(&frames[..], &steps), Held::Yes));
    }

    #[test]
    fn another_code_in_the_frame_found_is_not_here_and_a_changed_caller_is_no() {
        let (mut frames, steps) = chain();
        frames[3].0[0] = 0x4000;
        assert!(matches!(check(&frames[..], &steps), Held::NotHere));
        let (mut frames, steps) = chain();
        frames[2].0[7] = 0x2180;
        assert!(matches!(check(&frames[..], &steps), Held::No));
        // The outermost frame runs another code: its instruction pointer lies in that code's
        // bytecode (3.11+ compare places, which name their code).
        let (mut frames, steps) = chain();
        frames[0].0[0] = 0x5000;
        frames[0].0[7] = 0x5100;
        assert!(matches!(check(&frames[..], &steps), Held::No));
    }

    #[test]
    fn on_3_10_another_code_at_the_same_offset_is_no() {
        // 3.10's frames: f_back at 24, f_code at 32, f_lasti (an offset, the same in any code)
        // at 96.
        #[derive(Clone, Copy, Default)]
        #[repr(C, align(8))]
        struct Frame310([usize; 13]);
        let mut frames = Box::new([Frame310::default(); 2]);
        let outer = &frames[0] as *const Frame310 as usize;
        let inner = &frames[1] as *const Frame310 as usize;
        for (f, (code, back)) in frames.iter_mut().zip([(0x1000, 0), (0x2000, outer)]) {
            f.0[3] = back;
            f.0[4] = code;
            f.0[12] = 40;
        }
        let steps = [
            Step::for_check(outer, 0x1000, 40, 0, Link::Direct, 0),
            Step::for_check(inner, 0x2000, 40, outer, Link::Direct, outer),
        ];
        let fields = WalkFields::of::<10>();
        let held = |frames: &[Frame310; 2]| {
            assert_eq!(frames.as_ptr() as usize, outer);
            // SAFETY: the frames are alive in `frames`, linked as a 3.10 chain.
            unsafe { holds::<10>(&fields, &steps, inner) }
        };
        assert!(matches!(held(&frames), Held::Yes));
        frames[0].0[4] = 0x5000;
        assert!(matches!(held(&frames), Held::No));
    }

    #[test]
    fn a_link_through_a_shim_holds_only_through_that_shim() {
        let (mut frames, steps) = chain();
        // The shim is a Python frame now: the link is another.
        frames[1].0[8] = 0;
        assert!(matches!(check(&frames[..], &steps), Held::No));
        let (mut frames, steps) = chain();
        // The shim leads elsewhere (the outermost frame is no longer the caller).
        frames[1].0[1] = 0;
        assert!(matches!(check(&frames[..], &steps), Held::No));
    }

    #[test]
    fn a_step_of_a_code_not_kept_alive_never_holds() {
        let (frames, mut steps) = chain();
        let s = &steps[1];
        let prev = frames[2].0[1];
        steps[1] = Step::for_check(
            s.addr,
            s.code,
            s.place,
            checked_prev(prev, Link::Other),
            Link::Other,
            s.caller,
        );
        assert!(matches!(check(&frames[..], &steps), Held::No));
    }
}
