//! The types of the objects live when a Python run's script finishes: a walk of the live
//! objects, written as object-types records (memtrace_format::objects) in Meta chunks, so that
//! the reporter can give each block live at exit the type of the object in it.
//!
//! The walk starts from the objects the collector tracks (`PyUnstable_GC_VisitObjects` from
//! 3.12; `gc.get_objects()` before, whose audit event the program's hooks see on 3.10 and 3.11
//! only; gc's functions are called from its definition, never imported: the program's import
//! hooks and finders saw an import of gc) and follows every object's referents through its
//! type's `tp_traverse`, as pympler does, so that objects outside the collector's lists
//! (strings, bytes, ints, floats, untracked tuples and dicts) are found too; each object is
//! taken once. It runs with the thread's re-entrancy flag set: what it allocates (the list,
//! the tables here) is neither recorded nor changes what the program's blocks are. Called with
//! the GIL held, from `script_finished`, before the capture ends.

use super::api::{func, sym, Api, Object};
use super::session_api::SessionApi;
use crate::capture::CAPTURE;
use libc::{c_char, c_int, c_void};
use memtrace_format::objects::{
    self, MAX_ADDRESSES, MAX_PAYLOAD, MAX_TYPE_NAMES, MAX_TYPE_NAMES_PAYLOAD, OBJECT_TYPES_KIND,
    TYPE_NAMES_KIND,
};
use memtrace_format::Encoder;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::OnceLock;

// Offsets in PyObject and PyTypeObject of a default (not free-threaded) build, 3.9 to 3.13.
const OB_TYPE: usize = 8;
const LIST_SIZE: usize = 16;
const LIST_ITEMS: usize = 24;
const TP_NAME: usize = 24;
const TP_FLAGS: usize = 168;
const TP_TRAVERSE: usize = 184;
const TP_DICT: usize = 264;
const TP_IS_GC: usize = 328;
const HEAPTYPE: u64 = 1 << 9;
const HAVE_GC: u64 = 1 << 14;
/// Py_TPFLAGS_TYPE_SUBCLASS: the objects of a type with it are types.
const TYPE_SUBCLASS: u64 = 1 << 31;
/// PyGC_Head's size: its first word (`_gc_next`) is set while the collector tracks the object.
const GC_HEAD: usize = 16;

/// A Meta chunk holds about this many bytes of records.
const CHUNK_BYTES: usize = 1 << 20;

type Visit = unsafe extern "C" fn(*mut Object, *mut c_void) -> c_int;
type Traverse = unsafe extern "C" fn(*mut Object, Visit, *mut c_void) -> c_int;
type IsGc = unsafe extern "C" fn(*mut Object) -> c_int;

/// `PyDict_GetItem` (a borrowed reference, runs no Python code: the key is a str) and
/// `PyUnicode_InternFromString`, to make the `__module__` key once per walk rather than once
/// per type (as `PyDict_GetItemString` does).
struct DictApi {
    get_item: unsafe extern "C" fn(*mut Object, *mut Object) -> *mut Object,
    intern: unsafe extern "C" fn(*const c_char) -> *mut Object,
}

fn dict_api() -> Option<&'static DictApi> {
    static API: OnceLock<Option<DictApi>> = OnceLock::new();
    API.get_or_init(|| {
        Some(DictApi {
            get_item: func!(
                c"PyDict_GetItem",
                unsafe extern "C" fn(*mut Object, *mut Object) -> *mut Object
            ),
            intern: func!(
                c"PyUnicode_InternFromString",
                unsafe extern "C" fn(*const c_char) -> *mut Object
            ),
        })
    })
    .as_ref()
}

