//! pprof's profile (github.com/google/pprof, proto/profile.proto), gzipped: what `go tool
//! pprof`, Pyroscope and speedscope read. Four sample types, as Go's heap profiles have:
//! alloc_objects and alloc_space (everything allocated over the run) and inuse_objects and
//! inuse_space (live at the view's moment). Each distinct location is a Location with one Line.

use super::Sites;
use crate::report::locations::Location as Loc;
use flate2::write::GzEncoder;
use prost::Message;
use std::collections::HashMap;
use std::io::{self, Write};

/// profile.proto's messages (field numbers as there).
#[derive(Clone, PartialEq, Message)]
pub struct Profile {
    #[prost(message, repeated, tag = "1")]
    pub sample_type: Vec<ValueType>,
    #[prost(message, repeated, tag = "2")]
    pub sample: Vec<Sample>,
    #[prost(message, repeated, tag = "4")]
    pub location: Vec<Location>,
    #[prost(message, repeated, tag = "5")]
    pub function: Vec<Function>,
    #[prost(string, repeated, tag = "6")]
    pub string_table: Vec<String>,
    #[prost(int64, tag = "9")]
    pub time_nanos: i64,
    #[prost(int64, tag = "10")]
    pub duration_nanos: i64,
    /// String ids of free-form notes (a sampled capture says so here).
    #[prost(int64, repeated, tag = "13")]
    pub comment: Vec<i64>,
    #[prost(int64, tag = "14")]
    pub default_sample_type: i64,
}

#[derive(Clone, PartialEq, Message)]
pub struct ValueType {
    #[prost(int64, tag = "1")]
    pub r#type: i64,
    #[prost(int64, tag = "2")]
    pub unit: i64,
}

#[derive(Clone, PartialEq, Message)]
pub struct Sample {
    /// Leaf first.
    #[prost(uint64, repeated, tag = "1")]
    pub location_id: Vec<u64>,
    #[prost(int64, repeated, tag = "2")]
    pub value: Vec<i64>,
    /// The capture's labels (`run --label key=value`), on every sample.
    #[prost(message, repeated, tag = "3")]
    pub label: Vec<Label>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Label {
    #[prost(int64, tag = "1")]
    pub key: i64,
    #[prost(int64, tag = "2")]
    pub str: i64,
}

/// What a profile says besides its samples: the capture's labels and notes.
#[derive(Clone, Debug, Default)]
pub struct Meta {
    pub labels: Vec<(String, String)>,
    pub comments: Vec<String>,
    /// Labels of each site (by index in the sites), after `labels`: a family's process
    /// (`pid`, `process`) on each of its samples. Empty: none.
    pub site_labels: Vec<Vec<(String, String)>>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Location {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(message, repeated, tag = "4")]
    pub line: Vec<Line>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Line {
    #[prost(uint64, tag = "1")]
    pub function_id: u64,
    #[prost(int64, tag = "2")]
    pub line: i64,
}

#[derive(Clone, PartialEq, Message)]
pub struct Function {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(int64, tag = "2")]
    pub name: i64,
    #[prost(int64, tag = "3")]
    pub system_name: i64,
    #[prost(int64, tag = "4")]
    pub filename: i64,
}

/// The sample types, in the order of each sample's values.
pub const SAMPLE_TYPES: [(&str, &str); 4] = [
    ("alloc_objects", "count"),
    ("alloc_space", "bytes"),
    ("inuse_objects", "count"),
    ("inuse_space", "bytes"),
];

/// Builds the profile of `sites`; `duration_nanos` is the capture's length.
pub fn profile(sites: &Sites, time_nanos: i64, duration_nanos: i64, meta: &Meta) -> Profile {
    let mut b = Builder::default();
    b.string("");
    let labels: Vec<Label> = meta
        .labels
        .iter()
        .map(|(k, v)| Label {
            key: b.string(k),
            str: b.string(v),
        })
        .collect();
    let comment = meta.comments.iter().map(|c| b.string(c)).collect();
    let sample_type = SAMPLE_TYPES
        .iter()
        .map(|(t, u)| ValueType {
            r#type: b.string(t),
            unit: b.string(u),
        })
        .collect();
    let default_sample_type = b.string("inuse_space");
    // Each node's location id once, however many stacks go through it.
    let mut node_locations: Vec<Option<u64>> = vec![None; sites.paths.len()];
    let sample = sites
        .list
        .iter()
        .enumerate()
        .filter(|(_, s)| s.allocated.count > 0 || s.live.count > 0)
        .map(|(i, s)| Sample {
            location_id: sites
                .paths
                .node_path(s.node)
                .into_iter()
                .rev()
                .filter_map(|n| {
                    let l = sites.paths.location(n)?;
                    Some(*node_locations[n].get_or_insert_with(|| b.location(l)))
                })
                .collect(),
            value: [
                s.allocated.count,
                s.allocated.bytes,
                s.live.count,
                s.live.bytes,
            ]
            .map(|v| i64::try_from(v).unwrap_or(i64::MAX))
            .to_vec(),
            label: {
                let mut all = labels.clone();
                for (k, v) in meta.site_labels.get(i).into_iter().flatten() {
                    all.push(Label {
                        key: b.string(k),
                        str: b.string(v),
                    });
                }
                all
            },
        })
        .collect();
    Profile {
        sample_type,
        sample,
        location: b.locations,
        function: b.functions,
        string_table: b.strings,
        time_nanos,
        duration_nanos,
        comment,
        default_sample_type,
    }
}

/// Writes the gzipped profile.
pub fn write(
    sites: &Sites,
    time_nanos: i64,
    duration_nanos: i64,
    meta: &Meta,
    out: &mut dyn Write,
) -> io::Result<()> {
    let bytes = profile(sites, time_nanos, duration_nanos, meta).encode_to_vec();
    let mut gz = GzEncoder::new(out, flate2::Compression::default());
    gz.write_all(&bytes)?;
    gz.finish()?;
    Ok(())
}

#[derive(Default)]
struct Builder {
    strings: Vec<String>,
    string_ids: HashMap<String, i64>,
    locations: Vec<Location>,
    location_ids: HashMap<Loc, u64>,
    functions: Vec<Function>,
    function_ids: HashMap<(String, String), u64>,
}

impl Builder {
    fn string(&mut self, s: &str) -> i64 {
        if let Some(&id) = self.string_ids.get(s) {
            return id;
        }
        let id = self.strings.len() as i64;
        self.strings.push(s.to_string());
        self.string_ids.insert(s.to_string(), id);
        id
    }

