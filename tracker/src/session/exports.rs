//! Every symbol the library exports, one line each: the functions it interposes and the entry
//! points that C code (exec.c) and Python call. Each is a naked jump to its implementation in the
//! layer it belongs to (arguments, stack and return address pass through untouched; no frame is
//! added; the allocation functions' trampolines add one, to pass the call site), so what the
//! library exports is read here rather than gathered from five modules.

use libc::{c_char, c_int, c_void, off_t, pid_t, size_t};

/// Defines `$name`, exported with the C signature `($args) -> $ret`, as a jump to `$target`,
/// an `extern "C"` function of the same signature.
macro_rules! export {
    ($name:ident => $target:path, ($($arg:ident: $ty:ty),*) -> $ret:ty) => {
        #[unsafe(naked)]
        #[no_mangle]
        /// # Safety
        /// Same contract as the C library function of this name (or the entry point's caller).
        pub unsafe extern "C" fn $name($($arg: $ty),*) -> $ret {
            #[cfg(target_arch = "x86_64")]
            core::arch::naked_asm!("jmp {f}", f = sym $target);
            #[cfg(target_arch = "aarch64")]
            core::arch::naked_asm!("b {f}", f = sym $target);
        }
    };
}

// ---- the allocation functions (hooks::native): the call site goes along ----

/// Defines `$name`, exported with the C signature `($args) -> $ret`, as a call-site trampoline
/// to `hooks::native::$hook` (hooks/trampoline.rs), which takes the same arguments and the call
/// site last (in `$reg`, or `$a64` on aarch64).
macro_rules! trampoline {
    ($name:ident, $hook:ident, $reg:literal, $a64:literal, ($($arg:ident: $ty:ty),*) -> $ret:ty) => {
        crate::hooks::site_trampoline! {
            #[no_mangle]
            /// # Safety
            /// Same contract as the C library function of this name.
            pub $name => crate::hooks::native::$hook, $reg, $a64, ($($arg: $ty),*) -> $ret
        }
    };
}

trampoline!(malloc, hook_malloc, "rsi", "x1", (size: size_t) -> *mut c_void);
trampoline!(free, hook_free, "rsi", "x1", (p: *mut c_void) -> ());
trampoline!(calloc, hook_calloc, "rdx", "x2", (n: size_t, size: size_t) -> *mut c_void);
trampoline!(realloc, hook_realloc, "rdx", "x2", (p: *mut c_void, size: size_t) -> *mut c_void);
trampoline!(reallocarray, hook_reallocarray, "rcx", "x3", (p: *mut c_void, n: size_t, size: size_t) -> *mut c_void);
trampoline!(posix_memalign, hook_posix_memalign, "rcx", "x3", (out: *mut *mut c_void, align: size_t, size: size_t) -> c_int);
trampoline!(aligned_alloc, hook_aligned_alloc, "rdx", "x2", (align: size_t, size: size_t) -> *mut c_void);
trampoline!(memalign, hook_memalign, "rdx", "x2", (align: size_t, size: size_t) -> *mut c_void);
trampoline!(valloc, hook_valloc, "rsi", "x1", (size: size_t) -> *mut c_void);
trampoline!(pvalloc, hook_pvalloc, "rsi", "x1", (size: size_t) -> *mut c_void);
trampoline!(munmap, hook_munmap, "rdx", "x2", (addr: *mut c_void, len: size_t) -> c_int);
// mremap is variadic in C; the optional fifth argument is passed in the fifth register.
trampoline!(mremap, hook_mremap, "r9", "x5", (old: *mut c_void, old_len: size_t, new_len: size_t, flags: c_int, new_addr: *mut c_void) -> *mut c_void);

