#!/usr/bin/env bash
# The HTML report side by side: `memtrace flamegraph` against `memray flamegraph --temporal`
# (memray's page with a time range to pick, as memtrace's has), on a capture of one run of each
# workload by each tool (memray with --trace-python-allocators, to see the same allocations); then memtrace's page on a capture of about 10^8 events.
#   bench/pagebench.sh [python] [events]
# Prints, per workload, each tool's report wall seconds and page size. The 10^8-event capture
# is mallocbench (bench/workloads/mallocbench.c) with events/2 malloc/free pairs over 4 threads;
# its page must stay under 10 MB (exit status 1 otherwise). memray is installed from PyPI into
# target/bench-venv the first time (never a dependency of memtrace). Runs each report once.
set -euo pipefail
cd "$(dirname "$0")/.."
py=${1:-$(python3 -c 'import sys; print(sys.executable)')}
events=${2:-100000000}
memtrace=$PWD/target/release/memtrace
venv=$PWD/target/bench-venv
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cargo build --release -q
if [ ! -x "$venv/bin/memray" ]; then
    "$py" -m venv "$venv" && "$venv/bin/pip" install -q memray || { echo "cannot install memray" >&2; exit 1; }
fi
wall() { # wall seconds of a command, its output dropped
    /usr/bin/time -f "%e" -o "$work/t" "$@" >/dev/null 2>"$work/err" || { cat "$work/err" >&2; exit 1; }
    cat "$work/t"
}
mib() { awk -v b="$(stat -c %s "$1")" 'BEGIN { printf "%.2f MiB", b / 1048576 }'; }

printf "%-18s %12s %14s %14s %14s %14s\n" workload events "memtrace s" "memtrace page" "memray s" "memray page"
for w in small_objects large_buffers calls threads many_stacks; do
    src=bench/workloads/$w.py
    "$memtrace" run -q -f -o "$work/mt.bin" --python "$py" "$src" >/dev/null
    "$venv/bin/python" -m memray run -q -f --trace-python-allocators -o "$work/mr.bin" "$src" >/dev/null
    n=$("$memtrace" stats --json "$work/mt.bin" | "$py" -c 'import json,sys; d=json.load(sys.stdin); print(d["total_allocations"] + d["total_frees"])')
    mt=$(wall "$memtrace" flamegraph -o "$work/mt.html" "$work/mt.bin")
    mr=$(wall "$venv/bin/python" -m memray flamegraph --temporal -f -o "$work/mr.html" "$work/mr.bin")
    printf "%-18s %12s %14s %14s %14s %14s\n" "$w" "$n" "$mt" "$(mib "$work/mt.html")" "$mr" "$(mib "$work/mr.html")"
    rm -f "$work"/mt.* "$work"/mr.*
done

gcc -O2 -pthread -o "$work/mallocbench" bench/workloads/mallocbench.c
"$memtrace" run -q -f -o "$work/big.bin" -- "$work/mallocbench" $((events / 8)) 4 >/dev/null
n=$("$memtrace" stats --json "$work/big.bin" | "$py" -c 'import json,sys; d=json.load(sys.stdin); print(d["total_allocations"] + d["total_frees"])')
t=$(wall "$memtrace" flamegraph -o "$work/big.html" "$work/big.bin")
size=$(stat -c %s "$work/big.html")
echo "mallocbench: $n events, capture $(mib "$work/big.bin"), page $(mib "$work/big.html") in ${t}s"
[ "$size" -lt 10000000 ] || { echo "the page is over 10 MB" >&2; exit 1; }
