//! `FileReader`: a capture's metadata and its allocation records.

use crate::errors;
use crate::events::{self, Item};
use crate::groups::{self, Group};
use crate::record::{allocator_name, frees, AllocationRecord};
use crate::shared::{Metadata, Shared};
use memtrace_format::Allocator;
use memtrace_reporter::capture::event::code;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex, PoisonError};

/// Reads a capture written by `memtrace run` or `memtrace.Tracker`.
#[pyclass(module = "memtrace", frozen)]
pub struct FileReader {
    shared: Arc<Shared>,
    /// `close()` was called (or the `with` block ended): the records are asked for no more.
    closed: AtomicBool,
}

impl FileReader {
    /// A closed reader's refusal (as a closed file's: ValueError).
    fn check_open(&self) -> PyResult<()> {
        if self.closed.load(Ordering::Relaxed) {
            return Err(pyo3::exceptions::PyValueError::new_err(
                "I/O operation on a closed FileReader",
            ));
        }
        Ok(())
    }
}

fn group_records(shared: &Arc<Shared>, groups: Vec<Group>) -> Records {
    Records {
        shared: shared.clone(),
        groups: Mutex::new(groups.into_iter()),
    }
}

/// The error for what an aggregated capture does not record (one line, as the commands say).
fn aggregated_lacks(shared: &Shared, what: &str) -> PyResult<()> {
    match shared.aggregated {
        Some(_) => Err(errors::CaptureError::new_err(
            memtrace_reporter::analysis::aggregated::unsupported(what),
        )),
        None => Ok(()),
    }
}

#[pymethods]
impl FileReader {
    /// Opens and reads the capture at `path`. In a Python run the records start when the
    /// script starts (as the reports do), unless `include_startup`.
    #[new]
    #[pyo3(signature = (path, *, include_startup = false))]
    fn new(py: Python<'_>, path: &Bound<'_, PyAny>, include_startup: bool) -> PyResult<FileReader> {
        // A path as str, os.PathLike or bytes (as open() takes them).
        let path: PathBuf = match path.cast::<pyo3::types::PyBytes>() {
            Ok(b) => {
                use std::os::unix::ffi::OsStrExt;
                std::ffi::OsStr::from_bytes(b.as_bytes()).into()
            }
            Err(_) => path.extract()?,
        };
        // As open() says it (the system call would refuse the name, shown with a blank).
        if path.as_os_str().as_encoded_bytes().contains(&0) {
            return Err(pyo3::exceptions::PyValueError::new_err(
                "embedded null byte",
            ));
        }
        let shared = py
            .detach(|| crate::pool::transient(|| Shared::open(&path, include_startup)))
            .map_err(|e| errors::open_error(py, e))?;
        // The aggregated tracker starts its sums at the script's start (as the CLI refuses
        // --include-startup: the figures would silently leave it out).
        if include_startup {
            aggregated_lacks(&shared, "include_startup=True (the interpreter's start-up)")?;
        }
        Ok(FileReader {
            shared: Arc::new(shared),
            closed: AtomicBool::new(false),
        })
    }

    #[getter]
    fn path(&self) -> PathBuf {
        self.shared.capture.path().to_path_buf()
    }

    #[getter]
    fn metadata(&self) -> PyResult<Metadata> {
        self.check_open()?;
        Ok(self.shared.metadata.clone())
    }

