//! `memtrace export`: a Python script with one known allocation site (10,000,033 bytes at
//! `f`'s line 2, called from `g` at line 6 and the module at line 10), exported in each format;
//! each file is read back with a real reader and agrees with `stats --json`.

use flate2::read::GzDecoder;
use memtrace_e2e::python::{python, tracked, write};
use memtrace_e2e::python::{KNOWN_SITE, SITE_BYTES};
use memtrace_e2e::watchdog::Watched;
use memtrace_e2e::{memtrace_bin, num, scratch, stats};
use memtrace_reporter::export::pprof::Profile;
use prost::Message;
use serde_json::Value;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn capture(name: &str) -> (PathBuf, PathBuf) {
    let dir = scratch(name);
    let script = write(&dir, "known.py", KNOWN_SITE);
    let cap = dir.join("known.bin");
    let script_arg = script.to_string_lossy().into_owned();
    let out = tracked(python(), &cap, &[&script_arg], &dir, b"");
    assert!(out.status.success(), "{out:?}");
    (dir, cap)
}

fn export(cap: &Path, args: &[&str]) -> Output {
    Command::new(memtrace_bin())
        .arg("export")
        .arg(cap)
        .args(args)
        .output_watched()
}

fn exported(cap: &Path, args: &[&str]) -> Vec<u8> {
    let out = export(cap, args);
    assert!(
        out.status.success(),
        "export {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn peak(cap: &Path) -> i64 {
    num(&stats(cap), "peak_bytes")
}

/// Now, as nanoseconds since the epoch (pprof's `time_nanos`).
fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after the epoch")
        .as_nanos() as i64
}

#[test]
fn folded_stacks_name_the_site_with_its_bytes() {
    let (dir, cap) = capture("export-folded");
    let text = String::from_utf8(exported(&cap, &["--format", "folded"])).expect("utf-8");
    let file = dir.join("known.py").display().to_string();
    let stack = format!("<module> at {file}:10;g at {file}:6;f at {file}:2");
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("{stack} ")))
        .unwrap_or_else(|| panic!("no line for {stack}:\n{text}"));
    assert_eq!(line, format!("{stack} {SITE_BYTES}"));
    let total: i64 = text
        .lines()
        .map(|l| {
            l.rsplit_once(' ')
                .and_then(|(_, n)| n.parse::<i64>().ok())
                .unwrap_or_else(|| panic!("bad line {l}"))
        })
        .sum();
    assert_eq!(total, peak(&cap));
    // -o writes the same to a file.
    let out = dir.join("out.folded");
    let path = out.to_string_lossy().into_owned();
    exported(&cap, &["--format", "folded", "-o", &path]);
    assert_eq!(std::fs::read_to_string(&out).expect("written"), text);
}

#[test]
fn speedscope_samples_weigh_the_peak() {
    let (_dir, cap) = capture("export-speedscope");
    let v: Value =
        serde_json::from_slice(&exported(&cap, &["--format", "speedscope"])).expect("JSON");
    assert_eq!(
        v["$schema"],
        "https://www.speedscope.app/file-format-schema.json"
    );
    let frames = v["shared"]["frames"].as_array().expect("frames");
    let p = &v["profiles"][0];
    assert_eq!(p["type"], "sampled");
    assert_eq!(p["unit"], "bytes");
    let samples = p["samples"].as_array().expect("samples");
    let weights = p["weights"].as_array().expect("weights");
    assert_eq!(samples.len(), weights.len());
    let mut known = 0;
    for (s, w) in samples.iter().zip(weights) {
        let names: Vec<&str> = s
            .as_array()
            .expect("a stack")
            .iter()
            .map(|i| {
                let i = i.as_u64().expect("an index") as usize;
                assert!(i < frames.len(), "frame {i} of {}", frames.len());
                frames[i]["name"].as_str().expect("a name")
            })
            .collect();
        let leaf = names.last().expect("a frame");
        if leaf.starts_with("f at ") && leaf.ends_with("known.py:2") {
            known += 1;
            assert_eq!(w.as_i64(), Some(SITE_BYTES));
            assert_eq!(names.len(), 3, "{names:?}");
        }
    }
    assert_eq!(known, 1);
    let sum: i64 = weights.iter().map(|w| w.as_i64().expect("weight")).sum();
    assert_eq!(sum, peak(&cap));
    assert_eq!(num(p, "endValue"), peak(&cap));
}

