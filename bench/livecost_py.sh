#!/usr/bin/env bash
# The live view's cost on a Python program (issue: live view and attach; bench/livecost.sh is the
# native one): the CPU time `memtrace live` takes while `memtrace run` tracks a Python workload,
# as a share of one core over the program's run, with the program's event rate and the view's
# time per event (the target: at most 0.1 core at 10 million events a second).
#
#   bench/livecost_py.sh [WORKLOAD [PYTHON [ROUNDS]]]   (default: bench/workloads/small_objects.py,
#                                                     the python3 on PATH, 3 rounds; needs tmux)
#
# MEMTRACE=path/to/memtrace runs another build's view (the program is tracked by this
# worktree's build), to compare two builds' views side by side under the same load.
set -euo pipefail
cd "$(dirname "$0")/.."
workload=${1:-bench/workloads/small_objects.py}
py=${2:-$(python3 -c 'import sys; print(sys.executable)')}
rounds=${3:-3}
cargo build --release -q
tracker=$PWD/target/release/memtrace
bin=${MEMTRACE:-$tracker}
work=$(mktemp -d)
session=livecost-py-$$
trap 'tmux kill-session -t "$session" 2>/dev/null || true; rm -rf "$work"' EXIT

. bench/live_view.sh

echo "workload: $workload on $py; view: $bin"
for round in $(seq 1 "$rounds"); do
    rm -f "$work/out.bin"
    "$tracker" run -q -o "$work/out.bin" --python "$py" "$workload" >/dev/null &
    run_pid=$!
    live_pid=$(view_when_written "$run_pid" "$work/out.bin" "$bin" "$session")
    start=$(date +%s.%N)
    wait "$run_pid"
    end=$(date +%s.%N)
    during=$(cpu_s "$live_pid")
    sleep 2
    total=$(cpu_s "$live_pid")
    tmux kill-session -t "$session"
    events=$("$tracker" stats --json "$work/out.bin" | "$py" -c 'import json, sys; print(json.load(sys.stdin)["records_written"])')
    awk -v c="$during" -v t="$total" -v s="$start" -v e="$end" -v n="$events" -v r="$round" 'BEGIN {
        w = e - s
        printf "round %d: view %.2f s of CPU over the program'"'"'s %.2f s run = %.3f core at %.1f M events/s (%.1f ns per event; %.2f s with the catch-up after the end)\n", r, c, w, c / w, n / w / 1e6, t * 1e9 / n, t
    }'
done
