#!/usr/bin/env bash
# The pytest plugin's cost: more-itertools 10.5.0's own suite (663 tests) with plain pytest and
# with `pytest --memtrace`, alternating, in one run: wall and CPU (user + sys) time, and the load
# average after each round. The target: at most 1.5x plain pytest.
#   bench/pytestbench.sh [ROUNDS]       (default 3; fetches more-itertools from PyPI once)
# MEMTRACE_BEFORE_PKG=DIR adds a third run per round: --memtrace with the package in DIR/memtrace
# (a copy of an earlier install's site-packages/memtrace), put first on PYTHONPATH, so that an
# earlier tracker and plugin are measured in the same rounds.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
work=target/pytestbench
venv=$work/venv
# A venv copied from another checkout (a worktree's warm target/) still runs that checkout's
# scripts (their #! lines): such a one is made again here.
if [ -x "$venv/bin/python" ] && [ "$("$venv/bin/python" -c 'import sys; print(sys.prefix)')" != "$(cd "$venv" && pwd -P)" ]; then
    rm -rf "$venv"
fi
if [ ! -x "$venv/bin/pytest" ]; then
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install -q pytest more-itertools==10.5.0
    "$venv/bin/python" -m pip download -q --no-deps --no-binary :all: more-itertools==10.5.0 -d "$work"
    tar xzf "$work/more-itertools-10.5.0.tar.gz" -C "$work"
fi
# The package as built from python/ now.
"$venv/bin/python" -m pip install -q --force-reinstall --no-deps ./python
suite=$work/more-itertools-10.5.0
elapsed() { # "wall cpu": seconds of wall time and of CPU (user + sys) of a command, its output
    # kept in $work/last.out; a failed run is not a time: the bench stops and shows its end.
    local TIMEFORMAT='%R %U %S' t rc=0
    t=$( { time "$@" >"$out" 2>&1; } 2>&1 ) || rc=$?
    if [ "$rc" != 0 ]; then
        echo "a run failed (exit $rc): $*" >&2
        tail -20 "$out" >&2
        exit 1
    fi
    awk -v t="$t" 'BEGIN { split(t, a, " "); printf "%.2f %.2f", a[1], a[2] + a[3] }'
}
out=$(pwd)/$work/last.out
# "round R: plain W s (C s CPU), --memtrace W s (C s CPU, ratios wall/cpu)[, before ...]"
ratio() { awk -v p="$1" -v t="$2" 'BEGIN { split(p, a, " "); split(t, b, " ");
    printf "%.2f s (%.2f s CPU, ratio %.2f, CPU ratio %.2f)", b[1], b[2], b[1] / a[1], b[2] / a[2] }'; }
before=${MEMTRACE_BEFORE_PKG:-}
if [ -n "$before" ] && [ ! -f "$before/memtrace/pytest_plugin.py" ]; then
    echo "MEMTRACE_BEFORE_PKG: no memtrace package in $before" >&2
    exit 1
fi
before=${before:+$(cd "$before" && pwd)}
for r in $(seq "$rounds"); do
    plain=$(cd "$suite" && elapsed ../venv/bin/python -m pytest -q -p no:cacheprovider tests)
    tracked=$(cd "$suite" && elapsed ../venv/bin/python -m pytest -q -p no:cacheprovider --memtrace tests)
    line="round $r: plain ${plain%% *} s (${plain##* } s CPU), --memtrace $(ratio "$plain" "$tracked")"
    if [ -n "$before" ]; then
        old=$(cd "$suite" && PYTHONPATH="$before" elapsed ../venv/bin/python -m pytest -q \
            -p no:cacheprovider --memtrace tests)
        line="$line, before $(ratio "$plain" "$old")"
    fi
    echo "$line, load $(cut -d' ' -f1 /proc/loadavg)"
done