/// mmap takes six arguments, so the call site's address goes on the stack as a seventh.
macro_rules! trampoline7 {
    ($name:ident, $hook:ident) => {
        #[unsafe(naked)]
        #[no_mangle]
        /// # Safety
        /// Same contract as the C library's mmap.
        pub unsafe extern "C" fn $name(
            addr: *mut c_void,
            len: size_t,
            prot: c_int,
            flags: c_int,
            fd: c_int,
            off: off_t,
        ) -> *mut c_void {
            #[cfg(target_arch = "x86_64")]
            // The padding keeps the stack 16-byte aligned at the call.
            core::arch::naked_asm!(
                ".cfi_startproc",
                "push rbp",
                ".cfi_adjust_cfa_offset 8",
                ".cfi_rel_offset rbp, 0",
                "mov rax, rsp",
                "sub rsp, 8",
                ".cfi_adjust_cfa_offset 8",
                "push rax",
                ".cfi_adjust_cfa_offset 8",
                "call {hook}",
                "add rsp, 16",
                ".cfi_adjust_cfa_offset -16",
                "pop rbp",
                ".cfi_adjust_cfa_offset -8",
                ".cfi_restore rbp",
                "ret",
                ".cfi_endproc",
                hook = sym crate::hooks::native::$hook
            );
            #[cfg(target_arch = "aarch64")]
            core::arch::naked_asm!(
                "stp x29, x30, [sp, #-16]!",
                "mov x6, sp",
                "bl {hook}",
                "ldp x29, x30, [sp], #16",
                "ret",
                hook = sym crate::hooks::native::$hook
            );
        }
    };
}

trampoline7!(mmap, hook_mmap);
trampoline7!(mmap64, hook_mmap);
// syscall()'s mapping calls (below): recorded, and made by the system call itself.
trampoline7!(memtrace_syscall_mmap, hook_syscall_mmap);
trampoline!(memtrace_syscall_munmap, hook_syscall_munmap, "rdx", "x2", (addr: *mut c_void, len: size_t) -> c_int);
trampoline!(memtrace_syscall_mremap, hook_syscall_mremap, "r9", "x5", (old: *mut c_void, old_len: size_t, new_len: size_t, flags: c_int, new_addr: *mut c_void) -> *mut c_void);

// ---- the exec family (session::exec) ----

/// Defines the variadic `$name` as a jump to its C implementation `$c` (registers, the stack
/// and %al, the count of vector registers used, pass through untouched).
macro_rules! variadic {
    ($name:ident, $c:ident) => {
        #[unsafe(naked)]
        #[no_mangle]
        /// # Safety
        /// Same contract as the C library function of this name.
        pub unsafe extern "C" fn $name(path: *const c_char, arg: *const c_char) -> c_int {
            #[cfg(target_arch = "x86_64")]
            core::arch::naked_asm!("jmp {c}", c = sym crate::exec::entry::$c);
            #[cfg(target_arch = "aarch64")]
            core::arch::naked_asm!("b {c}", c = sym crate::exec::entry::$c);
        }
    };
}

variadic!(execl, memtrace_execl);
variadic!(execle, memtrace_execle);
variadic!(execlp, memtrace_execlp);

export!(execve => crate::exec::entry::execve, (path: *const c_char, argv: *const *const c_char, envp: *const *const c_char) -> c_int);
export!(execv => crate::exec::entry::execv, (path: *const c_char, argv: *const *const c_char) -> c_int);
export!(execvpe => crate::exec::entry::execvpe, (file: *const c_char, argv: *const *const c_char, envp: *const *const c_char) -> c_int);
export!(execvp => crate::exec::entry::execvp, (file: *const c_char, argv: *const *const c_char) -> c_int);
export!(fexecve => crate::exec::entry::fexecve, (fd: c_int, argv: *const *const c_char, envp: *const *const c_char) -> c_int);
export!(chroot => crate::exec::entry::chroot, (path: *const c_char) -> c_int);
export!(execveat => crate::exec::entry::execveat, (dirfd: c_int, path: *const c_char, argv: *const *const c_char, envp: *const *const c_char, flags: c_int) -> c_int);
// Called by the variadic ones in exec.c.
export!(memtrace_execve_hook => crate::exec::entry::memtrace_execve_hook, (path: *const c_char, argv: *const *const c_char, envp: *const *const c_char) -> c_int);
export!(memtrace_execvpe_hook => crate::exec::entry::memtrace_execvpe_hook, (file: *const c_char, argv: *const *const c_char, envp: *const *const c_char) -> c_int);

