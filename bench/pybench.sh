#!/usr/bin/env bash
# Python workloads side by side: untracked, memtrace, memray --trace-python-allocators, in one run.
#   bench/pybench.sh [rounds] [python]
# For each workload of bench/workloads (small_objects, calls, large_buffers; or the
# files named in $PYBENCH_WORKLOADS), runs the three alternating `rounds` times (default 3) and
# prints the median wall seconds (to the millisecond: bench/measure.py times each run to the
# microsecond), the max resident size, what each tool adds, memtrace's added
# time as a share of memray's (by wall time and by CPU time, user+sys: the CPU figure moves less
# when the machine is busy), memtrace's bytes per event, and both peaks. memray is installed from PyPI into
# target/bench-venv the first time (never a dependency of memtrace; $MEMRAY_VENV names another
# venv). $MEMTRACE_BEFORE names another memtrace binary (with its tracker beside it), run in the
# same rounds: its figures are printed as "before", for a before/after comparison in one run.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
py=${2:-$(python3 -c 'import sys; print(sys.executable)')}
workloads=${PYBENCH_WORKLOADS:-"bench/workloads/small_objects.py bench/workloads/calls.py bench/workloads/large_buffers.py"}
memtrace=$PWD/target/release/memtrace
venv=${MEMRAY_VENV:-$PWD/target/bench-venv}
before=${MEMTRACE_BEFORE:-}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cargo build --release -q
if [ ! -x "$venv/bin/memray" ]; then
    "$py" -m venv "$venv" && "$venv/bin/pip" install -q memray || { echo "cannot install memray" >&2; exit 1; }
fi
# memray runs on its venv's interpreter: a build other than $py's (pyenv's 3.11.7 against
# Debian's 3.11.2, built with other optimizations) would not be a side-by-side comparison.
if [ -x "$venv/bin/python" ] && [ "$("$venv/bin/python" -c 'import sys; print(sys.version)')" != "$("$py" -c 'import sys; print(sys.version)')" ]; then
    echo "warning: $venv runs another Python build than $py: memray's figures are not side by side" >&2
fi
run() { # wall seconds, max RSS (KB) and CPU seconds (user+sys) of a command, to the microsecond
    bench/measure.py "$@" || exit 1
}
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "python: $py, $rounds rounds (median wall seconds, max RSS)"
for w in $workloads; do
    name=$(basename "$w" .py)
    : >"$work/plain"; : >"$work/mt"; : >"$work/mr"; : >"$work/before"
    for _ in $(seq "$rounds"); do
        run "$py" "$w" >>"$work/plain"
        run "$memtrace" run -q -f -o "$work/mt.bin" --python "$py" "$w" >>"$work/mt"
        if [ -n "$before" ]; then
            run "$before" run -q -f -o "$work/before.bin" --python "$py" "$w" >>"$work/before"
        fi
        rm -f "$work/mr.bin"
        run "$venv/bin/python" -m memray run -q --trace-python-allocators -o "$work/mr.bin" "$w" >>"$work/mr"
    done
    p=$(cut -d' ' -f1 "$work/plain" | median); m=$(cut -d' ' -f1 "$work/mt" | median); r=$(cut -d' ' -f1 "$work/mr" | median)
    prss=$(cut -d' ' -f2 "$work/plain" | median); mrss=$(cut -d' ' -f2 "$work/mt" | median); rrss=$(cut -d' ' -f2 "$work/mr" | median)
    pc=$(cut -d' ' -f3 "$work/plain" | median); mc=$(cut -d' ' -f3 "$work/mt" | median); rc=$(cut -d' ' -f3 "$work/mr" | median)
    "$memtrace" stats --json "$work/mt.bin" >"$work/mt.json"
    "$venv/bin/python" -m memray stats --json -f -o "$work/mr.json" "$work/mr.bin" >/dev/null 2>&1
    "$py" - "$work/mt.json" "$work/mr.json" "$work/mt.bin" "$name" "$p" "$m" "$r" "$prss" "$mrss" "$rrss" "$pc" "$mc" "$rc" <<'PY'
import json, os, sys
mt, mr, cap, name = json.load(open(sys.argv[1])), json.load(open(sys.argv[2])), sys.argv[3], sys.argv[4]
p, m, r = map(float, sys.argv[5:8])
prss, mrss, rrss = map(int, sys.argv[8:11])
pc, mc, rc = map(float, sys.argv[11:14])
events = mt["total_allocations"] + mt["total_frees"]
disk = os.stat(cap).st_blocks * 512
peak, startup = mt["peak_bytes"], mt.get("startup_bytes") or 0
mpeak = mr["metadata"]["peak_memory"]
print(f"{name}: untracked {p:.3f}s  memtrace {m:.3f}s ({m / p:.3f}x, +{m - p:.3f}s)  "
      f"memray {r:.3f}s ({r / p:.2f}x, +{r - p:.3f}s)  memtrace/memray added: {(m - p) / max(r - p, 1e-9):.3f}")
print(f"  CPU (user+sys): untracked {pc:.3f}s  memtrace {mc:.3f}s ({mc / pc:.3f}x)  memray {rc:.3f}s "
      f"({rc / pc:.2f}x)  memtrace/memray added: {(mc - pc) / max(rc - pc, 1e-9):.3f}")
print(f"  extra RSS: memtrace +{(mrss - prss) / 1024:.1f} MB, memray +{(rrss - prss) / 1024:.1f} MB; "
      f"capture {disk / max(events, 1):.2f} bytes per event ({events} events)")
print(f"  peak: memtrace {peak}, memray {mpeak}: {100 * (peak - mpeak) / mpeak:+.1f}% "
      f"(memtrace leaves out the interpreter's start-up, {startup} bytes live, as memray does)")
PY
    if [ -n "$before" ]; then
        b=$(cut -d' ' -f1 "$work/before" | median); bc=$(cut -d' ' -f3 "$work/before" | median)
        awk -v p="$p" -v b="$b" -v m="$m" -v r="$r" -v pc="$pc" -v bc="$bc" -v mc="$mc" -v rc="$rc" 'BEGIN {
            printf "  before (%s): %.2fs (%.2fx, +%.2fs), memtrace/memray added: %.2f wall, %.2f CPU; after: %.2f wall, %.2f CPU\n",
                ENVIRON["MEMTRACE_BEFORE"], b, b / p, b - p, (b - p) / (r - p), (bc - pc) / (rc - pc), (m - p) / (r - p), (mc - pc) / (rc - pc) }'
    fi
done