    fn location(&mut self, l: &Loc) -> u64 {
        if let Some(&id) = self.location_ids.get(l) {
            return id;
        }
        let name = l.function.clone().unwrap_or_else(|| l.label.clone());
        let file = l.file.clone().unwrap_or_default();
        let function_id = match self.function_ids.get(&(name.clone(), file.clone())) {
            Some(&id) => id,
            None => {
                let id = self.functions.len() as u64 + 1;
                let f = Function {
                    id,
                    name: self.string(&name),
                    system_name: self.string(&name),
                    filename: self.string(&file),
                };
                self.functions.push(f);
                self.function_ids.insert((name, file), id);
                id
            }
        };
        // Ids start at 1: 0 means "none" in the format.
        let id = self.locations.len() as u64 + 1;
        self.locations.push(Location {
            id,
            line: vec![Line {
                function_id,
                line: l.line.and_then(|n| i64::try_from(n).ok()).unwrap_or(0),
            }],
        });
        self.location_ids.insert(l.clone(), id);
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::totals::Sum;
    use crate::export::Site;
    use crate::report::locations::test_location as loc;
    use flate2::read::GzDecoder;
    use std::io::Read;

    #[test]
    fn decodes_back_with_four_sample_types_and_leaf_first_samples() {
        let m = loc("<module>", 9);
        let sites = [
            Site {
                frames: vec![m.clone(), loc("g", 5), loc("f", 2)],
                allocated: Sum {
                    count: 4,
                    bytes: 400,
                },
                live: Sum {
                    count: 1,
                    bytes: 100,
                },
            },
            Site {
                frames: vec![m.clone(), loc("g", 6)],
                allocated: Sum {
                    count: 2,
                    bytes: 60,
                },
                live: Sum::default(),
            },
        ];
        let mut gz = Vec::new();
        let sites: Sites = sites.into_iter().collect();
        write(&sites, 1_000, 2_000_000, &Meta::default(), &mut gz).expect("write");
        let mut raw = Vec::new();
        GzDecoder::new(gz.as_slice())
            .read_to_end(&mut raw)
            .expect("gzip");
        let p = Profile::decode(raw.as_slice()).expect("protobuf");
        let s = |i: i64| p.string_table[i as usize].as_str();
        assert_eq!(p.string_table[0], "");
        let types: Vec<(&str, &str)> = p
            .sample_type
            .iter()
            .map(|t| (s(t.r#type), s(t.unit)))
            .collect();
        assert_eq!(types, SAMPLE_TYPES);
        assert_eq!(s(p.default_sample_type), "inuse_space");
        assert_eq!(p.duration_nanos, 2_000_000);
        assert_eq!(p.sample.len(), 2);
        assert_eq!(p.sample[0].value, vec![4, 400, 1, 100]);
        assert_eq!(p.sample[1].value, vec![2, 60, 0, 0]);
        // Leaf first: f at line 2, then g at 5, then <module> at 9.
        let frames: Vec<(String, i64)> = p.sample[0]
            .location_id
            .iter()
            .map(|&id| {
                let l = &p.location[(id - 1) as usize];
                assert_eq!(l.id, id);
                let f = &p.function[(l.line[0].function_id - 1) as usize];
                assert_eq!(s(f.filename), "a.py");
                (s(f.name).to_string(), l.line[0].line)
            })
            .collect();
        assert_eq!(
            frames,
            [("f", 2), ("g", 5), ("<module>", 9)].map(|(f, l)| (f.to_string(), l))
        );
        // One function g for its two lines, two locations.
        assert_eq!(p.function.len(), 3);
        assert_eq!(p.location.len(), 4);
    }

    #[test]
    fn each_sample_carries_its_site_labels_after_the_captures() {
        let site = |f: &str, bytes: u64| Site {
            frames: vec![loc(f, 1)],
            allocated: Sum { count: 1, bytes },
            live: Sum::default(),
        };
        let sites = [site("a", 10), site("b", 20)];
        let meta = Meta {
            labels: vec![("run".to_string(), "nightly".to_string())],
            site_labels: vec![
                vec![("pid".to_string(), "12".to_string())],
                vec![("pid".to_string(), "34".to_string())],
            ],
            ..Meta::default()
        };
        let p = profile(&sites.into_iter().collect(), 0, 0, &meta);
        let s = |i: i64| p.string_table[i as usize].as_str();
        let labels: Vec<Vec<(&str, &str)>> = p
            .sample
            .iter()
            .map(|x| x.label.iter().map(|l| (s(l.key), s(l.str))).collect())
            .collect();
        assert_eq!(
            labels,
            vec![
                vec![("run", "nightly"), ("pid", "12")],
                vec![("run", "nightly"), ("pid", "34")]
            ]
        );
    }
}