// ---- the children a process starts (session::family) ----

export!(fork => crate::family::fork, () -> pid_t);
export!(_Fork => crate::lifecycle::underscore_fork, () -> pid_t);
export!(posix_spawn => crate::family::posix_spawn, (pid: *mut pid_t, path: *const c_char, actions: *const libc::posix_spawn_file_actions_t, attr: *const libc::posix_spawnattr_t, argv: *const *mut c_char, envp: *const *mut c_char) -> c_int);
export!(posix_spawnp => crate::family::posix_spawnp, (pid: *mut pid_t, file: *const c_char, actions: *const libc::posix_spawn_file_actions_t, attr: *const libc::posix_spawnattr_t, argv: *const *mut c_char, envp: *const *mut c_char) -> c_int);

// ---- start and end of the program (session::lifecycle, session::signals) ----

export!(__libc_start_main => crate::lifecycle::__libc_start_main, (main: crate::real::MainFn, argc: c_int, argv: *mut *mut i8, init: Option<unsafe extern "C" fn()>, fini: Option<unsafe extern "C" fn()>, rtld_fini: Option<unsafe extern "C" fn()>, stack_end: *mut c_void) -> c_int);
export!(exit => crate::lifecycle::exit, (status: c_int) -> !);
export!(_exit => crate::lifecycle::_exit, (status: c_int) -> !);
// C99's _Exit is glibc's _exit under another name (it ran no hook: no trailer).
export!(_Exit => crate::lifecycle::_exit, (status: c_int) -> !);
export!(kill => crate::session::signals::kill, (pid: pid_t, sig: c_int) -> c_int);
export!(killpg => crate::session::signals::killpg, (pgrp: pid_t, sig: c_int) -> c_int);
export!(raise => crate::session::signals::raise, (sig: c_int) -> c_int);
export!(pthread_kill => crate::session::signals::pthread_kill, (thread: libc::pthread_t, sig: c_int) -> c_int);
export!(sigqueue => crate::session::signals::sigqueue, (pid: pid_t, sig: c_int, value: libc::sigval) -> c_int);
export!(tgkill => crate::session::signals::tgkill, (tgid: pid_t, tid: pid_t, sig: c_int) -> c_int);
export!(abort => crate::session::signals::abort, () -> !);
export!(__assert_fail => crate::session::signals::assert_fail, (assertion: *const c_char, file: *const c_char, line: libc::c_uint, function: *const c_char) -> !);
export!(quick_exit => crate::lifecycle::quick_exit, (status: c_int) -> !);
export!(daemon => crate::lifecycle::daemon, (nochdir: c_int, noclose: c_int) -> c_int);

// ---- a program that sandboxes itself with seccomp (session::sandbox) ----

export!(prctl => crate::session::sandbox::prctl, (option: c_int, a2: libc::c_ulong, a3: libc::c_ulong, a4: libc::c_ulong, a5: libc::c_ulong) -> c_int);

