//! The stacks layer writes the tables its ids refer to (strings, Python frames, stacks, native
//! frames) into the calling thread's staging area, through these implementations.

use super::state::ThreadState;
use memtrace_format::columns::ColumnWriter;

/// Strings longer than this are recorded cut, at a character boundary: a name of some 100 KB
/// (a generated function's, a file name given to `compile`) did not fit a thread's first
/// staging area and was lost for good (its id was known), its frames read as `<unknown>`.
/// A path is at most 4,096 bytes long (PATH_MAX).
pub const MAX_STRING: usize = 4096;

/// `bytes` cut to at most [`MAX_STRING`] bytes, not inside a UTF-8 character.
fn cut(bytes: &[u8]) -> &[u8] {
    if bytes.len() <= MAX_STRING {
        return bytes;
    }
    let mut end = MAX_STRING;
    while end > 0 && bytes[end] & 0xC0 == 0x80 {
        end -= 1;
    }
    &bytes[..end]
}

impl crate::python::Tables for ThreadState {
    fn string(&mut self, id: u64, bytes: &[u8]) {
        let bytes = cut(bytes);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_strings_are_cut_at_a_character_boundary() {
        assert_eq!(cut(b"short"), b"short");
        let ascii = vec![b'a'; MAX_STRING + 10];
        assert_eq!(cut(&ascii).len(), MAX_STRING);
        // A two-byte character straddling the limit is left out whole.
        let mut text = vec![b'a'; MAX_STRING - 1];
        text.extend_from_slice("é and more".as_bytes());
        let c = cut(&text);
        assert_eq!(c.len(), MAX_STRING - 1);
        assert!(std::str::from_utf8(c).is_ok());
    }
}
