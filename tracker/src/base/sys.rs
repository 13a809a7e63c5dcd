//! Raw system calls for the tracker's own needs: they never enter the allocation hooks (the
//! tracker's memory and file I/O must not be recorded or re-enter the tracker).

use libc::{c_int, c_long, c_void};
use std::sync::atomic::{AtomicBool, Ordering};

/// Saves errno on creation and restores it on drop: the hooks must not change what the program
/// sees in errno.
pub struct ErrnoGuard(c_int);

impl ErrnoGuard {
    pub fn new() -> ErrnoGuard {
        // SAFETY: __errno_location returns this thread's errno slot, always valid.
        ErrnoGuard(unsafe { *libc::__errno_location() })
    }
}

impl Drop for ErrnoGuard {
    fn drop(&mut self) {
        // SAFETY: as above.
        unsafe { *libc::__errno_location() = self.0 };
    }
}

/// The process sandboxed itself with a seccomp filter that forbids system calls the tracker
/// makes (session::sandbox): from then on the tracker makes none in it.
static SANDBOXED: AtomicBool = AtomicBool::new(false);

/// Whether the tracker must make no more system calls in this process.
#[inline]
pub fn sandboxed() -> bool {
    SANDBOXED.load(Ordering::Acquire)
}

/// The tracker makes no more system calls in this process (inherited by fork children).
pub fn set_sandboxed() {
    SANDBOXED.store(true, Ordering::Release);
}

/// A system call made as glibc's `syscall(3)` makes it: the kernel's result, or -1 with errno
/// set. Without going through any symbol: the tracker exports `syscall` (and `prctl`) itself.
///
/// # Safety
/// As syscall(3): the call `n` with these arguments must be sound for the caller.
#[inline]
pub unsafe fn raw_syscall(n: c_long, a: [usize; 6]) -> c_long {
    let r: isize;
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the `syscall` instruction with the kernel's argument registers; it clobbers rcx
    // and r11 only. What the call does is the caller's promise.
    unsafe {
        core::arch::asm!(
            "syscall",
            inlateout("rax") n as isize => r,
            in("rdi") a[0],
            in("rsi") a[1],
            in("rdx") a[2],
            in("r10") a[3],
            in("r8") a[4],
            in("r9") a[5],
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    #[cfg(target_arch = "aarch64")]
    // SAFETY: `svc 0` with the call number in x8 and the arguments in x0-x5; the result comes
    // back in x0. What the call does is the caller's promise.
    unsafe {
        core::arch::asm!(
            "svc 0",
            in("x8") n,
            inlateout("x0") a[0] as isize => r,
            in("x1") a[1],
            in("x2") a[2],
            in("x3") a[3],
            in("x4") a[4],
            in("x5") a[5],
            options(nostack),
        );
    }
    if (-4095..0).contains(&r) {
        syscall_error(r as c_long)
    } else {
        r as c_long
    }
}

/// A failed system call's result as syscall(3) gives it: errno set to the error, -1 returned.
/// (The exported `syscall` jumps here with the kernel's negative result.)
pub extern "C" fn syscall_error(r: c_long) -> c_long {
    // SAFETY: this thread's errno slot, always valid.
    unsafe { *libc::__errno_location() = r.wrapping_neg() as c_int };
    -1
}

fn result(r: c_long) -> Result<c_long, c_int> {
    if r < 0 {
        // SAFETY: errno slot of this thread.
        Err(unsafe { *libc::__errno_location() })
    } else {
        Ok(r)
    }
}

/// mmap(2) at an address of the kernel's choice; None when the kernel refuses.
fn map(len: usize, flags: c_int, fd: c_int) -> Option<*mut u8> {
    // SAFETY: a new mapping at an address of the kernel's choice touches no existing memory.
    let p = unsafe {
        libc::syscall(
            libc::SYS_mmap,
            0usize,
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            flags,
            fd,
            0usize,
        )
    };
    (p >= 0).then_some(p as *mut u8)
}

/// The system's page size (4 KiB here; 16 or 64 KiB on some aarch64 systems).
pub fn page_size() -> usize {
    // SAFETY: sysconf takes no pointer; it reads a value the loader set at start.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    (page as usize).max(4096)
}

/// Whether the page at `page` (page-aligned) is mapped: mincore(2) fails with ENOMEM on an
/// unmapped one. errno is kept.
pub fn is_mapped(page: usize) -> bool {
    let _errno = ErrnoGuard::new();
    let mut residency = 0u8;
    // SAFETY: mincore reads no memory of ours but writes one byte per page into `residency`.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mincore,
            page,
            4096usize,
            &mut residency as *mut u8,
        )
    };
    r == 0
}

