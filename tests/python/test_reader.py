"""memtrace.FileReader on captures made by the packaged `memtrace run`."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from conftest import SUPPORT, Env, checked, run

SCRIPT = SUPPORT / "known.py"
PY = f"{sys.version_info.major}.{sys.version_info.minor}"


@pytest.fixture(scope="module")
def capture(env: Env, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """known.py's capture and the pid the script printed."""
    out = tmp_path_factory.mktemp("captures") / "known.bin"
    r = checked([env.memtrace, "run", "-q", "-o", out, SCRIPT])
    return out, int(r.stdout.strip())


def read(env: Env, capture: Path, code: str, **kw: object) -> object:
    """Runs `code` with `r` a FileReader of `capture`; returns what it put in `out` (JSON)."""
    prog = f"import json, memtrace\nr = memtrace.FileReader({str(capture)!r})\n{code}\nprint(json.dumps(out))"
    return json.loads(env.py(prog, **kw).stdout)


def test_metadata(env: Env, capture: tuple[Path, int]) -> None:
    path, pid = capture
    stats = json.loads(checked([env.memtrace, "stats", "--json", path]).stdout)
    meta = read(
        env,
        path,
        "m = r.metadata\nout = {k: getattr(m, k) for k in dir(m) if not k.startswith('_')}",
    )
    assert isinstance(meta, dict)
    assert meta["pid"] == pid
    assert meta["argv"][1:] == [str(SCRIPT)]
    assert meta["command"] == " ".join(meta["argv"])
    assert meta["python_version"] == PY
    assert (meta["native"], meta["python_allocators"], meta["follow_fork"]) == (False, True, False)
    assert meta["complete"] is True and meta["warnings"] == []
    for key in ("peak_bytes", "peak_allocations", "total_allocations", "total_bytes",
                "total_frees", "leaked_bytes", "leaked_allocations"):
        assert meta[key] == stats[key], key
    assert meta["duration_s"] == pytest.approx(stats["duration_s"])
    # The peak holds the bytearrays of 10 MB, 3 MB (the worker thread's) and 2 MB, and the
    # code the script's `import threading` loaded (some 0.7 MB in this environment's Python,
    # whose start-up did not import it).
    assert 15_000_003 <= meta["peak_bytes"] < 16_000_000


def test_peak_records(env: Env, capture: tuple[Path, int]) -> None:
    path, pid = capture
    out = read(
        env,
        path,
        "recs = list(r.peak_records())\n"
        "m = r.metadata\n"
        "out = dict(total=sum(x.size for x in recs), count=sum(x.n_allocations for x in recs),"
        " peak=m.peak_bytes, peak_count=m.peak_allocations,"
        " top=[dict(size=x.size, n=x.n_allocations, allocator=x.allocator, tid=x.tid,"
        " thread=x.thread_name, py=x.python_stack(), merged=x.merged_stack(),"
        " native=x.native_stack(), address=x.address, time=x.time) for x in recs[:2]])",
    )
    assert isinstance(out, dict)
    assert (out["total"], out["count"]) == (out["peak"], out["peak_count"])
    big, worker = out["top"]
    assert (big["size"], big["n"], big["allocator"]) == (10_000_001, 1, "pymalloc_realloc")
    assert big["tid"] == pid and big["thread"] is not None
    assert big["py"] == [["make", str(SCRIPT), 7], ["<module>", str(SCRIPT), 20]]
    assert big["merged"] == big["py"]
    assert big["native"] == []
    assert (big["address"], big["time"]) == (0, None)
    assert (worker["size"], worker["n"], worker["thread"]) == (3_000_001, 1, "worker")
    assert worker["tid"] != pid
    assert worker["py"][0] == ["worker", str(SCRIPT), 17]


