//! The CPython functions the tracker calls, found at run time with dlsym: the tracker is loaded
//! into every program, and a direct reference to a CPython symbol would keep it from loading into
//! one that is not Python (full RELRO resolves every symbol at load).

use libc::{c_char, c_int, c_void};
use std::sync::OnceLock;

pub type Object = c_void;

/// PyMemAllocatorEx (the same layout from 3.5 to 3.13).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct MemAllocator {
    pub ctx: *mut c_void,
    pub malloc: unsafe extern "C" fn(*mut c_void, usize) -> *mut c_void,
    pub calloc: unsafe extern "C" fn(*mut c_void, usize, usize) -> *mut c_void,
    pub realloc: unsafe extern "C" fn(*mut c_void, *mut c_void, usize) -> *mut c_void,
    pub free: unsafe extern "C" fn(*mut c_void, *mut c_void),
}

/// PyMemAllocatorDomain.
pub const DOMAIN_MEM: c_int = 1;
pub const DOMAIN_OBJ: c_int = 2;

/// PyCodeAddressRange (3.10 to 3.13): a position in a code object's line table, which
/// `_PyCode_CheckLineNumber` moves to the range of an instruction (see lines.rs).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct AddressRange {
    pub ar_start: c_int,
    pub ar_end: c_int,
    pub ar_line: c_int,
    /// `struct _opaque`, 8-aligned: it starts at 16.
    pub opaque: RangeOpaque,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct RangeOpaque {
    pub computed_line: c_int,
    pub lo_next: *const u8,
    pub limit: *const u8,
}

pub type TraceFunc = unsafe extern "C" fn(*mut Object, *mut Object, c_int, *mut Object) -> c_int;

pub struct Api {
    pub mem_get_allocator: unsafe extern "C" fn(c_int, *mut MemAllocator),
    pub mem_set_allocator: unsafe extern "C" fn(c_int, *const MemAllocator),
    pub eval_set_profile: unsafe extern "C" fn(Option<TraceFunc>, *mut Object),
    pub frame_get_code: unsafe extern "C" fn(*mut Object) -> *mut Object,
    pub frame_get_line_number: unsafe extern "C" fn(*mut Object) -> c_int,
    pub object_get_attr_string: unsafe extern "C" fn(*mut Object, *const c_char) -> *mut Object,
    pub unicode_as_utf8_and_size: unsafe extern "C" fn(*mut Object, *mut isize) -> *const c_char,
    pub err_clear: unsafe extern "C" fn(),
    pub inc_ref: unsafe extern "C" fn(*mut Object),
    pub dec_ref: unsafe extern "C" fn(*mut Object),
    pub module_create2: unsafe extern "C" fn(*mut c_void, c_int) -> *mut Object,
    pub thread_state_get: unsafe extern "C" fn() -> *mut c_void,
    pub gil_state_get_this_thread_state: unsafe extern "C" fn() -> *mut c_void,
    pub gil_state_check: unsafe extern "C" fn() -> c_int,
    pub eval_get_frame: unsafe extern "C" fn() -> *mut Object,
    pub frame_get_back: unsafe extern "C" fn(*mut Object) -> *mut Object,
    pub code_addr2line: unsafe extern "C" fn(*mut Object, c_int) -> c_int,
    /// `_PyCode_CheckLineNumber`, where exported (lines.rs; else every line is a whole scan).
    pub code_check_line_number: Option<unsafe extern "C" fn(c_int, *mut AddressRange) -> c_int>,
    pub get_version: unsafe extern "C" fn() -> *const c_char,
    /// A slot of every code object's `co_extra`, whose free function CPython calls when the
    /// code object is deallocated (codes.rs: a named code's death empties the caches).
    pub code_extra: Option<CodeExtra>,
    /// `Py_AddPendingCall`: runs a function in the main thread, with the GIL, between two
    /// bytecodes: outside any allocator, where a hook is not (codes.rs).
    pub add_pending_call:
        unsafe extern "C" fn(unsafe extern "C" fn(*mut c_void) -> c_int, *mut c_void) -> c_int,
    pub none: *mut Object,
    pub code_type: *mut Object,
}

/// `_PyEval_RequestCodeExtraIndex` and `_PyCode_SetExtra` (3.10, 3.11), named
/// `PyUnstable_Eval_RequestCodeExtraIndex` and `PyUnstable_Code_SetExtra` from 3.12 on.
#[derive(Clone, Copy)]
pub struct CodeExtra {
    pub request_index: unsafe extern "C" fn(Option<unsafe extern "C" fn(*mut c_void)>) -> isize,
    pub set: unsafe extern "C" fn(*mut Object, isize, *mut c_void) -> c_int,
}

