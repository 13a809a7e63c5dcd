"""A stand-in for memtrace.Tracker, to test the pytest plugin's and the magic's reports on
captures made by `memtrace run` (the real Tracker is tested on its own).

`FakeTracker.start()` copies a prepared capture to the tracker's path: `$MEMTRACE_FAKE_CAPTURE`,
or `$MEMTRACE_FAKE_CAPTURES/<test name>.bin` for the running pytest test. Loaded as a pytest
plugin (`-p memtrace_fake`), it replaces the plugin's Tracker."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any


class FakeTracker:
    def __init__(self, path: str | os.PathLike[str], *args: Any, **kwargs: Any) -> None:
        self.path = Path(path)

    def start(self) -> None:
        one = os.environ.get("MEMTRACE_FAKE_CAPTURE")
        if one:
            source = Path(one)
        else:
            test = os.environ["PYTEST_CURRENT_TEST"].split("::")[-1].split(" ")[0]
            source = Path(os.environ["MEMTRACE_FAKE_CAPTURES"]) / f"{test}.bin"
        shutil.copyfile(source, self.path)

    def stop(self, *, keep_hooks: bool = False) -> None:
        pass

    def _forget_environment(self) -> None:
        pass

    def __enter__(self) -> FakeTracker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _install() -> None:
    import memtrace._ipython
    import memtrace.pytest_plugin

    memtrace.pytest_plugin.Tracker = FakeTracker  # type: ignore[misc,assignment]
    memtrace.pytest_plugin.check_tracker = lambda: None
    memtrace._ipython.Tracker = FakeTracker  # type: ignore[misc,assignment]


_install()
