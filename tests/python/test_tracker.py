"""memtrace.Tracker inside a Python process that memtrace run did not start (no preloading)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import Env, run


PROGRAM = '''\
import json, sys
import memtrace

def work():
    return bytearray(10_000_000)

with memtrace.Tracker(sys.argv[1]):
    data = work()
    del data
    kept = bytearray(3_000_000)

r = memtrace.FileReader(sys.argv[1])
m = r.metadata
peak = list(r.peak_records())
leaks = list(r.leaked_records())
print(json.dumps(dict(
    peak=m.peak_bytes, leaked=m.leaked_bytes,
    top=[peak[0].size, peak[0].n_allocations, peak[0].python_stack()[:2]],
    leak=[leaks[0].size, leaks[0].python_stack()[:1]],
)))
'''


def test_exact_counts_in_process(env: Env, tmp_path: Path) -> None:
    prog = tmp_path / "prog.py"
    prog.write_text(PROGRAM)
    r = run([env.python, prog, tmp_path / "out.bin"])
    assert r.returncode == 0, r.stdout + r.stderr
    out = json.loads(r.stdout)
    assert 10_000_001 <= out["peak"] < 10_100_000
    assert out["top"] == [10_000_001, 1, [["work", str(prog), 5], ["<module>", str(prog), 8]]]
    assert 3_000_001 <= out["leaked"] < 3_100_000
    assert out["leak"] == [3_000_001, [["<module>", str(prog), 10]]]
    # Tracking started in a running interpreter: no start-up of its own to speak of.
    stats = json.loads(run([env.memtrace, "stats", "--json", tmp_path / "out.bin"]).stdout)
    assert stats["startup_bytes"] is None, stats["startup_bytes"]
    text = run([env.memtrace, "stats", tmp_path / "out.bin"]).stdout
    assert "Start-up:" not in text, text


def test_nested_and_existing_captures_are_refused(env: Env, tmp_path: Path) -> None:
    code = (
        "import sys, memtrace\n"
        "a, b = sys.argv[1], sys.argv[2]\n"
        "with memtrace.Tracker(a):\n"
        "    try:\n"
        "        memtrace.Tracker(b).start()\n"
        "    except RuntimeError as e:\n"
        "        print('nested:', e)\n"
        "try:\n"
        "    memtrace.Tracker(a).start()\n"
        "except RuntimeError as e:\n"
        "    print('exists:', e)\n"
    )
    r = run([env.python, "-c", code, tmp_path / "a.bin", tmp_path / "b.bin"])
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 2 and lines[0].startswith("nested: ") and lines[1].startswith("exists: ")
    assert not (tmp_path / "b.bin").exists()


def test_a_capture_file_that_cannot_be_made_is_an_os_error(env: Env, tmp_path: Path) -> None:
    # As open()'s errors: `except OSError` catches them, with errno and filename (they were
    # RuntimeErrors only, and a directory's was "File exists").
    code = (
        "import errno, sys, memtrace\n"
        "for p in sys.argv[1:]:\n"
        "    try:\n"
        "        memtrace.Tracker(p).start()\n"
        "    except OSError as e:\n"
        "        print(errno.errorcode[e.errno], e.filename == p, isinstance(e, RuntimeError))\n"
    )
    there = tmp_path / "there.bin"
    there.write_bytes(b"mine")
    r = run([env.python, "-c", code, tmp_path / "no" / "x.bin", tmp_path, there])
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.splitlines() == ["ENOENT True True", "EISDIR True True", "EEXIST True True"]
    assert there.read_bytes() == b"mine"
    # FileReader's errors carry the number too.
    code = (
        "import errno, sys, memtrace\n"
        "for p in sys.argv[1:]:\n"
        "    try:\n"
        "        memtrace.FileReader(p)\n"
        "    except OSError as e:\n"
        "        print(type(e).__name__, errno.errorcode[e.errno])\n"
    )
    r = run([env.python, "-c", code, tmp_path / "missing.bin", tmp_path])
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.splitlines() == ["FileNotFoundError ENOENT", "IsADirectoryError EISDIR"]


def test_labels_are_stored_and_checked(env: Env, tmp_path: Path) -> None:
    capture = tmp_path / "labelled.bin"
    code = (
        "import sys, memtrace\n"
        "with memtrace.Tracker(sys.argv[1], labels={'service': 'api', 'version': '1.4'}):\n"
        "    x = bytearray(10**6)\n"
        "for bad in ({'': 'x'}, {'a b': 'x'}, {'k': 'a\\nb'}, {'empty': ''}):\n"
        "    try:\n"
        "        memtrace.Tracker(sys.argv[1] + '.bad', labels=bad)\n"
        "    except ValueError as e:\n"
        "        print('refused', e)\n"
    )
    r = env.py(code, str(capture))
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("refused") == 4, r.stdout
    stats = json.loads(run([env.memtrace, "stats", "--json", capture]).stdout)
    assert stats["labels"] == [["service", "api"], ["version", "1.4"]]


def test_an_aggregated_capture_in_process(env: Env, tmp_path: Path) -> None:
    """Tracker(aggregate=True): the figures of test_exact_counts_in_process, with the
    bytearray's object and its buffer (one stack, one thread) in one record of two
    allocations; object types with it are refused in one line."""
    prog = tmp_path / "prog.py"
    prog.write_text(
        PROGRAM.replace("memtrace.Tracker(sys.argv[1])", "memtrace.Tracker(sys.argv[1], aggregate=True)")
        + "print(r.aggregated, bytearray.__basicsize__, peak[0].n_allocations, leaks[0].n_allocations)\n"
        "try:\n"
        "    memtrace.Tracker(sys.argv[1] + '.types', aggregate=True, object_types=True)\n"
        "except ValueError as e:\n"
        "    print(e)\n"
    )
    r = run([env.python, prog, tmp_path / "out.bin"])
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    out = json.loads(lines[0])
    aggregated, obj, n_peak, n_leak = lines[1].split()
    assert (aggregated, n_peak, n_leak) == ("True", "2", "2")
    obj_size = int(obj)
    assert 10_000_001 + obj_size <= out["peak"] < 10_100_000
    assert out["top"] == [
        10_000_001 + obj_size, 2, [["work", str(prog), 5], ["<module>", str(prog), 8]]
    ]
    assert 3_000_001 + obj_size <= out["leaked"] < 3_100_000
    assert out["leak"] == [3_000_001 + obj_size, [["<module>", str(prog), 10]]]
    assert lines[2:] == ["object_types needs a full capture: an aggregated one keeps no block addresses"]
    assert not (tmp_path / "out.bin.types").exists()


def test_a_failing_types_walk_still_stops_tracking(env: Env, tmp_path: Path) -> None:
    """Tracker.stop when recording the object types raises: the error reaches the caller, and
    tracking is off all the same: the capture is complete (the bytearray made after the stop
    is not in it) and a new Tracker can start."""
    code = (
        "import sys, memtrace\n"
        "from memtrace._tracker import _tracker_module\n"
        "module = _tracker_module()\n"
        "def fail():\n"
        "    raise OSError('types walk failed')\n"
        "module.record_object_types = fail\n"
        "t = memtrace.Tracker(sys.argv[1], object_types=True)\n"
        "t.start()\n"
        "kept = bytearray(2_000_000)\n"
        "try:\n"
        "    t.stop()\n"
        "except OSError as e:\n"
        "    print('stop:', e)\n"
        "after = bytearray(5_000_000)\n"
        "with memtrace.Tracker(sys.argv[2]):\n"
        "    again = bytearray(1_000_000)\n"
        "r = memtrace.FileReader(sys.argv[1])\n"
        "print(r.metadata.peak_bytes)\n"
    )
    r = run([env.python, "-c", code, tmp_path / "a.bin", tmp_path / "b.bin"])
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "stop: types walk failed"
    assert 2_000_001 <= int(lines[1]) < 2_100_000, lines
    stats = json.loads(
        run([env.memtrace, "stats", "--json", tmp_path / "a.bin"]).stdout
    )
    assert stats["complete"] is True


KEEP_HOOKS = '''\
import json, sys
import memtrace
from memtrace._tracker import release_hooks

figures = []
for i, n in enumerate([4_000_000, 6_000_000]):
    t = memtrace.Tracker(f"{sys.argv[1]}.{i}")
    t.start()
    if i == 1:
        try:
            release_hooks()
        except RuntimeError as e:
            print("refused:", e)
    block = bytearray(n)
    del block
    t.stop(keep_hooks=True)
    between = bytearray(50_000_000)
    del between
    m = memtrace.FileReader(f"{sys.argv[1]}.{i}").metadata
    figures.append([m.peak_bytes, m.total_bytes])
release_hooks()
release_hooks()
with memtrace.Tracker(f"{sys.argv[1]}.2"):
    block = bytearray(2_000_000)
m = memtrace.FileReader(f"{sys.argv[1]}.2").metadata
figures.append([m.peak_bytes, m.total_bytes])
print(json.dumps(figures))
'''


def test_hooks_kept_between_captures_record_the_same(env: Env, tmp_path: Path) -> None:
    """Tracker.stop(keep_hooks=True), the pytest plugin's between tests: each capture holds its
    own allocations only (nothing of what ran between them), and the hooks are released (twice
    is harmless; refused while tracking)."""
    prog = tmp_path / "keep.py"
    prog.write_text(KEEP_HOOKS)
    r = run([env.python, prog, tmp_path / "out.bin"])
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "refused: a memtrace Tracker is active in this process"
    figures = json.loads(lines[1])
    for (peak, total), n in zip(figures, [4_000_000, 6_000_000, 2_000_000]):
        assert n + 1 <= peak < n + 100_000, figures
        assert peak <= total < n + 200_000, figures


def test_releasing_hooks_never_loads_the_tracker(env: Env, tmp_path: Path) -> None:
    """The pytest plugin releases the hooks at every session's end, also where no test was
    tracked (--collect-only, nothing selected): that must not load the tracker library."""
    r = run([env.python, "-c", (
        "import sys; from memtrace._tracker import release_hooks; release_hooks(); "
        "print('memtrace._memtrace_tracker' in sys.modules)"
    )])
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip() == "False"


def test_the_peak_of_an_aggregated_capture_read_from_its_snapshots(env: Env, tmp_path: Path) -> None:
    """`_native.aggregated_peak` (the pytest plugin's read of most tests): the peak bytes and
    allocations FileReader gives, for the same capture; None for a full capture. Both
    Trackers' `allocated_bytes` are their captures' bytes allocated in all."""
    out = env.py(
        "import json, memtrace, sys\n"
        "from memtrace import _native\n"
        "res = {}\n"
        "for agg in (True, False):\n"
        "    p = f'{sys.argv[1]}/{agg}.bin'\n"
        "    t = memtrace.Tracker(p, aggregate=agg)\n"
        "    with t:\n"
        "        data = [bytearray(1000) for _ in range(1000)]\n"
        "        del data\n"
        "        kept = bytearray(50_000)\n"
        "    m = memtrace.FileReader(p).metadata\n"
        "    res[str(agg)] = [_native.aggregated_peak(p), [m.peak_bytes, m.peak_allocations],\n"
        "                     [t.allocated_bytes, m.total_bytes]]\n"
        "print(json.dumps(res))\n",
        str(tmp_path),
    )
    res = json.loads(out.stdout)
    quick, meta, allocated = res["True"]
    assert quick == meta
    assert 1_000_000 + 1000 * bytearray_size(env) <= meta[0] < 1_100_000 + 1000 * bytearray_size(env)
    assert meta[1] >= 2000
    assert allocated[0] == allocated[1] >= meta[0]
    quick, meta, allocated = res["False"]
    assert quick is None
    assert allocated[0] >= meta[0] > 1_000_000


ALLOCATED = """\
import json, sys
import memtrace

t = memtrace.Tracker(sys.argv[1], aggregate=sys.argv[2] == "aggregate")
with t:
    data = [bytearray(1000) for _ in range(1000)]
    del data
    kept = bytearray(50_000)
m = memtrace.FileReader(sys.argv[1]).metadata
print(json.dumps([t.allocated_bytes, m.total_bytes, m.total_allocations]))
"""


def test_allocated_bytes_of_an_aggregated_capture(env: Env, tmp_path: Path) -> None:
    """An aggregated Tracker's `allocated_bytes` is exactly what its capture's sums recorded
    as allocated in all, and what a full Tracker gives for the same code (each in a fresh
    interpreter, so that both run the same allocations): both count at the same point."""
    prog = tmp_path / "prog.py"
    prog.write_text(ALLOCATED)
    out = {}
    for mode in ("aggregate", "full"):
        r = run([env.python, prog, tmp_path / f"{mode}.bin", mode], env={**os.environ, "PYTHONHASHSEED": "0"})
        assert r.returncode == 0, r.stdout + r.stderr
        out[mode] = json.loads(r.stdout)
    allocated, total_bytes, total_allocations = out["aggregate"]
    # The 1,000 bytearrays' buffers and objects and the kept one's, at least.
    assert allocated == total_bytes >= 1000 * 1001 + 50_001
    assert total_allocations >= 2002
    assert out["full"] == out["aggregate"]


def bytearray_size(env: Env) -> int:
    return int(env.py("print(bytearray.__basicsize__)").stdout)


def test_a_tracker_left_running_stops_at_the_programs_exit(env: Env, tmp_path: Path) -> None:
    """A Tracker never stopped is stopped at the program's exit, before the interpreter's
    teardown: what is still live then is the capture's "live at exit" (it was 0: the capture
    was finished after the teardown freed everything). A forked child that exits normally
    leaves the parent's tracking alone."""
    capture = tmp_path / "left.bin"
    code = (
        "import os, sys, memtrace\n"
        "memtrace.Tracker(sys.argv[1]).start()\n"
        "kept = bytearray(4_000_000)\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    sys.exit(0)\n"
        "os.waitpid(pid, 0)\n"
        "print('done')\n"
    )
    r = env.py(code, str(capture))
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout == "done\n" and r.stderr == "", r.stdout + r.stderr
    stats = json.loads(run([env.memtrace, "stats", "--json", capture]).stdout)
    assert stats["complete"] is True, stats
    assert 4_000_001 <= stats["leaked_bytes"] < 4_100_000, stats["leaked_bytes"]


