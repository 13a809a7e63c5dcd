"""Promises of the README that had no test: the IPython magic's -n/--top, --leaks, --native and
--no-html; the pytest plugin's --memtrace-top and its size units; a Tracker started from a
second thread; FileReader(include_startup=True)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from conftest import Env, checked, run

# Five lines of known sizes: the cell keeps 4,000,000 and 3,000,000, frees 6,000,000 and
# 2,000,000 and 1,000,000 before it ends (the peak holds the 6 MB one).
CELL = """
a = bytearray(4_000_000)
b = bytearray(3_000_000)
c = bytearray(6_000_000)
del c
d = bytearray(2_000_000)
e = bytearray(1_000_000)
del d, e
"""

MAGIC = """
import sys
from IPython.core.interactiveshell import InteractiveShell
ip = InteractiveShell.instance()
ip.run_line_magic("load_ext", "memtrace")
ip.run_cell_magic("memtrace", sys.argv[1], sys.argv[2])
"""


def magic(env: Env, tmp_path: Path, line: str) -> tuple[list[str], Path]:
    results = tmp_path / "results"
    r = run([env.python, "-c", MAGIC, f"-d {results} {line}", CELL], cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout.splitlines(), results


def top_sizes(lines: list[str]) -> list[tuple[int, str]]:
    out = []
    for line in lines:
        m = re.fullmatch(r" +[\d.]+ \w+ \((\d+) bytes\) in \d+: (.*)", line)
        if m:
            out.append((int(m.group(1)), m.group(2)))
    return out


def test_magic_top_and_no_html(env: Env, tmp_path: Path) -> None:
    lines, results = magic(env, tmp_path, "-n 2 --no-html")
    assert lines[0].startswith("memtrace: the cell's peak: "), lines
    top = top_sizes(lines)
    # -n 2: the two biggest lines at the peak (the 6 MB and the 4 MB), no more.
    assert [label for _, label in top] == [
        "<module> at <memtrace-cell>:4",
        "<module> at <memtrace-cell>:2",
    ], lines
    assert 6_000_001 <= top[0][0] < 6_010_000 and 4_000_001 <= top[1][0] < 4_010_000
    # --no-html: no page, no line saying one was written; the capture is kept.
    assert not any("wrote" in line for line in lines), lines
    assert not list(results.glob("*.html"))
    assert (results / "cell-1.bin").is_file()
    (tmp_path / "long").mkdir()
    lines, _ = magic(env, tmp_path / "long", "--top 4 --no-html")
    # --top 4: every line of the cell's at the peak (three), and not the magic's own frame,
    # which running the cell allocates in (it made a fourth line).
    assert [label for _, label in top_sizes(lines)] == [
        "<module> at <memtrace-cell>:4",
        "<module> at <memtrace-cell>:2",
        "<module> at <memtrace-cell>:3",
    ], lines


def test_magic_leaks(env: Env, tmp_path: Path) -> None:
    lines, results = magic(env, tmp_path, "--leaks")
    m = re.fullmatch(r"memtrace: the cell left 6\.7 MiB \((\d+) bytes\) live in \d+ allocations?", lines[0])
    assert m, lines
    assert 7_000_002 <= int(m.group(1)) < 7_100_000
    # Only what the cell kept: the 4 MB and the 3 MB, not the freed ones.
    labels = [label for size, label in top_sizes(lines) if size > 100_000]
    assert labels == ["<module> at <memtrace-cell>:2", "<module> at <memtrace-cell>:3"], lines
    assert lines[-1] == f"memtrace: wrote {results}/cell-1.html"
    page = (results / "cell-1.html").read_text()
    assert "<svg" in page and '"initial":{"view":"leaks"' in page


def test_magic_native(env: Env, tmp_path: Path) -> None:
    _, results = magic(env, tmp_path, "--native --no-html")
    cap = results / "cell-1.bin"
    meta = env.py(
        "import sys, json, memtrace\n"
        "r = memtrace.FileReader(sys.argv[1])\n"
        "rec = max(r.peak_records(), key=lambda x: x.size)\n"
        "print(json.dumps([r.metadata.native, rec.size, rec.python_stack()[:1],"
        " [f[0] for f in rec.native_stack()]]))",
        str(cap),
    )
    native, size, py, frames = json.loads(meta.stdout)
    assert native is True
    assert 6_000_001 <= size < 6_000_200
    assert py == [["<module>", "<memtrace-cell>", 4]]
    # Native frames: the allocator's callers in the interpreter, named.
    assert any(f.startswith("PyByteArray") or "bytearray" in f for f in frames), frames


PROJECT = """
import pytest

def keep():
    return bytearray(3_000_000)

@pytest.mark.limit_memory(2_900_000)
def test_int_bytes():
    assert keep()

@pytest.mark.limit_memory("2900000")
def test_str_bytes():
    assert keep()

@pytest.mark.limit_memory("2900000 B")
def test_b():
    assert keep()

@pytest.mark.limit_memory("2900 KB")
def test_kb():
    assert keep()

@pytest.mark.limit_memory("2900KiB")
def test_kib():
    assert keep()

@pytest.mark.limit_memory("2 MB")
def test_mb():
    assert keep()

@pytest.mark.limit_memory("2.5 MiB")
def test_mib():
    assert keep()

