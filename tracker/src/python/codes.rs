//! What the tracker knows of each code object it saw run: its qualified name and file, as string
//! ids. A code object is kept alive once seen (one reference), so that its address is never
//! reused by another while the table names it.

use super::api::{Api, Object};
use super::Tables;
use crate::lock::SpinLock;
use crate::{stacks, thread, tls};
use std::collections::HashMap;

static CODES: SpinLock<Option<HashMap<usize, (u64, u64)>>> = SpinLock::new(None);

/// The (function, file) string ids of the code `frame` runs; a code object not seen before is
/// named, its strings defined in the calling thread's chunk. Called with the GIL held.
pub fn of_frame(api: &Api, frame: *mut Object, t: &mut tls::Tls) -> Option<(u64, u64)> {
    // SAFETY: a live frame handed to the profile function; the result is a new reference.
    let code = unsafe { (api.frame_get_code)(frame) };
    if code.is_null() {
        // SAFETY: clearing the error the call may have set.
        unsafe { (api.err_clear)() };
        return None;
    }
    if let Some(&ids) = CODES
        .lock()
        .get_or_insert_with(HashMap::new)
        .get(&(code as usize))
    {
        // SAFETY: the table holds another reference: this one is not the last.
        unsafe { (api.dec_ref)(code) };
        return Some(ids);
    }
    let function = api
        .str_attr(code, c"co_qualname")
        .or_else(|| api.str_attr(code, c"co_name"))
        .unwrap_or_else(|| b"<unknown>".to_vec());
    let file = api
        .str_attr(code, c"co_filename")
        .unwrap_or_else(|| b"<unknown>".to_vec());
    let ids = thread::with_tables(t, |tables| {
        (string(&function, tables), string(&file, tables))
    });
    // The new reference stays with the table.
    CODES
        .lock()
        .get_or_insert_with(HashMap::new)
        .insert(code as usize, ids);
    Some(ids)
}

fn string(bytes: &[u8], tables: &mut dyn Tables) -> u64 {
    match stacks::string(bytes) {
        Ok(id) => id,
        Err(id) => {
            tables.string(id, bytes);
            id
        }
    }
}
