//! The tracker's entry in an LD_PRELOAD value, taken out with everything else left exactly as
//! it was: the program must see the value it would have had without memtrace (the loader
//! accepts `:` and spaces between entries, and a program may compare the string).

/// A value with the tracker's entry taken out: `before` and `after` it, one separator next to
/// it dropped with it.
#[derive(Debug, PartialEq, Eq)]
pub struct Without<'a> {
    pub before: &'a [u8],
    pub after: &'a [u8],
    /// The entry had a separator next to it: the value was more than the entry alone, so
    /// what is left is the program's value even when empty (`LD_PRELOAD=`).
    pub separated: bool,
}

impl Without<'_> {
    pub fn is_empty(&self) -> bool {
        self.before.is_empty() && self.after.is_empty()
    }
}

fn is_separator(b: u8) -> bool {
    b == b':' || b == b' '
}

/// `value` without its first entry that is the tracker (`tracker`'s path, or an entry with
/// the same file name); None when it has none.
pub fn without_tracker<'a>(value: &'a [u8], tracker: &[u8]) -> Option<Without<'a>> {
    let file_name = |p: &[u8]| -> usize { p.iter().rposition(|&c| c == b'/').map_or(0, |i| i + 1) };
    let mine = &tracker[file_name(tracker)..];
    let mut start = 0;
    while start <= value.len() {
        let end = value[start..]
            .iter()
            .position(|&b| is_separator(b))
            .map_or(value.len(), |i| start + i);
        let entry = &value[start..end];
        if !entry.is_empty() && (entry == tracker || &entry[file_name(entry)..] == mine) {
            let (before, after) = (&value[..start], &value[end..]);
            return Some(if let Some((_, rest)) = after.split_first() {
                Without {
                    before,
                    after: rest,
                    separated: true,
                }
            } else if let Some((_, rest)) = before.split_last() {
                Without {
                    before: rest,
                    after,
                    separated: true,
                }
            } else {
                Without {
                    before,
                    after,
                    separated: false,
                }
            });
        }
        start = end + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn left(value: &str) -> Option<(String, bool)> {
        without_tracker(value.as_bytes(), b"/x/libmemtrace_tracker.so").map(|w| {
            let s = [w.before, w.after].concat();
            (String::from_utf8(s).expect("utf-8"), w.separated)
        })
    }

    #[test]
    fn the_rest_is_kept_exactly() {
        let l = |s: &str, b: bool| Some((s.to_string(), b));
        assert_eq!(left("/x/libmemtrace_tracker.so"), l("", false));
        assert_eq!(left("/x/libmemtrace_tracker.so:"), l("", true));
        assert_eq!(
            left("/x/libmemtrace_tracker.so:libz.so.1:"),
            l("libz.so.1:", true)
        );
        assert_eq!(
            left("/x/libmemtrace_tracker.so: libz.so.1"),
            l(" libz.so.1", true)
        );
        assert_eq!(
            left("/x/libmemtrace_tracker.so:libz.so.1 libm.so.6"),
            l("libz.so.1 libm.so.6", true)
        );
        assert_eq!(left("a.so:/x/libmemtrace_tracker.so"), l("a.so", true));
        assert_eq!(
            left("a.so::/y/libmemtrace_tracker.so::b.so"),
            l("a.so:::b.so", true)
        );
        assert_eq!(left("a.so b.so"), None);
        assert_eq!(left(""), None);
        assert_eq!(left("libmemtrace_tracker.so.bak"), None);
    }
}