def test_a_fork_child_a_tracker_does_not_follow_starts_its_own(env: Env, tmp_path: Path) -> None:
    """A child forked while a Tracker(follow_fork=False) records is not tracked: it may start
    a Tracker of its own, which records the child's allocations alone, and leaving the
    parent's with-block in the child stops nothing there. A followed child is refused with
    the message that says it is tracked already."""
    code = (
        "import os, sys, memtrace\n"
        "parent, child, followed = sys.argv[1:4]\n"
        "with memtrace.Tracker(parent):\n"
        "    a = bytearray(2_000_000)\n"
        "    pid = os.fork()\n"
        "    if pid == 0:\n"
        "        with memtrace.Tracker(child):\n"
        "            b = bytearray(3_000_000)\n"
        "            del b\n"
        "            c = bytearray(1_000_000)\n"
        "if pid == 0:\n"
        "    os._exit(0)\n"
        "_, status = os.waitpid(pid, 0)\n"
        "print('child', os.waitstatus_to_exitcode(status))\n"
        "with memtrace.Tracker(followed, follow_fork=True):\n"
        "    pid = os.fork()\n"
        "    if pid == 0:\n"
        "        try:\n"
        "            memtrace.Tracker(child + '.2').start()\n"
        "        except RuntimeError as e:\n"
        "            print('followed:', e, flush=True)\n"
        "        os._exit(0)\n"
        "    os.waitpid(pid, 0)\n"
    )
    parent, child, followed = tmp_path / "parent.bin", tmp_path / "child.bin", tmp_path / "f.bin"
    r = env.py(code, str(parent), str(child), str(followed))
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stderr == "", r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "child 0", r.stdout
    assert lines[1].startswith("followed: this process is already tracked by memtrace"), r.stdout
    assert not (tmp_path / "child.bin.2").exists()
    child_stats = json.loads(run([env.memtrace, "stats", "--json", child]).stdout)
    # The child's own capture: its 3 MB peak and 1 MB left, not the parent's 2 MB block.
    assert 3_000_001 <= child_stats["peak_bytes"] < 3_100_000, child_stats["peak_bytes"]
    assert 1_000_001 <= child_stats["leaked_bytes"] < 1_100_000, child_stats["leaked_bytes"]
    assert child_stats["complete"] is True, child_stats
    parent_stats = json.loads(run([env.memtrace, "stats", "--json", parent]).stdout)
    # The parent's capture holds its own 2 MB, none of the child's.
    assert 2_000_001 <= parent_stats["peak_bytes"] < 2_100_000, parent_stats["peak_bytes"]
    assert parent_stats["complete"] is True, parent_stats


