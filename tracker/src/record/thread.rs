//! Per-thread recording: each thread owns a staging area inside the capture file where its
//! events are encoded in place (so they survive a crash or a kill), and compresses it into an
//! Events chunk when it fills. The area starts small and grows as the thread writes more (see
//! `staging`). States are reached from the thread's TLS block and listed in a process-wide
//! registry so that the finisher can flush every thread at exit; the state of a thread that
//! exited, with its area, is taken by the next new thread.

use crate::capture::CAPTURE;
use crate::compress::Compressor;
use crate::staging::{self, MAX_CLASS};
use crate::{clock, stacks, sys, tls};
use memtrace_format::columns::{ColumnWriter, Layout};
use memtrace_format::record::MAX_EVENT_LEN;
use memtrace_format::{
    Allocator, ChunkCodec, ChunkHeader, ChunkKind, Encoder, Marker, CHUNK_HEADER_LEN,
};
use std::sync::atomic::{compiler_fence, AtomicBool, AtomicPtr, AtomicU32, AtomicU64, Ordering};

const SITES: usize = 1024;

const IDLE: u32 = 0;
const WRITING: u32 = 1;

#[derive(Clone, Copy)]
struct Site {
    ret: u64,
    stack: u64,
    epoch: u64,
}

pub struct ThreadState {
    next: *mut ThreadState,
    in_use: AtomicBool,
    /// The owner is writing (plain stores: see `acquire` and `flush_all_and_close`).
    busy: AtomicU32,
    /// The finisher took over: the owner writes no more.
    closed: AtomicBool,
    exit_rounds: u32,
    /// A flush failed (the capture takes no more): the staging area keeps its records, complete,
    /// and must be neither flushed again nor reused.
    stuck: bool,
    serial: u32,
    tid: u32,
    seq: u32,
    /// The staging chunk header in the capture mapping (null until reserved).
    slot: *mut u8,
    /// The size of the staging area (see `staging`), and its payload's bytes.
    class: u8,
    cap: usize,
    /// Event records in the staging area (table records are not counted).
    record_count: u32,
    first_tick: u64,
    last_tick: u64,
    writer: ColumnWriter,
    sites: [Site; SITES],
    compressor: Compressor,
    name: [u8; 16],
    name_len: usize,
    /// The name came from Python's threading (kept over the OS name).
    python_named: bool,
    /// The capture the state was attached in (see `GENERATION`).
    generation: u64,
    /// Events of this thread the capture could not take (written by the owner only, so no
    /// cache line is shared between threads; summed into the trailer's count at the end).
    dropped: AtomicU64,
    /// Closed by `pause_others` for an exec, to be opened again if the exec fails.
    paused: AtomicBool,
}

static REGISTRY: AtomicPtr<ThreadState> = AtomicPtr::new(core::ptr::null_mut());
static NEXT_SERIAL: AtomicU32 = AtomicU32::new(1);
static KEY: AtomicU32 = AtomicU32::new(u32::MAX);
/// Threads that recorded anything (for the trailer).
static THREADS_SEEN: AtomicU32 = AtomicU32::new(0);
/// Size of each thread's index of recent addresses (log2 of its slots): see `set_python_run`.
static MODEL_BITS: AtomicU32 = AtomicU32::new(NATIVE_MODEL_BITS);
/// 16 Ki slots (512 KiB): a native program's frees of blocks allocated long ago in the chunk
/// are found (mallocbench: 1.95 bytes per event).
const NATIVE_MODEL_BITS: u32 = 14;
/// 1 Ki slots (32 KiB): the interpreter's frees are of recent blocks, and a table that stays in
/// cache beside its working set makes small_objects.py's tracked run about a tenth shorter (and
/// its capture a little smaller).
const PYTHON_MODEL_BITS: u32 = 10;

/// Whether the PyMem allocators are traced in this capture: sizes the index of recent addresses
/// of the threads that attach from now on.
pub fn set_python_run(python: bool) {
    let bits = if python {
        PYTHON_MODEL_BITS
    } else {
        NATIVE_MODEL_BITS
    };
    MODEL_BITS.store(bits, Ordering::Relaxed);
}

/// A thread that exits with an area of this class or larger (32 KiB: it wrote thousands of
/// events) gives its memory back; smaller ones keep it for the next thread (a few pages).
const RELEASE_CLASS: u8 = 4;

/// The part of the index of recent addresses a thread uses with an area of `class`: a small
/// area holds few events, and a small part touches few pages of the table (mapped zeroed).
fn model_bits(class: u8) -> u32 {
    (7 + u32::from(class)).min(MODEL_BITS.load(Ordering::Relaxed))
}

/// Bumped when an in-process capture starts: a state attached in an earlier one is closed, and
/// its thread, which still holds it, attaches afresh at its next event (`reattach`).
static GENERATION: AtomicU64 = AtomicU64::new(1);

