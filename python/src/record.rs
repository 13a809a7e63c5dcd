//! `AllocationRecord`: one event, or a group of allocations of one stack, thread and
//! allocator; its stacks are resolved when asked for.

use crate::shared::Shared;
use crate::stacks::{FrameTuple, StackKind};
use memtrace_format::Allocator;
use memtrace_reporter::capture::event::code;
use pyo3::prelude::*;
use std::sync::Arc;

/// The name of an event's allocator or deallocator, as `memtrace stats` names them.
pub fn allocator_name(c: u8) -> &'static str {
    match c {
        code::FREE => "free",
        code::PY_FREE => "pymalloc_free",
        code::MUNMAP => "munmap",
        code::MREMAP_OLD | code::MREMAP_NEW => "mremap",
        _ => Allocator::from_u8(c).map_or("unknown", Allocator::name),
    }
}

/// Whether an event code frees memory.
pub fn frees(c: u8) -> bool {
    matches!(
        c,
        code::FREE | code::PY_FREE | code::MUNMAP | code::MREMAP_OLD
    )
}

/// One allocation or free (`FileReader.all_records()`), or the allocations of one stack by one
/// thread with one allocator (`peak_records()`, `leaked_records()`, `temporary_records()`).
#[pyclass(module = "memtrace", frozen)]
pub struct AllocationRecord {
    pub shared: Arc<Shared>,
    /// "alloc" or "free".
    #[pyo3(get)]
    pub kind: &'static str,
    /// malloc, calloc, realloc, ..., mmap, pymalloc_malloc, ...; free, pymalloc_free, munmap,
    /// mremap for frees.
    #[pyo3(get)]
    pub allocator: &'static str,
    /// Bytes (of every allocation of the group).
    #[pyo3(get)]
    pub size: u64,
    /// Allocations in the group (1 for an event).
    #[pyo3(get)]
    pub n_allocations: u64,
    /// The bytes the record stands for: in a sampled capture (`--sample-bytes`), an allocation
    /// event's estimate (its size scaled up by its chance of being sampled), which the reports
    /// sum; `size` otherwise.
    #[pyo3(get)]
    pub weight: u64,
    /// The block's address (0 for a group).
    #[pyo3(get)]
    pub address: u64,
    /// The interned stack's id in the capture (0: unknown).
    #[pyo3(get)]
    pub stack_id: u64,
    /// Seconds since the capture started (None for a group).
    #[pyo3(get)]
    pub time: Option<f64>,
    pub thread: u32,
    /// The type of the objects in the block(s) (a row of the capture's types live at exit).
    pub object_type: Option<usize>,
}

impl AllocationRecord {
    fn stack(&self, kind: StackKind) -> Vec<FrameTuple> {
        self.shared.frames(self.stack_id, kind).to_vec()
    }
}

#[pymethods]
impl AllocationRecord {
    /// The system thread id of the thread that allocated.
    #[getter]
    fn tid(&self) -> u32 {
        self.shared
            .threads
            .get(self.thread as usize)
            .map_or(0, |t| t.tid)
    }

    /// The thread's name (Python `threading` names), if it had one.
    #[getter]
    fn thread_name(&self) -> Option<String> {
        self.shared
            .threads
            .get(self.thread as usize)
            .and_then(|t| t.name.clone())
    }

    /// The type of the Python object in the block (`"dict"`, `"__main__.Point"`), where known:
    /// for blocks live at exit of a capture with types (a `memtrace run` of a script, a
    /// `Tracker(object_types=True)`), in `leaked_records()`, `peak_records()` and
    /// `all_records()`; for blocks freed after the peak in `peak_records()` and for frees in
    /// `all_records()`, the type the free named (typed frees of a `memtrace run`); else None.
    #[getter]
    fn object_type(&self) -> Option<String> {
        self.object_type
            .and_then(|t| self.shared.type_names.get(t).cloned())
    }

    /// The Python frames, innermost first, as (function, file, line).
    fn python_stack(&self, py: Python<'_>) -> Vec<FrameTuple> {
        py.detach(|| self.stack(StackKind::Python))
    }

    /// The native frames, innermost first, as (function, file, line); an address without
    /// symbols is `libfoo.so+0x1234` with file "" and line 0.
    fn native_stack(&self, py: Python<'_>) -> Vec<FrameTuple> {
        py.detach(|| self.stack(StackKind::Native))
    }

    /// Native and Python frames as one chain, innermost first: each evaluation-loop frame shown
    /// as the Python frames it ran (as the reports show stacks).
    fn merged_stack(&self, py: Python<'_>) -> Vec<FrameTuple> {
        py.detach(|| self.stack(StackKind::Merged))
    }

    fn __repr__(&self) -> String {
        format!(
            "<AllocationRecord {} {} size={} n_allocations={} tid={} stack_id={}>",
            self.kind,
            self.allocator,
            self.size,
            self.n_allocations,
            self.tid(),
            self.stack_id
        )
    }
}