/// `PyModule_GetDef`: the gc module's own functions are called from its definition, not
/// looked up as its attributes, which the program may have replaced.
fn module_get_def() -> Option<unsafe extern "C" fn(*mut Object) -> *mut c_void> {
    static F: OnceLock<Option<unsafe extern "C" fn(*mut Object) -> *mut c_void>> = OnceLock::new();
    *F.get_or_init(|| {
        Some(func!(
            c"PyModule_GetDef",
            unsafe extern "C" fn(*mut Object) -> *mut c_void
        ))
    })
}

/// Offset of `m_methods` in a PyModuleDef (after PyModuleDef_Base's 40 bytes, `m_name`,
/// `m_doc` and `m_size`), and the size of a PyMethodDef (`ml_name` first): the stable ABI.
const MODULE_DEF_METHODS: usize = 64;
const METHOD_DEF_SIZE: usize = 32;

/// The names of the types, each made once (the type-names records and the object-types
/// records name the same types), with the `__module__` key made once per walk.
struct Names<'a> {
    api: &'a Api,
    dict: Option<&'static DictApi>,
    /// The interned `__module__` str (a new reference, released on drop), or null.
    key: *mut Object,
    made: HashMap<usize, Vec<u8>, Fast>,
}

impl<'a> Names<'a> {
    fn new(api: &'a Api) -> Names<'a> {
        let dict = dict_api();
        let key = match dict {
            // SAFETY: the GIL is held; a NUL-terminated name.
            Some(d) => unsafe { (d.intern)(c"__module__".as_ptr()) },
            None => core::ptr::null_mut(),
        };
        if key.is_null() {
            // SAFETY: clearing the MemoryError of a failed intern, if any.
            unsafe { (api.err_clear)() };
        }
        Names {
            api,
            dict,
            key,
            made: HashMap::default(),
        }
    }

    /// The name of the type object `ty`.
    fn of(&mut self, ty: usize) -> &[u8] {
        let (api, dict, key) = (self.api, self.dict, self.key);
        self.made.entry(ty).or_insert_with(|| {
            let mut name = Vec::new();
            let module = dict.filter(|_| !key.is_null()).map(|d| (d, key));
            type_name(api, module, ty, &mut name);
            name
        })
    }
}

impl Drop for Names<'_> {
    fn drop(&mut self) {
        if !self.key.is_null() {
            // SAFETY: the reference `new` took.
            unsafe { (self.api.dec_ref)(self.key) };
        }
    }
}

/// Addresses are spread enough that their bits hash well; a multiply mixes the high ones in.
#[derive(Default)]
struct AddrHasher(u64);

impl Hasher for AddrHasher {
    fn finish(&self) -> u64 {
        self.0.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(29)
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_usize(&mut self, v: usize) {
        self.0 = v as u64;
    }
}

type Fast = BuildHasherDefault<AddrHasher>;

/// The walk's state, handed to `visit` through tp_traverse's argument.
struct Walk {
    /// The objects taken that the collector's list does not hold (or all, see `skip_listed`).
    seen: HashSet<usize, Fast>,
    pending: Vec<usize>,
    /// Referents the collector tracks are left to the list, which holds each once: only the
    /// others (strings, numbers, untracked tuples and dicts) need the `seen` set. False when
    /// objects are frozen (`gc.freeze()`): tracked, yet not in `gc.get_objects()`.
    skip_listed: bool,
}

unsafe extern "C" fn visit(o: *mut Object, arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the &mut Walk `walk` passed to tp_traverse, alive during the call.
    let w = unsafe { &mut *(arg as *mut Walk) };
    if o.is_null() {
        return 0;
    }
    // SAFETY: a referent tp_traverse hands over is a live object.
    if w.skip_listed && unsafe { is_tracked(o as usize) } {
        return 0;
    }
    if w.seen.insert(o as usize) {
        // Taken soon (the walk is depth first): its header is on its way meanwhile.
        prefetch(o as usize + OB_TYPE);
        w.pending.push(o as usize);
    }
    0
}

/// Whether the collector tracks object `o` (so that `gc.get_objects()` lists it, frozen
/// objects aside): its type has GC support, its `tp_is_gc` (if any) agrees, and the link of
/// its collector header, the two words before it, is set (`_PyObject_GC_IS_TRACKED`).
///
/// # Safety
/// `o` must be a live object.
unsafe fn is_tracked(o: usize) -> bool {
    // SAFETY: a live object's type pointer and its type's slots are readable; the collector
    // header precedes every object of a GC type in a default build, 3.9 to 3.13.
    unsafe {
        let ty = word(o + OB_TYPE);
        if word(ty + TP_FLAGS) as u64 & HAVE_GC == 0 {
            return false;
        }
        let is_gc = word(ty + TP_IS_GC);
        if is_gc != 0 && (core::mem::transmute::<usize, IsGc>(is_gc))(o as *mut Object) == 0 {
            return false;
        }
        word(o - GC_HEAD) != 0
    }
}

/// Asks for the cache line at `at` ahead of its read: reading each object's type, at an
/// address no other object's is near, is the walk's main cost.
#[inline(always)]
fn prefetch(at: usize) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is only a hint: it never faults, whatever the address.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(at as *const i8)
    };
}

