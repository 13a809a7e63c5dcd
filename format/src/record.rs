//! Records: the events and table entries inside a chunk's payload.
//!
//! Each record starts with one byte: `type << 3 | tick_delta`, where a tick delta of 7 means the
//! real delta (minus 7) follows as a varint. Addresses are zigzag deltas against the previous
//! address of the chunk; a free can instead name an allocation of the same chunk by distance
//! (1 = the latest allocation record), which usually takes one or two bytes. Every chunk starts
//! from tick 0, address 0 and no allocations, so chunks decode independently.

use crate::varint::{self, get, put, unzigzag, zigzag};
use std::fmt;

/// Longest encoding of any timed event record (alloc, free, munmap, mremap, marker).
pub const MAX_EVENT_LEN: usize = 1 + 6 * varint::MAX_VARINT_LEN;

/// The allocation function behind an allocation record. The value is the record type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Allocator {
    Malloc = 0,
    Calloc = 1,
    /// realloc and reallocarray: recorded as a free of the old block and this allocation.
    Realloc = 2,
    PosixMemalign = 3,
    AlignedAlloc = 4,
    Memalign = 5,
    Valloc = 6,
    Pvalloc = 7,
    /// Anonymous mmap (and the new mapping of an mremap).
    Mmap = 8,
    PymallocMalloc = 9,
    PymallocCalloc = 10,
    PymallocRealloc = 11,
}

impl Allocator {
    pub const ALL: [Allocator; 12] = [
        Allocator::Malloc,
        Allocator::Calloc,
        Allocator::Realloc,
        Allocator::PosixMemalign,
        Allocator::AlignedAlloc,
        Allocator::Memalign,
        Allocator::Valloc,
        Allocator::Pvalloc,
        Allocator::Mmap,
        Allocator::PymallocMalloc,
        Allocator::PymallocCalloc,
        Allocator::PymallocRealloc,
    ];

    pub fn from_u8(v: u8) -> Option<Allocator> {
        Allocator::ALL.get(v as usize).copied()
    }

    /// The name reports use.
    pub fn name(self) -> &'static str {
        match self {
            Allocator::Malloc => "malloc",
            Allocator::Calloc => "calloc",
            Allocator::Realloc => "realloc",
            Allocator::PosixMemalign => "posix_memalign",
            Allocator::AlignedAlloc => "aligned_alloc",
            Allocator::Memalign => "memalign",
            Allocator::Valloc => "valloc",
            Allocator::Pvalloc => "pvalloc",
            Allocator::Mmap => "mmap",
            Allocator::PymallocMalloc => "pymalloc_malloc",
            Allocator::PymallocCalloc => "pymalloc_calloc",
            Allocator::PymallocRealloc => "pymalloc_realloc",
        }
    }

    /// Whether blocks of this allocator are released by munmap (true) or by free (false).
    pub fn is_mapping(self) -> bool {
        self == Allocator::Mmap
    }

    /// Whether this allocator belongs to the Python object domains (released by pymalloc_free).
    pub fn is_python(self) -> bool {
        matches!(
            self,
            Allocator::PymallocMalloc | Allocator::PymallocCalloc | Allocator::PymallocRealloc
        )
    }
}

/// Markers: points in a thread's timeline that reports use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Marker {
    /// The point where "live at exit" is taken: main returned or exit() was called (native), or
    /// the script finished (Python).
    ExitSnapshot,
    /// A Python run's script starts: what is live then is the interpreter's start-up.
    ScriptStart,
    /// A marker this reader does not know.
    Other(u64),
}

impl Marker {
    pub fn code(self) -> u64 {
        match self {
            Marker::ExitSnapshot => 1,
            Marker::ScriptStart => 2,
            Marker::Other(c) => c,
        }
    }
    pub fn from_code(c: u64) -> Marker {
        match c {
            1 => Marker::ExitSnapshot,
            2 => Marker::ScriptStart,
            c => Marker::Other(c),
        }
    }
}

