//! The loaded modules' code ranges and unwind tables (`.eh_frame_hdr` and `.eh_frame`, read in
//! place from the mapped segments), as one immutable snapshot that walks share.
//!
//! A snapshot is rebuilt when the loader's lists change: after a `dlclose` (interposed here: a
//! closed module's tables are unmapped), when a walk meets code no module covers (a `dlopen`),
//! and every so many walks (libc's own loads and unloads, which pass no interposable function).
//! A replaced snapshot is kept, never freed: a walk on another thread may still be reading it
//! (a few KiB per dlopen or dlclose).

use crate::real::forward;
use framehop::x86_64::UnwinderX86_64;
use framehop::{ExplicitModuleSectionInfo, Module, MustNotAllocateDuringUnwind, Unwinder};
use libc::{c_int, c_void};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};

/// Walks of a thread between two checks of the loader's counters.
const CHECK_EVERY: u32 = 4096;

pub type Unwind = UnwinderX86_64<&'static [u8], MustNotAllocateDuringUnwind>;

pub struct Snapshot {
    pub unwinder: Unwind,
    /// Code ranges of the modules, sorted by start.
    code: Vec<(u64, u64)>,
    /// The tracker's own code: the frames a walk starts in and skips.
    pub own: (u64, u64),
    /// The C library's code, where its signal return trampoline is.
    pub libc: (u64, u64),
    /// The loader's (adds, subs) counters when the snapshot was made.
    counters: (u64, u64),
}

impl Snapshot {
    /// The code range holding `pc`, if a module covers it.
    pub fn code_of(&self, pc: u64) -> Option<(u64, u64)> {
        let i = self.code.partition_point(|&(start, _)| start <= pc);
        let (start, end) = *self.code.get(i.checked_sub(1)?)?;
        (pc < end).then_some((start, end))
    }

    pub fn is_own(&self, pc: u64) -> bool {
        self.own.0 <= pc && pc < self.own.1
    }
}

static CURRENT: AtomicPtr<Snapshot> = AtomicPtr::new(core::ptr::null_mut());
/// A module was closed since the snapshot was made.
static STALE: AtomicBool = AtomicBool::new(false);
/// A thread is building a snapshot (others go on with the current one).
static BUILDING: AtomicBool = AtomicBool::new(false);

/// The snapshot to walk with, rebuilt first if the loader's lists changed.
pub fn current(walks: &mut u32) -> Option<&'static Snapshot> {
    *walks = walks.wrapping_add(1);
    let mut p = CURRENT.load(Ordering::Acquire);
    let due = walks.is_multiple_of(CHECK_EVERY);
    // SAFETY: snapshots are never freed.
    if p.is_null() || STALE.load(Ordering::Relaxed) || (due && changed(unsafe { &*p })) {
        rebuild();
        p = CURRENT.load(Ordering::Acquire);
    }
    // SAFETY: as above.
    (!p.is_null()).then(|| unsafe { &*p })
}

/// A walk met code no module covers: perhaps a module loaded since. True when a new snapshot
/// was made.
pub fn refresh_if_changed() -> bool {
    let p = CURRENT.load(Ordering::Acquire);
    if p.is_null() {
        return false;
    }
    // SAFETY: snapshots are never freed.
    if !changed(unsafe { &*p }) {
        return false;
    }
    rebuild();
    CURRENT.load(Ordering::Acquire) != p
}

/// False too when the loader's list may not be read now (the snapshot is kept).
fn changed(snapshot: &Snapshot) -> bool {
    counters().is_some_and(|c| c != snapshot.counters)
}

unsafe extern "C" fn read_counters(
    info: *mut libc::dl_phdr_info,
    _size: usize,
    data: *mut c_void,
) -> c_int {
    // SAFETY: the loader passes a valid info; data is the &mut (u64, u64) given below.
    unsafe { *(data as *mut (u64, u64)) = ((*info).dlpi_adds, (*info).dlpi_subs) };
    1
}

/// The loader's counts of modules loaded and unloaded so far; None when its list may not be
/// read now.
fn counters() -> Option<(u64, u64)> {
    let mut c = (0u64, 0u64);
    // SAFETY: read_counters only reads the info and writes the pair it is given.
    let read = unsafe { crate::phdr::iterate_phdr(read_counters, &mut c as *mut _ as *mut c_void) };
    read.then_some(c)
}

