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

extern "C" {
    static mut environ: *mut *mut c_char;
}

/// The value of the last entry of `environ` that starts with `prefix` (`NAME=`): the one the
/// loader takes for LD_PRELOAD, where getenv gives the first.
pub fn last_value(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut found = None;
    // SAFETY: the process's environment, a NULL-terminated array of C strings, read at
    // start-up before the program runs.
    unsafe {
        let env = environ;
        if env.is_null() {
            return found;
        }
        let mut i = 0;
        while !(*env.add(i)).is_null() {
            let e = CStr::from_ptr(*env.add(i)).to_bytes();
            if let Some(value) = e.strip_prefix(prefix) {
                found = Some(value.to_vec());
            }
            i += 1;
        }
    }
    found
}

/// Replaces the last entry of `environ` that starts with `prefix` by `entry` (a whole
/// `NAME=value`, which stays for good), or takes it out when None, the others left in their
/// places (in place, as the C library's setenv and unsetenv change an entry; with the variable
/// given twice they would change the first or both).
pub fn replace_last(prefix: &[u8], entry: Option<&'static CStr>) {
    // SAFETY: as in `last_entry`; the array is the process's own, changed in place (POSIX
    // lets a program change `environ`), at start-up before the program runs.
    unsafe {
        let env = environ;
        if env.is_null() {
            return;
        }
        let mut last = None;
        let mut i = 0;
        while !(*env.add(i)).is_null() {
            if CStr::from_ptr(*env.add(i)).to_bytes().starts_with(prefix) {
                last = Some(i);
            }
            i += 1;
        }
        let Some(at) = last else {
            return;
        };
        match entry {
            Some(e) => *env.add(at) = e.as_ptr().cast_mut(),
            None => {
                let mut j = at;
                while !(*env.add(j)).is_null() {
                    *env.add(j) = *env.add(j + 1);
                    j += 1;
                }
            }
        }
    }
}
