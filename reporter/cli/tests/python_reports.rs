//! Reports of Python captures: locations with their stacks, modules, callers in the text report.

use crate::common::{CaptureBuilder, Chunk};
use memtrace_format::record::Segment;
use memtrace_format::Allocator;
use memtrace_reporter::analysis;
use memtrace_reporter::capture::Capture;
use memtrace_reporter::report::stats::{self, StatsReport};
use serde_json::{json, Value};
use std::process::Command;

const APP: &str = "/home/u/proj/app.py";
const DECODER: &str = "/usr/lib/python3.11/json/decoder.py";
const LIBC: &str = "/nonexistent/lib/libc.so.6";
const LIBC_BASE: u64 = 0x7f00_0000_0000;

fn report(b: &CaptureBuilder, top: usize) -> StatsReport {
    let capture = Capture::from_bytes("test.bin", b.bytes()).expect("a capture");
    let analysis = analysis::analyze(&capture);
    stats::build(&capture, &analysis, top)
}

fn libc_module(m: &mut Chunk) {
    m.module(
        LIBC_BASE,
        LIBC,
        b"\x01\x02",
        &[Segment {
            vaddr: 0,
            memsz: 0x10000,
            file_offset: 0,
        }],
    );
}

/// A Python program's capture, with the tables in a second thread's chunk after the events:
///
/// ```text
/// app.py:  3  f            <- g:7 <- <module>:10   1 × 10,000,000 bytes (a bytearray)
///          3  f            <- h:20 <- <module>:12  1000 × 64 bytes (pymalloc)
/// decoder.py:353 decode    <- h:20 <- <module>:12  3 × 1000 bytes
/// libc+0x1000 (no Python frame: interpreter start-up)   2 × 500 bytes
/// libc+0x2000              <- g:7 <- <module>:10   1 × 50 bytes (a native frame inside Python)
/// app.py: 40  k            <- r:31 × 5 <- <module>:14  2 × 100 bytes
/// stack 0                                          1 × 7 bytes
/// ```
fn python_capture() -> CaptureBuilder {
    let mut b = CaptureBuilder::new();
    let mut c = Chunk::new();
    c.thread_name("MainThread")
        .alloc(Allocator::Malloc, 1, 0x1000, 500, 8)
        .alloc(Allocator::Malloc, 2, 0x1400, 500, 8)
        .alloc(Allocator::Malloc, 3, 0x10_0000, 10_000_000, 3);
    let mut tick = 10;
    for i in 0..1000 {
        c.alloc(
            Allocator::PymallocMalloc,
            tick,
            0x1_0000_0000 + i * 64,
            64,
            6,
        );
        tick += 1;
    }
    for i in 0..3 {
        c.alloc(
            Allocator::PymallocMalloc,
            tick,
            0x2_0000_0000 + i * 1024,
            1000,
            7,
        );
        tick += 1;
    }
    c.alloc(Allocator::PymallocMalloc, tick, 0x3_0000_0000, 50, 30)
        .alloc(Allocator::PymallocMalloc, tick + 1, 0x3_0000_1000, 100, 16)
        .alloc(Allocator::PymallocMalloc, tick + 2, 0x3_0000_2000, 100, 16)
        .alloc(Allocator::Malloc, tick + 3, 0x4_0000_0000, 7, 0)
        .exit_marker(tick + 4);
    b.events(1, 100, 0, &c);

    let mut t = Chunk::new();
    t.string(1, "f")
        .string(2, APP)
        .string(3, "g")
        .string(4, "<module>")
        .string(5, "h")
        .string(6, DECODER)
        .string(7, "JSONDecoder.raw_decode")
        .string(8, "r")
        .string(9, "k")
        .python_frame(100, 4, 2, 10)
        .python_frame(101, 3, 2, 7)
        .python_frame(102, 1, 2, 3)
        .python_frame(103, 4, 2, 12)
        .python_frame(104, 5, 2, 20)
        .python_frame(105, 7, 6, 353)
        // f at line 3 again under another frame id (a frame re-emitted): one location.
        .python_frame(106, 1, 2, 3)
        .python_frame(110, 4, 2, 14)
        .python_frame(111, 8, 2, 31)
        .python_frame(112, 9, 2, 40)
        .native_frame(200, LIBC_BASE + 0x1000)
        .native_frame(201, LIBC_BASE + 0x2000)
        .stack(1, 0, 100)
        .stack(2, 1, 101)
        .stack(3, 2, 102)
        .stack(4, 0, 103)
        .stack(5, 4, 104)
        .stack(6, 5, 106)
        .stack(7, 5, 105)
        .stack(8, 0, 200)
        .stack(30, 2, 201)
        .stack(10, 0, 110)
        .stack(11, 10, 111)
        .stack(12, 11, 111)
        .stack(13, 12, 111)
        .stack(14, 13, 111)
        .stack(15, 14, 111)
        .stack(16, 15, 112);
    b.events(2, 101, 0, &t);
    let mut m = Chunk::new();
    libc_module(&mut m);
    b.meta(&m);
    b.trailer(1_000_000);
    b
}