/// Reads a word of an object.
///
/// # Safety
/// `at` must be the address of a readable, aligned word.
unsafe fn word(at: usize) -> usize {
    // SAFETY: the caller's promise.
    unsafe { *(at as *const usize) }
}

/// Walks the live objects and writes their types. Does nothing when `gc.get_objects` cannot be
/// called.
pub fn record_live_objects(api: &Api, session: &SessionApi) {
    let Some(by_type) = walk(api, session) else {
        return;
    };
    write(api, by_type);
}

/// Every live object found, by type object.
fn walk(api: &Api, session: &SessionApi) -> Option<HashMap<usize, Vec<u64>, Fast>> {
    let gc = gc_functions(api, session)?;
    // SAFETY: the GIL is held; the gc module's own function, a new reference released here.
    let frozen = unsafe {
        let count = gc.call(api, session, c"get_freeze_count");
        let none_frozen = !count.is_null() && (session.object_is_true)(count) == 0;
        if !count.is_null() {
            (api.dec_ref)(count);
        }
        (api.err_clear)();
        !none_frozen
    };
    let tracked = Tracked::list(api, session, &gc)?;
    let listed = tracked.objects();
    let mut w = Walk {
        seen: HashSet::default(),
        pending: Vec::new(),
        skip_listed: !frozen,
    };
    let mut by_type: HashMap<usize, Vec<u64>, Fast> = HashMap::default();
    if w.skip_listed {
        // Each listed object once, in the list's order, then the others its referents lead
        // to (none of them listed).
        for (i, &o) in listed.iter().enumerate() {
            if let Some(&ahead) = listed.get(i + 4) {
                prefetch(ahead + OB_TYPE);
            }
            take(o, &mut w, &mut by_type);
            drain(&mut w, &mut by_type);
        }
    } else {
        w.seen.reserve(listed.len() * 2);
        // The list itself is the walk's, not the program's.
        if let Tracked::List(list) = tracked {
            w.seen.insert(list as usize);
        }
        w.pending
            .extend(listed.iter().filter(|&&o| w.seen.insert(o)));
        drain(&mut w, &mut by_type);
    }
    tracked.release(api);
    Some(by_type)
}

/// The objects the collector tracks, as the walk starts from them.
enum Tracked {
    /// What `gc.get_objects()` returned (3.10, 3.11): a new reference.
    List(*mut Object),
    /// What `PyUnstable_GC_VisitObjects` gave (3.12 on): no list, no audit event.
    Visited(Vec<usize>),
}

type VisitObjects = unsafe extern "C" fn(Visit, *mut c_void);

