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

/// The xsave area's header (after the 512-byte legacy part) begins with XSTATE_BV: the
/// features whose state is not in its initial form.
const XSTATE_BV: usize = 512;
/// The legacy part and the header: the smallest xsave area a frame may hold.
const XSAVE_MIN: usize = 576;
/// Features whose state a process has only after asking for it (AMX's tile data): ptrace's
/// copy has room for them, a signal frame only when the process asked (`arch_prctl`).
const DYNAMIC_FEATURES: u64 = 1 << 18;

/// The thread's floating-point and vector state as ptrace gives it: the xsave area
/// (`NT_X86_XSTATE`) or, without xsave, the 512-byte fxsave image.
#[derive(Clone, Debug)]
pub struct FpuState {
    pub bytes: Vec<u8>,
    pub xsave: bool,
    /// Where each feature's state ends in the (standard form) xsave area, by feature number
    /// (0: none); CPUID leaf 0xD tells, the same for every process of the machine.
    pub feature_ends: [u32; 64],
}

impl FpuState {
    /// The fpstate to put in the frame: the xsave area with the software bytes the kernel puts
    /// in a signal frame (magic, sizes, features) and its closing magic, or without xsave the
    /// fxsave image alone. ptrace's copy carries the enabled features (XCR0) in the first word
    /// of those bytes, not a frame's: a frame without them restores the x87 and SSE state only
    /// and resets the rest (AVX's upper halves were lost so).
    ///
    /// The frame holds the features the thread's own signal frames hold, and is as long as
    /// theirs: ptrace's copy has room for every feature the CPU has (11,008 bytes with AMX),
    /// but the kernel takes a frame longer than the process's own as x87 and SSE only, which
    /// lost AVX's upper halves on CPUs with AMX. AMX's tile data is in only when it is in use
    /// (the process asked for it then).
    fn for_frame(&self) -> (Vec<u8>, bool) {
        let word = |at: usize| {
            self.bytes
                .get(at..at + 8)
                .and_then(|w| w.try_into().ok())
                .map_or(0, u64::from_ne_bytes)
        };
        let (xcr0, in_use) = (word(SW_BYTES), word(XSTATE_BV));
        let features = xcr0 & (!DYNAMIC_FEATURES | in_use);
        let end = (0..64)
            .filter(|&f| features >> f & 1 != 0)
            .map(|f| self.feature_ends[f] as usize)
            .fold(XSAVE_MIN, usize::max);
        if !self.xsave || self.bytes.len() < end {
            let mut b = self.bytes[..512.min(self.bytes.len())].to_vec();
            b.resize(512, 0);
            b[SW_BYTES..512].fill(0);
            return (b, false);
        }
        let mut b = self.bytes[..end].to_vec();
        b[SW_BYTES..512].fill(0);
        // struct _fpx_sw_bytes: magic1, extended_size, xfeatures, xstate_size.
        b[SW_BYTES..SW_BYTES + 4].copy_from_slice(&FP_XSTATE_MAGIC1.to_ne_bytes());
        b[SW_BYTES + 4..SW_BYTES + 8].copy_from_slice(&((end + 4) as u32).to_ne_bytes());
        b[SW_BYTES + 8..SW_BYTES + 16].copy_from_slice(&features.to_ne_bytes());
        b[SW_BYTES + 16..SW_BYTES + 20].copy_from_slice(&(end as u32).to_ne_bytes());
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

    /// Feature ends from (feature, offset, size), as CPUID leaf 0xD gives them.
    fn ends(features: &[(usize, u32, u32)]) -> [u32; 64] {
        let mut e = [0; 64];
        for &(f, offset, size) in features {
            e[f] = offset + size;
        }
        e
    }

    #[test]
    fn a_cpu_with_amx_gets_the_frame_its_process_would_get() {
        // An Intel Xeon with AVX-512 and AMX: ptrace's copy is 11,008 bytes (XCR0 0x600e7), a
        // signal frame of a process that never asked for AMX 2,816 (features 0x200e7): a
        // longer frame is taken as x87 and SSE only, AVX's upper halves reset.
        let layout = ends(&[
            (2, 576, 256),
            (5, 1088, 64),
            (6, 1152, 512),
            (7, 1664, 1024),
            (17, 2752, 64),
            (18, 2816, 8192),
        ]);
        let mut area = vec![0u8; 11008];
        area[SW_BYTES..SW_BYTES + 8].copy_from_slice(&0x600e7u64.to_ne_bytes());
        area[XSTATE_BV..XSTATE_BV + 8].copy_from_slice(&0x7u64.to_ne_bytes());
        area[576] = 0x22; // ymm0's upper half
        let mut fpu = FpuState {
            bytes: area,
            xsave: true,
            feature_ends: layout,
        };
        let sw = |b: &[u8], at: usize| u64::from_ne_bytes(b[at..at + 8].try_into().unwrap());
        let (b, xsave) = fpu.for_frame();
        assert!(xsave);
        assert_eq!(b.len(), 2816 + 4);
        assert_eq!(b[576], 0x22);
        assert_eq!(sw(&b, SW_BYTES) as u32, FP_XSTATE_MAGIC1);
        assert_eq!(sw(&b, SW_BYTES) >> 32, 2820);
        assert_eq!(sw(&b, SW_BYTES + 8), 0x200e7);
        assert_eq!(sw(&b, SW_BYTES + 16) as u32, 2816);
        assert_eq!(b[2816..], FP_XSTATE_MAGIC2.to_ne_bytes());
        // A process using its tiles asked for them: its frames hold them, and so does this one.
        fpu.bytes[XSTATE_BV..XSTATE_BV + 8].copy_from_slice(&0x40007u64.to_ne_bytes());
        let (b, _) = fpu.for_frame();
        assert_eq!(b.len(), 11008 + 4);
        assert_eq!(sw(&b, SW_BYTES + 8), 0x600e7);
        assert_eq!(sw(&b, SW_BYTES + 16) as u32, 11008);
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
            feature_ends: ends(&[(2, 576, 256)]),
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
            feature_ends: [0; 64],
        };
        let (b, xsave) = fpu.for_frame();
        assert!(!xsave);
        assert_eq!(b.len(), 512);
        assert!(b[SW_BYTES..].iter().all(|&x| x == 0));
    }
}
