//! The size of each thread's index of recent addresses (the column writer's model, which turns
//! a free's address into a short reference): large for native programs, small for Python runs,
//! and smaller still while a thread's staging area is small.

use std::sync::atomic::{AtomicU32, Ordering};

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
pub(super) const RELEASE_CLASS: u8 = 4;

/// The part of the index of recent addresses a thread uses with an area of `class`: a small
/// area holds few events, and a small part touches few pages of the table (mapped zeroed).
pub(super) fn model_bits(class: u8) -> u32 {
    (7 + u32::from(class)).min(MODEL_BITS.load(Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_index_grows_with_the_area_up_to_the_runs_size() {
        set_python_run(false);
        assert_eq!(model_bits(0), 7);
        assert_eq!(model_bits(3), 10);
        assert_eq!(model_bits(7), NATIVE_MODEL_BITS);
        assert_eq!(model_bits(12), NATIVE_MODEL_BITS);
        set_python_run(true);
        assert_eq!(model_bits(0), 7);
        assert_eq!(model_bits(3), PYTHON_MODEL_BITS);
        assert_eq!(model_bits(12), PYTHON_MODEL_BITS);
        set_python_run(false);
    }
}
