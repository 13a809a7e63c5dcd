"""The IPython magic through IPython's API: %load_ext memtrace, then %%memtrace on a cell."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from conftest import SUPPORT, Env, checked, run

CELL_RUN = """
import sys
from IPython.core.interactiveshell import InteractiveShell
ip = InteractiveShell.instance()
ip.run_line_magic("load_ext", "memtrace")
ip.run_cell_magic("memtrace", "-d " + sys.argv[1], "x = bytearray(10_000_000)\\ny = len(x)\\n")
print("y =", ip.user_ns["y"])
"""


def run_cell(env: Env, results: Path, fake: Path | None = None) -> str:
    environ = dict(os.environ)
    code = CELL_RUN
    if fake is not None:
        environ["PYTHONPATH"] = str(SUPPORT)
        environ["MEMTRACE_FAKE_CAPTURE"] = str(fake)
        code = "import memtrace_fake\n" + code
    r = run([env.python, "-c", code, results], env=environ)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def check(out: str, results: Path, line: str) -> None:
    lines = out.splitlines()
    m = re.fullmatch(r"memtrace: the cell's peak: 9\.5 MiB \((\d+) bytes\) in (\d+) allocations", lines[0])
    assert m, out
    assert 10_000_001 <= int(m.group(1)) < 10_100_000
    m = re.fullmatch(r" +9\.5 MiB \((\d+) bytes\) in \d+: (.*)", lines[1])
    assert m, out
    assert 10_000_001 <= int(m.group(1)) < 10_000_200
    assert m.group(2) == line
    assert lines[-2] == f"memtrace: wrote {results}/cell-1.html"
    assert lines[-1] == "y = 10000000"
    page = (results / "cell-1.html").read_text()
    # The interactive page, opening on the peak, its data naming the cell's line.
    assert '<svg id="flamegraph"' in page and '"initial":{"view":"peak"' in page
    assert json.dumps(line).replace("<", "\\u003c") in page
    assert (results / "cell-1.bin").is_file()


def test_magic_on_a_capture_of_memtrace_run(env: Env, tmp_path: Path) -> None:
    capture = tmp_path / "cell.bin"
    script = SUPPORT / "allocs" / "cell.py"
    checked([env.memtrace, "run", "-q", "-o", capture, script])
    results = tmp_path / "results"
    out = run_cell(env, results, fake=capture)
    check(out, results, f"<module> at {script}:1")


def test_magic_with_the_real_tracker(env: Env, tmp_path: Path) -> None:
    results = tmp_path / "results"
    out = run_cell(env, results)
    check(out, results, "<module> at <memtrace-cell>:1")


RAISING_CELL = """
import sys
from IPython.core.interactiveshell import InteractiveShell
from IPython.core.error import UsageError
ip = InteractiveShell.instance()
ip.run_line_magic("load_ext", "memtrace")
try:
    ip.run_cell_magic("memtrace", "--no-html -d " + sys.argv[1], "x = bytearray(5_000_000)\\nraise ValueError('boom')\\n")
except ValueError as e:
    print("raised", e)
try:
    ip.run_cell_magic("memtrace", "-n -1 -d " + sys.argv[1], "pass\\n")
except UsageError as e:
    print("usage:", e)
"""


def test_a_cell_that_raises_is_reported_and_a_bad_count_refused(env: Env, tmp_path: Path) -> None:
    """A cell that raises still gets its report (what it allocated until then), then the
    exception goes on; a negative -n is refused (it dropped lines silently)."""
    results = tmp_path / "results"
    r = run([env.python, "-c", RAISING_CELL, results])
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert re.fullmatch(r"memtrace: the cell's peak: 4\.\d MiB \(\d+ bytes\) in \d+ allocations?", lines[0]), r.stdout
    assert "<module> at <memtrace-cell>:1" in lines[1], r.stdout
    assert "raised boom" in lines, r.stdout
    assert "usage: %%memtrace: -n takes a number of lines, 0 or more (not -1)" in lines, r.stdout
    # The magic's own frames are not among the cell's lines.
    assert "_ipython.py" not in r.stdout, r.stdout


REFUSED_CELLS = """
import sys, memtrace
from IPython.core.interactiveshell import InteractiveShell
from IPython.core.error import UsageError
ip = InteractiveShell.instance()
ip.run_line_magic("load_ext", "memtrace")
try:
    ip.run_cell_magic("memtrace", "--no-html -d " + sys.argv[1], "pass\\n")
except UsageError as e:
    print("usage:", e)
