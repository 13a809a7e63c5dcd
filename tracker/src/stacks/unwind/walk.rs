//! One walk: from the allocating call site when the hook's trampoline gave it (the caller's
//! return address, stack and frame pointers: the registers an unwinder finds there), else from
//! the walk's own frame out through the tracker's frames, then frame by frame to the thread's
//! first one. It reads only the stack window of `bounds` and the mapped unwind tables
//! of the snapshot, stops at code no module covers, and steps over signal frames by reading the
//! interrupted context the kernel saved. It says why it stopped short of the thread's first frame,
//! so that the stack can be marked and its Python frames still placed.
//!
//! From the first frame of the program on, a walk is a function of its registers there, the
//! unwind tables (the snapshot) and the stack words it reads: each thread keeps its last walks'
//! [`Trace`]s, and a walk that reaches the same frame with the same registers as one of them, on
//! a stack whose words read then still hold the same values, ends there with the frames that
//! walk found. A few are kept, not one: allocations alternate between call paths (a Python
//! object and then its buffer, each from its own function), and with one trace every walk of
//! such a loop missed and walked the whole stack.

use super::bounds::{self, Window};
use super::loaded::Snapshot;
use super::{Cache, MAX_DEPTH};
use framehop::x86_64::{Reg, UnwindRegsX86_64};
use framehop::{FrameAddress, Unwinder};
use memtrace_format::StopsShort;

/// Tracker frames between the walk and the hook, at most (a bound, not an expectation).
const OWN_FRAMES: usize = 32;

/// glibc's `__restore_rt`: `mov $15, %rax; syscall` (rt_sigreturn), the return address the
/// kernel gives a signal handler.
const RESTORE_RT: [u8; 9] = [0x48, 0xc7, 0xc0, 0x0f, 0x00, 0x00, 0x00, 0x0f, 0x05];
/// In the `ucontext_t` a signal frame starts with: `uc_mcontext.gregs` and the slots of rbp,
/// rsp and rip in it (REG_RBP, REG_RSP, REG_RIP).
const GREGS: u64 = 40;
const REG_RBP: u64 = 10;
const REG_RSP: u64 = 15;
const REG_RIP: u64 = 16;

/// Stack words a trace keeps, at most (a walk reads one or two a frame).
const MAX_READS: usize = 4 * MAX_DEPTH;

/// Walks a thread keeps (see the module's doc).
pub const TRACES: usize = 8;

/// A thread's last walks; zeroed memory holds none.
pub struct Traces {
    traces: [Trace; TRACES],
    /// Counts the walks kept and given again: each trace notes the count at its last use.
    uses: u64,
}

impl Traces {
    /// The trace a new walk records into: the least recently used. Not the one from the same
    /// first frame with the same registers: the frames outside may differ (one function that
    /// allocates, called from several), and each of those paths needs a trace of its own.
    fn victim(&self) -> usize {
        let mut oldest = 0;
        for (i, t) in self.traces.iter().enumerate() {
            if t.used < self.traces[oldest].used {
                oldest = i;
            }
        }
        oldest
    }

    /// The stack id trace `i`'s frames were interned as alone in `epoch`, if known.
    pub fn interned(&self, i: usize, epoch: u64) -> Option<u64> {
        let t = &self.traces[i];
        (t.interned_stack != 0 && t.interned_epoch == epoch).then_some(t.interned_stack)
    }

    /// Notes that trace `i`'s frames were interned alone as `stack` in `epoch`.
    pub fn set_interned(&mut self, i: usize, epoch: u64, stack: u64) {
        let t = &mut self.traces[i];
        (t.interned_stack, t.interned_epoch) = (stack, epoch);
    }

    /// Notes that trace `i` was used now.
    fn use_trace(&mut self, i: usize) {
        self.uses += 1;
        self.traces[i].used = self.uses;
    }

    /// Whether a walk from the first frame `first` with `regs` missed one of the traces by the
    /// frame pointer alone, while whether its first step depends on it is not known yet.
    fn missed_by_bp(&self, snapshot: usize, first: u64, regs: &UnwindRegsX86_64) -> bool {
        self.traces
            .iter()
            .any(|t| t.missed_by_bp(snapshot, first, regs))
    }

    /// What a trace learnt of the rule at the first frame `first` (see `Trace::bp_free`): a
    /// property of that code, which every walk from there shares.
    fn learnt(&self, snapshot: usize, first: u64) -> Option<bool> {
        self.traces
            .iter()
            .find(|t| t.bp_checked && t.snapshot == snapshot && t.first == first)
            .map(|t| t.bp_free)
    }
}

