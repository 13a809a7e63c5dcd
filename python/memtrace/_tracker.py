"""``memtrace.Tracker``: tracks the running process, started and stopped from Python.

The tracking itself is the tracker library shipped in the package (``_memtrace_tracker.so``,
the same file ``memtrace run`` preloads), imported as an extension module: its ``start`` hooks
the allocation functions of every loaded object in place (no preloading), ``stop`` restores
them and finishes the capture.
"""

from __future__ import annotations

import atexit
import errno
import importlib
import os
import re
import sys
from collections.abc import Callable, Mapping
from types import ModuleType, TracebackType


class CaptureFileError(OSError, RuntimeError):
    """The capture file cannot be created (a missing directory, no permission, a path that
    exists): an ``OSError`` with its ``errno`` and ``filename``, so that ``except OSError``
    catches it as it catches ``open()``'s, and a ``RuntimeError`` as ``start`` raised before."""


#: The tracker's message for a capture file it cannot create (path, reason, error number).
_FILE_ERROR = re.compile(r"(cannot [a-z ]+?) (/.*): (.*) \(os error (\d+)\)$", re.S)


def _file_error(message: str, path: str) -> CaptureFileError | None:
    """The ``CaptureFileError`` a message of the tracker's describes, if it is one."""
    m = _FILE_ERROR.match(message)
    if m is None:
        return None
    number = int(m[4])
    if number == errno.EEXIST and os.path.isdir(m[2]):
        number = errno.EISDIR
    return CaptureFileError(number, f"{m[1]}: {os.strerror(number)}", path)


def _tracker_module() -> ModuleType:
    module = importlib.import_module("memtrace._memtrace_tracker")
    if not hasattr(module, "start"):
        raise RuntimeError(
            "this build of the tracker library cannot track in-process (it has no start()); "
            "use `memtrace run` instead"
        )
    return module


def release_hooks() -> None:
    """Takes out the hooks that ``Tracker.stop(keep_hooks=True)`` left in the loaded objects
    (nothing when there are none); a ``RuntimeError`` while a Tracker is active."""
    if "memtrace._memtrace_tracker" not in sys.modules:
        return  # never loaded in this process: no hooks, and no reason to load it now
    module = _tracker_module()
    if hasattr(module, "release_hooks"):
        module.release_hooks()


def _check_labels(labels: Mapping[str, str]) -> dict[str, str]:
    """The labels as memtrace run --label takes them: keys of letters, digits, ``_.-``;
    values without control characters; at most 64, 4096 bytes in all."""
    if not isinstance(labels, Mapping):
        raise ValueError(
            f"labels must be a mapping of str to str, e.g. {{'service': 'api'}} "
            f"(not {type(labels).__name__})"
        )
    out = {}
    for key, value in labels.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise ValueError(f"label {key!r}: keys and values must be str")
        if not key or not all(c.isascii() and (c.isalnum() or c in "_.-") for c in key):
            raise ValueError(f"label {key!r}: the key must be letters, digits, '_', '.' or '-'")
        if not value:
            # pprof readers (Go's) drop a label whose value is the empty string.
            raise ValueError(f"label {key!r}: the value is empty")
        if any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise ValueError(f"label {key!r}: the value has a control character")
        out[key] = value
    if len(out) > 64 or sum(len(k) + len(v) + 1 for k, v in out.items()) > 4096:
        raise ValueError("too many labels: at most 64, 4096 bytes in all")
    return out


#: The Tracker recording in this process now (one at a time), if any.
_recording: Tracker | None = None


_watching_forks = False


def _watch_forks() -> None:
    """Has each forked child of a following Tracker end its own capture at its exit (once per
    process: a pytest session starts a Tracker per test)."""
    global _watching_forks
    if not _watching_forks:
        _watching_forks = True
        os.register_at_fork(after_in_child=_end_followed_child)


def _end_followed_child() -> None:
    """In a child forked while a Tracker(follow_fork=True) records: the child's own capture
    ends with its script, before the interpreter's teardown, as under memtrace run
    --follow-fork (its live at exit was 0 B: the teardown had freed everything). The
    tracker's own exit function is registered, not called from Python code here (it leaves
    the capture alone when Python code calls it: a test runner running the exit functions)."""
    t = _recording
    if t is None or not t._active or not t.follow_fork:
        return
    finished = getattr(_tracker_module(), "script_finished", None)
    if finished is not None:
        atexit.register(finished)


