"""Object types in the Python package: FileReader's `object_type` of records live at exit, at the
peak and of typed frees, and the pytest plugin's limit_leaks failure naming the leaked types with
counts and lines."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from conftest import Env, checked, run

# Two classes of known sizes (__slots__: one block of sys.getsizeof bytes each), kept to the end.
SCRIPT = """\
import sys
class Pair:
    __slots__ = ("left", "right")

class Single:
    __slots__ = ("a",)

class Burst:
    __slots__ = ("a", "b", "c")

kept = []
for i in range(1500):
    kept.append(Pair())
for i in range(800):
    kept.append(Single())
burst = [Burst() for i in range(5000)]
del burst
print(sys.getsizeof(Pair()), sys.getsizeof(Single()), sys.getsizeof(Burst()))
"""

TEST_FILE = """\
import pytest

_kept = []


class Blob:
    __slots__ = ("a",)


@pytest.mark.limit_leaks("1 KB")
def test_leaks_objects():
    for i in range(2000):
        _kept.append(Blob())
"""


def test_file_reader_gives_the_type_of_records_at_exit_at_the_peak_and_of_frees(env: Env, tmp_path: Path) -> None:
    script = tmp_path / "two.py"
    script.write_text(SCRIPT)
    capture = tmp_path / "two.bin"
    r = checked([env.memtrace, "run", "-q", "-o", capture, script])
    pair, single, burst = (int(w) for w in r.stdout.split())
    code = f"""
import json, memtrace
r = memtrace.FileReader({str(capture)!r})
leaked = {{}}
for rec in r.leaked_records():
    t = leaked.setdefault(str(rec.object_type), [0, 0, set()])
    t[0] += rec.n_allocations
    t[1] += rec.size
    t[2].add(rec.python_stack()[0][2] if rec.python_stack() else 0)
events = {{}}
for rec in r.all_records():
    if rec.kind == "alloc" and rec.object_type is not None:
        events[rec.object_type] = events.get(rec.object_type, 0) + 1
peak = {{}}
for rec in r.peak_records():
    t = peak.setdefault(str(rec.object_type), [0, 0, set()])
    t[0] += rec.n_allocations
    t[1] += rec.size
    t[2].add(rec.python_stack()[0][2] if rec.python_stack() else 0)
frees = {{}}
for rec in r.all_records():
    if rec.kind == "free" and rec.object_type is not None:
        frees[rec.object_type] = frees.get(rec.object_type, 0) + 1
print(json.dumps({{"leaked": {{k: [v[0], v[1], sorted(v[2])] for k, v in leaked.items()}},
                  "events": events, "frees": frees,
                  "peak": {{k: [v[0], v[1], sorted(v[2])] for k, v in peak.items()}}}}))
"""
    out = json.loads(env.py(code).stdout)
    assert out["leaked"]["__main__.Pair"] == [1500, 1500 * pair, [13]], out["leaked"]
    assert out["leaked"]["__main__.Single"] == [800, 800 * single, [15]], out["leaked"]
    # Records of blocks without a known object have none.
    assert "None" in out["leaked"]
    # Each allocation event whose block was live at exit carries the type.
    assert out["events"]["__main__.Pair"] == 1500
    assert out["events"]["__main__.Single"] == 800
    assert "__main__.Burst" not in out["leaked"]
    # At the peak (the burst's list built): the kept objects, typed by the walk at exit, and
    # the burst's, typed by their frees.
    assert out["peak"]["__main__.Pair"] == [1500, 1500 * pair, [13]], out["peak"]
    assert out["peak"]["__main__.Single"] == [800, 800 * single, [15]], out["peak"]
    assert out["peak"]["__main__.Burst"] == [5000, 5000 * burst, [16]], out["peak"]
    # Each free of a Burst names its type: the burst's 5,000 and the one the last line measures.
    assert out["frees"]["__main__.Burst"] == 5001, out["frees"]


def test_limit_leaks_names_the_leaked_types(env: Env, tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    test_file = project / "test_leak.py"
    test_file.write_text(TEST_FILE)
    size = int(env.py("import sys\nclass B:\n    __slots__ = ('a',)\nprint(sys.getsizeof(B()))")
               .stdout)
    environ = dict(os.environ)
    environ.pop("PYTEST_CURRENT_TEST", None)
    r = run([env.python, "-m", "pytest", "-p", "no:cacheprovider", "--memtrace", test_file.name],
            cwd=project, env=environ)
    assert r.returncode == 1, r.stdout + r.stderr
    bytes_ = 2000 * size
    m = re.search(
        r"Top leaked types \(the objects' own blocks, not the buffers they hold\):\n +\S+ \S+ \((\d+) bytes\) in (\d+) objects of test_leak\.Blob: "
        r"(.*)\n",
        r.stdout,
    )
    assert m, r.stdout
    assert int(m.group(1)) == bytes_
    assert int(m.group(2)) == 2000
    assert m.group(3) == f"test_leaks_objects at {test_file}:13"


# A class made in a function and freed (gc.collect) before a class made later, which CPython
# usually puts in the dead class's memory; both classes' objects are freed.
DEAD_CLASS = """\
import gc, sys
def phase():
    class Alpha:
        __slots__ = ("a",)
    alphas = [Alpha() for i in range(5000)]
    big = bytearray(4_000_000)
    return sys.getsizeof(alphas[0])
size = phase()
gc.collect()
class Beta:
    __slots__ = ("b",)
betas = [Beta() for i in range(10)]
del betas
print(size)
"""


def test_file_reader_names_a_freed_class_by_its_line_not_after_a_later_class(env: Env, tmp_path: Path) -> None:
    script = tmp_path / "dead.py"
    script.write_text(DEAD_CLASS)
    capture = tmp_path / "dead.bin"
    size = int(checked([env.memtrace, "run", "-q", "-o", capture, script]).stdout)
    code = f"""
import json, memtrace
r = memtrace.FileReader({str(capture)!r})
frees = {{}}
for rec in r.all_records():
    if rec.kind == "free" and rec.object_type is not None:
        frees[rec.object_type] = frees.get(rec.object_type, 0) + 1
peak = {{}}
for rec in r.peak_records():
    t = peak.setdefault(str(rec.object_type), [0, 0])
    t[0] += rec.n_allocations
    t[1] += rec.size
print(json.dumps({{"frees": frees, "peak": peak}}))
"""
    out = json.loads(env.py(code).stdout)
    dead = "<freed class of dead.py:3>"
    # Every Alpha freed when phase() returned (a block whose header its free could not read
    # names no type: within 1%).
    assert 4950 <= out["frees"].get(dead, 0) <= 5000, out["frees"]
    assert out["frees"]["__main__.Beta"] == 10, out["frees"]
    objects, bytes_ = out["peak"][dead]
    assert 4950 <= objects <= 5000 and bytes_ == objects * size, out["peak"]
    assert "__main__.Beta" not in out["peak"], out["peak"]
    # The command names them alike.
    stats = json.loads(checked([env.memtrace, "stats", "--json", capture]).stdout)
    row = next(r for r in stats["types"]["peak"] if r["type"] == dead)
    assert row["objects"] == objects, stats["types"]["peak"]