fn frame(function: &str, file: &str, line: u64) -> Value {
    json!({"function": function, "file": file, "line": line})
}

fn unknown_frame() -> Value {
    json!({"function": null, "file": null, "line": null})
}

fn to_json(r: &StatsReport) -> Value {
    serde_json::to_value(r).expect("a report serializes")
}

#[test]
fn python_locations_have_exact_bytes_and_counts() {
    let r = report(&python_capture(), 10);
    let rows: Vec<(&str, u64, u64)> = r
        .top_by_size
        .iter()
        .map(|l| (l.location.as_str(), l.bytes, l.count))
        .collect();
    assert_eq!(
        rows,
        vec![
            ("f at /home/u/proj/app.py:3", 10_064_000, 1001),
            (
                "JSONDecoder.raw_decode at /usr/lib/python3.11/json/decoder.py:353",
                3000,
                3
            ),
            ("libc.so.6+0x1000", 1000, 2),
            ("k at /home/u/proj/app.py:40", 200, 2),
            ("libc.so.6+0x2000", 50, 1),
            ("<unknown>", 7, 1),
        ]
    );
    let rows: Vec<(&str, u64)> = r
        .top_by_count
        .iter()
        .map(|l| (l.location.as_str(), l.count))
        .collect();
    assert_eq!(
        rows,
        vec![
            ("f at /home/u/proj/app.py:3", 1001),
            (
                "JSONDecoder.raw_decode at /usr/lib/python3.11/json/decoder.py:353",
                3
            ),
            ("libc.so.6+0x1000", 2),
            ("k at /home/u/proj/app.py:40", 2),
            ("libc.so.6+0x2000", 1),
            ("<unknown>", 1),
        ]
    );
    assert_eq!(r.total_bytes, 10_064_000 + 3000 + 1000 + 200 + 50 + 7);
    assert_eq!(r.allocators["pymalloc_malloc"], 1006);
}

#[test]
fn top_by_size_shows_the_stack_with_the_most_bytes() {
    let v = to_json(&report(&python_capture(), 10));
    let top = &v["top_by_size"];
    // The bytearray's stack, with the calling lines of g and of the module.
    assert_eq!(
        top[0]["stack"],
        json!([
            frame("f", APP, 3),
            frame("g", APP, 7),
            frame("<module>", APP, 10)
        ])
    );
    assert_eq!(
        top[1]["stack"],
        json!([
            frame("JSONDecoder.raw_decode", DECODER, 353),
            frame("h", APP, 20),
            frame("<module>", APP, 12)
        ])
    );
    // Native frames without symbols: nulls.
    assert_eq!(top[2]["stack"], json!([unknown_frame()]));
    assert_eq!(
        top[3]["stack"],
        json!([
            frame("k", APP, 40),
            frame("r", APP, 31),
            frame("r", APP, 31),
            frame("r", APP, 31),
            frame("r", APP, 31),
            frame("r", APP, 31),
            frame("<module>", APP, 14)
        ])
    );
    assert_eq!(
        top[4]["stack"],
        json!([
            unknown_frame(),
            frame("g", APP, 7),
            frame("<module>", APP, 10)
        ])
    );
    assert_eq!(top[5]["stack"], json!([]));
    // The keys of before keep their meaning.
    assert_eq!(top[0]["location"], "f at /home/u/proj/app.py:3");
    assert_eq!(top[0]["function"], "f");
    assert_eq!(top[0]["file"], APP);
    assert_eq!(top[0]["line"], 3);
    assert_eq!(top[0]["bytes"], 10_064_000);
    assert_eq!(top[0]["count"], 1001);
}

#[test]
fn top_by_count_shows_the_stack_with_the_most_allocations() {
    let v = to_json(&report(&python_capture(), 10));
    let top = &v["top_by_count"];
    assert_eq!(top[0]["location"], "f at /home/u/proj/app.py:3");
    assert_eq!(
        top[0]["stack"],
        json!([
            frame("f", APP, 3),
            frame("h", APP, 20),
            frame("<module>", APP, 12)
        ])
    );
}