/// syscall(3): SYS_seccomp goes to session::sandbox; every other call is made here, as glibc
/// makes it (the arguments move to the kernel's registers, the seventh word from the stack; a
/// failure sets errno), with no stack or register of the caller's changed otherwise: programs
/// make raw clone calls through it.
///
/// # Safety
/// Same contract as the C library's syscall.
#[cfg(target_arch = "x86_64")]
#[unsafe(naked)]
#[no_mangle]
pub unsafe extern "C" fn syscall(
    number: libc::c_long,
    a1: libc::c_long,
    a2: libc::c_long,
    a3: libc::c_long,
    a4: libc::c_long,
    a5: libc::c_long,
    a6: libc::c_long,
) -> libc::c_long {
    core::arch::naked_asm!(
        // No stack use: the default frame (return address at the top) holds throughout.
        ".cfi_startproc",
        "cmp rdi, {seccomp}",
        "je {sandbox}",
        "cmp rdi, {exit_group}",
        "je {group_exit}",
        // The mapping calls go to their hooks (the library functions' contract is the same:
        // -1 and errno on failure), the arguments moved down one register.
        "cmp rdi, {sys_mmap}",
        "je 3f",
        "cmp rdi, {sys_munmap}",
        "je 4f",
        "cmp rdi, {sys_mremap}",
        "je 5f",
        "mov rax, rdi",
        "mov rdi, rsi",
        "mov rsi, rdx",
        "mov rdx, rcx",
        "mov r10, r8",
        "mov r8, r9",
        "mov r9, [rsp + 8]",
        "syscall",
        "cmp rax, -4095",
        "jae 2f",
        "ret",
        "2:",
        "mov rdi, rax",
        "jmp {error}",
        // mmap's sixth argument (the offset) is syscall's seventh, on the stack: it goes to
        // the sixth register, and the stack stays as it was.
        "3:",
        "mov rdi, rsi",
        "mov rsi, rdx",
        "mov rdx, rcx",
        "mov rcx, r8",
        "mov r8, r9",
        "mov r9, [rsp + 8]",
        "jmp {mmap}",
        "4:",
        "mov rdi, rsi",
        "mov rsi, rdx",
        "jmp {munmap}",
        "5:",
        "mov rdi, rsi",
        "mov rsi, rdx",
        "mov rdx, rcx",
        "mov rcx, r8",
        "mov r8, r9",
        "jmp {mremap}",
        ".cfi_endproc",
        sys_mmap = const libc::SYS_mmap,
        sys_munmap = const libc::SYS_munmap,
        sys_mremap = const libc::SYS_mremap,
        mmap = sym memtrace_syscall_mmap,
        munmap = sym memtrace_syscall_munmap,
        mremap = sym memtrace_syscall_mremap,
        seccomp = const libc::SYS_seccomp,
        sandbox = sym crate::session::sandbox::seccomp_call,
        exit_group = const libc::SYS_exit_group,
        group_exit = sym crate::lifecycle::exit_group_call,
        error = sym crate::sys::syscall_error,
    );
}

// ---- a program that lowers its own address-space limit (session::limits) ----

export!(setrlimit => crate::session::limits::setrlimit, (resource: c_int, new: *const libc::rlimit) -> c_int);
export!(setrlimit64 => crate::session::limits::setrlimit, (resource: c_int, new: *const libc::rlimit) -> c_int);
export!(prlimit => crate::session::limits::prlimit, (pid: pid_t, resource: c_int, new: *const libc::rlimit, old: *mut libc::rlimit) -> c_int);
export!(prlimit64 => crate::session::limits::prlimit, (pid: pid_t, resource: c_int, new: *const libc::rlimit, old: *mut libc::rlimit) -> c_int);
export!(mlockall => crate::session::limits::mlockall, (flags: c_int) -> c_int);

// ---- calls naming a descriptor, which may be the capture's number (session::descriptors) ----

export!(close => crate::session::descriptors::close, (fd: c_int) -> c_int);
export!(dup => crate::session::descriptors::dup, (fd: c_int) -> c_int);
export!(dup2 => crate::session::descriptors::dup2, (old: c_int, new: c_int) -> c_int);
export!(dup3 => crate::session::descriptors::dup3, (old: c_int, new: c_int, flags: c_int) -> c_int);
export!(fcntl => crate::session::descriptors::fcntl, (fd: c_int, cmd: c_int, arg: usize) -> c_int);
export!(fcntl64 => crate::session::descriptors::fcntl64, (fd: c_int, cmd: c_int, arg: usize) -> c_int);

// ---- loaded objects (stacks::unwind) ----

#[cfg(target_arch = "x86_64")]
export!(dlclose => crate::unwind::dlclose, (handle: *mut c_void) -> c_int);

