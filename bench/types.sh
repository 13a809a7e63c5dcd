#!/usr/bin/env bash
# The cost of object types, side by side in one run: untracked, `memtrace run --no-types` (types
# off) and `memtrace run` (types on: typed frees and the walk at the script's end), alternating.
#   bench/types.sh [rounds] [python] [workload]
# Prints per mode the median wall and CPU (user+sys) seconds with their spread (min-max), the
# ratios against untracked and types on against types off, and the capture's size.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
py=${2:-python3}
workload=${3:-bench/workloads/small_objects.py}
memtrace=$PWD/target/release/memtrace
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cargo build --release -q
run() { # wall seconds and CPU seconds (user+sys) of a command
    /usr/bin/time -f "%e %U %S" -o "$work/t" "$@" >/dev/null 2>"$work/err" || { cat "$work/err" >&2; exit 1; }
    awk '{printf "%s %.2f\n", $1, $2 + $3}' "$work/t"
}
: >"$work/plain"; : >"$work/off"; : >"$work/on"
for _ in $(seq "$rounds"); do
    run "$py" "$workload" >>"$work/plain"
    run "$memtrace" run -q -f -o "$work/off.bin" --no-types --python "$py" "$workload" >>"$work/off"
    run "$memtrace" run -q -f -o "$work/on.bin" --python "$py" "$workload" >>"$work/on"
done
"$py" - "$work" "$rounds" "$py" "$workload" <<'PY'
import os, statistics, sys
work, rounds, py, workload = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
def load(name):
    rows = [tuple(map(float, l.split())) for l in open(os.path.join(work, name)) if l.strip()]
    return [r[0] for r in rows], [r[1] for r in rows]
print(f"{workload} with {py}, {rounds} rounds alternating (median, spread min-max)")
med = {}
for name, label in [("plain", "untracked"), ("off", "types off"), ("on", "types on")]:
    wall, cpu = load(name)
    med[name] = (statistics.median(wall), statistics.median(cpu))
    size = ""
    if name != "plain":
        size = f"  capture {os.path.getsize(os.path.join(work, name + '.bin')) / 1e6:.1f} MB"
    print(f"  {label:<10} wall {med[name][0]:.2f}s ({min(wall):.2f}-{max(wall):.2f})  "
          f"CPU {med[name][1]:.2f}s ({min(cpu):.2f}-{max(cpu):.2f}){size}")
for name, label in [("off", "types off"), ("on", "types on")]:
    print(f"  {label} / untracked: wall {med[name][0] / med['plain'][0]:.2f}x, CPU {med[name][1] / med['plain'][1]:.2f}x")
print(f"  types on / types off: wall {med['on'][0] / med['off'][0]:.3f}, CPU {med['on'][1] / med['off'][1]:.3f}")
PY
