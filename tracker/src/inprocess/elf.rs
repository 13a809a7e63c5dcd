//! Reading a loaded object's dynamic relocations: the GOT slots (JUMP_SLOT and GLOB_DAT entries
//! of DT_JMPREL and DT_RELA) through which it calls a function by name, with what the loader
//! told dl_iterate_phdr about it.

use libc::{dl_phdr_info, Elf64_Phdr};

#[cfg(target_arch = "x86_64")]
const R_GLOB_DAT: u32 = 6;
#[cfg(target_arch = "x86_64")]
const R_JUMP_SLOT: u32 = 7;
#[cfg(target_arch = "aarch64")]
const R_GLOB_DAT: u32 = 1025;
#[cfg(target_arch = "aarch64")]
const R_JUMP_SLOT: u32 = 1026;

const DT_NULL: i64 = 0;
const DT_PLTRELSZ: i64 = 2;
const DT_STRTAB: i64 = 5;
const DT_SYMTAB: i64 = 6;
const DT_RELA: i64 = 7;
const DT_RELASZ: i64 = 8;
const DT_RELAENT: i64 = 9;
const DT_STRSZ: i64 = 10;
pub(super) const DT_RPATH: i64 = 15;
const DT_PLTREL: i64 = 20;
const DT_JMPREL: i64 = 23;
pub(super) const DT_RUNPATH: i64 = 29;

/// An entry of a dynamic section.
#[repr(C)]
pub(super) struct Dyn {
    tag: i64,
    val: u64,
}

/// The (tag, value) entries of the dynamic section at `d`, up to DT_NULL (at most 4096; none
/// when `d` is null).
///
/// # Safety
/// `d` is null or a mapped dynamic section ending with DT_NULL, and stays so while the iterator
/// is used.
pub(super) unsafe fn dynamic_entries(d: *const Dyn) -> impl Iterator<Item = (i64, u64)> {
    (0..4096)
        .map(move |n| {
            if d.is_null() {
                return None;
            }
            // SAFETY: the caller's promise; entries before DT_NULL are read only.
            let e = unsafe { &*d.add(n) };
            (e.tag != DT_NULL).then_some((e.tag, e.val))
        })
        .take_while(Option::is_some)
        .flatten()
}

#[repr(C)]
struct Rela {
    offset: u64,
    info: u64,
    addend: i64,
}

#[repr(C)]
struct Sym {
    name: u32,
    _info: u8,
    _other: u8,
    shndx: u16,
    _value: u64,
    _size: u64,
}

/// One slot through which the object calls or takes the address of a function.
pub struct Slot<'a> {
    /// Where the slot is in memory.
    pub address: usize,
    /// The symbol's name.
    pub name: &'a [u8],
    /// The object defines the symbol itself (its slot may bind to its own definition).
    pub defined_here: bool,
}

/// A loaded object as dl_iterate_phdr shows it.
pub struct Object<'a> {
    pub base: usize,
    phdrs: &'a [Elf64_Phdr],
}

