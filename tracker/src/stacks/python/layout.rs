//! Where CPython keeps a thread's frames, per minor version: the tracker reads the frame chain
//! of the allocating thread directly, only when it allocates, instead of following every call
//! with a profile function (which on 3.11+ also forces a frame object into being per call).
//!
//! The offsets come from CPython's own headers (3.10.13, 3.11.7, 3.12.1, 3.13.0); they do not
//! change within a minor version. `verify` checks them against the C API on the running
//! interpreter before anything relies on them.

use super::api::{Api, Object};
use core::ffi::CStr;

/// How a thread state leads to its innermost frame.
#[derive(Clone, Copy, Debug)]
enum Current {
    /// `tstate->frame` (3.10) or `tstate->current_frame` (3.13): the field at this offset.
    Field(usize),
    /// `tstate->cframe->current_frame` (3.11, 3.12): the CFrame pointer, then the field in it.
    ViaCFrame { cframe: usize, current: usize },
}

impl Current {
    /// The innermost frame of a thread state (0 when it runs none).
    ///
    /// # Safety
    /// `tstate` is a live PyThreadState of the version this was made for.
    #[inline(always)]
    unsafe fn frame(self, tstate: usize) -> usize {
        // SAFETY: per the caller, the fields exist; the CFrame a live thread state points at
        // is its root CFrame or one on the stack of the eval loop running now.
        unsafe {
            match self {
                Current::Field(off) => read(tstate + off),
                Current::ViaCFrame { cframe, current } => match read(tstate + cframe) {
                    0 => 0,
                    c => read(c + current),
                },
            }
        }
    }
}

/// Where a frame's position in its code is.
#[derive(Clone, Copy, Debug)]
enum Position {
    /// A pointer to the instruction, into the bytecode that starts `code_start` bytes into the
    /// code object (3.11+: prev_instr, instr_ptr).
    Instruction { field: usize, code_start: usize },
    /// An int: the index of the last instruction in code units (3.10: f_lasti).
    LastIndex(usize),
}

#[derive(Clone, Copy, Debug)]
pub struct Layout {
    pub minor: u32,
    current: Current,
    previous: usize,
    code: usize,
    position: Position,
    /// The frame's owner byte (3.12+): frames owned by the C stack are shims, not Python code.
    owner: Option<usize>,
    /// PyCodeObject: co_filename and co_qualname (co_name on 3.10).
    pub co_filename: usize,
    pub co_qualname: usize,
    /// PyCodeObject: co_firstlineno (an int) and co_linetable (a bytes object).
    pub co_firstlineno: usize,
    pub co_linetable: usize,
    /// PyCodeObject._co_firsttraceable (an int, 3.11+): the code unit of the first
    /// instruction after the frame's prologue (see [`Layout::in_prologue`]).
    co_firsttraceable: usize,
    /// sizeof(PyASCIIObject): where a compact ASCII string's characters start.
    pub ascii_data: usize,
}

/// PyThreadState.interp in every supported version.
pub const TSTATE_INTERP: usize = 16;
/// PyObject.ob_type.
pub const OB_TYPE: usize = 8;
/// `_PyInterpreterFrame.owner` of a shim frame (FRAME_OWNED_BY_CSTACK).
const OWNED_BY_CSTACK: u8 = 3;
/// `_PyInterpreterFrame.is_entry` (3.11).
const IS_ENTRY_311: usize = 68;
/// PyFrameObject.f_frame (3.11+).
const FRAME_OBJECT_F_FRAME: usize = 24;