#[test]
fn pprof_decodes_with_the_four_sample_types() {
    let before = now_ns();
    let (dir, cap) = capture("export-pprof");
    let after = now_ns();
    let out = dir.join("known.pb.gz");
    let path = out.to_string_lossy().into_owned();
    exported(&cap, &["--format", "pprof", "-o", &path]);
    let mut raw = Vec::new();
    GzDecoder::new(std::fs::File::open(&out).expect("written"))
        .read_to_end(&mut raw)
        .expect("gzip");
    let p = Profile::decode(raw.as_slice()).expect("a pprof profile");
    let s = |i: i64| p.string_table[i as usize].as_str();
    let types: Vec<(&str, &str)> = p
        .sample_type
        .iter()
        .map(|t| (s(t.r#type), s(t.unit)))
        .collect();
    assert_eq!(
        types,
        [
            ("alloc_objects", "count"),
            ("alloc_space", "bytes"),
            ("inuse_objects", "count"),
            ("inuse_space", "bytes")
        ]
    );
    let leaf_of = |sample: &memtrace_reporter::export::pprof::Sample| {
        let id = sample.location_id[0];
        let loc = p.location.iter().find(|l| l.id == id).expect("location");
        let line = &loc.line[0];
        let func = p
            .function
            .iter()
            .find(|f| f.id == line.function_id)
            .expect("function");
        (
            s(func.name).to_string(),
            s(func.filename).to_string(),
            line.line,
        )
    };
    let known: Vec<_> = p
        .sample
        .iter()
        .filter(|x| {
            let (f, file, line) = leaf_of(x);
            f == "f" && file.ends_with("known.py") && line == 2
        })
        .collect();
    assert_eq!(known.len(), 1);
    assert_eq!(known[0].value, vec![1, SITE_BYTES, 1, SITE_BYTES]);
    assert_eq!(known[0].location_id.len(), 3);
    let inuse: i64 = p.sample.iter().map(|x| x.value[3]).sum();
    assert_eq!(inuse, peak(&cap));
    // When the run was (it was 0: a profile of 1970 to a profiling service).
    assert!(
        (before..=after).contains(&p.time_nanos),
        "{} not in {before}..={after}",
        p.time_nanos
    );
    assert!(p.duration_nanos > 0 && p.duration_nanos <= after - before);
}

#[test]
fn csv_has_a_row_per_site() {
    let (_dir, cap) = capture("export-csv");
    let data = exported(&cap, &["--format", "csv"]);
    let mut r = csv::Reader::from_reader(data.as_slice());
    assert_eq!(
        r.headers().expect("header").iter().collect::<Vec<_>>(),
        memtrace_reporter::export::csv::HEADER
    );
    let rows: Vec<csv::StringRecord> = r.records().map(|x| x.expect("a row")).collect();
    let known: Vec<_> = rows
        .iter()
        .filter(|x| &x[1] == "f" && x[2].ends_with("known.py") && &x[3] == "2")
        .collect();
    assert_eq!(known.len(), 1);
    let n = |i: usize| known[0][i].parse::<i64>().expect("a number");
    assert_eq!((n(4), n(5), n(6), n(7)), (SITE_BYTES, 1, SITE_BYTES, 1));
    let live: i64 = rows
        .iter()
        .map(|x| x[4].parse::<i64>().expect("a number"))
        .sum();
    assert_eq!(live, peak(&cap));
}

#[test]
fn bad_uses_are_one_line_errors() {
    let (_dir, cap) = capture("export-errors");
    let out = export(&cap, &["--format", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("memtrace: "), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    let out = export(Path::new("/nonexistent/x.bin"), &["--format", "csv"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("memtrace: "));
    let out = export(&cap, &["--format", "csv", "--thread", "nosuch"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("memtrace: no thread"));
}

#[test]
fn with_leaks_the_live_values_are_those_at_exit() {
    let (_dir, cap) = capture("export-leaks");
    let text =
        String::from_utf8(exported(&cap, &["--format", "folded", "--leaks"])).expect("utf-8");
    let total: i64 = text
        .lines()
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, n)| n.parse::<i64>().ok()))
        .sum();
    assert_eq!(total, num(&stats(&cap), "leaked_bytes"));
    // g drops f's block before the script ends: it is not live at exit.
    assert!(!text.contains(";f at "), "{text}");
}

#[test]
fn pprof_is_not_written_to_a_terminal() {
    // `script` gives the command a terminal as stdout.
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("note: no `script` command, terminal check skipped");
        return;
    }
    let (_dir, cap) = capture("export-terminal");
    let cmd = format!(
        "'{}' export '{}' --format pprof; echo status=$?",
        memtrace_bin().display(),
        cap.display()
    );
    let out = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .output_watched();
    let text = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    assert_eq!(
        text,
        "memtrace: pprof is binary: write it to a file with -o OUT.pb.gz, or redirect stdout\nstatus=1\n"
    );
}

/// `-o -` writes to stdout, as tools that take `-o` read it: it wrote a file named `-`.
#[test]
fn an_output_of_dash_is_stdout() {
    let (dir, cap) = capture("export-dash");
    for format in ["folded", "csv", "speedscope"] {
        let to_stdout = exported(&cap, &["--format", format]);
        let out = Command::new(memtrace_bin())
            .arg("export")
            .arg(&cap)
            .args(["--format", format, "-o", "-"])
            .current_dir(&dir)
            .output_watched();
        assert!(out.status.success(), "{format}: {out:?}");
        assert_eq!(out.stdout, to_stdout, "{format}");
        assert!(!dir.join("-").exists(), "{format}: a file named -");
    }
}

/// `export --format csv | head -1`: the closed pipe made a CSV export fail ("cannot write the
/// report: Broken pipe", status 1) where every other report ends quietly.
#[test]
fn a_csv_export_into_a_closed_pipe_ends_quietly() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let dir = scratch("export-csv-pipe");
    // Some 4,000 lines that each keep a list: a CSV far larger than a pipe's buffer.
    let body: String = (0..4000)
        .map(|i| format!("k.append([0] * {})\n", i + 1))
        .collect();
    let script = write(&dir, "lines.py", &format!("k = []\n{body}"));
    let cap = dir.join("lines.bin");
    let script_arg = script.to_string_lossy().into_owned();
    let out = tracked(python(), &cap, &[&script_arg], &dir, b"");
    assert!(out.status.success(), "{out:?}");
    let mut child = Command::new(memtrace_bin())
        .arg("export")
        .arg(&cap)
        .args(["--format", "csv"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("export starts");
    let mut first = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut first)
        .expect("a line");
    assert!(first.starts_with("location,"), "{first}");
    // The read end is closed here (the reader dropped), as `head -1` does.
    let out = child.wait_with_output().expect("export ends");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "", "{out:?}");
}

/// A family's pprof at the combined peak: the processes that held nothing then were left
/// out, and with them their allocations (alloc_space 6,150,601 of the run's 9,150,601).
#[test]
fn a_family_s_pprof_at_the_peak_keeps_every_process_s_allocations() {
    let dir = scratch("export-family-idle");
    let prog = memtrace_e2e::compile("family_idle_children", &dir);
    let cap = dir.join("f.bin");
    let before = now_ns();
    let out = Command::new(memtrace_bin())
        .args(["run", "-q", "-f", "--follow-fork", "-o"])
        .arg(&cap)
        .arg("--")
        .arg(&prog)
        .current_dir(&dir)
        .output_watched();
    let after = now_ns();
    assert!(out.status.success(), "{out:?}");
    let s = stats(&cap);
    let processes = s["processes"].as_array().expect("a family");
    assert_eq!(processes.len(), 4, "{s}");
    let total: i64 = processes.iter().map(|p| num(p, "total_bytes")).sum();
    // Each process's own capture counts its allocations.
    let count: i64 = processes
        .iter()
        .flat_map(|p| p["captures"].as_array().expect("captures").clone())
        .map(|c| {
            num(
                &stats(Path::new(c.as_str().expect("a path"))),
                "total_allocations",
            )
        })
        .sum();
    let pb = dir.join("peak.pb.gz");
    exported(
        &cap,
        &["--format", "pprof", "-o", pb.to_str().expect("utf-8")],
    );
    let mut raw = Vec::new();
    GzDecoder::new(std::fs::File::open(&pb).expect("written"))
        .read_to_end(&mut raw)
        .expect("gzip");
    let p = Profile::decode(raw.as_slice()).expect("a pprof profile");
    let sum = |i: usize| p.sample.iter().map(|x| x.value[i]).sum::<i64>();
    // alloc_objects, alloc_space, inuse_objects, inuse_space.
    assert_eq!((sum(0), sum(1)), (count, total), "{s}");
    assert_eq!(sum(3), num(&s, "combined_peak_bytes"), "{s}");
    // The root's start.
    assert!((before..=after).contains(&p.time_nanos), "{}", p.time_nanos);
}

/// An export or a page written to a FIFO reaches its reader whole, every time: a check before
/// the write opened and closed the FIFO, its reader took that for the end and left, and the
/// write then waited for a reader for good (one run in three).
#[test]
fn an_export_and_a_page_written_to_a_fifo_reach_their_reader() {
    let (dir, cap) = capture("export-fifo");
    let fifo = dir.join("out.fifo");
    let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(made.success());
    let c = cap.to_str().expect("utf-8");
    let f = fifo.to_str().expect("utf-8");
    let folded = exported(&cap, &["--format", "folded"]);
    for round in 0..5 {
        for args in [
            vec!["export", c, "--format", "folded", "-o", f],
            vec!["flamegraph", "-f", "-o", f, c],
        ] {
            let reader = std::thread::spawn({
                let fifo = fifo.clone();
                move || std::fs::read(fifo).expect("read the FIFO")
            });
            let mut cmd = Command::new(memtrace_bin());
            cmd.args(&args);
            let out =
                memtrace_e2e::watchdog::output_within(&mut cmd, std::time::Duration::from_secs(60));
            assert!(out.status.success(), "round {round} {args:?}: {out:?}");
            let got = reader.join().expect("the reader");
            if args[0] == "export" {
                assert_eq!(got, folded, "round {round}");
            } else {
                assert!(
                    got.ends_with(b"</html>\n"),
                    "round {round}: {} bytes",
                    got.len()
                );
            }
        }
    }
}