    /// Ends the reader's use (as memray's `FileReader.close()`): its records and metadata are
    /// not given any more; records already taken stay valid.
    fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
    }

    /// Whether `close()` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    fn __enter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __exit__(
        &self,
        _kind: &Bound<'_, PyAny>,
        _value: &Bound<'_, PyAny>,
        _traceback: &Bound<'_, PyAny>,
    ) -> bool {
        self.close();
        false
    }

    /// The labels stored in the capture (`memtrace run --label key=value`, `Tracker(labels=)`),
    /// in their order; empty when it has none.
    #[getter]
    fn labels<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        // As `metadata`: a closed reader's capture is not read.
        self.check_open()?;
        let d = PyDict::new(py);
        for (k, v) in &self.shared.index.settings.labels {
            d.set_item(k, v)?;
        }
        Ok(d)
    }

    /// N of `memtrace run --sample-bytes N` (each byte sampled with probability 1/N; the
    /// records' sizes and counts are estimates scaled up from the samples); 0 when every
    /// allocation was recorded.
    #[getter]
    fn sample_bytes(&self) -> u64 {
        self.shared.index.settings.sample_bytes
    }

    /// Whether the capture is sampled (`sample_bytes` > 0).
    #[getter]
    fn sampled(&self) -> bool {
        self.shared.index.settings.sample_bytes > 0
    }

    /// Whether the capture is aggregated (`memtrace run --aggregate`, `Tracker(aggregate=True)`).
    #[getter]
    fn aggregated(&self) -> bool {
        self.shared.index.settings.aggregate
    }

    /// The cgroup v2 memory limit (`memory.max`) the process ran under, in bytes; None when
    /// it had none.
    #[getter]
    fn memory_limit(&self) -> Option<u64> {
        Some(self.shared.index.settings.memory_limit).filter(|&l| l > 0)
    }

    /// The allocations live at the peak, grouped by stack, thread and allocator, largest
    /// first.
    fn peak_records(&self, py: Python<'_>) -> PyResult<Records> {
        self.check_open()?;
        let s = &self.shared;
        if let Some((peak, _)) = &s.aggregated {
            return Ok(group_records(s, groups::of_set(peak)));
        }
        let groups = py.detach(|| {
            crate::pool::transient(|| {
                groups::live_at(
                    s.capture.bytes(),
                    &s.index,
                    s.include_startup,
                    Some(s.peak_index),
                    s.block_types.as_ref(),
                    Some(&s.freed_types),
                )
            })
        });
        Ok(group_records(s, groups))
    }

    /// The allocations live at exit (the exit snapshot; the end of the capture without one),
    /// grouped by stack, thread, allocator and the type of their objects (`object_type`, where
    /// the capture has types), largest first.
    fn leaked_records(&self, py: Python<'_>) -> PyResult<Records> {
        self.check_open()?;
        let s = &self.shared;
        if let Some((_, exit)) = &s.aggregated {
            return Ok(group_records(s, groups::of_set(exit)));
        }
        let groups = py.detach(|| {
            crate::pool::transient(|| {
                groups::live_at(
                    s.capture.bytes(),
                    &s.index,
                    s.include_startup,
                    s.exit_index,
                    s.block_types.as_ref(),
                    None,
                )
            })
        });
        Ok(group_records(s, groups))
    }

    /// The temporary allocations (freed by their thread before it made `threshold` more
    /// allocations), grouped by stack, thread and allocator, largest first.
    #[pyo3(signature = (threshold = None), text_signature = "($self, threshold=1)")]
    fn temporary_records(
        &self,
        py: Python<'_>,
        threshold: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Records> {
        self.check_open()?;
        // As `--temporary-threshold` takes it (0 was read as 1, 2**63 accepted; a negative
        // number or one past 64 bits was an OverflowError).
        let threshold = match threshold {
            None => 1,
            Some(t) if !t.is_instance_of::<pyo3::types::PyInt>() => {
                return Err(pyo3::exceptions::PyTypeError::new_err(
                    "threshold must be an int (allocations made between one and its free)",
                ))
            }
            Some(t) => match t.extract::<i64>() {
                Ok(n) if (1..=1_000_000).contains(&n) => n as usize,
                _ => {
                    return Err(pyo3::exceptions::PyValueError::new_err(format!(
                        "threshold must be from 1 to 1000000 (allocations made between one and its free), not {t}"
                    )))
                }
            },
        };
        let s = &self.shared;
        aggregated_lacks(s, "temporary allocations")?;
        if s.index.settings.sample_bytes > 0 {
            return Err(errors::CaptureError::new_err(
                memtrace_reporter::report::load::sampled_temporary(s.index.settings.sample_bytes),
            ));
        }
        let groups = py.detach(|| {
            crate::pool::transient(|| {
                groups::temporary(s.capture.bytes(), &s.index, s.include_startup, threshold)
            })
        });
        Ok(group_records(s, groups))
    }

    /// Every allocation and free, in timeline order, read as the iteration goes.
    fn all_records(&self) -> PyResult<Events> {
        self.check_open()?;
        aggregated_lacks(&self.shared, "every allocation and free (all_records)")?;
        Ok(Events {
            shared: self.shared.clone(),
            state: Mutex::new(EventsState {
                rx: events::start(self.shared.clone(), self.shared.include_startup),
                batch: Vec::new().into_iter(),
            }),
        })
    }

    fn __repr__(&self) -> String {
        format!("<FileReader {}>", self.shared.capture.path().display())
    }
}

