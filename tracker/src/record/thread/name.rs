//! The thread's name in the capture: the name Python's threading gives it when it has one,
//! else the OS name (`/proc/self/task/TID/comm`), read at each flush and written when it
//! changed.

use super::owner::{acquire, release};
use super::state::ThreadState;
use crate::{sys, tls};
use memtrace_format::columns::ColumnWriter;

impl ThreadState {
    /// Appends a ThreadName record when the thread's name changed.
    pub(super) fn update_name(&mut self) {
        if self.python_named {
            return;
        }
        let mut known = [0u8; crate::names::MAX];
        if let Some(len) = crate::names::get(self.tid, &mut known) {
            if self.writer.reserve_table(ColumnWriter::table_len(len)) {
                self.writer.thread_name(self.payload(), &known[..len]);
                self.publish();
                self.python_named = true;
                return;
            }
        }
        let mut path = [0u8; 48];
        let n = proc_comm_path(self.tid, &mut path);
        let mut name = [0u8; 17];
        let mut len = sys::read_file(&path[..n], &mut name[..16]);
        while len > 0 && name[len - 1] == b'\n' {
            len -= 1;
        }
        if len == self.name_len && name[..len] == self.name[..len.min(16)] {
            return;
        }
        self.name[..len].copy_from_slice(&name[..len]);
        self.name_len = len;
        // At a flush the area may be full: then the name waits for the next chunk.
        if self.writer.reserve_table(ColumnWriter::table_len(len)) {
            self.writer.thread_name(self.payload(), &name[..len]);
            self.publish();
        } else {
            self.name_len = usize::MAX;
        }
    }
}

/// Names the calling thread as Python's threading does; the OS name is no longer read.
pub fn set_python_name(t: &mut tls::Tls, name: &[u8]) {
    if let Some(s) = acquire(t) {
        let name = &name[..name.len().min(1024)];
        if s.room_for_table(ColumnWriter::table_len(name.len())) {
            s.writer.thread_name(s.payload(), name);
            s.publish();
            s.python_named = true;
        }
        release(s);
    }
}

/// Writes `/proc/self/task/TID/comm` and a NUL into `out`; returns its length with the NUL.
fn proc_comm_path(tid: u32, out: &mut [u8; 48]) -> usize {
    let prefix = b"/proc/self/task/";
    out[..prefix.len()].copy_from_slice(prefix);
    let mut n = prefix.len();
    let mut digits = [0u8; 10];
    let mut k = 0;
    let mut v = tid;
    loop {
        digits[k] = b'0' + (v % 10) as u8;
        k += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    while k > 0 {
        k -= 1;
        out[n] = digits[k];
        n += 1;
    }
    let suffix = b"/comm\0";
    out[n..n + suffix.len()].copy_from_slice(suffix);
    n + suffix.len()
}

// ---- the recording entry points, called by the hooks with the re-entrancy flag set ----

#[cfg(test)]
mod tests {
    use super::proc_comm_path;

    fn path(tid: u32) -> String {
        let mut out = [0u8; 48];
        let n = proc_comm_path(tid, &mut out);
        String::from_utf8(out[..n].to_vec()).expect("ASCII")
    }

    #[test]
    fn the_comm_path_of_any_thread_id() {
        assert_eq!(path(0), "/proc/self/task/0/comm\0");
        assert_eq!(path(7), "/proc/self/task/7/comm\0");
        assert_eq!(path(4_194_304), "/proc/self/task/4194304/comm\0");
        assert_eq!(path(u32::MAX), "/proc/self/task/4294967295/comm\0");
    }
}
