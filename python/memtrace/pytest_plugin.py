"""The memtrace pytest plugin (``pytest --memtrace``).

Each test runs under ``memtrace.Tracker``; its capture is read back with ``FileReader``:

- the peak memory of the biggest tests is listed at the end of the session;
- ``@pytest.mark.limit_memory("24 MB")`` fails a test whose peak exceeds the limit, naming the
  top allocating lines;
- ``@pytest.mark.limit_leaks("1 MB")`` fails a test that leaves more than that live at its end,
  naming the top leaking lines and the types of the objects it leaked, with their counts and
  the lines that allocated them;
- ``--memtrace-bin-dir DIR`` keeps each test's capture (``DIR/<test id>.bin``, with a hash of
  the id when it has characters a file name cannot keep).

What is tracked is the test function's call (a plain Python test; the whole call phase for
other items): not pytest's work around it, whose objects are still live when the call phase
ends (the test's own leaks are what it leaves live when it returns).

A test without ``limit_leaks`` is tracked into an aggregated capture (``Tracker(aggregate=True)``:
sums per stack, no event stream): its peak, the peak's lines and its children's combined peak are
exact, at a fraction of a full capture's cost to record and to read. ``limit_leaks`` needs a full
capture (the leaked objects' types), and so do kept captures (``--memtrace-bin-dir``: every report
works on them, temporary allocations and ``all_records()`` included).

Sizes: a number of bytes, or with a unit: B, KB, MB, GB (powers of 1024, as pytest-memray
reads them; KiB, MiB, GiB too).
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import heapq
import inspect
import os
import re
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generator

import pytest

from . import _native
from ._locations import location, top_lines, top_types
from ._native import FileReader
from ._sizes import allocations as _allocations, format_size, parse_size
from ._tracker import Tracker, _tracker_module, release_hooks

#: Lines listed in a failure message.
TOP_LINES = 5

#: What the bytes of the leaked types count.
TYPES_NOTE = "the objects' own blocks, not the buffers they hold"

#: The name of the report property that carries a test's peak (bytes, allocations).
PEAK_PROPERTY = "memtrace_peak"
#: How pytest words a strict xfail whose test passed (its report's longrepr).
XPASS_STRICT = "[XPASS(strict)]"


def check_tracker() -> None:
    """Raises RuntimeError when ``Tracker`` cannot work in this process."""
    _tracker_module()


@dataclass
class Result:
    """What one test's capture showed."""

    nodeid: str
    capture: Path
    peak_bytes: int
    peak_allocations: int
    failures: list[str] = field(default_factory=list)


def _list_length(text: str) -> int:
    """``--memtrace-top N``: 1 or more (0 listed nothing under the header; -1 left one out)."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a count: {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"give 1 or more (not {n})")
    return n


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("memtrace", "memory tracking with memtrace")
    group.addoption(
        "--memtrace",
        action="store_true",
        default=False,
        help="track each test's memory (peaks, limit_memory and limit_leaks markers)",
    )
    group.addoption(
        "--memtrace-bin-dir",
        metavar="DIR",
        default=None,
        help="keep each test's capture in DIR (DIR/<test id>.bin: :: made _, and a hash of "
        "the id after it when it has other characters than letters, digits and _.-); "
        "kept captures are full "
        "ones (every report works on them), which costs more than the aggregated ones used "
        "without this option",
    )
    group.addoption(
        "--memtrace-top",
        metavar="N",
        type=_list_length,
        default=5,
        help="how many of the biggest tests to list (5)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "limit_memory(size): with --memtrace, fail when the test's peak memory exceeds size",
    )
    config.addinivalue_line(
        "markers",
        "limit_leaks(size): with --memtrace, fail when the test leaves more than size live",
    )
    if config.getoption("memtrace"):
        try:
            check_tracker()
        except (ImportError, RuntimeError) as e:
            raise pytest.UsageError(f"--memtrace: {e}") from e
        config.pluginmanager.register(MemtracePlugin(config), "memtrace-plugin")


BIN_DIR_ALONE = (
    "memtrace: --memtrace-bin-dir keeps the captures of --memtrace: without it, no test is "
    "tracked and nothing is kept"
)


def pytest_report_header(config: pytest.Config) -> str | None:
    # Not an error, nor a warning (a project's `filterwarnings = error` made one stop the
    # session): an ini file's addopts may name it for the runs that add --memtrace.
    if not config.getoption("memtrace") and config.getoption("memtrace_bin_dir") is not None:
        return BIN_DIR_ALONE
    return None


def _warn(item: pytest.Item, message: str) -> None:
    """Warns of what the plugin could not do for a test. Always shown, never raised: a
    project's `filterwarnings = error` made each such warning fail the test it was about."""
    with warnings.catch_warnings():
        warnings.simplefilter("always", pytest.PytestWarning)
        item.warn(pytest.PytestWarning(message))


