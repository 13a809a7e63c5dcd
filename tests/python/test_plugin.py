"""The pytest plugin on a small test project: the limits, the summary, --memtrace-bin-dir.

With a stand-in Tracker that hands the plugin captures made by `memtrace run` of scripts doing
each test's allocations (the plugin's own logic), and with the real Tracker (in-process)."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from conftest import HERE, SUPPORT, Env, checked, run

PROJECT = HERE / "projects" / "limits"
ALLOCS = SUPPORT / "allocs"


@pytest.fixture(scope="module")
def fake_captures(env: Env, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("fake")
    for script in ALLOCS.glob("test_*.py"):
        checked([env.memtrace, "run", "-q", "-o", out / f"{script.stem}.bin", script])
    return out


def run_project(env: Env, tmp_path: Path, *args: str, fake: Path | None = None):
    project = tmp_path / "project"
    shutil.copytree(PROJECT, project)
    environ = dict(os.environ)
    environ.pop("PYTEST_CURRENT_TEST", None)
    extra: list[str] = []
    if fake is not None:
        environ["PYTHONPATH"] = str(SUPPORT)
        environ["MEMTRACE_FAKE_CAPTURES"] = str(fake)
        extra = ["-p", "memtrace_fake"]
    return run(
        [env.python, "-m", "pytest", "-p", "no:cacheprovider", *extra, "--memtrace", *args,
         "test_limits.py"],
        cwd=project,
        env=environ,
    )


def check_outcome(out: str, over_line: str, leak_line: str) -> None:
    assert re.search(r"^=+ 2 failed, 2 passed in ", out, re.M), out
    assert "FAILED test_limits.py::test_over" in out
    assert "FAILED test_limits.py::test_leaky" in out
    m = re.search(
        r"Test was limited to 5\.0 MiB \(5242880 bytes\) but allocated (\d+\.\d) MiB \((\d+) "
        r"bytes\) at its peak\nTop allocating lines:\n +7\.6 MiB \((\d+) bytes\) in \d "
        r"allocations?: (.*)\n",
        out,
    )
    assert m, out
    assert 8_000_001 <= int(m.group(2)) < 8_500_000
    # The bytearray's buffer and its object, on the test's line.
    assert 8_000_001 <= int(m.group(3)) < 8_000_200
    assert m.group(4) == over_line
    m = re.search(
        r"Test was allowed to leak 1\.0 MiB \(1048576 bytes\) but leaked (\d+\.\d) MiB "
        r"\((\d+) bytes\)\nTop leaking lines:\n +1\.9 MiB \((\d+) bytes\) in \d allocations?: "
        r"(.*)\n",
        out,
    )
    assert m, out
    assert 2_000_001 <= int(m.group(3)) < 2_000_200
    assert m.group(4) == leak_line
    summary = out.split("memtrace: peak memory of the biggest tests", 1)[1].splitlines()[1:5]
    names = [line.split()[2] for line in summary]
    assert names[:3] == [
        "test_limits.py::test_over",
        "test_limits.py::test_leaky",
        "test_limits.py::test_under",
    ], summary


def test_limits_with_captures_of_memtrace_run(env: Env, tmp_path: Path, fake_captures: Path) -> None:
    r = run_project(env, tmp_path, fake=fake_captures)
    assert r.returncode == 1, r.stdout + r.stderr
    check_outcome(
        r.stdout,
        f"<module> at {ALLOCS}/test_over.py:1",
        f"<module> at {ALLOCS}/test_leaky.py:2",
    )


def test_bin_dir_keeps_the_captures(env: Env, tmp_path: Path, fake_captures: Path) -> None:
    bins = tmp_path / "bins"
    r = run_project(env, tmp_path, "--memtrace-bin-dir", str(bins), fake=fake_captures)
    assert r.returncode == 1, r.stdout + r.stderr
    assert sorted(p.name for p in bins.iterdir()) == [
        "test_limits.py_test_leaky.bin",
        "test_limits.py_test_over.bin",
        "test_limits.py_test_plain.bin",
        "test_limits.py_test_under.bin",
    ]
    assert f"captures in {bins}" in r.stdout
    meta = env.py(
        f"import memtrace; print(memtrace.FileReader({str(bins / 'test_limits.py_test_over.bin')!r}).metadata.peak_bytes > 8_000_000)"
    )
    assert meta.stdout.strip() == "True"


def test_without_the_option_nothing_is_tracked(env: Env, tmp_path: Path) -> None:
    project = tmp_path / "project"
    shutil.copytree(PROJECT, project)
    r = run([env.python, "-m", "pytest", "-p", "no:cacheprovider", "test_limits.py"], cwd=project)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "4 passed" in r.stdout, r.stdout
    # Loaded (beside pytest-xdist, which the environment has too), and silent.
    assert re.search(r"^plugins: (.*, )?memtrace-", r.stdout, re.M), r.stdout
    assert "peak memory" not in r.stdout


def test_a_bad_size_is_a_usage_error(env: Env, tmp_path: Path, fake_captures: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "test_bad.py").write_text(
        "import pytest\n\n@pytest.mark.limit_memory('lots')\ndef test_plain():\n    pass\n"
    )
    environ = dict(os.environ, PYTHONPATH=str(SUPPORT), MEMTRACE_FAKE_CAPTURES=str(fake_captures))
    r = run(
        [env.python, "-m", "pytest", "-p", "memtrace_fake", "--memtrace", "test_bad.py"],
        cwd=project,
        env=environ,
    )
    assert r.returncode != 0
    out = r.stdout + r.stderr
    assert "limit_memory: not a size: 'lots'" in out
    # The test fails with that line alone: no traceback of the plugin's.
    assert "FAILED test_bad.py::test_plain" in out, out
    assert "pytest_plugin.py" not in out and "Traceback" not in out, out


def test_limits_with_the_real_tracker(env: Env, tmp_path: Path) -> None:
    r = run_project(env, tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr
    path = tmp_path / "project" / "test_limits.py"
    check_outcome(r.stdout, f"test_over at {path}:8", f"test_leaky at {path}:20")
    # limit_leaks still names the leaked objects' types (its test has a full capture).
    leaked_types = r.stdout.split("Top leaked types (the objects' own blocks, not the buffers they hold):\n", 1)[1].split("\n=", 1)[0]
    assert re.search(
        rf"^ +\d+ B \((\d+) bytes\) in 1 object of bytearray: test_leaky at {re.escape(str(path))}:20$",
        leaked_types,
        re.M,
    ), r.stdout


def test_kept_captures_are_full_ones(env: Env, tmp_path: Path) -> None:
    """With --memtrace-bin-dir every test's capture is a full one (every report works on it:
    temporary allocations, all_records); the outcome is the one of the aggregated captures."""
    bins = tmp_path / "bins"
    r = run_project(env, tmp_path, "--memtrace-bin-dir", str(bins))
    assert r.returncode == 1, r.stdout + r.stderr
    path = tmp_path / "project" / "test_limits.py"
    check_outcome(r.stdout, f"test_over at {path}:8", f"test_leaky at {path}:20")
    out = env.py(
        "import memtrace, sys\n"
        "r = memtrace.FileReader(sys.argv[1])\n"
        "print(r.aggregated, sum(t.size for t in r.temporary_records()) >= 0)\n",
        str(bins / "test_limits.py_test_over.bin"),
    )
    assert out.stdout.split() == ["False", "True"]


@pytest.mark.parametrize("kept", [True, False], ids=["kept", "aggregated"])
def test_the_summary_lists_the_biggest_tests_whichever_captures_it_read(
    env: Env, tmp_path: Path, kept: bool
) -> None:
    # With --memtrace-top 2, a test that allocates less in all than the two biggest peaks seen
    # so far is not read (its peak cannot be among them); the list is the one every peak gives.
    # Without kept captures, each test's aggregated capture gives its peak from its snapshots.
    project = tmp_path / "project"
    project.mkdir()
    sizes = [3, 1, 5, 2, 4, 1, 6, 2]
    tests = "\n\n".join(
        f"def test_{i}_{mb}mb():\n    data = bytearray({mb} * 1_000_000)\n    assert data"
        for i, mb in enumerate(sizes)
    )
    (project / "test_sizes.py").write_text(tests + "\n")
    bins = tmp_path / "bins"
    keep = ["--memtrace-bin-dir", str(bins)] if kept else []
    r = run(
        [env.python, "-m", "pytest", "-p", "no:cacheprovider", "--memtrace", "--memtrace-top",
         "2", *keep, "test_sizes.py"],
        cwd=project,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    summary = r.stdout.split("memtrace: peak memory of the biggest tests", 1)[1].splitlines()
    assert [line.split()[2] for line in summary[1:3]] == [
        "test_sizes.py::test_6_6mb",
        "test_sizes.py::test_2_5mb",
    ], summary
    for line, mb in zip(summary[1:3], [6, 5]):
        m = re.search(r"\((\d+) bytes in (\d+) allocations?\)$", line)
        assert m and mb * 1_000_000 < int(m.group(1)) < mb * 1_000_000 + 200_000, summary
    if not kept:
        assert summary[3].startswith("="), summary
        assert not bins.exists()
        return
    assert summary[3].startswith("captures in"), summary
    # Every capture is kept, read or not, and each holds its test's block.
    for i, mb in enumerate(sizes):
        capture = bins / f"test_sizes.py_test_{i}_{mb}mb.bin"
        peak = env.py(
            f"import memtrace; print(memtrace.FileReader({str(capture)!r}).metadata.peak_bytes)"
        )
        assert mb * 1_000_000 < int(peak.stdout) < mb * 1_000_000 + 200_000, (capture, peak)


def _write_project(tmp_path: Path, name: str, text: str) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    (project / name).write_text(text)
    return project


def test_bad_mark_values_fail_their_test_in_one_line(env: Env, tmp_path: Path) -> None:
    project = _write_project(
        tmp_path,
        "test_marks.py",
        "import pytest\n\n"
        "@pytest.mark.limit_memory(None)\ndef test_none():\n    pass\n\n"
        "@pytest.mark.limit_leaks(-1)\ndef test_negative():\n    pass\n",
    )
    r = run([env.python, "-m", "pytest", "-p", "no:cacheprovider", "--memtrace", "test_marks.py"],
            cwd=project)
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    assert "limit_memory: not a size: None" in out, out
    assert "limit_leaks: a size cannot be negative: -1" in out, out
    assert "During handling" not in out and "Traceback" not in out, out
    assert "pytest_plugin.py" not in out and "_sizes.py" not in out, out


def test_a_forked_child_going_on_through_pytest_leaves_the_parents_run_alone(
    env: Env, tmp_path: Path
) -> None:
    # The child ends its test with SystemExit, not os._exit: it goes on running pytest, and its
    # end removed the parent's captures' directory (the parent's tests then failed).
    project = _write_project(
        tmp_path,
        "test_fork.py",
        "import os, sys\n\n"
        "def test_fork():\n"
        "    pid = os.fork()\n"
        "    if pid == 0:\n"
        "        data = bytearray(10_000)\n"
        "        sys.exit(0)\n"
        "    os.waitpid(pid, 0)\n\n"
        "def test_next():\n"
        "    data = bytearray(10_000)\n",
    )
    args = [env.python, "-m", "pytest", "-p", "no:cacheprovider", "-q", "test_fork.py"]
    plain = run(args, cwd=project)
    assert plain.returncode == 0, plain.stdout + plain.stderr
    tracked = run([*args, "--memtrace"], cwd=project)
    assert tracked.returncode == 0, tracked.stdout + tracked.stderr
    assert "FileNotFoundError" not in tracked.stdout + tracked.stderr
    assert "cannot create the capture" not in tracked.stdout + tracked.stderr


def test_a_relative_bin_dir_stays_where_it_was_named(env: Env, tmp_path: Path) -> None:
    # Tests that change the current directory (monkeypatch.chdir, os.chdir) do not move it.
    project = _write_project(
        tmp_path,
        "test_cwd.py",
        "import os\n\n"
        "def test_chdir(monkeypatch, tmp_path):\n"
        "    monkeypatch.chdir(tmp_path)\n"
        "    data = bytearray(1000)\n\n"
        "def test_chdir_for_good(tmp_path):\n"
        "    os.chdir(tmp_path)\n\n"
        "def test_after():\n"
        "    data = bytearray(1000)\n",
    )
    r = run(
        [env.python, "-m", "pytest", "-p", "no:cacheprovider", "--memtrace",
         "--memtrace-bin-dir", "kept", "test_cwd.py"],
        cwd=project,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "3 passed" in r.stdout, r.stdout
    kept = sorted(p.name for p in (project / "kept").iterdir())
    assert kept == [
        "test_cwd.py_test_after.bin",
        "test_cwd.py_test_chdir.bin",
        "test_cwd.py_test_chdir_for_good.bin",
    ], kept


HOUSEKEEPING = """\
import os
import unittest
import pytest
from memtrace import Tracker