/// Anonymous private memory, zero-filled.
pub fn map_anon(len: usize) -> Option<*mut u8> {
    map(len, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1)
}

/// Maps `*array` (`len` zeroed elements of `T`) at its first use; false when it cannot be
/// mapped.
pub fn map_array_once<T>(array: &mut *mut T, len: usize) -> bool {
    if array.is_null() {
        let Some(p) = map_anon(len * core::mem::size_of::<T>()) else {
            return false;
        };
        *array = p as *mut T;
    }
    true
}

/// A shared mapping of `len` bytes of `fd` from offset 0 (may extend past the end of the file).
pub fn map_shared(fd: c_int, len: usize) -> Option<*mut u8> {
    map(len, libc::MAP_SHARED | libc::MAP_NORESERVE, fd)
}

/// Turns off read-ahead on a shared file mapping: a fault maps the page touched, instead of
/// first reading (for a new file, zero-filling) the pages after it.
pub fn no_readahead(p: *mut u8, len: usize) {
    // SAFETY: madvise(MADV_RANDOM) is only a hint about the mapping's access pattern; it changes
    // no data.
    unsafe { libc::syscall(libc::SYS_madvise, p, len, libc::MADV_RANDOM) };
}

pub fn unmap(p: *mut u8, len: usize) {
    // SAFETY: the caller owns the mapping and no longer uses it.
    unsafe { raw_syscall(libc::SYS_munmap, [p as usize, len, 0, 0, 0, 0]) };
}

/// Drops `len` bytes of a shared file mapping from this process's memory (its data stays in
/// the file and comes back on the next access): what is written need not stay resident.
pub fn release_shared(p: *mut u8, len: usize) {
    // SAFETY: madvise(MADV_DONTNEED) on a MAP_SHARED file mapping loses no data, and accesses
    // after it fault the pages back in from the page cache.
    unsafe { libc::syscall(libc::SYS_madvise, p, len, libc::MADV_DONTNEED) };
}

/// Drops `len` bytes of private anonymous memory from this process's memory: they read as zeros
/// afterwards.
pub fn discard(p: *mut u8, len: usize) {
    // SAFETY: madvise(MADV_DONTNEED) on private anonymous memory the caller owns and whose
    // contents it no longer needs.
    unsafe { libc::syscall(libc::SYS_madvise, p, len, libc::MADV_DONTNEED) };
}

/// open(2) of a NUL-terminated path.
pub fn open(path: &[u8], flags: c_int, mode: u32) -> Result<c_int, c_int> {
    debug_assert_eq!(path.last(), Some(&0));
    // SAFETY: path is NUL-terminated.
    let r = unsafe { libc::syscall(libc::SYS_openat, libc::AT_FDCWD, path.as_ptr(), flags, mode) };
    result(r).map(|fd| fd as c_int)
}

/// Removes the file at `path` (NUL-terminated); errors are ignored.
pub fn unlink(path: &[u8]) {
    debug_assert_eq!(path.last(), Some(&0));
    // SAFETY: path is NUL-terminated.
    unsafe { libc::syscall(libc::SYS_unlinkat, libc::AT_FDCWD, path.as_ptr(), 0) };
}

/// stat(2) of `path` (NUL-terminated) with `flags` (AT_SYMLINK_NOFOLLOW or 0), by a raw
/// system call; None when nothing can be seen there. errno kept.
fn stat_at(path: &[u8], flags: c_int) -> Option<libc::stat> {
    debug_assert_eq!(path.last(), Some(&0));
    let _errno = ErrnoGuard::new();
    let mut st = core::mem::MaybeUninit::<libc::stat>::zeroed();
    // SAFETY: path is NUL-terminated; st is a whole stat buffer the call fills.
    let r = unsafe {
        libc::syscall(
            libc::SYS_newfstatat,
            libc::AT_FDCWD,
            path.as_ptr(),
            st.as_mut_ptr(),
            flags,
        )
    };
    // SAFETY: zeroed, then filled by the call when it succeeded.
    (r == 0).then(|| unsafe { st.assume_init() })
}