def test_leaked_records(env: Env, capture: tuple[Path, int]) -> None:
    path, _ = capture
    out = read(
        env,
        path,
        "recs = list(r.leaked_records())\n"
        "out = dict(total=sum(x.size for x in recs), leaked=r.metadata.leaked_bytes,"
        " top=[x.size, x.python_stack()] if (x := recs[0]) else None)",
    )
    assert isinstance(out, dict)
    assert out["total"] == out["leaked"]
    assert out["top"] == [2_000_001, [["<module>", str(SCRIPT), 25]]]


def test_temporary_records(env: Env, capture: tuple[Path, int]) -> None:
    path, _ = capture
    stats = json.loads(checked([env.memtrace, "stats", "--temporary", "--json", path]).stdout)
    out = read(
        env,
        path,
        "recs = list(r.temporary_records())\n"
        f"line = [x for x in recs if x.python_stack()[:1] == [('churn', {str(SCRIPT)!r}, 12)]]\n"
        "out = dict(total=sum(x.size for x in recs), count=sum(x.n_allocations for x in recs),"
        " line=[(x.size, x.n_allocations) for x in line])",
    )
    assert isinstance(out, dict)
    assert (out["total"], out["count"]) == (stats["view_bytes"], stats["view_allocations"])
    # Each bytearray's buffer is freed before the next allocation: 1000 temporaries.
    assert out["line"] == [[5_001_000, 1000]]


def test_all_records(env: Env, capture: tuple[Path, int]) -> None:
    path, _ = capture
    out = read(
        env,
        path,
        "allocs = frees = size = 0\nbig = []\n"
        "for e in r.all_records():\n"
        "    if e.kind == 'alloc':\n"
        "        allocs += 1; size += e.size\n"
        "    else:\n"
        "        frees += 1\n"
        "    if e.size == 10_000_001 or (big and e.kind == 'free' and e.address == big[0][1]):\n"
        "        big.append((e.kind, e.address, e.allocator, e.time, e.python_stack()))\n"
        "m = r.metadata\n"
        "out = dict(allocs=allocs, size=size, frees=frees, big=big,"
        " total=(m.total_allocations, m.total_bytes), duration=m.duration_s)",
    )
    assert isinstance(out, dict)
    assert [out["allocs"], out["size"]] == out["total"]
    assert out["frees"] > 1000
    (kind, address, allocator, time, stack), freed = out["big"]
    assert (kind, allocator) == ("alloc", "pymalloc_realloc")
    assert 0 < time <= out["duration"]
    assert stack == [["make", str(SCRIPT), 7], ["<module>", str(SCRIPT), 20]]
    assert freed[:3] == ["free", address, "pymalloc_free"]
    assert freed[3] > time



def test_one_iterator_drained_by_threads(env: Env, tmp_path: Path) -> None:
    # Threads sharing one all_records() iterator each get their part, every event once. The
    # iterator's lock was waited for with the GIL held, by a thread the holder (waiting for the
    # GIL after its next batch) needed: both hung for good.
    script = tmp_path / "many.py"
    script.write_text("keep = [bytearray(100) for _ in range(200_000)]\n")
    cap = tmp_path / "many.bin"
    checked([env.memtrace, "run", "-q", "-o", cap, script])
    out = read(
        env,
        cap,
        "import threading\nit = r.all_records()\ncounts = []\n"
        "def drain():\n"
        "    counts.append(sum(1 for _ in it))\n"
        "ts = [threading.Thread(target=drain) for _ in range(4)]\n"
        "for t in ts: t.start()\n"
        "for t in ts: t.join()\n"
        "alone = sum(1 for _ in r.all_records())\n"
        "out = dict(shared=sum(counts), alone=alone, parts=len(counts))",
        timeout=300,
    )
    assert isinstance(out, dict)
    assert out["parts"] == 4
    assert out["shared"] == out["alone"]
    assert out["alone"] > 400_000


