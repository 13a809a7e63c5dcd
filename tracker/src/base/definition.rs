//! Where a function the process calls by name is really defined.
//!
//! `dlsym(RTLD_DEFAULT, "malloc")` gives the first symbol `malloc` of the global scope, and in a
//! non-PIE executable that takes the function's address (Debian's and Ubuntu's
//! `/usr/bin/python3`; any C program built with `-no-pie -fno-pic` that writes `f = malloc`) that
//! symbol is no definition: it is undefined, valued at the executable's own PLT stub (a
//! "canonical PLT entry", so that the function's address is one in every object). The stub jumps
//! through the executable's GOT slot, which holds the tracker's hook when the tracker is
//! preloaded, or after in-process tracking patched it: a hook that forwards to the stub calls
//! itself forever. So a stub is told from a definition (dladdr1's symbol entry is undefined),
//! and the definition behind it is found as the loader bound the executable's own slot: the
//! first loaded object, in load order, that defines the name. The tracker is skipped: it is
//! never the definition a hook forwards to. Objects are read in memory (their hash tables), so
//! the walk calls nothing that locks or allocates.

use crate::elf::{Definition, Object};
use libc::{c_int, c_void};

/// dladdr1's request for the symbol table entry (glibc's dlfcn.h).
const RTLD_DL_SYMENT: c_int = 1;
/// The section index of an undefined symbol (elf.h).
const SHN_UNDEF: u16 = 0;

/// What the global scope says of a name.
#[derive(Clone, Copy)]
pub struct Global {
    /// `dlsym(RTLD_DEFAULT, name)`: the address the process's code uses for the function
    /// (a canonical PLT stub, in a non-PIE executable that takes the function's address).
    pub address: usize,
    /// The definition that address leads to: the address itself unless it is a stub; 0 when
    /// none was found.
    pub definition: usize,
}

/// The global symbol `name`, and the definition it leads to.
pub fn global(name: &core::ffi::CStr) -> Global {
    resolve(name, place_of, object_of).0
}

/// `dlsym(RTLD_DEFAULT, name)`, the definition it leads to (found past a stub), and the object
/// holding that definition, with `place` telling a stub and its object and `object_of_definition`
/// the object of a definition found past a stub.
fn resolve(
    name: &core::ffi::CStr,
    place: impl Fn(usize) -> Place,
    object_of_definition: impl Fn(usize) -> usize,
) -> (Global, usize) {
    // SAFETY: dlsym with a NUL-terminated name and a pseudo-handle.
    let address = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) } as usize;
    let place = place(address);
    let (definition, base) = if address != 0 && place.stub {
        let d = first_definition(name.to_bytes());
        (d, object_of_definition(d))
    } else {
        (address, place.object)
    };
    let global = Global {
        address,
        definition,
    };
    (global, base)
}

/// What the loader says of an address.
#[derive(Clone, Copy)]
pub struct Place {
    /// The base of the object holding it (as [`object_of`]), 0 when none does.
    pub object: usize,
    /// The symbol there is undefined where it lies: a canonical PLT entry, which only jumps
    /// through its object's GOT slot, not a function.
    pub stub: bool,
}

/// The object holding `p` and whether the symbol at `p` is a stub, from one dladdr1 call.
pub fn place_of(p: usize) -> Place {
    let none = Place {
        object: 0,
        stub: false,
    };
    if p == 0 {
        return none;
    }
    match lookup(p) {
        Some((info, sym)) => Place {
            object: info.dli_fbase as usize,
            stub: sym.is_some_and(|sym| sym.st_shndx == SHN_UNDEF),
        },
        None => none,
    }
}

/// dladdr1's answer for `p`: the object's description and the symbol table entry covering `p`.
fn lookup(p: usize) -> Option<(libc::Dl_info, Option<libc::Elf64_Sym>)> {
    // SAFETY: dladdr1 only reads the loader's tables; it fills `info` and points `sym` at the
    // loader's symbol entry for `p`, valid while the object is loaded (copied out at once).
    unsafe {
        let mut info: libc::Dl_info = core::mem::zeroed();
        let mut sym: *const libc::Elf64_Sym = core::ptr::null();
        let found = libc::dladdr1(
            p as *const c_void,
            &mut info,
            &mut sym as *mut *const libc::Elf64_Sym as *mut *mut c_void,
            RTLD_DL_SYMENT,
        );
        (found != 0).then(|| (info, (!sym.is_null()).then(|| *sym)))
    }
}

