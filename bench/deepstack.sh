#!/usr/bin/env bash
# small_objects' churn run at the bottom of a recursion of DEPTH Python frames: the cost of a
# deep stack. Without a profile function the tracker cannot know which outer frames returned
# since the last allocation, so each allocation checks the last chain out to its outermost
# frame (tracker/src/stacks/python/chain.rs): its cost grows with the depth, memray's (a
# profile function that sees every call) does not.
#   bench/deepstack.sh [rounds] [python] [depth...]   (default 3, /usr/bin/python3, 0 50 200)
# Prints the median CPU seconds (user+sys) per depth: untracked, memtrace, memtrace's build in
# MEMTRACE_BEFORE (a memtrace binary, for before/after) and memray --trace-python-allocators
# (MEMRAY_VENV or target/memray-venv), alternating in one run, with the added-time ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
py=${2:-/usr/bin/python3}
shift $(($# > 2 ? 2 : $#))
depths=("$@")
[ ${#depths[@]} -gt 0 ] || depths=(0 50 200)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cargo build --release -q
sed 's/^    print(churn(10, 200_000))$/    pass/' bench/workloads/small_objects.py >"$work/small.py"
cat >"$work/deep.py" <<'PY'
import sys
from small import churn
def down(d):
    if d == 0:
        return churn(3, 100_000)
    return down(d - 1)
sys.setrecursionlimit(10_000)
print(down(int(sys.argv[1])))
PY
venv=${MEMRAY_VENV:-$PWD/target/memray-venv}
tools=(untracked memtrace)
[ -n "${MEMTRACE_BEFORE:-}" ] && tools+=(before)
[ -x "$venv/bin/memray" ] && tools+=(memray)
run() {
    local tool=$1 depth=$2
    rm -f "$work/o.bin"
    case $tool in
    untracked) set -- "$py" "$work/deep.py" "$depth" ;;
    memtrace) set -- "$PWD/target/release/memtrace" run -q -o "$work/o.bin" --python "$py" "$work/deep.py" "$depth" ;;
    before) set -- "$MEMTRACE_BEFORE" run -q -o "$work/o.bin" --python "$py" "$work/deep.py" "$depth" ;;
    memray) set -- "$venv/bin/python" -m memray run -q --trace-python-allocators -o "$work/o.bin" "$work/deep.py" "$depth" ;;
    esac
    (cd "$work" && /usr/bin/time -f "%U %S" -o "$work/t" "$@" >/dev/null 2>"$work/err") || {
        cat "$work/err" >&2
        exit 1
    }
    echo "$depth $tool $(awk '{printf "%.3f", $1 + $2}' "$work/t")"
}
for depth in "${depths[@]}"; do
    for _ in $(seq "$rounds"); do
        for tool in "${tools[@]}"; do run "$tool" "$depth"; done
    done
done | python3 -c '
import collections, statistics, sys
runs = collections.defaultdict(list)
for line in sys.stdin:
    depth, tool, secs = line.split()
    runs[int(depth)].append((tool, float(secs)))
for depth, rows in sorted(runs.items()):
    med = {t: statistics.median(s for u, s in rows if u == t) for t in dict(rows)}
    base = med["untracked"]
    cells = [f"{t} {s:.2f}s" for t, s in med.items()]
    added = {t: s - base for t, s in med.items() if t != "untracked"}
    m = added.get("memray", 0)
    if m > 0:
        cells += [f"{t} added / memray added {a / m:.2f}" for t, a in added.items() if t != "memray"]
    print(f"depth {depth}: " + ", ".join(cells))
'
