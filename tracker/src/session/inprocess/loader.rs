//! The hooks of `dlopen` and `dlclose` in patched slots: an object loaded while tracking gets
//! its slots patched too, and a closed one leaves the unwinder's and the capture's maps.
//!
//! dlopen searches a bare library name along its caller's RPATH/RUNPATH, and finds the caller
//! by its return address, which a hook would make the tracker. So for a caller with a search
//! path of its own, the hook looks the name up as the loader would for it (what is loaded
//! already, then the caller's directories before the system's), and opens what it finds by
//! path; anything else goes to dlopen unchanged.

use crate::elf::{dynamic_entries, Dyn, DT_RPATH, DT_RUNPATH};
use crate::real::forward;
use crate::{sys, tls};
use libc::{c_char, c_int, c_void};
use std::sync::atomic::{AtomicUsize, Ordering};

type DlopenFn = unsafe extern "C" fn(*const c_char, c_int) -> *mut c_void;
type DlcloseFn = unsafe extern "C" fn(*mut c_void) -> c_int;

static DLOPEN: AtomicUsize = AtomicUsize::new(0);
static DLCLOSE: AtomicUsize = AtomicUsize::new(0);

/// The definition of the global `name` (never a non-PIE executable's PLT stub, which would
/// lead back to the hook once the executable's slot is patched).
fn lookup(cell: &AtomicUsize, name: &core::ffi::CStr) -> Option<usize> {
    let mut f = cell.load(Ordering::Relaxed);
    if f == 0 {
        f = crate::definition::global(name).definition;
        cell.store(f, Ordering::Relaxed);
    }
    (f != 0).then_some(f)
}

/// The dlopen the process calls.
pub fn real_dlopen() -> Option<usize> {
    lookup(&DLOPEN, c"dlopen")
}

/// The dlclose the process calls.
pub fn real_dlclose() -> Option<usize> {
    lookup(&DLCLOSE, c"dlclose")
}

/// The hook put in `dlopen` slots: passes its return address (the caller) to `hook_dlopen`.
///
/// # Safety
/// Same contract as the C library's dlopen.
#[unsafe(naked)]
pub unsafe extern "C" fn dlopen_hook(file: *const c_char, mode: c_int) -> *mut c_void {
    #[cfg(target_arch = "x86_64")]
    core::arch::naked_asm!("mov rdx, [rsp]", "jmp {hook}", hook = sym hook_dlopen);
    #[cfg(target_arch = "aarch64")]
    core::arch::naked_asm!("mov x2, x30", "b {hook}", hook = sym hook_dlopen);
}

unsafe extern "C" fn hook_dlopen(file: *const c_char, mode: c_int, ret: usize) -> *mut c_void {
    let Some(f) = real_dlopen() else {
        return core::ptr::null_mut();
    };
    // SAFETY: the address of the C library's dlopen, found above.
    let real: DlopenFn = unsafe { core::mem::transmute::<usize, DlopenFn>(f) };
    // SAFETY: forwarding the caller's request (see `open_as`).
    let handle = unsafe { open_as(real, file, mode, ret) };
    if !handle.is_null() {
        let _errno = sys::ErrnoGuard::new();
        tls::guarded(super::loaded_more);
    }
    handle
}

/// The hook put in `dlclose` slots: the module goes into the capture's map before it is gone
/// (its frames are symbolized from it), and the unwinder forgets it after.
///
/// # Safety
/// Same contract as the C library's dlclose.
pub unsafe extern "C" fn dlclose_hook(handle: *mut c_void) -> c_int {
    let Some(f) = real_dlclose() else { return -1 };
    if crate::ACTIVE.load(Ordering::Acquire) {
        tls::guarded(crate::modules::refresh);
    }
    // SAFETY: the C library's dlclose, found by real_dlclose.
    let real: DlcloseFn = unsafe { core::mem::transmute::<usize, DlcloseFn>(f) };
    let rc = forward!(real; handle);
    crate::unwind::module_closed();
    rc
}

/// The public head of glibc's `struct link_map`.
#[repr(C)]
struct LinkMap {
    _l_addr: usize,
    _l_name: *const c_char,
    l_ld: *const Dyn,
}

#[repr(C)]
struct SerPath {
    name: *const c_char,
    flags: u32,
}

#[repr(C)]
struct SerInfo {
    size: usize,
    count: u32,
    paths: [SerPath; 1],
}

const RTLD_DL_LINKMAP: c_int = 2;
const RTLD_DI_SERINFO: c_int = 4;
const RTLD_DI_SERINFOSIZE: c_int = 5;
/// A directory of the system's defaults (searched after ld.so.cache: left to dlopen itself).
const LA_SER_DEFAULT: u32 = 0x40;

extern "C" {
    fn dladdr1(
        addr: *const c_void,
        info: *mut libc::Dl_info,
        extra: *mut *mut c_void,
        flags: c_int,
    ) -> c_int;
    fn dlinfo(handle: *mut c_void, request: c_int, arg: *mut c_void) -> c_int;
}

