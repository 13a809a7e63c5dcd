#!/usr/bin/env bash
# Instructions of a tracked Python run (callgrind: the python process alone), the figures
# docs/TRACKER.md's tables give: small_objects.py's churn(2, 50_000) untracked, under
# `memtrace run` (its defaults: object types on), `--no-types` and `--aggregate`; added
# instructions over the untracked run and --aggregate's added over each full mode's.
#   bench/callgrind.sh [python]            (default /usr/bin/python3)
# MEMTRACE_BEFORE=<another build's memtrace> adds that build's rows (before/after).
# Instruction counts do not depend on the machine's load, unlike the times of bench/aggregate.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
py=${1:-/usr/bin/python3}
command -v valgrind >/dev/null || { echo "valgrind is needed" >&2; exit 1; }
cargo build --release -q
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export PYTHONHASHSEED=0
cat >"$work/w.py" <<PY
import sys
sys.path.insert(0, "$PWD/bench/workloads")
from small_objects import churn
churn(2, 50_000)
PY
# A Python run (`--python PY script.py`): `memtrace run -- PY script.py` names an interpreter and
# is a native run (no PyMem allocators, no Python stacks) outside valgrind.
count() { # instructions of the python process of a command (valgrind follows memtrace's exec)
    rm -f "$work"/cg.* "$work"/o.bin*
    valgrind --tool=callgrind --trace-children=yes --callgrind-out-file="$work/cg.%p" "$@" \
        >/dev/null 2>"$work/err" || { cat "$work/err" >&2; exit 1; }
    for f in "$work"/cg.*; do
        if grep -q "^cmd: *$py" "$f"; then grep -m1 '^summary:' "$f" | awk '{print $2}'; return; fi
    done
    echo "no python process in the callgrind output" >&2
    exit 1
}
untracked=$(count "$py" "$work/w.py")
printf '%-28s %15s\n' untracked "$untracked"
row() { # label memtrace: its three modes, added and --aggregate over each full mode
    local m=$2 full nt agg
    full=$(count "$m" run -q -f -o "$work/o.bin" --python "$py" "$work/w.py")
    nt=$(count "$m" run -q -f --no-types -o "$work/o.bin" --python "$py" "$work/w.py")
    agg=$(count "$m" run -q -f --aggregate -o "$work/o.bin" --python "$py" "$work/w.py")
    for x in "full:$full" "full --no-types:$nt" "--aggregate:$agg"; do
        printf '%-28s %15s  added %12s\n' "$1 ${x%%:*}" "${x#*:}" "$((${x#*:} - untracked))"
    done
    echo "$1 --aggregate's added over full's: $(echo "($agg - $untracked) / ($full - $untracked)" | bc -l | cut -c1-5)," \
        "over --no-types': $(echo "($agg - $untracked) / ($nt - $untracked)" | bc -l | cut -c1-5)"
}
row this "$PWD/target/release/memtrace"
if [ -n "${MEMTRACE_BEFORE:-}" ]; then
    row before "$MEMTRACE_BEFORE"
fi
