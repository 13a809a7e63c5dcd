//! One walk: from the walk's own frame out through the tracker's frames (the hook was reached
//! by a jump, so its return address is the allocating call site), then frame by frame to the
//! thread's first one. It reads only the stack window of `bounds` and the mapped unwind tables
//! of the snapshot, stops at code no module covers, and steps over signal frames by reading the
//! interrupted context the kernel saved. It says why it stopped short of the thread's first frame,
//! so that the stack can be marked and its Python frames still placed.

use super::bounds::{self, Window};
use super::loaded::Snapshot;
use super::{Cache, MAX_DEPTH};
use framehop::x86_64::UnwindRegsX86_64;
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

/// What a walk found.
pub struct Walked {
    /// Return addresses written, innermost first (0: the walk did not get out of the tracker).
    pub frames: usize,
    /// Why it stopped before the thread's first frame; None when it reached it.
    pub short: Option<StopsShort>,
}

/// Fills `out` with the return addresses of the allocating code's stack, innermost first (the
/// call site first).
#[inline(never)]
pub fn walk(
    snapshot: &Snapshot,
    cache: &mut Cache,
    thread: &bounds::Stack,
    out: &mut [u64; MAX_DEPTH],
) -> Walked {
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
    let mut walked = Walked {
        frames: 0,
        short: Some(StopsShort::Unwinding),
    };
    let Some(mut window) = bounds::window(thread, sp) else {
        return walked;
    };
    let mut regs = UnwindRegsX86_64::new(ip, sp, bp);
    let mut address = FrameAddress::from_instruction_pointer(ip);
    let mut own = 0;
    let mut last = (0, 0);
    let mut n = 0;
    let mut steps = 0;
    while steps < 2 * MAX_DEPTH + OWN_FRAMES {
        steps += 1;
        let before = regs.sp();
        let mut read = |a: u64| window.read(a);
        let ra = match snapshot
            .unwinder
            .unwind_frame(address, &mut regs, cache, &mut read)
        {
            Ok(Some(ra)) if ra != 0 => ra,
            // The thread's first frame: its caller is undefined (CFI) or its frame pointer 0.
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
            // A signal handler's caller: continue in the interrupted code.
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
        out[n] = ra;
        n += 1;
        let Some(next) = FrameAddress::from_return_address(ra) else {
            break;
        };
        address = next;
    }
    walked.frames = n;
    walked
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
