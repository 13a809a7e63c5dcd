//! Per-thread recording: each thread owns a staging area inside the capture file where its
//! events are encoded in place (so they survive a crash or a kill), and compresses it into an
//! Events chunk when it fills. States are reached from the thread's TLS block and listed in a
//! process-wide registry so that the finisher can flush every thread at exit.

use crate::capture::{align, CAPTURE};
use crate::compress::Compressor;
use crate::{clock, stacks, sys, tls};
use memtrace_format::record::MAX_EVENT_LEN;
use memtrace_format::{
    Allocator, ChunkCodec, ChunkHeader, ChunkKind, Encoder, Marker, CHUNK_HEADER_LEN,
};
use std::sync::atomic::{compiler_fence, AtomicBool, AtomicPtr, AtomicU32, Ordering};

/// Bytes of encoded records a thread buffers before compressing them.
pub const SLOT_CAP: usize = 256 * 1024;
const SITES: usize = 1024;
/// Room kept free for the table records an event may bring (stack, frame, thread name).
const SLACK: usize = 160;

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
    used: usize,
    record_count: u32,
    first_tick: u64,
    last_tick: u64,
    enc: Encoder,
    sites: [Site; SITES],
    compressor: Compressor,
    name: [u8; 16],
    name_len: usize,
}

static REGISTRY: AtomicPtr<ThreadState> = AtomicPtr::new(core::ptr::null_mut());
static NEXT_SERIAL: AtomicU32 = AtomicU32::new(1);
static KEY: AtomicU32 = AtomicU32::new(u32::MAX);
/// Threads that recorded anything (for the trailer).
static THREADS_SEEN: AtomicU32 = AtomicU32::new(0);

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

/// Restarts numbering for a new capture (a followed fork child).
pub fn reset_for_new_capture() {
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
        return None;
    }
    Some(s)
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
    if s.slot.is_null() {
        let len = CHUNK_HEADER_LEN as u64 + align(SLOT_CAP as u64);
        s.slot = CAPTURE.reserve(len)?;
    }
    s.serial = NEXT_SERIAL.fetch_add(1, Ordering::Relaxed);
    s.tid = sys::gettid();
    s.seq = 0;
    s.exit_rounds = 0;
    s.name_len = usize::MAX;
    s.busy.store(IDLE, Ordering::Relaxed);
    s.closed.store(false, Ordering::Relaxed);
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

