#!/usr/bin/env bash
# Python workloads with native stacks, side by side in one run: untracked, `memtrace run
# --native` and `memray run --native --trace-python-allocators`.
#   bench/pynativebench.sh [rounds] [python]
# Workloads: bench/workloads/small_objects.py and numpy_work.py (when numpy imports in
# the bench venv), or the files named in $PYBENCH_WORKLOADS. Prints the median wall seconds of
# each, what each tool adds, and memtrace's added time as a share of memray's (the target: at
# most 1). memray is installed from PyPI into target/bench-venv the first time (as pybench.sh).
# $MEMTRACE_BEFORE names another memtrace binary (its tracker beside it), run with --native in the
# same rounds and printed as "before", for a before/after comparison in one run.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
py=${2:-$(python3 -c 'import sys; print(sys.executable)')}
memtrace=$PWD/target/release/memtrace
venv=$PWD/target/bench-venv
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cargo build --release -q
if [ ! -x "$venv/bin/memray" ]; then
    "$py" -m venv "$venv" && "$venv/bin/pip" install -q memray || { echo "cannot install memray" >&2; exit 1; }
fi
workloads=${PYBENCH_WORKLOADS:-bench/workloads/small_objects.py}
if [ -z "${PYBENCH_WORKLOADS:-}" ] && "$venv/bin/python" -c 'import numpy' 2>/dev/null; then
    workloads="$workloads bench/workloads/numpy_work.py"
fi
wall() { # wall seconds of a command
    /usr/bin/time -f "%e" -o "$work/t" "$@" >/dev/null 2>"$work/err" || { cat "$work/err" >&2; exit 1; }
    cat "$work/t"
}
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "python: $venv/bin/python, $rounds rounds (median wall seconds)"
for w in $workloads; do
    : >"$work/plain"; : >"$work/mt"; : >"$work/mr"; : >"$work/before"
    for _ in $(seq "$rounds"); do
        wall "$venv/bin/python" "$w" >>"$work/plain"
        wall "$memtrace" run --native -q -f -o "$work/mt.bin" --python "$venv/bin/python" "$w" >>"$work/mt"
        if [ -n "${MEMTRACE_BEFORE:-}" ]; then
            wall "$MEMTRACE_BEFORE" run --native -q -f -o "$work/mt.bin" --python "$venv/bin/python" "$w" >>"$work/before"
        fi
        rm -f "$work/mr.bin"
        wall "$venv/bin/python" -m memray run -q --native --trace-python-allocators -o "$work/mr.bin" "$w" >>"$work/mr"
    done
    p=$(median <"$work/plain"); m=$(median <"$work/mt"); r=$(median <"$work/mr")
    awk -v n="$(basename "$w" .py)" -v p="$p" -v m="$m" -v r="$r" 'BEGIN {
        printf "%s: untracked %.2fs  memtrace --native %.2fs (+%.2fs)  memray --native %.2fs (+%.2fs)  memtrace/memray added: %.2f\n",
            n, p, m, m - p, r, r - p, (m - p) / (r - p > 1e-9 ? r - p : 1e-9) }'
    if [ -n "${MEMTRACE_BEFORE:-}" ]; then
        b=$(median <"$work/before")
        awk -v b="$b" -v p="$p" -v r="$r" 'BEGIN {
            printf "  before (%s): --native %.2fs (+%.2fs), memtrace/memray added: %.2f\n",
                ENVIRON["MEMTRACE_BEFORE"], b, b - p, (b - p) / (r - p > 1e-9 ? r - p : 1e-9) }'
    fi
done
