//! The stack of an event: the native stack with --native, else the thread's Python stack when
//! it runs tracked Python code, else the native call site, looked up in a per-thread cache
//! (a site's stack id is stable within one stack epoch).

use super::state::{Site, ThreadState, SITES};
use crate::{stacks, tls};
use memtrace_format::columns::ColumnWriter;
use std::sync::atomic::Ordering;

impl ThreadState {
    /// The stack of the native call site `ret` (0: unknown, the stack 0).
    #[inline]
    pub(super) fn site(&mut self, ret: u64) -> u64 {
        if ret == 0 {
            return 0;
        }
        let epoch = stacks::EPOCH.load(Ordering::Relaxed);
        let i = (stacks::hash(ret) as usize) & (SITES - 1);
        let e = self.sites[i];
        if e.ret == ret && e.epoch == epoch {
            return e.stack;
        }
        let stack = match stacks::native_site(ret) {
            Ok(id) => id,
            Err(new) => {
                // Two table records; if there is no room the ids stay undefined (reports show
                // an unknown stack) rather than the event being lost.
                if self.room_for_tables(2, 2 * ColumnWriter::table_len(0)) {
                    let buf = self.payload();
                    self.writer.native_frame(buf, new.frame, ret);
                    self.writer.stack(buf, new.stack, 0, new.frame);
                    self.publish();
                }
                new.stack
            }
        };
        self.sites[i] = Site { ret, stack, epoch };
        stack
    }

    /// Marks the script's start before this allocation when it is the main thread's first
    /// without a Python frame (python::script::watching).
    #[cold]
    fn maybe_script_start(&mut self, t: &mut tls::Tls) {
        if crate::python::script::starts_now(t) {
            let marker = memtrace_format::Marker::ScriptStart;
            if crate::aggregate::on() {
                crate::aggregate::marker(marker);
            }
            let tick = crate::clock::event_tick(t);
            self.event(tick, |w, buf| w.marker(buf, tick, marker));
            crate::python::script::started();
        }
    }

    /// The stack of an event: with --native the whole native stack; else the thread's Python
    /// stack when it runs tracked Python code, else the main script's `<compile>` frame while
    /// the interpreter compiles it (python::script), else the native call site `ret`. `t` is
    /// the calling thread's block (the hooks have it). Inlined: the Python stack's usual case
    /// is a few dozen instructions, which a call's set-up would add to.
    #[inline(always)]
    pub(super) fn stack_of(&mut self, t: &mut tls::Tls, ret: u64) -> u64 {
        if crate::python::script::watching() {
            self.maybe_script_start(t);
        }
        if crate::unwind::enabled() {
            if let Some(id) = crate::unwind::stack(t, self, ret) {
                return id;
            }
        }
        match crate::python::current_stack(t, self) {
            Some(id) => id,
            None => match crate::python::script::compile_stack(t, self) {
                Some(id) => id,
                None => {
                    // A call site inside `operator new` or `strdup` names their caller's.
                    let slot = if t.call_site != 0 { t.call_site + 8 } else { 0 };
                    self.site(crate::wrappers::outer_site(slot, ret))
                }
            },
        }
    }
}
