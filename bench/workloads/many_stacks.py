"""The HTML report's worst case: N distinct stacks (20,000, or argv[1]), each allocating at
random moments through the run, the blocks freed at random later moments (about 50,000 live at
a time), so that every stack holds memory in many time buckets."""

import random
import sys

N = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
source = "".join(f"def f{i}(n):\n    return bytearray(n)\n" for i in range(N))
space: dict = {}
exec(compile(source, "generated.py", "exec"), space)
functions = [space[f"f{i}"] for i in range(N)]
rng = random.Random(1)
live = []
for step in range(600_000):
    live.append(functions[rng.randrange(N)](rng.randrange(100, 5000)))
    if len(live) > 50_000:
        live[rng.randrange(len(live))] = live[-1]
        live.pop()