impl Layout {
    /// The layout of CPython 3.`minor`, if it is one this build knows.
    pub const fn for_minor(minor: u32) -> Option<Layout> {
        let layout = match minor {
            10 => Layout {
                minor,
                current: Current::Field(24),
                previous: 24,
                code: 32,
                position: Position::LastIndex(96),
                owner: None,
                co_filename: 104,
                co_qualname: 112,
                co_firstlineno: 40,
                co_firsttraceable: 0,
                co_linetable: 120,
                ascii_data: 48,
            },
            11 => Layout {
                minor,
                current: Current::ViaCFrame {
                    cframe: 56,
                    current: 8,
                },
                previous: 48,
                code: 32,
                position: Position::Instruction {
                    field: 56,
                    code_start: 184,
                },
                owner: None,
                co_filename: 112,
                co_qualname: 128,
                co_firstlineno: 72,
                co_firsttraceable: 168,
                co_linetable: 136,
                ascii_data: 48,
            },
            12 => Layout {
                minor,
                current: Current::ViaCFrame {
                    cframe: 56,
                    current: 0,
                },
                previous: 8,
                code: 0,
                position: Position::Instruction {
                    field: 56,
                    code_start: 192,
                },
                owner: Some(70),
                co_filename: 112,
                co_qualname: 128,
                co_firstlineno: 68,
                co_firsttraceable: 176,
                co_linetable: 136,
                ascii_data: 40,
            },
            13 => Layout {
                minor,
                current: Current::Field(72),
                previous: 8,
                code: 0,
                position: Position::Instruction {
                    field: 56,
                    code_start: 200,
                },
                owner: Some(70),
                co_filename: 112,
                co_qualname: 128,
                co_firstlineno: 68,
                co_firsttraceable: 184,
                co_linetable: 136,
                ascii_data: 40,
            },
            _ => return None,
        };
        Some(layout)
    }

    /// The innermost frame of a thread state (0 when it runs none).
    ///
    /// # Safety
    /// `tstate` is a live PyThreadState of this layout's version.
    #[inline]
    pub unsafe fn current_frame(&self, tstate: usize) -> usize {
        // SAFETY: per the caller.
        unsafe { self.current.frame(tstate) }
    }

    /// The frame that called `frame` (0 at the outermost).
    ///
    /// # Safety
    /// `frame` is a live frame of this layout's version.
    #[inline]
    pub unsafe fn previous(&self, frame: usize) -> usize {
        // SAFETY: per the caller.
        unsafe { read(frame + self.previous) }
    }

    /// Whether `frame` is a shim the interpreter pushes when C calls Python (3.12+).
    ///
    /// # Safety
    /// `frame` is a live frame of this layout's version.
    #[inline]
    pub unsafe fn is_shim(&self, frame: usize) -> bool {
        match self.owner {
            // SAFETY: per the caller, the owner byte exists.
            Some(off) => unsafe { ((frame + off) as *const u8).read() == OWNED_BY_CSTACK },
            None => false,
        }
    }

    /// Whether a frame running `code` at byte `offset` is still in its prologue (3.11+: before
    /// `_co_firsttraceable`, where MAKE_CELL, COPY_FREE_VARS and RETURN_GENERATOR run, or
    /// 3.13's `__init__` cleanup shim, which never leaves it). CPython counts such a frame as
    /// not yet begun and leaves it out of tracebacks and of tracemalloc's stacks: what it
    /// allocates (a generator, a coroutine, a closure's cells) is its caller's line's.
    ///
    /// # Safety
    /// `code` is a live code object of this layout's version.
    #[inline]
    pub unsafe fn in_prologue(&self, code: usize, offset: isize) -> bool {
        if self.minor < 11 {
            return false;
        }
        // SAFETY: per the caller: an int field of the code object.
        let first = unsafe { ((code + self.co_firsttraceable) as *const i32).read() };
        offset < first as isize * 2
    }

    /// The code object `frame` runs (may be another object on 3.13: check its type).
    ///
    /// # Safety
    /// `frame` is a live frame of this layout's version.
    #[inline]
    pub unsafe fn code(&self, frame: usize) -> usize {
        // SAFETY: per the caller.
        unsafe { read(frame + self.code) }
    }

    /// The byte offset in `code`'s bytecode of the instruction `frame` runs (negative before
    /// the first one): what PyCode_Addr2Line takes.
    ///
    /// # Safety
    /// `frame` is a live frame of this layout's version running `code`.
    #[inline]
    pub unsafe fn offset(&self, frame: usize, code: usize) -> isize {
        // SAFETY: per the caller.
        unsafe {
            match self.position {
                Position::Instruction { field, code_start } => {
                    (read(frame + field) as isize).wrapping_sub((code + code_start) as isize)
                }
                Position::LastIndex(field) => ((frame + field) as *const i32).read() as isize * 2,
            }
        }
    }