#[test]
fn representative_stacks_break_ties_by_the_other_measure_then_the_lower_id() {
    // One location (f at app.py:3) reached by three stacks: 2 × 50 from stack 3, 1 × 100 from
    // stack 2, 2 × 50 from stack 4 (same as stack 3: the lower id wins).
    let mut b = CaptureBuilder::new();
    let mut c = Chunk::new();
    c.alloc(Allocator::Malloc, 1, 0x10, 50, 4)
        .alloc(Allocator::Malloc, 2, 0x20, 50, 4)
        .alloc(Allocator::Malloc, 3, 0x30, 100, 2)
        .alloc(Allocator::Malloc, 4, 0x40, 50, 3)
        .alloc(Allocator::Malloc, 5, 0x50, 50, 3)
        .string(1, "f")
        .string(2, "a.py")
        .string(3, "g")
        .python_frame(1, 1, 2, 3)
        .python_frame(2, 3, 2, 7)
        .python_frame(3, 3, 2, 8)
        .python_frame(4, 3, 2, 9)
        .stack(12, 0, 2)
        .stack(13, 0, 3)
        .stack(14, 0, 4)
        .stack(2, 12, 1)
        .stack(3, 13, 1)
        .stack(4, 14, 1);
    b.events(1, 1, 0, &c);
    b.trailer(10);
    let v = to_json(&report(&b, 5));
    assert_eq!(v["top_by_size"][0]["bytes"], 300);
    assert_eq!(v["top_by_size"][0]["count"], 5);
    // Bytes tie at 100 for all three: more allocations wins, then the lower id (3 before 4).
    assert_eq!(
        v["top_by_size"][0]["stack"],
        json!([frame("f", "a.py", 3), frame("g", "a.py", 8)])
    );
    assert_eq!(
        v["top_by_count"][0]["stack"],
        json!([frame("f", "a.py", 3), frame("g", "a.py", 8)])
    );
}

#[test]
fn top_modules_by_bytes() {
    let r = report(&python_capture(), 10);
    let v = to_json(&r);
    assert_eq!(
        v["top_modules"],
        json!([
            // f's bytearray and pymalloc objects, k's, and the native frame called from g.
            {"module": "app", "file": APP, "bytes": 10_064_250, "count": 1004},
            {"module": "json.decoder", "file": DECODER, "bytes": 3000, "count": 3},
            {"module": "libc.so.6", "file": LIBC, "bytes": 1000, "count": 2},
            {"module": "<unknown>", "file": null, "bytes": 7, "count": 1},
        ])
    );
    // -n limits it like the other lists.
    let r = report(&python_capture(), 2);
    let names: Vec<&str> = r.top_modules.iter().map(|m| m.module.as_str()).collect();
    assert_eq!(names, vec!["app", "json.decoder"]);
    assert_eq!(r.top_by_size.len(), 2);
}

#[test]
fn a_native_program_has_native_modules() {
    let mut b = CaptureBuilder::new();
    let mut c = Chunk::new();
    c.alloc(Allocator::Malloc, 1, 0x10, 300, 1)
        .alloc(Allocator::Malloc, 2, 0x20, 200, 2)
        .alloc(Allocator::Malloc, 3, 0x30, 100, 3)
        .alloc(Allocator::Malloc, 4, 0x40, 1, 9)
        .native_frame(1, LIBC_BASE + 0x1234)
        .native_frame(2, 0x400_500)
        .native_frame(3, LIBC_BASE + 0x5678)
        .stack(1, 0, 1)
        .stack(2, 1, 2)
        // The innermost frame decides: libc called from the program.
        .stack(3, 2, 3);
    b.events(1, 1, 0, &c);
    let mut m = Chunk::new();
    libc_module(&mut m);
    m.module(
        0,
        "",
        b"",
        &[Segment {
            vaddr: 0x400_000,
            memsz: 0x1000,
            file_offset: 0,
        }],
    );
    b.meta(&m);
    b.trailer(10);
    let v = to_json(&report(&b, 5));
    assert_eq!(
        v["top_modules"],
        json!([
            {"module": "libc.so.6", "file": LIBC, "bytes": 400, "count": 2},
            {"module": "prog", "file": "/nonexistent/prog", "bytes": 200, "count": 1},
            {"module": "<unknown>", "file": null, "bytes": 1, "count": 1},
        ])
    );
    assert_eq!(v["top_by_size"][0]["location"], "libc.so.6+0x1234");
    assert_eq!(v["top_by_size"][0]["stack"], json!([unknown_frame()]));
}