/// A walk of a thread from the first frame of the program out: where it started, what it read,
/// what it found. All zero bytes are a trace that matches nothing.
pub struct Trace {
    /// The walk is whole and its frames may be given again.
    valid: bool,
    /// `Traces::uses` when it was last kept or given again (0: never).
    used: u64,
    /// Its frames (return addresses, innermost first): `frames` of them.
    pcs: [u64; MAX_DEPTH],
    /// The stack id its frames were interned as alone (no Python frames, not cut short), and
    /// the stack epoch then; 0: not known (stack ids start at 1).
    interned_stack: u64,
    interned_epoch: u64,
    /// The snapshot it used (snapshots are never freed: an address names one).
    snapshot: usize,
    /// The first frame's return address and the registers there.
    first: u64,
    regs: UnwindRegsX86_64,
    reads: [(u64, u64); MAX_READS],
    len: usize,
    frames: usize,
    /// `StopsShort::address` of why it stopped, 0 when it reached the thread's first frame.
    short: u64,
    /// The first frame's unwind step: the return address and the (sp, bp) it gave, and how
    /// many of `reads` it made (0: none recorded; a step reads a return address at least).
    step: (u64, u64, u64),
    steps: usize,
    /// That step is known not to depend on the frame pointer at the first frame (its rule
    /// restores it from the stack without reading it): the walk is a function of the other
    /// registers and the words read, so the frame pointer is not compared. Code built without
    /// frame pointers uses it as a general register, a new value at every call. A rule belongs
    /// to a code address: this holds for every trace from the same first frame and snapshot.
    bp_free: bool,
    /// Whether that was checked, either way (also a property of the first frame's rule): a rule
    /// that reads through the frame pointer is not checked again at every walk.
    bp_checked: bool,
    /// `regs` are the ones a walk from a call site starts with (the return address, the stack
    /// and frame pointers, every other register 0): [`again`] compares those three alone.
    at_site: bool,
    /// The lowest and highest address in `reads` (set when the trace is kept): one bounds check
    /// of the window for them all.
    span: (u64, u64),
}

impl Trace {
    /// Whether a walk at the first frame `first` with `regs` would find what this one found.
    fn matches(
        &self,
        snapshot: usize,
        first: u64,
        regs: &UnwindRegsX86_64,
        window: &Window,
    ) -> bool {
        self.valid
            && self.snapshot == snapshot
            && self.first == first
            && same_regs(&self.regs, regs, !self.bp_free)
            && self.reads_hold(window)
    }

    /// A walk from `first` with `regs` has the registers of this trace but another frame pointer,
    /// and whether the first step depends on it is not known yet.
    fn missed_by_bp(&self, snapshot: usize, first: u64, regs: &UnwindRegsX86_64) -> bool {
        self.valid
            && !self.bp_checked
            && self.snapshot == snapshot
            && self.first == first
            && self.regs.bp() != regs.bp()
            && same_regs(&self.regs, regs, false)
    }

    /// Its walk again: its frames copied into `out`; `index`: its place among the traces.
    fn walked(&self, index: usize, out: &mut [u64; MAX_DEPTH]) -> Walked {
        let n = self.frames.min(MAX_DEPTH);
        out[..n].copy_from_slice(&self.pcs[..n]);
        Walked {
            frames: self.frames,
            short: StopsShort::from_address(self.short),
            trace: Some(index),
        }
    }

    /// Starts recording a walk at the first frame.
    fn start(&mut self, snapshot: usize, first: u64, regs: &UnwindRegsX86_64) {
        let same_rule = self.snapshot == snapshot && self.first == first;
        self.bp_free &= same_rule;
        self.bp_checked &= same_rule;
        self.valid = false;
        self.interned_stack = 0;
        self.snapshot = snapshot;
        self.first = first;
        self.regs = *regs;
        self.at_site = *regs == UnwindRegsX86_64::new(first, regs.sp(), regs.bp());
        self.len = 0;
        self.steps = 0;
    }

    /// Whether the stack words the trace read still hold the values read, all of them inside
    /// `window`: what comparing each read through `window.read` finds, with one bounds check.
    #[inline(always)]
    fn reads_hold(&self, window: &Window) -> bool {
        let reads = &self.reads[..self.len.min(MAX_READS)];
        reads.is_empty() || window.holds(self.span, reads)
    }

