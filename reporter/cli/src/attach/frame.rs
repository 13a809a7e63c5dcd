//! The signal frame an injected call returns through: the call's return address is the C
//! library's signal return code (`mov $15, %rax; syscall`: `rt_sigreturn`), and above it lies a
//! frame as the kernel writes for a signal handler, holding the thread's registers as they are
//! to go on (restart of an interrupted system call applied), its signal mask and its whole
//! floating-point and vector state. So the thread returns by itself to exactly where it was
//! stopped, every register and flag as it was, even when memtrace is no longer there to put them
//! back (killed, or giving up on a call that waits for a lock). While memtrace is there it
//! stops the thread at that `rt_sigreturn` and puts the registers back itself (see ptrace.rs).
//!
//! The layout is the kernel's x86-64 `struct rt_sigframe` after its return address:
//! `struct ucontext` (flags, link, `stack_t`, `struct sigcontext`, the signal mask), then the
//! `siginfo` (unused by `rt_sigreturn`), with the `fpstate` the sigcontext points to above it,
//! 64-byte aligned for `xrstor`.

/// `struct ucontext`'s size: flags 8, link 8, stack_t 24, sigcontext 256, mask 8.
pub const UCONTEXT_SIZE: usize = 304;
/// `siginfo_t`'s size, kept above the ucontext as in a kernel-made frame.
pub const SIGINFO_SIZE: usize = 128;
/// Where the sigcontext starts in the ucontext.
const SIGCONTEXT: usize = 40;

/// `uc_flags`: the fpstate is in xsave format; the sigcontext's ss is to be restored as it is.
const UC_FP_XSTATE: u64 = 0x1;
const UC_SIGCONTEXT_SS: u64 = 0x2;
const UC_STRICT_RESTORE_SS: u64 = 0x4;

/// The xsave area's software bytes (offset 464 of its legacy part) begin with this when the
/// area is larger than the 512-byte fxsave image; its end carries `FP_XSTATE_MAGIC2`.
const FP_XSTATE_MAGIC1: u32 = 0x4650_5853;
const FP_XSTATE_MAGIC2: u32 = 0x4650_5845;
const SW_BYTES: usize = 464;

/// The `stack_t` written into the frame has an invalid `ss_flags` (3 is neither 0, SS_ONSTACK
/// nor SS_DISABLE): `rt_sigreturn` then leaves the thread's alternate signal stack as it is
/// (it ignores every error but a fault), where any valid value would replace it.
const SS_FLAGS_KEEP: u32 = 3;

/// The thread's floating-point and vector state as ptrace gives it: the xsave area
/// (`NT_X86_XSTATE`) or, without xsave, the 512-byte fxsave image.
#[derive(Clone, Debug)]
pub struct FpuState {
    pub bytes: Vec<u8>,
    pub xsave: bool,
}

impl FpuState {
    /// The fpstate to put in the frame: the xsave area with the software bytes the kernel puts
    /// in a signal frame (magic, sizes, features) and its closing magic, or without xsave the
    /// fxsave image alone. ptrace's copy carries the enabled features (XCR0) in the first word
    /// of those bytes, not a frame's: a frame without them restores the x87 and SSE state only
    /// and resets the rest (AVX's upper halves were lost so).
    fn for_frame(&self) -> (Vec<u8>, bool) {
        if !self.xsave || self.bytes.len() < 576 {
            let mut b = self.bytes[..512.min(self.bytes.len())].to_vec();
            b.resize(512, 0);
            b[SW_BYTES..512].fill(0);
            return (b, false);
        }
        let size = self.bytes.len();
        let xcr0 = u64::from_ne_bytes(
            self.bytes[SW_BYTES..SW_BYTES + 8]
                .try_into()
                .unwrap_or([0; 8]),
        );
        let mut b = self.bytes.clone();
        b[SW_BYTES..512].fill(0);
        // struct _fpx_sw_bytes: magic1, extended_size, xfeatures, xstate_size.
        b[SW_BYTES..SW_BYTES + 4].copy_from_slice(&FP_XSTATE_MAGIC1.to_ne_bytes());
        b[SW_BYTES + 4..SW_BYTES + 8].copy_from_slice(&((size + 4) as u32).to_ne_bytes());
        b[SW_BYTES + 8..SW_BYTES + 16].copy_from_slice(&xcr0.to_ne_bytes());
        b[SW_BYTES + 16..SW_BYTES + 20].copy_from_slice(&(size as u32).to_ne_bytes());
        b.extend_from_slice(&FP_XSTATE_MAGIC2.to_ne_bytes());
        (b, true)
    }
}

/// The registers a frame restores (x86-64 `user_regs_struct` fields by name).
#[derive(Clone, Copy, Debug, Default)]
pub struct Registers {
    pub r8: u64,
    pub r9: u64,
    pub r10: u64,
    pub r11: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rbp: u64,
    pub rbx: u64,
    pub rdx: u64,
    pub rax: u64,
    pub rcx: u64,
    pub rsp: u64,
    pub rip: u64,
    pub eflags: u64,
    pub cs: u64,
    pub ss: u64,
}

/// A frame laid out below `top` (exclusive), ready to be written at `start`.
pub struct Frame {
    /// Where the bytes go: the stack pointer at the function's entry (its return address).
    pub start: u64,
    pub bytes: Vec<u8>,
    /// The stack pointer at the `rt_sigreturn` (just above the return address): how the
    /// tracer knows the call's own return from any other.
    pub sigreturn_sp: u64,
}

