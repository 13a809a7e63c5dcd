#!/usr/bin/env bash
# The live view's cost (issue: live view and attach): the CPU time `memtrace live` takes while
# the tracked program allocates (bench/livecost.c), as a share of one core over the program's
# run. The target: at most 0.1 core at 10 million events a second.
#
#   bench/livecost.sh [SECONDS [RATE [KEEP]]]   (default 8 s at 10 M events/s; RATE 0: as fast
#                                         as one thread allocates; KEEP: one block in KEEP stays
#                                         live, 64 by default, 0 for a flat heap; needs tmux and gcc)
#
# MEMTRACE=path/to/memtrace runs another build's view (the program is tracked by this
# worktree's build), to compare two builds' views side by side under the same load.
set -euo pipefail
cd "$(dirname "$0")/.."
run_s=${1:-8}
rate=${2:-10000000}
keep=${3:-64}
cargo build --release -q
tracker=$PWD/target/release/memtrace
bin=${MEMTRACE:-$tracker}
work=$(mktemp -d)
session=livecost-$$
trap 'tmux kill-session -t "$session" 2>/dev/null || true; rm -rf "$work"' EXIT
gcc -O2 -o "$work/livecost" bench/livecost.c

. bench/live_view.sh

echo "untracked:  $("$work/livecost" "$run_s" "$rate" "$keep")"
"$tracker" run -q -o "$work/out.bin" "$work/livecost" "$run_s" "$rate" "$keep" >"$work/tracked.txt" &
run_pid=$!
live_pid=$(view_when_written "$run_pid" "$work/out.bin" "$bin" "$session")
start=$(date +%s.%N)
# The steady state: the view's CPU from 2 s into the run on (its start, the first reads of the
# binary's symbols and the first tree, are behind it then); from half a shorter run.
warm_s=$(awk -v r="$run_s" 'BEGIN { print (r >= 4 ? 2 : r / 2) }')
sleep "$warm_s"
warm=$(date +%s.%N)
warm_cpu=$(cpu_s "$live_pid")
wait "$run_pid"
end=$(date +%s.%N)
during=$(cpu_s "$live_pid")
# Let it read the rest (the view keeps its final state), then take the total too.
sleep 3
total=$(cpu_s "$live_pid")
tmux send-keys -t "$session" q
echo "tracked:    $(cat "$work/tracked.txt")"
events=$(awk '{print $1; exit}' "$work/tracked.txt")
awk -v c="$during" -v t="$total" -v s="$start" -v e="$end" -v n="$events" -v size="$(stat -c %s "$work/out.bin")" -v wc="$warm_cpu" -v w0="$warm" 'BEGIN {
    w = e - s
    printf "live view:  %.2f s of CPU over the program'"'"'s %.2f s run = %.3f core at %.1f M events/s (%.2f s with the catch-up after the end); capture %.1f MB\n", c, w, c / w, n / w / 1e6, t, size / 1e6
    printf "per event:  %.1f ns of the view'"'"'s CPU during the run (%d events), so %.3f core at 10 M events/s\n", c * 1e9 / n, n, c * 1e9 / n * 0.01
    # Events after the warm-up, at the mean rate of the run.
    m = n * (e - w0) / w
    printf "steady:     %.3f core from %.1f s into the run on (%.1f ns per event over %.1f s)\n", (c - wc) / (e - w0), w0 - s, (c - wc) * 1e9 / m, e - w0
}'
