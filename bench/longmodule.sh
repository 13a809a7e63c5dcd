#!/usr/bin/env bash
# A long generated module (each line allocates): the cost of finding each new line's number.
# CPython's PyCode_Addr2Line scans a code object's line table from its start at every call,
# so a tracker that calls it for each new line of a module of N lines does O(N^2) work; the
# tracker keeps a cursor in long tables instead (tracker/src/stacks/python/lines.rs).
#   bench/longmodule.sh [lines] [python]        (default 20000, /usr/bin/python3)
# Prints the CPU seconds (user+sys) of the module untracked, under memtrace and, when
# installed (MEMRAY_VENV or target/memray-venv), under memray, side by side in one run.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-20000}
py=${2:-/usr/bin/python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cargo build --release -q
"$py" - "$n" "$work/long.py" <<'PY'
import sys
n, path = int(sys.argv[1]), sys.argv[2]
lines = ["keep = []"] + [f"keep.append(bytearray({100 + i % 50}))" for i in range(n)]
open(path, "w").write("\n".join(lines) + "\n")
PY
cpu() {
    /usr/bin/time -f "%U %S" -o "$work/t" "$@" >/dev/null 2>"$work/err" || { cat "$work/err" >&2; exit 1; }
    awk '{printf "%.2f", $1 + $2}' "$work/t"
}
plain=$(cpu "$py" "$work/long.py")
mt=$(cpu ./target/release/memtrace run -q -f -o "$work/m.bin" --python "$py" "$work/long.py")
echo "module of $n lines: untracked ${plain}s, memtrace ${mt}s ($(echo "$mt / $plain" | bc -l | cut -c1-5)x)"
venv=${MEMRAY_VENV:-$PWD/target/memray-venv}
if [ -x "$venv/bin/memray" ]; then
    mr=$(cpu "$venv/bin/python" -m memray run -q -f -o "$work/r.bin" "$work/long.py")
    echo "memray: ${mr}s ($(echo "$mr / $plain" | bc -l | cut -c1-5)x)"
fi
