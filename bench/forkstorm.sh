#!/usr/bin/env bash
# Runs tests/programs/forkstorm.c (150 forks while threads allocate, map, name themselves,
# start and end, and load and unload a library) under memtrace N times with the given options,
# and reports any run that hangs (not ended after $WAIT seconds, default 60) with every thread
# of the hung processes (gdb), or that fails.
#   bench/forkstorm.sh N [memtrace run options...]
#   e.g. bench/forkstorm.sh 10 --native --follow-fork
# $MEMTRACE names the memtrace binary (default: this checkout's release build).
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
runs="${1:-10}"
shift || true
mt="${MEMTRACE:-$root/target/release/memtrace}"
wait_s="${WAIT:-60}"
[ -x "$mt" ] || { echo "no memtrace at $mt (cargo build --release first)" >&2; exit 1; }
dir=$(mktemp -d "${TMPDIR:-/tmp}/forkstorm.XXXXXX")
gcc -O0 -g -fno-builtin -pthread -o "$dir/forkstorm" "$root/tests/programs/forkstorm.c" || exit 1
gcc -O0 -g -fPIC -shared -o "$dir/kept.so" "$root/tests/programs/native_lib.c" || exit 1
cp "$dir/kept.so" "$dir/loaded.so"
cd "$dir" || exit 1
hung=0 failed=0
for i in $(seq 1 "$runs"); do
    rm -f cap.bin cap.bin.*
    "$mt" run -q -f -o cap.bin "$@" -- ./forkstorm 150 ./kept.so ./loaded.so >out.txt 2>&1 &
    m=$!
    for _ in $(seq 1 $((wait_s * 10))); do kill -0 "$m" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$m" 2>/dev/null; then
        hung=$((hung + 1))
        echo "run $i: hung; threads in $dir/hang-$i.txt"
        for p in $(pgrep -f "forkstorm 150 ./kept.so"); do
            echo "== pid $p"
            gdb -p "$p" -batch -ex "thread apply all bt" 2>/dev/null | grep -E '^#|^Thread'
        done >"hang-$i.txt"
        pkill -KILL -f "forkstorm 150 ./kept.so"
        kill -KILL "$m" 2>/dev/null
        wait "$m" 2>/dev/null
    else
        wait "$m"
        rc=$?
        if [ "$rc" -ne 0 ] || ! grep -q "children ok: 150" out.txt; then
            failed=$((failed + 1))
            echo "run $i: exit $rc"
            tail -5 out.txt
        fi
    fi
done
echo "forkstorm $*: $runs runs, $hung hung, $failed failed (files in $dir)"
[ "$hung" -eq 0 ] && [ "$failed" -eq 0 ]
