//! Layer 1, the capture: the mapped capture file and its descriptor, the staging areas threads
//! write chunks into, compression, the module map, RSS samples and the status file. Imports only
//! the base (tests/layers.rs checks).

pub(crate) mod cgroup;
pub(crate) mod compress;
pub(crate) mod fd;
pub(crate) mod file;
pub(crate) mod modules;
pub(crate) mod netfs;
pub(crate) mod rss;
pub(crate) mod staging;
pub(crate) mod status;

pub(crate) use file::*;
