//! One step out of a single frame, for the allocator wrappers (stacks/wrappers.rs): how far
//! above a return address's slot the return address of its own function's caller lies.

use super::{loaded, Cache};
use crate::lock::SpinLock;
use framehop::x86_64::UnwindRegsX86_64;
use framehop::{FrameAddress, Unwinder};

/// framehop's rule cache for these steps (taken once per wrapper's call site, not per event).
static CACHE: SpinLock<Option<Cache>> = SpinLock::new(None);

/// Bytes above the slot a step may read: a wrapper's frame is a few words.
const REACH: u64 = 1024;

/// For the return address `pc`, held at the stack slot `slot` of this thread: the distance from
/// `slot` up to the slot of the return address of `pc`'s function, when its unwind rule puts
/// that at a fixed distance from the stack pointer (a rule through the frame pointer differs
/// from call to call: None, as for code no module's tables cover).
pub fn distance_to_caller(pc: u64, slot: u64) -> Option<u64> {
    let mut walks = 0;
    let snapshot = loaded::current(&mut walks)?;
    let address = FrameAddress::from_return_address(pc)?;
    let sp = slot.checked_add(8)?;
    let mut cache = CACHE.lock();
    let cache = cache.get_or_insert_with(Cache::new_in);
    // A frame pointer of 0: a rule that reads through it fails (the read is out of reach).
    let mut regs = UnwindRegsX86_64::new(pc, sp, 0);
    let mut read = |a: u64| {
        if a >= slot && a < slot + REACH && a.is_multiple_of(8) {
            // SAFETY: a word of this thread's stack just above the hook's call site, inside
            // the frames that called it (a wrapper's), which are live while the hook runs.
            Ok(unsafe { core::ptr::read_volatile(a as *const u64) })
        } else {
            Err(())
        }
    };
    match snapshot
        .unwinder
        .unwind_frame(address, &mut regs, cache, &mut read)
    {
        Ok(Some(ra)) if ra != 0 && regs.sp() > sp => Some(regs.sp() - 8 - slot),
        _ => None,
    }
}
