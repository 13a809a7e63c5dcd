//! `memtrace run --sample-bytes N`: requests of N/2 bytes or more are always recorded with their
//! size, smaller ones by chance with a weight that makes the estimates unbiased, only the frees
//! of sampled blocks are recorded, and every report says the capture is sampled. The random
//! streams are fixed (MEMTRACE_SAMPLE_SEED) so that the statistical bounds, generous as they
//! are, give the same answer on every run.

use memtrace_e2e::watchdog::Watched;
use memtrace_e2e::{compile, memtrace, memtrace_bin, num, scratch, stats};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

const N: u64 = 256 << 10;

fn sampled_run(dir: &Path, program: &Path, extra: &[&str]) -> PathBuf {
    let cap = dir.join("sampled.bin");
    let out = Command::new(memtrace_bin())
        .args(["run", "-q", "-f", "--sample-bytes", "256K"])
        .args(extra)
        .arg("-o")
        .arg(&cap)
        .arg(program)
        .env("MEMTRACE_SAMPLE_SEED", "42")
        .current_dir(dir)
        .output_watched();
    assert!(out.status.success(), "{out:?}");
    cap
}

/// The row of `list` at line `line` of sampling.c.
fn at_line(list: &Value, line: i64) -> &Value {
    list.as_array()
        .expect("a list")
        .iter()
        .find(|r| {
            r["line"].as_i64() == Some(line)
                && r["file"]
                    .as_str()
                    .is_some_and(|f| f.ends_with("sampling.c"))
        })
        .unwrap_or_else(|| panic!("no row at sampling.c:{line} in {list}"))
}

fn within(value: i64, expected: f64, fraction: f64) -> bool {
    (value as f64 - expected).abs() <= expected * fraction
}

#[test]
fn sampled_capture_estimates_known_allocations() {
    let dir = scratch("sampling");
    let prog = compile("sampling", &dir);
    let cap = sampled_run(
        &dir,
        &prog,
        &["--label", "service=api", "--label", "version=1.4"],
    );
    let s = stats(&cap);
    assert_eq!(num(&s, "sample_bytes"), N as i64);
    assert_eq!(
        s["labels"],
        serde_json::json!([["service", "api"], ["version", "1.4"]])
    );
    assert!(
        s["warnings"].as_array().unwrap().iter().any(|w| w
            .as_str()
            .unwrap()
            .starts_with("sampled capture (--sample-bytes 262144)")),
        "{}",
        s["warnings"]
    );

    // 16 blocks of 1 MiB, above N: all recorded, with their exact size.
    let large = at_line(&s["top_by_size"], 17);
    assert_eq!((num(large, "bytes"), num(large, "count")), (16 << 20, 16));
    let large_peak = at_line(&s["top_at_peak"], 17);
    assert_eq!(num(large_peak, "bytes"), 16 << 20);

    // 1,000,000 x 64 bytes: about 244 samples; the estimate within 30%.
    let churn = at_line(&s["top_by_size"], 21);
    assert!(within(num(churn, "bytes"), 64e6, 0.3), "{churn}");
    assert!(within(num(churn, "count"), 1e6, 0.3), "{churn}");

    // The peak: 16 MiB exactly, plus about 20,000,000 bytes in some 76 samples; its standard
    // error's bound is N times the root of the samples live then that stand for more than
    // themselves: the 16 blocks of 1 MiB are exact, no error of theirs.
    let peak = num(&s, "peak_bytes");
    let samples = num(&s, "peak_samples");
    let bound = (N as f64 * ((samples - 16) as f64).sqrt()).round() as i64;
    assert_eq!(num(&s, "peak_standard_error_bytes"), bound);
    assert!(
        (40..200).contains(&samples),
        "{samples} samples at the peak"
    );
    // Counts are estimates of allocations, as bytes are: 200,016 blocks live at the peak (not
    // the samples), and 1,200,016 frees (not one per sample).
    assert!(within(num(&s, "peak_allocations"), 200_016.0, 0.3), "{s}");
    assert!(within(num(&s, "total_frees"), 1_200_016.0, 0.3), "{s}");
    assert_eq!(
        num(&s, "total_allocations"),
        num(&s, "total_frees") + num(&s, "leaked_allocations"),
        "every allocation is freed or live at exit: {s}"
    );
    assert!(within(peak, (16u64 << 20) as f64 + 2e7, 0.2), "peak {peak}");
    let live = at_line(&s["top_at_peak"], 26);
    assert!(within(num(live, "bytes"), 2e7, 0.4), "{live}");
    // The CSV's live count there is an estimate of its 200,000 blocks, as its bytes are, not
    // the number of samples (some 76).
    let out = memtrace(
        &["export", "--format", "csv", cap.to_str().expect("utf-8")],
        &dir,
    );
    assert!(out.status.success(), "{out:?}");
    let csv = String::from_utf8(out.stdout).expect("utf-8");
    let row: Vec<&str> = csv
        .lines()
        .map(|l| l.rsplitn(6, ',').collect::<Vec<_>>())
        .find(|f| f.len() == 6 && f[4] == "26" && f[5].contains("sampling.c"))
        .unwrap_or_else(|| panic!("no row at sampling.c:26 in\n{csv}"));
    let live_allocations: i64 = row[2].parse().expect("a count");
    assert!(within(live_allocations, 2e5, 0.4), "{row:?}");

    // Only the frees of sampled blocks: one per sampled malloc (all are freed), not 1.2 million.
    let mallocs = s["allocators"]["malloc"].as_i64().unwrap();
    let frees = s["allocators"]["free"].as_i64().unwrap();
    assert!(mallocs > 100 && mallocs < 2000, "{mallocs} sampled mallocs");
    assert!(
        (mallocs - frees).abs() <= 2,
        "{mallocs} mallocs, {frees} frees"
    );
    assert!(num(&s, "leaked_bytes") < N as i64, "{s}");
}