/// The loader's symbol table entry for the symbol at `p` (dladdr1), when one covers it.
pub fn symbol_entry(p: usize) -> Option<libc::Elf64_Sym> {
    lookup(p).and_then(|(_, sym)| sym)
}

/// The base address of the object holding `p`, 0 when none does.
pub fn object_of(p: usize) -> usize {
    // SAFETY: dladdr only reads the loader's tables and fills `info`.
    let mut info: libc::Dl_info = unsafe { core::mem::zeroed() };
    // SAFETY: as above.
    if p == 0 || unsafe { libc::dladdr(p as *const c_void, &mut info) } == 0 {
        return 0;
    }
    info.dli_fbase as usize
}

/// [`global`] and its definition's object, without dladdr, whose scan of an object's whole symbol table is most of
/// the tracker's start when repeated for each real function: the object holding an address
/// (its start, [`Place::object`] as [`object_of`] gives it) and whether the address is a stub
/// are read from the objects' program headers and hash tables. For the tracker's own lookups
/// at its start; the objects are compared with [`start_of`]'s.
pub fn global_located(name: &core::ffi::CStr) -> (Global, usize) {
    resolve(name, |address| locate(address, name.to_bytes()), start_of)
}

/// The start of the object holding `p` (as [`object_of`], without dladdr), 0 when none does.
pub fn start_of(p: usize) -> usize {
    locate(p, b"").object
}

/// The object holding `p` and whether `p` is its canonical PLT entry for `name` (see
/// [`place_of`]), from the objects' own tables.
pub fn locate(p: usize, name: &[u8]) -> Place {
    let mut at = Locate {
        p,
        name,
        place: Place {
            object: 0,
            stub: false,
        },
    };
    if p != 0 {
        // SAFETY: `visit_locate` reads each object's tables while the loader keeps it loaded.
        unsafe { crate::phdr::iterate_phdr(visit_locate, &mut at as *mut Locate as *mut c_void) };
    }
    at.place
}

struct Locate<'a> {
    p: usize,
    name: &'a [u8],
    place: Place,
}

unsafe extern "C" fn visit_locate(
    info: *mut libc::dl_phdr_info,
    _size: usize,
    data: *mut c_void,
) -> c_int {
    // SAFETY: the loader passes a valid info for the call; data is the Locate being run.
    let (info, at) = unsafe { (&*info, &mut *(data as *mut Locate)) };
    // SAFETY: a loaded object's description, valid during this callback.
    let object = unsafe { Object::new(info) };
    if !object.contains(at.p) {
        return 0;
    }
    at.place = Place {
        object: object.start(),
        // SAFETY: the object's tables, mapped during this callback.
        stub: !at.name.is_empty() && !is_vdso(info) && unsafe { object.is_stub(at.name, at.p) },
    };
    1
}

/// Whether the object starting at `a` comes before the one starting at `b` (starts as
/// [`start_of`] gives them) in load order, the order symbol lookup searches; None when either
/// is not loaded.
pub fn loaded_before(a: usize, b: usize) -> Option<bool> {
    let mut order = Order {
        a,
        b,
        seen: 0,
        a_at: None,
        b_at: None,
    };
    // SAFETY: `visit_order` reads each object's headers while the loader keeps it loaded.
    unsafe { crate::phdr::iterate_phdr(visit_order, &mut order as *mut Order as *mut c_void) };
    Some(order.a_at? < order.b_at?)
}

/// The places of objects `a` and `b` in load order, as [`loaded_before`] walks it.
struct Order {
    a: usize,
    b: usize,
    seen: usize,
    a_at: Option<usize>,
    b_at: Option<usize>,
}

unsafe extern "C" fn visit_order(
    info: *mut libc::dl_phdr_info,
    _size: usize,
    data: *mut c_void,
) -> c_int {
    // SAFETY: the loader passes a valid info for the call; data is the Order being run.
    let (info, order) = unsafe { (&*info, &mut *(data as *mut Order)) };
    // SAFETY: a loaded object's description, valid during this callback.
    let start = unsafe { Object::new(info) }.start();
    if start == order.a {
        order.a_at = Some(order.seen);
    }
    if start == order.b {
        order.b_at = Some(order.seen);
    }
    order.seen += 1;
    c_int::from(order.a_at.is_some() && order.b_at.is_some())
}

