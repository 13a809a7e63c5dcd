"""Process families from Python: Tracker(follow_fork=True) follows spawned children (a
multiprocessing spawn pool's workers are tracked as Python runs), and the pytest plugin's
limit_memory applies to the combined peak of a test's processes."""

from __future__ import annotations

import json
import re
from pathlib import Path

from conftest import Env, checked, run

WORKER = '''\
import sys


def work(n):
    data = b"\\0" * n
    return len(data)
'''

POOL = '''\
import multiprocessing as mp
import sys

import memtrace
import worker

if __name__ == "__main__":
    with memtrace.Tracker(sys.argv[1], follow_fork=True):
        ctx = mp.get_context("spawn")
        pool = ctx.Pool(1)
        print(pool.map(worker.work, [7_654_321]))
        pool.close()
        pool.join()
'''


def test_a_tracker_follows_spawned_python_children(env: Env, tmp_path: Path) -> None:
    (tmp_path / "worker.py").write_text(WORKER)
    (tmp_path / "pool.py").write_text(POOL)
    capture = tmp_path / "out.bin"
    r = run([env.python, "pool.py", capture], cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout == "[7654321]\n"
    stats = json.loads(checked([env.memtrace, "stats", "--json", capture]).stdout)
    children = [p for p in stats["processes"][1:] if p["tracked"]]
    assert children, stats["processes"]
    found = []
    for child in children:
        s = json.loads(
            checked([env.memtrace, "stats", "--json", "--pid", str(child["pid"]), capture]).stdout
        )
        found += [
            loc for loc in s["top_by_size"] if loc["function"] == "work" and loc["line"] == 5
        ]
    assert [(f["bytes"], f["count"]) for f in found] == [(7_654_321 + 33, 1)], found
    # The environment is the program's again after stop().
    r = run(
        [env.python, "-c",
         "import os, sys, memtrace\n"
         "before = dict(os.environ)\n"
         "with memtrace.Tracker(sys.argv[1], follow_fork=True):\n"
         "    assert 'LD_PRELOAD' in os.environ\n"
         "print(dict(os.environ) == before)\n",
         tmp_path / "env.bin"],
    )
    assert r.stdout == "True\n", r.stdout + r.stderr


FORK_AFTER_CHDIR = '''\
import os
import sys

import memtrace

os.chdir(sys.argv[1])
with memtrace.Tracker("rel.bin", follow_fork=True):
    os.chdir(sys.argv[2])
    pid = os.fork()
    if pid == 0:
        block = bytearray(7_654_321)
        os._exit(0)
    os.waitpid(pid, 0)
print(sorted(os.listdir(sys.argv[1])) == ["rel.bin", f"rel.bin.{pid}"], os.listdir(sys.argv[2]))
'''


def test_a_forked_child_s_capture_is_beside_a_relative_one_after_a_chdir(
    env: Env, tmp_path: Path
) -> None:
    # The child named its capture from the directory it was in: the family lost it.
    start, other = tmp_path / "start", tmp_path / "other"
    start.mkdir()
    other.mkdir()
    (tmp_path / "fork.py").write_text(FORK_AFTER_CHDIR)
    r = run([env.python, tmp_path / "fork.py", start, other])
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout == "True []\n"
    stats = json.loads(checked([env.memtrace, "stats", "--json", start / "rel.bin"]).stdout)
    assert len(stats["processes"]) == 2, stats["processes"]
    child = stats["processes"][1]
    s = json.loads(
        checked([env.memtrace, "stats", "--json", "--pid", str(child["pid"]), start / "rel.bin"]).stdout
    )
    sizes = [loc["bytes"] for loc in s["top_by_size"] if loc["line"] == 11]
    assert sizes and 7_654_321 <= sizes[0] < 7_654_500, s["top_by_size"]


PROJECT = '''\
import multiprocessing as mp

import pytest


def hold(barrier):
    block = b"\\0" * 20_000_000
    barrier.wait()
    barrier.wait()
    del block


@pytest.mark.limit_memory("30 MB")
def test_two_workers():
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(2)
    kids = [ctx.Process(target=hold, args=(barrier,)) for _ in range(2)]
    for k in kids:
        k.start()
    for k in kids:
        k.join()
'''


def test_limit_memory_applies_to_the_combined_peak(env: Env, tmp_path: Path) -> None:
    # Each worker holds 20 MB, under the 30 MB limit; both at once do not fit.
    (tmp_path / "test_pool.py").write_text(PROJECT)
    r = run(
        [env.python, "-m", "pytest", "-p", "no:cacheprovider", "--memtrace", "test_pool.py"],
        cwd=tmp_path,
    )
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    assert "FAILED test_pool.py::test_two_workers" in out
    assert "Test was limited to 30.0 MiB (31457280 bytes) but allocated" in out
    assert "(the combined peak of its processes: pid " in out
    assert not list(tmp_path.glob("*.bin*")), "captures are removed"


FORKING_TEST = '''\
import os


def test_fork_holds():
    to_parent, to_child = os.pipe(), os.pipe()
    pid = os.fork()
    if pid == 0:
        kept = [bytearray(1_000_000) for _ in range(20)]
        os.write(to_parent[1], b"x")
        os.read(to_child[0], 1)
        os._exit(0)
    os.read(to_parent[0], 1)
    mine = [bytearray(2_000_000) for _ in range(5)]
    os.write(to_child[1], b"y")
    os.waitpid(pid, 0)
    del mine
'''


def test_the_summary_counts_the_allocations_of_the_combined_peak(env: Env, tmp_path: Path) -> None:
    # The summary paired the family's combined peak bytes with the root process's own count
    # (30,001,209 bytes "in 2 allocations" where the family held 25 blocks then).
    (tmp_path / "test_fork.py").write_text(FORKING_TEST)
    r = run(
        [env.python, "-m", "pytest", "-p", "no:cacheprovider", "--memtrace",
         "--memtrace-bin-dir", "kept", "test_fork.py"],
        cwd=tmp_path,
    )
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    line = next(l for l in out.splitlines() if "test_fork_holds" in l and "bytes in" in l)
    m = re.search(r"\((\d+) bytes in (\d+) allocations?\)", line)
    assert m, line
    captures = sorted((tmp_path / "kept").glob("*.bin"))
    assert len(captures) == 1, captures
    tree = json.loads(checked([env.memtrace, "tree", "--json", captures[0]]).stdout)
    assert int(m.group(1)) == tree["tree"]["bytes"], (line, tree["title"])
    assert int(m.group(2)) == tree["tree"]["allocations"], (line, tree["title"])
    # The child's 20 blocks and the parent's 5 were all live at the combined peak.
    assert int(m.group(2)) >= 25 and int(m.group(1)) >= 30_000_000, line