/// dlopen(3): goes on to the C library's dlopen by a jump (the loader reads the caller from the
/// return address, left in place), after `before_dlopen` (session/inprocess/deepbind.rs: a
/// request with RTLD_DEEPBIND is noted, and what an earlier one loaded is patched), which
/// gets the arguments' registers back as they were.
///
/// # Safety
/// Same contract as the C library's dlopen.
#[unsafe(naked)]
#[no_mangle]
pub unsafe extern "C" fn dlopen(file: *const c_char, mode: c_int) -> *mut c_void {
    #[cfg(target_arch = "x86_64")]
    core::arch::naked_asm!(
        ".cfi_startproc",
        "push rdi",
        ".cfi_adjust_cfa_offset 8",
        "push rsi",
        ".cfi_adjust_cfa_offset 8",
        "sub rsp, 8",
        ".cfi_adjust_cfa_offset 8",
        "mov edi, esi",
        "call {before}",
        "add rsp, 8",
        ".cfi_adjust_cfa_offset -8",
        "pop rsi",
        ".cfi_adjust_cfa_offset -8",
        "pop rdi",
        ".cfi_adjust_cfa_offset -8",
        "test rax, rax",
        "jz 3f",
        "jmp rax",
        "3:",
        "ret",
        ".cfi_endproc",
        before = sym crate::session::inprocess::deepbind::before_dlopen,
    );
    #[cfg(target_arch = "aarch64")]
    core::arch::naked_asm!(
        "stp x0, x1, [sp, #-32]!",
        "str x30, [sp, #16]",
        "mov w0, w1",
        "bl {before}",
        "mov x16, x0",
        "ldr x30, [sp, #16]",
        "ldp x0, x1, [sp], #32",
        "cbz x16, 3f",
        "br x16",
        "3:",
        "mov x0, #0",
        "ret",
        before = sym crate::session::inprocess::deepbind::before_dlopen,
    );
}

/// dlsym(3): goes on to the C library's by a jump (RTLD_NEXT is found from the return address,
/// left in place). Only when a deep-bound dlopen is pending (or at the first call) does it call
/// `before_dlsym` first: a program reaches what it loaded through dlsym. A lookup in a
/// library's own handle (neither RTLD_DEFAULT nor RTLD_NEXT: no caller's address needed) goes
/// to `dlsym_in_handle`, which gives the hooks for the functions they stand for.
///
/// # Safety
/// Same contract as the C library's dlsym.
#[unsafe(naked)]
#[no_mangle]
pub unsafe extern "C" fn dlsym(handle: *mut c_void, name: *const c_char) -> *mut c_void {
    #[cfg(target_arch = "x86_64")]
    core::arch::naked_asm!(
        ".cfi_startproc",
        "test rdi, rdi",
        "jz 1f",
        "cmp rdi, -1",
        "je 1f",
        "jmp {in_handle}",
        "1:",
        "cmp byte ptr [rip + {pending}], 0",
        "jne 2f",
        "mov rax, qword ptr [rip + {next}]",
        "test rax, rax",
        "jz 2f",
        "jmp rax",
        "2:",
        "push rdi",
        ".cfi_adjust_cfa_offset 8",
        "push rsi",
        ".cfi_adjust_cfa_offset 8",
        "sub rsp, 8",
        ".cfi_adjust_cfa_offset 8",
        "call {before}",
        "add rsp, 8",
        ".cfi_adjust_cfa_offset -8",
        "pop rsi",
        ".cfi_adjust_cfa_offset -8",
        "pop rdi",
        ".cfi_adjust_cfa_offset -8",
        "test rax, rax",
        "jz 3f",
        "jmp rax",
        "3:",
        "ret",
        ".cfi_endproc",
        pending = sym crate::session::inprocess::deepbind::PENDING,
        next = sym crate::session::inprocess::deepbind::NEXT_DLSYM,
        before = sym crate::session::inprocess::deepbind::before_dlsym,
        in_handle = sym crate::session::inprocess::handle_dlsym::dlsym_in_handle,
    );
    #[cfg(target_arch = "aarch64")]
    core::arch::naked_asm!(
        "cbz x0, 1f",
        "cmn x0, #1",
        "b.eq 1f",
        "b {in_handle}",
        "1:",
        "stp x0, x1, [sp, #-32]!",
        "str x30, [sp, #16]",
        "bl {before}",
        "mov x16, x0",
        "ldr x30, [sp, #16]",
        "ldp x0, x1, [sp], #32",
        "cbz x16, 3f",
        "br x16",
        "3:",
        "mov x0, #0",
        "ret",
        before = sym crate::session::inprocess::deepbind::before_dlsym,
        in_handle = sym crate::session::inprocess::handle_dlsym::dlsym_in_handle,
    );
}