def _limit(item: pytest.Item, name: str) -> int | None:
    marker = item.get_closest_marker(name)
    if marker is None:
        return None
    # A bad value fails its test with one line (no traceback of the plugin's).
    if len(marker.args) != 1 or marker.kwargs:
        pytest.fail(
            f"@pytest.mark.{name} takes one size, e.g. {name}(\"24 MB\")", pytrace=False
        )
    try:
        size = parse_size(marker.args[0])
    except (ValueError, TypeError) as e:
        message = f"@pytest.mark.{name}: {e}"
    else:
        return size
    # Outside the except block: the failure is one line, without "During handling of the
    # above exception".
    pytest.fail(message, pytrace=False)


def _child_captures(path: Path) -> list[Path]:
    """The captures of the test's children beside its capture (``<capture>.<pid>``), from one
    look at the directory (a glob costs ten times as much)."""
    prefix = path.name + "."
    with os.scandir(path.parent) as entries:
        return [Path(e.path) for e in entries if e.name.startswith(prefix)]


def _may_have_family(children: list[Path]) -> bool:
    """Whether the test's capture may have a family: the tracker recorded a child, or a child
    capture lies beside it. Else reading the family report (a second read of the capture)
    would find none."""
    module = _tracker_module()
    return not hasattr(module, "child_records") or bool(module.child_records()) or bool(children)


