"""A small Python program to try memtrace on: a leak, a temporary spike and a clear peak.

    memtrace run -o demo.bin examples/demo.py
    memtrace stats demo.bin                 the peak, what is live at exit, the top lines
    memtrace tree demo.bin                  where the memory live at the peak was allocated
    memtrace tree --leaks demo.bin          ... what is still live at exit
    memtrace tree --temporary demo.bin      ... allocations freed right after they were made

- the leak: remember() keeps 1 MB per call in a module-level cache (5 MB live at exit);
- a temporary spike: checksum() makes a 20 MB copy and frees it at once (`tree --temporary`);
- the peak: build_report() holds a 50 MB table (5,000 rows of 10,000 bytes) while it sums it.
"""

_cache = []


def remember(key):
    """The leak: 1 MB kept per call, never cleared."""
    _cache.append(bytearray(1_000_000))


def checksum(data):
    """A temporary spike: a 20 MB copy, freed as soon as it is counted."""
    copy = data * 20
    return copy.count(b"\x01")


def build_report(n_rows):
    """The peak: every row is live until the report is summed."""
    rows = [b"x" * 10_000 for _ in range(n_rows)]
    return sum(len(row) for row in rows)


def main():
    for key in range(5):
        remember(key)
    checksum(bytes(1_000_000))
    total = build_report(5_000)
    print(f"report: {total:,} bytes in 5,000 rows; cache: {len(_cache)} MB")


main()
