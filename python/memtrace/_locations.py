"""Allocation records summed by source line, for the plugin's and the magic's reports."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from ._native import AllocationRecord


@dataclass
class Line:
    """The allocations of one source line: ``function at file:line``."""

    function: str
    file: str
    line: int
    size: int = 0
    n_allocations: int = 0

    @property
    def label(self) -> str:
        # Line 0: no line (a script's compilation, `<compile>`), as the reports write it.
        if self.file and self.line:
            return f"{self.function} at {self.file}:{self.line}"
        if self.file:
            return f"{self.function} at {self.file}"
        return self.function


def location(record: AllocationRecord) -> tuple[str, str, int]:
    """The innermost Python frame of a record (its innermost frame without Python frames)."""
    for frames in (record.python_stack(), record.merged_stack()):
        if frames:
            return frames[0]
    return ("<unknown>", "", 0)


def top_lines(records: Iterable[AllocationRecord], n: int) -> list[Line]:
    """The ``n`` lines with the most bytes (ties: more allocations, then the label)."""
    lines: dict[tuple[str, str, int], Line] = {}
    for r in records:
        key = location(r)
        line = lines.get(key)
        if line is None:
            line = lines[key] = Line(*key)
        line.size += r.size
        line.n_allocations += r.n_allocations
    ranked = sorted(lines.values(), key=lambda l: (-l.size, -l.n_allocations, l.label))
    return ranked[:n]


@dataclass
class TypeLine:
    """The objects of one type allocated on one source line."""

    name: str
    function: str
    file: str
    line: int
    size: int = 0
    n_objects: int = 0

    @property
    def label(self) -> str:
        if self.file:
            return f"{self.function} at {self.file}:{self.line}"
        return self.function


def top_types(records: Iterable[AllocationRecord], n: int) -> list[TypeLine]:
    """The ``n`` (type, line) pairs with the most bytes, of records whose ``object_type`` is
    known (ties: more objects, then the type and line)."""
    out: dict[tuple[str, str, str, int], TypeLine] = {}
    for r in records:
        name = r.object_type
        if name is None:
            continue
        key = (name, *location(r))
        t = out.get(key)
        if t is None:
            t = out[key] = TypeLine(*key)
        t.size += r.size
        t.n_objects += r.n_allocations
    ranked = sorted(out.values(), key=lambda t: (-t.size, -t.n_objects, t.name, t.label))
    return ranked[:n]
