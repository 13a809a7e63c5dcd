#!/usr/bin/env bash
# The cost of `memtrace run --native` per malloc/free pair, side by side with heaptrack (which
# always unwinds the whole stack), in one run.
#   bench/nativebench.sh [pairs] [rounds]
# Builds bench/workloads/mallocbench.c (or $MALLOCBENCH_SRC), then runs it untracked,
# under memtrace (call sites only), memtrace --native and heaptrack, alternating, `rounds`
# times; prints the median user+sys time of each, the nanoseconds each adds per pair, and
# memtrace --native's added time as a share of heaptrack's (the target, issue 20: at most 1/4).
# $MEMTRACE_BEFORE names another memtrace binary (its tracker beside it), run with --native in the
# same rounds and printed as "before", for a before/after comparison in one run.
set -euo pipefail
cd "$(dirname "$0")/.."
pairs=${1:-20000000}
rounds=${2:-3}
src=${MALLOCBENCH_SRC:-bench/workloads/mallocbench.c}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cargo build --release -q
gcc -O2 -g -pthread -o "$work/mallocbench" "$src"
if ! command -v heaptrack >/dev/null 2>&1; then
    echo "heaptrack not found (apt-get install heaptrack): measuring memtrace alone" >&2
fi
cpu() { # user+sys seconds of a command
    /usr/bin/time -f "%U %S" -o "$work/t" "$@" >/dev/null 2>"$work/err" || { cat "$work/err" >&2; exit 1; }
    awk '{print $1 + $2}' "$work/t"
}
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
: >"$work/plain"; : >"$work/sites"; : >"$work/native"; : >"$work/heaptrack"; : >"$work/before"
before=${MEMTRACE_BEFORE:-}
for _ in $(seq "$rounds"); do
    cpu "$work/mallocbench" "$pairs" >>"$work/plain"
    cpu ./target/release/memtrace run -q -f -o "$work/mb.bin" -- "$work/mallocbench" "$pairs" >>"$work/sites"
    cpu ./target/release/memtrace run --native -q -f -o "$work/mbn.bin" -- "$work/mallocbench" "$pairs" >>"$work/native"
    if [ -n "$before" ]; then
        cpu "$before" run --native -q -f -o "$work/before.bin" -- "$work/mallocbench" "$pairs" >>"$work/before"
    fi
    if command -v heaptrack >/dev/null 2>&1; then
        cpu heaptrack -o "$work/ht" "$work/mallocbench" "$pairs" >>"$work/heaptrack"
        rm -f "$work"/ht*
    fi
done
plain=$(median <"$work/plain")
sites=$(median <"$work/sites")
native=$(median <"$work/native")
echo "pairs: $pairs, rounds: $rounds (median CPU seconds)"
echo "untracked: ${plain}s  memtrace: ${sites}s  memtrace --native: ${native}s"
added() { awk -v p="$plain" -v m="$1" -v n="$pairs" 'BEGIN { printf "%.1f", (m - p) * 1e9 / n }'; }
echo "memtrace adds $(added "$sites") ns per pair; memtrace --native adds $(added "$native") ns per pair"
if [ -s "$work/heaptrack" ]; then
    ht=$(median <"$work/heaptrack")
    echo "heaptrack: ${ht}s, adds $(added "$ht") ns per pair"
    awk -v p="$plain" -v m="$native" -v h="$ht" 'BEGIN { printf "memtrace --native adds %.2f of what heaptrack adds (target: at most 0.25)\n", (m - p) / (h - p) }'
fi
if [ -n "$before" ]; then
    b=$(median <"$work/before")
    awk -v p="$plain" -v b="$b" -v n="$pairs" -v h="${ht:-0}" 'BEGIN {
        printf "before (%s): --native %ss, adds %.1f ns per pair", ENVIRON["MEMTRACE_BEFORE"], b, (b - p) * 1e9 / n
        if (h > 0) printf ", %.2f of what heaptrack adds", (b - p) / (h - p)
        printf "\n" }'
fi