fn code_extra() -> Option<CodeExtra> {
    let request = sym(c"PyUnstable_Eval_RequestCodeExtraIndex")
        .or_else(|| sym(c"_PyEval_RequestCodeExtraIndex"))?;
    let set = sym(c"PyUnstable_Code_SetExtra").or_else(|| sym(c"_PyCode_SetExtra"))?;
    // SAFETY: CPython's functions of these names, of these C signatures (3.10 to 3.13).
    unsafe {
        Some(CodeExtra {
            request_index: core::mem::transmute::<
                *mut c_void,
                unsafe extern "C" fn(Option<unsafe extern "C" fn(*mut c_void)>) -> isize,
            >(request),
            set: core::mem::transmute::<
                *mut c_void,
                unsafe extern "C" fn(*mut Object, isize, *mut c_void) -> c_int,
            >(set),
        })
    }
}

// SAFETY: function pointers and the address of the None singleton, shared read-only.
unsafe impl Send for Api {}
// SAFETY: as above.
unsafe impl Sync for Api {}

static API: OnceLock<Option<Api>> = OnceLock::new();

/// The API, or None when this process is not a CPython 3.9+ (a symbol is missing).
pub fn get() -> Option<&'static Api> {
    API.get_or_init(resolve).as_ref()
}

/// The address of a CPython symbol in this process.
pub(crate) fn sym(name: &core::ffi::CStr) -> Option<*mut c_void> {
    // SAFETY: dlsym with a NUL-terminated name; RTLD_DEFAULT searches the whole process.
    let p = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
    (!p.is_null()).then_some(p)
}

/// The CPython function `$name` as a pointer of type `$ty` (returns None from the enclosing
/// function when it is missing).
macro_rules! func {
    ($name:literal, $ty:ty) => {{
        let p = $crate::python::api::sym($name)?;
        // SAFETY: the CPython function of this name, whose C signature is `$ty`.
        unsafe { core::mem::transmute::<*mut libc::c_void, $ty>(p) }
    }};
}
pub(crate) use func;

fn resolve() -> Option<Api> {
    type F<A, R> = unsafe extern "C" fn(A) -> R;
    Some(Api {
        mem_get_allocator: func!(
            c"PyMem_GetAllocator",
            unsafe extern "C" fn(c_int, *mut MemAllocator)
        ),
        mem_set_allocator: func!(
            c"PyMem_SetAllocator",
            unsafe extern "C" fn(c_int, *const MemAllocator)
        ),
        eval_set_profile: func!(
            c"PyEval_SetProfile",
            unsafe extern "C" fn(Option<TraceFunc>, *mut Object)
        ),
        frame_get_code: func!(c"PyFrame_GetCode", F<*mut Object, *mut Object>),
        frame_get_line_number: func!(c"PyFrame_GetLineNumber", F<*mut Object, c_int>),
        object_get_attr_string: func!(
            c"PyObject_GetAttrString",
            unsafe extern "C" fn(*mut Object, *const c_char) -> *mut Object
        ),
        unicode_as_utf8_and_size: func!(
            c"PyUnicode_AsUTF8AndSize",
            unsafe extern "C" fn(*mut Object, *mut isize) -> *const c_char
        ),
        err_clear: func!(c"PyErr_Clear", unsafe extern "C" fn()),
        inc_ref: func!(c"Py_IncRef", F<*mut Object, ()>),
        dec_ref: func!(c"Py_DecRef", F<*mut Object, ()>),
        module_create2: func!(
            c"PyModule_Create2",
            unsafe extern "C" fn(*mut c_void, c_int) -> *mut Object
        ),
        thread_state_get: func!(c"PyThreadState_Get", unsafe extern "C" fn() -> *mut c_void),
        gil_state_get_this_thread_state: func!(
            c"PyGILState_GetThisThreadState",
            unsafe extern "C" fn() -> *mut c_void
        ),
        gil_state_check: func!(c"PyGILState_Check", unsafe extern "C" fn() -> c_int),
        eval_get_frame: func!(c"PyEval_GetFrame", unsafe extern "C" fn() -> *mut Object),
        frame_get_back: func!(c"PyFrame_GetBack", F<*mut Object, *mut Object>),
        code_addr2line: func!(
            c"PyCode_Addr2Line",
            unsafe extern "C" fn(*mut Object, c_int) -> c_int
        ),
        code_check_line_number: sym(c"_PyCode_CheckLineNumber").map(|p| {
            // SAFETY: CPython's function of this name: (int lasti, PyCodeAddressRange *) -> int.
            unsafe {
                core::mem::transmute::<
                    *mut c_void,
                    unsafe extern "C" fn(c_int, *mut AddressRange) -> c_int,
                >(p)
            }
        }),
        get_version: func!(c"Py_GetVersion", unsafe extern "C" fn() -> *const c_char),
        code_extra: code_extra(),
        add_pending_call: func!(
            c"Py_AddPendingCall",
            unsafe extern "C" fn(unsafe extern "C" fn(*mut c_void) -> c_int, *mut c_void) -> c_int
        ),
        none: sym(c"_Py_NoneStruct")?,
        code_type: sym(c"PyCode_Type")?,
    })
}