/// What is at `path` (NUL-terminated) itself, a symbolic link not followed: its file type
/// (`st_mode & S_IFMT`), None when nothing is there (or it cannot be seen); errno kept.
pub fn file_type(path: &[u8]) -> Option<u32> {
    stat_at(path, libc::AT_SYMLINK_NOFOLLOW).map(|st| st.st_mode & libc::S_IFMT)
}

/// The mode, owner and group of the file at `path` (NUL-terminated, links followed); None when
/// it cannot be seen. errno kept.
pub fn mode_and_owner(path: &[u8]) -> Option<(u32, u32, u32)> {
    stat_at(path, 0).map(|st| (st.st_mode, st.st_uid, st.st_gid))
}

/// Whether the file at `path` (NUL-terminated) has file capabilities (which make its exec a
/// secure one, as set-user-ID does). errno kept.
pub fn has_file_capabilities(path: &[u8]) -> bool {
    debug_assert_eq!(path.last(), Some(&0));
    let _errno = ErrnoGuard::new();
    // SAFETY: both strings are NUL-terminated; a null buffer of size 0 asks for the length.
    unsafe {
        libc::syscall(
            libc::SYS_getxattr,
            path.as_ptr(),
            c"security.capability".as_ptr(),
            core::ptr::null_mut::<u8>(),
            0usize,
        ) > 0
    }
}

/// The process's soft limit of `resource` now (RLIMIT_AS, RLIMIT_FSIZE...), by a raw system
/// call; None when there is none.
pub fn soft_limit(resource: libc::__rlimit_resource_t) -> Option<u64> {
    let mut now = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    let args = [
        0,
        resource as usize,
        0,
        &mut now as *mut libc::rlimit as usize,
        0,
        0,
    ];
    // SAFETY: prlimit64 of this process, reading the limit into a struct of ours.
    let r = unsafe { raw_syscall(libc::SYS_prlimit64, args) };
    (r == 0 && now.rlim_cur != libc::RLIM_INFINITY).then_some(now.rlim_cur)
}

/// The real user and group ids of the process.
pub fn real_ids() -> (u32, u32) {
    // SAFETY: getuid and getgid have no preconditions.
    unsafe {
        (
            libc::syscall(libc::SYS_getuid) as u32,
            libc::syscall(libc::SYS_getgid) as u32,
        )
    }
}

pub fn close(fd: c_int) {
    // SAFETY: closes a descriptor the tracker opened.
    unsafe { libc::syscall(libc::SYS_close, fd) };
}

