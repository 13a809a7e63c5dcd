//! Changing the process's environment at start-up through the C library's own setenv and
//! unsetenv. A program may define its own (bash does: before the shell has started, its
//! unsetenv does nothing and its setenv does not reach `environ`), and a plain call from this
//! library reaches the program's definition. What the tracker removes must really be gone, or
//! the program's children get the tracker's variables.

use core::ffi::CStr;
use libc::{c_char, c_int};

type SetenvFn = unsafe extern "C" fn(*const c_char, *const c_char, c_int) -> c_int;
type UnsetenvFn = unsafe extern "C" fn(*const c_char) -> c_int;

/// The C library's definition of `name` (the one after this library), if found.
fn libc_fn(name: &CStr) -> usize {
    // SAFETY: dlsym with a NUL-terminated name.
    unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr()) as usize }
}

/// setenv(name, value, 1).
pub fn set(name: &CStr, value: &CStr) {
    match libc_fn(c"setenv") {
        // SAFETY: setenv copies both NUL-terminated strings; called at start-up.
        0 => unsafe { libc::setenv(name.as_ptr(), value.as_ptr(), 1) },
        // SAFETY: the C library's setenv, as above.
        f => unsafe {
            core::mem::transmute::<usize, SetenvFn>(f)(name.as_ptr(), value.as_ptr(), 1)
        },
    };
}

/// unsetenv(name).
pub fn unset(name: &CStr) {
    match libc_fn(c"unsetenv") {
        // SAFETY: unsetenv with a NUL-terminated name; called at start-up.
        0 => unsafe { libc::unsetenv(name.as_ptr()) },
        // SAFETY: the C library's unsetenv, as above.
        f => unsafe { core::mem::transmute::<usize, UnsetenvFn>(f)(name.as_ptr()) },
    };
}