/// Creates the key whose destructor flushes a thread's buffer when the thread exits.
pub fn init_key() {
    let mut key: libc::pthread_key_t = 0;
    // SAFETY: key is a valid out-pointer; thread_exit has the destructor signature.
    if unsafe { libc::pthread_key_create(&mut key, Some(thread_exit)) } == 0 {
        KEY.store(key, Ordering::Relaxed);
    }
}

pub fn threads_seen() -> u64 {
    u64::from(THREADS_SEEN.load(Ordering::Relaxed))
}

/// In a fork child that is not followed: the parent's capture is gone (unmapped), so no state
/// may write to its staging area again, whatever path reaches it (hooks, Python's
/// allocators, thread exit).
pub fn close_all() {
    let mut p = REGISTRY.load(Ordering::Acquire);
    while !p.is_null() {
        // SAFETY: registry entries are never freed.
        let s = unsafe { &*p };
        s.closed.store(true, Ordering::Release);
        p = s.next;
    }
}

/// Restarts numbering for a new capture (a followed fork child).
pub fn reset_for_new_capture() {
    staging::clear();
    NEXT_SERIAL.store(1, Ordering::Relaxed);
    THREADS_SEEN.store(0, Ordering::Relaxed);
    let mut p = REGISTRY.load(Ordering::Acquire);
    while !p.is_null() {
        // SAFETY: registry entries are never freed.
        let s = unsafe { &mut *p };
        s.slot = core::ptr::null_mut();
        s.busy.store(IDLE, Ordering::Relaxed);
        s.closed.store(false, Ordering::Relaxed);
        s.in_use.store(false, Ordering::Relaxed);
        s.dropped.store(0, Ordering::Relaxed);
        p = s.next;
    }
    let t = tls::get();
    t.state = core::ptr::null_mut();
    t.exited = 0;
    t.serial = 0;
}

/// The calling thread's state, claimed for writing; None when recording is not possible (the
/// capture is finished, or the thread's state could not be set up).
#[inline]
fn acquire(t: &mut tls::Tls) -> Option<&'static mut ThreadState> {
    let mut p = t.state as *mut ThreadState;
    if p.is_null() {
        p = attach(t)?;
    }
    // SAFETY: states live forever and only this thread claims its own.
    let s = unsafe { &mut *p };
    // Dekker-style with an asymmetric barrier: the owner announces itself with a plain store and
    // then looks for the finisher's flag; the finisher sets the flag, runs membarrier() (a full
    // barrier on every thread) and then looks at `busy`. One of the two sees the other, and the
    // allocation path pays no locked instruction.
    s.busy.store(WRITING, Ordering::Relaxed);
    compiler_fence(Ordering::SeqCst);
    if s.closed.load(Ordering::Relaxed) {
        s.busy.store(IDLE, Ordering::Relaxed);
        return reattach(t, s);
    }
    Some(s)
}

/// The thread's state is closed: if it belongs to an earlier in-process capture while another
/// one is open, the thread lets it go (its place in the old file is gone) and attaches anew.
#[cold]
fn reattach(t: &mut tls::Tls, old: &mut ThreadState) -> Option<&'static mut ThreadState> {
    if old.paused.load(Ordering::Acquire) {
        return wait_for_exec(old);
    }
    if old.generation == GENERATION.load(Ordering::Acquire) {
        return None;
    }
    // The earlier capture is finished: the state is free to go, its place in that file gone.
    old.slot = core::ptr::null_mut();
    old.stuck = false;
    t.state = core::ptr::null_mut();
    t.serial = 0;
    old.in_use.store(false, Ordering::Release);
    if !CAPTURE.is_open() {
        return None;
    }
    let p = attach(t)?;
    // SAFETY: states live forever and only this thread claims its own.
    let s = unsafe { &mut *p };
    s.busy.store(WRITING, Ordering::Relaxed);
    compiler_fence(Ordering::SeqCst);
    if s.closed.load(Ordering::Relaxed) {
        s.busy.store(IDLE, Ordering::Relaxed);
        return None;
    }
    Some(s)
}

/// Starts the numbering of an in-process capture (the capture is not open yet). States of
/// earlier captures stay with their threads until they let them go (see `reattach`); the free
/// ones forget their place in the old file.
pub fn begin_capture() {
    GENERATION.fetch_add(1, Ordering::AcqRel);
    NEXT_SERIAL.store(1, Ordering::Relaxed);
    THREADS_SEEN.store(0, Ordering::Relaxed);
    let mut p = REGISTRY.load(Ordering::Acquire);
    while !p.is_null() {
        // SAFETY: registry entries are never freed; a free one is touched by no thread.
        let s = unsafe { &mut *p };
        if !s.in_use.load(Ordering::Acquire) {
            s.slot = core::ptr::null_mut();
            s.stuck = false;
        }
        p = s.next;
    }
}

