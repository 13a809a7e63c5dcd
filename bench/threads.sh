#!/usr/bin/env bash
# What threads cost under memtrace: the peak resident size (VmHWM) untracked and tracked, and the
# capture's size, for 1,000 threads each making one malloc (all alive at once, then one after
# another), the resident size left once 40 busy threads exited, and for a pool of 200 threads
# started and joined over and over for `seconds`.
#   bench/threads.sh [seconds]        (default 60; $MEMTRACE: another memtrace binary to measure)
# The pool lines show the peak and the capture half way and at the end: with a tracker whose cost
# follows the events, the peak stays put in the second half and the capture grows with the rounds.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
memtrace=${MEMTRACE:-$PWD/target/release/memtrace}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
[ -n "${MEMTRACE:-}" ] || cargo build --release -q
gcc -O0 -g -fno-builtin -pthread -o "$work/manythreads" tests/programs/manythreads.c
hwm() { awk '/^hwm_kb/ {print $2}'; }
mib() { awk -v b="$1" 'BEGIN {printf "%.1f MiB", b / 1048576}'; }
echo "memtrace: $memtrace"
for mode in alive sequential; do
    plain=$("$work/manythreads" "$mode" 1000 | hwm)
    tracked=$("$memtrace" run -q -f -o "$work/$mode.bin" -- "$work/manythreads" "$mode" 1000 | hwm)
    size=$(stat -c %s "$work/$mode.bin")
    disk=$(du -B1 "$work/$mode.bin" | cut -f1)
    echo "1000 threads, $mode: peak untracked $(mib $((plain * 1024))), tracked $(mib $((tracked * 1024))) (+$(mib $(((tracked - plain) * 1024)))); capture $(mib "$size") ($(mib "$disk") on disk)"
done
rss() { awk '/^rss_kb/ {print $2}'; }
plain=$("$work/manythreads" busy 40 100000 | rss)
tracked=$("$memtrace" run -q -f -o "$work/busy.bin" -- "$work/manythreads" busy 40 100000 | rss)
echo "40 threads of 100000 malloc/free pairs, resident once they exited: untracked $(mib $((plain * 1024))), tracked $(mib $((tracked * 1024)))"
echo "pool of 200 threads for ${seconds}s, untracked:"
"$work/manythreads" pool "$seconds" 200 | sed 's/^/  /'
echo "tracked:"
MANYTHREADS_CAPTURE="$work/pool.bin" "$memtrace" run -q -f -o "$work/pool.bin" -- \
    "$work/manythreads" pool "$seconds" 200 | sed 's/^/  /'
size=$(stat -c %s "$work/pool.bin")
disk=$(du -B1 "$work/pool.bin" | cut -f1)
events=$("$memtrace" stats --json "$work/pool.bin" |
    python3 -c 'import json, sys; s = json.load(sys.stdin); print(s["total_allocations"] + s["total_frees"])')
awk -v s="$size" -v d="$disk" -v e="$events" 'BEGIN {
    printf "  final capture: %.1f MiB (%.1f MiB on disk) for %d events: %.2f bytes per event\n",
        s / 1048576, d / 1048576, e, s / e }'
echo "(the mid-run capture sizes are the file's allocated length, grown in steps of 4 MiB or more)"
