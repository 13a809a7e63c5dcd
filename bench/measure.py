#!/usr/bin/env python3
"""Runs a command and prints its wall seconds, its maximum resident size (KB) and its CPU
seconds (user + system, with those of the processes it waited for) to the microsecond:
/usr/bin/time rounds them to hundredths, which a run of a tenth of a second cannot resolve to
a few percent. The command runs under /usr/bin/time all the same, for its resident size (a
child of this interpreter would count the interpreter's pages as its own). Its output is
dropped; when it fails, its stderr is shown and this exits 1.
  bench/measure.py COMMAND [ARGS...]
"""
import os
import subprocess
import sys
import tempfile
import time

with tempfile.NamedTemporaryFile() as rss, tempfile.TemporaryFile() as err:
    command = ["/usr/bin/time", "-f", "%M", "-o", rss.name, *sys.argv[1:]]
    start = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=err)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        err.seek(0)
        sys.stderr.buffer.write(err.read())
        sys.exit(1)
    max_rss = rss.read().decode().split()[-1]
print(f"{wall:.6f} {max_rss} {usage.ru_utime + usage.ru_stime:.6f}")
