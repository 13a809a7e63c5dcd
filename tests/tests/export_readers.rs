//! Each export read by a reader that shares no code with memtrace: pprof decoded by Google's
//! Python protobuf from the real profile.proto (tests/vendor/pprof), speedscope validated
//! against its published JSON schema (tests/vendor/speedscope) with Python's jsonschema, CSV
//! checked against the column list the README gives. The readers run in a virtual environment
//! made once under target/export-readers (pip installs protobuf, grpcio-tools, jsonschema).
//! The content is checked, not only the form: a Python script with one known site (10,000,033
//! bytes at `f`'s line 2, called from `g` at line 6, from the module at line 10).

use memtrace_e2e::python::{python, tracked, write};
use memtrace_e2e::python::{KNOWN_SITE, SITE_BYTES};
use memtrace_e2e::watchdog::Watched;
use memtrace_e2e::{link_tracker_module, memtrace_bin, num, scratch, stats, target_dir, workspace};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

const PACKAGES: [&str; 3] = ["protobuf", "grpcio-tools", "jsonschema"];

/// The Python of target/export-readers, made and filled on first use.
fn readers_python() -> &'static Path {
    static PY: OnceLock<PathBuf> = OnceLock::new();
    PY.get_or_init(|| {
        let venv = target_dir().join("export-readers");
        let py = venv.join("bin").join("python");
        let ready = || {
            Command::new(&py)
                .args(["-c", "import google.protobuf, grpc_tools, jsonschema"])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        if !ready() {
            let out = Command::new(python())
                .args(["-m", "venv"])
                .arg(&venv)
                .output()
                .expect("python3 runs");
            assert!(out.status.success(), "python3 -m venv: {out:?}");
            let out = Command::new(&py)
                .args(["-m", "pip", "install", "-q"])
                .args(PACKAGES)
                .output()
                .expect("pip runs");
            assert!(out.status.success(), "pip install {PACKAGES:?}: {out:?}");
            assert!(ready(), "{PACKAGES:?} installed but not importable");
        }
        py
    })
}

/// tests/readers/read_exports.py KIND FILE, its JSON.
fn read(kind: &str, file: &Path) -> Value {
    let out = Command::new(readers_python())
        .arg(workspace().join("tests/readers/read_exports.py"))
        .arg(kind)
        .arg(file)
        .output_watched();
    assert!(
        out.status.success(),
        "read_exports.py {kind}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the reader prints JSON")
}

fn capture(name: &str) -> (PathBuf, PathBuf) {
    let dir = scratch(name);
    let script = write(&dir, "known.py", KNOWN_SITE);
    let cap = dir.join("known.bin");
    let arg = script.to_string_lossy().into_owned();
    let out = tracked(python(), &cap, &[&arg], &dir, b"");
    assert!(out.status.success(), "{out:?}");
    (dir, cap)
}

fn export(cap: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new(memtrace_bin())
        .arg("export")
        .arg(cap)
        .args(args)
        .output_watched();
    assert!(out.status.success(), "export {args:?}: {out:?}");
    out.stdout
}

/// The known site's stack, innermost first, as [function, file, line].
fn known_stack(dir: &Path) -> Value {
    let file = dir.join("known.py").display().to_string();
    json!([["f", file, 2], ["g", file, 6], ["<module>", file, 10]])
}

#[test]
fn pprof_read_with_the_real_profile_proto() {
    let (dir, cap) = capture("readers-pprof");
    let out = dir.join("known.pb.gz");
    export(
        &cap,
        &["--format", "pprof", "-o", out.to_str().expect("utf-8")],
    );
    let p = read("pprof", &out);
    assert_eq!(
        p["sample_types"],
        json!([
            ["alloc_objects", "count"],
            ["alloc_space", "bytes"],
            ["inuse_objects", "count"],
            ["inuse_space", "bytes"]
        ])
    );
    let samples = p["samples"].as_array().expect("samples");
    // pprof's stacks are leaf first.
    let known: Vec<&Value> = samples
        .iter()
        .filter(|s| s["stack"] == known_stack(&dir))
        .collect();
    assert_eq!(known.len(), 1, "{samples:?}");
    assert_eq!(known[0]["values"], json!([1, SITE_BYTES, 1, SITE_BYTES]));
    // The values agree with stats: the live ones add up to the peak, the allocated ones to the
    // run's allocations.
    let s = stats(&cap);
    let sum = |i: usize| -> i64 {
        samples
            .iter()
            .map(|x| x["values"][i].as_i64().expect("a value"))
            .sum()
    };
    assert_eq!(sum(3), num(&s, "peak_bytes"));
    assert_eq!(sum(2), num(&s, "peak_allocations"));
    assert_eq!(sum(1), num(&s, "total_bytes"));
    assert_eq!(sum(0), num(&s, "total_allocations"));
}

