//! The real callers of a thread stopped in the C library, read from the library's unwind tables
//! (`.eh_frame`): whether a thread waiting in a system call is under the allocator.
//!
//! Looking for return addresses into the allocator among the top words of the stack also finds
//! stale ones: a slot of a live frame that no one wrote since an earlier call of `free` went
//! deeper. A Python program sleeping in a loop kept `free+111` 224 bytes above its stack pointer
//! for good, and one attach in two waited the whole patience and gave up. Unwinding reads only
//! the frames' return addresses. The allocator calls nothing outside the C library, so the
//! frames from the stop out to the first one outside it are all that can be under it.
//!
//! Each step follows the tables or gives up (no guess from the frame pointer, which the C
//! library uses as a plain register): a walk that cannot tell leaves the question to the scan.

use gimli::{
    BaseAddresses, CfaRule, EhFrame, EhFrameHdr, NativeEndian, RegisterRule, UnwindContext,
    UnwindSection, X86_64,
};
use object::{Object, ObjectSection};

/// Frames the walk follows at most inside the C library.
const MAX_FRAMES: usize = 64;

pub struct LibcFrames {
    eh_frame: Vec<u8>,
    eh_frame_svma: u64,
    eh_frame_hdr: Vec<u8>,
    eh_frame_hdr_svma: u64,
    /// Where the file's addresses are in the process (the load bias).
    base: u64,
    /// The library's code in the process.
    code: Vec<(u64, u64)>,
}

impl LibcFrames {
    /// The tables of the C library whose file is `data`, its addresses moved by `base` in the
    /// process and its code at `code`; None without them (a binary search table too).
    pub fn new(data: &[u8], base: u64, code: Vec<(u64, u64)>) -> Option<LibcFrames> {
        let obj = object::File::parse(data).ok()?;
        let section = |name: &str| {
            let s = obj.section_by_name(name)?;
            Some((s.address(), s.data().ok()?.to_vec()))
        };
        let (eh_frame_svma, eh_frame) = section(".eh_frame")?;
        let (eh_frame_hdr_svma, eh_frame_hdr) = section(".eh_frame_hdr")?;
        Some(LibcFrames {
            eh_frame,
            eh_frame_svma,
            eh_frame_hdr,
            eh_frame_hdr_svma,
            base,
            code,
        })
    }

    /// The return addresses of the frames of a thread stopped at `rip` (stack pointer `rsp`,
    /// frame pointer `rbp` when known), from its caller's out to the first one outside the C
    /// library;
    /// `read` reads a word of its stack. None when the tables cannot tell (a frame without an
    /// entry or with a rule this walk does not follow, a word not read, too many frames).
    pub fn callers(
        &self,
        (rip, rsp, rbp): (u64, u64, Option<u64>),
        mut read: impl FnMut(u64) -> Option<u64>,
    ) -> Option<Vec<u64>> {
        let eh_frame = EhFrame::new(&self.eh_frame, NativeEndian);
        let bases = BaseAddresses::default()
            .set_eh_frame(self.eh_frame_svma)
            .set_eh_frame_hdr(self.eh_frame_hdr_svma);
        let hdr = EhFrameHdr::new(&self.eh_frame_hdr, NativeEndian)
            .parse(&bases, 8)
            .ok()?;
        let table = hdr.table()?;
        let mut context = Box::new(UnwindContext::new());
        let (mut sp, mut bp) = (rsp, rbp);
        // The stop's own instruction is looked up as it is; a return address, one byte before
        // (its call's last byte: a call that ends a function returns past it).
        let mut lookup = rip;
        let mut callers = Vec::new();
        for _ in 0..MAX_FRAMES {
            let svma = lookup.checked_sub(self.base)?;
            let fde = table
                .fde_for_address(&eh_frame, &bases, svma, EhFrame::cie_from_offset)
                .ok()?;
            let row = fde
                .unwind_info_for_address(&eh_frame, &bases, &mut context, svma)
                .ok()?;
            let cfa = match row.cfa() {
                CfaRule::RegisterAndOffset { register, offset } => {
                    let value = match *register {
                        X86_64::RSP => sp,
                        X86_64::RBP => bp?,
                        _ => return None,
                    };
                    value.checked_add_signed(*offset)?
                }
                CfaRule::Expression(_) => return None,
            };
            let at =
                |rule: RegisterRule<usize>, read: &mut dyn FnMut(u64) -> Option<u64>| match rule {
                    RegisterRule::Offset(o) => read(cfa.checked_add_signed(o)?),
                    _ => None,
                };
            let ret = at(row.register(X86_64::RA)?, &mut read)?;
            bp = match row.register(X86_64::RBP) {
                None | Some(RegisterRule::SameValue) => bp,
                Some(rule) => at(rule, &mut read),
            };
            sp = cfa;
            callers.push(ret);
            if !self.in_library(ret) {
                return Some(callers);
            }
            lookup = ret.checked_sub(1)?;
        }
        None
    }

    fn in_library(&self, address: u64) -> bool {
        self.code.iter().any(|&(s, e)| s <= address && address < e)
    }
}