    /// The fields a frame walk reads, for a loop specialized to this version (frames.rs).
    pub const fn walk_fields(&self) -> WalkFields {
        let (position, code_start) = match self.position {
            Position::Instruction { field, code_start } => (field, code_start),
            Position::LastIndex(field) => (field, 0),
        };
        WalkFields {
            current: self.current,
            previous: self.previous,
            code: self.code,
            position,
            code_start,
            owner: match self.owner {
                Some(off) => off,
                None => 0,
            },
        }
    }

    /// The interpreter frame behind a frame object (3.11+), or the object itself (3.10).
    pub fn frame_of_object(&self, object: usize) -> usize {
        if self.minor == 10 {
            object
        } else {
            // SAFETY: a live PyFrameObject of 3.11+ holds its interpreter frame at f_frame.
            unsafe { read(object + FRAME_OBJECT_F_FRAME) }
        }
    }
}

/// A layout's frame fields as plain offsets, for the frame walk (chain.rs): the version is a
/// constant there (`MINOR`), so its loop has no branch on the layout and keeps the offsets in
/// registers.
///
/// Every method's `frame` is a live frame of the running thread's chain, of the version the
/// fields and `MINOR` describe (the caller's safety condition).
#[derive(Clone, Copy)]
pub struct WalkFields {
    /// How the thread state leads to the innermost frame.
    current: Current,
    previous: usize,
    code: usize,
    /// The instruction pointer (3.11+) or `f_lasti` (3.10).
    position: usize,
    code_start: usize,
    /// The owner byte (3.12+).
    owner: usize,
}

impl WalkFields {
    /// The fields of CPython 3.`MINOR` (one of the versions `Layout::for_minor` knows), as
    /// constants.
    pub const fn of<const MINOR: u32>() -> WalkFields {
        match Layout::for_minor(MINOR) {
            Some(layout) => layout.walk_fields(),
            None => panic!("a version the layouts know"),
        }
    }

    /// The innermost frame of a thread state (0 when it runs none).
    ///
    /// # Safety
    /// `tstate` is a live PyThreadState of this version.
    #[inline(always)]
    pub unsafe fn current_frame(&self, tstate: usize) -> usize {
        // SAFETY: per the caller.
        unsafe { self.current.frame(tstate) }
    }

    /// The frame that called `frame` (0 at the outermost).
    #[inline(always)]
    pub unsafe fn previous(&self, frame: usize) -> usize {
        // SAFETY: per the struct's condition.
        unsafe { read(frame + self.previous) }
    }

    /// Whether `frame` is a shim the interpreter pushes when C calls Python (3.12+).
    #[inline(always)]
    pub unsafe fn is_shim<const MINOR: u32>(&self, frame: usize) -> bool {
        // SAFETY: per the struct's condition (3.12+ frames have the owner byte).
        MINOR >= 12 && unsafe { ((frame + self.owner) as *const u8).read() } == OWNED_BY_CSTACK
    }

    /// The object `frame` runs (0 for none).
    #[inline(always)]
    pub unsafe fn code(&self, frame: usize) -> usize {
        // SAFETY: per the struct's condition.
        unsafe { read(frame + self.code) }
    }

    /// Where `frame` is in its code, as stored, in one word: the instruction pointer (3.11+;
    /// 3.11's `is_entry` in its low bit, free since code units are two bytes) or `f_lasti`
    /// (3.10).
    #[inline(always)]
    pub unsafe fn place<const MINOR: u32>(&self, frame: usize) -> usize {
        // SAFETY: per the struct's condition.
        unsafe {
            match MINOR {
                10 => ((frame + self.position) as *const u32).read() as usize,
                11 => {
                    read(frame + self.position)
                        | ((frame + IS_ENTRY_311) as *const u8).read() as usize & 1
                }
                _ => read(frame + self.position),
            }
        }
    }

    /// The frame's position from its code and [`place`](Self::place): the byte offset of its
    /// instruction times two, plus one when the frame is the first of a run of the evaluation
    /// loop as far as the frame itself tells (3.10: every frame; 3.11: its `is_entry`; 3.12+:
    /// never, the shims mark runs).
    #[inline(always)]
    pub fn position<const MINOR: u32>(&self, code: usize, place: usize) -> isize {
        let (offset, entry) = match MINOR {
            10 => ((place as u32 as i32) as isize * 2, 1),
            11 => (
                ((place & !1) as isize).wrapping_sub((code + self.code_start) as isize),
                (place & 1) as isize,
            ),
            _ => (
                (place as isize).wrapping_sub((code + self.code_start) as isize),
                0,
            ),
        };
        offset.wrapping_mul(2) | entry
    }
}