def test_reading_leaves_no_thread_behind(env: Env, tmp_path: Path) -> None:
    # The reporter's pool of decoding threads stayed for good after a read: the program was
    # multi-threaded from then on, and each later os.fork() warned on Python 3.12 and later.
    script = tmp_path / "many.py"
    script.write_text("keep = [bytearray(100) for _ in range(200_000)]\n")
    cap = tmp_path / "many.bin"
    checked([env.memtrace, "run", "-q", "-o", cap, script])
    out = read(
        env,
        cap,
        "import os\n"
        "tasks = lambda: len(os.listdir('/proc/self/task'))\n"
        "before = tasks()\n"
        "peak = sum(x.size for x in r.peak_records())\n"
        "leaked = sum(x.size for x in r.leaked_records())\n"
        "events = sum(1 for _ in r.all_records())\n"
        "out = dict(before=before, after=tasks(), peak=peak, events=events)",
    )
    assert isinstance(out, dict)
    assert out["after"] == out["before"] == 1, out
    assert out["peak"] >= 20_000_000 and out["events"] > 400_000, out


def test_a_reader_is_a_context_manager(env: Env, capture: tuple[Path, int]) -> None:
    # As memray's FileReader: `with FileReader(p) as r:`, and close(); a closed reader's
    # records are refused as a closed file's reads are.
    path, _ = capture
    out = read(
        env,
        path,
        "with memtrace.FileReader(r.path) as inner:\n"
        "    peak = inner.metadata.peak_bytes\n"
        "    n = len(list(inner.peak_records()))\n"
        "refused = []\n"
        "for f in (lambda: inner.metadata, inner.peak_records, inner.leaked_records,"
        " inner.all_records, lambda: inner.temporary_records(1), lambda: inner.labels):\n"
        "    try:\n"
        "        f()\n"
        "    except ValueError as e:\n"
        "        refused.append(str(e))\n"
        "r.close()\n"
        "out = dict(peak=peak, n=n, closed=[inner.closed, r.closed], refused=refused)",
    )
    assert isinstance(out, dict)
    assert out["peak"] > 15_000_000 and out["n"] > 0, out
    assert out["closed"] == [True, True]
    assert out["refused"] == ["I/O operation on a closed FileReader"] * 6


def test_a_temporary_threshold_out_of_range_is_refused(env: Env, capture: tuple[Path, int]) -> None:
    # As --temporary-threshold takes it: 0 was read as 1, and 2**63 accepted; a negative
    # number or one past 64 bits was an OverflowError.
    path, _ = capture
    out = read(
        env,
        path,
        "refused = []\n"
        "for n in (0, -1, 1_000_001, 2**63, 2**70, -2**70):\n"
        "    try:\n"
        "        r.temporary_records(n)\n"
        "    except ValueError as e:\n"
        "        refused.append(str(e))\n"
        "out = dict(refused=refused, one=len(list(r.temporary_records(1))) >= 0)",
    )
    assert isinstance(out, dict)
    assert len(out["refused"]) == 6, out
    assert all(e.startswith("threshold must be from 1 to 1000000") for e in out["refused"]), out


def test_write_flamegraph_errors_are_the_python_ones(env: Env, capture: tuple[Path, int], tmp_path: Path) -> None:
    # A missing capture was a ValueError; writing over the capture named the command's -o.
    path, _ = capture
    code = (
        "import sys, memtrace\n"
        "for args in [(sys.argv[1], sys.argv[2]), (sys.argv[3], sys.argv[3])]:\n"
        "    try:\n"
        "        memtrace.write_flamegraph(*args)\n"
        "    except Exception as e:\n"
        "        print(type(e).__name__, 'with -o' in str(e))\n"
    )
    r = run([env.python, "-c", code, tmp_path / "missing.bin", tmp_path / "p.html", path])
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.splitlines() == ["FileNotFoundError False", "ValueError False"]
    assert not (tmp_path / "p.html").exists()