class Tracker:
    """Records every allocation of this process into the capture ``path`` while active::

        with memtrace.Tracker("out.bin"):
            work()
        reader = memtrace.FileReader("out.bin")

    ``native``: record whole native stacks; ``python_allocators``: trace the PyMem allocators
    (pymalloc) as memtrace run does; ``follow_fork``: children write ``path.<pid>`` too, forked
    ones and the programs started while tracking (multiprocessing spawn and forkserver workers,
    subprocess): those get the tracker through the environment (``LD_PRELOAD`` and memtrace's
    variables, set in ``os.environ`` from ``start()`` to ``stop()``), and a Python child is
    tracked as a Python run. ``memtrace stats path`` then reports the family;
    ``labels``: ``{"service": "api"}`` stored in the capture, as ``memtrace run --label`` does
    (pprof exports carry them); a bad key or value raises ``ValueError``;
    ``object_types``: at ``stop``, walk the live objects and record their types, so that
    ``FileReader(path).leaked_records()`` gives each record's ``object_type`` (the walk takes
    some 0.3 s per million live objects);
    ``aggregate``: an aggregated capture, as ``memtrace run --aggregate`` writes: sums per
    stack and thread (live at the peak and at the end, totals, a memory series) instead of
    every allocation and free, so that it grows with the stacks and the time, not with the
    events (not with ``object_types``, which needs every live block's address).
    After ``stop``, ``allocated_bytes`` is what the capture's allocations took in all (so at
    least its peak; None before the first stop), full or aggregated.
    One tracker at a time: starting a second one (nested or from another thread) raises
    ``RuntimeError``; a capture file that cannot be created (a ``path`` that exists, a missing
    directory) raises ``CaptureFileError``, an ``OSError`` (and a ``RuntimeError``).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        native: bool = False,
        python_allocators: bool = True,
        follow_fork: bool = False,
        labels: Mapping[str, str] | None = None,
        object_types: bool = False,
        aggregate: bool = False,
    ) -> None:
        self.labels = _check_labels(labels or {})
        if aggregate and object_types:
            raise ValueError(
                "object_types needs a full capture: an aggregated one keeps no block addresses"
            )
        self.aggregate = aggregate
        path = os.fspath(path)
        self.path = os.fsdecode(path) if isinstance(path, bytes) else path
        if not self.path:
            raise ValueError("a capture's path cannot be empty")
        if "\0" in self.path:
            raise ValueError(f"a capture's path cannot hold a NUL character: {self.path!r}")
        try:
            self.path.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(
                f"a capture's path must be UTF-8 text (this one is not): {self.path!r}"
            ) from None
        self.native = native
        self.python_allocators = python_allocators
        self.follow_fork = follow_fork
        self.object_types = object_types
        self._active = False
        #: The process that started tracking (a forked child's exit leaves it alone).
        self._pid = 0
        self._saved_env: dict[str, str | None] = {}
        #: What start put into the environment, and what was there before.
        self._passed_on: tuple[dict[str, str], dict[str, str | None]] = ({}, {})
        self.allocated_bytes: int | None = None
        #: Set by the pytest plugin on its own trackers: a Tracker the program starts while
        #: this one records stops this one first (the test's own tracking goes first), and
        #: this is called then.
        self._give_way: Callable[[], None] | None = None

    def start(self) -> None:
        """Starts tracking into ``path``."""
        global _recording
        if self._active:
            raise RuntimeError("this Tracker is already tracking")
        other = _recording
        if (
            other is not None
            and other is not self
            and other._active
            and other._give_way is not None
            and other._pid == os.getpid()
        ):
            other.stop(keep_hooks=True)
            other._give_way()
        # Absolute: a forked child names its capture after this one, from the directory it is
        # in then (the program may have changed it).
        path = os.path.abspath(self.path)
        args: list[object] = [path, self.native, self.python_allocators, self.follow_fork]
        if self.labels or self.aggregate:
            args.append("\n".join(f"{k}={v}" for k, v in self.labels.items()))
        if self.aggregate:
            args += [False, True]
        module = _tracker_module()
        # The environment is set before recording starts: its allocations are the Tracker's,
        # not the program's (as the tracker's own calls are never recorded).
        if self.follow_fork:
            self._pass_on(module)
            _watch_forks()
        # A Tracker still running when the program ends stops at its exit, as the script's end
        # of a memtrace run does: what is live then is measured before the interpreter's
        # teardown frees it (the capture was finished after it, and showed nothing live).
        # Registered before recording starts: what it allocates is not the program's.
        self._pid = os.getpid()
        atexit.register(self._stop_at_exit)
        try:
            module.start(*args)
        except BaseException as e:
            atexit.unregister(self._stop_at_exit)
            self._restore_env()
            failure = _file_error(str(e), self.path) if isinstance(e, RuntimeError) else None
            if failure is not None:
                raise failure from None
            raise
        self._active = True
        _recording = self

    def _stop_at_exit(self) -> None:
        # Not in a forked child that exits through atexit: the tracking is its parent's (a
        # followed child's own capture ends with _end_followed_child's).
        if self._active and os.getpid() == self._pid:
            self.stop()

    def stop(self, *, keep_hooks: bool = False) -> None:
        """Stops tracking and finishes the capture. ``keep_hooks``: the hooks stay in the loaded
        objects (passing straight through) so that the next ``start`` is quicker (the pytest
        plugin's, test after test), until ``release_hooks()`` takes them out."""
        global _recording
        if not self._active:
            raise RuntimeError("this Tracker is not tracking")
        self._active = False
        if _recording is self:
            _recording = None
        elif os.getpid() != self._pid:
            # A forked child (one this Tracker did not follow) that started a Tracker of its
            # own: the session running here is that one's, and this one records nothing here.
            atexit.unregister(self._stop_at_exit)
            self._restore_env()
            return
        module = _tracker_module()
        # Tracking ends and the capture is finished even when the types walk fails (its error
        # still reaches the caller): a tracker left on would go on hooking the program.
        try:
            try:
                if self.object_types and hasattr(module, "record_object_types"):
                    module.record_object_types()
            finally:
                if keep_hooks and hasattr(module, "release_hooks"):
                    module.stop(True)
                else:
                    module.stop()
            if hasattr(module, "allocated_bytes"):
                self.allocated_bytes = module.allocated_bytes()
        finally:
            # After recording stops, as at start (what they allocate is not the program's).
            atexit.unregister(self._stop_at_exit)
            self._restore_env()

    def _pass_on(self, module: ModuleType) -> None:
        """Puts the tracker into the environment of the programs started from now on."""
        library = os.path.abspath(module.__file__ or "")
        wanted = {
            "LD_PRELOAD": ":".join(p for p in (library, os.environ.get("LD_PRELOAD")) if p),
            "MEMTRACE_PARENT_CAPTURE": os.path.abspath(self.path),
            "MEMTRACE_FOLLOW_FORK": "1",
            "MEMTRACE_PYTHON_ALLOCATORS": "1" if self.python_allocators else "0",
            "MEMTRACE_NATIVE": "1" if self.native else "0",
            "MEMTRACE_AGGREGATE": "1" if self.aggregate else "0",
        }
        if self.aggregate:
            # As memtrace run --aggregate: an aggregated capture has no object types.
            wanted["MEMTRACE_OBJECT_TYPES"] = "0"
        self._saved_env = {name: os.environ.get(name) for name in wanted}
        self._passed_on = (wanted, dict(self._saved_env))
        os.environ.update(wanted)

    def _restore_env(self) -> None:
        """Puts back what ``start`` changed in the environment, where the program did not
        change it since: a value of its own stays (its own ``LD_PRELOAD``, less the tracker)."""
        wanted = self._passed_on[0]
        for name, value in self._saved_env.items():
            current = os.environ.get(name)
            if name in wanted and current != wanted[name]:
                if name == "LD_PRELOAD" and current:
                    library = wanted[name].split(":")[0]
                    kept = [p for p in current.split(":") if p and p != library]
                    if kept:
                        os.environ[name] = ":".join(kept)
                    else:
                        os.environ.pop(name, None)
                continue
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_env = {}

    def _forget_environment(self) -> None:
        """After ``stop``: takes the variables ``start`` set out of the environment again where
        something put them back since (a test's ``monkeypatch`` restores at its teardown the
        values it saw during the test: the tracker's), so that no later program gets the
        tracker of a finished capture."""
        if self._active:
            return
        wanted, original = self._passed_on
        for name, value in wanted.items():
            if os.environ.get(name) != value:
                continue
            if original.get(name) is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = original[name]  # type: ignore[assignment]

    def __enter__(self) -> Tracker:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "active" if self._active else "inactive"
        return f"<Tracker {self.path!r} {state}>"

