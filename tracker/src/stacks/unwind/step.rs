//! The unwind rule of allocator wrappers' code (stacks/wrappers.rs): at each return address
//! inside a wrapper, how far above the return address's slot the return address of the
//! wrapper's own caller lies. Read once, from the modules' `.eh_frame`, at the start of a
//! capture, so that the hooks look a distance up and never unwind.

use super::loaded;
use super::Cache;
use framehop::x86_64::UnwindRegsX86_64;
use framehop::{FrameAddress, Unwinder};

/// A stack pointer the rules are evaluated at (no stack is read: any address does).
const SP: u64 = 1 << 40;
/// The most a wrapper's frame is taken to hold (a distance fits a byte).
const REACH: u64 = 256;

/// Fills `out[i]` with the distance, for a return address at `start + i`, from its slot to the
/// slot of the return address of its function's caller: 0 where the rule gives none (a rule
/// through the frame pointer, or code no module's tables cover). False when the modules' tables
/// could not be read.
pub fn distances(start: u64, out: &mut [u8]) -> bool {
    let mut walks = 0;
    let Some(snapshot) = loaded::current(&mut walks) else {
        return false;
    };
    let mut cache = Cache::new_in();
    for (i, d) in out.iter_mut().enumerate() {
        *d = 0;
        let pc = start + i as u64;
        let Some(address) = FrameAddress::from_return_address(pc) else {
            continue;
        };
        // The return address's slot is at SP - 8 (the hook's frame below it); a frame pointer
        // of 0 makes a rule that reads through it fail.
        let mut regs = UnwindRegsX86_64::new(pc, SP, 0);
        // Every word of the frame reads as a plausible return address.
        let mut read = |a: u64| {
            if (SP..SP + REACH).contains(&a) {
                Ok(1)
            } else {
                Err(())
            }
        };
        if let Ok(Some(_)) = snapshot
            .unwinder
            .unwind_frame(address, &mut regs, &mut cache, &mut read)
        {
            // The caller's return address lies just below the frame's CFA, the new stack
            // pointer: that far above the slot at SP - 8.
            let distance = regs.sp().wrapping_sub(8).wrapping_sub(SP - 8);
            if regs.sp() > SP && distance < REACH {
                *d = distance as u8;
            }
        }
    }
    true
}