with memtrace.Tracker(sys.argv[2]):
    try:
        ip.run_cell_magic("memtrace", "--no-html -d " + sys.argv[3], "ran = 1\\n")
    except Exception as e:
        print(type(e).__name__, "context shown:", not e.__suppress_context__, e)
    print("run_cell:", flush=True)
    ip.run_cell("%%memtrace --no-html -d " + sys.argv[3] + "\\nran = 2\\n")
print("ran" in ip.user_ns)
"""


def test_a_cell_that_cannot_be_tracked_says_why_alone(env: Env, tmp_path: Path) -> None:
    """A results directory that is a file is a usage error; so is a cell run while another
    Tracker runs: one line that says why, no traceback of the magic's or the Tracker's (a
    report of the capture never made was chained to it: FileNotFoundError), and the cell is
    not run."""
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    r = run([env.python, "-c", REFUSED_CELLS, a_file, tmp_path / "outer.bin", tmp_path / "results"])
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith(f"usage: %%memtrace: -d {a_file}: cannot hold the results"), lines
    refusal = "%%memtrace: cannot track the cell: a memtrace Tracker is already active in this process"
    assert lines[1] == f"UsageError context shown: False {refusal}", lines
    # IPython writes a usage error to stderr: that line alone.
    assert lines[2:] == ["run_cell:", "False"], lines
    assert r.stderr.splitlines() == [f"UsageError: {refusal}"], r.stderr


CELL_FORMS = """
import sys
from IPython.core.interactiveshell import InteractiveShell
ip = InteractiveShell.instance()
ip.run_line_magic("load_ext", "memtrace")
d = "--no-html -d " + sys.argv[1]
ip.run_cell("%%memtrace " + d + "\\nfirst = 'A' * 10\\nfirst\\n")
print("---", flush=True)
ip.run_cell("%%memtrace " + d + "\\nsecond = 'B' * 10\\nsecond;  # no value shown\\n")
print("---", flush=True)
ip.run_cell("%%memtrace " + d + "\\nok = 1\\nbroken = (\\n")
"""


def test_a_cell_s_semicolon_and_syntax_error_show_as_without_the_magic(
    env: Env, tmp_path: Path
) -> None:
    """A last expression followed by `;` shows no value (it showed Out[n]), and a cell with a
    syntax error shows its own line (it showed the previous %%memtrace cell's)."""
    r = run([env.python, "-c", CELL_FORMS, tmp_path / "results"], env={**os.environ, "NO_COLOR": "1", "TERM": "dumb"})
    assert r.returncode == 0, r.stdout + r.stderr
    first, second, third = r.stdout.split("---\n")
    assert re.search(r"Out\[\d+\]: 'AAAAAAAAAA'", first), first
    assert "Out[" not in second and "BBBB" not in second, second
    assert "memtrace: the cell's peak:" in second, second
    assert "broken = (" in third and "SyntaxError" in third, third
    assert "first" not in third and "second" not in third, third
    assert "memtrace: the cell's peak:" not in third, third


IPYTHON_SYNTAX_CELL = """
import sys
from IPython.core.interactiveshell import InteractiveShell
ip = InteractiveShell.instance()
ip.run_line_magic("load_ext", "memtrace")
cell = "x = bytearray(3_000_000)\\n!echo shell-ran\\n%time y = 1\\nlen(x) + y\\n"
value = ip.run_cell_magic("memtrace", "--no-html -d " + sys.argv[1], cell)
print("value", value)
try:
    ip.run_cell_magic("memtrace", "--no-html -d " + sys.argv[1], "z = 1\\nraise KeyError('k')\\n")
except KeyError:
    import linecache, traceback
    frames = traceback.extract_tb(sys.exc_info()[2])
    cell_frame = [f for f in frames if f.filename == "<memtrace-cell>"][-1]
    print("source:", cell_frame.lineno, cell_frame.line)
"""


def test_a_cell_runs_as_ipython_runs_it(env: Env, tmp_path: Path) -> None:
    """`!command` and `%magic` lines work in a %%memtrace cell (as in %%time); its last
    expression is its value; a traceback shows the cell's own line."""
    results = tmp_path / "results"
    r = run([env.python, "-c", IPYTHON_SYNTAX_CELL, results])
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert "shell-ran" in lines, r.stdout
    peak = [l for l in lines if l.startswith("memtrace: the cell's peak:")][0]
    m = re.fullmatch(r"memtrace: the cell's peak: \d\.\d MiB \((\d+) bytes\) in \d+ allocations?", peak)
    assert m and int(m.group(1)) > 3_000_000, r.stdout
    assert re.search(r"^ +2\.9 MiB \(30000\d\d bytes\) in \d+: <module> at <memtrace-cell>:1$", r.stdout, re.M), r.stdout
    assert "value 3000001" in lines, r.stdout
    assert "source: 2 raise KeyError('k')" in lines, r.stdout


IPYTHON_TRACEBACK = """
import sys
from IPython.core.interactiveshell import InteractiveShell
ip = InteractiveShell.instance()
ip.run_line_magic("load_ext", "memtrace")
ip.run_cell("%%memtrace --no-html -d " + sys.argv[1] + "\\nz = 1\\nraise KeyError('k')\\n")
"""


def test_a_raising_cell_s_traceback_shows_the_cell_not_memtrace(env: Env, tmp_path: Path) -> None:
    """The traceback IPython shows of a cell that raises under %%memtrace names the cell's
    line, not the magic's own code (as %%time's shows none of its own)."""
    r = run([env.python, "-c", IPYTHON_TRACEBACK, tmp_path / "results"])
    assert r.returncode == 0, r.stdout + r.stderr
    assert "KeyError" in r.stdout and "<memtrace-cell>" in r.stdout, r.stdout
    assert "_ipython.py" not in r.stdout, r.stdout


SESSION = """
import os, sys
from IPython.core.interactiveshell import InteractiveShell
ip = InteractiveShell.instance()
ip.run_line_magic("load_ext", "memtrace")
start, other = sys.argv[1], sys.argv[2]
os.chdir(start)
ip.run_cell_magic("memtrace", "--no-html -n 1", "def f(x: int) -> list:\\n    return [x]\\n")
print("annotations", ip.user_ns["f"].__annotations__)
ip.run_cell_magic("memtrace", "--no-html -n 1", f"import os\\nx = bytearray(5_000_000)\\nos.chdir({other!r})\\n")
"""


def test_a_cell_keeps_the_session_s_semantics(env: Env, tmp_path: Path) -> None:
    """A cell's annotations are evaluated as the session's are (the magic's module has
    `from __future__ import annotations`, which cells inherited: strings), and a cell that
    changes the directory is still reported, from its own capture (the relative results
    directory was looked for in the new one: no report, or another capture's)."""
    start, other = tmp_path / "start", tmp_path / "other"
    start.mkdir()
    other.mkdir()
    r = run([env.python, "-c", SESSION, start, other])
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert "annotations {'x': <class 'int'>, 'return': <class 'list'>}" in lines, r.stdout
    peaks = [l for l in lines if l.startswith("memtrace: the cell's peak:")]
    assert len(peaks) == 2, r.stdout
    m = re.fullmatch(r"memtrace: the cell's peak: 4\.8 MiB \((\d+) bytes\) in \d+ allocations?", peaks[1])
    assert m and 5_000_001 <= int(m.group(1)) < 5_050_000, r.stdout
    top = re.search(r"^ +4\.8 MiB \((\d+) bytes\) in \d+: <module> at <memtrace-cell>:2$", r.stdout, re.M)
    assert top and 5_000_001 <= int(top.group(1)) < 5_010_000, r.stdout
    assert sorted(p.name for p in (start / "memtrace-results").iterdir()) == ["cell-1.bin", "cell-2.bin"]
    assert not (other / "memtrace-results").exists()


def test_ipython_s_own_threads_are_not_the_cell_s_lines(env: Env) -> None:
    """The rule that leaves IPython's work out of a cell's lines: from the innermost frame out,
    a frame of IPython's (or the magic's) before any of the cell's. Its history writer's
    thread allocates inside the standard library called from IPython (contextlib, sqlite3),
    and those lines were listed as the cell's."""
    r = env.py(
        "import os, IPython\n"
        "from memtrace import _ipython as m\n"
        "ipy = os.path.dirname(IPython.__file__)\n"
        "class R:\n"
        "    def __init__(self, *stack): self.stack = list(stack)\n"
        "    def python_stack(self): return self.stack\n"
        "cases = [\n"
        "    R(('helper', '/usr/lib/python3/contextlib.py', 301),\n"
        "      ('run', ipy + '/core/history.py', 1279), ('_bootstrap', '/usr/lib/python3/threading.py', 1)),\n"
        "    R(('report', m.__file__, 150)),\n"
        "    R(('f', '/tmp/x.py', 3), ('<module>', m.CELL_FILE, 1), ('memtrace', m.__file__, 70),\n"
        "      ('run_cell', ipy + '/core/interactiveshell.py', 3000)),\n"
        "    R(('work', m.CELL_FILE, 5), ('run', '/usr/lib/python3/threading.py', 975)),\n"
        "    R(('work', '/tmp/mod.py', 3), ('_bootstrap', '/usr/lib/python3/threading.py', 1)),\n"
        "    R(),\n"
        "]\n"
        "print([m._ipython_s(c) for c in cases])\n"
    )
    assert r.stdout.strip() == "[True, True, False, False, False, False]", r.stdout