impl Tracked {
    fn list(api: &Api, session: &SessionApi, gc: &GcFunctions) -> Option<Tracked> {
        if let Some(visit_objects) = sym(c"PyUnstable_GC_VisitObjects") {
            // SAFETY: the CPython function of this name and signature; the GIL is held. The
            // callback only pushes each object's address.
            let visit_objects =
                unsafe { core::mem::transmute::<*mut c_void, VisitObjects>(visit_objects) };
            let mut found: Vec<usize> = Vec::new();
            // SAFETY: as above: `collect` gets `found` back as its argument.
            unsafe { visit_objects(collect, &mut found as *mut Vec<usize> as *mut c_void) };
            return Some(Tracked::Visited(found));
        }
        // SAFETY: the GIL is held; the gc module's own function.
        let list = unsafe { gc.call(api, session, c"get_objects") };
        // SAFETY: clearing the error of a failed call, if any.
        unsafe { (api.err_clear)() };
        (!list.is_null()).then_some(Tracked::List(list))
    }

    fn objects(&self) -> &[usize] {
        match self {
            // SAFETY: `list` is the list gc.get_objects returned: its size and item array are
            // read as CPython lays out a PyListObject; nothing runs that could change it
            // meanwhile.
            Tracked::List(list) => unsafe {
                let n = word(*list as usize + LIST_SIZE);
                core::slice::from_raw_parts(word(*list as usize + LIST_ITEMS) as *const usize, n)
            },
            Tracked::Visited(found) => found,
        }
    }

    fn release(self, api: &Api) {
        if let Tracked::List(list) = self {
            // SAFETY: the reference gc.get_objects returned; the GIL is held.
            unsafe { (api.dec_ref)(list) };
        }
    }
}

/// `PyUnstable_GC_VisitObjects`' callback: notes the object and goes on.
unsafe extern "C" fn collect(o: *mut Object, found: *mut c_void) -> c_int {
    // SAFETY: `found` is the Vec `Tracked::list` passed, alive for the whole visit.
    unsafe { (*(found as *mut Vec<usize>)).push(o as usize) };
    1
}

/// The gc module's functions, called from its definition: that of the module the program
/// imported, else the definition `PyInit_gc` gives (never an import: the program's import
/// hooks and finders would see one), else (a Python that does not export it) an import.
struct GcFunctions {
    /// The PyModuleDef.
    def: usize,
    /// The module (a new reference), or null when the definition came from `PyInit_gc`.
    module: *mut Object,
}

impl Drop for GcFunctions {
    fn drop(&mut self) {
        if !self.module.is_null() {
            if let Some(api) = crate::python::api::get() {
                // SAFETY: the reference taken in `gc_functions`; the GIL is still held.
                unsafe { (api.dec_ref)(self.module) };
            }
        }
    }
}

fn gc_functions(api: &Api, session: &SessionApi) -> Option<GcFunctions> {
    let get_def = module_get_def()?;
    // SAFETY: the GIL is held; `imported` gives a borrowed reference (taken here) or null.
    let module = unsafe {
        let m = super::session_api::imported(session, c"gc");
        if !m.is_null() {
            (session.inc_ref)(m);
        }
        m
    };
    if !module.is_null() {
        // SAFETY: a module object (null def, and a TypeError, for one that is not).
        let def = unsafe { get_def(module) } as usize;
        // SAFETY: clearing that TypeError, if any.
        unsafe { (api.err_clear)() };
        let f = GcFunctions { def, module };
        return (def != 0).then_some(f);
    }
    if let (Some(init), Some(def_type)) = (sym(c"PyInit_gc"), sym(c"PyModuleDef_Type")) {
        // SAFETY: gc's module init of 3.10 to 3.13, multi-phase: it readies and returns its
        // PyModuleDef (a PyObject of type PyModuleDef_Type), and makes no module.
        let def = unsafe {
            core::mem::transmute::<*mut c_void, unsafe extern "C" fn() -> *mut Object>(init)()
        };
        // SAFETY: a non-null result is an object: its type word is readable.
        if !def.is_null() && unsafe { word(def as usize + OB_TYPE) } == def_type as usize {
            return Some(GcFunctions {
                def: def as usize,
                module: core::ptr::null_mut(),
            });
        }
        // SAFETY: clearing the error of a failed init, if any.
        unsafe { (api.err_clear)() };
    }
    // SAFETY: the GIL is held; a new reference or null (with the error cleared).
    let module = unsafe { (session.import_module)(c"gc".as_ptr()) };
    if module.is_null() {
        // SAFETY: as above.
        unsafe { (api.err_clear)() };
        return None;
    }
    // SAFETY: as above.
    let def = unsafe { get_def(module) } as usize;
    let f = GcFunctions { def, module };
    (def != 0).then_some(f)
}