pub(crate) mod rtype {
    pub const FREE_BACK: u8 = 16;
    pub const FREE_ADDR: u8 = 17;
    pub const PYFREE_BACK: u8 = 18;
    pub const PYFREE_ADDR: u8 = 19;
    pub const MUNMAP: u8 = 20;
    pub const MREMAP: u8 = 21;
    /// A pymalloc_free of a block that held an object, with the object's type (since 1.3).
    pub const TYPED_FREE: u8 = 22;
    pub const STACK: u8 = 24;
    pub const NATIVE_FRAME: u8 = 25;
    pub const PYTHON_FRAME: u8 = 26;
    pub const STRING: u8 = 27;
    pub const THREAD_NAME: u8 = 28;
    pub const MODULE: u8 = 29;
    pub const MARKER: u8 = 30;
    pub const EXTENDED: u8 = 31;
}

/// A loaded segment of a module: where it sits relative to the module's load base.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    pub vaddr: u64,
    pub memsz: u64,
    pub file_offset: u64,
}

/// One decoded record. Byte strings borrow from the payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record<'a> {
    Alloc {
        tick: u64,
        allocator: Allocator,
        addr: u64,
        size: u64,
        stack: u64,
    },
    /// A free; `python` for pymalloc_free, else free() or the free half of a realloc.
    /// `object_type`: for a pymalloc_free of a block that held an object, the address of the
    /// object's type (a hint read from the block's header, see "Typed frees" in FORMAT.md);
    /// 0 when not known.
    Free {
        tick: u64,
        python: bool,
        addr: u64,
        object_type: u64,
    },
    Munmap {
        tick: u64,
        addr: u64,
        len: u64,
    },
    Mremap {
        tick: u64,
        old_addr: u64,
        old_len: u64,
        new_addr: u64,
        new_len: u64,
        stack: u64,
    },
    /// Stack `id` is frame `frame` called from stack `parent` (0 = the root).
    Stack {
        id: u64,
        parent: u64,
        frame: u64,
    },
    /// Frame `id` is the native instruction address `addr` (a return address).
    NativeFrame {
        id: u64,
        addr: u64,
    },
    /// Frame `id` is a Python frame: strings `function` and `file`, executing `line`.
    PythonFrame {
        id: u64,
        function: u64,
        file: u64,
        line: u64,
    },
    String {
        id: u64,
        bytes: &'a [u8],
    },
    ThreadName {
        name: &'a [u8],
    },
    Module {
        base: u64,
        path: &'a [u8],
        build_id: &'a [u8],
        segments: Vec<Segment>,
    },
    Marker {
        tick: u64,
        marker: Marker,
    },
    /// A record type added by a later minor version; readers skip it.
    Extended {
        tick: u64,
        kind: u64,
        payload: &'a [u8],
    },
}

impl Record<'_> {
    /// The tick of a timed record.
    pub fn tick(&self) -> Option<u64> {
        match *self {
            Record::Alloc { tick, .. }
            | Record::Free { tick, .. }
            | Record::Munmap { tick, .. }
            | Record::Mremap { tick, .. }
            | Record::Marker { tick, .. }
            | Record::Extended { tick, .. } => Some(tick),
            _ => None,
        }
    }
}

/// Encodes records into a caller-provided byte buffer. The caller makes sure that
/// `MAX_EVENT_LEN` bytes (or, for table records, `table_record_len`) are free at `pos`.
#[derive(Clone, Debug, Default)]
pub struct Encoder {
    prev_tick: u64,
    prev_addr: u64,
    /// The object type of the chunk's previous typed free.
    prev_type: u64,
    /// Allocation records written to the current chunk.
    allocs: u64,
}

impl Encoder {
    pub fn new() -> Encoder {
        Encoder::default()
    }