struct Walk<'a> {
    name: &'a [u8],
    /// The tracker's base (skipped).
    own: usize,
    found: Definition,
}

/// The definition of `name` in the first loaded object, in load order, that has one (not the
/// tracker); 0 when none does, or when the first is an indirect function (its resolver is the
/// loader's business: then this gives up).
fn first_definition(name: &[u8]) -> usize {
    let mut walk = Walk {
        name,
        own: object_of(first_definition as *const () as usize),
        found: Definition::Absent,
    };
    // SAFETY: `visit` reads each object's tables while the loader keeps it loaded.
    unsafe { crate::phdr::iterate_phdr(visit, &mut walk as *mut Walk as *mut c_void) };
    match walk.found {
        Definition::At(address) => address,
        _ => 0,
    }
}

unsafe extern "C" fn visit(
    info: *mut libc::dl_phdr_info,
    _size: usize,
    data: *mut c_void,
) -> c_int {
    // SAFETY: the loader passes a valid info for the call; data is the Walk being run.
    let (info, walk) = unsafe { (&*info, &mut *(data as *mut Walk)) };
    if info.dlpi_addr as usize == walk.own || is_vdso(info) {
        return 0;
    }
    // SAFETY: a loaded object's description, valid during this callback, and its tables.
    walk.found = unsafe { Object::new(info).definition(walk.name) };
    c_int::from(walk.found != Definition::Absent)
}

/// The C library's own definition of `name` (glibc's `libc.so.6`, musl's `libc.musl-*` or its
/// loader, which is its C library), whatever the program interposes on it; 0 when the process
/// maps no such library or it has no such definition. For the tracker's own heap (real::Heap).
pub fn c_library_definition(name: &[u8]) -> usize {
    let mut found = 0;
    crate::phdr::each_object(|info| {
        let file = file_name(info);
        let c_library = [&b"libc.so"[..], b"libc.musl-", b"ld-musl-"]
            .iter()
            .any(|prefix| file.starts_with(prefix));
        if c_library {
            // SAFETY: a loaded object's description, valid during the walk, and its tables.
            if let Definition::At(address) = unsafe { Object::new(info).definition(name) } {
                found = address;
            }
        }
        c_library
    });
    found
}

/// The first definition of `name` in an object loaded after the one holding `after` (an
/// address of it), in load order: what `dlsym(RTLD_NEXT, name)` finds from there, versioned or
/// not (a preloaded shim's own `dlsym`); 0 when none has one.
pub fn next_definition_after(after: usize, name: &[u8]) -> usize {
    let mut passed = false;
    let mut found = 0;
    crate::phdr::each_object(|info| {
        // SAFETY: a loaded object's description, valid during the walk.
        let holds_after = unsafe { crate::phdr::program_headers(info) }
            .iter()
            .filter(|ph| ph.p_type == libc::PT_LOAD)
            .any(|ph| {
                let start = (info.dlpi_addr as usize).wrapping_add(ph.p_vaddr as usize);
                (start..start + ph.p_memsz as usize).contains(&after)
            });
        if holds_after {
            passed = true;
            return false;
        }
        if !passed {
            return false;
        }
        // SAFETY: a loaded object's description, valid during the walk, and its tables.
        if let Definition::At(address) = unsafe { Object::new(info).definition(name) } {
            found = address;
            return true;
        }
        false
    });
    found
}

/// The object (its path as the loader names it: empty for the executable) whose definition of
/// `name` the process uses (the first in load order, not the tracker), when that object also
/// defines `also`: an allocator of its own (tcmalloc's, jemalloc's, mimalloc's) that defines
/// C++'s operator new too, whose blocks never pass through malloc.
pub fn first_definer_also_defining(name: &[u8], also: &[u8]) -> Option<Vec<u8>> {
    let own = object_of(first_definer_also_defining as *const () as usize);
    let mut found = None;
    crate::phdr::each_object(|info| {
        if info.dlpi_addr as usize == own || is_vdso(info) {
            return false;
        }
        // SAFETY: a loaded object's description, valid during the walk, and its tables.
        let object = unsafe { Object::new(info) };
        // SAFETY: as above.
        if unsafe { object.definition(name) } == Definition::Absent {
            return false;
        }
        // SAFETY: as above.
        if unsafe { object.definition(also) } != Definition::Absent {
            found = Some(file_path(info).to_vec());
        }
        true
    });
    found
}