LIBRARY = {library!r}


@pytest.mark.limit_leaks("1 KB")
def test_nothing():
    pass


@pytest.mark.limit_leaks("2 KB")
@pytest.mark.parametrize("name", ["x" * 2000], ids=["long-id-" + "x" * 1500])
def test_nothing_with_a_long_id(name):
    pass


@pytest.mark.parametrize("v", ["a/b", "a_b", "a b", "a:b"])
def test_ids(v):
    data = bytearray(100_000)
    assert data


@pytest.mark.xfail(reason="a known regression")
@pytest.mark.limit_memory("1 MB")
def test_expected_to_go_over():
    data = bytearray(3_000_000)
    assert data


def test_a_clears_the_environment(monkeypatch):
    monkeypatch.delenv("LD_PRELOAD", raising=False)
    monkeypatch.delenv("MEMTRACE_PARENT_CAPTURE", raising=False)


def test_b_sees_its_own_tracker_alone():
    # Its own tracker's variables (for its children), not the last test's put back.
    assert os.environ.get("LD_PRELOAD") == LIBRARY, os.environ.get("LD_PRELOAD")
    capture = os.environ["MEMTRACE_PARENT_CAPTURE"]
    assert capture.endswith("test_b_sees_its_own_tracker_alone.bin"), capture


