//! The functions hooked in the GOT slots of loaded objects: the allocation functions of the
//! preload hooks, and what the tracker's lifecycle needs (objects loaded later, `_exit`, a
//! process signalling itself). Each is hooked only when the hook forwards to the very function
//! the process's code calls (the global definition), and a slot only when it holds that
//! function, the non-PIE executable's PLT stub standing for it, or its not yet resolved lazy
//! stub: a slot bound elsewhere is left alone.

pub use crate::definition::object_of;
use crate::real;
use libc::c_void;
use std::sync::OnceLock;

/// A function to hook: its name, the hook, and what a slot must hold to be patched.
#[derive(Clone, Copy)]
pub struct Target {
    pub name: &'static [u8],
    pub hook: usize,
    /// The function's definition.
    pub expected: usize,
    /// The function's global address: the definition, or the canonical PLT stub of a non-PIE
    /// executable that takes the function's address (slots that take the address hold the
    /// stub; call slots, the executable's own included, the definition).
    pub alias: usize,
}

impl Target {
    /// Whether a slot holding `value` is bound to this function.
    pub fn holds(&self, value: usize) -> bool {
        value == self.expected || value == self.alias
    }
}

pub struct Targets {
    list: Vec<Target>,
}

impl Targets {
    /// The index of the function `name`, if hooked.
    pub fn index(&self, name: &[u8]) -> Option<usize> {
        self.list.iter().position(|t| t.name == name)
    }

    /// The function at `index` (from [`Targets::index`]).
    pub fn at(&self, index: usize) -> Option<&Target> {
        self.list.get(index)
    }
}

/// A forward address no definition has (the real function is missing: never hooked).
pub(super) const NONE: usize = usize::MAX;

static TARGETS: OnceLock<Targets> = OnceLock::new();

pub fn get() -> &'static Targets {
    TARGETS.get_or_init(build)
}

/// This library's own definition of `name`: taking the address of an exported function in
/// Rust goes through the GOT, which names the global definition (the C library's, when the
/// tracker is not preloaded), so the hooks are looked up in this library's handle.
pub(super) fn own(name: &core::ffi::CStr) -> usize {
    static HANDLE: OnceLock<usize> = OnceLock::new();
    let handle = *HANDLE.get_or_init(|| {
        // SAFETY: dladdr fills `info` for an address of this library; dlopen with RTLD_NOLOAD
        // only hands out the handle of the loaded library (given back below: the library
        // stays loaded, as Python never unloads an extension module).
        unsafe {
            let mut info: libc::Dl_info = core::mem::zeroed();
            if libc::dladdr(own as *const c_void, &mut info) == 0 || info.dli_fname.is_null() {
                return 0;
            }
            let h = libc::dlopen(info.dli_fname, libc::RTLD_LAZY | libc::RTLD_NOLOAD);
            h as usize
        }
    });
    if handle == 0 {
        return 0;
    }
    // SAFETY: dlsym in this library's own handle, with a NUL-terminated name.
    let p = unsafe { libc::dlsym(handle as *mut c_void, name.as_ptr()) } as usize;
    if object_of(p) == object_of(own as *const () as usize) {
        p
    } else {
        0
    }
}

fn build() -> Targets {
    let own_base = object_of(build as *const () as usize);
    let loader = (
        super::loader::dlopen_hook as *const () as usize,
        super::loader::real_dlopen(),
    );
    let closer = (
        super::loader::dlclose_hook as *const () as usize,
        super::loader::real_dlclose(),
    );
    choose(loader, closer, |name| {
        let global = crate::definition::global(name);
        let keep = global.definition != 0 && object_of(global.definition) != own_base;
        keep.then_some((global.definition, global.address))
    })
}