/// "Freed before its thread's next allocations" counts samples in a sampled capture, so nearly
/// every sampled small block passed for temporary (more bytes than the run allocated): the
/// temporary view is refused there in one line, by every report.
#[test]
fn the_temporary_view_of_a_sampled_capture_is_refused() {
    let dir = scratch("sampling-temporary");
    let prog = compile("sampling", &dir);
    let cap = sampled_run(&dir, &prog, &[]);
    let c = cap.to_str().expect("utf-8 path");
    for args in [
        vec!["stats", "--temporary", c],
        vec!["tree", "--text", "--temporary", c],
        vec!["flamegraph", "--temporary", "-o", "t.html", c],
        vec!["export", "--format", "csv", "--temporary", c],
    ] {
        let out = memtrace(&args, &dir);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.lines()
                .any(|l| l.contains("temporary allocations cannot be told in a sampled capture")),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn every_report_says_it_is_sampled() {
    let dir = scratch("sampling-reports");
    let prog = compile("sampling", &dir);
    let cap = sampled_run(&dir, &prog, &[]);
    let c = cap.to_str().unwrap();
    let text = memtrace(&["stats", c], &dir);
    assert!(text.status.success());
    let stdout = String::from_utf8_lossy(&text.stdout);
    assert!(
        stdout.contains("Sampling:     one sample per 256.0 KiB allocated on average"),
        "{stdout}"
    );
    assert!(
        stdout.contains("              the peak's standard error is at most "),
        "{stdout}"
    );
    // The allocators' counts are of the calls sampled, beside estimated totals.
    assert!(
        stdout.contains("Allocators (calls sampled, not estimates):"),
        "{stdout}"
    );
    for args in [
        vec!["tree", c],
        vec!["summary", c],
        vec!["export", "--format", "folded", "-o", "out.folded", c],
    ] {
        let out = memtrace(&args, &dir);
        assert!(out.status.success(), "{args:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("sampled capture (--sample-bytes 262144)"),
            "{args:?}: {err}"
        );
    }
    // The text reports say it on stdout too: a report redirected to a file kept no word of it.
    let said = "(estimates: a sampled capture, one sample per 256.0 KiB allocated)";
    for args in [vec!["tree", "--text", c], vec!["summary", c]] {
        let out = memtrace(&args, &dir);
        assert!(out.status.success(), "{args:?}: {out:?}");
        let first = String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or_default()
            .to_string();
        assert!(first.ends_with(said), "{args:?}: {first}");
    }
}

#[test]
fn bad_sampling_and_label_values_are_one_line() {
    let dir = scratch("sampling-bad");
    for (args, expected) in [
        (
            vec!["--sample-bytes", "0"],
            "invalid --sample-bytes value '0'",
        ),
        (
            vec!["--sample-bytes", "lots"],
            "invalid --sample-bytes value 'lots'",
        ),
        (
            vec!["--sample-bytes", "1.5M"],
            "invalid --sample-bytes value '1.5M'",
        ),
        (vec!["--label", "service"], "invalid --label 'service'"),
        (vec!["--label", "=api"], "invalid --label '=api'"),
        (
            vec!["--label", "a=1", "--label", "a=2"],
            "label 'a' is given twice",
        ),
    ] {
        let mut all = vec!["run", "-q", "-o", "x.bin"];
        all.extend(args.iter().copied());
        all.extend(["true"]);
        let out = memtrace(&all, &dir);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.starts_with("memtrace: ") && err.contains(expected),
            "{args:?}: {err}"
        );
        assert!(!dir.join("x.bin").exists());
    }
}

/// The top `n` lines (file:line) by bytes live at the peak that hold at least 1% of it (below
/// that, a line holds fewer bytes than a sample stands for: whether it shows is chance).
fn top_lines(s: &Value, n: usize) -> Vec<String> {
    let floor = num(s, "peak_bytes") / 100;
    s["top_at_peak"]
        .as_array()
        .expect("top_at_peak")
        .iter()
        .take(n)
        .filter(|r| num(r, "bytes") >= floor)
        .map(|r| format!("{}:{}", r["file"], r["line"]))
        .collect()
}

/// The bench workload large_buffers.py (2,000 bytearrays of 1 to 256 KiB live at the peak),
/// full and sampled: the estimated peak within 5% and the same top 5 lines at the peak, and
/// the histogram's bins of most bytes the same.
#[test]
fn sampled_workload_matches_the_full_capture() {
    let dir = scratch("sampling-workload");
    let python = memtrace_e2e::python::python();
    let script = memtrace_e2e::workspace().join("bench/workloads/large_buffers.py");
    let full = dir.join("full.bin");
    let out = memtrace_e2e::python::tracked(python, &full, &[script.to_str().unwrap()], &dir, b"");
    assert!(out.status.success(), "{out:?}");
    let sampled = dir.join("sampled.bin");
    let out = Command::new(memtrace_bin())
        .args(["run", "-q", "-f", "--sample-bytes", "64K", "--python"])
        .arg(python)
        .arg("-o")
        .arg(&sampled)
        .arg(&script)
        .env("MEMTRACE_SAMPLE_SEED", "7")
        .current_dir(&dir)
        .output_watched();
    assert!(out.status.success(), "{out:?}");
    let (f, s) = (
        memtrace_e2e::report(&["stats", "--json", "-n", "5"], &full),
        memtrace_e2e::report(&["stats", "--json", "-n", "5"], &sampled),
    );
    let (fp, sp) = (num(&f, "peak_bytes"), num(&s, "peak_bytes"));
    assert!(within(sp, fp as f64, 0.05), "peak: full {fp}, sampled {sp}");
    assert_eq!(top_lines(&s, 5), top_lines(&f, 5));
    assert_eq!(heavy_bins(&s), heavy_bins(&f));
    assert!(std::fs::metadata(&sampled).unwrap().len() < std::fs::metadata(&full).unwrap().len());
}

/// The histogram's bins (their lower bound) that hold at least 5% of the bytes allocated, with
/// their bytes within 10% of the total.
fn heavy_bins(s: &Value) -> Vec<i64> {
    let total = num(s, "total_bytes");
    s["histogram"]
        .as_array()
        .expect("histogram")
        .iter()
        .filter(|b| num(b, "bytes") >= total / 20)
        .map(|b| num(b, "lo"))
        .collect()
}

#[test]
fn sampled_allocation_counts_are_unbiased_near_the_period() {
    // Each sample stood for its count rounded to the nearest: a request of 1,600 bytes at 4 KiB
    // is sampled with probability 0.39 and stands for 2.56 allocations, counted as 3 (+17%).
    // Now rounded up or down at random in proportion. 3,686 bytes, above half the period, are
    // always recorded.
    let dir = scratch("sampling-counts");
    let prog = compile("patterns", &dir);
    for size in ["3686", "1600", "200"] {
        let cap = dir.join(format!("counts-{size}.bin"));
        let out = Command::new(memtrace_bin())
            .args(["run", "-q", "-f", "--sample-bytes", "4096", "-o"])
            .arg(&cap)
            .arg("--")
            .arg(&prog)
            .args(["malloc", "100000", size])
            .env("MEMTRACE_SAMPLE_SEED", "5")
            .current_dir(&dir)
            .output_watched();
        assert!(out.status.success(), "{out:?}");
        let s = stats(&cap);
        let bytes: f64 = size.parse::<f64>().expect("a size") * 1e5;
        // The 100,000 blocks (and the pointer array, one mmap of 800,000 bytes, exact).
        let malloc_bytes = num(&s, "total_bytes") - 800_000;
        assert!(
            within(malloc_bytes, bytes, 0.03),
            "{size}: {malloc_bytes} bytes"
        );
        let mallocs = num(&s, "total_allocations") - 1;
        assert!(within(mallocs, 1e5, 0.03), "{size}: {mallocs} allocations");
        if size == "3686" {
            assert_eq!((malloc_bytes, mallocs), (368_600_000, 100_000), "{size}");
        }
    }
}

#[test]
fn a_sampled_aggregated_capture_bounds_its_error_by_its_bytes() {
    // The aggregated tracker keeps estimated counts, not samples: the bound took them for
    // samples (N times the root of ~200,000 "samples": 117 MB on a peak of 36 MB).
    let dir = scratch("sampling-aggregated");
    let prog = compile("sampling", &dir);
    let cap = sampled_run(&dir, &prog, &["--aggregate"]);
    let s = stats(&cap);
    let peak = num(&s, "peak_bytes");
    assert!(within(peak, (16u64 << 20) as f64 + 2e7, 0.2), "peak {peak}");
    let bound = ((N as f64) * peak as f64).sqrt().round() as i64;
    assert_eq!(num(&s, "peak_standard_error_bytes"), bound, "{s}");
    assert!(bound < peak / 4, "{bound} of {peak}");
    let note = s["warnings"]
        .as_array()
        .expect("warnings")
        .iter()
        .filter_map(Value::as_str)
        .find(|w| w.starts_with("sampled capture"))
        .unwrap_or_default()
        .to_string();
    assert!(note.ends_with("counts are estimates too"), "{note}");
}

#[test]
fn labels_read_one_way_on_the_stats_line_and_an_empty_value_is_refused() {
    // `Labels:` joined values with spaces as they were: "sp=with space e=" read either way;
    // an empty value was stored, and pprof readers drop such a label.
    let dir = scratch("labels-line");
    let cap = dir.join("l.bin");
    let out = memtrace_e2e::memtrace(
        &[
            "run",
            "-q",
            "-o",
            cap.to_str().expect("utf-8"),
            "--label",
            "sp=with space",
            "--label",
            "q=a\"b",
            "--label",
            "eq=a=b",
            "/bin/true",
        ],
        &dir,
    );
    assert!(out.status.success(), "{out:?}");
    let text = memtrace_e2e::memtrace(&["stats", cap.to_str().expect("utf-8")], &dir);
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    let line = text
        .lines()
        .find(|l| l.starts_with("Labels:"))
        .unwrap_or_else(|| panic!("{text}"));
    assert_eq!(line, r#"Labels:       sp="with space" q="a\"b" eq=a=b"#);
    let refused = memtrace_e2e::memtrace(&["run", "--label", "e=", "/bin/true"], &dir);
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
    assert_eq!(
        String::from_utf8_lossy(&refused.stderr).trim_end(),
        "memtrace: invalid --label 'e=': the value is empty"
    );
}

#[test]
fn a_sampled_capture_with_no_sample_says_so() {
    // Figures of 0 read as a program that allocated nothing.
    let dir = scratch("sampled-nothing");
    let cap = dir.join("s.bin");
    let out = memtrace(
        &[
            "run",
            "-q",
            "--sample-bytes",
            "1T",
            "-o",
            cap.to_str().expect("utf-8"),
            "/bin/true",
        ],
        &dir,
    );
    assert!(out.status.success(), "{out:?}");
    let text = memtrace(&["stats", cap.to_str().expect("utf-8")], &dir);
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    assert!(
        text.contains(
            "no allocation was sampled: the program allocated too little for one sample per 1.0 \
             TiB (a smaller --sample-bytes samples it)"
        ),
        "{text}"
    );
}

#[test]
fn a_diff_of_a_sampled_capture_and_a_full_one_says_the_counts_do_not_compare() {
    // "Allocations 763 -> 3 -99.6%" when a sampled capture's live counts were of samples: they
    // are estimates now, as its bytes are, and the diff says the figures are.
    let dir = scratch("sampling-diff");
    let prog = compile("sampling", &dir);
    let sampled = sampled_run(&dir, &prog, &[]);
    let full = dir.join("full.bin");
    let out = memtrace(
        &[
            "run",
            "-q",
            "-f",
            "-o",
            full.to_str().expect("utf-8"),
            prog.to_str().expect("utf-8"),
        ],
        &dir,
    );
    assert!(out.status.success(), "{out:?}");
    for (base, new, which) in [
        (&full, &sampled, "NEW is sampled and BASE is not"),
        (&sampled, &full, "BASE is sampled and NEW is not"),
    ] {
        let out = memtrace(
            &[
                "diff",
                base.to_str().expect("utf-8"),
                new.to_str().expect("utf-8"),
            ],
            &dir,
        );
        assert!(out.status.success(), "{out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(&format!(
                "memtrace: {which}: its bytes and allocation counts are estimates, set against exact ones"
            )),
            "{out:?}"
        );
    }
}

