//! Small helpers over CPython objects for the in-process session's calls into Python.

use super::api::{Api, Object};
use super::session_api::SessionApi;

/// The UTF-8 bytes of a str (None with a TypeError set when `o` is not one; None for null).
///
/// # Safety
/// `o` is a live object (or null) and the GIL is held.
pub unsafe fn text(api: &Api, o: *mut Object) -> Option<Vec<u8>> {
    if o.is_null() {
        return None;
    }
    let mut len: isize = 0;
    // SAFETY: the caller's promise; the buffer belongs to `o` and is copied at once.
    unsafe {
        let p = (api.unicode_as_utf8_and_size)(o, &mut len);
        if p.is_null() || len < 0 {
            return None;
        }
        Some(core::slice::from_raw_parts(p as *const u8, len as usize).to_vec())
    }
}

/// `getattr(o, name)`, a new reference or null (with no exception left set).
///
/// # Safety
/// `o` is a live object (or null) and the GIL is held.
pub unsafe fn attr(api: &Api, o: *mut Object, name: &core::ffi::CStr) -> *mut Object {
    if o.is_null() {
        return core::ptr::null_mut();
    }
    // SAFETY: the caller's promise.
    unsafe {
        let r = (api.object_get_attr_string)(o, name.as_ptr());
        if r.is_null() {
            (api.err_clear)();
        }
        r
    }
}

/// `f()`, a new reference or null (null for a null `f`; an exception may be left set).
///
/// # Safety
/// `f` is a live object (or null) and the GIL is held.
pub unsafe fn call(s: &SessionApi, f: *mut Object) -> *mut Object {
    if f.is_null() {
        return core::ptr::null_mut();
    }
    // SAFETY: the caller's promise.
    unsafe { (s.call_no_args)(f) }
}