/// Writes all of `buf` to `fd`: a pipe, or a regular file written at its end (appended to, or
/// new). Never past the process's file size limit (RLIMIT_FSIZE, which a program may lower):
/// the kernel would send SIGXFSZ, whose default action kills the program; Err(EFBIG) instead.
pub fn write_all(fd: c_int, mut buf: &[u8]) -> Result<(), c_int> {
    if past_file_size_limit(fd, buf.len() as u64) {
        return Err(libc::EFBIG);
    }
    while !buf.is_empty() {
        // SAFETY: buf is a valid slice.
        let r = result(unsafe { libc::syscall(libc::SYS_write, fd, buf.as_ptr(), buf.len()) });
        match r {
            Ok(n) => buf = &buf[n as usize..],
            Err(libc::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Whether `len` more bytes at the end of `fd` would pass RLIMIT_FSIZE (regular files only:
/// the limit leaves pipes and devices alone).
fn past_file_size_limit(fd: c_int, len: u64) -> bool {
    let Some(limit) = soft_limit(libc::RLIMIT_FSIZE) else {
        return false;
    };
    // SAFETY: a zeroed stat is a valid out-buffer; fstat writes only into it.
    let mut st: libc::stat = unsafe { core::mem::zeroed() };
    // SAFETY: fstat of a descriptor of the tracker's into the buffer above.
    let ok = unsafe { libc::syscall(libc::SYS_fstat, fd, &mut st as *mut libc::stat) } == 0;
    ok && st.st_mode & libc::S_IFMT == libc::S_IFREG
        && (st.st_size.max(0) as u64).saturating_add(len) > limit
}

/// Reads up to buf.len() bytes; returns how many.
pub fn read(fd: c_int, buf: &mut [u8]) -> Result<usize, c_int> {
    // SAFETY: buf is a valid, writable slice.
    result(unsafe { libc::syscall(libc::SYS_read, fd, buf.as_mut_ptr(), buf.len()) })
        .map(|n| n as usize)
}

/// Reads into `buf` from `offset` of `fd` (one call: what it gives).
pub fn pread(fd: c_int, buf: &mut [u8], offset: u64) -> Result<usize, c_int> {
    // SAFETY: buf is a valid, writable slice.
    result(unsafe {
        libc::syscall(
            libc::SYS_pread64,
            fd,
            buf.as_mut_ptr(),
            buf.len(),
            offset as libc::off_t,
        )
    })
    .map(|n| n as usize)
}

pub fn fallocate(fd: c_int, mode: c_int, offset: u64, len: u64) -> Result<(), c_int> {
    // SAFETY: plain system call on the capture descriptor.
    result(unsafe { libc::syscall(libc::SYS_fallocate, fd, mode, offset, len) }).map(|_| ())
}

/// Every signal but glibc's two internal ones (32, cancellation; 33, set*id across threads:
/// glibc never blocks them, and a thread calling setuid waits for each thread to take its 33).
/// SIGKILL and SIGSTOP stay deliverable: the kernel says so.
const ALL_SIGNALS: u64 = !((1 << 31) | (1 << 32));

/// Blocks every signal on this thread ([`ALL_SIGNALS`]); the mask before (the kernel's 64-bit
/// set), None when the call failed.
pub fn block_signals() -> Option<u64> {
    let mut old: u64 = 0;
    // SAFETY: rt_sigprocmask with two 8-byte sets this frame owns, of the kernel's size.
    let r = unsafe {
        raw_syscall(
            libc::SYS_rt_sigprocmask,
            [
                libc::SIG_BLOCK as usize,
                &ALL_SIGNALS as *const u64 as usize,
                &mut old as *mut u64 as usize,
                8,
                0,
                0,
            ],
        )
    };
    (r == 0).then_some(old)
}

/// Puts back a mask [`block_signals`] gave on this thread.
pub fn set_signal_mask(mask: u64) {
    // SAFETY: rt_sigprocmask with an 8-byte set this frame owns and no old set.
    unsafe {
        raw_syscall(
            libc::SYS_rt_sigprocmask,
            [
                libc::SIG_SETMASK as usize,
                &mask as *const u64 as usize,
                0,
                8,
                0,
                0,
            ],
        )
    };
}

/// Keeps this thread's signals blocked while it lives (the mask before comes back at its end).
pub struct SignalsBlocked {
    old: Option<u64>,
}

impl SignalsBlocked {
    pub fn new() -> SignalsBlocked {
        SignalsBlocked {
            old: block_signals(),
        }
    }
}

impl Drop for SignalsBlocked {
    fn drop(&mut self) {
        if let Some(m) = self.old {
            set_signal_mask(m);
        }
    }
}

/// Zeros for [`write_zeros`] (in .bss: they take no room in the library).
static ZEROS: [u8; 1 << 16] = [0; 1 << 16];

/// Writes `len` zero bytes at `offset` of `fd` (extending the file as fallocate mode 0 does).
pub fn write_zeros(fd: c_int, mut offset: u64, mut len: u64) -> Result<(), c_int> {
    let iov = libc::iovec {
        iov_base: ZEROS.as_ptr() as *mut c_void,
        iov_len: ZEROS.len(),
    };
    let iovs = [iov; 16];
    while len > 0 {
        let n = (len.div_ceil(ZEROS.len() as u64) as usize).min(iovs.len());
        let mut v = iovs;
        v[n - 1].iov_len =
            (len - (n as u64 - 1) * ZEROS.len() as u64).min(ZEROS.len() as u64) as usize;
        // SAFETY: `n` iovecs over the static zeros, which pwritev only reads.
        let r = unsafe {
            libc::syscall(
                libc::SYS_pwritev,
                fd,
                v.as_ptr(),
                n as c_int,
                offset as c_long,
                0 as c_long,
            )
        };
        match result(r) {
            Ok(0) => return Err(libc::EIO),
            Ok(k) => {
                offset += k as u64;
                len -= k as u64;
            }
            Err(libc::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The device and inode of the file open at `fd`: what makes it that file.
pub fn file_id(fd: c_int) -> Result<(u64, u64), c_int> {
    // SAFETY: a zeroed stat is a valid out-parameter; fstat only writes it.
    let mut st: libc::stat = unsafe { core::mem::zeroed() };
    // SAFETY: as above.
    result(unsafe { libc::syscall(libc::SYS_fstat, fd, &mut st as *mut libc::stat) })?;
    Ok((st.st_dev, st.st_ino))
}

/// Gives the owner of the file open at `fd` read and write permission when the umask it was
/// made under took them away (a service's `umask 0777`): a capture its own user cannot read is
/// lost. The group's and others' bits stay as the umask left them. errno kept.
pub fn owner_may_read(fd: c_int) {
    let _errno = ErrnoGuard::new();
    // SAFETY: a zeroed stat is a valid out-parameter; fstat only writes it.
    let mut st: libc::stat = unsafe { core::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::syscall(libc::SYS_fstat, fd, &mut st as *mut libc::stat) } != 0 {
        return;
    }
    let mode = st.st_mode & 0o7777;
    if mode & 0o600 != 0o600 {
        // SAFETY: fchmod of the caller's descriptor, with a mode.
        unsafe { libc::syscall(libc::SYS_fchmod, fd, mode | 0o600) };
    }
}

/// The file system type (statfs `f_type`) of the file open at `fd`.
pub fn fs_type(fd: c_int) -> Option<i64> {
    // SAFETY: a zeroed statfs is a valid out-parameter; fstatfs only writes it.
    let mut st: libc::statfs = unsafe { core::mem::zeroed() };
    // SAFETY: as above.
    result(unsafe { libc::syscall(libc::SYS_fstatfs, fd, &mut st as *mut libc::statfs) }).ok()?;
    Some(st.f_type as i64)
}

/// Starts writing the dirty pages of the file open at `fd` back to its storage, without
/// waiting for them.
pub fn start_write_back(fd: c_int) -> Result<(), c_int> {
    // SAFETY: plain system call on the capture descriptor; offset 0, length 0 is the whole file.
    result(unsafe {
        libc::syscall(
            libc::SYS_sync_file_range,
            fd,
            0u64,
            0u64,
            libc::SYNC_FILE_RANGE_WRITE,
        )
    })
    .map(|_| ())
}

pub fn ftruncate(fd: c_int, len: u64) -> Result<(), c_int> {
    // SAFETY: plain system call on the capture descriptor.
    result(unsafe { libc::syscall(libc::SYS_ftruncate, fd, len) }).map(|_| ())
}

/// Sleeps `ms` milliseconds (a signal may cut it short).
pub fn sleep_ms(ms: u32) {
    sleep_us(ms.saturating_mul(1000));
}

/// Sleeps `us` microseconds (a signal may cut it short). The system call itself, not the C
/// library's `usleep` or `nanosleep`: those are cancellation points, and a thread with a
/// `pthread_cancel` pending would end inside a hook, leaving the tracker's locks held.
pub fn sleep_us(us: u32) {
    let t = libc::timespec {
        tv_sec: libc::time_t::from(us / 1_000_000),
        tv_nsec: libc::c_long::from(us % 1_000_000) * 1000,
    };
    // SAFETY: nanosleep(2) with a valid request and no remainder wanted.
    unsafe {
        libc::syscall(
            libc::SYS_nanosleep,
            &t,
            core::ptr::null_mut::<libc::timespec>(),
        )
    };
}

/// Whether the calling thread runs on its alternate signal stack now (a handler installed
/// with SA_ONSTACK runs): sigaltstack's own answer, by the system call.
pub fn on_signal_stack() -> bool {
    let _errno = ErrnoGuard::new();
    // SAFETY: sigaltstack(2) with no new stack, reading the current one into `old`.
    let mut old: libc::stack_t = unsafe { core::mem::zeroed() };
    // SAFETY: as above.
    let r = unsafe {
        libc::syscall(
            libc::SYS_sigaltstack,
            core::ptr::null::<libc::stack_t>(),
            &mut old as *mut libc::stack_t,
        )
    };
    r == 0 && old.ss_flags & libc::SS_ONSTACK != 0
}

pub fn gettid() -> u32 {
    // SAFETY: no arguments.
    unsafe { libc::syscall(libc::SYS_gettid) as u32 }
}

pub fn getpid() -> u32 {
    // SAFETY: no arguments.
    unsafe { libc::syscall(libc::SYS_getpid) as u32 }
}

pub fn getppid() -> u32 {
    // SAFETY: no arguments.
    unsafe { libc::syscall(libc::SYS_getppid) as u32 }
}

pub fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec; clock_gettime does not allocate.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

pub use crate::lock::sched_yield;

/// Reads a whole small file (like /proc/self/cmdline) into `buf`; returns the length read.
pub fn read_file(path: &[u8], buf: &mut [u8]) -> usize {
    let Ok(fd) = open(path, libc::O_RDONLY | libc::O_CLOEXEC, 0) else {
        return 0;
    };
    let mut n = 0;
    while n < buf.len() {
        match read(fd, &mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(libc::EINTR) => {}
            Err(_) => break,
        }
    }
    close(fd);
    n
}

/// This process's id and its parent's as /proc names them (the pid namespace it was mounted
/// in: memtrace's, usually) rather than as getpid/getppid do (in the process's own namespace:
/// 1 and 0 for the first process of one made by `unshare(CLONE_NEWPID)`), so that a child in a
/// namespace of its own is named as its parent's record of it names it. getpid/getppid where
/// /proc cannot be read. Read once per (getpid, getppid): a process's start asks twice (its
/// file's name and its header), and the pytest plugin starts a capture per test.
pub fn proc_ids() -> (u32, u32) {
    use std::sync::atomic::{AtomicU64, Ordering};
    // (getpid, getppid) and the ids /proc gave for them, each pair packed in a word.
    static SEEN: AtomicU64 = AtomicU64::new(0);
    static IDS: AtomicU64 = AtomicU64::new(0);
    let own = u64::from(getpid()) << 32 | u64::from(getppid());
    if SEEN.load(Ordering::Acquire) == own {
        let ids = IDS.load(Ordering::Relaxed);
        return ((ids >> 32) as u32, ids as u32);
    }
    let (pid, ppid) = read_proc_ids();
    IDS.store(u64::from(pid) << 32 | u64::from(ppid), Ordering::Relaxed);
    SEEN.store(own, Ordering::Release);
    (pid, ppid)
}

/// The pid of a child of the calling thread as /proc names it (see [`proc_ids`]), from `pid`,
/// the one fork or posix_spawn returned: the same, unless this process's pid namespace is not
/// /proc's (a process inside one made by `unshare(CLONE_NEWPID)`: fork returns the child's pid
/// there), then found among the thread's children by the pid their innermost namespace gives
/// them (the last of /proc's `NSpid`); `pid` when not found.
pub fn proc_pid_of_child(pid: u32) -> u32 {
    if proc_ids().0 == getpid() {
        return pid;
    }
    let mut children = [0u8; 4096];
    let n = read_file(b"/proc/thread-self/children\0", &mut children);
    for word in children[..n].split(|&b| b == b' ' || b == b'\n') {
        let Some(candidate) = std::str::from_utf8(word)
            .ok()
            .and_then(|w| w.parse::<u32>().ok())
        else {
            continue;
        };
        let path = format!("/proc/{candidate}/status\0");
        let mut status = [0u8; 2048];
        let len = read_file(path.as_bytes(), &mut status);
        let innermost = status[..len]
            .split(|&b| b == b'\n')
            .find(|l| l.starts_with(b"NSpid:"))
            .and_then(|l| {
                l.split(|b| b.is_ascii_whitespace())
                    .rfind(|f| !f.is_empty())
            })
            .and_then(|f| std::str::from_utf8(f).ok()?.parse::<u32>().ok());
        if innermost == Some(pid) {
            return candidate;
        }
    }
    pid
}

/// [`proc_ids`] read from /proc/self/status.
fn read_proc_ids() -> (u32, u32) {
    let mut buf = [0u8; 1024];
    let n = read_file(b"/proc/self/status\0", &mut buf);
    let field = |name: &[u8]| -> Option<u32> {
        let line = buf[..n]
            .split(|&b| b == b'\n')
            .find(|l| l.starts_with(name))?;
        let digits = line[name.len()..].trim_ascii();
        std::str::from_utf8(digits).ok()?.parse().ok()
    };
    match (field(b"Pid:"), field(b"PPid:")) {
        (Some(pid), Some(ppid)) if pid != 0 => (pid, ppid),
        _ => (getpid(), getppid()),
    }
}

/// readlink(2) into buf; returns the length.
pub fn readlink(path: &[u8], buf: &mut [u8]) -> usize {
    // SAFETY: path is NUL-terminated, buf writable.
    let r = unsafe {
        libc::syscall(
            libc::SYS_readlinkat,
            libc::AT_FDCWD,
            path.as_ptr(),
            buf.as_mut_ptr() as *mut c_void,
            buf.len(),
        )
    };
    if r < 0 {
        0
    } else {
        r as usize
    }
}

/// The program's executable path into buf; returns the length. /proc/self first: valgrind
/// shows its guest the guest's own executable there (and only there: /proc/thread-self/exe is
/// its tool, which made a Python run under valgrind a native one). Then /proc/thread-self: a
/// process whose main thread ended (pthread_exit) while others run has no /proc/self/exe.
pub fn readlink_exe(buf: &mut [u8]) -> usize {
    match readlink(b"/proc/self/exe\0", buf) {
        0 => readlink(b"/proc/thread-self/exe\0", buf),
        n => n,
    }
}

/// The program's command line (NUL-separated) into buf; returns the length. /proc/self first,
/// then /proc/thread-self, as [`readlink_exe`].
pub fn read_cmdline(buf: &mut [u8]) -> usize {
    match read_file(b"/proc/self/cmdline\0", buf) {
        0 => read_file(b"/proc/thread-self/cmdline\0", buf),
        n => n,
    }
}

/// Copies `len` bytes at `from` (memory of this process the program named) into `to` without
/// faulting: process_vm_readv on this process fails with EFAULT where a plain read would die of
/// SIGSEGV (a program that passes a bad pointer to a call it expects EFAULT from). Some(false)
/// when unreadable; None when the call itself is refused (a seccomp filter): the caller then
/// reads as before.
fn copy_own(from: usize, to: &mut [u8]) -> Option<bool> {
    // A sandboxed process makes no system call the tracker chose (its filter may kill it).
    if sandboxed() {
        return None;
    }
    let local = libc::iovec {
        iov_base: to.as_mut_ptr() as *mut c_void,
        iov_len: to.len(),
    };
    let remote = libc::iovec {
        iov_base: from as *mut c_void,
        iov_len: to.len(),
    };
    let me = getpid() as usize;
    let args = [
        me,
        &local as *const _ as usize,
        1,
        &remote as *const _ as usize,
        1,
        0,
    ];
    // SAFETY: reads `to.len()` bytes of this process at `from` into `to`, which the kernel
    // checks; nothing is written but `to`.
    let r = unsafe { raw_syscall(libc::SYS_process_vm_readv, args) };
    if r == to.len() as c_long {
        return Some(true);
    }
    // SAFETY: errno of this thread, just set by the failed call.
    match unsafe { *libc::__errno_location() } {
        libc::EFAULT => Some(false),
        _ if r >= 0 => Some(false),
        _ => None,
    }
}

/// A `T` the program points at, read without faulting (see `copy_own`); None when `p` cannot
/// be read.
pub fn read_own<T: Copy>(p: *const T) -> Option<T> {
    if p.is_null() {
        return None;
    }
    let mut value = core::mem::MaybeUninit::<T>::uninit();
    // SAFETY: the bytes of `value`, only written (by the kernel) before it is read.
    let bytes = unsafe {
        core::slice::from_raw_parts_mut(value.as_mut_ptr() as *mut u8, core::mem::size_of::<T>())
    };
    match copy_own(p as usize, bytes) {
        // SAFETY: every byte copied from the `T` the program passed.
        Some(true) => Some(unsafe { value.assume_init() }),
        Some(false) => None,
        // SAFETY: the call is refused: read as before (the caller's contract: a readable T).
        None => Some(unsafe { core::ptr::read(p) }),
    }
}

/// Whether `p` is a NUL-terminated string this process can read (the NUL within `max` bytes),
/// read without faulting (see `copy_own`; true when that cannot be checked).
pub fn c_string_readable(p: *const libc::c_char, max: usize) -> bool {
    if p.is_null() {
        return false;
    }
    let mut buf = [0u8; 256];
    let (mut at, end) = (p as usize, p as usize + max);
    while at < end {
        // Never across a page: a string ending before an unmapped page is readable.
        let n = (4096 - at % 4096).min(buf.len()).min(end - at);
        match copy_own(at, &mut buf[..n]) {
            Some(true) if buf[..n].contains(&0) => return true,
            Some(true) => at += n,
            Some(false) => return false,
            None => return true,
        }
    }
    false
}

/// Whether process `pid` still shares this process's memory (kcmp KCMP_VM): a vfork or
/// CLONE_VM child before its exec or exit. When kcmp is refused (a seccomp filter, no ptrace
/// access), whether the process is still there at all.
pub fn shares_memory(pid: u32) -> bool {
    const KCMP_VM: usize = 1;
    let me = getpid() as usize;
    // SAFETY: kcmp compares two processes' memory descriptors; it reads nothing of ours.
    let r = unsafe { raw_syscall(libc::SYS_kcmp, [me, pid as usize, KCMP_VM, 0, 0, 0]) };
    match r {
        0 => true,
        r if r > 0 => false,
        // SAFETY: errno of this thread, just set by the failed call.
        _ => match unsafe { *libc::__errno_location() } {
            libc::ESRCH => false,
            _ => {
                // SAFETY: kill with signal 0 only checks that the process exists.
                let r = unsafe { libc::syscall(libc::SYS_kill, pid as usize, 0) };
                r == 0
            }
        },
    }
}

/// Where [`move_fd_high`] puts a descriptor when the open-file limit allows.
const HIGH_FD: c_int = 700;

/// Moves a descriptor to a high number (close-on-exec), out of the way of the program's own
/// descriptors: a program that reuses low numbers must never get the capture's. 700 and up
/// when the open-file limit allows, else as high under the limit as is free. None (`fd` closed)
/// when it is a standard stream's number (0, 1, 2: closed in the program, which would read or
/// write the capture through it) and no other number is free.
pub fn move_fd_high(fd: c_int) -> Option<c_int> {
    let limit = open_files_limit();
    let floors = [HIGH_FD, limit.saturating_sub(32), limit / 2, 3];
    for floor in floors.into_iter().filter(|&f| f >= 3 && f < limit) {
        // SAFETY: fcntl F_DUPFD_CLOEXEC on a descriptor the tracker owns.
        let high =
            unsafe { libc::syscall(libc::SYS_fcntl, fd, libc::F_DUPFD_CLOEXEC, floor) } as c_int;
        if high >= 0 {
            close(fd);
            return Some(high);
        }
    }
    if fd > 2 {
        return Some(fd);
    }
    close(fd);
    None
}

/// The most descriptors [`no_descriptor_free_after_exec`] looks at (one call each).
const MAX_DESCRIPTORS_SCANNED: c_int = 4096;

/// Whether an exec now would leave the new image no descriptor to open a file with: every
/// number under the open-file limit is taken by a descriptor the exec keeps (not
/// close-on-exec). Its loader could not open a preloaded library then, and says so on the
/// program's stderr. False when unsure (a limit above 4096 numbers).
pub fn no_descriptor_free_after_exec() -> bool {
    let limit = open_files_limit();
    if limit > MAX_DESCRIPTORS_SCANNED {
        return false;
    }
    (0..limit).all(|fd| {
        // SAFETY: fcntl F_GETFD only reads the descriptor's flags (EBADF when it is free).
        let flags = unsafe { libc::syscall(libc::SYS_fcntl, fd, libc::F_GETFD) };
        flags >= 0 && flags & libc::c_long::from(libc::FD_CLOEXEC) == 0
    })
}

/// The soft limit on open files (descriptor numbers are below it); c_int::MAX when unlimited
/// or unknown.
fn open_files_limit() -> c_int {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the rlimit it is given.
    let r = unsafe { libc::syscall(libc::SYS_getrlimit, libc::RLIMIT_NOFILE, &mut lim) };
    if r != 0 || lim.rlim_cur == libc::RLIM_INFINITY {
        return c_int::MAX;
    }
    c_int::try_from(lim.rlim_cur).unwrap_or(c_int::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn write_zeros_extends_the_file_with_zeros_past_what_it_holds() {
        let path = std::env::temp_dir().join(format!("write-zeros-{}", std::process::id()));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .expect("create");
        std::fs::write(&path, [7u8; 10]).expect("write");
        // More than one call's 16 blocks of 64 KiB, ending inside a block.
        let len = (17 << 16) + 12345;
        assert_eq!(write_zeros(file.as_raw_fd(), 10, len), Ok(()));
        let data = std::fs::read(&path).expect("read");
        let _ = std::fs::remove_file(&path);
        assert_eq!(data.len() as u64, 10 + len);
        assert_eq!(&data[..10], &[7u8; 10]);
        assert!(data[10..].iter().all(|&b| b == 0));
    }
}