@pytest.mark.limit_memory(float("inf"))
def test_an_infinite_limit():
    pass


class TestInUnittestStyle(unittest.TestCase):
    @pytest.mark.limit_memory("1 MB")
    def test_over(self):
        data = bytearray(3_000_000)
        self.assertTrue(data)


@pytest.fixture
def own_tracker(tmp_path):
    with Tracker(tmp_path / "own.bin"):
        yield


def test_with_a_tracker_of_its_own(own_tracker):
    assert sum(range(10)) == 45


@pytest.mark.limit_memory("1 MB")
def test_starting_a_tracker_itself(tmp_path):
    with Tracker(tmp_path / "mine.bin"):
        data = bytearray(3_000_000)
    assert len(data) == 3_000_000
    assert (tmp_path / "mine.bin").stat().st_size > 0


def test_sees_itself(request):
    assert request.function is test_sees_itself
    assert request.node.obj is test_sees_itself
"""


def test_what_pytest_does_around_a_test_is_not_the_test_s(env: Env, tmp_path: Path) -> None:
    """An empty test leaks nothing (pytest's objects live when the call phase ends are not
    the test's, nor its PYTEST_CURRENT_TEST); test ids that differ only in characters a file
    name cannot keep get a capture each; an xfail test over its limit is xfailed; a test's
    monkeypatch of the tracker's variables does not leave the tracker in the environment; an
    infinite limit fails in one line; a tracker that cannot start leaves the test untracked; a
    unittest method is tracked too."""
    library = env.py(
        "import memtrace._memtrace_tracker as m, os; print(os.path.abspath(m.__file__))"
    ).stdout.strip()
    project = tmp_path / "project"
    project.mkdir()
    (project / "test_housekeeping.py").write_text(HOUSEKEEPING.format(library=library))
    # What the environment holds once the tests are over.
    after = tmp_path / "after.txt"
    (project / "conftest.py").write_text(
        "import os\n\n"
        "def pytest_unconfigure(config):\n"
        f"    with open({str(after)!r}, 'w') as f:\n"
        "        f.write(repr(sorted(k for k in os.environ if k == 'LD_PRELOAD' or k.startswith('MEMTRACE_'))))\n"
    )
    bins = tmp_path / "bins"
    environ = dict(os.environ)
    environ.pop("PYTEST_CURRENT_TEST", None)
    r = run(
        [env.python, "-m", "pytest", "-p", "no:cacheprovider", "-rA", "--memtrace",
         "--memtrace-bin-dir", bins, "test_housekeeping.py"],
        cwd=project,
        env=environ,
    )
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    for passed in ["test_nothing", "test_nothing_with_a_long_id", "test_ids[a/b]",
                   "test_ids[a_b]", "test_ids[a b]", "test_ids[a:b]",
                   "test_a_clears_the_environment", "test_b_sees_its_own_tracker_alone",
                   "test_with_a_tracker_of_its_own", "test_starting_a_tracker_itself",
                   "test_sees_itself"]:
        assert re.search(rf"^PASSED test_housekeeping\.py::{re.escape(passed)}", out, re.M), (passed, out)
    assert re.search(r"^XFAIL test_housekeeping\.py::test_expected_to_go_over", out, re.M), out
    assert re.search(r"^FAILED test_housekeeping\.py::test_an_infinite_limit", out, re.M), out
    assert re.search(
        r"^@pytest\.mark\.limit_memory: not a size: inf \(a size is a finite number "
        r"of bytes\)$",
        out,
        re.M,
    ), out
    assert "_sizes.py" not in out and "OverflowError" not in out, out
    assert "memtrace: this test ran untracked: " in out, out
    # A test's own Tracker goes first (it failed: "a memtrace Tracker is already active").
    assert "memtrace: this test started a memtrace Tracker of its own" in out, out
    # A unittest method is tracked too (unittest runs it, not pytest_pyfunc_call).
    assert re.search(
        r"^FAILED test_housekeeping\.py::TestInUnittestStyle::test_over", out, re.M
    ), out
    assert re.search(r"^=+ 2 failed, 11 passed, 1 xfailed", out, re.M), out
    ids = sorted(p.name for p in bins.glob("test_housekeeping.py_test_ids*.bin"))
    assert len(ids) == 4, ids
    assert after.read_text() == "[]", after.read_text()


CHILD_OVER = """\
import subprocess, sys
import pytest


@pytest.mark.limit_memory("1 MB")
def test_child_allocates():
    subprocess.run([sys.executable, "-c", "x = bytearray(5_000_000)"], check=True)
"""


def test_a_child_s_lines_are_named_when_it_made_the_peak(env: Env, tmp_path: Path) -> None:
    """limit_memory of a test whose child made most of the combined peak lists the child's
    lines first (they were the test's process's alone, a few KiB of them)."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "test_child.py").write_text(CHILD_OVER)
    environ = dict(os.environ)
    environ.pop("PYTEST_CURRENT_TEST", None)
    r = run(
        [env.python, "-m", "pytest", "-p", "no:cacheprovider", "--memtrace", "test_child.py"],
        cwd=project,
        env=environ,
    )
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    m = re.search(r"^In pid (\d+), which held the most of it \(its lines at its own peak\):\n"
                  r" +4\.\d MiB \((\d+) bytes\) in \d+ allocations?: <module> at <string>:1$",
                  out, re.M)
    assert m, out
    assert 5_000_001 <= int(m.group(2)) < 5_000_200, out
    assert re.search(r"^In the test's own process \(pid \d+\):$", out, re.M), out


def test_the_summary_lists_every_worker_s_tests_under_xdist(env: Env, tmp_path: Path) -> None:
    """With pytest-xdist the tests run in workers: their peaks reach the controller's summary
    (it listed nothing), and the limits still fail their tests."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "test_workers.py").write_text(
        "import pytest\n\n"
        + "".join(
            f"def test_{mb}mb():\n    data = bytearray({mb} * 1_000_000)\n    assert data\n\n"
            for mb in (2, 4, 6, 8)
        )
        + "@pytest.mark.limit_memory('1 MB')\ndef test_over():\n    data = bytearray(3_000_000)\n"
    )
    environ = dict(os.environ)
    environ.pop("PYTEST_CURRENT_TEST", None)
    r = run(
        [env.python, "-m", "pytest", "-p", "no:cacheprovider", "-n", "2", "--memtrace",
         "--memtrace-top", "3", "test_workers.py"],
        cwd=project,
        env=environ,
    )
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    assert re.search(r"^=+ 1 failed, 4 passed", out, re.M), out
    summary = out.split("memtrace: peak memory of the biggest tests", 1)[1].splitlines()[1:4]
    names = [line.split()[2] for line in summary]
    assert names == [
        "test_workers.py::test_8mb",
        "test_workers.py::test_6mb",
        "test_workers.py::test_4mb",
    ], out


def test_kept_captures_of_one_name_from_two_workers_are_both_kept(env: Env, tmp_path: Path) -> None:
    """Two tests whose ids differ only in `::` against `_`, run one after the other on two
    xdist workers: the second keeps its capture under the hashed name (it deleted the first's,
    without a word). A failure's lines leave out the plugin's own frames (the call of a test
    with its arguments), and --memtrace-bin-dir alone says that it does nothing."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "test_names.py").write_text(
        "import time, pytest\n\n"
        "@pytest.fixture\n"
        "def later():\n"
        "    time.sleep(3)\n\n"
        "class TestB_test:\n"
        "    def test_c(self):\n"
        "        b = bytearray(2_000_000)\n\n"
        "class TestB:\n"
        "    def test_test_c(self, later):\n"
        "        b = bytearray(3_000_000)\n\n"
        "@pytest.mark.limit_memory('1 MB')\n"
        "@pytest.mark.parametrize('n', [1_500_000])\n"
        "def test_over(n):\n"
        "    b = bytearray(n)\n"
    )
    environ = dict(os.environ)
    environ.pop("PYTEST_CURRENT_TEST", None)
    bins = tmp_path / "bins"
    r = run(
        [env.python, "-m", "pytest", "-p", "no:cacheprovider", "-n", "2", "--dist", "load",
         "--memtrace", "--memtrace-bin-dir", str(bins), "test_names.py"],
        cwd=project,
        env=environ,
    )
    out = r.stdout + r.stderr
    assert re.search(r"^=+ 1 failed, 2 passed", out, re.M), out
    assert "pytest_plugin.py" not in out, out
    assert re.search(r"\(1500057 bytes\) in 2 allocations: test_over at \S+test_names.py:18$", out, re.M), out
    kept = sorted(p.name for p in bins.iterdir() if "TestB" in p.name)
    assert len(kept) == 2, kept
    peaks = sorted(
        int(env.py(f"import memtrace; print(memtrace.FileReader({str(bins / k)!r}).metadata.peak_bytes)").stdout)
        for k in kept
    )
    assert 2_000_001 <= peaks[0] < 2_100_000 and 3_000_001 <= peaks[1] < 3_100_000, peaks
    alone = run([env.python, "-m", "pytest", "-p", "no:cacheprovider", "--memtrace-bin-dir",
                 str(tmp_path / "unused"), "-k", "test_c", "test_names.py"], cwd=project, env=environ)
    assert alone.returncode == 0, alone.stdout + alone.stderr
    assert "--memtrace-bin-dir keeps the captures of --memtrace" in alone.stdout + alone.stderr
    assert not (tmp_path / "unused").exists()


