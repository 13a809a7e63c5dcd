//! Comparing two captures: a figure before and after, and the bytes of each location (the
//! innermost frame, matched by its symbolized name, not by address) in the view of each.

use super::locations::Location;
use crate::analysis::totals::Sum;
use crate::export::Sites;
use serde::Serialize;
use std::collections::HashMap;

/// A figure in BASE and in NEW.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Change {
    pub base: u64,
    pub new: u64,
    pub change: i64,
    /// The change in percent of BASE (None when BASE is 0).
    pub percent: Option<f64>,
}

impl Change {
    pub fn new(base: u64, new: u64) -> Change {
        let change = (new as i128 - base as i128).clamp(i64::MIN as i128, i64::MAX as i128) as i64;
        Change {
            base,
            new,
            change,
            percent: (base > 0).then(|| 100.0 * change as f64 / base as f64),
        }
    }

    /// The percent for people: `+100.0%`, `-3.5%`, `0%` when nothing changed, `new` when BASE
    /// is 0.
    pub fn percent_text(&self) -> String {
        match self.percent {
            _ if self.change == 0 => "0%".to_string(),
            Some(p) => format!("{p:+.1}%"),
            None => "new".to_string(),
        }
    }
}

/// One location's bytes and allocations in the view of each capture.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LocationChange {
    pub location: String,
    pub function: Option<String>,
    pub file: Option<String>,
    pub line: Option<u64>,
    pub bytes: Change,
    pub allocations: Change,
}

/// The live sums of the sites by innermost location.
pub fn by_location(sites: &Sites) -> HashMap<Location, Sum> {
    let mut m: HashMap<Location, Sum> = HashMap::new();
    for s in sites
        .list
        .iter()
        .filter(|s| s.live.count > 0 || s.live.bytes > 0)
    {
        let key = sites.location(s).cloned().unwrap_or_else(Location::unknown);
        m.entry(key).or_default().merge(s.live);
    }
    m
}

/// Every location of either side with a change, the largest changes (either way) first.
pub fn locations(
    base: &HashMap<Location, Sum>,
    new: &HashMap<Location, Sum>,
) -> Vec<LocationChange> {
    let mut keys: Vec<&Location> = base.keys().chain(new.keys()).collect();
    // By every field: two locations of one label (`<unknown>` at two lines) must not
    // interleave, or the dedup below keeps one of them twice.
    keys.sort_by(|a, b| {
        (&a.label, &a.function, &a.file, a.line).cmp(&(&b.label, &b.function, &b.file, b.line))
    });
    keys.dedup_by(|a, b| a == b);
    let mut rows: Vec<LocationChange> = keys
        .into_iter()
        .map(|l| {
            let b = base.get(l).copied().unwrap_or_default();
            let n = new.get(l).copied().unwrap_or_default();
            LocationChange {
                location: l.label.clone(),
                function: l.function.clone(),
                file: l.file.clone(),
                line: l.line,
                bytes: Change::new(b.bytes, n.bytes),
                allocations: Change::new(b.count, n.count),
            }
        })
        .filter(|r| r.bytes.change != 0 || r.allocations.change != 0)
        .collect();
    rows.sort_by(|a, b| {
        b.bytes
            .change
            .unsigned_abs()
            .cmp(&a.bytes.change.unsigned_abs())
            .then_with(|| a.location.cmp(&b.location))
    });
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::locations::test_location as loc;

    #[test]
    fn two_locations_of_one_label_are_one_row_each() {
        let at = |line| Location {
            function: None,
            file: None,
            line: Some(line),
            label: "<unknown>".to_string(),
        };
        let sum = |bytes| Sum { count: 1, bytes };
        // Every order the maps may give: each location once.
        for _ in 0..20 {
            let base: HashMap<Location, Sum> = [(at(2), sum(10)), (at(3), sum(20))].into();
            let new: HashMap<Location, Sum> = [(at(2), sum(15)), (at(3), sum(30))].into();
            let rows = locations(&base, &new);
            assert_eq!(rows.len(), 2, "{rows:?}");
            let mut lines: Vec<_> = rows.iter().map(|r| r.line).collect();
            lines.sort();
            assert_eq!(lines, [Some(2), Some(3)]);
        }
    }

    fn sums(rows: &[(Location, u64, u64)]) -> HashMap<Location, Sum> {
        rows.iter()
            .map(|(l, bytes, count)| {
                (
                    l.clone(),
                    Sum {
                        bytes: *bytes,
                        count: *count,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn changes_by_location_largest_first() {
        let base = sums(&[
            (loc("f", 2), 100, 1),
            (loc("g", 5), 50, 1),
            (loc("h", 7), 9, 1),
        ]);
        let new = sums(&[
            (loc("f", 2), 200, 1),
            (loc("g", 5), 50, 1),
            (loc("k", 1), 300, 3),
        ]);
        let rows = locations(&base, &new);
        let got: Vec<(&str, i64, Option<f64>)> = rows
            .iter()
            .map(|r| (r.location.as_str(), r.bytes.change, r.bytes.percent))
            .collect();
        assert_eq!(
            got,
            vec![
                ("k at a.py:1", 300, None),
                ("f at a.py:2", 100, Some(100.0)),
                ("h at a.py:7", -9, Some(-100.0)),
            ]
        );
        assert_eq!(Change::new(3, 0).change, -3);
        let texts: Vec<String> = [(100, 200), (200, 100), (5, 5), (0, 0), (0, 7)]
            .iter()
            .map(|&(b, n)| Change::new(b, n).percent_text())
            .collect();
        assert_eq!(texts, ["+100.0%", "-50.0%", "0%", "0%", "new"]);
    }
}