fn rebuild() {
    // A child that may not read the loader's list keeps the snapshot it inherited.
    if !crate::phdr::loader_readable() && !CURRENT.load(Ordering::Acquire).is_null() {
        return;
    }
    // Inside dlclose or a dl_iterate_phdr callback (phdr::may_iterate_phdr): the list is not
    // read; a later walk rebuilds (a stale mark stays).
    if crate::loader_lock::held_by_this_thread() {
        return;
    }
    if BUILDING.swap(true, Ordering::Acquire) {
        return;
    }
    // Cleared first: a dlclose while building marks the new snapshot stale again.
    STALE.store(false, Ordering::Relaxed);
    // The capture's module map gets the new modules too (the reporter symbolizes with it).
    crate::modules::refresh();
    let snapshot = Box::into_raw(Box::new(build()));
    // The old one is leaked on purpose (see above).
    CURRENT.swap(snapshot, Ordering::AcqRel);
    BUILDING.store(false, Ordering::Release);
}

/// In a fork child: a thread of the parent that was building is gone with its claim.
pub fn after_fork() {
    BUILDING.store(false, Ordering::Relaxed);
}

struct Builder {
    unwinder: Unwind,
    code: Vec<(u64, u64)>,
    counters: (u64, u64),
}

fn build() -> Snapshot {
    let mut b = Builder {
        unwinder: Unwind::new(),
        code: Vec::with_capacity(64),
        counters: (0, 0),
    };
    // SAFETY: add_module only reads loader data and appends to `b`.
    unsafe { crate::phdr::iterate_phdr(add_module, &mut b as *mut Builder as *mut c_void) };
    b.code.sort_unstable();
    let mut s = Snapshot {
        unwinder: b.unwinder,
        code: b.code,
        own: (0, 0),
        libc: (0, 0),
        counters: b.counters,
    };
    s.own = s.code_of(own_address()).unwrap_or((0, 0));
    s.libc = s
        .code_of(libc::sigaction as *const () as usize as u64)
        .unwrap_or((0, 0));
    s
}

/// An address inside the tracker's code.
fn own_address() -> u64 {
    own_address as fn() -> u64 as usize as u64
}

unsafe extern "C" fn add_module(
    info: *mut libc::dl_phdr_info,
    _size: usize,
    data: *mut c_void,
) -> c_int {
    // SAFETY: the loader passes a valid info for the duration of the call; data is &mut Builder.
    let (info, b) = unsafe { (&*info, &mut *(data as *mut Builder)) };
    b.counters = (info.dlpi_adds, info.dlpi_subs);
    // SAFETY: the loader's description of a loaded module, valid during the callback.
    let phdrs = unsafe { crate::phdr::program_headers(info) };
    let base = info.dlpi_addr;
    let mut code: Option<(u64, u64)> = None;
    let mut hdr = None;
    for ph in phdrs {
        if ph.p_type == libc::PT_LOAD && ph.p_flags & libc::PF_X != 0 {
            let (s, e) = (ph.p_vaddr, ph.p_vaddr + ph.p_memsz);
            code = Some(code.map_or((s, e), |(a, z)| (a.min(s), z.max(e))));
        } else if ph.p_type == libc::PT_GNU_EH_FRAME {
            hdr = Some((ph.p_vaddr, ph.p_memsz));
        }
    }
    let Some((start, end)) = code else { return 0 };
    let mut sections = ExplicitModuleSectionInfo {
        base_svma: 0,
        text_svma: Some(start..end),
        ..Default::default()
    };
    if let Some((hdr_svma, hdr_len)) = hdr {
        if let Some(eh_frame_svma) = eh_frame_svma(base, hdr_svma, hdr_len) {
            if let Some(len) = mapped_after(phdrs, eh_frame_svma) {
                // SAFETY: both ranges lie in loaded segments of the module, mapped while it is
                // loaded; a dlclose retires the snapshot that holds them.
                unsafe {
                    sections.eh_frame_hdr = Some(bytes(base + hdr_svma, hdr_len));
                    sections.eh_frame = Some(bytes(base + eh_frame_svma, len));
                }
                sections.eh_frame_hdr_svma = Some(hdr_svma..hdr_svma + hdr_len);
                sections.eh_frame_svma = Some(eh_frame_svma..eh_frame_svma + len);
            }
        }
    }
    let avma = base.wrapping_add(start)..base.wrapping_add(end);
    b.code.push((avma.start, avma.end));
    b.unwinder
        .add_module(Module::new(String::new(), avma, base, sections));
    0
}

/// # Safety
/// `[addr, addr + len)` must stay mapped and unchanged for as long as the slice is used.
unsafe fn bytes(addr: u64, len: u64) -> &'static [u8] {
    // SAFETY: the caller's promise.
    unsafe { core::slice::from_raw_parts(addr as *const u8, len as usize) }
}

