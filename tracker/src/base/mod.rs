//! Layer 0, the base: system calls, locks, the real allocation functions, the thread-local
//! block, the clock and the configuration. Imports nothing above it (tests/layers.rs checks).

pub(crate) mod alloc;
pub(crate) mod barrier;
pub(crate) mod biased_lock;
pub(crate) mod clock;
pub(crate) mod coarse;
pub(crate) mod config;
pub(crate) mod definition;
pub(crate) mod elf;
pub(crate) mod environ;
pub(crate) mod find_loader_lock;
pub(crate) mod loader_lock;
pub(crate) mod lock;
pub(crate) mod maps;
pub(crate) mod own_heap;
pub(crate) mod phdr;
pub(crate) mod preload_var;
pub(crate) mod real;
pub(crate) mod sys;
pub(crate) mod tls;
