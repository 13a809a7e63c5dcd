#!/usr/bin/env bash
# The start-up cost of a Python run: `memtrace run empty.py` against the untracked
# `python empty.py`, wall-clock, alternating, in one run.
#   bench/pystartup.sh [runs] [python]
# `python` defaults to the real interpreter behind python3 (its sys.executable, not a pyenv shim).
# Three ways are measured, each `runs` times (default 20), interleaved: untracked, memtrace with
# --python, and memtrace choosing the interpreter itself with the real one first on PATH (the
# common case: an ELF python3 on PATH). Uses hyperfine when it is installed, else a loop timed
# with $EPOCHREALTIME; prints mean and median milliseconds and what memtrace adds.
# $MEMTRACE_BEFORE names another memtrace binary (its tracker beside it), measured as a fourth
# way (with --python), for a before/after comparison in one run.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-20}
py=${2:-$(python3 -c 'import sys; print(sys.executable)')}
memtrace=$PWD/target/release/memtrace
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cargo build --release -q
: >"$work/empty.py"
mkdir "$work/bin"
ln -s "$py" "$work/bin/python3"
cd "$work"
untracked=("$py" empty.py)
explicit=("$memtrace" run -q -f -o "$work/e.bin" --python "$py" empty.py)
# PATH is set for this one by the loop below, not with env(1): its exec would add a process
# start (about a millisecond here) that is not memtrace's. hyperfine runs it through env.
onpath=("$memtrace" run -q -f -o "$work/p.bin" empty.py)
onpath_path="$work/bin:$PATH"
before=(true)
[ -z "${MEMTRACE_BEFORE:-}" ] || before=("$MEMTRACE_BEFORE" run -q -f -o "$work/b.bin" --python "$py" empty.py)
echo "python: $py ($("$py" -c 'import sys; print(sys.version.split()[0])')), $runs runs each"
if command -v hyperfine >/dev/null 2>&1; then
    if [ -n "${MEMTRACE_BEFORE:-}" ]; then
        hyperfine -N -w 3 -r "$runs" "${untracked[*]}" "${explicit[*]}" "env PATH=$onpath_path ${onpath[*]}" "${before[*]}"
    else
        hyperfine -N -w 3 -r "$runs" "${untracked[*]}" "${explicit[*]}" "env PATH=$onpath_path ${onpath[*]}"
    fi
    exit
fi
ms() { # wall-clock and CPU (user+sys, of the command and its children) milliseconds of one run
    local t0=$EPOCHREALTIME cpu
    cpu=$( { TIMEFORMAT='%3U %3S'; time "$@" >/dev/null; } 2>&1 )
    awk -v a="$t0" -v b="$EPOCHREALTIME" -v c="$cpu" \
        'BEGIN { split(c, x, " "); printf "%.3f %.3f\n", (b - a) * 1000, (x[1] + x[2]) * 1000 }'
}
for _ in 1 2 3; do "${untracked[@]}"; "${explicit[@]}"; PATH=$onpath_path "${onpath[@]}"; "${before[@]}"; done >/dev/null # warm-up
: >u; : >e; : >p; : >b
for _ in $(seq "$runs"); do
    ms "${untracked[@]}" >>u
    ms "${explicit[@]}" >>e
    PATH=$onpath_path ms "${onpath[@]}" >>p
    [ -z "${MEMTRACE_BEFORE:-}" ] || ms "${before[@]}" >>b
done
stat() { # mean and median wall, median CPU
    cut -d' ' -f2 "$1" | sort -g >"$1.cpu"
    sort -g "$1" | awk -v c="$(awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}' "$1.cpu")" \
        '{a[NR]=$1; s+=$1} END {printf "%.1f %.1f %.1f\n", s/NR, a[int((NR+1)/2)], c}'
}
read -r um umed uc < <(stat u)
line() { # label, mean, median, CPU median: what it adds to the untracked run
    printf "%-40s mean %6.1f ms  median %6.1f ms  adds %+.1f ms (median); CPU %5.1f ms, adds %+.1f ms\n" \
        "$1" "$2" "$3" "$(awk -v a="$3" -v b="$umed" 'BEGIN{print a-b}')" "$4" "$(awk -v a="$4" -v b="$uc" 'BEGIN{print a-b}')"
}
printf "%-40s mean %6.1f ms  median %6.1f ms; CPU %5.1f ms (median, user+sys)\n" "untracked python empty.py" "$um" "$umed" "$uc"
read -r em emed ec < <(stat e)
line "memtrace run --python PY empty.py" "$em" "$emed" "$ec"
read -r pm pmed pc < <(stat p)
line "memtrace run empty.py (python3 on PATH)" "$pm" "$pmed" "$pc"
if [ -s b ]; then
    read -r bm bmed bc < <(stat b)
    line "before: $MEMTRACE_BEFORE" "$bm" "$bmed" "$bc"
fi