/// dlopen of `file` as the code at `ret` would get it.
///
/// # Safety
/// `file` is null or a NUL-terminated string; `real` is the C library's dlopen.
unsafe fn open_as(real: DlopenFn, file: *const c_char, mode: c_int, ret: usize) -> *mut c_void {
    // SAFETY: the caller's promise.
    let bare = !file.is_null()
        && !unsafe { core::ffi::CStr::from_ptr(file) }
            .to_bytes()
            .contains(&b'/');
    if bare {
        // SAFETY: `ret` is a return address in loaded code (or anything: dladdr1 says no).
        if let Some(caller) = unsafe { caller_with_search_path(ret) } {
            // Loaded already under that name: the loader takes it before searching. The probe
            // is the tracker's own work: what it allocates (the error it leaves) is not
            // recorded (the loader allocates through the program's malloc when the executable
            // exports it: Debian's python).
            // SAFETY: forwarding the caller's request, asking only for a loaded object.
            let h = crate::tls::guarded(|| unsafe { real(file, mode | libc::RTLD_NOLOAD) });
            if !h.is_null() {
                return h;
            }
            // SAFETY: a live link map and the caller's file name.
            if let Some(h) = unsafe { search(real, caller, file, mode) } {
                return h;
            }
        }
    }
    forward!(real; file, mode)
}

/// The link map of the object holding `ret`, when that object has an RPATH or a RUNPATH.
///
/// # Safety
/// None beyond dladdr1's: `ret` may be any address.
unsafe fn caller_with_search_path(ret: usize) -> Option<*mut LinkMap> {
    // SAFETY: Dl_info is plain data: all zeroes is a valid value, filled by dladdr1.
    let mut info: libc::Dl_info = unsafe { core::mem::zeroed() };
    let mut map: *mut c_void = core::ptr::null_mut();
    // SAFETY: dladdr1 only reads the loader's tables and fills both out-parameters.
    if unsafe { dladdr1(ret as *const c_void, &mut info, &mut map, RTLD_DL_LINKMAP) } == 0
        || map.is_null()
    {
        return None;
    }
    let map = map as *mut LinkMap;
    // SAFETY: a live link map: its dynamic section is mapped and ends with DT_NULL.
    let mut entries = unsafe { dynamic_entries((*map).l_ld) };
    entries
        .any(|(tag, _)| tag == DT_RPATH || tag == DT_RUNPATH)
        .then_some(map)
}

/// Tries `file` in the directories `caller` searches (RPATH, LD_LIBRARY_PATH, RUNPATH, in the
/// loader's order), opening the first that exists and loads.
///
/// # Safety
/// `caller` is a live link map, `file` a NUL-terminated string, `real` the C library's dlopen.
unsafe fn search(
    real: DlopenFn,
    caller: *mut LinkMap,
    file: *const c_char,
    mode: c_int,
) -> Option<*mut c_void> {
    let mut size = SerInfo {
        size: 0,
        count: 0,
        paths: [SerPath {
            name: core::ptr::null(),
            flags: 0,
        }],
    };
    // Asking for the search path is the tracker's own work: what dlinfo allocates is not
    // recorded.
    // SAFETY: dlinfo fills the size and count for a live handle (a link map is one).
    let rc = crate::tls::guarded(|| unsafe {
        dlinfo(
            caller as *mut c_void,
            RTLD_DI_SERINFOSIZE,
            &mut size as *mut _ as *mut _,
        )
    });
    if rc != 0 {
        return None;
    }
    let mut buf = [0u64; 2048];
    if size.size > core::mem::size_of_val(&buf) || size.size < core::mem::size_of::<SerInfo>() {
        return None;
    }
    let info = buf.as_mut_ptr() as *mut SerInfo;
    // SAFETY: the buffer holds size.size bytes, 8-aligned; dlinfo fills it as it said it would.
    let paths = unsafe {
        (*info).size = size.size;
        (*info).count = size.count;
        let rc = crate::tls::guarded(|| {
            dlinfo(caller as *mut c_void, RTLD_DI_SERINFO, info as *mut c_void)
        });
        if rc != 0 {
            return None;
        }
        core::slice::from_raw_parts((*info).paths.as_ptr(), (*info).count as usize)
    };
    // SAFETY: the caller's promise.
    let name = unsafe { core::ffi::CStr::from_ptr(file) }.to_bytes();
    let mut path = [0u8; 4096];
    for p in paths {
        if p.flags & LA_SER_DEFAULT != 0 || p.name.is_null() {
            continue;
        }
        // SAFETY: dlinfo's directory names are NUL-terminated strings inside `buf`.
        let dir = unsafe { core::ffi::CStr::from_ptr(p.name) }.to_bytes();
        let n = dir.len() + 1 + name.len();
        if dir.is_empty() || n + 1 > path.len() {
            continue;
        }
        path[..dir.len()].copy_from_slice(dir);
        path[dir.len()] = b'/';
        path[dir.len() + 1..n].copy_from_slice(name);
        path[n] = 0;
        if !exists(&path[..=n]) {
            continue;
        }
        // SAFETY: a NUL-terminated path; forwarding the caller's mode.
        let h = unsafe { real(path.as_ptr() as *const c_char, mode) };
        if !h.is_null() {
            return Some(h);
        }
    }
    None
}

fn exists(path: &[u8]) -> bool {
    let _errno = sys::ErrnoGuard::new();
    // SAFETY: faccessat(2) with a NUL-terminated path.
    unsafe {
        libc::syscall(
            libc::SYS_faccessat,
            libc::AT_FDCWD,
            path.as_ptr(),
            libc::F_OK,
            0,
        ) == 0
    }
}
