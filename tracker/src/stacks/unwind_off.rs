//! Native stacks are unwound on x86_64 only: elsewhere `--native` records call sites, as
//! without it.

/// As on x86_64 (see unwind/mod.rs).
pub trait Tables: crate::python::Tables {
    fn native_frame(&mut self, id: u64, address: u64);
}

pub fn configure(_enabled: bool) {}

#[inline(always)]
pub fn enabled() -> bool {
    false
}

pub fn stack(_t: &mut crate::tls::Tls, _tables: &mut dyn Tables) -> Option<u64> {
    None
}

pub fn thread_exited(_t: &mut crate::tls::Tls) {}

pub fn after_fork() {}

pub fn learn_eval_loop() {}

pub fn module_closed() {}

/// No unwind tables are read here: a wrapper's caller is not found (its call site stands).
pub fn distances(_start: u64, _out: &mut [u8]) -> bool {
    false
}
