//! The program's environment in the order memtrace was given it: Rust's `Command` would pass
//! it sorted by name, and a program that prints it (`env`) or keeps the first of two entries of
//! one name would see the difference.

/// The name of an entry `NAME=value` (the whole entry when it has no `=`).
fn name_of(entry: &[u8]) -> &[u8] {
    let end = entry.iter().position(|&b| b == b'=').unwrap_or(entry.len());
    &entry[..end]
}

/// `original` with `changes` applied: a changed variable keeps the place of its first entry (a
/// later entry of the same name goes), a removed one goes, and new ones follow in the order of
/// `changes`. Every other entry is kept as it was, byte for byte.
pub fn ordered(original: &[Vec<u8>], changes: &[(Vec<u8>, Option<Vec<u8>>)]) -> Vec<Vec<u8>> {
    let entry = |name: &[u8], value: &[u8]| [name, b"=", value].concat();
    let mut placed = vec![false; changes.len()];
    let mut out = Vec::with_capacity(original.len() + changes.len());
    for e in original {
        let name = name_of(e);
        match changes.iter().position(|(n, _)| n.as_slice() == name) {
            None => out.push(e.clone()),
            Some(i) if !placed[i] => {
                placed[i] = true;
                if let Some(value) = &changes[i].1 {
                    out.push(entry(name, value));
                }
            }
            Some(_) => {}
        }
    }
    for ((name, value), done) in changes.iter().zip(placed) {
        if let (false, Some(value)) = (done, value) {
            out.push(entry(name, value));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::ordered;

    fn v(s: &str) -> Vec<u8> {
        s.as_bytes().to_vec()
    }

    fn strings(entries: &[Vec<u8>]) -> Vec<String> {
        entries
            .iter()
            .map(|e| String::from_utf8_lossy(e).into_owned())
            .collect()
    }

    #[test]
    fn unchanged_entries_keep_their_order_and_bytes() {
        let original = vec![v("ZED=1"), v("PATH=/bin"), v("ODD"), v("A=b=c")];
        assert_eq!(ordered(&original, &[]), original);
    }

    #[test]
    fn a_changed_variable_keeps_its_place_and_new_ones_follow() {
        let original = vec![v("ZED=1"), v("LD_PRELOAD=/a.so"), v("GONE=x"), v("ALPHA=2")];
        let changes = vec![
            (v("LD_PRELOAD"), Some(v("/t.so:/a.so"))),
            (v("GONE"), None),
            (v("NEW_ONE"), Some(v("n"))),
            (v("NOT_THERE"), None),
            (v("NEW_TWO"), Some(v(""))),
        ];
        assert_eq!(
            strings(&ordered(&original, &changes)),
            [
                "ZED=1",
                "LD_PRELOAD=/t.so:/a.so",
                "ALPHA=2",
                "NEW_ONE=n",
                "NEW_TWO="
            ]
        );
    }

    #[test]
    fn a_changed_variable_given_twice_is_set_once_at_its_first_place() {
        let original = vec![v("X=first"), v("Y=y"), v("X=second")];
        let changes = vec![(v("X"), Some(v("mine")))];
        assert_eq!(strings(&ordered(&original, &changes)), ["X=mine", "Y=y"]);
    }
}
