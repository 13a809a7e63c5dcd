//! Layer 5, the session: start and end of the capture (lifecycle), fork, exec, in-process start
//! and stop (inprocess), the Python extension module (pyext) and kill/raise finishing the capture
//! before a signal ends the process (signals). It drives the layers below and
//! registers with them what they must tell it. exports.rs defines every symbol the library
//! exports, each a jump to its implementation here or below.

pub(crate) mod attach;
pub(crate) mod descriptors;
pub(crate) mod exec;
pub(crate) mod exports;
pub(crate) mod family;
pub(crate) mod fork_signals;
pub(crate) mod inprocess;
pub(crate) mod lifecycle;
pub(crate) mod limits;
pub(crate) mod orphan;
pub(crate) mod process_name;
pub(crate) mod pyext;
pub(crate) mod pyhook;
pub(crate) mod pyrun;
pub(crate) mod sandbox;
pub(crate) mod signals;
pub(crate) mod state;