/// Whether an object that does not define `name` itself calls it (a relocation slot naming
/// it): a C++ program's code imports `operator new`; a C program's does not, even where a
/// library it loads (jemalloc's, which needs libstdc++) defines it.
pub fn imported_by_a_user(name: &[u8]) -> bool {
    let own = object_of(imported_by_a_user as *const () as usize);
    let mut found = false;
    crate::phdr::each_object(|info| {
        if info.dlpi_addr as usize != own && !is_vdso(info) {
            // SAFETY: a loaded object's description, valid during the walk, and its tables.
            unsafe {
                Object::new(info).for_each_slot(|slot| {
                    found |= slot.name == name && !slot.defined_here;
                })
            };
        }
        found
    });
    found
}

/// The path the loader names an object by (empty for the executable).
fn file_path(info: &libc::dl_phdr_info) -> &[u8] {
    if info.dlpi_name.is_null() {
        return b"";
    }
    // SAFETY: dlpi_name is a NUL-terminated string owned by the loader, alive with `info`.
    unsafe { core::ffi::CStr::from_ptr(info.dlpi_name) }.to_bytes()
}

/// The file name of that path.
fn file_name(info: &libc::dl_phdr_info) -> &[u8] {
    let path = file_path(info);
    path.rsplit(|&b| b == b'/').next().unwrap_or(path)
}

/// The kernel's vDSO: it defines no allocation function, and its dynamic section is not
/// relocated like the others'.
fn is_vdso(info: &libc::dl_phdr_info) -> bool {
    let name = file_path(info);
    name.starts_with(b"linux-vdso") || name.starts_with(b"linux-gate")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dlsym_default(name: &core::ffi::CStr) -> usize {
        // SAFETY: dlsym with a NUL-terminated name and a pseudo-handle.
        unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) as usize }
    }

    #[test]
    fn the_c_librarys_own_definition_is_found_whatever_comes_first() {
        // This test binary defines malloc itself (the hooks): the C library's is another one.
        let malloc = c_library_definition(b"malloc");
        assert_ne!(malloc, 0);
        assert_ne!(malloc, dlsym_default(c"malloc"));
        assert_eq!(object_of(malloc), object_of(dlsym_default(c"realpath")));
        assert_eq!(c_library_definition(b"no_such_function_here"), 0);
    }

    #[test]
    fn the_walk_finds_the_c_librarys_definitions() {
        // This test binary holds the hooks (it is "the tracker", skipped): malloc is then the
        // C library's, which is no stub.
        let malloc = first_definition(b"malloc");
        assert_ne!(malloc, 0);
        assert!(!place_of(malloc).stub);
        assert_ne!(
            object_of(malloc),
            object_of(first_definition as *const () as usize)
        );
        assert_eq!(object_of(malloc), object_of(dlsym_default(c"realpath")));
        assert_eq!(first_definition(b"no_such_function_here"), 0);
    }

    #[test]
    fn the_tables_place_an_address_as_dladdr_does() {
        for name in [c"malloc", c"free", c"mmap", c"realpath", c"exit"] {
            let address = dlsym_default(name);
            let by_tables = locate(address, name.to_bytes());
            let by_loader = place_of(address);
            assert_eq!(by_tables.object, by_loader.object, "{name:?}");
            assert_eq!(by_tables.stub, by_loader.stub, "{name:?}");
            assert_eq!(start_of(address), object_of(address), "{name:?}");
        }
        let own = first_definition as *const () as usize;
        assert_eq!(start_of(own), object_of(own));
        assert_eq!(start_of(0), 0);
    }

    #[test]
    fn the_walk_takes_the_default_version_as_dlsym_does() {
        // glibc has pthread_cond_init@GLIBC_2.2.5 and pthread_cond_init@@GLIBC_2.3.2 (the
        // default, after the other in the symbol table), likewise sem_post and realpath: an
        // unversioned lookup is the default one.
        for name in [c"pthread_cond_init", c"sem_post", c"realpath"] {
            let global = global(name);
            assert_eq!(global.definition, global.address, "{name:?}");
            assert_eq!(
                first_definition(name.to_bytes()),
                dlsym_default(name),
                "{name:?}"
            );
        }
    }
}