def _file_name(nodeid: str, taken: bool = False) -> str:
    """The capture's name for a test: its id with ``::`` made ``_``; when it has other
    characters than ``[A-Za-z0-9_.-]`` (made ``_`` too), is longer than 200 characters, or its
    name is `taken` by another test of the session, a hash of the id follows, so that two
    tests do not share a file (``test_x[a/b]`` and ``test_x[a_b]``)."""
    plain = nodeid.replace("::", "_")
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", plain).strip("_")
    if name == plain and len(name) <= 200 and not taken:
        return name
    digest = hashlib.sha1(nodeid.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    return f"{name[:200] or 'test'}-{digest}"


class _Region:
    """The part of a test that is tracked: the test function's call when it is a plain Python
    function (pytest's own work around it, and its objects still live then, are not the
    test's), else the whole call phase. Started once, stopped once; a tracker that cannot start
    leaves the test running untracked, with a warning."""

    def __init__(self, item: pytest.Item, tracker: Any) -> None:
        self.item = item
        self.tracker = tracker
        self.started = False
        self.stopped = False
        self.failed = False
        # A test that starts a Tracker of its own (or runs %%memtrace) goes first: this one
        # stops, and the test runs on untracked by the plugin.
        tracker._give_way = self._gave_way

    def _gave_way(self) -> None:
        self.stopped = self.failed = True
        _warn(
            self.item,
            "memtrace: this test started a memtrace Tracker of its own: the plugin stopped "
            "tracking it there (its limits are not checked)",
        )

    def start(self) -> None:
        if self.started:
            return
        self.started = True
        try:
            self.tracker.start()
        except RuntimeError as e:
            self.stopped = self.failed = True
            _warn(self.item, f"memtrace: this test ran untracked: {e}")

    def stop(self) -> None:
        if not self.started or self.stopped:
            return
        self.stopped = True
        # The hooks stay in between tests (the next start has nothing to patch); taken out at
        # the session's end.
        self.tracker.stop(keep_hooks=True)

    @property
    def tracked(self) -> bool:
        """Whether a capture was made."""
        return self.started and self.stopped and not self.failed


def _plain_function(item: pytest.Item) -> bool:
    """Whether the test is a Python function that pytest calls through pytest_pyfunc_call (not
    a unittest method, which unittest runs, nor a coroutine another plugin runs, a doctest or
    another kind of item)."""
    obj = getattr(item, "obj", None)
    return (
        isinstance(item, pytest.Function)
        and type(item).runtest is pytest.Function.runtest
        and callable(obj)
        and not inspect.iscoroutinefunction(obj)
        and not inspect.isasyncgenfunction(obj)
    )


class MemtracePlugin:
    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        bin_dir = config.getoption("memtrace_bin_dir")
        self.keep = bin_dir is not None
        # Absolute: tests may change the current directory (monkeypatch.chdir).
        self.dir = (
            Path(bin_dir).absolute() if bin_dir else Path(tempfile.mkdtemp(prefix="memtrace-"))
        )
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise pytest.UsageError(
                f"--memtrace-bin-dir: cannot use {bin_dir} as the captures' directory: {e}"
            ) from None
        #: The process that made the directory: a forked child that goes on running pytest
        #: (its test did not end with os._exit) leaves it alone.
        self.owner = os.getpid()
        #: When the session started here: a capture written since is another test's (another
        #: xdist worker's, whose names this one does not know), never to be replaced.
        self.started = time.time()
        #: The capture paths given to this process's tests (a test run again replaces its own).
        self.given: set[Path] = set()
        self.results: dict[str, Result] = {}
        #: Capture names given so far, and their tests.
        self.names: dict[str, str] = {}
        #: The tracked part of each test running or run (its tracker's environment is taken
        #: out again after the test's teardown).
        self.regions: dict[str, _Region] = {}
        self.top = config.getoption("memtrace_top")
        #: The largest peaks read so far, at most `top` of them, smallest first (a heap).
        self.largest: list[int] = []

    def _capture_path(self, nodeid: str) -> Path:
        name = _file_name(nodeid)
        if self.names.setdefault(name, nodeid) != nodeid:
            name = _file_name(nodeid, taken=True)
        path = self.dir / f"{name}.bin"
        if self.keep and path not in self.given and _written_since(path, self.started):
            # Another worker's test of the same name: both captures are kept.
            path = self.dir / f"{_file_name(nodeid, taken=True)}.bin"
        self.given.add(path)
        if path.exists():
            path.unlink()
        return path

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, Any, None]:
        if os.getpid() != self.owner:
            # A forked child that went on running pytest (its test did not end with
            # os._exit): the captures and their names are the parent's; it tracks nothing.
            yield
            return
        memory = _limit(item, "limit_memory")
        leaks = _limit(item, "limit_leaks")
        path = self._capture_path(item.nodeid)
        # Children too (pool workers, subprocesses): limit_memory applies to the combined peak.
        # Sums per stack (aggregated) give the peaks and the peak's lines exactly, at a fraction
        # of a full capture's cost; limit_leaks' types and kept captures need every block.
        aggregate = leaks is None and not self.keep
        tracker = Tracker(path, follow_fork=True, object_types=leaks is not None, aggregate=aggregate)
        region = _Region(item, tracker)
        self.regions[item.nodeid] = region
        if not _plain_function(item):
            region.start()
        try:
            yield
        finally:
            region.stop()
        if os.getpid() != self.owner or not region.tracked:
            # The test forked and its child came back here: the child's own capture is
            # finished (stop); the test's results are the parent's to read.
            return
        family = _may_have_family(_child_captures(path))
        if memory is None and leaks is None and not family:
            # Only the peak is wanted: an aggregated capture's snapshots give it at once.
            peak = _native.aggregated_peak(path) if aggregate else None
            if peak is not None:
                self._remove(path)
                self._add(Result(item.nodeid, path, peak_bytes=peak[0], peak_allocations=peak[1]))
                return
            if self._below_the_largest(getattr(tracker, "allocated_bytes", None)):
                self._remove(path)
                return
        self._add(self._check(item.nodeid, path, memory, leaks, family))

    @pytest.hookimpl(hookwrapper=True)
    def pytest_pyfunc_call(self, pyfuncitem: pytest.Function) -> Generator[None, Any, None]:
        region = self.regions.get(pyfuncitem.nodeid)
        if region is None or region.started or os.getpid() != self.owner:
            yield
            return
        function = pyfuncitem.obj

        @functools.wraps(function)
        def tracked(*args: Any, **kwargs: Any) -> Any:
            # pytest has taken the function to call: the test sees itself again as its item's
            # function (request.function, item.obj), not this wrapper.
            pyfuncitem.obj = function
            region.start()
            try:
                return function(*args, **kwargs)
            finally:
                region.stop()

        pyfuncitem.obj = tracked
        try:
            yield
        finally:
            pyfuncitem.obj = function

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_teardown(self, item: pytest.Item) -> Generator[None, Any, None]:
        yield
        region = self.regions.pop(item.nodeid, None)
        if region is not None and region.started:
            region.tracker._forget_environment()

    def _add(self, result: Result) -> None:
        self.results[result.nodeid] = result
        heapq.heappush(self.largest, result.peak_bytes)
        if len(self.largest) > self.top:
            heapq.heappop(self.largest)

    def _below_the_largest(self, allocated: int | None) -> bool:
        """Whether a test that allocated `allocated` bytes in all peaked below every peak the
        summary lists so far (so never among them: those only grow), known without reading its
        capture."""
        if allocated is None or self.top <= 0 or len(self.largest) < self.top:
            return False
        return allocated < self.largest[0]

    def _remove(self, path: Path) -> None:
        if not self.keep:
            # Looked at again: a child may have finished its capture meanwhile.
            for capture in [path, *_child_captures(path)]:
                capture.unlink(missing_ok=True)

    def _check(
        self, nodeid: str, path: Path, memory: int | None, leaks: int | None, in_family: bool
    ) -> Result:
        reader = FileReader(path)
        meta = reader.metadata
        family = _native.family(path) if in_family else None
        if family is None:
            peak, allocations = meta.peak_bytes, meta.peak_allocations
        else:
            # The family's: the root's own count beside the combined bytes was another moment's.
            peak, allocations = family["combined_peak_bytes"], family["combined_peak_allocations"]
        result = Result(
            nodeid=nodeid,
            capture=path,
            peak_bytes=peak,
            peak_allocations=allocations,
        )
        if memory is not None and peak > memory:
            headline = (
                f"Test was limited to {format_size(memory)} ({memory} bytes) but allocated "
                f"{format_size(peak)} ({peak} bytes) at its peak"
            )
            message = _message(headline, "allocating", reader.peak_records())
            if family is not None:
                shares = family["combined_peak_by_process"]
                listed = ", ".join(f"pid {pid} {format_size(b)}" for pid, b in shares)
                headline += f" (the combined peak of its processes: {listed})"
                message = _message(headline, "allocating", reader.peak_records())
                biggest = _biggest_child(path, shares, meta.pid)
                if biggest is not None:
                    pid, records = biggest
                    # The lines that made most of the peak are the child's: first.
                    message = _message(
                        f"{headline}\nIn pid {pid}, which held the most of it (its lines at its "
                        "own peak):",
                        "allocating",
                        records,
                        verb_line=False,
                    ) + "\n" + _message(
                        f"In the test's own process (pid {meta.pid}):", "allocating",
                        reader.peak_records(), verb_line=False,
                    )
            result.failures.append(message)
        if leaks is not None and meta.leaked_bytes > leaks:
            # Not the plugin's and the Tracker's own frames (Python 3.10 allocates frames on
            # the heap: those of the calls that stop tracking are freed after it stopped).
            leaked = [r for r in reader.leaked_records() if not _ours(r)]
            leaked_bytes = sum(r.size for r in leaked)
            if leaked_bytes > leaks:
                message = _message(
                    f"Test was allowed to leak {format_size(leaks)} ({leaks} bytes) but leaked "
                    f"{format_size(leaked_bytes)} ({leaked_bytes} bytes)",
                    "leaking",
                    leaked,
                )
                result.failures.append(message + _types_message(leaked))
        self._remove(path)
        return result

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, Any, None]:
        outcome = yield
        report: pytest.TestReport = outcome.get_result()
        result = self.results.get(item.nodeid)
        if call.when != "call" or result is None:
            return
        # The peak travels with the report: pytest-xdist's workers send their reports to the
        # controller, whose summary lists every worker's tests (pytest_runtest_logreport).
        report.user_properties.append(
            (PEAK_PROPERTY, [result.peak_bytes, result.peak_allocations])
        )
        if not result.failures:
            return
        failures = "\n\n".join(result.failures)
        xpassed = report.passed and hasattr(report, "wasxfail")
        # A strict xfail whose test passed is a failure already ("[XPASS(strict)] reason").
        strict = report.failed and str(report.longrepr).startswith(XPASS_STRICT)
        if xpassed or strict:
            xfail = item.get_closest_marker("xfail")
            if xfail is not None and xfail.kwargs.get("raises") is not None:
                # Expected to fail with an exception of its own: a failure on memory is
                # another failure, as pytest reads any other exception.
                if xpassed:
                    del report.wasxfail
                report.outcome = "failed"
                report.longrepr = failures
                return
            # A test expected to fail that failed on memory: xfailed, strict or not, as
            # pytest reads any other failure of it.
            if strict:
                report.wasxfail = str(report.longrepr)[len(XPASS_STRICT) :].strip()
                report.longrepr = None
            report.outcome = "skipped"
            report.sections.append(("memtrace", failures))
        elif report.passed:
            report.outcome = "failed"
            report.longrepr = failures
        else:
            report.sections.append(("memtrace", failures))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """A test's peak from its report: a worker's, under pytest-xdist."""
        if report.when != "call" or report.nodeid in self.results:
            return
        for name, value in report.user_properties:
            if name == PEAK_PROPERTY:
                peak_bytes, peak_allocations = value
                capture = self.dir / f"{_file_name(report.nodeid)}.bin"
                self._add(Result(report.nodeid, capture, peak_bytes, peak_allocations))

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        # A forked child's pytest (see pytest_runtest_call) has no summary of its own.
        if not self.results or os.getpid() != self.owner:
            return
        n = self.config.getoption("memtrace_top")
        biggest = sorted(self.results.values(), key=lambda r: (-r.peak_bytes, r.nodeid))[:n]
        terminalreporter.write_sep("=", "memtrace: peak memory of the biggest tests")
        for r in biggest:
            terminalreporter.write_line(
                f"{format_size(r.peak_bytes):>11}  {r.nodeid}  "
                f"({r.peak_bytes} bytes in {_allocations(r.peak_allocations)})"
            )
        if self.keep:
            terminalreporter.write_line(f"captures in {self.dir}")

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        try:
            release_hooks()
        except ImportError:
            pass  # no tracker library: no hooks
        except RuntimeError:
            pass  # a Tracker of the tests' own still runs: its stop puts every slot back
        if not self.keep and os.getpid() == self.owner:
            shutil.rmtree(self.dir, ignore_errors=True)