    /// A stack word read by the walk being recorded; false when the trace has no room left.
    fn note(&mut self, a: u64, v: u64) -> bool {
        let Some(slot) = self.reads.get_mut(self.len) else {
            return false;
        };
        *slot = (a, v);
        self.len += 1;
        true
    }
}

/// Every register but the instruction pointer and the frame pointer.
const REGS: [Reg; 15] = [
    Reg::RSP,
    Reg::RAX,
    Reg::RDX,
    Reg::RCX,
    Reg::RBX,
    Reg::RSI,
    Reg::RDI,
    Reg::R8,
    Reg::R9,
    Reg::R10,
    Reg::R11,
    Reg::R12,
    Reg::R13,
    Reg::R14,
    Reg::R15,
];

/// `a` and `b` hold the same registers (the frame pointer only `with_bp`), compared in place
/// without branches (a whole-struct comparison is a call to memcmp).
#[inline]
fn same_regs(a: &UnwindRegsX86_64, b: &UnwindRegsX86_64, with_bp: bool) -> bool {
    let mut diff = a.ip() ^ b.ip();
    for r in REGS {
        diff |= a.get(r) ^ b.get(r);
    }
    if with_bp {
        diff |= a.bp() ^ b.bp();
    }
    diff == 0
}

/// What a walk found.
pub struct Walked {
    /// Return addresses written, innermost first (0: the walk did not get out of the tracker).
    pub frames: usize,
    /// Why it stopped before the thread's first frame; None when it reached it.
    pub short: Option<StopsShort>,
    /// The trace that holds these frames: the one they were given again from, or the one the
    /// walk was just kept as; None when the walk was not kept.
    pub trace: Option<usize>,
}

/// The registers where a walk starts, and the call site's return address when it starts there.
/// `site`: the address of the caller's frame pointer and return address pushed by the hook's
/// trampoline (tls `call_site`), or 0.
#[inline(always)]
fn start(site: u64) -> (u64, u64, u64, Option<u64>) {
    if site != 0 {
        // SAFETY: two words the trampoline pushed on this thread's stack, there until the hook
        // that is recording returns.
        let [bp, ra] = unsafe { *(site as *const [u64; 2]) };
        // After the caller's `call`: its stack pointer is just above the return address.
        return (ra, site + 16, bp, Some(ra));
    }
    let (ip, sp, bp): (u64, u64, u64);
    // SAFETY: reads three registers; touches no memory.
    unsafe {
        core::arch::asm!(
            "lea {ip}, [rip]",
            "mov {sp}, rsp",
            "mov {bp}, rbp",
            ip = out(reg) ip,
            sp = out(reg) sp,
            bp = out(reg) bp,
            options(nomem, nostack, preserves_flags)
        );
    }
    (ip, sp, bp, None)
}

/// An earlier walk's frames again (copied into `out`), when a walk from the call site `site`
/// would give them: what [`walk`] finds at the call site's frame, without its set-up. None when
/// it would not (or `site` is 0): the caller walks.
#[inline]
pub fn again(
    snapshot: &Snapshot,
    thread: &bounds::Stack,
    traces: &mut Traces,
    out: &mut [u64; MAX_DEPTH],
    site: u64,
) -> Option<Walked> {
    if site == 0 {
        return None;
    }
    let (ip, sp, bp, _) = start(site);
    // `walk` follows a return address into the tracker's own code: no first frame there.
    if snapshot.is_own(ip) {
        return None;
    }
    let window = bounds::window(thread, sp)?;
    let snapshot_id = snapshot as *const Snapshot as usize;
    for (i, trace) in traces.traces.iter().enumerate() {
        if !trace.valid || !trace.at_site {
            continue;
        }
        // The registers `walk` compares at the call site: (ip, sp, bp), every other one 0,
        // against a trace whose other registers are 0 (`at_site`).
        let diff = (trace.first ^ ip)
            | (trace.regs.ip() ^ ip)
            | (trace.regs.sp() ^ sp)
            | ((trace.regs.bp() ^ bp) * u64::from(!trace.bp_free))
            | (trace.snapshot ^ snapshot_id) as u64;
        if diff == 0 && trace.reads_hold(&window) {
            let walked = trace.walked(i, out);
            traces.use_trace(i);
            return Some(walked);
        }
    }
    None
}