def test_paths_that_cannot_name_a_capture_are_refused_clearly(env: Env, tmp_path: Path) -> None:
    code = (
        "import os, memtrace\n"
        "for bad in ('a\\0b', b'bad\\xff.bin', ''):\n"
        "    try:\n"
        "        memtrace.Tracker(bad)\n"
        "    except ValueError as e:\n"
        "        print('refused:', e)\n"
        "try:\n"
        "    memtrace.Tracker('l.bin', labels=[('a', 'b')])\n"
        "except ValueError as e:\n"
        "    print('refused:', e)\n"
        "t = memtrace.Tracker(os.fsencode(os.path.join(os.getcwd(), 'bytes.bin')))\n"
        "with t:\n"
        "    x = bytearray(1000)\n"
        "print(os.path.exists('bytes.bin'))\n"
    )
    r = run([env.python, "-c", code], cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("refused: a capture's path cannot hold a NUL character"), lines
    assert lines[1].startswith("refused: a capture's path must be UTF-8 text"), lines
    assert lines[2] == "refused: a capture's path cannot be empty", lines
    assert lines[3] == (
        "refused: labels must be a mapping of str to str, e.g. {'service': 'api'} (not list)"
    ), lines
    assert lines[4] == "True", lines


def test_sizes_just_below_a_unit_read_as_that_unit(env: Env) -> None:
    r = env.py(
        "from memtrace._sizes import format_size\n"
        "print(format_size(1048575), format_size(1023), format_size(1024), format_size(1536))\n"
    )
    assert r.stdout == "1.0 MiB 1023 B 1.0 KiB 1.5 KiB\n", r.stdout + r.stderr


def test_stop_keeps_what_the_program_set_in_the_environment(env: Env, tmp_path: Path) -> None:
    # stop() put back the values start() had found, over the program's own since.
    code = (
        "import os, sys, memtrace\n"
        "os.environ.pop('LD_PRELOAD', None)\n"
        "with memtrace.Tracker(sys.argv[1], follow_fork=True):\n"
        "    os.environ['LD_PRELOAD'] = '/opt/mine.so:' + os.environ['LD_PRELOAD']\n"
        "    os.environ['MEMTRACE_NATIVE'] = 'the program s'\n"
        "print(os.environ.get('LD_PRELOAD'), '|', os.environ.get('MEMTRACE_NATIVE'), '|',"
        " os.environ.get('MEMTRACE_PARENT_CAPTURE'))\n"
    )
    r = run([env.python, "-c", code, tmp_path / "env.bin"])
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout == "/opt/mine.so | the program s | None\n"


def test_a_followed_child_s_live_at_exit_is_what_it_left(env: Env, tmp_path: Path) -> None:
    """A Tracker(follow_fork=True) left running: a forked child that ends with sys.exit (its
    atexit functions run) leaves a capture whose live at exit is what it held then, as under
    memtrace run --follow-fork (the interpreter's teardown freed it all first: 0 B)."""
    code = (
        "import os, sys, memtrace\n"
        "t = memtrace.Tracker(sys.argv[1], follow_fork=True)\n"
        "t.start()\n"
        "kept = bytearray(1_000_000)\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    x = bytearray(3_000_000)\n"
        "    sys.exit(0)\n"
        "_, status = os.waitpid(pid, 0)\n"
        "print(pid, os.waitstatus_to_exitcode(status))\n"
    )
    capture = tmp_path / "fl.bin"
    r = env.py(code, str(capture))
    pid, status = r.stdout.split()
    assert status == "0", r.stdout
    child = json.loads(run([env.memtrace, "stats", "--json", f"{capture}.{pid}"]).stdout)
    assert child["leaks_at"] == "exit_snapshot", child["leaks_at"]
    # The child's 3 MB buffer (and the 1 MB it inherited is not its own allocation).
    assert 3_000_001 <= child["leaked_bytes"] < 3_200_000, child["leaked_bytes"]
    parent = json.loads(run([env.memtrace, "stats", "--json", capture]).stdout)
    assert 1_000_001 <= parent["leaked_bytes"] < 1_200_000, parent["leaked_bytes"]
