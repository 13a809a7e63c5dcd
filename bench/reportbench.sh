#!/usr/bin/env bash
# Reports side by side: memtrace stats / tree (text) / summary against memray stats / summary,
# on captures of one run of a workload each (memtrace run, memray run --trace-python-allocators).
#   bench/reportbench.sh [rounds] [python]
# The workload is bench/workloads/small_objects.py, or $REPORTBENCH_WORKLOAD. Each
# report runs `rounds` times (default 3), alternating; prints the median wall seconds and max
# RSS of each, and the ratios (memray's time / memtrace's, memray's RSS / memtrace's). memray is
# installed from PyPI into target/bench-venv the first time (never a dependency of memtrace).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
py=${2:-$(python3 -c 'import sys; print(sys.executable)')}
workload=${REPORTBENCH_WORKLOAD:-bench/workloads/small_objects.py}
memtrace=$PWD/target/release/memtrace
venv=$PWD/target/bench-venv
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cargo build --release -q
if [ ! -x "$venv/bin/memray" ]; then
    "$py" -m venv "$venv" && "$venv/bin/pip" install -q memray || { echo "cannot install memray" >&2; exit 1; }
fi
run() { # wall seconds and max RSS (KB) of a command, its output dropped
    /usr/bin/time -f "%e %M" -o "$work/t" "$@" >/dev/null 2>"$work/err" || { cat "$work/err" >&2; exit 1; }
    cat "$work/t"
}
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

echo "workload: $workload, python: $py"
"$memtrace" run -q -f -o "$work/mt.bin" --python "$py" "$workload" >/dev/null
"$venv/bin/python" -m memray run -q --trace-python-allocators -o "$work/mr.bin" "$workload" >/dev/null
events=$("$memtrace" stats --json "$work/mt.bin" | "$py" -c 'import json,sys; d=json.load(sys.stdin); print(d["total_allocations"] + d["total_frees"])')
echo "captures: memtrace $(du -h "$work/mt.bin" | cut -f1) ($events events), memray $(du -h "$work/mr.bin" | cut -f1); $rounds rounds, median"

reports="mt_stats mt_tree mt_summary mr_stats mr_summary"
for r in $reports; do : >"$work/$r"; done
for _ in $(seq "$rounds"); do
    run "$memtrace" stats "$work/mt.bin" >>"$work/mt_stats"
    run "$memtrace" tree --text "$work/mt.bin" >>"$work/mt_tree"
    run "$memtrace" summary "$work/mt.bin" >>"$work/mt_summary"
    run "$venv/bin/python" -m memray stats "$work/mr.bin" >>"$work/mr_stats"
    run "$venv/bin/python" -m memray summary "$work/mr.bin" >>"$work/mr_summary"
done
for r in $reports; do
    echo "$r $(cut -d' ' -f1 "$work/$r" | median) $(cut -d' ' -f2 "$work/$r" | median)"
done >"$work/medians"
"$py" - "$work/medians" <<'PY'
import sys
m = {}
for line in open(sys.argv[1]):
    name, wall, rss = line.split()
    m[name] = (float(wall), int(rss))
names = {"mt_stats": "memtrace stats", "mt_tree": "memtrace tree --text", "mt_summary": "memtrace summary",
         "mr_stats": "memray stats", "mr_summary": "memray summary"}
for k, label in names.items():
    w, r = m[k]
    print(f"  {label:<22} {w:7.2f} s  {r / 1024:8.1f} MB")
pairs = [("mt_stats", "mr_stats"), ("mt_tree", "mr_summary"), ("mt_summary", "mr_summary"),
         ("mt_tree", "mr_stats"), ("mt_summary", "mr_stats")]
for ours, theirs in pairs:
    (w, r), (W, R) = m[ours], m[theirs]
    print(f"  {names[ours]:<22} vs {names[theirs]:<15} {W / max(w, 1e-3):6.1f}x faster, "
          f"{R / r:5.2f}x less memory ({r / 1024:.0f} vs {R / 1024:.0f} MB)")
PY