impl GcFunctions {
    /// `gc.NAME()` as the gc module defines it (the program may have replaced the module's
    /// attribute: its own function must not run here): a new reference, or null (with the
    /// error set, or when the definition has no such function).
    ///
    /// # Safety
    /// The GIL must be held.
    unsafe fn call(&self, api: &Api, session: &SessionApi, name: &core::ffi::CStr) -> *mut Object {
        // SAFETY: the caller's promise. A PyModuleDef's method table ends with an entry whose
        // name is null; gc's functions do not use the module they are bound to (null when the
        // definition came from PyInit_gc).
        unsafe {
            let mut method = word(self.def + MODULE_DEF_METHODS);
            while method != 0 && word(method) != 0 {
                let ml_name = core::ffi::CStr::from_ptr(word(method) as *const c_char);
                if ml_name == name {
                    let f = (session.cfunction_new)(
                        method as *mut c_void,
                        self.module,
                        core::ptr::null_mut(),
                    );
                    if f.is_null() {
                        return f;
                    }
                    let r = (session.call_no_args)(f);
                    (api.dec_ref)(f);
                    return r;
                }
                method += METHOD_DEF_SIZE;
            }
            core::ptr::null_mut()
        }
    }
}

/// Takes the objects waiting, depth first.
fn drain(w: &mut Walk, by_type: &mut HashMap<usize, Vec<u64>, Fast>) {
    while let Some(o) = w.pending.pop() {
        if let Some(&next) = w.pending.last() {
            prefetch(next + OB_TYPE);
        }
        take(o, w, by_type);
    }
}

/// Files object `o` under its type and hands its referents to `visit`.
fn take(o: usize, w: &mut Walk, by_type: &mut HashMap<usize, Vec<u64>, Fast>) {
    // SAFETY: `o` is a live object (from the collector's list or a referent of one): its
    // type pointer and the type's slots are readable.
    let (ty, flags, traverse, is_gc) = unsafe {
        let ty = word(o + OB_TYPE);
        (
            ty,
            word(ty + TP_FLAGS) as u64,
            word(ty + TP_TRAVERSE),
            word(ty + TP_IS_GC),
        )
    };
    by_type.entry(ty).or_default().push(o as u64);
    if flags & HAVE_GC == 0 || traverse == 0 {
        return;
    }
    // SAFETY: as gc.get_referents decides: a GC type, and its tp_is_gc (if any) says this
    // object is one; tp_traverse only reads the object and calls `visit`.
    unsafe {
        if is_gc != 0 && (core::mem::transmute::<usize, IsGc>(is_gc))(o as *mut Object) == 0 {
            return;
        }
        let traverse = core::mem::transmute::<usize, Traverse>(traverse);
        traverse(o as *mut Object, visit, w as *mut Walk as *mut c_void);
    }
}

/// Offset of `ht_qualname` in a PyHeapTypeObject on 3.10 (872 from 3.12): read there only on
/// 3.10, which has no `PyType_GetQualName`.
const HT_QUALNAME_310: usize = 864;
/// Py_TPFLAGS_UNICODE_SUBCLASS: the objects of a type with it are str.
const UNICODE_SUBCLASS: u64 = 1 << 28;