/// A pointer-sized word at `addr`.
///
/// # Safety
/// `addr` is an aligned, readable word.
#[inline(always)]
pub unsafe fn read(addr: usize) -> usize {
    // SAFETY: per the caller.
    unsafe { (addr as *const usize).read() }
}

/// The minor version of the running CPython 3, from Py_GetVersion ("3.11.7 (main, ...").
pub fn running_minor(api: &Api) -> Option<u32> {
    // SAFETY: Py_GetVersion returns a static NUL-terminated string.
    let version = unsafe { CStr::from_ptr((api.get_version)()) }.to_bytes();
    let rest = version.strip_prefix(b"3.")?;
    let digits: Vec<u8> = rest
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .copied()
        .collect();
    std::str::from_utf8(&digits).ok()?.parse().ok()
}

/// Checks the layout against the C API on the calling thread, which holds the GIL and runs
/// Python frames (the import of the tracker): the two innermost frames, their code objects,
/// lines, file names and function names must read the same both ways.
pub fn verify(layout: &Layout, api: &Api, tstate: usize) -> bool {
    // SAFETY: the GIL is held: PyEval_GetFrame's result is borrowed and alive during this call.
    let object = unsafe { (api.eval_get_frame)() } as usize;
    if object == 0 || tstate == 0 {
        return false;
    }
    // SAFETY: the calling thread's own live thread state of the running version.
    let mut frame = unsafe { layout.current_frame(tstate) };
    // SAFETY: frames on the chain of the thread running this call are alive.
    while frame != 0 && unsafe { layout.is_shim(frame) } {
        // SAFETY: as above.
        frame = unsafe { layout.previous(frame) };
    }
    if frame != layout.frame_of_object(object) || !verify_frame(layout, api, frame, object) {
        return false;
    }
    // The caller's frame: checks the link between frames.
    // SAFETY: the GIL is held; the result is a new reference, released below.
    let back = unsafe { (api.frame_get_back)(object as *mut Object) } as usize;
    if back == 0 {
        return true;
    }
    // SAFETY: as above: frames of the running thread are alive.
    let mut caller = unsafe { layout.previous(frame) };
    // SAFETY: as above.
    while caller != 0 && unsafe { layout.is_shim(caller) } {
        // SAFETY: as above.
        caller = unsafe { layout.previous(caller) };
    }
    let same = caller == layout.frame_of_object(back) && verify_frame(layout, api, caller, back);
    // SAFETY: the reference PyFrame_GetBack returned.
    unsafe { (api.dec_ref)(back as *mut Object) };
    same
}

fn verify_frame(layout: &Layout, api: &Api, frame: usize, object: usize) -> bool {
    let object = object as *mut Object;
    // SAFETY: the GIL is held and `object` is the live frame object of `frame`; the code is a
    // new reference, released below; the line is computed from the frame object.
    unsafe {
        let code = (api.frame_get_code)(object);
        if code.is_null() {
            (api.err_clear)();
            return false;
        }
        let ours = layout.code(frame);
        let line = (api.frame_get_line_number)(object);
        let offset = layout.offset(frame, ours);
        let same = ours == code as usize
            && (api.code_addr2line)(code, offset as i32) == line
            && same_str(api, read(ours + layout.co_filename), code, c"co_filename")
            && same_str(
                api,
                read(ours + layout.co_qualname),
                code,
                if layout.minor == 10 {
                    c"co_name"
                } else {
                    c"co_qualname"
                },
            );
        (api.dec_ref)(code);
        same
    }
}

/// Whether the object at `ours` is the code's attribute `attr`.
fn same_str(api: &Api, ours: usize, code: *mut Object, attr: &CStr) -> bool {
    // SAFETY: the GIL is held; the attribute is a new reference, released at once (the code
    // object keeps its own).
    unsafe {
        let v = (api.object_get_attr_string)(code, attr.as_ptr());
        if v.is_null() {
            (api.err_clear)();
            return false;
        }
        (api.dec_ref)(v);
        v as usize == ours
    }
}
