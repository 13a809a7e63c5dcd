//! The writer's index of recent addresses: which address is a candidate (a freed block or the
//! end of an allocated one) and which allocation record an address belongs to.

const TABLE_BITS: u32 = 14;
const TABLE_LEN: usize = 1 << TABLE_BITS;

/// What the model knows about the addresses of one hash slot. Both indexes live in one slot
/// because an allocation and its free look up and add at the same address: one cache line.
#[derive(Clone, Copy, Default)]
#[repr(align(32))]
struct Slot {
    /// The latest candidate at this slot, with its writer-wide serial (those of earlier chunks
    /// are stale).
    candidate: u64,
    candidate_serial: u64,
    /// The latest allocation at this slot, with the writer-wide serial of its record.
    allocation: u64,
    allocation_serial: u64,
}

/// Candidates and allocations by hash, most recent wins: a lossy index is enough for a guess.
/// Serials run on across chunks (so the table is never cleared); `start_chunk` sets the bases
/// below which entries belong to earlier chunks.
pub(super) struct AddressModel {
    table: Vec<Slot>,
    candidates: u64,
    allocations: u64,
    candidate_base: u64,
    allocation_base: u64,
}

#[inline]
fn slot(addr: u64) -> usize {
    ((addr >> 4).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - TABLE_BITS)) as usize
}

impl AddressModel {
    pub(super) const fn new() -> AddressModel {
        AddressModel {
            table: Vec::new(),
            candidates: 0,
            allocations: 0,
            candidate_base: 0,
            allocation_base: 0,
        }
    }

    pub(super) fn start_chunk(&mut self) {
        if self.table.is_empty() {
            self.table = vec![Slot::default(); TABLE_LEN];
        }
        self.candidate_base = self.candidates;
        self.allocation_base = self.allocations;
    }

    /// An allocation at `addr`: how many candidates ago `addr` was added (0 = the latest), if
    /// it is one of this chunk. Records the allocation.
    #[inline]
    pub(super) fn allocate(&mut self, addr: u64) -> Option<u64> {
        let serial = self.allocations + 1;
        self.allocations = serial;
        let candidates = self.candidates;
        let base = self.candidate_base;
        let at = self.table.get_mut(slot(addr))?;
        let found = (at.candidate == addr && at.candidate_serial > base)
            .then(|| candidates - at.candidate_serial);
        at.allocation = addr;
        at.allocation_serial = serial;
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
        let at = self.table.get_mut(slot(addr))?;
        let found = (at.allocation == addr && at.allocation_serial > base)
            .then(|| allocations - at.allocation_serial + 1);
        at.candidate = addr;
        at.candidate_serial = serial;
        found
    }

    /// Where the slot of `addr` lies in memory, for a caller that prefetches it (null before
    /// the first chunk).
    #[inline]
    pub(super) fn slot_ptr(&self, addr: u64) -> *const u8 {
        self.table
            .get(slot(addr))
            .map_or(core::ptr::null(), |at| (at as *const Slot).cast())
    }

    /// Adds the candidate `addr` (the end of a block just allocated).
    #[inline]
    pub(super) fn add(&mut self, addr: u64) {
        let serial = self.candidates + 1;
        self.candidates = serial;
        if let Some(at) = self.table.get_mut(slot(addr)) {
            at.candidate = addr;
            at.candidate_serial = serial;
        }
    }
}