#[test]
fn speedscope_valid_against_its_published_schema() {
    let (dir, cap) = capture("readers-speedscope");
    let out = dir.join("known.speedscope.json");
    std::fs::write(&out, export(&cap, &["--format", "speedscope"])).expect("write");
    let v = read("speedscope", &out);
    let profiles = v["profiles"].as_array().expect("profiles");
    assert_eq!(profiles.len(), 1);
    let p = &profiles[0];
    assert_eq!(p["unit"], "bytes");
    let peak = num(&stats(&cap), "peak_bytes");
    assert_eq!(num(p, "endValue"), peak);
    let samples = p["samples"].as_array().expect("samples");
    // speedscope's stacks are root first; frame names are "function at file:line".
    let file = dir.join("known.py").display().to_string();
    let expected = json!([
        [format!("<module> at {file}:10"), file, 10],
        [format!("g at {file}:6"), file, 6],
        [format!("f at {file}:2"), file, 2]
    ]);
    let known: Vec<&Value> = samples.iter().filter(|s| s["stack"] == expected).collect();
    assert_eq!(known.len(), 1, "{samples:?}");
    assert_eq!(num(known[0], "weight"), SITE_BYTES);
    let sum: i64 = samples.iter().map(|s| num(s, "weight")).sum();
    assert_eq!(sum, peak);
}

/// The CSV columns the README lists ("one row per innermost location: `...`").
fn readme_csv_columns() -> Vec<String> {
    let readme = std::fs::read_to_string(workspace().join("README.md")).expect("README.md");
    let flat = readme.split_whitespace().collect::<Vec<_>>().join(" ");
    let start = "row per innermost location: `";
    let at = flat.find(start).expect("the README lists the CSV columns") + start.len();
    let end = flat[at..].find('`').expect("closing backquote");
    flat[at..at + end]
        .split(',')
        .map(|c| c.trim().to_string())
        .collect()
}

#[test]
fn csv_has_the_readme_columns_and_the_known_site() {
    let (dir, cap) = capture("readers-csv");
    let columns = readme_csv_columns();
    assert_eq!(columns.len(), 8, "{columns:?}");
    let data = export(&cap, &["--format", "csv"]);
    let mut r = csv::Reader::from_reader(data.as_slice());
    let header: Vec<String> = r
        .headers()
        .expect("a header")
        .iter()
        .map(str::to_string)
        .collect();
    assert_eq!(header, columns);
    let col = |name: &str| columns.iter().position(|c| c == name).expect(name);
    let rows: Vec<csv::StringRecord> = r.records().map(|x| x.expect("a row")).collect();
    let file = dir.join("known.py").display().to_string();
    let known: Vec<&csv::StringRecord> = rows
        .iter()
        .filter(|x| &x[col("function")] == "f" && x[col("file")] == file && &x[col("line")] == "2")
        .collect();
    assert_eq!(known.len(), 1, "{rows:?}");
    let n = |name: &str| known[0][col(name)].parse::<i64>().expect("a number");
    assert_eq!(n("live_bytes"), SITE_BYTES);
    assert_eq!(n("live_allocations"), 1);
    assert_eq!(n("allocated_bytes"), SITE_BYTES);
    assert_eq!(n("allocations"), 1);
    assert_eq!(&known[0][col("location")], format!("f at {file}:2"));
    let s = stats(&cap);
    let sum = |name: &str| -> i64 {
        rows.iter()
            .map(|x| x[col(name)].parse::<i64>().expect("a number"))
            .sum()
    };
    assert_eq!(sum("live_bytes"), num(&s, "peak_bytes"));
    assert_eq!(sum("allocated_bytes"), num(&s, "total_bytes"));
    assert_eq!(sum("allocations"), num(&s, "total_allocations"));
}