    /// Starts a new chunk.
    pub fn reset(&mut self) {
        *self = Encoder::default();
    }

    /// Allocation records written to the current chunk (the distance base for frees).
    #[inline]
    pub fn alloc_count(&self) -> u64 {
        self.allocs
    }

    #[inline]
    fn head(&mut self, buf: &mut [u8], pos: usize, rtype: u8, tick: u64) -> usize {
        let tick = tick.max(self.prev_tick);
        let delta = tick - self.prev_tick;
        self.prev_tick = tick;
        if delta < 7 {
            buf[pos] = (rtype << 3) | delta as u8;
            pos + 1
        } else {
            buf[pos] = (rtype << 3) | 7;
            put(buf, pos + 1, delta - 7)
        }
    }

    #[inline]
    fn addr(&mut self, buf: &mut [u8], pos: usize, addr: u64) -> usize {
        let d = addr.wrapping_sub(self.prev_addr) as i64;
        self.prev_addr = addr;
        put(buf, pos, zigzag(d))
    }

    #[inline]
    #[allow(clippy::too_many_arguments)]
    pub fn alloc(
        &mut self,
        buf: &mut [u8],
        pos: usize,
        allocator: Allocator,
        tick: u64,
        addr: u64,
        size: u64,
        stack: u64,
    ) -> usize {
        let pos = self.head(buf, pos, allocator as u8, tick);
        let pos = self.addr(buf, pos, addr);
        let pos = put(buf, pos, size);
        self.allocs += 1;
        put(buf, pos, stack)
    }

    /// A free of the allocation recorded `distance` allocation records ago in this chunk
    /// (1 = the latest); `addr` is that allocation's address.
    #[inline]
    pub fn free_back(
        &mut self,
        buf: &mut [u8],
        pos: usize,
        python: bool,
        tick: u64,
        distance: u64,
        addr: u64,
    ) -> usize {
        let t = if python {
            rtype::PYFREE_BACK
        } else {
            rtype::FREE_BACK
        };
        let pos = self.head(buf, pos, t, tick);
        self.prev_addr = addr;
        put(buf, pos, distance)
    }

    #[inline]
    pub fn free_addr(
        &mut self,
        buf: &mut [u8],
        pos: usize,
        python: bool,
        tick: u64,
        addr: u64,
    ) -> usize {
        let t = if python {
            rtype::PYFREE_ADDR
        } else {
            rtype::FREE_ADDR
        };
        let pos = self.head(buf, pos, t, tick);
        self.addr(buf, pos, addr)
    }

    /// A pymalloc_free by address of a block that held an object of type `object_type`
    /// (not 0).
    #[inline]
    pub fn typed_free(
        &mut self,
        buf: &mut [u8],
        pos: usize,
        tick: u64,
        addr: u64,
        object_type: u64,
    ) -> usize {
        let pos = self.head(buf, pos, rtype::TYPED_FREE, tick);
        let pos = self.addr(buf, pos, addr);
        let d = object_type.wrapping_sub(self.prev_type) as i64;
        self.prev_type = object_type;
        put(buf, pos, zigzag(d))
    }

    /// A free record of any kind: typed when it has an object type.
    #[inline]
    pub fn any_free(
        &mut self,
        buf: &mut [u8],
        pos: usize,
        python: bool,
        tick: u64,
        addr: u64,
        object_type: u64,
    ) -> usize {
        if python && object_type != 0 {
            self.typed_free(buf, pos, tick, addr, object_type)
        } else {
            self.free_addr(buf, pos, python, tick, addr)
        }
    }

    pub fn munmap(&mut self, buf: &mut [u8], pos: usize, tick: u64, addr: u64, len: u64) -> usize {
        let pos = self.head(buf, pos, rtype::MUNMAP, tick);
        let pos = self.addr(buf, pos, addr);
        put(buf, pos, len)
    }