/// An iterator over grouped records.
#[pyclass(module = "memtrace")]
pub struct Records {
    shared: Arc<Shared>,
    groups: Mutex<std::vec::IntoIter<Group>>,
}

#[pymethods]
impl Records {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&self) -> Option<AllocationRecord> {
        let g = self.groups.lock().ok()?.next()?;
        Some(AllocationRecord {
            shared: self.shared.clone(),
            kind: "alloc",
            allocator: allocator_name(g.allocator),
            size: g.sum.bytes,
            n_allocations: g.sum.count,
            weight: g.sum.bytes,
            address: 0,
            stack_id: g.stack,
            time: None,
            thread: g.thread,
            object_type: g.object_type,
        })
    }

    fn __len__(&self) -> usize {
        self.groups.lock().map_or(0, |g| g.len())
    }
}

impl Events {
    /// The next event: from the batch at hand, else (the GIL released) from the decoder. The
    /// state's lock is only ever waited for without the GIL: a thread holding it waits for the
    /// GIL after a batch comes, and another thread of the same iterator, holding the GIL while
    /// it waited for the lock, hung both for good.
    fn next_item(&self, py: Python<'_>) -> Option<Item> {
        if let Ok(mut state) = self.state.try_lock() {
            if let Some(item) = state.batch.next() {
                return Some(item);
            }
        }
        let state = &self.state;
        py.detach(move || {
            let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(item) = state.batch.next() {
                return Some(item);
            }
            let batch = state.rx.recv().ok()?;
            state.batch = batch.into_iter();
            state.batch.next()
        })
    }
}

struct EventsState {
    rx: Receiver<Vec<Item>>,
    batch: std::vec::IntoIter<Item>,
}

/// An iterator over every allocation and free.
#[pyclass(module = "memtrace")]
pub struct Events {
    shared: Arc<Shared>,
    state: Mutex<EventsState>,
}

#[pymethods]
impl Events {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> Option<AllocationRecord> {
        let (thread, e, position) = self.next_item(py)?;
        let c = e.code();
        let free = frees(c);
        // A free's size field holds the type of the object it held (typed frees): not a size.
        let size = if matches!(c, code::FREE | code::PY_FREE) {
            0
        } else {
            e.size
        };
        // A sampled allocation stands for more than its size (mappings are always recorded).
        let sampled = !free && c != Allocator::Mmap as u8;
        let weight = match sampled {
            true => self.shared.index.settings.sampling().weight(size),
            false => size,
        };
        Some(AllocationRecord {
            shared: self.shared.clone(),
            kind: if free { "free" } else { "alloc" },
            allocator: allocator_name(c),
            size,
            n_allocations: u64::from(!free),
            weight,
            address: e.addr,
            stack_id: e.stack(),
            time: Some(self.shared.clock.seconds(e.tick).max(0.0)),
            thread,
            // The block this allocation made, if it was live at exit with a known object in
            // it; for a free, the type its object had (a typed free's).
            object_type: if free {
                self.shared.freed_types.of(&e, position)
            } else {
                self.shared
                    .block_types
                    .as_ref()
                    .and_then(|b| b.get(&e.addr))
                    .filter(|&&(_, index)| index == position)
                    .map(|&(t, _)| t)
            },
        })
    }
}