impl<'a> Object<'a> {
    /// # Safety
    /// `info` must be the loader's description of a loaded object, valid for `'a` (the
    /// duration of a dl_iterate_phdr callback).
    pub unsafe fn new(info: &'a dl_phdr_info) -> Object<'a> {
        Object {
            base: info.dlpi_addr as usize,
            // SAFETY: the caller's promise.
            phdrs: unsafe { crate::sys::program_headers(info) },
        }
    }

    /// The memory range `[start, end)` of the segment of type `kind` (the first), if any.
    fn segment(&self, kind: u32) -> Option<(usize, usize)> {
        self.phdrs.iter().find(|p| p.p_type == kind).map(|p| {
            let start = self.base.wrapping_add(p.p_vaddr as usize);
            (start, start + p.p_memsz as usize)
        })
    }

    /// Whether `[address, address + 8)` lies in a writable loaded segment.
    pub fn in_writable_segment(&self, address: usize) -> bool {
        self.phdrs.iter().any(|p| {
            let start = self.base.wrapping_add(p.p_vaddr as usize);
            p.p_type == libc::PT_LOAD
                && p.p_flags & libc::PF_W != 0
                && start <= address
                && address + 8 <= start + p.p_memsz as usize
        })
    }

    /// Whether `address` lies in the object's loaded segments.
    pub fn contains(&self, address: usize) -> bool {
        self.phdrs.iter().any(|p| {
            let start = self.base.wrapping_add(p.p_vaddr as usize);
            p.p_type == libc::PT_LOAD && start <= address && address < start + p.p_memsz as usize
        })
    }

    /// The range the loader made read-only after relocation (PT_GNU_RELRO), if any.
    pub fn relro(&self) -> Option<(usize, usize)> {
        self.segment(libc::PT_GNU_RELRO)
    }

    /// A pointer of the dynamic section: glibc relocates most in place, but not in every
    /// object (the vDSO): one below the base is still relative to it.
    fn pointer(&self, value: u64) -> usize {
        let v = value as usize;
        if v < self.base {
            self.base.wrapping_add(v)
        } else {
            v
        }
    }

    /// Calls `f` with each JUMP_SLOT and GLOB_DAT slot naming a symbol (addend 0).
    ///
    /// # Safety
    /// The object must stay loaded while this runs (inside a dl_iterate_phdr callback).
    pub unsafe fn for_each_slot(&self, mut f: impl FnMut(Slot<'_>)) {
        let Some((dynamic, _)) = self.segment(libc::PT_DYNAMIC) else {
            return;
        };
        let mut t = Tables::default();
        // SAFETY: the caller's promise: the dynamic section is mapped and ends with DT_NULL.
        for (tag, v) in unsafe { dynamic_entries(dynamic as *const Dyn) } {
            match tag {
                DT_SYMTAB => t.symtab = self.pointer(v),
                DT_STRTAB => t.strtab = self.pointer(v),
                DT_STRSZ => t.strsz = v as usize,
                DT_RELA => t.rela = self.pointer(v),
                DT_RELASZ => t.relasz = v as usize,
                DT_RELAENT => t.relaent = v as usize,
                DT_JMPREL => t.jmprel = self.pointer(v),
                DT_PLTRELSZ => t.pltrelsz = v as usize,
                DT_PLTREL => t.pltrel = v as i64,
                _ => {}
            }
        }
        if t.symtab == 0 || t.strtab == 0 {
            return;
        }
        if t.relaent == 0 {
            t.relaent = core::mem::size_of::<Rela>();
        }
        if t.relaent != core::mem::size_of::<Rela>() {
            return;
        }
        // SAFETY: the tables named by the dynamic section are mapped while the object is.
        unsafe {
            if t.rela != 0 {
                t.scan(self.base, t.rela, t.relasz, &mut f);
            }
            if t.jmprel != 0 && t.pltrel == DT_RELA && t.jmprel != t.rela {
                t.scan(self.base, t.jmprel, t.pltrelsz, &mut f);
            }
        }
    }
}

#[derive(Default)]
struct Tables {
    symtab: usize,
    strtab: usize,
    strsz: usize,
    rela: usize,
    relasz: usize,
    relaent: usize,
    jmprel: usize,
    pltrelsz: usize,
    pltrel: i64,
}

impl Tables {
    /// # Safety
    /// `[at, at + len)` must be mapped relocation entries of a loaded object whose symbol and
    /// string tables these are.
    unsafe fn scan(&self, base: usize, at: usize, len: usize, f: &mut impl FnMut(Slot<'_>)) {
        let count = len / core::mem::size_of::<Rela>();
        for i in 0..count {
            // SAFETY: the caller's promise.
            let r = unsafe { &*(at as *const Rela).add(i) };
            let kind = (r.info & 0xffff_ffff) as u32;
            let index = (r.info >> 32) as usize;
            if (kind != R_JUMP_SLOT && kind != R_GLOB_DAT) || index == 0 || r.addend != 0 {
                continue;
            }
            // SAFETY: a relocation's symbol index is an entry of the object's symbol table.
            let sym = unsafe { &*(self.symtab as *const Sym).add(index) };
            let start = sym.name as usize;
            if self.strsz != 0 && start >= self.strsz {
                continue;
            }
            // SAFETY: st_name is an offset of a NUL-terminated name in the string table.
            let name =
                unsafe { core::ffi::CStr::from_ptr((self.strtab + start) as *const libc::c_char) }
                    .to_bytes();
            f(Slot {
                address: base.wrapping_add(r.offset as usize),
                name,
                defined_here: sym.shndx != 0,
            });
        }
    }
}
