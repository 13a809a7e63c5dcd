#!/usr/bin/env bash
# The tracker's cost per malloc/free pair, side by side with heaptrack, in one run.
#   bench/mallocbench.sh [pairs] [rounds]
# Builds bench/workloads/mallocbench.c (or $MALLOCBENCH_SRC), then runs it untracked,
# under memtrace and under heaptrack, alternating, `rounds` times; prints the median user+sys time
# of each, the nanoseconds each tool adds per pair, their ratio, and memtrace's bytes per event.
# $MEMTRACE_BEFORE names another memtrace binary (its tracker beside it), run in the same rounds
# and printed as "before", for a before/after comparison in one run.
set -euo pipefail
cd "$(dirname "$0")/.."
pairs=${1:-20000000}
rounds=${2:-3}
src=${MALLOCBENCH_SRC:-bench/workloads/mallocbench.c}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cargo build --release -q
gcc -O2 -pthread -o "$work/mallocbench" "$src"
if ! command -v heaptrack >/dev/null 2>&1; then
    echo "heaptrack not found (apt-get install heaptrack): measuring memtrace alone" >&2
fi
cpu() { # user+sys seconds of a command
    /usr/bin/time -f "%U %S" -o "$work/t" "$@" >/dev/null 2>"$work/err" || { cat "$work/err" >&2; exit 1; }
    awk '{print $1 + $2}' "$work/t"
}
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
: >"$work/plain"; : >"$work/memtrace"; : >"$work/heaptrack"; : >"$work/before"
before=${MEMTRACE_BEFORE:-}
for _ in $(seq "$rounds"); do
    cpu "$work/mallocbench" "$pairs" >>"$work/plain"
    cpu ./target/release/memtrace run -q -f -o "$work/mb.bin" -- "$work/mallocbench" "$pairs" >>"$work/memtrace"
    if [ -n "$before" ]; then
        cpu "$before" run -q -f -o "$work/before.bin" -- "$work/mallocbench" "$pairs" >>"$work/before"
    fi
    if command -v heaptrack >/dev/null 2>&1; then
        cpu heaptrack -o "$work/ht" "$work/mallocbench" "$pairs" >>"$work/heaptrack"
        rm -f "$work"/ht*
    fi
done
plain=$(median <"$work/plain")
mt=$(median <"$work/memtrace")
events=$((2 * pairs))
size=$(stat -c %s "$work/mb.bin")
used=$(du -B1 "$work/mb.bin" | cut -f1)
echo "pairs: $pairs, rounds: $rounds (median CPU seconds)"
echo "untracked: ${plain}s  memtrace: ${mt}s"
awk -v p="$plain" -v m="$mt" -v n="$pairs" 'BEGIN { printf "memtrace adds %.1f ns per pair (%.2fx the untracked run)\n", (m - p) * 1e9 / n, m / p }'
if [ -s "$work/heaptrack" ]; then
    ht=$(median <"$work/heaptrack")
    echo "heaptrack: ${ht}s"
    awk -v p="$plain" -v m="$mt" -v h="$ht" -v n="$pairs" 'BEGIN { printf "heaptrack adds %.1f ns per pair; memtrace adds %.2f of what heaptrack adds\n", (h - p) * 1e9 / n, (m - p) / (h - p) }'
fi
if [ -n "$before" ]; then
    b=$(median <"$work/before")
    awk -v p="$plain" -v b="$b" -v n="$pairs" -v h="${ht:-0}" 'BEGIN {
        printf "before (%s): %ss, adds %.1f ns per pair", ENVIRON["MEMTRACE_BEFORE"], b, (b - p) * 1e9 / n
        if (h > 0) printf ", %.2f of what heaptrack adds", (b - p) / (h - p)
        printf "\n" }'
fi
awk -v s="$size" -v u="$used" -v e="$events" 'BEGIN { printf "capture: %d bytes (%d on disk) for %d events: %.2f bytes per event\n", s, u, e, u / e }'
