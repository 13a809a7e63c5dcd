//! speedscope's file format (https://www.speedscope.app/file-format-schema.json): one "sampled"
//! profile in bytes, each stack a sample weighted by its live bytes, frames shared.

use super::Sites;
use crate::report::locations::Location;
use serde::Serialize;
use std::collections::HashMap;
use std::io::{self, Write};

pub const SCHEMA: &str = "https://www.speedscope.app/file-format-schema.json";

#[derive(Serialize)]
struct File<'a> {
    #[serde(rename = "$schema")]
    schema: &'static str,
    shared: Shared<'a>,
    profiles: [Profile; 1],
    name: &'a str,
    #[serde(rename = "activeProfileIndex")]
    active_profile_index: u32,
    exporter: String,
}

#[derive(Serialize)]
struct Shared<'a> {
    frames: Vec<Frame<'a>>,
}

#[derive(Serialize)]
struct Frame<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    line: Option<u64>,
}

#[derive(Serialize)]
struct Profile {
    #[serde(rename = "type")]
    kind: &'static str,
    name: String,
    unit: &'static str,
    #[serde(rename = "startValue")]
    start_value: u64,
    #[serde(rename = "endValue")]
    end_value: u64,
    samples: Vec<Vec<usize>>,
    weights: Vec<u64>,
}

/// Writes the sites' live bytes as one profile named `name` (the capture and its view).
pub fn write(sites: &Sites, name: &str, out: &mut dyn Write) -> io::Result<()> {
    let mut frames: Vec<Frame> = Vec::new();
    let mut index: HashMap<&Location, usize> = HashMap::new();
    let mut samples = Vec::new();
    let mut weights = Vec::new();
    for s in sites.list.iter().filter(|s| s.live.bytes > 0) {
        let stack = sites
            .frames(s)
            .into_iter()
            .map(|l| {
                *index.entry(l).or_insert_with(|| {
                    frames.push(Frame {
                        name: &l.label,
                        file: l.file.as_deref(),
                        line: l.line,
                    });
                    frames.len() - 1
                })
            })
            .collect();
        samples.push(stack);
        weights.push(s.live.bytes);
    }
    let total = weights.iter().sum();
    let file = File {
        schema: SCHEMA,
        shared: Shared { frames },
        profiles: [Profile {
            kind: "sampled",
            name: name.to_string(),
            unit: "bytes",
            start_value: 0,
            end_value: total,
            samples,
            weights,
        }],
        name,
        active_profile_index: 0,
        exporter: format!("memtrace {}", env!("CARGO_PKG_VERSION")),
    };
    serde_json::to_writer(&mut *out, &file)?;
    writeln!(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::totals::Sum;
    use crate::export::Site;
    use crate::report::locations::test_location as loc;
    use serde_json::Value;

    #[test]
    fn samples_index_shared_frames_root_first() {
        let m = loc("<module>", 9);
        let sites = [
            Site {
                frames: vec![m.clone(), loc("g", 5), loc("f", 2)],
                allocated: Sum {
                    count: 1,
                    bytes: 100,
                },
                live: Sum {
                    count: 1,
                    bytes: 100,
                },
            },
            Site {
                frames: vec![m.clone(), loc("h", 7)],
                allocated: Sum {
                    count: 1,
                    bytes: 30,
                },
                live: Sum {
                    count: 1,
                    bytes: 30,
                },
            },
            Site {
                frames: vec![m, loc("x", 1)],
                allocated: Sum {
                    count: 1,
                    bytes: 30,
                },
                live: Sum::default(),
            },
        ];
        let mut out = Vec::new();
        let sites: Sites = sites.into_iter().collect();
        write(&sites, "peak of run.bin", &mut out).expect("write");
        let v: Value = serde_json::from_slice(&out).expect("json");
        assert_eq!(v["$schema"], SCHEMA);
        assert_eq!(v["activeProfileIndex"], 0);
        let frames: Vec<&str> = v["shared"]["frames"]
            .as_array()
            .expect("frames")
            .iter()
            .map(|f| f["name"].as_str().expect("name"))
            .collect();
        assert_eq!(
            frames,
            [
                "<module> at a.py:9",
                "g at a.py:5",
                "f at a.py:2",
                "h at a.py:7"
            ]
        );
        assert_eq!(v["shared"]["frames"][1]["file"], "a.py");
        assert_eq!(v["shared"]["frames"][1]["line"], 5);
        let p = &v["profiles"][0];
        assert_eq!(p["type"], "sampled");
        assert_eq!(p["unit"], "bytes");
        assert_eq!(p["samples"], serde_json::json!([[0, 1, 2], [0, 3]]));
        assert_eq!(p["weights"], serde_json::json!([100, 30]));
        assert_eq!(p["startValue"], 0);
        assert_eq!(p["endValue"], 130);
    }
}