    #[allow(clippy::too_many_arguments)]
    pub fn mremap(
        &mut self,
        buf: &mut [u8],
        pos: usize,
        tick: u64,
        old_addr: u64,
        old_len: u64,
        new_addr: u64,
        new_len: u64,
        stack: u64,
    ) -> usize {
        let pos = self.head(buf, pos, rtype::MREMAP, tick);
        let pos = self.addr(buf, pos, old_addr);
        let pos = put(buf, pos, old_len);
        let pos = self.addr(buf, pos, new_addr);
        let pos = put(buf, pos, new_len);
        put(buf, pos, stack)
    }

    pub fn marker(&mut self, buf: &mut [u8], pos: usize, tick: u64, marker: Marker) -> usize {
        let pos = self.head(buf, pos, rtype::MARKER, tick);
        put(buf, pos, marker.code())
    }

    /// A record of a type added by a later minor version (readers that do not know `kind` skip
    /// it).
    pub fn extended(
        &mut self,
        buf: &mut [u8],
        pos: usize,
        tick: u64,
        kind: u64,
        payload: &[u8],
    ) -> usize {
        let pos = self.head(buf, pos, rtype::EXTENDED, tick);
        let pos = put(buf, pos, kind);
        put_bytes(buf, pos, payload)
    }

    /// Table records carry no time: their delta is 0.
    fn untimed(&mut self, buf: &mut [u8], pos: usize, rtype: u8) -> usize {
        buf[pos] = rtype << 3;
        pos + 1
    }

    pub fn stack(&mut self, buf: &mut [u8], pos: usize, id: u64, parent: u64, frame: u64) -> usize {
        let pos = self.untimed(buf, pos, rtype::STACK);
        let pos = put(buf, pos, id);
        let pos = put(buf, pos, parent);
        put(buf, pos, frame)
    }

    pub fn native_frame(&mut self, buf: &mut [u8], pos: usize, id: u64, addr: u64) -> usize {
        let pos = self.untimed(buf, pos, rtype::NATIVE_FRAME);
        let pos = put(buf, pos, id);
        put(buf, pos, addr)
    }

    pub fn python_frame(
        &mut self,
        buf: &mut [u8],
        pos: usize,
        id: u64,
        function: u64,
        file: u64,
        line: u64,
    ) -> usize {
        let pos = self.untimed(buf, pos, rtype::PYTHON_FRAME);
        let pos = put(buf, pos, id);
        let pos = put(buf, pos, function);
        let pos = put(buf, pos, file);
        put(buf, pos, line)
    }

    /// Room needed by a record carrying `n` bytes of text.
    pub fn table_record_len(n: usize) -> usize {
        1 + 4 * varint::MAX_VARINT_LEN + n
    }

    pub fn string(&mut self, buf: &mut [u8], pos: usize, id: u64, bytes: &[u8]) -> usize {
        let pos = self.untimed(buf, pos, rtype::STRING);
        let pos = put(buf, pos, id);
        put_bytes(buf, pos, bytes)
    }

    pub fn thread_name(&mut self, buf: &mut [u8], pos: usize, name: &[u8]) -> usize {
        let pos = self.untimed(buf, pos, rtype::THREAD_NAME);
        put_bytes(buf, pos, name)
    }

    /// Room needed by a module record: its type, base, two lengths and segment count, the two
    /// byte strings and three varints per segment.
    pub fn module_len(path: &[u8], build_id: &[u8], segments: usize) -> usize {
        1 + 4 * varint::MAX_VARINT_LEN
            + path.len()
            + build_id.len()
            + segments * 3 * varint::MAX_VARINT_LEN
    }

