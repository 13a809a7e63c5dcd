//! Interning of call sites: each distinct stack gets a small id, and its definition is written to
//! the capture once (by the thread that saw it first). A per-thread cache answers most lookups;
//! the process-wide table is split in shards so that threads rarely meet on a lock.

use crate::lock::SpinLock;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

const SHARDS: usize = 64;

/// Ids start at 1: 0 means "no stack known".
static NEXT_STACK: AtomicU64 = AtomicU64::new(1);
static NEXT_FRAME: AtomicU64 = AtomicU64::new(1);

/// Bumped when the tables are cleared (a followed fork starts a new capture): per-thread caches
/// from an older epoch are stale.
pub static EPOCH: AtomicU64 = AtomicU64::new(1);

type Shard = SpinLock<Option<FastMap<u64>>>;

#[allow(clippy::declare_interior_mutable_const)]
const EMPTY: Shard = SpinLock::new(None);
static NATIVE_SITES: [Shard; SHARDS] = [EMPTY; SHARDS];

#[inline]
pub fn hash(v: u64) -> u64 {
    v.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 16
}

/// A new native call site: its stack and frame ids, to be defined by the caller.
pub struct NewSite {
    pub stack: u64,
    pub frame: u64,
}

/// The stack id of the native return address `ret`; `Err` with fresh ids when it is new (the
/// caller writes their definitions).
pub fn native_site(ret: u64) -> Result<u64, NewSite> {
    let shard = &NATIVE_SITES[(hash(ret) as usize) % SHARDS];
    let mut g = shard.lock();
    // Not `HashMap::new`: its random keys come from `getrandom`, a cancellation point, and a
    // thread with a `pthread_cancel` pending ended there, inside malloc, with the lock held.
    let map = g.get_or_insert_with(FastMap::default);
    if let Some(&id) = map.get(&ret) {
        return Ok(id);
    }
    let stack = NEXT_STACK.fetch_add(1, Ordering::Relaxed);
    let frame = NEXT_FRAME.fetch_add(1, Ordering::Relaxed);
    if map.try_reserve(1).is_ok() {
        map.insert(ret, stack);
    }
    Err(NewSite { stack, frame })
}

static NEXT_STRING: AtomicU64 = AtomicU64::new(1);

/// The interning tables are looked up on the allocation path: a multiply-rotate hash (as in
/// rustc's FxHash) instead of SipHash; the keys are ids and names, not adversarial input.
#[derive(Clone, Copy, Default)]
pub struct FastHash(u64);

impl std::hash::Hasher for FastHash {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.write_u64(u64::from_le_bytes(w));
        }
        for &b in chunks.remainder() {
            self.write_u64(u64::from(b));
        }
    }

    #[inline]
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    #[inline]
    fn write_usize(&mut self, v: usize) {
        self.write_u64(v as u64);
    }

    /// Rotated (as rustc-hash 2 does): the table's index takes the low bits, which are the
    /// key's own low bits times an odd number, zeros for an aligned address.
    #[inline]
    fn finish(&self) -> u64 {
        self.0.rotate_left(26)
    }
}

pub(crate) type FastMap<K, V = u64> = HashMap<K, V, std::hash::BuildHasherDefault<FastHash>>;
type Table<K> = SpinLock<Option<FastMap<K>>>;

static STRINGS: Table<Box<[u8]>> = SpinLock::new(None);
static PYTHON_FRAMES: Table<(u64, u64, u64)> = SpinLock::new(None);
static STACKS: Table<(u64, u64)> = SpinLock::new(None);
/// Native frames of whole stacks (--native), by return address.
static NATIVE_FRAMES: Table<u64> = SpinLock::new(None);

/// The id of `key` in `table`: `Ok` when known, else `Err` with a fresh id from `next` (the
/// caller writes its definition).
///
/// When the table cannot grow (the process is out of memory, or at its address-space limit)
/// the key is not added: a failed allocation here aborted the program (Rust's handler), and a
/// key left out only gets a fresh id again when next seen, which readers take as any other.
fn intern<K: std::hash::Hash + Eq>(table: &Table<K>, next: &AtomicU64, key: K) -> Result<u64, u64> {
    let mut g = table.lock();
    let map = g.get_or_insert_with(FastMap::default);
    if let Some(&id) = map.get(&key) {
        return Ok(id);
    }
    let id = next.fetch_add(1, Ordering::Relaxed);
    if map.try_reserve(1).is_ok() {
        map.insert(key, id);
    }
    Err(id)
}

/// The id of a string (a Python function or file name); as [`intern`] when memory is short.
pub fn string(bytes: &[u8]) -> Result<u64, u64> {
    let mut g = STRINGS.lock();
    let map = g.get_or_insert_with(FastMap::default);
    if let Some(&id) = map.get(bytes) {
        return Ok(id);
    }
    let id = NEXT_STRING.fetch_add(1, Ordering::Relaxed);
    let mut key = Vec::new();
    if map.try_reserve(1).is_ok() && key.try_reserve_exact(bytes.len()).is_ok() {
        key.extend_from_slice(bytes);
        map.insert(key.into_boxed_slice(), id);
    }
    Err(id)
}

/// The frame id of a Python frame (function and file string ids, line).
pub fn python_frame(function: u64, file: u64, line: u64) -> Result<u64, u64> {
    intern(&PYTHON_FRAMES, &NEXT_FRAME, (function, file, line))
}

/// The id of the stack `frame` called from stack `parent` (0: the outermost frame).
pub fn stack(parent: u64, frame: u64) -> Result<u64, u64> {
    intern(&STACKS, &NEXT_STACK, (parent, frame))
}

/// The frame id of a native return address in a whole native stack.
pub fn native_frame(address: u64) -> Result<u64, u64> {
    intern(&NATIVE_FRAMES, &NEXT_FRAME, address)
}

/// A new stack id for a chain below a stack made just now by the caller: no other thread can
/// know the parent, so its child cannot be in the table (it is not added to it either: a later
/// lookup may then give the same chain a second id, which readers take as they take any).
pub fn fresh_stack() -> u64 {
    NEXT_STACK.fetch_add(1, Ordering::Relaxed)
}

pub fn lock_all() {
    for s in &NATIVE_SITES {
        s.raw_lock();
    }
    STRINGS.raw_lock();
    PYTHON_FRAMES.raw_lock();
    STACKS.raw_lock();
    NATIVE_FRAMES.raw_lock();
}

pub fn unlock_all() {
    for s in &NATIVE_SITES {
        s.raw_unlock();
    }
    STRINGS.raw_unlock();
    PYTHON_FRAMES.raw_unlock();
    STACKS.raw_unlock();
    NATIVE_FRAMES.raw_unlock();
}

/// Forgets every stack (a new capture starts): ids are defined again when next seen.
pub fn clear() {
    for s in &NATIVE_SITES {
        if let Some(m) = s.lock().as_mut() {
            m.clear();
        }
    }
    if let Some(m) = STRINGS.lock().as_mut() {
        m.clear();
    }
    if let Some(m) = PYTHON_FRAMES.lock().as_mut() {
        m.clear();
    }
    if let Some(m) = STACKS.lock().as_mut() {
        m.clear();
    }
    if let Some(m) = NATIVE_FRAMES.lock().as_mut() {
        m.clear();
    }
    EPOCH.fetch_add(1, Ordering::Relaxed);
}
