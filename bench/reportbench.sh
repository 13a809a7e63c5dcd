#!/usr/bin/env bash
# Reports side by side: memtrace stats / summary / tree --text / flamegraph against memray stats /
# summary / flamegraph, on captures of one run of a workload each (memtrace run, memray run
# --trace-python-allocators). memray's tree is an interactive (Textual) view that does not exit:
# memtrace tree --text is set against memray summary, the nearest batch report.
#   bench/reportbench.sh [rounds] [python]
# The workload is bench/workloads/small_objects.py, or $REPORTBENCH_WORKLOAD. Each report runs
# `rounds` times (default 3), alternating; prints the median wall seconds and max RSS of each,
# the spread (min-max), and the ratios (memray's median time / memtrace's). memtrace's reports
# run twice over: "whole" reads the capture whole (MEMTRACE_INDEX=off: a first report), "index"
# answers from the capture's index (docs/ARCHITECTURE.md, "The capture index": every later
# report). The CPU seconds (user + system) are printed too, with their ratio: on a loaded
# machine the wall time follows the load more than the report. memray is installed from PyPI into target/bench-venv the first time (never a
# dependency of memtrace), unless $MEMRAY_VENV names a virtualenv that has it.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
py=${2:-$(python3 -c 'import sys; print(sys.executable)')}
workload=${REPORTBENCH_WORKLOAD:-bench/workloads/small_objects.py}
memtrace=$PWD/target/release/memtrace
venv=${MEMRAY_VENV:-$PWD/target/bench-venv}
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
run() { # wall seconds, max RSS (KB) and CPU seconds of a command, its output dropped
    /usr/bin/time -f "%e %M %U %S" -o "$work/t" "$@" >/dev/null 2>"$work/err" || { cat "$work/err" >&2; exit 1; }
    cat "$work/t"
}

echo "workload: $workload, python: $py"
"$memtrace" run -q -f -o "$work/mt.bin" --python "$py" "$workload" >/dev/null
"$venv/bin/python" -m memray run -q --trace-python-allocators -o "$work/mr.bin" "$workload" >/dev/null
events=$(MEMTRACE_INDEX=off "$memtrace" stats --json "$work/mt.bin" | "$py" -c 'import json,sys; d=json.load(sys.stdin); print(d["total_allocations"] + d["total_frees"])')
"$memtrace" stats "$work/mt.bin" >/dev/null # leaves the index
"$memtrace" flamegraph -o "$work/warm.html" "$work/mt.bin" >/dev/null # and the page's entry
echo "captures: memtrace $(du -h "$work/mt.bin" | cut -f1) ($events events, index $(du -h "$work/.mt.bin.mtidx" | cut -f1)), memray $(du -h "$work/mr.bin" | cut -f1); $rounds rounds"

mt() { run "$memtrace" "$@" "$work/mt.bin"; }
whole() { MEMTRACE_INDEX=off run "$memtrace" "$@" "$work/mt.bin"; }
mr() { run "$venv/bin/python" -m memray "$@" "$work/mr.bin"; }
for _ in $(seq "$rounds"); do
    echo "stats whole $(whole stats)"
    echo "stats index $(mt stats)"
    echo "stats memray $(mr stats)"
    echo "summary whole $(whole summary)"
    echo "summary index $(mt summary)"
    echo "summary memray $(mr summary)"
    echo "tree whole $(whole tree --text)"
    echo "tree index $(mt tree --text)"
    echo "flamegraph whole $(whole flamegraph -o "$work/w.html")"
    echo "flamegraph index $(mt flamegraph -o "$work/i.html")"
    echo "flamegraph memray $(mr flamegraph -f -o "$work/m.html")"
done >"$work/times"
"$py" - "$work/times" <<'PY'
import statistics, sys
t = {}
for line in open(sys.argv[1]):
    report, who, wall, rss, user, system = line.split()
    t.setdefault((report, who), []).append((float(wall), int(rss), float(user) + float(system)))
print("  (tree: memray's column is its summary)")
print(f"  {'report':<11}{'memray':>22}{'memtrace whole':>24}{'memtrace index':>24}"
      f"{'memray/whole':>14}{'memray/index':>14}")
for report in ["stats", "summary", "tree", "flamegraph"]:
    cells, med, cpu = [], {}, {}
    for who in ["memray", "whole", "index"]:
        runs = t[(report if who != "memray" or report != "tree" else "summary", who)]
        walls = [w for w, _, _ in runs]
        med[who] = statistics.median(walls)
        cpu[who] = statistics.median(c for _, _, c in runs)
        rss = statistics.median(r for _, r, _ in runs) / 1024
        cells.append(f"{med[who]:6.2f} s ({min(walls):.2f}-{max(walls):.2f}) {rss:4.0f} MB")
    print(f"  {report:<11}" + "".join(f"{c:>24}" for c in cells)
          + f"{med['memray'] / max(med['whole'], 1e-3):13.1f}x{med['memray'] / max(med['index'], 1e-3):13.1f}x")
    cpu_ratio = cpu["memray"] / max(cpu["whole"], 1e-3)
    print(f"  {'':<11}{'CPU s: memray %.2f, whole %.2f, index %.2f' % (cpu['memray'], cpu['whole'], cpu['index']):>72}"
          f"{cpu_ratio:13.1f}x (CPU)")
PY