/// dlvsym(3): a versioned lookup. With RTLD_NEXT it goes on to the C library's by a jump (the
/// caller's return address left in place, from which RTLD_NEXT is found), looking that one up
/// first at the first call; any other handle, RTLD_DEFAULT included (a versioned `malloc` is the
/// C library's, never the tracker's unversioned one), goes to `dlvsym_in_handle`, which gives
/// the hooks for the allocation functions they stand for, as `dlsym` does.
///
/// # Safety
/// Same contract as the C library's dlvsym.
#[unsafe(naked)]
#[no_mangle]
pub unsafe extern "C" fn dlvsym(
    handle: *mut c_void,
    name: *const c_char,
    version: *const c_char,
) -> *mut c_void {
    #[cfg(target_arch = "x86_64")]
    core::arch::naked_asm!(
        ".cfi_startproc",
        "cmp rdi, -1",
        "je 1f",
        "jmp {in_handle}",
        "1:",
        "push rdi",
        ".cfi_adjust_cfa_offset 8",
        "push rsi",
        ".cfi_adjust_cfa_offset 8",
        "push rdx",
        ".cfi_adjust_cfa_offset 8",
        "call {next}",
        "pop rdx",
        ".cfi_adjust_cfa_offset -8",
        "pop rsi",
        ".cfi_adjust_cfa_offset -8",
        "pop rdi",
        ".cfi_adjust_cfa_offset -8",
        "test rax, rax",
        "jz 3f",
        "jmp rax",
        "3:",
        "xor eax, eax",
        "ret",
        ".cfi_endproc",
        in_handle = sym crate::session::inprocess::handle_dlsym::dlvsym_in_handle,
        next = sym crate::session::inprocess::handle_dlsym::next_dlvsym,
    );
    #[cfg(target_arch = "aarch64")]
    core::arch::naked_asm!(
        "cmn x0, #1",
        "b.eq 1f",
        "b {in_handle}",
        "1:",
        "stp x0, x1, [sp, #-32]!",
        "stp x2, x30, [sp, #16]",
        "bl {next}",
        "mov x16, x0",
        "ldp x2, x30, [sp, #16]",
        "ldp x0, x1, [sp], #32",
        "cbz x16, 3f",
        "br x16",
        "3:",
        "mov x0, #0",
        "ret",
        in_handle = sym crate::session::inprocess::handle_dlsym::dlvsym_in_handle,
        next = sym crate::session::inprocess::handle_dlsym::next_dlvsym,
    );
}

// ---- the Python extension module (session::pyext) ----

// ---- memtrace attach: called in the target through ptrace (session::attach) ----
export!(memtrace_attach => crate::attach::attach, (path: *const c_char, stop: *const c_char, active: *const c_char, duration_ms: u64, native: c_int, result: *mut u64) -> c_int);
export!(memtrace_attach_python => crate::attach::attach_python, (code: *const c_char, result: *mut u64) -> c_int);
export!(memtrace_errno_at => crate::attach::errno_at, (result: *mut u64) -> ());

export!(PyInit__memtrace_tracker => crate::pyext::init_module, () -> *mut c_void);