/// Fills `out` with the return addresses of the allocating code's stack, innermost first (the
/// call site first); `site` as for [`start`].
#[inline(never)]
pub fn walk(
    snapshot: &Snapshot,
    cache: &mut Cache,
    thread: &bounds::Stack,
    out: &mut [u64; MAX_DEPTH],
    traces: &mut Traces,
    site: u64,
) -> Walked {
    let (ip, sp, bp, mut call_site) = start(site);
    let mut walked = Walked {
        frames: 0,
        short: Some(StopsShort::Unwinding),
        trace: None,
    };
    // The trace this walk records into, once its first frame is known.
    let mut into = 0;
    let Some(mut window) = bounds::window(thread, sp) else {
        return walked;
    };
    let mut regs = UnwindRegsX86_64::new(ip, sp, bp);
    let mut address = FrameAddress::from_instruction_pointer(ip);
    let mut own = 0;
    let mut last = (0, 0);
    let mut n = 0;
    let mut steps = 0;
    let snapshot_id = snapshot as *const Snapshot as usize;
    // Recording into `trace` (from the first frame of the program on), and whether every word
    // read was kept: a walk that read past the trace's room, or left its window, is not kept.
    let mut recording = false;
    let mut kept = true;
    // A trace from here missed by the frame pointer alone: this walk's first step is
    // checked for depending on it.
    let mut bp_varies = false;
    while steps < 2 * MAX_DEPTH + OWN_FRAMES {
        steps += 1;
        // The call site given: `regs` are already its caller's.
        let ra = match call_site.take() {
            Some(ra) => ra,
            None => {
                let before = regs.sp();
                let trace = &mut traces.traces[into];
                let mut read = |a: u64| {
                    let r = window.read(a);
                    if recording {
                        kept &= r.is_ok_and(|v| trace.note(a, v));
                    }
                    r
                };
                let ra = match snapshot
                    .unwinder
                    .unwind_frame(address, &mut regs, cache, &mut read)
                {
                    Ok(Some(ra)) if ra != 0 => ra,
                    // The thread's first frame: its caller is undefined (CFI) or its frame
                    // pointer 0.
                    Ok(_) => {
                        walked.short = None;
                        break;
                    }
                    Err(_) => break,
                };
                // Every frame lies above the one it called: anything else is a broken chain.
                if regs.sp() <= before {
                    break;
                }
                if recording && trace.steps == 0 {
                    trace.step = (ra, regs.sp(), regs.bp());
                    trace.steps = trace.len;
                }
                ra
            }
        };
        // The tracker's frames: the walk's way out of the hook, and the wrappers of the
        // program's entry points (main's, thread start's): followed, never shown.
        if snapshot.is_own(ra) {
            own += 1;
            if n == 0 && own > OWN_FRAMES {
                return walked;
            }
            let Some(next) = FrameAddress::from_return_address(ra) else {
                break;
            };
            address = next;
            continue;
        }
        // A frame beyond the ones kept: the stack is deeper.
        if n == MAX_DEPTH {
            walked.short = Some(StopsShort::TooDeep);
            break;
        }
        // The first frame of the program: an earlier walk's frames, if it read the same (found
        // in known code and not a signal frame then, in this same snapshot).
        if n == 0 {
            for (i, trace) in traces.traces.iter().enumerate() {
                if trace.matches(snapshot_id, ra, &regs, &window) {
                    let walked = trace.walked(i, out);
                    traces.use_trace(i);
                    return walked;
                }
            }
        }
        // Most frames of a stack are in the module of the frame before: look that one up first.
        let code = if last.0 <= ra && ra < last.1 {
            Some(last)
        } else {
            snapshot.code_of(ra)
        };
        let Some(code) = code else {
            // JIT or other code no module covers: it has no unwind tables to follow.
            out[n] = ra;
            n += 1;
            walked.short = Some(StopsShort::UnknownCode);
            break;
        };
        last = code;
        if code == snapshot.libc && is_restore_rt(ra, code) {
            // A signal handler's caller: continue in the interrupted code (reading another
            // stack window: such a walk is not kept).
            kept = false;
            let Some((pc, next)) = interrupted(&window, thread, regs.sp(), &mut regs) else {
                break;
            };
            window = next;
            // Recorded as a return address (reports look up `address - 1`).
            out[n] = pc.wrapping_add(1);
            n += 1;
            address = FrameAddress::from_instruction_pointer(pc);
            continue;
        }
        if n == 0 {
            into = traces.victim();
            let learnt = traces.learnt(snapshot_id, ra);
            bp_varies = traces.missed_by_bp(snapshot_id, ra, &regs);
            let trace = &mut traces.traces[into];
            trace.start(snapshot_id, ra, &regs);
            if let Some(free) = learnt {
                (trace.bp_free, trace.bp_checked) = (free, true);
            }
            recording = true;
        }
        out[n] = ra;
        n += 1;
        let Some(next) = FrameAddress::from_return_address(ra) else {
            break;
        };
        address = next;
    }
    walked.frames = n;
    // Unknown code may be a module loaded since the snapshot: the caller walks again. A walk
    // cut by the bound on steps depended on the frames before the first one too.
    let cut = steps >= 2 * MAX_DEPTH + OWN_FRAMES;
    if recording && kept && !cut && walked.short != Some(StopsShort::UnknownCode) {
        let trace = &mut traces.traces[into];
        trace.valid = true;
        trace.span = span(&trace.reads[..trace.len]);
        trace.pcs[..n].copy_from_slice(&out[..n]);
        trace.frames = n;
        walked.trace = Some(into);
        trace.short = walked.short.map_or(0, StopsShort::address);
        if bp_varies {
            if let Some(free) = first_step_ignores_bp(snapshot, cache, &window, trace) {
                (trace.bp_free, trace.bp_checked) = (free, true);
            }
        }
        traces.use_trace(into);
    }
    walked
}