/// Under `memtrace run`, the functions to hook in the objects a `dlopen` with RTLD_DEEPBIND
/// brought in: those whose definition in the handle's own scope (which such an object binds to
/// ahead of the preloaded tracker) is the very function the preloaded hook forwards to. The
/// `dlopen` and `dlclose` hooks are the exported ones (session/exports.rs).
///
/// # Safety
/// `handle` is a handle dlopen just returned.
pub unsafe fn for_deep_handle(
    handle: *mut c_void,
    next_dlopen: usize,
    next_dlclose: usize,
) -> Targets {
    let own_base = object_of(build as *const () as usize);
    let loader = (own(c"dlopen"), Some(next_dlopen).filter(|&f| f != 0));
    let closer = (own(c"dlclose"), Some(next_dlclose).filter(|&f| f != 0));
    choose(loader, closer, |name| {
        // SAFETY: the caller's handle, a NUL-terminated name.
        let found = unsafe { libc::dlsym(handle, name.as_ptr()) } as usize;
        (found != 0 && object_of(found) != own_base).then_some((found, found))
    })
}

/// This library's hooks of the allocation functions: (name, hook, what the hook forwards to:
/// None when it forwards to a sibling, such as reallocarray to realloc, which must then come
/// from the allocator's own object; [`NONE`] for a function the C library lacks, which no
/// definition is).
pub(super) fn allocation_hooks(
    r: &real::Real,
) -> [(&'static core::ffi::CStr, usize, Option<usize>); 14] {
    let ours = |name: &'static core::ffi::CStr, f: Option<usize>| (name, own(name), f);
    let opt = |f: Option<usize>| Some(f.unwrap_or(NONE));
    [
        ours(c"malloc", Some(r.malloc as usize)),
        ours(c"free", Some(r.free as usize)),
        ours(c"calloc", Some(r.calloc as usize)),
        ours(c"realloc", Some(r.realloc as usize)),
        ours(c"reallocarray", None),
        ours(c"posix_memalign", Some(r.posix_memalign as usize)),
        ours(c"aligned_alloc", opt(r.aligned_alloc.map(|f| f as usize))),
        ours(c"memalign", opt(r.memalign.map(|f| f as usize))),
        ours(c"valloc", opt(r.valloc.map(|f| f as usize))),
        ours(c"pvalloc", opt(r.pvalloc.map(|f| f as usize))),
        ours(c"mmap", Some(r.mmap as usize)),
        ours(c"mmap64", Some(r.mmap as usize)),
        ours(c"munmap", Some(r.munmap as usize)),
        ours(c"mremap", opt(r.mremap.map(|f| f as usize))),
    ]
}

/// The hooked functions whose `definition` (what the process's code calls, and the address a
/// slot taking it holds) is what the hook forwards to. `loader` and `closer` are the hooks of
/// `dlopen` and `dlclose` with what they forward to.
fn choose(
    loader: (usize, Option<usize>),
    closer: (usize, Option<usize>),
    definition: impl Fn(&core::ffi::CStr) -> Option<(usize, usize)>,
) -> Targets {
    let mut list = Vec::new();
    let Some(r) = real::get() else {
        return Targets { list };
    };
    let allocator = object_of(r.malloc as usize);
    let opt = |f: Option<usize>| Some(f.unwrap_or(NONE));
    let ours = |name: &'static core::ffi::CStr, f: Option<usize>| (name, own(name), f);
    let others = [
        ours(c"_exit", opt(r.underscore_exit.map(|f| f as usize))),
        ours(c"kill", opt(r.kill.map(|f| f as usize))),
        // Forwards to `kill` (its own hook, then the real one).
        ours(c"killpg", None),
        ours(c"raise", opt(r.raise.map(|f| f as usize))),
        (c"dlopen", loader.0, opt(loader.1)),
        (c"dlclose", closer.0, opt(closer.1)),
    ];
    let candidates = allocation_hooks(r).into_iter().chain(others);
    for (name, hook, forward) in candidates {
        if hook == 0 {
            continue;
        }
        let Some((expected, address)) = definition(name) else {
            continue;
        };
        let ok = match forward {
            Some(f) => f == expected,
            None => allocator != 0 && object_of(expected) == allocator,
        };
        if ok {
            list.push(Target {
                name: name.to_bytes(),
                hook,
                expected,
                alias: address,
            });
        }
    }
    Targets { list }
}