/// After the end of a capture: waits (at most about `limit_ms`) until no thread is writing to
/// its state. True when none is, so the capture's mapping may go.
pub fn wait_idle(limit_ms: u32) -> bool {
    crate::barrier::all_threads();
    let me = tls::get().state as *mut ThreadState;
    let mut waited = 0u32;
    let mut p = REGISTRY.load(Ordering::Acquire);
    while !p.is_null() {
        // SAFETY: registry entries are never freed.
        let s = unsafe { &*p };
        if p != me && s.busy.load(Ordering::Acquire) != IDLE {
            if waited >= limit_ms {
                return false;
            }
            waited += 1;
            // SAFETY: a plain sleep of 1 ms.
            unsafe { libc::usleep(1000) };
            continue;
        }
        p = s.next;
    }
    true
}

#[inline]
fn release(s: &mut ThreadState) {
    compiler_fence(Ordering::SeqCst);
    s.busy.store(IDLE, Ordering::Release);
}

#[cold]
fn attach(t: &mut tls::Tls) -> Option<*mut ThreadState> {
    if t.exited != 0 || !CAPTURE.is_open() {
        return None;
    }
    let p = claim_state()?;
    // SAFETY: the state was just claimed by this thread.
    let s = unsafe { &mut *p };
    s.generation = GENERATION.load(Ordering::Acquire);
    if s.slot.is_null() {
        let Some(area) = staging::take(0, s.generation) else {
            s.in_use.store(false, Ordering::Release);
            return None;
        };
        s.slot = area;
        s.class = 0;
        s.writer.set_buffer_len(staging::capacity(0));
    }
    s.cap = staging::capacity(s.class);
    s.serial = NEXT_SERIAL.fetch_add(1, Ordering::Relaxed);
    s.tid = sys::gettid();
    s.seq = 0;
    s.exit_rounds = 0;
    s.name_len = usize::MAX;
    s.python_named = false;
    s.dropped.store(0, Ordering::Relaxed);
    s.busy.store(IDLE, Ordering::Relaxed);
    s.closed.store(false, Ordering::Relaxed);
    s.writer.set_model_bits(model_bits(s.class));
    s.start_chunk();
    t.state = p as *mut libc::c_void;
    t.serial = s.serial;
    THREADS_SEEN.fetch_add(1, Ordering::Relaxed);
    let key = KEY.load(Ordering::Relaxed);
    if key != u32::MAX {
        // SAFETY: a valid key; the value is the state pointer handed back to thread_exit.
        unsafe { libc::pthread_setspecific(key, p as *const libc::c_void) };
    }
    Some(p)
}

/// Takes the state `s` if it is free.
fn claim(s: &ThreadState) -> bool {
    !s.in_use.load(Ordering::Relaxed)
        && s.in_use
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
}

/// A free registry entry, or a new one.
fn claim_state() -> Option<*mut ThreadState> {
    let mut p = REGISTRY.load(Ordering::Acquire);
    while !p.is_null() {
        // SAFETY: registry entries are never freed.
        let s = unsafe { &*p };
        if claim(s) {
            return Some(p);
        }
        p = s.next;
    }
    let p = sys::map_anon(core::mem::size_of::<ThreadState>())? as *mut ThreadState;
    // SAFETY: fresh zeroed memory of the right size; every field is valid when zeroed except
    // the compressor and the writer, written explicitly.
    unsafe {
        core::ptr::addr_of_mut!((*p).compressor).write(Compressor::new());
        core::ptr::addr_of_mut!((*p).writer)
            .write(ColumnWriter::new(Layout::for_buffer(staging::capacity(0))));
        (*p).in_use = AtomicBool::new(true);
        let mut head = REGISTRY.load(Ordering::Acquire);
        loop {
            (*p).next = head;
            match REGISTRY.compare_exchange_weak(head, p, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => break,
                Err(h) => head = h,
            }
        }
    }
    Some(p)
}

impl ThreadState {
    /// Writes the staging header for the chunk `seq` and empties the streams.
    fn start_chunk(&mut self) {
        self.record_count = 0;
        self.first_tick = 0;
        self.last_tick = 0;
        let header = ChunkHeader {
            kind: ChunkKind::Staging,
            codec: ChunkCodec::Columns,
            flags: 0,
            thread_serial: self.serial,
            tid: self.tid,
            seq: self.seq,
            stored_len: self.cap as u32,
            raw_len: 0,
            record_count: 0,
            first_tick: 0,
            last_tick: 0,
            flush_mono_ns: 0,
            flush_tick: 0,
        };
        let h = header.encode();
        // SAFETY: the slot header is CHUNK_HEADER_LEN bytes of this state's reserved region.
        unsafe { core::ptr::copy_nonoverlapping(h.as_ptr(), self.slot, CHUNK_HEADER_LEN) };
        self.writer.start(self.payload(), true);
    }