def test_a_location_without_a_line_is_named_without_one(env: Env) -> None:
    # A failure listed `<compile> at <string>:0` where the reports write no line.
    r = env.py(
        "from memtrace._locations import Line\n"
        "for l in (Line('<compile>', 'app.py', 0), Line('f', 'app.py', 3), Line('<unknown>', '', 0)):\n"
        "    print(l.label)\n"
    )
    assert r.stdout.splitlines() == ["<compile> at app.py", "f at app.py:3", "<unknown>"], r.stdout


STRICT_PROJECT = '''\
import pytest
from memtrace import Tracker


def test_starting_a_tracker_itself(tmp_path):
    with Tracker(tmp_path / "mine.bin"):
        data = bytearray(100_000)
    assert len(data) == 100_000


@pytest.mark.xfail(reason="a known regression")
@pytest.mark.limit_memory("1 KB")
def test_strict_xfail_over():
    data = bytearray(100_000)
    assert data


@pytest.mark.xfail(raises=ZeroDivisionError)
@pytest.mark.limit_memory("1 KB")
def test_xfail_expecting_another_failure_over():
    data = bytearray(100_000)
    assert data


@pytest.mark.xfail(reason="fails itself")
@pytest.mark.limit_memory("1 KB")
def test_strict_xfail_failing_itself():
    data = bytearray(100_000)
    assert not data
'''


