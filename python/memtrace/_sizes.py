"""Sizes as people write them: ``"24 MB"``, ``"1.5 GiB"``, ``"512 KB"``, ``1024``."""

from __future__ import annotations

import re

_UNITS = {
    "": 1,
    "b": 1,
    "kb": 1024,
    "mb": 1024**2,
    "gb": 1024**3,
    "tb": 1024**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
    "k": 1024,
    "m": 1024**2,
    "g": 1024**3,
}

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_size(size: str | int | float) -> int:
    """Bytes of a size: a number of bytes, or a number and a unit, case-insensitive: B, and KB,
    MB, GB, TB as powers of 1024 (as pytest-memray reads them), also written KiB, MiB, GiB, TiB
    or K, M, G."""
    if isinstance(size, bool) or not isinstance(size, (str, int, float)):
        raise ValueError(
            f"not a size: {size!r} (write it as a number of bytes or with a unit, e.g. '24 MB')"
        )
    if isinstance(size, (int, float)):
        if size != size or size in (float("inf"), float("-inf")):
            raise ValueError(f"not a size: {size!r} (a size is a finite number of bytes)")
        if size < 0:
            raise ValueError(f"a size cannot be negative: {size!r}")
        return int(size)
    m = _SIZE.match(size)
    if m is None or m.group(2).lower() not in _UNITS:
        raise ValueError(
            f"not a size: {size!r} (write it as a number of bytes or with a unit, e.g. '24 MB')"
        )
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def format_size(n: int | float) -> str:
    """``1.5 MiB``: bytes in binary units with one decimal (``512 B`` below a KiB)."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        # Below 1023.95: what rounds to 1024.0 reads as the next unit's 1.0.
        if abs(value) < (1024 if unit == "B" else 1023.95) or unit == "TiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def allocations(n: int) -> str:
    """`n allocations`, `1 allocation`."""
    return f"{n} allocation" if n == 1 else f"{n} allocations"
