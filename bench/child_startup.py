"""The start-up cost of a spawned Python child under `memtrace run --follow-fork`.

Starts `python -c pass` N times (subprocess.run, as multiprocessing's spawn starts its
workers) and prints the median wall time per child in ms. Run it untracked and tracked and
compare (bench/child_startup.sh does both):

    python3 bench/child_startup.py 30
    memtrace run -q --follow-fork -o /tmp/cs.bin -f bench/child_startup.py 30
"""

import statistics
import subprocess
import sys
import time

n = int(sys.argv[1]) if len(sys.argv) > 1 else 30
times = []
for _ in range(n):
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    times.append(time.perf_counter() - t)
print(f"{statistics.median(times) * 1000:.1f}")