    /// The staging payload: the streams' directory and regions.
    #[inline]
    fn payload(&self) -> &'static mut [u8] {
        // SAFETY: the slot reserves CHUNK_HEADER_LEN + cap bytes of the mapping for this state,
        // never unmapped, and nothing else writes there while the owner holds it.
        unsafe { core::slice::from_raw_parts_mut(self.slot.add(CHUNK_HEADER_LEN), self.cap) }
    }

    /// Publishes the records written so far: their count, in the staging header (a reader
    /// trusts the records it counts, and reads their fields from the regions).
    #[inline]
    fn publish(&mut self) {
        compiler_fence(Ordering::Release);
        // SAFETY: the raw_len field of this state's staging header; 4-byte aligned.
        unsafe {
            let f = self.slot.add(memtrace_format::chunk::STAGING_USED_OFFSET) as *const AtomicU32;
            (*f).store(self.writer.records() as u32, Ordering::Release);
        }
    }

    /// Publishes an event record written at `tick`.
    #[inline]
    fn commit(&mut self, tick: u64) {
        if self.record_count == 0 {
            self.first_tick = tick;
        }
        self.record_count += 1;
        self.last_tick = tick;
        self.publish();
        if crate::rss::due(tick) {
            self.sample_rss(tick);
        }
    }

    /// Records the process's resident size (the sample due now, if this thread claims it).
    #[cold]
    fn sample_rss(&mut self, tick: u64) {
        let Some(bytes) = crate::rss::take(tick) else {
            return;
        };
        let mut payload = [0u8; 10];
        let n = memtrace_format::varint::put(&mut payload, 0, bytes);
        if self.room_for_table(ColumnWriter::table_len(n)) {
            let buf = self.payload();
            self.writer
                .extended(buf, tick, crate::rss::RECORD_KIND, &payload[..n]);
            self.publish();
        }
    }

    /// Makes room for one event record, flushing if needed. False when there is none (the
    /// capture takes no more): the caller's event is dropped, and counted.
    #[inline]
    fn room(&mut self) -> bool {
        if self.writer.reserve_event() || self.flush_for_room(|w| w.reserve_event()) {
            return true;
        }
        count_in(&self.dropped);
        false
    }

    /// Makes room for a table record with `n` bytes of fields, flushing if needed.
    fn room_for_table(&mut self, n: usize) -> bool {
        if self.writer.reserve_table(n) {
            return true;
        }
        self.flush_for_room(|w| w.reserve_table(n))
    }

    /// The area is full: its records go to the capture and the thread moves on to a bigger
    /// area (if it is not the largest), where the next chunk starts; then bigger still while
    /// the record does not fit an empty one.
    #[cold]
    fn flush_for_room(&mut self, reserve: impl Fn(&mut ColumnWriter) -> bool) -> bool {
        if !(CAPTURE.is_open() && self.flush_and_grow(true)) {
            return false;
        }
        if reserve(&mut self.writer) {
            return true;
        }
        while self.writer.records() == 0 && self.grow() {
            self.start_chunk();
            if reserve(&mut self.writer) {
                return true;
            }
        }
        false
    }

    /// Gives back the memory the state's thread made it use (the index of recent addresses, the
    /// compressor's, the staging area's pages): the thread exited, and the state may wait long
    /// for another. Its records are all in the capture.
    fn release_memory(&mut self) {
        self.writer.release_model();
        self.compressor.release();
        // The whole pages of the area (madvise takes page-aligned addresses); they come back
        // from the file when touched.
        let start = (self.slot as usize).next_multiple_of(4096);
        let end = (self.slot as usize + CHUNK_HEADER_LEN + self.cap) & !4095;
        if end > start {
            sys::release_shared(start as *mut u8, end - start);
        }
    }

    /// Moves the thread to an area of the next size, leaving the current one (which holds no
    /// records the capture lacks) to other threads. The caller starts a chunk there. False at
    /// the largest size, or when the capture has no room for a bigger area.
    fn grow(&mut self) -> bool {
        if self.class >= MAX_CLASS {
            return false;
        }
        let Some(area) = staging::take(self.class + 1, self.generation) else {
            return false;
        };
        let (old, old_class) = (self.slot, self.class);
        self.slot = area;
        self.class += 1;
        self.cap = staging::capacity(self.class);
        self.writer.set_buffer_len(self.cap);
        self.writer.set_model_bits(model_bits(self.class));
        // SAFETY: the raw_len field of the old area's staging header; 4-byte aligned.
        unsafe {
            let f = old.add(memtrace_format::chunk::STAGING_USED_OFFSET) as *const AtomicU32;
            (*f).store(0, Ordering::Release);
        }
        staging::give(old, old_class, self.generation);
        true
    }

    /// Compresses the buffered records into an Events chunk and starts the next one. False when
    /// the records could not be written (they stay in the staging area).
    fn flush(&mut self) -> bool {
        self.flush_and_grow(false)
    }

    /// As `flush`; with `grow`, the next chunk starts in a bigger area (see `grow`).
    fn flush_and_grow(&mut self, grow: bool) -> bool {
        if self.stuck {
            return false;
        }
        if self.writer.records() == 0 {
            return true;
        }
        let _errno = sys::ErrnoGuard::new();
        self.update_name();
        crate::modules::refresh();
        let (flush_tick, flush_mono_ns) = clock::pair();
        let mut header = ChunkHeader {
            kind: ChunkKind::Events,
            codec: ChunkCodec::Columns,
            flags: 0,
            thread_serial: self.serial,
            tid: self.tid,
            seq: self.seq,
            stored_len: 0,
            raw_len: self.writer.total_len() as u32,
            record_count: self.record_count,
            first_tick: self.first_tick,
            last_tick: self.last_tick,
            flush_mono_ns,
            flush_tick,
        };
        let streams = self.writer.streams(self.payload());
        let written = match self.compressor.compress(&streams, staging::MAX_CAPACITY) {
            Some(stored) => {
                header.stored_len = stored.len() as u32;
                CAPTURE.write_chunk(&header, stored)
            }
            None => false,
        };
        if written {
            self.seq += 1;
            if grow {
                // The area keeps a stale copy of the chunk just written: no reader uses it.
                self.grow();
            }
            self.start_chunk();
        } else {
            // The capture cannot take more: the events stay in the staging area, complete (its
            // header's raw_len counts them). Later events find no room and are dropped.
            self.stuck = true;
        }
        written
    }

    /// Appends a ThreadName record when the thread's name changed.
    fn update_name(&mut self) {
        if self.python_named {
            return;
        }
        let mut known = [0u8; crate::names::MAX];
        if let Some(len) = crate::names::get(self.tid, &mut known) {
            if self.writer.reserve_table(ColumnWriter::table_len(len)) {
                self.writer.thread_name(self.payload(), &known[..len]);
                self.publish();
                self.python_named = true;
                return;
            }
        }
        let mut path = [0u8; 48];
        let n = proc_comm_path(self.tid, &mut path);
        let mut name = [0u8; 17];
        let mut len = sys::read_file(&path[..n], &mut name[..16]);
        while len > 0 && name[len - 1] == b'\n' {
            len -= 1;
        }
        if len == self.name_len && name[..len] == self.name[..len.min(16)] {
            return;
        }
        self.name[..len].copy_from_slice(&name[..len]);
        self.name_len = len;
        // At a flush the area may be full: then the name waits for the next chunk.
        if self.writer.reserve_table(ColumnWriter::table_len(len)) {
            self.writer.thread_name(self.payload(), &name[..len]);
            self.publish();
        } else {
            self.name_len = usize::MAX;
        }
    }

    /// The stack of the native call site `ret` (0: unknown, the stack 0).
    #[inline]
    fn site(&mut self, ret: u64) -> u64 {
        if ret == 0 {
            return 0;
        }
        let epoch = stacks::EPOCH.load(Ordering::Relaxed);
        let i = (stacks::hash(ret) as usize) & (SITES - 1);
        let e = self.sites[i];
        if e.ret == ret && e.epoch == epoch {
            return e.stack;
        }
        let stack = match stacks::native_site(ret) {
            Ok(id) => id,
            Err(new) => {
                // Two table records; if there is no room the ids stay undefined (reports show
                // an unknown stack) rather than the event being lost.
                if self.room_for_table(2 * ColumnWriter::table_len(0)) {
                    let buf = self.payload();
                    self.writer.native_frame(buf, new.frame, ret);
                    self.writer.stack(buf, new.stack, 0, new.frame);
                    self.publish();
                }
                new.stack
            }
        };
        self.sites[i] = Site { ret, stack, epoch };
        stack
    }

    /// The stack of an event: with --native the whole native stack; else the thread's Python
    /// stack when it runs tracked Python code, else the main script's `<compile>` frame while
    /// the interpreter compiles it (python::script), else the native call site `ret`. `t` is
    /// the calling thread's block (the hooks have it).
    #[inline]
    fn stack_of(&mut self, t: &mut tls::Tls, ret: u64) -> u64 {
        if crate::unwind::enabled() {
            if let Some(id) = crate::unwind::stack(t, self) {
                return id;
            }
        }
        match crate::python::current_stack(t, self) {
            Some(id) => id,
            None => match crate::python::script::compile_stack(t, self) {
                Some(id) => id,
                None => self.site(ret),
            },
        }
    }

    #[inline]
    fn alloc(&mut self, t: &mut tls::Tls, allocator: Allocator, addr: u64, size: u64, ret: u64) {
        for p in self.writer.alloc_lookups(allocator, addr, size) {
            prefetch(p);
        }
        let stack = self.stack_of(t, ret);
        if !self.room() {
            return;
        }
        let tick = clock::tick();
        self.writer
            .alloc(self.payload(), allocator, tick, addr, size, stack);
        self.commit(tick);
    }

    #[inline]
    fn free(&mut self, python: bool, addr: u64, tick: u64) {
        if self.room() {
            self.writer.free(self.payload(), python, tick, addr);
            self.commit(tick);
        }
    }

    /// An event other than an allocation or a free, written by `f`.
    fn event(&mut self, tick: u64, f: impl FnOnce(&mut ColumnWriter, &mut [u8])) {
        if self.room() {
            let buf = self.payload();
            f(&mut self.writer, buf);
            self.commit(tick);
        }
    }
}

