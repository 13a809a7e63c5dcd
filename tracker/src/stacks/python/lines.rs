//! The line of an instruction in a long code object without scanning its line table from the
//! start each time. PyCode_Addr2Line decodes the table from its first entry on every call:
//! for a module of 100,000 lines, each new line the module reaches cost a scan of the whole
//! table before it, and the run took 150 times as long as alone (quadratic in the module's
//! length). A thread keeps a few cursors (CPython's own PyCodeAddressRange, which
//! `_PyCode_CheckLineNumber` moves forward or back from where it is, as its tracing does), one
//! per long code object it runs, so that the next line is a step or two away.

use super::api::{AddressRange, Api, Object, RangeOpaque};
use super::layout::read;
use super::INTERPRETER;
use libc::c_int;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

/// Line tables shorter than this are scanned whole by PyCode_Addr2Line: a few dozen steps.
const LONG_TABLE: usize = 256;
/// Cursors a thread keeps, one per long code object (taken in turn).
pub const CURSORS: usize = 4;
/// Cursors checked against PyCode_Addr2Line at their first line (the layout's offsets and the
/// range's shape); any difference turns cursors off for the process.
const CHECKED: u32 = 16;
/// PyBytesObject: ob_size and ob_sval (3.10 to 3.13).
const BYTES_SIZE: usize = 16;
const BYTES_DATA: usize = 32;

static OFF: AtomicBool = AtomicBool::new(false);
static CHECKS: AtomicU32 = AtomicU32::new(0);

/// A thread's cursors (zeroed memory: none).
#[derive(Clone, Copy)]
pub struct Cursors {
    slots: [(usize, AddressRange); CURSORS],
    next: usize,
}

impl Cursors {
    /// No cursor (what zeroed memory holds).
    pub fn none() -> Cursors {
        // SAFETY: all-zero is the struct's empty state: no code (0), null table pointers.
        unsafe { core::mem::zeroed() }
    }

    /// Drops the cursor in `code`'s line table, if there is one (the code object died).
    pub fn forget(&mut self, code: usize) {
        for slot in &mut self.slots {
            if slot.0 == code {
                slot.0 = 0;
            }
        }
    }
}

/// The line of the instruction at byte `offset` of `code`, a code object kept alive (its line
/// table with it): through a cursor for a long table, else PyCode_Addr2Line.
pub fn line(cursors: &mut Cursors, api: &Api, code: usize, offset: c_int) -> c_int {
    let whole = || {
        // SAFETY: a live code object; PyCode_Addr2Line only reads its line table.
        unsafe { (api.code_addr2line)(code as *mut Object, offset) }
    };
    let (Some(check_line), Some(py)) = (api.code_check_line_number, INTERPRETER.get()) else {
        return whole();
    };
    if offset < 0 || OFF.load(Ordering::Relaxed) {
        return whole();
    }
    let layout = &py.layout;
    // SAFETY: a live code object of this layout: its line table is a bytes object it holds.
    let (table, len) = unsafe {
        let table = read(code + layout.co_linetable);
        (table, read(table + BYTES_SIZE))
    };
    if len < LONG_TABLE {
        return whole();
    }
    let found = cursors.slots.iter().position(|s| s.0 == code);
    const _: () = assert!(core::mem::size_of::<AddressRange>() == 40);
    let (i, new) = match found {
        Some(i) => (i, false),
        None => {
            let i = cursors.next % CURSORS;
            cursors.next = cursors.next.wrapping_add(1);
            // SAFETY: as above; co_firstlineno is an int of the code object.
            let first = unsafe { ((code + layout.co_firstlineno) as *const c_int).read() };
            let data = (table + BYTES_DATA) as *const u8;
            // What _PyCode_InitAddressRange makes: before the first range.
            cursors.slots[i] = (
                code,
                AddressRange {
                    ar_start: -1,
                    ar_end: 0,
                    ar_line: -1,
                    opaque: RangeOpaque {
                        computed_line: first,
                        lo_next: data,
                        // SAFETY: the end of the table's bytes.
                        limit: unsafe { data.add(len) },
                    },
                },
            );
            (i, true)
        }
    };
    // SAFETY: the range walks the live table of `code` (kept alive, so is its table).
    let line = unsafe { check_line(offset, &mut cursors.slots[i].1) };
    if new && CHECKS.fetch_add(1, Ordering::Relaxed) < CHECKED {
        let expected = whole();
        if line != expected {
            OFF.store(true, Ordering::Relaxed);
            cursors.slots[i].0 = 0;
            return expected;
        }
    }
    line
}
