//! The CPython functions in-process tracking calls besides those of `api` (argument checks,
//! errors, `threading`), found at run time with dlsym like those.

use super::api::{func, sym, Object};
use libc::{c_char, c_int, c_longlong, c_void};
use std::sync::OnceLock;

pub struct SessionApi {
    pub err_set_string: unsafe extern "C" fn(*mut Object, *const c_char),
    pub err_occurred: unsafe extern "C" fn() -> *mut Object,
    /// `PyExc_RuntimeError` and `PyExc_TypeError` (the exception types).
    pub runtime_error: *mut Object,
    pub type_error: *mut Object,
    pub object_is_true: unsafe extern "C" fn(*mut Object) -> c_int,
    /// `PyImport_ImportModule` (runs the program's import hooks: only for what the tracker
    /// needs and the program may not have imported, never at an attach).
    pub import_module: unsafe extern "C" fn(*const c_char) -> *mut Object,
    pub call_no_args: unsafe extern "C" fn(*mut Object) -> *mut Object,
    pub call_obj_args: unsafe extern "C" fn(*mut Object, ...) -> *mut Object,
    pub get_iter: unsafe extern "C" fn(*mut Object) -> *mut Object,
    pub iter_next: unsafe extern "C" fn(*mut Object) -> *mut Object,
    pub long_as_long_long: unsafe extern "C" fn(*mut Object) -> c_longlong,
    pub long_from_unsigned_long_long: unsafe extern "C" fn(u64) -> *mut Object,
    pub cfunction_new: unsafe extern "C" fn(*mut c_void, *mut Object, *mut Object) -> *mut Object,
    pub set_attr_string: unsafe extern "C" fn(*mut Object, *const c_char, *mut Object) -> c_int,
    pub instance_method_new: unsafe extern "C" fn(*mut Object) -> *mut Object,
    /// `PySys_GetObject`: a borrowed reference, or null.
    pub sys_get_object: unsafe extern "C" fn(*const c_char) -> *mut Object,
    /// `PyDict_GetItemString`: a borrowed reference, or null (also for a non-dict).
    pub dict_get_item_string: unsafe extern "C" fn(*mut Object, *const c_char) -> *mut Object,
    pub inc_ref: unsafe extern "C" fn(*mut Object),
}

// SAFETY: function pointers and the addresses of two immortal type objects, shared read-only.
unsafe impl Send for SessionApi {}
// SAFETY: as above.
unsafe impl Sync for SessionApi {}

/// The module `name` if the program has imported it (a borrowed reference from sys.modules),
/// else null: never an import, which would run the program's import hooks.
///
/// # Safety
/// The GIL is held.
pub unsafe fn imported(s: &SessionApi, name: &core::ffi::CStr) -> *mut Object {
    // SAFETY: the caller's promise; both lookups give borrowed references (or null).
    unsafe {
        let modules = (s.sys_get_object)(c"modules".as_ptr());
        if modules.is_null() {
            return core::ptr::null_mut();
        }
        (s.dict_get_item_string)(modules, name.as_ptr())
    }
}

static API: OnceLock<Option<SessionApi>> = OnceLock::new();

/// The functions, or None when one is missing (not a CPython 3.9+).
pub fn get() -> Option<&'static SessionApi> {
    API.get_or_init(resolve).as_ref()
}

/// The object a `PyObject *` variable of CPython's points at.
fn object(name: &core::ffi::CStr) -> Option<*mut Object> {
    let p = sym(name)? as *const *mut Object;
    // SAFETY: the exported variable holds a pointer to an exception type, set at start-up.
    let o = unsafe { *p };
    (!o.is_null()).then_some(o)
}

fn resolve() -> Option<SessionApi> {
    type F<A, R> = unsafe extern "C" fn(A) -> R;
    Some(SessionApi {
        err_set_string: func!(
            c"PyErr_SetString",
            unsafe extern "C" fn(*mut Object, *const c_char)
        ),
        err_occurred: func!(c"PyErr_Occurred", unsafe extern "C" fn() -> *mut Object),
        runtime_error: object(c"PyExc_RuntimeError")?,
        type_error: object(c"PyExc_TypeError")?,
        object_is_true: func!(c"PyObject_IsTrue", F<*mut Object, c_int>),
        import_module: func!(c"PyImport_ImportModule", F<*const c_char, *mut Object>),
        call_no_args: func!(c"PyObject_CallNoArgs", F<*mut Object, *mut Object>),
        call_obj_args: func!(
            c"PyObject_CallFunctionObjArgs",
            unsafe extern "C" fn(*mut Object, ...) -> *mut Object
        ),
        get_iter: func!(c"PyObject_GetIter", F<*mut Object, *mut Object>),
        iter_next: func!(c"PyIter_Next", F<*mut Object, *mut Object>),
        long_as_long_long: func!(c"PyLong_AsLongLong", F<*mut Object, c_longlong>),
        long_from_unsigned_long_long: func!(c"PyLong_FromUnsignedLongLong", F<u64, *mut Object>),
        cfunction_new: func!(
            c"PyCFunction_NewEx",
            unsafe extern "C" fn(*mut c_void, *mut Object, *mut Object) -> *mut Object
        ),
        set_attr_string: func!(
            c"PyObject_SetAttrString",
            unsafe extern "C" fn(*mut Object, *const c_char, *mut Object) -> c_int
        ),
        instance_method_new: func!(c"PyInstanceMethod_New", F<*mut Object, *mut Object>),
        sys_get_object: func!(c"PySys_GetObject", F<*const c_char, *mut Object>),
        dict_get_item_string: func!(
            c"PyDict_GetItemString",
            unsafe extern "C" fn(*mut Object, *const c_char) -> *mut Object
        ),
        inc_ref: func!(c"Py_IncRef", F<*mut Object, ()>),
    })
}