#: The package's directory: records whose innermost frame is in it are memtrace's own.
_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep


def _ours(record: Any) -> bool:
    """Whether a record was allocated by memtrace's own Python code (its innermost frame)."""
    return location(record)[1].startswith(_PACKAGE)


def _biggest_child(path: Path, shares: list[tuple[int, int]], own: int) -> tuple[int, Any] | None:
    """The child process that held the most at the combined peak, when it held more than the
    test's own process, with its capture's records at its own peak (None when it has no
    capture to read)."""
    if not shares or shares[0][0] == own:
        return None
    pid = shares[0][0]
    try:
        return pid, list(FileReader(Path(f"{path}.{pid}")).peak_records())
    except (OSError, ValueError):
        return None


def _written_since(path: Path, started: float) -> bool:
    """Whether `path` is a file written since `started` (a time.time(); with 2 s to spare for
    file systems that keep coarse times)."""
    try:
        return path.stat().st_mtime >= started - 2
    except OSError:
        return False


def _message(headline: str, verb: str, records: Any, verb_line: bool = True) -> str:
    lines = [headline, f"Top {verb} lines:"] if verb_line else [headline]
    # The plugin's own frames (the call of the test with its fixtures) are not the test's lines.
    for line in top_lines((r for r in records if not _ours(r)), TOP_LINES):
        allocations = "allocation" if line.n_allocations == 1 else "allocations"
        lines.append(
            f"  {format_size(line.size):>11} ({line.size} bytes) in {line.n_allocations} "
            f"{allocations}: {line.label}"
        )
    return "\n".join(lines)


def _types_message(records: list[Any]) -> str:
    """The leaked objects' types: count, bytes and the line that allocated them."""
    types = top_types(records, TOP_LINES)
    if not types:
        return ""
    # An object's buffers (a list's items, a dict's table, a bytearray's bytes) are blocks of
    # no object: they count in the lines above, not here.
    lines = ["", f"Top leaked types ({TYPES_NOTE}):"]
    for t in types:
        objects = "object" if t.n_objects == 1 else "objects"
        lines.append(
            f"  {format_size(t.size):>11} ({t.size} bytes) in {t.n_objects} {objects} of "
            f"{t.name}: {t.label}"
        )
    return "\n".join(lines)
