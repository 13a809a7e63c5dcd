#!/bin/sh
# Per-event cost once attached (memtrace attach) against memtrace run and no tracking, on the
# same loop of malloc(64)/free pairs (bench/attach_cost.c). Run once: bench/attach_cost.sh [N]
set -e
N=${1:-5000000}
M=${MEMTRACE:-target/release/memtrace}
D=$(mktemp -d)
gcc -O2 -fno-builtin -o "$D/cost" "$(dirname "$0")/attach_cost.c"
cd "$D"
touch go; echo "plain:    $(./cost "$N" | tail -1)"
echo "run:      $("$OLDPWD/$M" run -q -o run.bin ./cost "$N" | tail -1)"
rm go
./cost "$N" > attached.txt &
PID=$!
sleep 0.5
"$OLDPWD/$M" attach "$PID" -o attach.bin 2>/dev/null
touch go
wait "$PID"
echo "attached: $(tail -1 attached.txt)"
rm -rf "$D"