#[test]
fn odd_tables_give_short_stacks_and_no_panic() {
    let mut b = CaptureBuilder::new();
    let mut c = Chunk::new();
    c.alloc(Allocator::PymallocMalloc, 1, 0x10, 25, 1) // 1 ↔ 2: a cycle
        .alloc(Allocator::PymallocMalloc, 2, 0x20, 5, 3) // its own parent
        .alloc(Allocator::PymallocMalloc, 3, 0x30, 30, 4) // a parent never defined
        .alloc(Allocator::PymallocMalloc, 4, 0x40, 40, 5) // a frame never defined, then stack 4
        .alloc(Allocator::PymallocMalloc, 5, 0x50, 50, 6) // strings never defined
        .alloc(Allocator::PymallocMalloc, 6, 0x60, 60, 99) // a stack never defined
        .string(1, "f")
        .string(2, "x.py")
        .python_frame(1, 1, 2, 1)
        .python_frame(2, 1, 2, 2)
        .python_frame(3, 77, 78, 0)
        .stack(1, 2, 1)
        .stack(2, 1, 2)
        .stack(3, 3, 1)
        .stack(4, 1234, 2)
        .stack(5, 4, 555)
        .stack(6, 0, 3);
    b.events(1, 1, 0, &c);
    b.trailer(10);
    let r = report(&b, 10);
    let rows: Vec<(&str, u64, u64)> = r
        .top_by_size
        .iter()
        .map(|l| (l.location.as_str(), l.bytes, l.count))
        .collect();
    assert_eq!(
        rows,
        vec![
            // Stacks 5, 6 and 99: no innermost frame known.
            ("<unknown>", 150, 3),
            ("f at x.py:1", 30, 2),
            ("f at x.py:2", 30, 1),
        ]
    );
    let v = to_json(&r);
    let top = &v["top_by_size"];
    assert_eq!(top[0]["stack"], json!([]));
    // The cycle ends before its first repeated stack.
    assert_eq!(
        top[1]["stack"],
        json!([frame("f", "x.py", 1), frame("f", "x.py", 2)])
    );
    assert_eq!(top[2]["stack"], json!([frame("f", "x.py", 2)]));
    let modules: Vec<(&str, Option<&str>, u64)> = r
        .top_modules
        .iter()
        .map(|m| (m.module.as_str(), m.file.as_deref(), m.bytes))
        .collect();
    // Stack 5 walks on to stack 4's Python frame (x.py); stack 6 is a Python frame whose file
    // string is missing, stack 99 has no frame.
    assert_eq!(
        modules,
        vec![("<unknown>", None, 110), ("x", Some("x.py"), 100)]
    );
}

#[test]
fn text_report_shows_callers_and_modules() {
    let p = python_capture().write("python-text");
    let out = Command::new(env!("CARGO_BIN_EXE_memtrace"))
        .args(["stats", "-n", "4"])
        .arg(&p)
        .output()
        .expect("memtrace runs");
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "  f at /home/u/proj/app.py:3\n      ← g at /home/u/proj/app.py:7\n      ← <module> at /home/u/proj/app.py:10\n",
        "  JSONDecoder.raw_decode at /usr/lib/python3.11/json/decoder.py:353\n      ← h at /home/u/proj/app.py:20\n      ← <module> at /home/u/proj/app.py:12\n",
        "  libc.so.6+0x1000\n   4. ",
        "  k at /home/u/proj/app.py:40\n      ← r at /home/u/proj/app.py:31\n      ← r at /home/u/proj/app.py:31\n      ← r at /home/u/proj/app.py:31\n      ← … 3 more frames\n\n",
        "Top 4 modules by bytes:\n",
        "json.decoder  (/usr/lib/python3.11/json/decoder.py)\n",
        "libc.so.6  (/nonexistent/lib/libc.so.6)\n",
        "9.6 MiB     1,004 allocations  app  (/home/u/proj/app.py)\n",
    ] {
        assert!(text.contains(needle), "{needle:?} not in:\n{text}");
    }
    // Callers are listed under the top locations by bytes only.
    let by_count = text
        .split("by number of allocations:")
        .nth(1)
        .and_then(|rest| rest.split("\n\n").next())
        .expect("the list by count");
    assert!(by_count.contains("allocations"), "{by_count}");
    assert!(!by_count.contains('←'), "{by_count}");

    let out = Command::new(env!("CARGO_BIN_EXE_memtrace"))
        .args(["stats", "--json", "-n", "1"])
        .arg(&p)
        .output()
        .expect("memtrace runs");
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(
        v["top_by_size"][0]["stack"][1],
        json!({"function": "g", "file": APP, "line": 7})
    );
    assert_eq!(
        v["top_modules"],
        json!([{"module": "app", "file": APP, "bytes": 10_064_250, "count": 1004}])
    );
}