def test_event_times_follow_pauses(env: Env, tmp_path: Path) -> None:
    """An event after a pause has its own time, not that of the burst before it (a thread that
    records alone reuses its last clock reading only while the kernel's coarse clock stands
    still: the tracker's clock.rs)."""
    script = tmp_path / "pauses.py"
    script.write_text(
        "import time\n"
        "burst = [bytearray(1000) for _ in range(2000)]\n"
        "time.sleep(0.3)\n"
        "big = bytearray(10_000_000)\n"
        "time.sleep(0.3)\n"
        "del big\n"
    )
    capture = tmp_path / "pauses.bin"
    checked([env.memtrace, "run", "-q", "-o", capture, script])
    out = read(
        env,
        capture,
        "burst = []\nbig = []\n"
        "for e in r.all_records():\n"
        "    if e.kind == 'alloc' and e.size == 1001:\n"
        "        burst.append(e.time)\n"
        "    if e.size == 10_000_001 or (big and e.kind == 'free' and e.address == big[0][1]):\n"
        "        big.append((e.kind, e.address, e.time))\n"
        "out = dict(burst=[len(burst), max(burst)], big=big, duration=r.metadata.duration_s)",
    )
    assert isinstance(out, dict)
    count, burst_end = out["burst"]
    assert count == 2000
    (kind, _, allocated), (freed_kind, _, freed) = out["big"]
    assert (kind, freed_kind) == ("alloc", "free")
    assert allocated - burst_end >= 0.29, out
    assert freed - allocated >= 0.29, out
    assert freed <= out["duration"], out

def test_native_capture(env: Env, tmp_path: Path) -> None:
    out = tmp_path / "native.bin"
    checked([env.memtrace, "run", "-q", "--native", "-o", out, SCRIPT])
    res = read(
        env,
        out,
        "x = next(iter(r.peak_records()))\n"
        "out = dict(native=r.metadata.native, size=x.size, n=x.native_stack(),"
        " m=x.merged_stack(), p=x.python_stack())",
    )
    assert isinstance(res, dict)
    assert res["native"] is True and res["size"] == 10_000_001
    functions = [f[0] for f in res["n"]]
    assert any(f.startswith("_PyEval_EvalFrame") for f in functions)
    # Merged: the Python frames stand where the evaluation loop ran them.
    merged = [tuple(f) for f in res["m"]]
    assert ("make", str(SCRIPT), 7) in merged
    at = merged.index(("make", str(SCRIPT), 7))
    assert merged[at + 1] == ("<module>", str(SCRIPT), 20)
    assert not merged[at - 1][0].startswith("_PyEval_EvalFrame")
    assert res["p"] == [["make", str(SCRIPT), 7], ["<module>", str(SCRIPT), 20]]


