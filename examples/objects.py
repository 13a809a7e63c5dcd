"""Which line, and which objects? The example of memory_profiler's and pympler's docs: one
function builds a list of 10,000 strings and 100,000 small objects, and the program keeps them.

    memtrace run -o objects.bin examples/objects.py
    memtrace lines objects.bin              the function's lines with their memory
    memtrace stats objects.bin              the types live at the peak and at exit
    memtrace tree --by-type objects.bin     each type with the lines that allocated it

The program prints what the reports should find: the strings' and the points' bytes
(sys.getsizeof each).
"""

import sys


class Point:
    """A small object: two slots, one block of its own, no dict."""

    __slots__ = ("x", "y")

    def __init__(self, x, y):
        self.x = x
        self.y = y


def build():
    names = ["object number %d" % i for i in range(10_000)]
    points = [Point(i % 100, i % 7) for i in range(100_000)]
    return names, points


names, points = build()
print(sum(sys.getsizeof(s) for s in names), sum(sys.getsizeof(p) for p in points))