/// `PyType_GetQualName` (3.11+): a heap type's `__qualname__`, a new reference.
fn get_qualname() -> Option<unsafe extern "C" fn(*mut Object) -> *mut Object> {
    static F: OnceLock<Option<unsafe extern "C" fn(*mut Object) -> *mut Object>> = OnceLock::new();
    *F.get_or_init(|| {
        Some(func!(
            c"PyType_GetQualName",
            unsafe extern "C" fn(*mut Object) -> *mut Object
        ))
    })
}

/// Appends the UTF-8 bytes of the str `s` to `out`; false (and nothing appended) when it is
/// not a str.
///
/// # Safety
/// `s` is a live object; the GIL is held.
unsafe fn push_str(api: &Api, s: *mut Object, out: &mut Vec<u8>) -> bool {
    // SAFETY: per the caller: a live object, whose type is a live type object.
    let is_str = unsafe { word(word(s as usize + OB_TYPE) + TP_FLAGS) as u64 & UNICODE_SUBCLASS };
    if is_str == 0 {
        return false;
    }
    let mut len: isize = 0;
    // SAFETY: a live str; the UTF-8 buffer belongs to it.
    let p = unsafe { (api.unicode_as_utf8_and_size)(s, &mut len) };
    if p.is_null() || len < 0 {
        // SAFETY: clearing the error of a str with lone surrogates.
        unsafe { (api.err_clear)() };
        return false;
    }
    // SAFETY: `len` bytes of UTF-8 owned by `s`, copied at once.
    out.extend_from_slice(unsafe { core::slice::from_raw_parts(p as *const u8, len as usize) });
    true
}

/// Appends the `__qualname__` of the heap type `ty` (`f.<locals>.Local`, `Outer.Inner`), so
/// that two classes of one `__name__` made in different scopes are told apart; false (and
/// nothing appended) when it cannot be read.
fn push_qualname(api: &Api, ty: usize, out: &mut Vec<u8>) -> bool {
    if let Some(qualname) = get_qualname() {
        // SAFETY: a live heap type; the GIL is held. A heap type's qualname is its own str,
        // given without allocating.
        let q = unsafe { qualname(ty as *mut Object) };
        if q.is_null() {
            // SAFETY: clearing the error of a failed call.
            unsafe { (api.err_clear)() };
            return false;
        }
        // SAFETY: a live object; the reference taken above is released after the copy.
        unsafe {
            let pushed = push_str(api, q, out);
            (api.dec_ref)(q);
            return pushed;
        }
    }
    match crate::python::INTERPRETER.get() {
        // SAFETY: a live heap type of 3.10: its ht_qualname field, a str it holds (never null
        // for a class, but checked).
        Some(py) if py.layout.minor == 10 => unsafe {
            let q = word(ty + HT_QUALNAME_310);
            q != 0 && push_str(api, q as *mut Object, out)
        },
        _ => false,
    }
}

/// A type's name: `tp_name`, or for a class defined in Python (other than in builtins) its
/// `__module__` and `__qualname__`.
fn type_name(api: &Api, module_key: Option<(&DictApi, *mut Object)>, ty: usize, out: &mut Vec<u8>) {
    out.clear();
    // SAFETY: `ty` is a live type object; tp_name is a NUL-terminated string it owns.
    let (name, flags, dict) = unsafe {
        (
            core::ffi::CStr::from_ptr(word(ty + TP_NAME) as *const c_char).to_bytes(),
            word(ty + TP_FLAGS) as u64,
            word(ty + TP_DICT),
        )
    };
    if flags & HEAPTYPE == 0 || dict == 0 || name.contains(&b'.') {
        out.extend_from_slice(name);
        return;
    }
    if let Some((d, key)) = module_key {
        // SAFETY: a heap type's dict and a str key; a borrowed reference, read at once.
        let module = unsafe { (d.get_item)(dict as *mut Object, key) };
        // SAFETY: a live object (a borrowed reference from the type's dict); the GIL is held.
        if !module.is_null() && unsafe { push_str(api, module, out) } {
            if &out[..] == b"builtins" {
                out.clear();
            } else {
                out.push(b'.');
            }
        }
    }
    if !push_qualname(api, ty, out) {
        out.extend_from_slice(name);
    }
}