/// Lays out the frame below `top` (16-byte aligned, strings and result words above it):
/// return address `restorer`, then the ucontext restoring `regs`, `mask`, `fpu`.
pub fn build(top: u64, restorer: u64, regs: &Registers, mask: u64, fpu: &FpuState) -> Frame {
    let (fpstate, xsave) = fpu.for_frame();
    let fpstate_at = (top - fpstate.len() as u64) & !63;
    let uc_at = fpstate_at - SIGINFO_SIZE as u64 - UCONTEXT_SIZE as u64;
    let start = uc_at - 8;
    let mut bytes = vec![0u8; (top - start) as usize];
    let mut put = |at: u64, value: &[u8]| {
        let i = (at - start) as usize;
        bytes[i..i + value.len()].copy_from_slice(value);
    };
    put(start, &restorer.to_ne_bytes());
    let flags = UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS | if xsave { UC_FP_XSTATE } else { 0 };
    put(uc_at, &flags.to_ne_bytes());
    // uc_stack: ss_sp (8), ss_flags (4, then 4 of padding), ss_size (8).
    put(uc_at + 24, &SS_FLAGS_KEEP.to_ne_bytes());
    let sc = uc_at + SIGCONTEXT as u64;
    let ordered = [
        regs.r8,
        regs.r9,
        regs.r10,
        regs.r11,
        regs.r12,
        regs.r13,
        regs.r14,
        regs.r15,
        regs.rdi,
        regs.rsi,
        regs.rbp,
        regs.rbx,
        regs.rdx,
        regs.rax,
        regs.rcx,
        regs.rsp,
        regs.rip,
        regs.eflags,
    ];
    for (i, v) in ordered.iter().enumerate() {
        put(sc + 8 * i as u64, &v.to_ne_bytes());
    }
    // cs, gs, fs, ss as 16-bit fields (gs and fs are not restored on x86-64).
    put(sc + 144, &(regs.cs as u16).to_ne_bytes());
    put(sc + 150, &(regs.ss as u16).to_ne_bytes());
    // err, trapno, oldmask, cr2 stay 0; then the fpstate pointer.
    put(sc + 184, &fpstate_at.to_ne_bytes());
    put(uc_at + 296, &mask.to_ne_bytes());
    put(fpstate_at, &fpstate);
    Frame {
        start,
        bytes,
        sigreturn_sp: uc_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u64_at(f: &Frame, at: u64) -> u64 {
        let i = (at - f.start) as usize;
        u64::from_ne_bytes(f.bytes[i..i + 8].try_into().unwrap())
    }

    #[test]
    fn the_frame_is_where_rt_sigreturn_reads_it() {
        let regs = Registers {
            r8: 8,
            r15: 15,
            rdi: 100,
            rax: 0xaa,
            rsp: 0x7fff_0000_1000,
            rip: 0x40_1234,
            eflags: 0x246,
            cs: 0x33,
            ss: 0x2b,
            ..Registers::default()
        };
        // As ptrace gives it: the enabled features (x87, SSE, AVX) in the first software word.
        let mut xsave = vec![0u8; 832];
        xsave[SW_BYTES..SW_BYTES + 8].copy_from_slice(&0x7u64.to_ne_bytes());
        xsave[0] = 0x7f;
        let fpu = FpuState {
            bytes: xsave,
            xsave: true,
        };
        let top = 0x7fff_0000_0c00;
        let f = build(top, 0x7000_0000_0042, &regs, 0x5, &fpu);
        // The function's entry: rsp + 8 is 16-byte aligned, as after a call.
        assert_eq!((f.start + 8) % 16, 0);
        assert_eq!(f.start + f.bytes.len() as u64, top);
        assert_eq!(u64_at(&f, f.start), 0x7000_0000_0042);
        let uc = f.sigreturn_sp;
        assert_eq!(uc, f.start + 8);
        assert_eq!(
            u64_at(&f, uc),
            UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS | UC_FP_XSTATE
        );
        let sc = uc + 40;
        assert_eq!(u64_at(&f, sc), 8);
        assert_eq!(u64_at(&f, sc + 7 * 8), 15);
        assert_eq!(u64_at(&f, sc + 8 * 8), 100);
        assert_eq!(u64_at(&f, sc + 13 * 8), 0xaa);
        assert_eq!(u64_at(&f, sc + 15 * 8), 0x7fff_0000_1000);
        assert_eq!(u64_at(&f, sc + 16 * 8), 0x40_1234);
        assert_eq!(u64_at(&f, sc + 17 * 8), 0x246);
        assert_eq!(u64_at(&f, uc + 296), 0x5);
        let fp = u64_at(&f, sc + 184);
        assert_eq!(fp % 64, 0);
        assert!(fp >= uc + 304 + 128);
        let i = (fp - f.start) as usize;
        assert_eq!(f.bytes[i], 0x7f);
        let magic2 = u32::from_ne_bytes(f.bytes[i + 832..i + 836].try_into().unwrap());
        assert_eq!(magic2, FP_XSTATE_MAGIC2);
        // The software bytes of a signal frame: magic1, extended size, features, size.
        let word = |at: usize| u32::from_ne_bytes(f.bytes[at..at + 4].try_into().unwrap());
        assert_eq!(word(i + SW_BYTES), FP_XSTATE_MAGIC1);
        assert_eq!(word(i + SW_BYTES + 4), 836);
        assert_eq!(u64_at(&f, fp + SW_BYTES as u64 + 8), 0x7);
        assert_eq!(word(i + SW_BYTES + 16), 832);
    }

    #[test]
    fn an_fxsave_image_goes_in_alone_with_no_software_bytes() {
        let fpu = FpuState {
            bytes: vec![1u8; 512],
            xsave: false,
        };
        let (b, xsave) = fpu.for_frame();
        assert!(!xsave);
        assert_eq!(b.len(), 512);
        assert!(b[SW_BYTES..].iter().all(|&x| x == 0));
    }
}
