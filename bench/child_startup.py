"""The start-up cost of a spawned Python child under `memtrace run --follow-fork`.

Starts `python -c pass` N times (subprocess.Popen, as multiprocessing's spawn starts its
workers) and prints the median wall time per child and the median CPU time (user + system, as
the kernel counted it for the child: less sensitive to a loaded machine than the wall time), in
ms. Run it untracked and tracked and compare (bench/child_startup.sh does both):

    python3 bench/child_startup.py 30
    memtrace run -q --follow-fork -o /tmp/cs.bin -f bench/child_startup.py 30
"""

import os
import statistics
import subprocess
import sys
import time

n = int(sys.argv[1]) if len(sys.argv) > 1 else 30
walls = []
cpus = []
for _ in range(n):
    t = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    _, status, usage = os.wait4(child.pid, 0)
    walls.append(time.perf_counter() - t)
    cpus.append(usage.ru_utime + usage.ru_stime)
    if status != 0:
        sys.exit(f"the child failed: status {status}")
print(f"{statistics.median(walls) * 1000:.1f} ms wall, {statistics.median(cpus) * 1000:.1f} ms CPU")