/// The lowest and highest address of `reads` ((0, 0) when there are none).
fn span(reads: &[(u64, u64)]) -> (u64, u64) {
    let lo = reads.iter().map(|&(a, _)| a).min().unwrap_or(0);
    let hi = reads.iter().map(|&(a, _)| a).max().unwrap_or(0);
    (lo, hi)
}

/// Whether the trace's first unwind step gives the same return address, registers and reads
/// from another frame pointer. framehop's rules either restore the frame pointer from the stack
/// without reading it, or use it (as the address of a read: UseFramePointer and the like; kept
/// as the caller's: JustReturn, OffsetSp), and a rule that uses it gives another read or
/// another frame pointer from another value, so a step that gives the same from two nonzero
/// values does not depend on it at all. None when this trace cannot tell (its frame pointer is
/// 0, its first step was not recorded): a later one is asked.
fn first_step_ignores_bp(
    snapshot: &Snapshot,
    cache: &mut Cache,
    window: &Window,
    trace: &Trace,
) -> Option<bool> {
    let (ra, sp, bp) = trace.step;
    let own = trace.regs.bp();
    // Another nonzero value (own ^ 1 is 0 for 1).
    let other = if own == 1 { 3 } else { own ^ 1 };
    if trace.steps == 0 || own == 0 {
        return None;
    }
    let address = FrameAddress::from_return_address(trace.first)?;
    // The words the step read, in order.
    let expected = trace.reads.get(..trace.steps)?;
    let mut at = 0;
    let mut read = |a: u64| match window.read(a) {
        Ok(v) if expected.get(at) == Some(&(a, v)) => {
            at += 1;
            Ok(v)
        }
        _ => Err(()),
    };
    let mut regs = trace.regs;
    regs.set_bp(other);
    let step = snapshot
        .unwinder
        .unwind_frame(address, &mut regs, cache, &mut read);
    Some(
        matches!(step, Ok(Some(r)) if r == ra)
            && regs.sp() == sp
            && regs.bp() == bp
            && at == expected.len(),
    )
}

/// Whether `ra` (inside the module code range `code`) is glibc's signal return trampoline.
fn is_restore_rt(ra: u64, (_, end): (u64, u64)) -> bool {
    if ra.saturating_add(RESTORE_RT.len() as u64) > end {
        return false;
    }
    // SAFETY: [ra, ra + 9) lies in the code segment of a loaded module: mapped and readable.
    let code = unsafe { core::slice::from_raw_parts(ra as *const u8, RESTORE_RT.len()) };
    code == RESTORE_RT
}

/// The interrupted context of the signal frame at `sp` (the handler's caller's stack pointer:
/// the `ucontext_t`): its pc, with `regs` set to its sp and rbp, and the window of its stack.
fn interrupted(
    window: &Window,
    thread: &bounds::Stack,
    sp: u64,
    regs: &mut UnwindRegsX86_64,
) -> Option<(u64, Window)> {
    let greg = |r: u64| window.read(sp + GREGS + 8 * r).ok();
    let (pc, new_sp, bp) = (greg(REG_RIP)?, greg(REG_RSP)?, greg(REG_RBP)?);
    if pc == 0 {
        return None;
    }
    let next = bounds::window(thread, new_sp)?;
    *regs = UnwindRegsX86_64::new(pc, new_sp, bp);
    Some((pc, next))
}