    pub fn module(
        &mut self,
        buf: &mut [u8],
        pos: usize,
        base: u64,
        path: &[u8],
        build_id: &[u8],
        segments: &[Segment],
    ) -> usize {
        let pos = self.untimed(buf, pos, rtype::MODULE);
        let pos = put(buf, pos, base);
        let pos = put_bytes(buf, pos, path);
        let pos = put_bytes(buf, pos, build_id);
        let mut pos = put(buf, pos, segments.len() as u64);
        for s in segments {
            pos = put(buf, pos, s.vaddr);
            pos = put(buf, pos, s.memsz);
            pos = put(buf, pos, s.file_offset);
        }
        pos
    }
}

fn put_bytes(buf: &mut [u8], pos: usize, bytes: &[u8]) -> usize {
    let pos = put(buf, pos, bytes.len() as u64);
    buf[pos..pos + bytes.len()].copy_from_slice(bytes);
    pos + bytes.len()
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError {
    /// Byte offset in the decoded payload where decoding failed.
    pub offset: usize,
    pub what: &'static str,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at payload byte {}", self.what, self.offset)
    }
}

impl std::error::Error for DecodeError {}

/// Decodes the records of one chunk payload, in order.
pub struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
    prev_tick: u64,
    prev_addr: u64,
    prev_type: u64,
    /// Addresses of this chunk's allocation records, for frees by distance.
    allocs: Vec<u64>,
    failed: bool,
}

impl<'a> Decoder<'a> {
    pub fn new(buf: &'a [u8]) -> Decoder<'a> {
        Decoder {
            buf,
            pos: 0,
            prev_tick: 0,
            prev_addr: 0,
            prev_type: 0,
            allocs: Vec::new(),
            failed: false,
        }
    }

    /// Bytes consumed so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    fn err(&mut self, what: &'static str) -> DecodeError {
        self.failed = true;
        DecodeError {
            offset: self.pos,
            what,
        }
    }

    #[inline]
    fn var(&mut self) -> Result<u64, DecodeError> {
        match get(self.buf, &mut self.pos) {
            Some(v) => Ok(v),
            None => Err(self.err("truncated or invalid varint")),
        }
    }

    #[inline]
    fn addr(&mut self) -> Result<u64, DecodeError> {
        let d = unzigzag(self.var()?);
        self.prev_addr = self.prev_addr.wrapping_add(d as u64);
        Ok(self.prev_addr)
    }

    fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.var()? as usize;
        let end = match self.pos.checked_add(n) {
            Some(end) if end <= self.buf.len() => end,
            _ => return Err(self.err("byte string runs past the end")),
        };
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    #[inline]
    fn back(&mut self, distance: u64) -> Result<u64, DecodeError> {
        let n = self.allocs.len() as u64;
        if distance == 0 || distance > n {
            return Err(self.err("free refers to an allocation outside the chunk"));
        }
        let addr = self.allocs[(n - distance) as usize];
        self.prev_addr = addr;
        Ok(addr)
    }

