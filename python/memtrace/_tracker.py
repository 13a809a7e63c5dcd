"""``memtrace.Tracker``: tracks the running process, started and stopped from Python.

The tracking itself is the tracker library shipped in the package (``_memtrace_tracker.so``,
the same file ``memtrace run`` preloads), imported as an extension module: its ``start`` hooks
the allocation functions of every loaded object in place (no preloading), ``stop`` restores
them and finishes the capture.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType, TracebackType


def _tracker_module() -> ModuleType:
    module = importlib.import_module("memtrace._memtrace_tracker")
    if not hasattr(module, "start"):
        raise RuntimeError(
            "this build of the tracker library cannot track in-process (it has no start()); "
            "use `memtrace run` instead"
        )
    return module


class Tracker:
    """Records every allocation of this process into the capture ``path`` while active::

        with memtrace.Tracker("out.bin"):
            work()
        reader = memtrace.FileReader("out.bin")

    ``native``: record whole native stacks; ``python_allocators``: trace the PyMem allocators
    (pymalloc) as memtrace run does; ``follow_fork``: children write ``path.<pid>`` too;
    ``object_types``: at ``stop``, walk the live objects and record their types, so that
    ``FileReader(path).leaked_records()`` gives each record's ``object_type`` (the walk takes
    some 0.3 s per million live objects).
    One tracker at a time: starting a second one (nested or from another thread) raises
    ``RuntimeError``, as does a ``path`` that exists.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        native: bool = False,
        python_allocators: bool = True,
        follow_fork: bool = False,
        object_types: bool = False,
    ) -> None:
        self.path = os.fspath(path)
        self.native = native
        self.python_allocators = python_allocators
        self.follow_fork = follow_fork
        self.object_types = object_types
        self._active = False

    def start(self) -> None:
        """Starts tracking into ``path``."""
        if self._active:
            raise RuntimeError("this Tracker is already tracking")
        _tracker_module().start(
            self.path, self.native, self.python_allocators, self.follow_fork
        )
        self._active = True

    def stop(self) -> None:
        """Stops tracking and finishes the capture."""
        if not self._active:
            raise RuntimeError("this Tracker is not tracking")
        self._active = False
        module = _tracker_module()
        if self.object_types and hasattr(module, "record_object_types"):
            module.record_object_types()
        module.stop()

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