/// Every type alive: the types of the objects found and the type objects found (the
/// objects of a type whose objects are types), so that the types typed frees name are known
/// even when no object of theirs is left.
fn alive_types(by_type: &HashMap<usize, Vec<u64>, Fast>) -> Vec<usize> {
    let mut types: HashSet<usize, Fast> = by_type.keys().copied().collect();
    for (&ty, objects) in by_type {
        // SAFETY: `ty` is a live type object.
        let flags = unsafe { word(ty + TP_FLAGS) } as u64;
        if flags & TYPE_SUBCLASS != 0 {
            types.extend(objects.iter().map(|&o| o as usize));
        }
    }
    let mut types: Vec<usize> = types.into_iter().collect();
    types.sort_unstable();
    types
}

/// Writes the type-names records: the address and name of every type alive.
fn write_type_names(names: &mut Names, types: &[usize], chunk: &mut Vec<u8>, count: &mut u32) {
    let mut payload = vec![0u8; MAX_TYPE_NAMES_PAYLOAD];
    let mut record = vec![0u8; Encoder::table_record_len(MAX_TYPE_NAMES_PAYLOAD)];
    let (tick, _) = crate::clock::pair();
    for part in types.chunks(MAX_TYPE_NAMES) {
        for &ty in part {
            names.of(ty);
        }
        let pairs = part.iter().map(|&t| (t as u64, &names.made[&t][..]));
        let len = objects::encode_type_names(&mut payload, pairs);
        let used = Encoder::new().extended(&mut record, 0, tick, TYPE_NAMES_KIND, &payload[..len]);
        chunk.extend_from_slice(&record[..used]);
        *count += 1;
        if chunk.len() >= CHUNK_BYTES {
            CAPTURE.write_meta(0, *count, chunk);
            chunk.clear();
            *count = 0;
        }
    }
}

/// Writes the records, a Meta chunk per megabyte of them.
fn write(api: &Api, by_type: HashMap<usize, Vec<u64>, Fast>) {
    let mut chunk: Vec<u8> =
        Vec::with_capacity(CHUNK_BYTES + Encoder::table_record_len(MAX_PAYLOAD));
    let mut count = 0u32;
    let mut payload = vec![0u8; MAX_PAYLOAD];
    let mut record = vec![0u8; Encoder::table_record_len(MAX_PAYLOAD)];
    let (tick, _) = crate::clock::pair();
    let mut names = Names::new(api);
    // The names of the types typed frees give (none without them: a reader then knows the
    // capture has no types at the peak).
    if crate::hooks::pymem::typed_frees() {
        let types = alive_types(&by_type);
        write_type_names(&mut names, &types, &mut chunk, &mut count);
    }
    for (ty, mut addrs) in by_type {
        let name = names.of(ty);
        addrs.sort_unstable();
        for part in addrs.chunks(MAX_ADDRESSES) {
            let len = objects::encode(&mut payload, name, part);
            let used =
                Encoder::new().extended(&mut record, 0, tick, OBJECT_TYPES_KIND, &payload[..len]);
            chunk.extend_from_slice(&record[..used]);
            count += 1;
            if chunk.len() >= CHUNK_BYTES {
                CAPTURE.write_meta(0, count, &chunk);
                chunk.clear();
                count = 0;
            }
        }
    }
    if count > 0 {
        CAPTURE.write_meta(0, count, &chunk);
    }
}