/// Starts loading the cache line at `p` (the model's lookups miss the cache on most events;
/// the clock read and the stack lookup hide the miss).
#[inline(always)]
fn prefetch(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is only a hint: it never faults, whatever the address.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p.cast())
    };
}

impl crate::python::Tables for ThreadState {
    fn string(&mut self, id: u64, bytes: &[u8]) {
        if self.room_for_table(ColumnWriter::table_len(bytes.len())) {
            self.writer.string(self.payload(), id, bytes);
            self.publish();
        }
    }

    fn python_frame(&mut self, id: u64, function: u64, file: u64, line: u64) {
        if self.room_for_table(ColumnWriter::table_len(0)) {
            self.writer
                .python_frame(self.payload(), id, function, file, line);
            self.publish();
        }
    }

    fn stack(&mut self, id: u64, parent: u64, frame: u64) {
        if self.room_for_table(ColumnWriter::table_len(0)) {
            self.writer.stack(self.payload(), id, parent, frame);
            self.publish();
        }
    }
}

impl crate::unwind::Tables for ThreadState {
    fn native_frame(&mut self, id: u64, address: u64) {
        if self.room_for_table(ColumnWriter::table_len(0)) {
            self.writer.native_frame(self.payload(), id, address);
            self.publish();
        }
    }
}