/// The `.eh_frame` address an `.eh_frame_hdr` points at (in the module's terms).
fn eh_frame_svma(base: u64, hdr_svma: u64, hdr_len: u64) -> Option<u64> {
    if hdr_len < 8 {
        return None;
    }
    let at = base.wrapping_add(hdr_svma);
    // SAFETY: the PT_GNU_EH_FRAME segment is mapped, and at least 8 bytes long.
    let h = unsafe { bytes(at, hdr_len.min(16)) };
    if h[0] != 1 {
        return None;
    }
    let enc = h[1];
    let field = at + 4;
    let raw = |n: usize| -> Option<u64> {
        let b = h.get(4..4 + n)?;
        let mut v = [0u8; 8];
        v[..n].copy_from_slice(b);
        Some(u64::from_le_bytes(v))
    };
    let value = match enc & 0x0f {
        0x00 | 0x04 | 0x0c => raw(8)?,
        0x03 => raw(4)?,
        0x0b => raw(4)? as u32 as i32 as i64 as u64,
        _ => return None,
    };
    let avma = match enc & 0x70 {
        0x00 => value,
        0x10 => field.wrapping_add(value),
        0x30 => at.wrapping_add(value),
        _ => return None,
    };
    Some(avma.wrapping_sub(base))
}

/// Bytes mapped from `svma` to the end of the loaded segment holding it.
fn mapped_after(phdrs: &[libc::Elf64_Phdr], svma: u64) -> Option<u64> {
    phdrs
        .iter()
        .filter(|ph| ph.p_type == libc::PT_LOAD)
        .find(|ph| ph.p_vaddr <= svma && svma < ph.p_vaddr + ph.p_memsz)
        .map(|ph| ph.p_vaddr + ph.p_memsz - svma)
}

type DlcloseFn = unsafe extern "C" fn(*mut c_void) -> c_int;
static REAL_DLCLOSE: AtomicUsize = AtomicUsize::new(0);

/// The interposed `dlclose`: the module's unwind tables go with it, so the snapshot holding them
/// is replaced before the next walk.
///
/// # Safety
/// Same contract as the C library's dlclose.
pub unsafe extern "C" fn dlclose(handle: *mut c_void) -> c_int {
    let mut f = REAL_DLCLOSE.load(Ordering::Relaxed);
    if f == 0 {
        // SAFETY: looking up the next definition of a libc function by its NUL-terminated name.
        f = unsafe { libc::dlsym(libc::RTLD_NEXT, c"dlclose".as_ptr()) } as usize;
        if f == 0 {
            return -1;
        }
        REAL_DLCLOSE.store(f, Ordering::Relaxed);
    }
    if crate::ACTIVE.load(Ordering::Acquire) {
        // The module goes into the capture's map before it is gone (its frames are symbolized
        // from it), if no flush wrote it yet.
        crate::tls::guarded(crate::modules::refresh);
    }
    // SAFETY: f is libc's dlclose, found above.
    let real: DlcloseFn = unsafe { core::mem::transmute::<usize, DlcloseFn>(f) };
    let rc = forward!(real; handle);
    STALE.store(true, Ordering::Release);
    rc
}

/// A module may have been closed (the in-process dlclose hook, which does not pass through the
/// interposed `dlclose`): the snapshot is replaced before the next walk.
pub fn module_closed() {
    STALE.store(true, Ordering::Release);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `eh_frame_svma` reads in `hdr`, as an offset from the header's start, for a module
    /// loaded 0x10 bytes below it.
    fn target(hdr: &[u8; 16]) -> Option<i64> {
        let at = hdr.as_ptr() as u64;
        eh_frame_svma(0x10, at - 0x10, 16).map(|svma| (svma + 0x10).wrapping_sub(at) as i64)
    }

    #[test]
    fn eh_frame_hdr_points_at_eh_frame() {
        // version 1, eh_frame_ptr pcrel|sdata4 (0x1b), then the pointer: -0x100 from the field.
        let mut hdr = [0u8; 16];
        hdr[..4].copy_from_slice(&[1, 0x1b, 0x03, 0x3b]);
        hdr[4..8].copy_from_slice(&(-0x100i32).to_le_bytes());
        assert_eq!(target(&hdr), Some(4 - 0x100));
        // datarel|udata4: from the header's start.
        hdr[1] = 0x33;
        hdr[4..8].copy_from_slice(&0x40u32.to_le_bytes());
        assert_eq!(target(&hdr), Some(0x40));
        // An encoding not known, or another version: none.
        hdr[1] = 0x4b;
        assert_eq!(target(&hdr), None);
        hdr[1] = 0x1b;
        hdr[0] = 2;
        assert_eq!(target(&hdr), None);
    }

    #[test]
    fn the_loaded_modules_cover_this_code_and_the_c_library() {
        let s = build();
        assert!(s.is_own(own_address()));
        assert!(s.code_of(own_address()).is_some());
        assert_ne!(s.libc, (0, 0));
        assert!(s.code_of(8).is_none());
    }
}
