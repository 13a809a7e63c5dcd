#!/bin/sh
# The start-up cost of a spawned Python child: the median wall and CPU time of `python -c pass`
# started by subprocess, untracked and under `memtrace run --follow-fork` (each child tracked as
# a Python run: its own capture, the start-up hook). On a loaded machine run it a few times and
# compare the differences. Usage: bench/child_startup.sh [N]
set -eu
here=$(dirname "$0")
memtrace=${MEMTRACE:-$here/../target/release/memtrace}
n=${1:-30}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
plain=$(python3 "$here/child_startup.py" "$n")
tracked=$("$memtrace" run -q -f --follow-fork -o "$dir/cs.bin" "$here/child_startup.py" "$n")
echo "python -c pass as a child, median of $n: untracked $plain; tracked $tracked"