def test_errors(env: Env, capture: tuple[Path, int], tmp_path: Path) -> None:
    path, _ = capture
    data = path.read_bytes()
    (tmp_path / "short.bin").write_bytes(data[:10])
    (tmp_path / "text.bin").write_bytes(b"not a capture at all, just some text\n" * 10)
    (tmp_path / "cut.bin").write_bytes(data[: len(data) // 3])
    os.mkfifo(tmp_path / "fifo")
    code = (
        "import memtrace, sys\n"
        "for name in sys.argv[1:]:\n"
        "    try:\n"
        "        m = memtrace.FileReader(name).metadata\n"
        "        print('ok', m.complete, len(m.warnings) > 0)\n"
        "    except Exception as e:\n"
        "        print(type(e).__name__, isinstance(e, ValueError), e)\n"
    )
    names = [tmp_path / n for n in ("missing.bin", "short.bin", "text.bin", "cut.bin", "fifo")]
    # Nothing writes into the FIFO: opening it for reading would wait forever.
    r = run([env.python, "-c", code, *names, tmp_path], timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        # As open() raises it: errno, strerror and filename.
        f"FileNotFoundError False [Errno 2] No such file or directory: '{tmp_path}/missing.bin'",
        f"CaptureError True {tmp_path}/short.bin: a memtrace capture cut short inside its header (10 bytes)",
        f"CaptureError True {tmp_path}/text.bin: not a memtrace capture (bad magic number)",
        # A copy cut short keeps its trailer (at the file's start) but not every record it counts.
        "ok False True",
        f"OSError False {tmp_path}/fifo: is not a regular file, not a capture file",
        f"IsADirectoryError False {tmp_path}: is a directory, not a capture file",
    ]
    assert "panicked" not in r.stderr
    # A path given as bytes, as open() takes it (it was refused: "not an instance of 'str'").
    as_bytes = read(env, path, f"out = memtrace.FileReader({os.fsencode(path)!r}).metadata.pid")
    assert as_bytes == capture[1]
    # A NUL in the name is refused as open() refuses it (it read "x y: cannot read the file").
    r = run([env.python, "-c", "import memtrace\ntry:\n    memtrace.FileReader('x\\0y')\n"
             "except ValueError as e:\n    print(e)\n"])
    assert r.stdout.strip() == "embedded null byte", r.stdout + r.stderr


def test_an_aggregated_capture(env: Env, tmp_path: Path) -> None:
    """`memtrace run --aggregate`: the same peak and records as a full capture of the script;
    what it does not record is one line (CaptureError)."""
    agg = tmp_path / "agg.bin"
    checked([env.memtrace, "run", "-q", "--aggregate", "-o", agg, SCRIPT])
    out = read(
        env,
        agg,
        "recs = list(r.peak_records())\n"
        "m = r.metadata\n"
        "errors = []\n"
        "for f in (r.temporary_records, r.all_records):\n"
        "    try:\n"
        "        f()\n"
        "    except memtrace.CaptureError as e:\n"
        "        errors.append(str(e))\n"
        "out = dict(total=sum(x.size for x in recs), count=sum(x.n_allocations for x in recs),"
        " peak=m.peak_bytes, peak_count=m.peak_allocations, errors=errors,"
        " leaked=sum(x.size for x in r.leaked_records()), leaked_bytes=m.leaked_bytes,"
        " top=[dict(size=x.size, n=x.n_allocations, py=x.python_stack()) for x in recs[:2]])",
    )
    assert isinstance(out, dict)
    assert (out["total"], out["count"]) == (out["peak"], out["peak_count"])
    assert out["leaked"] == out["leaked_bytes"]
    assert 15_000_003 <= out["peak"] < 16_000_000
    # One record per stack and thread (no allocator kept): the bytearray's buffer and its
    # object, allocated at the same line, are one record of two allocations.
    big, worker = out["top"]
    assert big["n"] == 2 and 10_000_001 < big["size"] < 10_000_200
    assert big["py"] == [["make", str(SCRIPT), 7], ["<module>", str(SCRIPT), 20]]
    assert 3_000_001 < worker["size"] < 3_000_200
    assert len(out["errors"]) == 2
    for e in out["errors"]:
        assert "not recorded in an aggregated capture" in e and "\n" not in e
    # The interpreter's start-up is not in the sums: asked for, one line, as the CLI says.
    prog = (
        "import memtrace\n"
        "try:\n"
        f"    memtrace.FileReader({str(agg)!r}, include_startup=True)\n"
        "    print('read')\n"
        "except memtrace.CaptureError as e:\n"
        "    print(e)"
    )
    refused = env.py(prog).stdout
    assert "include_startup=True" in refused and "not recorded in an aggregated capture" in refused
    assert refused.count("\n") == 1


def test_labels_sampling_and_mode_are_attributes(
    env: Env, capture: tuple[Path, int], tmp_path: Path
) -> None:
    """`FileReader.labels`, `.sample_bytes`, `.sampled`, `.aggregated`, `.memory_limit`: what
    the run stored, exactly."""
    code = (
        "out = dict(labels=r.labels, n=r.sample_bytes, sampled=r.sampled,"
        " aggregated=r.aggregated, limit=r.memory_limit, keys=list(r.labels))"
    )
    sampled = tmp_path / "sampled.bin"
    checked([env.memtrace, "run", "-q", "--label", "service=api", "--label", "version=1.4",
             "--sample-bytes", "512K", "-o", sampled, SCRIPT])
    out = read(env, sampled, code)
    assert isinstance(out, dict)
    # Temporary allocations cannot be told from samples: one line, as the reports say it.
    refused = read(
        env,
        sampled,
        "try:\n    r.temporary_records()\n    out = 'read'\n"
        "except memtrace.CaptureError as e:\n    out = str(e)",
    )
    assert isinstance(refused, str)
    assert "temporary allocations cannot be told in a sampled capture" in refused
    assert "\n" not in refused
    assert out["labels"] == {"service": "api", "version": "1.4"}
    assert out["keys"] == ["service", "version"]
    assert (out["n"], out["sampled"], out["aggregated"]) == (524_288, True, False)
    stats = json.loads(checked([env.memtrace, "stats", "--json", sampled]).stdout)
    assert out["limit"] == stats["memory_limit"]

    full = read(env, capture[0], code)
    assert isinstance(full, dict)
    assert (full["labels"], full["n"], full["sampled"], full["aggregated"]) == ({}, 0, False, False)

    # all_records() of a sampled capture: each sample with the size asked for, and the bytes
    # it stands for as its weight (requests of half the period or more and mappings are all
    # recorded: their own size); the weights add up to the reports' estimate.
    records = (
        "allocs = [x for x in r.all_records() if x.kind == 'alloc']\n"
        "out = dict(weights=sum(x.weight for x in allocs), sizes=sorted({x.size for x in allocs}),"
        " light=sum(1 for x in allocs if x.allocator != 'mmap' and x.size < r.sample_bytes // 2"
        " and x.weight != r.sample_bytes),"
        " heavy=sum(1 for x in allocs if x.size >= r.sample_bytes // 2 and x.weight != x.size))"
    )
    out = read(env, sampled, records)
    assert isinstance(out, dict)
    assert out["weights"] == stats["total_bytes"]
    # The script's 10 MB, 3 MB and 2 MB are always sampled, at their own size.
    assert {10_000_000, 3_000_000, 2_000_000} <= {s - s % 1000 for s in out["sizes"]}
    assert max(out["sizes"]) < 10_001_000
    assert (out["light"], out["heavy"]) == (0, 0)
    out = read(env, capture[0], records.replace("x.weight != r.sample_bytes", "x.weight != x.size"))
    assert isinstance(out, dict)
    assert (out["light"], out["heavy"]) == (0, 0)
    full_stats = json.loads(checked([env.memtrace, "stats", "--json", capture[0]]).stdout)
    assert out["weights"] == full_stats["total_bytes"]

    # The records live at the peak count the allocations their samples stand for, as the
    # reports do (they counted the samples: a sampled block of 100 bytes stands for some 5,000
    # allocations at 512 KiB): 200,000 small objects (one block each) live together.
    small = tmp_path / "small.py"
    small.write_text("keep = [bytes(60) for _ in range(200_000)]\n")
    small_cap = tmp_path / "small.bin"
    checked([env.memtrace, "run", "-q", "--sample-bytes", "512K", "-o", small_cap, small],
            env={**os.environ, "MEMTRACE_SAMPLE_SEED": "5"})
    peak = (
        "rs = list(r.peak_records())\n"
        "out = dict(n=sum(x.n_allocations for x in rs), b=sum(x.size for x in rs))"
    )
    out = read(env, small_cap, peak)
    assert isinstance(out, dict)
    small_stats = json.loads(checked([env.memtrace, "stats", "--json", small_cap]).stdout)
    assert (out["n"], out["b"]) == (small_stats["peak_allocations"], small_stats["peak_bytes"])
    assert 140_000 < out["n"] < 260_000, out
    assert small_stats["peak_samples"] < 200, small_stats

    agg = tmp_path / "agg.bin"
    checked([env.memtrace, "run", "-q", "--aggregate", "--label", "k=v", "-o", agg, SCRIPT])
    out = read(env, agg, code)
    assert isinstance(out, dict)
    assert (out["labels"], out["n"], out["sampled"], out["aggregated"]) == ({"k": "v"}, 0, False, True)