/// A free registry entry, or a new one.
fn claim_state() -> Option<*mut ThreadState> {
    let mut p = REGISTRY.load(Ordering::Acquire);
    while !p.is_null() {
        // SAFETY: registry entries are never freed.
        let s = unsafe { &*p };
        if !s.in_use.load(Ordering::Relaxed)
            && s.in_use
                .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
        {
            return Some(p);
        }
        p = s.next;
    }
    let p = sys::map_anon(core::mem::size_of::<ThreadState>())? as *mut ThreadState;
    // SAFETY: fresh zeroed memory of the right size; every field is valid when zeroed except
    // the compressor and the encoder, written explicitly.
    unsafe {
        core::ptr::addr_of_mut!((*p).compressor).write(Compressor::new());
        core::ptr::addr_of_mut!((*p).enc).write(Encoder::new());
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
    /// Writes the staging header for the chunk `seq` and empties the buffer.
    fn start_chunk(&mut self) {
        self.used = 0;
        self.record_count = 0;
        self.first_tick = 0;
        self.last_tick = 0;
        self.enc.reset();
        let header = ChunkHeader {
            kind: ChunkKind::Staging,
            codec: ChunkCodec::Raw,
            flags: 0,
            thread_serial: self.serial,
            tid: self.tid,
            seq: self.seq,
            stored_len: SLOT_CAP as u32,
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
    }

    /// Publishes `used` bytes of complete records in the staging header.
    #[inline]
    fn commit(&mut self, used: usize, tick: u64) {
        self.used = used;
        if self.record_count == 0 {
            self.first_tick = tick;
        }
        self.record_count += 1;
        self.last_tick = tick;
        // SAFETY: the raw_len field of this state's staging header; 4-byte aligned.
        unsafe {
            let f = self.slot.add(memtrace_format::chunk::STAGING_USED_OFFSET) as *const AtomicU32;
            (*f).store(used as u32, Ordering::Release);
        }
    }

    /// Makes room for `n` bytes of records, flushing if needed. False when there is none (the
    /// capture takes no more): the caller's event is dropped, and counted.
    #[inline]
    fn room(&mut self, n: usize) -> bool {
        if SLOT_CAP - self.used < n && CAPTURE.is_open() {
            let _ = self.flush();
        }
        if SLOT_CAP - self.used < n {
            CAPTURE.records_dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// Encodes records at the end of the staging payload with `f` (given the encoder, the
    /// payload and where to write); returns where they end. The caller made room.
    #[inline]
    fn write(&mut self, f: impl FnOnce(&mut Encoder, &mut [u8], usize) -> usize) -> usize {
        // SAFETY: the slot reserves CHUNK_HEADER_LEN + SLOT_CAP bytes of the mapping for this
        // state, and nothing else writes there while the owner holds it.
        let buf =
            unsafe { core::slice::from_raw_parts_mut(self.slot.add(CHUNK_HEADER_LEN), SLOT_CAP) };
        f(&mut self.enc, buf, self.used)
    }

    /// Compresses the buffered records into an Events chunk and starts the next one. False when
    /// the records could not be written (they stay in the staging area).
    fn flush(&mut self) -> bool {
        if self.stuck {
            return false;
        }
        if self.used == 0 {
            return true;
        }
        let _errno = sys::ErrnoGuard::new();
        self.update_name();
        crate::modules::refresh();
        let used = self.used;
        let (flush_tick, flush_mono_ns) = clock::pair();
        let mut header = ChunkHeader {
            kind: ChunkKind::Events,
            codec: ChunkCodec::Zstd,
            flags: 0,
            thread_serial: self.serial,
            tid: self.tid,
            seq: self.seq,
            stored_len: 0,
            raw_len: used as u32,
            record_count: self.record_count,
            first_tick: self.first_tick,
            last_tick: self.last_tick,
            flush_mono_ns,
            flush_tick,
        };
        // SAFETY: the staging payload, `used` bytes of complete records.
        let raw = unsafe { core::slice::from_raw_parts(self.slot.add(CHUNK_HEADER_LEN), used) };
        let written = match self.compressor.compress(raw, SLOT_CAP) {
            Some((codec, stored)) => {
                header.codec = codec;
                header.stored_len = stored.len() as u32;
                CAPTURE.write_chunk(&header, stored)
            }
            None => {
                header.codec = ChunkCodec::Raw;
                header.stored_len = used as u32;
                CAPTURE.write_chunk(&header, raw)
            }
        };
        if written {
            self.seq += 1;
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
        if SLOT_CAP - self.used >= 64 {
            let end = self.write(|enc, buf, used| enc.thread_name(buf, used, &name[..len]));
            let tick = self.last_tick;
            self.commit(end, tick);
            self.record_count -= 1; // table records are not events
        }
    }

    #[inline]
    fn site(&mut self, ret: u64) -> u64 {
        let epoch = stacks::EPOCH.load(Ordering::Relaxed);
        let i = (stacks::hash(ret) as usize) & (SITES - 1);
        let e = self.sites[i];
        if e.ret == ret && e.epoch == epoch {
            return e.stack;
        }
        let stack = match stacks::native_site(ret) {
            Ok(id) => id,
            Err(new) => {
                self.used = self.write(|enc, buf, used| {
                    let p = enc.native_frame(buf, used, new.frame, ret);
                    enc.stack(buf, p, new.stack, 0, new.frame)
                });
                new.stack
            }
        };
        self.sites[i] = Site { ret, stack, epoch };
        stack
    }

    #[inline]
    fn alloc(&mut self, allocator: Allocator, addr: u64, size: u64, ret: u64) {
        if !self.room(MAX_EVENT_LEN + SLACK) {
            return;
        }
        let stack = self.site(ret);
        let tick = clock::tick();
        let end =
            self.write(|enc, buf, used| enc.alloc(buf, used, allocator, tick, addr, size, stack));
        self.commit(end, tick);
    }

    /// A free, by address: the flush finds the allocation it frees (columns::Splitter), off
    /// this path.
    #[inline]
    fn free(&mut self, python: bool, addr: u64, tick: u64) {
        self.with_buf(
            |enc, buf, used| enc.free_addr(buf, used, python, tick, addr),
            tick,
        );
    }

    #[inline]
    fn with_buf(&mut self, f: impl FnOnce(&mut Encoder, &mut [u8], usize) -> usize, tick: u64) {
        if self.room(MAX_EVENT_LEN + SLACK) {
            let end = self.write(f);
            self.commit(end, tick);
        }
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
        s.alloc(allocator, addr, size, ret);
        release(s);
    } else {
        dead_thread_event(t, |enc, buf, tick| {
            enc.alloc(buf, 0, allocator, tick, addr, size, 0)
        });
    }
}

#[inline]
pub fn record_free(t: &mut tls::Tls, python: bool, addr: u64, tick: u64) {
    if let Some(s) = acquire(t) {
        s.free(python, addr, tick);
        release(s);
    } else {
        dead_thread_event(t, |enc, buf, _| enc.free_addr(buf, 0, python, tick, addr));
    }
}

pub fn record_munmap(t: &mut tls::Tls, addr: u64, len: u64, tick: u64) {
    if let Some(s) = acquire(t) {
        s.with_buf(|enc, buf, pos| enc.munmap(buf, pos, tick, addr, len), tick);
        release(s);
    } else {
        dead_thread_event(t, |enc, buf, _| enc.munmap(buf, 0, tick, addr, len));
    }
}

pub fn record_mremap(t: &mut tls::Tls, old: (u64, u64), new: (u64, u64), ret: u64, tick: u64) {
    if let Some(s) = acquire(t) {
        s.room(MAX_EVENT_LEN + SLACK);
        let stack = s.site(ret);
        s.with_buf(
            |enc, buf, pos| enc.mremap(buf, pos, tick, old.0, old.1, new.0, new.1, stack),
            tick,
        );
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
        s.with_buf(|enc, buf, pos| enc.marker(buf, pos, tick, marker), tick);
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
        CAPTURE.records_dropped.fetch_add(1, Ordering::Relaxed);
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
    }
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
        t.next_seq = s.seq;
        t.serial = s.serial;
        t.state = core::ptr::null_mut();
        t.exited = 1;
        release(s);
        // A stuck state keeps its unwritten records in its staging area: never reuse it.
        if flushed {
            s.in_use.store(false, Ordering::Release);
        }
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
        if idle && s.in_use.load(Ordering::Acquire) && !s.slot.is_null() && s.flush() {
            // An emptied staging area is only a hole in the file.
            let off = CAPTURE.offset_of(s.slot);
            CAPTURE.punch_hole(off + CHUNK_HEADER_LEN as u64, SLOT_CAP as u64);
        }
        p = s.next;
    }
}
