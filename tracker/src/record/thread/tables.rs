//! The stacks layer writes the tables its ids refer to (strings, Python frames, stacks, native
//! frames) into the calling thread's staging area, through these implementations.

use super::state::ThreadState;
use memtrace_format::columns::ColumnWriter;

impl crate::python::Tables for ThreadState {
    fn string(&mut self, id: u64, bytes: &[u8]) {
        if self.room_for_table(ColumnWriter::table_len(bytes.len())) {
            self.writer.string(self.payload(), id, bytes);
            self.publish();
        }
    }

    fn python_frame(&mut self, id: u64, function: u64, file: u64, line: u64) {
        if self.room_for_table(ColumnWriter::table_len(0)) {
            self.writer
                .python_frame(self.payload(), id, function, file, line);
            self.publish();
        }
    }

    fn stack(&mut self, id: u64, parent: u64, frame: u64) {
        if self.room_for_table(ColumnWriter::table_len(0)) {
            self.writer.stack(self.payload(), id, parent, frame);
            self.publish();
        }
    }

    fn native_frame(&mut self, id: u64, address: u64) {
        if self.room_for_table(ColumnWriter::table_len(0)) {
            self.writer.native_frame(self.payload(), id, address);
            self.publish();
        }
    }
}

impl crate::unwind::Tables for ThreadState {}