/// The pprof export (decoded) of a `--follow-fork` capture, run with `options`, of a Python
/// script that forks one child (1 MB in the parent, 2 MB in the child).
fn family_pprof(name: &str, options: &[&str]) -> Value {
    let dir = scratch(name);
    let script = write(
        &dir,
        "forks.py",
        "import os\nx = bytearray(10**6)\npid = os.fork()\nif pid == 0:\n    y = bytearray(2 * 10**6)\n    os._exit(0)\nos.waitpid(pid, 0)\n",
    );
    let cap = dir.join("family.bin");
    let out = Command::new(memtrace_bin())
        .args(["run", "-q", "-f", "--follow-fork"])
        .args(options)
        .arg("--python")
        .arg(python())
        .arg("-o")
        .arg(&cap)
        .arg(&script)
        .current_dir(&dir)
        .output_watched();
    assert!(out.status.success(), "{out:?}");
    let pb = dir.join("family.pb.gz");
    export(
        &cap,
        &["--format", "pprof", "-o", pb.to_str().expect("utf-8")],
    );
    read("pprof", &pb)
}

/// A `--follow-fork` family's pprof carries the run's labels on every sample, before each
/// sample's process (`pid`, `process`): it dropped them, and the sampled note.
#[test]
fn pprof_of_a_family_carries_the_run_labels() {
    let p = family_pprof(
        "readers-pprof-family-labels",
        &["--sample-bytes", "4096", "--label", "service=api"],
    );
    let samples = p["samples"].as_array().expect("samples");
    let mut pids = std::collections::BTreeSet::new();
    for s in samples {
        let labels = s["labels"].as_array().expect("labels");
        assert_eq!(labels[0], json!(["service", "api"]), "{s}");
        assert_eq!(labels[1][0], "pid", "{s}");
        assert_eq!(labels[2][0], "process", "{s}");
        pids.insert(labels[1][1].as_str().unwrap_or("").to_string());
    }
    assert_eq!(pids.len(), 2, "{pids:?}");
    let comments = p["comments"].as_array().expect("comments");
    assert!(
        comments
            .iter()
            .any(|c| c.as_str().is_some_and(|c| c.contains("sampled"))),
        "{comments:?}"
    );
}

/// A run labelled `pid` or `process` keeps its labels, and the family's own process labels
/// take other keys (two values for one key read as either in a profile viewer).
#[test]
fn pprof_of_a_family_keeps_run_labels_named_like_its_own() {
    let p = family_pprof(
        "readers-pprof-family-clash",
        &["--label", "pid=api-7", "--label", "process=worker"],
    );
    let mut pids = std::collections::BTreeSet::new();
    for s in p["samples"].as_array().expect("samples") {
        let labels = s["labels"].as_array().expect("labels");
        let keys: Vec<&str> = labels.iter().filter_map(|l| l[0].as_str()).collect();
        assert_eq!(
            keys,
            ["pid", "process", "memtrace_pid", "memtrace_process"],
            "{s}"
        );
        assert_eq!(labels[0], json!(["pid", "api-7"]), "{s}");
        assert_eq!(labels[1], json!(["process", "worker"]), "{s}");
        pids.insert(labels[2][1].as_str().unwrap_or("").to_string());
    }
    assert_eq!(pids.len(), 2, "{pids:?}");
}

/// `run --label` (and the in-process `start(..., labels)`) stores labels in the capture; the
/// pprof export writes them on every sample, with the four standard memory sample types.
#[test]
fn pprof_carries_the_capture_labels() {
    let dir = scratch("readers-pprof-labels");
    let script = write(&dir, "known.py", KNOWN_SITE);
    let cap = dir.join("known.bin");
    let out = Command::new(memtrace_bin())
        .args([
            "run",
            "-q",
            "-f",
            "--label",
            "service=api",
            "--label",
            "version=1.4",
        ])
        .arg("--python")
        .arg(python())
        .arg("-o")
        .arg(&cap)
        .arg(&script)
        .current_dir(&dir)
        .output_watched();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        stats(&cap)["labels"],
        json!([["service", "api"], ["version", "1.4"]])
    );
    let pb = dir.join("known.pb.gz");
    export(
        &cap,
        &["--format", "pprof", "-o", pb.to_str().expect("utf-8")],
    );
    let p = read("pprof", &pb);
    assert_eq!(
        p["sample_types"],
        json!([
            ["alloc_objects", "count"],
            ["alloc_space", "bytes"],
            ["inuse_objects", "count"],
            ["inuse_space", "bytes"]
        ])
    );
    let samples = p["samples"].as_array().expect("samples");
    assert!(!samples.is_empty());
    for s in samples {
        assert_eq!(s["labels"], json!([["service", "api"], ["version", "1.4"]]));
    }
    assert_eq!(p["comments"], json!([]));

    // Tracked in-process, labels given to start().
    link_tracker_module(&dir);
    let inproc = dir.join("inproc.bin");
    let code = format!(
        "import _memtrace_tracker as t\nt.start({:?}, False, True, False, 'service=worker\\nregion=eu')\nx = bytearray(10**6)\nt.stop()\n",
        inproc.to_str().expect("utf-8")
    );
    let out = Command::new(python())
        .args(["-c", &code])
        .env_remove("LD_PRELOAD")
        .env("PYTHONPATH", &dir)
        .current_dir(&dir)
        .output_watched();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        stats(&inproc)["labels"],
        json!([["service", "worker"], ["region", "eu"]])
    );
}

