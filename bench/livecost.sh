#!/usr/bin/env bash
# The live view's cost (issue: live view and attach): the CPU time `memtrace live` takes while
# the tracked program allocates as fast as one thread can (bench/livecost.c), as a share of one
# core over the program's run. The target: at most 0.1 core at 10 million events a second.
#
#   bench/livecost.sh [SECONDS]        (default 8; needs tmux and gcc)
set -euo pipefail
cd "$(dirname "$0")/.."
run_s=${1:-8}
cargo build --release -q
bin=$PWD/target/release/memtrace
work=$(mktemp -d)
session=livecost-$$
trap 'tmux kill-session -t "$session" 2>/dev/null || true; rm -rf "$work"' EXIT
gcc -O2 -o "$work/livecost" bench/livecost.c

cpu_s() { # utime + stime of a process, in seconds
    awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$1/stat"
}

echo "untracked:  $("$work/livecost" "$run_s")"
"$bin" run -q -o "$work/out.bin" "$work/livecost" "$run_s" >"$work/tracked.txt" &
run_pid=$!
while [ ! -s "$work/out.bin" ]; do sleep 0.01; done
tmux new-session -d -s "$session" -x 200 -y 50 "$bin live $work/out.bin"
live_pid=""
while [ -z "$live_pid" ]; do
    live_pid=$(pgrep -f -n "memtrace live $work/out.bin" || true)
done
start=$(date +%s.%N)
wait "$run_pid"
end=$(date +%s.%N)
during=$(cpu_s "$live_pid")
# Let it read the rest (the view keeps its final state), then take the total too.
sleep 3
total=$(cpu_s "$live_pid")
tmux send-keys -t "$session" q
echo "tracked:    $(cat "$work/tracked.txt")"
awk -v c="$during" -v t="$total" -v s="$start" -v e="$end" -v size="$(stat -c %s "$work/out.bin")" 'BEGIN {
    w = e - s
    printf "live view:  %.2f s of CPU over the program'"'"'s %.2f s run = %.3f core (%.2f s with the catch-up after the end); capture %.1f MB\n", c, w, c / w, t, size / 1e6
}'
