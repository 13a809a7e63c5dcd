//! The call-site trampoline, one definition for every hook that passes its caller's call site:
//! the exported allocation functions (session/exports.rs) and the PyMem wrappers under
//! `--native` (pymem.rs).

/// Defines `$name` with the C signature `($args) -> $ret` (and the attributes and visibility
/// given) as a trampoline to `$hook`, which takes the same arguments and a
/// `&hooks::native::CallSite` last, passed in `$reg` (x86_64) or `$a64` (aarch64): the
/// trampoline pushes the caller's frame pointer below its return address and passes their
/// address, so that a native walk (--native) starts at the call site with the caller's
/// registers, not in the tracker's own frames. Its CFI lets an unwinder started in the hook step
/// through it.
macro_rules! site_trampoline {
    ($(#[$attr:meta])* $vis:vis $name:ident => $hook:path, $reg:literal, $a64:literal,
     ($($arg:ident: $ty:ty),*) -> $ret:ty) => {
        $(#[$attr])*
        #[unsafe(naked)]
        $vis unsafe extern "C" fn $name($($arg: $ty),*) -> $ret {
            #[cfg(target_arch = "x86_64")]
            core::arch::naked_asm!(
                ".cfi_startproc",
                "push rbp",
                ".cfi_adjust_cfa_offset 8",
                ".cfi_rel_offset rbp, 0",
                concat!("mov ", $reg, ", rsp"),
                "call {hook}",
                "pop rbp",
                ".cfi_adjust_cfa_offset -8",
                ".cfi_restore rbp",
                "ret",
                ".cfi_endproc",
                hook = sym $hook
            );
            #[cfg(target_arch = "aarch64")]
            core::arch::naked_asm!(
                "stp x29, x30, [sp, #-16]!",
                concat!("mov ", $a64, ", sp"),
                "bl {hook}",
                "ldp x29, x30, [sp], #16",
                "ret",
                hook = sym $hook
            );
        }
    };
}

pub(crate) use site_trampoline;
