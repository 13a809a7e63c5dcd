//! Layer 2, the stacks: the interned stack table, Python frames and the native unwinder. They
//! write their table records through traits (`python::Tables`, `unwind::Tables`) that the record
//! layer implements, so they import nothing above the capture (tests/layers.rs checks).

pub(crate) mod python;
pub(crate) mod table;
#[cfg(target_arch = "x86_64")]
pub(crate) mod unwind;
#[cfg(not(target_arch = "x86_64"))]
#[path = "unwind_off.rs"]
pub(crate) mod unwind;
pub(crate) mod wrappers;

pub(crate) use table::*;
