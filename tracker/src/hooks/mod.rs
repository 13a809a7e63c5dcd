//! Layer 4, the hooks: the interposed malloc family and mmap (native), the PyMem allocator
//! wrappers (pymem). Each event goes straight down to the record layer.

pub(crate) mod native;
pub(crate) mod pymem;
mod trampoline;

pub(crate) use trampoline::site_trampoline;

pub(crate) use native::*;