    #[inline]
    fn record(&mut self) -> Result<Record<'a>, DecodeError> {
        let b0 = self.buf[self.pos];
        self.pos += 1;
        let rtype = b0 >> 3;
        let mut delta = u64::from(b0 & 7);
        if delta == 7 {
            delta = self
                .var()?
                .checked_add(7)
                .ok_or_else(|| self.err("tick overflow"))?;
        }
        let tick = self.prev_tick.wrapping_add(delta);
        self.prev_tick = tick;
        let rec = match rtype {
            0..=11 => {
                let allocator =
                    Allocator::from_u8(rtype).ok_or_else(|| self.err("bad allocator"))?;
                let addr = self.addr()?;
                let size = self.var()?;
                let stack = self.var()?;
                self.allocs.push(addr);
                Record::Alloc {
                    tick,
                    allocator,
                    addr,
                    size,
                    stack,
                }
            }
            rtype::FREE_BACK | rtype::PYFREE_BACK => {
                let d = self.var()?;
                let addr = self.back(d)?;
                Record::Free {
                    tick,
                    python: rtype == rtype::PYFREE_BACK,
                    addr,
                    object_type: 0,
                }
            }
            rtype::FREE_ADDR | rtype::PYFREE_ADDR => Record::Free {
                tick,
                python: rtype == rtype::PYFREE_ADDR,
                addr: self.addr()?,
                object_type: 0,
            },
            rtype::TYPED_FREE => {
                let addr = self.addr()?;
                let d = unzigzag(self.var()?);
                self.prev_type = self.prev_type.wrapping_add(d as u64);
                Record::Free {
                    tick,
                    python: true,
                    addr,
                    object_type: self.prev_type,
                }
            }
            rtype::MUNMAP => {
                let addr = self.addr()?;
                Record::Munmap {
                    tick,
                    addr,
                    len: self.var()?,
                }
            }
            rtype::MREMAP => {
                let old_addr = self.addr()?;
                let old_len = self.var()?;
                let new_addr = self.addr()?;
                let new_len = self.var()?;
                let stack = self.var()?;
                Record::Mremap {
                    tick,
                    old_addr,
                    old_len,
                    new_addr,
                    new_len,
                    stack,
                }
            }
            rtype::STACK => Record::Stack {
                id: self.var()?,
                parent: self.var()?,
                frame: self.var()?,
            },
            rtype::NATIVE_FRAME => Record::NativeFrame {
                id: self.var()?,
                addr: self.var()?,
            },
            rtype::PYTHON_FRAME => Record::PythonFrame {
                id: self.var()?,
                function: self.var()?,
                file: self.var()?,
                line: self.var()?,
            },
            rtype::STRING => Record::String {
                id: self.var()?,
                bytes: self.bytes()?,
            },
            rtype::THREAD_NAME => Record::ThreadName {
                name: self.bytes()?,
            },
            rtype::MODULE => {
                let base = self.var()?;
                let path = self.bytes()?;
                let build_id = self.bytes()?;
                let n = self.var()?;
                if n > 4096 {
                    return Err(self.err("too many segments"));
                }
                let mut segments = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    segments.push(Segment {
                        vaddr: self.var()?,
                        memsz: self.var()?,
                        file_offset: self.var()?,
                    });
                }
                Record::Module {
                    base,
                    path,
                    build_id,
                    segments,
                }
            }
            rtype::MARKER => Record::Marker {
                tick,
                marker: Marker::from_code(self.var()?),
            },
            rtype::EXTENDED => {
                let kind = self.var()?;
                Record::Extended {
                    tick,
                    kind,
                    payload: self.bytes()?,
                }
            }
            _ => return Err(self.err("unknown record type")),
        };
        Ok(rec)
    }
}

impl<'a> Iterator for Decoder<'a> {
    type Item = Result<Record<'a>, DecodeError>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.buf.len() {
            return None;
        }
        Some(self.record())
    }
}

/// The trailer's payload: how the capture ended.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Trailer {
    pub end_mono_ns: u64,
    pub end_tick: u64,
    /// Event records written, and records the tracker had to drop.
    pub records_written: u64,
    pub records_dropped: u64,
    /// Bits of `crate::trailer_flags`.
    pub flags: u64,
    pub threads: u64,
}

impl Trailer {
    pub const MAX_LEN: usize = 6 * varint::MAX_VARINT_LEN;

    pub fn encode(&self, buf: &mut [u8]) -> usize {
        let mut pos = 0;
        for v in [
            self.end_mono_ns,
            self.end_tick,
            self.records_written,
            self.records_dropped,
            self.flags,
            self.threads,
        ] {
            pos = put(buf, pos, v);
        }
        pos
    }

    pub fn decode(buf: &[u8]) -> Option<Trailer> {
        let mut pos = 0;
        let mut next = || get(buf, &mut pos);
        Some(Trailer {
            end_mono_ns: next()?,
            end_tick: next()?,
            records_written: next()?,
            records_dropped: next()?,
            flags: next()?,
            threads: next()?,
        })
    }
}
