"""memtrace: a memory-allocation tracker for Python and native programs.

- ``memtrace.FileReader(path)`` reads a capture (written by ``memtrace run`` or ``Tracker``):
  its ``metadata`` and its allocation records at the peak, at exit, temporary, and every event.
- ``memtrace.Tracker(path)`` tracks the running process between ``start()`` and ``stop()`` (a
  context manager).
- The ``memtrace`` command is the same CLI as the Rust binary (``memtrace run``, ``stats``, ...).
- A pytest plugin (``pytest --memtrace``) and an IPython magic (``%load_ext memtrace``,
  ``%%memtrace``).
"""

from __future__ import annotations

from typing import Any

from ._native import (
    AllocationRecord,
    CaptureError,
    FileReader,
    Metadata,
    write_flamegraph,
)
from ._sizes import format_size, parse_size
from ._tracker import CaptureFileError, Tracker

__all__ = [
    "AllocationRecord",
    "CaptureError",
    "CaptureFileError",
    "FileReader",
    "Metadata",
    "Tracker",
    "format_size",
    "parse_size",
    "write_flamegraph",
]

__version__ = "0.1.0"


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext memtrace``: registers the ``%%memtrace`` cell magic."""
    from ._ipython import register

    register(ipython)
