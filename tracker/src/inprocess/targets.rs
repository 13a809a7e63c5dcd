//! The functions hooked in the GOT slots of loaded objects: the allocation functions of the
//! preload hooks, and what the tracker's lifecycle needs (objects loaded later, `_exit`, a
//! process signalling itself). Each is hooked only when the hook forwards to the very function
//! the process's code calls (the global definition), and a slot only when it holds that
//! function (or its not yet resolved lazy stub): a slot bound elsewhere is left alone.

use crate::real;
use libc::c_void;
use std::sync::OnceLock;

/// A function to hook: its name, the hook, and the definition a slot must hold to be patched.
#[derive(Clone, Copy)]
pub struct Target {
    pub name: &'static [u8],
    pub hook: usize,
    pub expected: usize,
}

pub struct Targets {
    list: Vec<Target>,
}

impl Targets {
    pub fn find(&self, name: &[u8]) -> Option<&Target> {
        self.list.iter().find(|t| t.name == name)
    }
}

/// A forward address no definition has (the real function is missing: never hooked).
const NONE: usize = usize::MAX;

static TARGETS: OnceLock<Targets> = OnceLock::new();

pub fn get() -> &'static Targets {
    TARGETS.get_or_init(build)
}

fn global(name: &core::ffi::CStr) -> usize {
    // SAFETY: dlsym with a NUL-terminated name.
    unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) as usize }
}

/// The base of the object holding `p`, 0 when none does.
fn object_of(p: usize) -> usize {
    // SAFETY: dladdr only reads the loader's tables and fills `info`.
    let mut info: libc::Dl_info = unsafe { core::mem::zeroed() };
    // SAFETY: as above.
    if p == 0 || unsafe { libc::dladdr(p as *const c_void, &mut info) } == 0 {
        return 0;
    }
    info.dli_fbase as usize
}

fn build() -> Targets {
    let mut list = Vec::new();
    let Some(r) = real::get() else {
        return Targets { list };
    };
    let own = object_of(build as *const () as usize);
    let allocator = object_of(r.malloc as usize);
    // (name, hook, what the hook forwards to: None when it forwards to a sibling, such as
    // reallocarray to realloc, which must then come from the allocator's own object).
    let candidates: [(&'static core::ffi::CStr, usize, Option<usize>); 19] = [
        (
            c"malloc",
            crate::hooks::malloc as *const () as usize,
            Some(r.malloc as usize),
        ),
        (
            c"free",
            crate::hooks::free as *const () as usize,
            Some(r.free as usize),
        ),
        (
            c"calloc",
            crate::hooks::calloc as *const () as usize,
            Some(r.calloc as usize),
        ),
        (
            c"realloc",
            crate::hooks::realloc as *const () as usize,
            Some(r.realloc as usize),
        ),
        (
            c"reallocarray",
            crate::hooks::reallocarray as *const () as usize,
            None,
        ),
        (
            c"posix_memalign",
            crate::hooks::posix_memalign as *const () as usize,
            Some(r.posix_memalign as usize),
        ),
        (
            c"aligned_alloc",
            crate::hooks::aligned_alloc as *const () as usize,
            Some(r.aligned_alloc.map_or(NONE, |f| f as usize)),
        ),
        (
            c"memalign",
            crate::hooks::memalign as *const () as usize,
            Some(r.memalign.map_or(NONE, |f| f as usize)),
        ),
        (
            c"valloc",
            crate::hooks::valloc as *const () as usize,
            Some(r.valloc.map_or(NONE, |f| f as usize)),
        ),
        (
            c"pvalloc",
            crate::hooks::pvalloc as *const () as usize,
            Some(r.pvalloc.map_or(NONE, |f| f as usize)),
        ),
        (
            c"mmap",
            crate::hooks::mmap as *const () as usize,
            Some(r.mmap as usize),
        ),
        (
            c"mmap64",
            crate::hooks::mmap64 as *const () as usize,
            Some(r.mmap as usize),
        ),
        (
            c"munmap",
            crate::hooks::munmap as *const () as usize,
            Some(r.munmap as usize),
        ),
        (
            c"mremap",
            crate::hooks::mremap as *const () as usize,
            Some(r.mremap.map_or(NONE, |f| f as usize)),
        ),
        (
            c"_exit",
            crate::lifecycle::_exit as *const () as usize,
            Some(r.underscore_exit.map_or(NONE, |f| f as usize)),
        ),
        (
            c"kill",
            crate::signals::kill as *const () as usize,
            Some(r.kill.map_or(NONE, |f| f as usize)),
        ),
        (
            c"raise",
            crate::signals::raise as *const () as usize,
            Some(r.raise.map_or(NONE, |f| f as usize)),
        ),
        (
            c"dlopen",
            super::loader::dlopen_hook as *const () as usize,
            Some(super::loader::real_dlopen().unwrap_or(NONE)),
        ),
        (
            c"dlclose",
            super::loader::dlclose_hook as *const () as usize,
            Some(super::loader::real_dlclose().unwrap_or(NONE)),
        ),
    ];
    for (name, hook, forward) in candidates {
        let expected = global(name);
        if expected == 0 || object_of(expected) == own {
            continue;
        }
        let ok = match forward {
            Some(f) => f == expected,
            None => allocator != 0 && object_of(expected) == allocator,
        };
        if ok {
            list.push(Target {
                name: name.to_bytes(),
                hook,
                expected,
            });
        }
    }
    Targets { list }
}