/// A sampled capture's pprof estimates `inuse_objects` as it estimates `alloc_objects` and the
/// bytes (it gave the number of live samples: 40 times too few at N = 4096 here).
/// tests/programs/sampling.c: 1,200,016 allocations; at the peak 16 blocks of 1 MiB and
/// 200,000 of 100 bytes are live.
#[test]
fn pprof_of_a_sampled_capture_estimates_live_objects() {
    let dir = scratch("readers-pprof-sampled-objects");
    let prog = memtrace_e2e::compile("sampling", &dir);
    let cap = dir.join("s.bin");
    let out = Command::new(memtrace_bin())
        .args(["run", "-q", "--sample-bytes", "4096", "-o"])
        .arg(&cap)
        .arg(&prog)
        .env("MEMTRACE_SAMPLE_SEED", "11")
        .current_dir(&dir)
        .output_watched();
    assert!(out.status.success(), "{out:?}");
    let pb = dir.join("s.pb.gz");
    export(
        &cap,
        &["--format", "pprof", "-o", pb.to_str().expect("utf-8")],
    );
    let p = read("pprof", &pb);
    let mut sums = [0f64; 4];
    for s in p["samples"].as_array().expect("samples") {
        for (sum, v) in sums.iter_mut().zip(s["values"].as_array().expect("values")) {
            *sum += v.as_f64().expect("a number");
        }
    }
    let near = |got: f64, want: f64| (got - want).abs() <= want * 0.10;
    assert!(near(sums[0], 1_200_016.0), "alloc_objects {sums:?}");
    assert!(near(sums[2], 200_016.0), "inuse_objects {sums:?}");
    assert!(
        near(sums[3], (16 << 20) as f64 + 20_000_000.0),
        "inuse_space {sums:?}"
    );
    // Its counts are estimates as every report's are, and the profile says so.
    let comments = p["comments"].as_array().expect("comments");
    assert!(
        comments.iter().any(|c| c.as_str().is_some_and(
            |c| c.starts_with("sampled capture") && c.ends_with("counts are estimates too")
        )),
        "{comments:?}"
    );
}

/// A pprof profile says what every report warns of (a capture cut short by a kill, an
/// aggregated one): sent on to a profiling service, it has no stderr. It carried the sampled
/// note alone; and a native program's aggregated note spoke of the interpreter's start-up.
#[test]
fn pprof_comments_carry_the_reports_warnings() {
    let dir = scratch("readers-pprof-warnings");
    let prog = memtrace_e2e::compile("patterns", &dir);
    let prog = prog.to_str().expect("utf-8");
    let run = |cap: &str, extra: &[&str], args: &[&str]| {
        let mut all = vec!["run", "-q", "-f", "-o", cap];
        all.extend_from_slice(extra);
        all.push(prog);
        all.extend_from_slice(args);
        memtrace_e2e::memtrace(&all, &dir);
        let pb = dir.join(format!("{cap}.pb.gz"));
        export(
            &dir.join(cap),
            &["--format", "pprof", "-o", pb.to_str().expect("utf-8")],
        );
        let comments = read("pprof", &pb)["comments"].clone();
        (stats(&dir.join(cap))["warnings"].clone(), comments)
    };
    let has = |list: &Value, what: &str| {
        list.as_array().is_some_and(|l| {
            l.iter()
                .any(|c| c.as_str().is_some_and(|c| c.contains(what)))
        })
    };
    let (warnings, comments) = run("agg.bin", &["--aggregate"], &["leak", "100", "64"]);
    assert!(has(&comments, "aggregated capture"), "{comments}");
    assert!(!has(&comments, "start-up"), "{comments}");
    assert_eq!(comments, warnings);
    let (warnings, comments) = run("killed.bin", &[], &["kill", "100", "64"]);
    assert!(!warnings.as_array().is_none_or(Vec::is_empty), "{warnings}");
    assert_eq!(comments, warnings);
}
