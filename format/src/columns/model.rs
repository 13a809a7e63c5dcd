//! The writer's index of recent addresses: which address is a candidate (a freed block or the
//! end of an allocated one) and which allocation record an address belongs to.

/// The table's size (log2 of its slots) unless the writer is told otherwise: 16 Ki slots of 32
/// bytes keep a native program's frees matched (mallocbench: 1.95 bytes per event).
pub const DEFAULT_TABLE_BITS: u32 = 14;
/// The table is always allocated at this size, whatever part of it is used: a traced program's
/// memory layout must not depend on how the tracker is tuned (CPython's pymalloc, for one, needs
/// one more radix-tree node or not depending on where its arenas land).
const ALLOCATED_BITS: u32 = DEFAULT_TABLE_BITS;

/// What the model knows about the addresses of one hash slot, as words (see the indexes
/// below). Both indexes live in one slot because an allocation and its free look up and add at
/// the same address: one cache line. A plain array, so that the table is allocated zeroed
/// (`vec![[0; 4]; n]` asks the allocator for zeroed memory): the tracker gets it as fresh
/// pages, and a thread that writes little touches few of them.
type Slot = [u64; 4];
/// The latest candidate at this slot, with its writer-wide serial (those of earlier chunks are
/// stale).
const CANDIDATE: usize = 0;
const CANDIDATE_SERIAL: usize = 1;
/// The latest allocation at this slot, with the writer-wide serial of its record.
const ALLOCATION: usize = 2;
const ALLOCATION_SERIAL: usize = 3;

/// Candidates and allocations by hash, most recent wins: a lossy index is enough for a guess.
/// Serials run on across chunks (so the table is never cleared); `start_chunk` sets the bases
/// below which entries belong to earlier chunks.
pub(super) struct AddressModel {
    table: Vec<Slot>,
    /// 64 - log2 of the slots in use: the shift that takes a hash's top bits as a slot number
    /// (kept so, not as the log, to spare a subtraction per lookup).
    shift: u32,
    candidates: u64,
    allocations: u64,
    candidate_base: u64,
    allocation_base: u64,
}

#[inline]
fn slot(addr: u64, shift: u32) -> usize {
    ((addr >> 4).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> shift) as usize
}

impl AddressModel {
    pub(super) const fn new() -> AddressModel {
        AddressModel {
            table: Vec::new(),
            shift: 64 - DEFAULT_TABLE_BITS,
            candidates: 0,
            allocations: 0,
            candidate_base: 0,
            allocation_base: 0,
        }
    }

    /// Sets how much of the table is used (log2 of its slots, 4 to the allocated size). Entries
    /// left at other slots stay correct: a lookup matches an exact address with a serial of
    /// this chunk, wherever it is found.
    pub(super) fn set_bits(&mut self, bits: u32) {
        self.shift = 64 - bits.clamp(4, ALLOCATED_BITS);
    }

    /// Frees the table (the next chunk allocates it again, empty): for a writer that may stay
    /// idle a long time.
    pub(super) fn release(&mut self) {
        self.table = Vec::new();
    }

    pub(super) fn start_chunk(&mut self) {
        if self.table.is_empty() {
            self.table = vec![[0; 4]; 1 << ALLOCATED_BITS];
        }
        self.candidate_base = self.candidates;
        self.allocation_base = self.allocations;
    }

    /// The slot `addr` looks up, for a caller that computes it once for a prefetch and the
    /// lookup itself. A slot computed before a change of the size in use still finds and
    /// records exactly (a lookup matches an exact address, wherever it is found).
    #[inline]
    pub(super) fn slot_of(&self, addr: u64) -> usize {
        slot(addr, self.shift)
    }

    /// An allocation at `addr`, whose slot is `at` (`slot_of`): how many candidates ago `addr`
    /// was added (0 = the latest), if it is one of this chunk. Records the allocation.
    #[inline]
    pub(super) fn allocate(&mut self, addr: u64, at: usize) -> Option<u64> {
        let serial = self.allocations + 1;
        self.allocations = serial;
        let candidates = self.candidates;
        let base = self.candidate_base;
        let at = self.table.get_mut(at)?;
        let found = (at[CANDIDATE] == addr && at[CANDIDATE_SERIAL] > base)
            .then(|| candidates - at[CANDIDATE_SERIAL]);
        at[ALLOCATION] = addr;
        at[ALLOCATION_SERIAL] = serial;
        found
    }

    /// A free of `addr`: how many allocations ago (1 = the latest) it was allocated, if in this
    /// chunk. The address becomes a candidate.
    #[inline]
    pub(super) fn free(&mut self, addr: u64) -> Option<u64> {
        let allocations = self.allocations;
        let base = self.allocation_base;
        let serial = self.candidates + 1;
        self.candidates = serial;
        let at = self.table.get_mut(slot(addr, self.shift))?;
        let found = (at[ALLOCATION] == addr && at[ALLOCATION_SERIAL] > base)
            .then(|| allocations - at[ALLOCATION_SERIAL] + 1);
        at[CANDIDATE] = addr;
        at[CANDIDATE_SERIAL] = serial;
        found
    }

    /// Where slot `at` lies in memory, for a caller that prefetches it (null before the first
    /// chunk).
    #[inline]
    pub(super) fn slot_ptr(&self, at: usize) -> *const u8 {
        self.table
            .get(at)
            .map_or(core::ptr::null(), |s| (s as *const Slot).cast())
    }

    /// Adds the candidate `addr` (the end of a block just allocated), whose slot is `at`
    /// (`slot_of`).
    #[inline]
    pub(super) fn add(&mut self, addr: u64, at: usize) {
        let serial = self.candidates + 1;
        self.candidates = serial;
        if let Some(at) = self.table.get_mut(at) {
            at[CANDIDATE] = addr;
            at[CANDIDATE_SERIAL] = serial;
        }
    }
}