@pytest.mark.limit_memory("3 MB")
def test_mb_is_binary():
    assert keep()

@pytest.mark.limit_memory("0.003 GB")
def test_gb_is_binary():
    assert keep()

@pytest.mark.limit_memory("1 GiB")
def test_gib():
    assert keep()
"""

LIMITS = {
    "test_int_bytes": 2_900_000,
    "test_str_bytes": 2_900_000,
    "test_b": 2_900_000,
    "test_kb": 2900 * 1024,
    "test_kib": 2900 * 1024,
    "test_mb": 2 * 1024**2,
    "test_mib": int(2.5 * 1024**2),
}


def test_plugin_size_units_and_top(env: Env, tmp_path: Path) -> None:
    (tmp_path / "test_units.py").write_text(PROJECT)
    r = run(
        [env.python, "-m", "pytest", "-p", "no:cacheprovider", "--memtrace", "--memtrace-top",
         "3", "test_units.py"],
        cwd=tmp_path,
    )
    out = r.stdout
    assert r.returncode == 1, out + r.stderr
    # 3,000,000 bytes and a little: over each limit of LIMITS; under 3 MB, 0.003 GB and 1 GiB
    # only because those units are powers of 1024.
    assert re.search(r"^=+ 7 failed, 3 passed in ", out, re.M), out
    failed = set(re.findall(r"^FAILED test_units\.py::(\w+)", out, re.M))
    assert failed == set(LIMITS), out
    sections = re.split(r"^_{3,} (test_\w+) _{3,}$", out, flags=re.M)
    said = dict(zip(sections[1::2], sections[2::2]))
    for name, limit in LIMITS.items():
        m = re.search(r"Test was limited to [\d.]+ \w+ \((\d+) bytes\) but allocated", said[name])
        assert m, said[name]
        assert int(m.group(1)) == limit, name
    # --memtrace-top 3: three tests listed, no more.
    summary = out.split("memtrace: peak memory of the biggest tests", 1)[1].splitlines()[1:]
    listed = [line for line in summary if re.match(r" +\d+\.\d \w+  test_units\.py::", line)]
    assert len(listed) == 3, summary


SECOND_THREAD = """
import json, sys, threading
import memtrace

result = {}

def work():
    return bytearray(5_000_000)

def tracked():
    with memtrace.Tracker(sys.argv[1]):
        kept = work()
        started.set()
        stop.wait()
    result["len"] = len(kept)

started, stop = threading.Event(), threading.Event()
t = threading.Thread(target=tracked, name="tracking-thread")
t.start()
started.wait()
# A second tracker from the main thread while the first runs is refused.
try:
    memtrace.Tracker(sys.argv[2]).start()
    refused = None
except RuntimeError as e:
    refused = str(e)
stop.set()
t.join()
r = memtrace.FileReader(sys.argv[1])
peak = max(r.peak_records(), key=lambda x: x.size)
print(json.dumps(dict(refused=refused, size=peak.size, thread=peak.thread_name,
                      stack=peak.python_stack()[:2], complete=r.metadata.complete)))
"""


def test_tracker_started_from_a_second_thread(env: Env, tmp_path: Path) -> None:
    prog = tmp_path / "second.py"
    prog.write_text(SECOND_THREAD)
    r = run([env.python, prog, tmp_path / "a.bin", tmp_path / "b.bin"])
    assert r.returncode == 0, r.stdout + r.stderr
    out = json.loads(r.stdout)
    assert out["refused"], out
    assert not (tmp_path / "b.bin").exists()
    assert out["complete"] is True
    assert 5_000_001 <= out["size"] < 5_000_200
    assert out["thread"] == "tracking-thread"
    assert out["stack"] == [["work", str(prog), 8], ["tracked", str(prog), 12]]


def test_file_reader_include_startup(env: Env, tmp_path: Path) -> None:
    script = tmp_path / "s.py"
    script.write_text("kept = bytearray(10_000_000)\n")
    cap = tmp_path / "s.bin"
    checked([env.memtrace, "run", "-q", "-o", cap, script])
    plain = json.loads(checked([env.memtrace, "stats", "--json", cap]).stdout)
    full = json.loads(checked([env.memtrace, "stats", "--json", "--include-startup", cap]).stdout)
    code = (
        "import sys, json, memtrace\n"
        "out = {}\n"
        "for inc in (False, True):\n"
        "    r = memtrace.FileReader(sys.argv[1], include_startup=inc)\n"
        "    m = r.metadata\n"
        "    out[str(inc)] = [m.total_allocations, m.total_bytes, m.peak_bytes,"
        " sum(1 for e in r.all_records() if e.kind == 'alloc')]\n"
        "print(json.dumps(out))"
    )
    out = json.loads(env.py(code, str(cap)).stdout)
    without, with_ = out["False"], out["True"]
    assert without[:3] == [plain["total_allocations"], plain["total_bytes"], plain["peak_bytes"]]
    startup = plain["startup_bytes"]
    assert startup > 1_000_000, plain
    # The interpreter's start-up is counted in: more allocations, more bytes, the records too.
    assert with_[0] > without[0] and with_[3] > without[3], out
    assert with_[1] - without[1] >= startup, out
    assert with_[2] >= without[2], out
    # And agree with the reports' --include-startup.
    assert with_[:3] == [full["total_allocations"], full["total_bytes"], full["peak_bytes"]]