/// The sizes of the allocations a capture holds, as recorded.
fn recorded_sizes(capture: &Path) -> Vec<u64> {
    use memtrace_reporter::capture::decode::decode_chunk;
    use memtrace_reporter::capture::event::EventKind;
    use memtrace_reporter::capture::{scan, Capture};
    let c = Capture::open(capture).expect("a capture");
    let index = scan::scan(c.bytes(), c.data_start(), c.header.minor);
    let mut sizes = Vec::new();
    for (i, entry) in index.chunks.iter().enumerate() {
        for e in decode_chunk(c.bytes(), entry, i).events {
            if matches!(e.kind(), EventKind::Alloc(_)) {
                sizes.push(e.size);
            }
        }
    }
    sizes.sort_unstable();
    sizes
}

#[test]
fn followed_fork_children_sample_on_their_own() {
    // Each child makes the same 1,000 allocations of distinct sizes (8 MB: some 120 samples at
    // 64 KiB). The forking thread's countdown and random state were copied into every child,
    // so all of them sampled the same allocations (40 runs of 40): a family's figures had
    // twice the error of four independent samples.
    let dir = scratch("sampling-fork-children");
    let prog = compile("sampled_children", &dir);
    for seed in [None, Some("7")] {
        let cap = dir.join("family.bin");
        let mut cmd = Command::new(memtrace_bin());
        cmd.args([
            "run",
            "-q",
            "-f",
            "--follow-fork",
            "--sample-bytes",
            "64K",
            "-o",
        ])
        .arg(&cap)
        .arg("--")
        .arg(&prog)
        .arg("4")
        .current_dir(&dir);
        if let Some(s) = seed {
            cmd.env("MEMTRACE_SAMPLE_SEED", s);
        }
        let out = cmd.output_watched();
        assert!(out.status.success(), "{out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "children done\n");
        let children: Vec<PathBuf> = std::fs::read_dir(&dir)
            .expect("read dir")
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| {
                let name = p.file_name().unwrap_or_default().to_string_lossy();
                name.starts_with("family.bin.") && !name.contains("exec")
            })
            .collect();
        assert_eq!(children.len(), 4, "{children:?}");
        let samples: Vec<Vec<u64>> = children
            .iter()
            .map(|c| {
                recorded_sizes(c)
                    .into_iter()
                    .filter(|s| s % 16 == 0 && (16..=16_000).contains(s))
                    .collect()
            })
            .collect();
        for (i, s) in samples.iter().enumerate() {
            assert!(
                (60..200).contains(&s.len()),
                "child {i}: {} samples",
                s.len()
            );
            for other in &samples[..i] {
                assert_ne!(
                    s, other,
                    "two children sampled the same allocations ({seed:?})"
                );
            }
        }
        for c in children {
            std::fs::remove_file(c).expect("remove");
        }
    }
}
