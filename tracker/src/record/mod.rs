//! Layer 3, the record: the thread registry and each thread's event writer, and thread names.
//! The hooks call down into it on every event (direct calls, no indirection); it calls down
//! into the stacks and the capture (tests/layers.rs checks).

pub(crate) mod aggregate;
pub(crate) mod early;
pub(crate) mod names;
pub(crate) mod sample;
pub(crate) mod thread;
