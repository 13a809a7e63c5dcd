//! The loaded modules (executable and shared objects): path, build-id, load address and
//! segments, written to Meta chunks so that the reporter can symbolize after the process is gone.
//! Checked again at every chunk flush: the loader's `adds` counter tells when something new was
//! loaded (dlopen), without hooking dlopen itself (which would change the caller dlopen sees).

use crate::capture::CAPTURE;
use crate::lock::SpinLock;
use crate::sys;
use memtrace_format::record::Segment;
use memtrace_format::Encoder;
use std::sync::atomic::{AtomicU64, Ordering};

struct Known {
    /// (load base, hash of the path) of modules already written.
    seen: Vec<(u64, u64)>,
    seq: u32,
}

static KNOWN: SpinLock<Known> = SpinLock::new(Known {
    seen: Vec::new(),
    seq: 0,
});
static LAST_ADDS: AtomicU64 = AtomicU64::new(u64::MAX);

/// Forgets what was written (a new capture starts).
pub fn reset() {
    let mut k = KNOWN.lock();
    k.seen.clear();
    k.seq = 0;
    LAST_ADDS.store(u64::MAX, Ordering::Relaxed);
}

unsafe extern "C" fn read_adds(
    info: *mut libc::dl_phdr_info,
    _size: usize,
    data: *mut libc::c_void,
) -> libc::c_int {
    // SAFETY: the loader passes a valid info; data is the &mut u64 given below.
    unsafe { *(data as *mut u64) = (*info).dlpi_adds };
    1
}

/// Writes the modules loaded since the last call, if any.
pub fn refresh() {
    let mut adds = 0u64;
    // SAFETY: read_adds only reads the info and writes the u64 it is given.
    let read =
        unsafe { crate::phdr::iterate_phdr(read_adds, &mut adds as *mut u64 as *mut libc::c_void) };
    // Not readable now (phdr::may_iterate_phdr): a later flush writes what is new.
    if !read || adds == LAST_ADDS.load(Ordering::Relaxed) {
        return;
    }
    LAST_ADDS.store(adds, Ordering::Relaxed);
    write_new_modules();
}

struct Collected {
    buf: Vec<u8>,
    enc: Encoder,
    count: u32,
    known: *mut Known,
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

unsafe extern "C" fn collect(
    info: *mut libc::dl_phdr_info,
    _size: usize,
    data: *mut libc::c_void,
) -> libc::c_int {
    // SAFETY: the loader passes a valid info for the duration of the call; data is &mut Collected.
    let (info, c) = unsafe { (&*info, &mut *(data as *mut Collected)) };
    let base = info.dlpi_addr;
    let mut path_buf = [0u8; 4096];
    // SAFETY: dlpi_name is a NUL-terminated string (possibly empty) owned by the loader.
    let name = unsafe { core::ffi::CStr::from_ptr(info.dlpi_name) }.to_bytes();
    // The executable is the entry without a name.
    let path: &[u8] = if name.is_empty() {
        let n = sys::readlink_exe(&mut path_buf);
        &path_buf[..n]
    } else {
        name
    };
    if path.is_empty() && base == 0 {
        return 0;
    }
    let key = (base, fnv(path));
    // SAFETY: the caller holds the KNOWN lock for the whole iteration.
    let known = unsafe { &mut *c.known };
    if known.seen.contains(&key) {
        return 0;
    }
    known.seen.push(key);
    let mut segments = Vec::new();
    let mut build_id: &[u8] = &[];
    // SAFETY: the loader's description of a loaded object, valid during the callback.
    for ph in unsafe { crate::phdr::program_headers(info) } {
        if ph.p_type == libc::PT_LOAD {
            segments.push(Segment {
                vaddr: ph.p_vaddr,
                memsz: ph.p_memsz,
                file_offset: ph.p_offset,
            });
        } else if ph.p_type == libc::PT_NOTE && build_id.is_empty() {
            // SAFETY: a loaded PT_NOTE segment is mapped at base + p_vaddr for p_memsz bytes.
            let notes = unsafe {
                core::slice::from_raw_parts((base + ph.p_vaddr) as *const u8, ph.p_memsz as usize)
            };
            build_id = find_build_id(notes);
        }
    }
    let need = Encoder::module_len(path, build_id, segments.len());
    let at = c.buf.len();
    c.buf.resize(at + need, 0);
    let end = c
        .enc
        .module(&mut c.buf, at, base, path, build_id, &segments);
    c.buf.truncate(end);
    c.count += 1;
    0
}

/// The GNU build-id in a PT_NOTE segment, or empty.
fn find_build_id(notes: &[u8]) -> &[u8] {
    let mut pos = 0usize;
    while pos + 12 <= notes.len() {
        let word = |i: usize| {
            u32::from_ne_bytes([notes[i], notes[i + 1], notes[i + 2], notes[i + 3]]) as usize
        };
        let (namesz, descsz, ntype) = (word(pos), word(pos + 4), word(pos + 8));
        let name_at = pos + 12;
        let desc_at = name_at + namesz.div_ceil(4) * 4;
        let next = desc_at + descsz.div_ceil(4) * 4;
        if next > notes.len() {
            break;
        }
        if ntype == 3 && namesz == 4 && &notes[name_at..name_at + 4] == b"GNU\0" {
            return &notes[desc_at..desc_at + descsz];
        }
        pos = next;
    }
    &[]
}

fn write_new_modules() {
    let mut known = KNOWN.lock();
    let mut c = Collected {
        buf: Vec::with_capacity(8192),
        enc: Encoder::new(),
        count: 0,
        known: &mut *known as *mut Known,
    };
    // SAFETY: collect only reads loader data and appends to `c`.
    unsafe { crate::phdr::iterate_phdr(collect, &mut c as *mut Collected as *mut libc::c_void) };
    if c.count == 0 {
        return;
    }
    if CAPTURE.write_meta(known.seq, c.count, &c.buf) {
        known.seq += 1;
    }
}

pub fn lock_for_fork() {
    KNOWN.raw_lock();
}

pub fn unlock_after_fork() {
    KNOWN.raw_unlock();
}