/// Names the calling thread as Python's threading does; the OS name is no longer read.
pub fn set_python_name(t: &mut tls::Tls, name: &[u8]) {
    if let Some(s) = acquire(t) {
        let name = &name[..name.len().min(1024)];
        if s.room_for_table(ColumnWriter::table_len(name.len())) {
            s.writer.thread_name(s.payload(), name);
            s.publish();
            s.python_named = true;
        }
        release(s);
    }
}

fn proc_comm_path(tid: u32, out: &mut [u8; 48]) -> usize {
    let prefix = b"/proc/self/task/";
    out[..prefix.len()].copy_from_slice(prefix);
    let mut n = prefix.len();
    let mut digits = [0u8; 10];
    let mut k = 0;
    let mut v = tid;
    loop {
        digits[k] = b'0' + (v % 10) as u8;
        k += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    while k > 0 {
        k -= 1;
        out[n] = digits[k];
        n += 1;
    }
    let suffix = b"/comm\0";
    out[n..n + suffix.len()].copy_from_slice(suffix);
    n + suffix.len()
}

// ---- the recording entry points, called by the hooks with the re-entrancy flag set ----

#[inline]
pub fn record_alloc(t: &mut tls::Tls, allocator: Allocator, addr: u64, size: u64, ret: u64) {
    if let Some(s) = acquire(t) {
        s.alloc(t, allocator, addr, size, ret);
        release(s);
    } else {
        dead_thread_event(t, |enc, buf, tick| {
            enc.alloc(buf, 0, allocator, tick, addr, size, 0)
        });
    }
}

/// Starts loading what recording a free of `addr` will look at, for a caller that records it
/// after the real free (with the tick it read before): the real free hides the cache miss.
#[inline]
pub fn prefetch_free(t: &tls::Tls, addr: u64) {
    let p = t.state as *const ThreadState;
    if p.is_null() {
        return;
    }
    // SAFETY: states live forever and only this thread writes its own; only the address of a
    // table slot is computed, for a hint.
    let s = unsafe { &*p };
    prefetch(s.writer.free_lookup(addr));
}

/// A free of `addr`; `tick` is when it happened if the caller read the clock already (before
/// calling the real function: then another thread's reuse of the block is after it), else now.
#[inline]
pub fn record_free(t: &mut tls::Tls, python: bool, addr: u64, tick: Option<u64>) {
    if let Some(s) = acquire(t) {
        prefetch(s.writer.free_lookup(addr));
        let tick = tick.unwrap_or_else(clock::tick);
        s.free(python, addr, tick);
        release(s);
    } else {
        let tick = tick.unwrap_or_else(clock::tick);
        dead_thread_event(t, |enc, buf, _| enc.free_addr(buf, 0, python, tick, addr));
    }
}

pub fn record_munmap(t: &mut tls::Tls, addr: u64, len: u64, tick: u64) {
    if let Some(s) = acquire(t) {
        s.event(tick, |w, buf| w.munmap(buf, tick, addr, len));
        release(s);
    } else {
        dead_thread_event(t, |enc, buf, _| enc.munmap(buf, 0, tick, addr, len));
    }
}

pub fn record_mremap(t: &mut tls::Tls, old: (u64, u64), new: (u64, u64), ret: u64, tick: u64) {
    if let Some(s) = acquire(t) {
        let stack = s.site(ret);
        s.event(tick, |w, buf| w.mremap(buf, tick, old, new, stack));
        release(s);
    } else {
        dead_thread_event(t, |enc, buf, _| {
            enc.mremap(buf, 0, tick, old.0, old.1, new.0, new.1, 0)
        });
    }
}

pub fn record_marker(t: &mut tls::Tls, marker: Marker) {
    let tick = clock::tick();
    if let Some(s) = acquire(t) {
        s.event(tick, |w, buf| w.marker(buf, tick, marker));
        release(s);
    } else {
        dead_thread_event(t, |enc, buf, _| enc.marker(buf, 0, tick, marker));
    }
}

/// An event of a thread whose state was already released (after its exit destructors): written
/// straight to the capture as a one-record chunk continuing the thread's sequence.
#[cold]
fn dead_thread_event(t: &mut tls::Tls, f: impl FnOnce(&mut Encoder, &mut [u8], u64) -> usize) {
    if t.exited == 0 || t.serial == 0 || !CAPTURE.is_open() {
        // Once recording has stopped (the capture is being finished), a late event is after
        // the end, not lost.
        if crate::ACTIVE.load(Ordering::Acquire) {
            count_dropped(t);
        }
        return;
    }
    let _errno = sys::ErrnoGuard::new();
    let mut buf = [0u8; MAX_EVENT_LEN];
    let mut enc = Encoder::new();
    let tick = clock::tick();
    let n = f(&mut enc, &mut buf, tick);
    let (flush_tick, flush_mono_ns) = clock::pair();
    let header = ChunkHeader {
        kind: ChunkKind::Events,
        codec: ChunkCodec::Raw,
        flags: 0,
        thread_serial: t.serial,
        tid: sys::gettid(),
        seq: t.next_seq,
        stored_len: n as u32,
        raw_len: n as u32,
        record_count: 1,
        first_tick: tick,
        last_tick: tick,
        flush_mono_ns,
        flush_tick,
    };
    if CAPTURE.write_chunk(&header, &buf[..n]) {
        t.next_seq += 1;
    } else {
        count_dropped(t);
    }
}

/// One event of the calling thread lost: counted in its own state when it has one (after a
/// write failure every thread counts this way, at full speed), else process-wide.
fn count_dropped(t: &tls::Tls) {
    let p = t.state as *const ThreadState;
    if p.is_null() {
        CAPTURE.records_dropped.fetch_add(1, Ordering::Relaxed);
    } else {
        // SAFETY: states live forever; `dropped` is this thread's own counter.
        count_in(unsafe { &(*p).dropped });
    }
}

/// Adds one to a counter only its owner writes (no locked instruction).
#[inline]
fn count_in(c: &AtomicU64) {
    c.store(c.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
}

/// The pthread key destructor: runs at thread exit. It re-arms itself for the later rounds of
/// destructors (whose frees still belong to this thread) and flushes on the last one.
unsafe extern "C" fn thread_exit(arg: *mut libc::c_void) {
    let t = tls::get();
    let was = t.in_tracker;
    t.in_tracker = 1;
    let p = arg as *mut ThreadState;
    // SAFETY: the value set by attach(): this thread's registry entry.
    let s = unsafe { &mut *p };
    if s.exit_rounds < 2 {
        s.exit_rounds += 1;
        let key = KEY.load(Ordering::Relaxed);
        // SAFETY: re-registering the same value for another destructor round.
        unsafe { libc::pthread_setspecific(key, arg) };
    } else if let Some(s) = acquire(t) {
        let flushed = s.flush();
        // Still claimed for writing: the finisher leaves the state alone meanwhile.
        if flushed && s.class >= RELEASE_CLASS {
            s.release_memory();
        }
        t.next_seq = s.seq;
        t.serial = s.serial;
        t.state = core::ptr::null_mut();
        t.exited = 1;
        crate::python::thread_exited(t);
        crate::unwind::thread_exited(t);
        release(s);
        // A stuck state keeps its unwritten records in its staging area: never reuse it.
        if flushed {
            // The next thread to take the state starts its own count.
            let lost = s.dropped.swap(0, Ordering::AcqRel);
            if lost > 0 {
                CAPTURE.records_dropped.fetch_add(lost, Ordering::Relaxed);
            }
            s.in_use.store(false, Ordering::Release);
        }
    } else if t.state.is_null() {
        // The state of an earlier in-process capture was let go (see `reattach`): only the
        // thread's own caches go.
        crate::python::thread_exited(t);
        crate::unwind::thread_exited(t);
    }
    t.in_tracker = was;
}

/// At the end of the capture: closes every thread's state and compresses what it holds. A
/// thread still running later records nothing more.
pub fn flush_all_and_close() {
    let mut p = REGISTRY.load(Ordering::Acquire);
    while !p.is_null() {
        // SAFETY: registry entries are never freed.
        unsafe { (*p).closed.store(true, Ordering::SeqCst) };
        // SAFETY: as above.
        p = unsafe { (*p).next };
    }
    crate::barrier::all_threads();
    let me = tls::get().state as *mut ThreadState;
    let mut p = REGISTRY.load(Ordering::Acquire);
    while !p.is_null() {
        // SAFETY: registry entries are never freed.
        let s = unsafe { &mut *p };
        // The owner may be finishing one event: give it time, but never hang the exit. (The
        // calling thread's own state is idle: the finisher runs outside the hooks.)
        let mut spins = 0u32;
        while p != me && s.busy.load(Ordering::Acquire) != IDLE && spins < 20_000 {
            spins += 1;
            sys::sched_yield();
        }
        let idle = s.busy.load(Ordering::Acquire) == IDLE || p == me;
        let lost = s.dropped.swap(0, Ordering::AcqRel);
        CAPTURE.records_dropped.fetch_add(lost, Ordering::Relaxed);
        // A state of an earlier in-process capture points into that capture's file, gone.
        let current = s.generation == GENERATION.load(Ordering::Acquire);
        if idle && current && s.in_use.load(Ordering::Acquire) && !s.slot.is_null() && s.flush() {
            // An emptied staging area is only a hole in the file.
            staging::punch(s.slot, s.cap);
        } else if current && !s.slot.is_null() && claim(s) {
            // The area of an exited thread: empty (a stuck one stays claimed, never reused).
            staging::punch(s.slot, staging::capacity(s.class));
            s.in_use.store(false, Ordering::Release);
        }
        p = s.next;
    }
    staging::drain(GENERATION.load(Ordering::Acquire), staging::punch);
}

/// Compresses the calling thread's buffered events into a chunk now (before an exec); the
/// thread goes on recording. Returns the file range of its emptied staging area.
pub fn flush_current(t: &mut tls::Tls) -> Option<(u64, u64)> {
    if t.state.is_null() {
        return None;
    }
    let s = acquire(t)?;
    let flushed = s.flush();
    let off = CAPTURE.offset_of(s.slot) + CHUNK_HEADER_LEN as u64;
    let len = s.cap as u64;
    release(s);
    flushed.then_some((off, len))
}

/// After `flush_current` whose staging area was then released to the disk (an exec that
/// failed): the area's header and directory are written again, and the thread records on.
pub fn restart_current(t: &mut tls::Tls) {
    if t.state.is_null() {
        return;
    }
    if let Some(s) = acquire(t) {
        s.start_chunk();
        release(s);
    }
}

/// Another thread prepares an exec: how long a thread waits for the exec to fail (if it
/// succeeds, the thread ends with the image).
const EXEC_PAUSE_MS: u32 = 2000;

/// The thread's state was closed for an exec (see `pause_others`): waits until the exec
/// failed and the state is open again, then writes its event as if nothing had happened.
#[cold]
fn wait_for_exec(s: &mut ThreadState) -> Option<&'static mut ThreadState> {
    let mut waited = 0;
    while s.paused.load(Ordering::Acquire) && waited < EXEC_PAUSE_MS * 10 {
        // SAFETY: a plain sleep of 0.1 ms.
        unsafe { libc::usleep(100) };
        waited += 1;
    }
    s.busy.store(WRITING, Ordering::Relaxed);
    compiler_fence(Ordering::SeqCst);
    if s.closed.load(Ordering::Relaxed) {
        s.busy.store(IDLE, Ordering::Relaxed);
        return None;
    }
    // SAFETY: states live forever and only this thread claims its own.
    Some(unsafe { &mut *(s as *mut ThreadState) })
}

/// Before an exec: every other thread's state is closed and the threads writing are waited for
/// (at most about `limit_ms`), so that no chunk is left half written when the exec ends them.
/// A thread with an event to write meanwhile waits in `wait_for_exec`.
pub fn pause_others(limit_ms: u32) {
    let me = tls::get().state as *mut ThreadState;
    let mut p = REGISTRY.load(Ordering::Acquire);
    while !p.is_null() {
        // SAFETY: registry entries are never freed.
        let s = unsafe { &*p };
        if p != me
            && s.in_use.load(Ordering::Acquire)
            && s.generation == GENERATION.load(Ordering::Acquire)
            && !s.closed.load(Ordering::Acquire)
        {
            s.paused.store(true, Ordering::SeqCst);
            s.closed.store(true, Ordering::SeqCst);
        }
        p = s.next;
    }
    wait_idle(limit_ms);
}

/// The exec failed: the states `pause_others` closed are open again.
pub fn resume_others() {
    let mut p = REGISTRY.load(Ordering::Acquire);
    while !p.is_null() {
        // SAFETY: registry entries are never freed.
        let s = unsafe { &*p };
        if s.paused.load(Ordering::Acquire) {
            s.closed.store(false, Ordering::SeqCst);
            s.paused.store(false, Ordering::Release);
        }
        p = s.next;
    }
}