def test_a_project_s_strict_settings_change_no_outcome(env: Env, tmp_path: Path) -> None:
    """A project with `filterwarnings = error` and `xfail_strict = true` (toolz's): the plugin's
    warnings stay warnings (they failed the tests they were about, with tracebacks through the
    plugin), a strict xfail over its limit is xfailed (it read as an unexpected pass), one
    expecting another exception fails on the limit, and --memtrace-bin-dir alone stops
    nothing."""
    project = tmp_path / "strict"
    project.mkdir()
    (project / "pytest.ini").write_text("[pytest]\nfilterwarnings = error\nxfail_strict = true\n")
    (project / "test_strict.py").write_text(STRICT_PROJECT)
    environ = dict(os.environ)
    environ.pop("PYTEST_CURRENT_TEST", None)
    r = run([env.python, "-m", "pytest", "-p", "no:cacheprovider", "-rA", "--memtrace",
             "test_strict.py"], cwd=project, env=environ)
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    assert re.search(r"^PASSED test_strict\.py::test_starting_a_tracker_itself", out, re.M), out
    assert "memtrace: this test started a memtrace Tracker of its own" in out, out
    assert re.search(r"^XFAIL test_strict\.py::test_strict_xfail_over - a known regression", out, re.M), out
    assert re.search(r"^XFAIL test_strict\.py::test_strict_xfail_failing_itself", out, re.M), out
    assert re.search(
        r"^FAILED test_strict\.py::test_xfail_expecting_another_failure_over - Test was l", out, re.M
    ), out
    assert re.search(r"^E? *Test was limited to 1\.0 KiB \(1024 bytes\) but allocated", out, re.M), out
    assert "XPASS" not in out and "pytest_plugin.py" not in out, out
    assert re.search(r"^=+ 1 failed, 1 passed, 2 xfailed", out, re.M), out
    alone = run([env.python, "-m", "pytest", "-p", "no:cacheprovider", "--memtrace-bin-dir",
                 str(tmp_path / "unused"), "-k", "itself", "test_strict.py"], cwd=project, env=environ)
    out = alone.stdout + alone.stderr
    assert alone.returncode == 0, out
    assert "--memtrace-bin-dir keeps the captures of --memtrace" in out, out
    assert "INTERNALERROR" not in out, out
