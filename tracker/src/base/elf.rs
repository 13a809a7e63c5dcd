//! Reading a loaded object's dynamic relocations: the GOT slots (JUMP_SLOT and GLOB_DAT entries
//! of DT_JMPREL and DT_RELA) through which it calls a function by name, with what the loader
//! told dl_iterate_phdr about it; and what its dynamic symbol table says of a name (through
//! its GNU or SysV hash table, as the loader looks it up).

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
const DT_HASH: i64 = 4;
const DT_STRTAB: i64 = 5;
const DT_SYMTAB: i64 = 6;
const DT_RELA: i64 = 7;
const DT_RELASZ: i64 = 8;
const DT_RELAENT: i64 = 9;
const DT_STRSZ: i64 = 10;
pub(crate) const DT_RPATH: i64 = 15;
const DT_PLTREL: i64 = 20;
const DT_JMPREL: i64 = 23;
pub(crate) const DT_RUNPATH: i64 = 29;
const DT_GNU_HASH: i64 = 0x6fff_fef5;
const DT_VERSYM: i64 = 0x6fff_fff0;

/// An entry of a dynamic section.
#[repr(C)]
pub(crate) struct Dyn {
    tag: i64,
    val: u64,
}

/// The (tag, value) entries of the dynamic section at `d`, up to DT_NULL (at most 4096; none
/// when `d` is null).
///
/// # Safety
/// `d` is null or a mapped dynamic section ending with DT_NULL, and stays so while the iterator
/// is used.
pub(crate) unsafe fn dynamic_entries(d: *const Dyn) -> impl Iterator<Item = (i64, u64)> {
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
    info: u8,
    _other: u8,
    shndx: u16,
    value: u64,
    size: u64,
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
            phdrs: unsafe { crate::phdr::program_headers(info) },
        }
    }

    /// The memory range `[start, end)` of the segment of type `kind` (the first), if any.
    fn segment(&self, kind: u32) -> Option<(usize, usize)> {
        self.phdrs.iter().find(|p| p.p_type == kind).map(|p| {
            let start = self.base.wrapping_add(p.p_vaddr as usize);
            (start, start + p.p_memsz as usize)
        })
    }

    /// The memory ranges `[start, end)` of the writable loaded segments.
    pub fn writable_segments(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.phdrs
            .iter()
            .filter(|p| p.p_type == libc::PT_LOAD && p.p_flags & libc::PF_W != 0)
            .map(|p| {
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

    /// The start of the object's mapping (its first loaded segment's page), as dladdr gives it
    /// (`dli_fbase`).
    pub fn start(&self) -> usize {
        let first = self.phdrs.iter().find(|p| p.p_type == libc::PT_LOAD);
        let vaddr = first.map_or(0, |p| p.p_vaddr as usize) & !(super::sys::page_size() - 1);
        self.base.wrapping_add(vaddr)
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

    /// The tables named by the object's dynamic section (all 0 when it has none).
    ///
    /// # Safety
    /// The object must stay loaded while this runs (inside a dl_iterate_phdr callback).
    unsafe fn tables(&self) -> Tables {
        let mut t = Tables::default();
        let Some((dynamic, _)) = self.segment(libc::PT_DYNAMIC) else {
            return t;
        };
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
                DT_HASH => t.hash = self.pointer(v),
                DT_GNU_HASH => t.gnu_hash = self.pointer(v),
                DT_VERSYM => t.versym = self.pointer(v),
                _ => {}
            }
        }
        t
    }

    /// Calls `f` with each JUMP_SLOT and GLOB_DAT slot naming a symbol (addend 0).
    ///
    /// # Safety
    /// The object must stay loaded while this runs (inside a dl_iterate_phdr callback).
    pub unsafe fn for_each_slot(&self, mut f: impl FnMut(Slot<'_>)) {
        // SAFETY: the caller's promise.
        let mut t = unsafe { self.tables() };
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

    /// What the object's dynamic symbol table says of the function `name`, looked up as the
    /// loader looks up a name without a version (the default version, `name@@V`): defined here
    /// (a canonical PLT entry of a non-PIE executable is undefined: it is no definition).
    ///
    /// # Safety
    /// The object must stay loaded while this runs (inside a dl_iterate_phdr callback).
    pub unsafe fn definition(&self, name: &[u8]) -> Definition {
        // SAFETY: the caller's promise.
        match unsafe { self.defining_symbol(name) } {
            Some((_, Some(a))) => Definition::At(self.base.wrapping_add(a)),
            Some((_, None)) => Definition::Indirect,
            None => Definition::Absent,
        }
    }

    /// Where the object's function `name` lies, `[start, end)` from its symbol's value and size
    /// (looked up as [`Object::definition`] does); None when it does not define it as a plain
    /// function with a size.
    ///
    /// # Safety
    /// The object must stay loaded while this runs (inside a dl_iterate_phdr callback).
    pub unsafe fn function_extent(&self, name: &[u8]) -> Option<(usize, usize)> {
        // SAFETY: the caller's promise.
        let (index, at) = unsafe { self.defining_symbol(name) }?;
        // SAFETY: the caller's promise; `index` is an entry of the symbol table.
        let t = unsafe { self.tables() };
        // SAFETY: as above.
        let size = unsafe { (*(t.symtab as *const Sym).add(index)).size } as usize;
        let start = self.base.wrapping_add(at?);
        (size > 0).then_some((start, start + size))
    }

    /// The symbol table entry defining `name` in its default version, found through the
    /// object's hash table as the loader finds it: its index and its value (None for an
    /// indirect function).
    ///
    /// # Safety
    /// The object must stay loaded while this runs (inside a dl_iterate_phdr callback).
    unsafe fn defining_symbol(&self, name: &[u8]) -> Option<(usize, Option<usize>)> {
        // SAFETY: the caller's promise.
        let t = unsafe { self.tables() };
        if t.symtab == 0 || t.strtab == 0 {
            return None;
        }
        let mut found = None;
        let mut check = |index: usize| {
            // SAFETY: an index from the object's hash table is an entry of its symbol table.
            let defined = unsafe { t.defines(index, name) };
            found = defined.map(|at| (index, at));
            found.is_some()
        };
        // SAFETY: the hash tables named by the dynamic section are mapped while the object is.
        unsafe {
            if t.gnu_hash != 0 {
                gnu_hash_chain(t.gnu_hash, name, &mut check);
            } else if t.hash != 0 {
                sysv_hash_chain(t.hash, name, &mut check);
            }
        }
        found
    }
}

impl Object<'_> {
    /// Whether `at` is the object's canonical PLT entry for `name`: its dynamic symbol table
    /// has `name` undefined, valued at `at` (a non-PIE executable that takes the function's
    /// address). Such an entry is in the hash table, as the loader binds other objects to it.
    ///
    /// # Safety
    /// The object must stay loaded while this runs (inside a dl_iterate_phdr callback).
    pub unsafe fn is_stub(&self, name: &[u8], at: usize) -> bool {
        // SAFETY: the caller's promise.
        let t = unsafe { self.tables() };
        if t.symtab == 0 || t.strtab == 0 {
            return false;
        }
        let mut stub = false;
        let mut check = |index: usize| {
            // SAFETY: an index from the object's hash table is an entry of its symbol table.
            let sym = unsafe { &*(t.symtab as *const Sym).add(index) };
            // SAFETY: as above; the name is checked against the string table's size.
            stub = sym.shndx == 0
                && sym.value != 0
                && self.base.wrapping_add(sym.value as usize) == at
                && unsafe { t.name(sym) } == Some(name);
            stub
        };
        // SAFETY: the hash tables named by the dynamic section are mapped while the object is.
        unsafe {
            if t.gnu_hash != 0 {
                gnu_hash_chain(t.gnu_hash, name, &mut check);
            } else if t.hash != 0 {
                sysv_hash_chain(t.hash, name, &mut check);
            }
        }
        stub
    }
}

/// What an object's symbol table says of a function's name.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Definition {
    /// Not defined there (absent, or undefined: a reference, or a canonical PLT entry).
    Absent,
    /// Defined there, at this address.
    At(usize),
    /// An indirect function (STT_GNU_IFUNC): its address is what its resolver returns.
    Indirect,
}

const STT_FUNC: u8 = 2;
const STT_GNU_IFUNC: u8 = 10;
const STB_GLOBAL: u8 = 1;
const STB_WEAK: u8 = 2;
const STB_GNU_UNIQUE: u8 = 10;
/// A version index with this bit is a non-default version (`name@V`, not `name@@V`).
const VERSYM_HIDDEN: u16 = 0x8000;

/// The GNU hash of a symbol name.
fn gnu_hash(name: &[u8]) -> u32 {
    name.iter()
        .fold(5381u32, |h, &c| h.wrapping_mul(33).wrapping_add(c as u32))
}

/// The SysV (DT_HASH) hash of a symbol name.
fn sysv_hash(name: &[u8]) -> u32 {
    name.iter().fold(0u32, |h, &c| {
        let h = (h << 4).wrapping_add(c as u32);
        let g = h & 0xf000_0000;
        (h ^ (g >> 24)) & !g
    })
}

/// Calls `check` with each symbol index of `name`'s chain of a DT_GNU_HASH table until it says
/// it is done.
///
/// # Safety
/// `table` is a mapped DT_GNU_HASH table of a loaded object.
unsafe fn gnu_hash_chain(table: usize, name: &[u8], check: &mut impl FnMut(usize) -> bool) {
    let words = table as *const u32;
    // SAFETY: the caller's promise: the header, bloom filter, buckets and chains are mapped.
    unsafe {
        let (buckets, offset, bloom) = (*words as usize, *words.add(1) as usize, *words.add(2));
        if buckets == 0 {
            return;
        }
        let bucket = words.add(4 + 2 * bloom as usize);
        let chain = bucket.add(buckets);
        let h = gnu_hash(name);
        let mut i = *bucket.add(h as usize % buckets) as usize;
        if i < offset {
            return;
        }
        loop {
            let entry = *chain.add(i - offset);
            if (entry | 1) == (h | 1) && check(i) {
                return;
            }
            if entry & 1 != 0 {
                return;
            }
            i += 1;
        }
    }
}

/// Calls `check` with each symbol index of `name`'s chain of a DT_HASH table until it says it
/// is done.
///
/// # Safety
/// `table` is a mapped DT_HASH table of a loaded object.
unsafe fn sysv_hash_chain(table: usize, name: &[u8], check: &mut impl FnMut(usize) -> bool) {
    let words = table as *const u32;
    // SAFETY: the caller's promise: the header, buckets and chains are mapped.
    unsafe {
        let (buckets, chains) = (*words as usize, *words.add(1) as usize);
        if buckets == 0 {
            return;
        }
        let chain = words.add(2 + buckets);
        let mut i = *words.add(2 + sysv_hash(name) as usize % buckets) as usize;
        // A chain visits each symbol at most once: a longer one is a damaged table.
        for _ in 0..chains {
            if i == 0 || i >= chains || check(i) {
                return;
            }
            i = *chain.add(i) as usize;
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
    hash: usize,
    gnu_hash: usize,
    versym: usize,
}

impl Tables {
    /// Whether symbol `index` is a definition of the function `name` in its default version:
    /// None if not; Some(None) for an indirect function; Some(Some(value)) else.
    ///
    /// # Safety
    /// `index` is an entry of this symbol table.
    unsafe fn defines(&self, index: usize, name: &[u8]) -> Option<Option<usize>> {
        // SAFETY: the caller's promise.
        let sym = unsafe { &*(self.symtab as *const Sym).add(index) };
        let (kind, bind) = (sym.info & 0xf, sym.info >> 4);
        let global = matches!(bind, STB_GLOBAL | STB_WEAK | STB_GNU_UNIQUE);
        if sym.shndx == 0 || sym.value == 0 || !global || !matches!(kind, STT_FUNC | STT_GNU_IFUNC)
        {
            return None;
        }
        if self.versym != 0 {
            // SAFETY: a version table has one entry per symbol.
            let version = unsafe { *(self.versym as *const u16).add(index) };
            if version & VERSYM_HIDDEN != 0 {
                return None;
            }
        }
        // SAFETY: the symbol's name is in the string table (checked against its size).
        if unsafe { self.name(sym) } != Some(name) {
            return None;
        }
        Some((kind == STT_FUNC).then_some(sym.value as usize))
    }

    /// A symbol's name, None when it lies outside the string table.
    ///
    /// # Safety
    /// `sym` is an entry of this symbol table.
    unsafe fn name(&self, sym: &Sym) -> Option<&[u8]> {
        let start = sym.name as usize;
        if self.strsz != 0 && start >= self.strsz {
            return None;
        }
        // SAFETY: st_name is an offset of a NUL-terminated name in the string table.
        Some(
            unsafe { core::ffi::CStr::from_ptr((self.strtab + start) as *const libc::c_char) }
                .to_bytes(),
        )
    }

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
            // SAFETY: as above.
            let Some(name) = (unsafe { self.name(sym) }) else {
                continue;
            };
            f(Slot {
                address: base.wrapping_add(r.offset as usize),
                name,
                defined_here: sym.shndx != 0,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_the_loaders() {
        // The examples of the GNU hash section's description (and the SysV ABI's function).
        assert_eq!(gnu_hash(b""), 5381);
        assert_eq!(gnu_hash(b"printf"), 0x156b_2bb8);
        assert_eq!(sysv_hash(b"printf"), 0x0779_05a6);
    }
}
