#!/usr/bin/env bash
# `memtrace run --aggregate` side by side with the full mode and memray's --aggregate, in one
# run: small_objects.py run R times over in one process (default 100; each repetition is some
# 32 M events: 16 M allocations and 16 M frees).
#   bench/aggregate.sh [R] [python]
# ROUNDS=N repeats the whole table N times (the spread of the ratios under load).
# Prints wall and CPU seconds (user+sys: moves less on a busy machine), each mode's CPU over the
# untracked run's, the added CPU over full mode's added CPU, the capture's size, and whether the
# aggregated capture gives the full one's peak, top 5 lines at the peak and histogram. memray
# comes from /work/memray-venv or target/memray-venv (installed from PyPI the first time; never
# a dependency of memtrace). Set AGGREGATE_SKIP_FULL=1 to leave the full capture out (it takes
# some 15 MB per repetition) and AGGREGATE_SKIP_MEMRAY=1 to leave memray out.
# MEMTRACE_BEFORE=<another build's memtrace> adds its --aggregate run to each table, right after
# this build's (a before/after comparison, alternating).
set -euo pipefail
cd "$(dirname "$0")/.."
reps=${1:-100}
py=${2:-$(python3 -c 'import sys; print(sys.executable)')}
memtrace=$PWD/target/release/memtrace
venv=$PWD/target/memray-venv
[ -x /work/memray-venv/bin/memray ] && venv=/work/memray-venv
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cargo build --release -q
if [ ! -x "$venv/bin/memray" ]; then
    "$py" -m venv "$venv" && "$venv/bin/pip" install -q memray || echo "memray not installed: its row stays empty" >&2
fi
# memray runs on its venv's interpreter: a build other than $py's (pyenv's 3.11.7 against
# Debian's 3.11.2, built with other optimizations) would not be a side-by-side comparison.
if [ -x "$venv/bin/python" ] && [ "$("$venv/bin/python" -c 'import sys; print(sys.version)')" != "$("$py" -c 'import sys; print(sys.version)')" ]; then
    echo "warning: $venv runs another Python build than $py: memray's figures are not side by side" >&2
fi
# One hash seed for every run: string hashes change dict sizes by a few bytes between runs.
export PYTHONHASHSEED=0
workload=$PWD/bench/workloads/small_objects.py
# In a directory of its own: the import system lists the script's directory, and the captures
# written beside it would change that listing's allocations from one mode to the other.
mkdir "$work/script"
script=$work/script/repeat.py
cat >"$script" <<PY
import runpy
for _ in range($reps):
    runpy.run_path("$workload", run_name="__main__")
PY
run() { # wall seconds and CPU seconds (user+sys) of a command
    /usr/bin/time -f "%e %U %S" -o "$work/t" "$@" >/dev/null 2>"$work/err" || { cat "$work/err" >&2; exit 1; }
    awk '{printf "%s %.2f", $1, $2 + $3}' "$work/t"
}
summary() { # events, peak bytes, the top 5 lines at the peak, a digest of peak + top 5 (with bytes) + histogram
    "$memtrace" stats --json -n 5 "$1" 2>/dev/null | "$py" -c '
import hashlib, json, sys
s = json.load(sys.stdin)
top = [("%s:%s" % (r["file"].split("/")[-1], r["line"]), r["bytes"], r["count"]) for r in s["top_at_peak"][:5]]
exact = json.dumps([s["peak_bytes"], s["peak_allocations"], top, s["histogram"]])
print(s["total_allocations"] + s["total_frees"], s["peak_bytes"], ",".join(t[0] for t in top), hashlib.sha1(exact.encode()).hexdigest()[:10])'
}
size() { stat -c %s "$1"; }
echo "python: $py; small_objects.py x $reps"
table() {
    printf '%-20s %8s %8s %7s %9s %12s  %s\n' mode wall cpu x-cpu added/full capture "events / peak / top 5 at peak / digest of peak, top 5 and histogram"
    read -r pw pc <<<"$(run "$py" "$script")"
    printf '%-20s %8s %8s %7s\n' untracked "$pw" "$pc" 1.00
    fc=""
    if [ "${AGGREGATE_SKIP_FULL:-0}" != 1 ]; then
        # The full run in the aggregated run's environment: no object types (--aggregate records
        # none) and a variable of the same length (a longer environment moves the peak by bytes).
        read -r fw fc <<<"$(MEMTRACE_AGGREGATE=0 run "$memtrace" run -q -f --no-types -o "$work/full.bin" --python "$py" "$script")"
        full=$(summary "$work/full.bin")
        printf '%-20s %8s %8s %7.2f %9s %12s  %s\n' "memtrace full" "$fw" "$fc" "$(echo "$fc / $pc" | bc -l)" 1.00 \
            "$(size "$work/full.bin")" "$full"
        rm -f "$work/full.bin"
    fi
    read -r aw ac <<<"$(run "$memtrace" run -q -f --aggregate -o "$work/aggr.bin" --python "$py" "$script")"
    agg=$(summary "$work/aggr.bin")
    added=$([ -n "$fc" ] && echo "($ac - $pc) / ($fc - $pc)" | bc -l || echo 0)
    printf '%-20s %8s %8s %7.2f %9.2f %12s  %s\n' "memtrace --aggregate" "$aw" "$ac" "$(echo "$ac / $pc" | bc -l)" "$added" \
        "$(size "$work/aggr.bin")" "$agg"
    if [ -n "${MEMTRACE_BEFORE:-}" ]; then
        read -r bw bfc <<<"$(run "$MEMTRACE_BEFORE" run -q -f --aggregate -o "$work/aggr0.bin" --python "$py" "$script")"
        added=$([ -n "$fc" ] && echo "($bfc - $pc) / ($fc - $pc)" | bc -l || echo 0)
        printf '%-20s %8s %8s %7.2f %9.2f %12s\n' "--aggregate, before" "$bw" "$bfc" "$(echo "$bfc / $pc" | bc -l)" "$added" \
            "$(size "$work/aggr0.bin")"
        rm -f "$work/aggr0.bin"
    fi
    if [ -n "$fc" ]; then
        read -r _ ap al ah <<<"$agg"
        read -r _ fp fl fh <<<"$full"
        echo "aggregated vs full: peak $((ap - fp)) bytes apart;" \
            "top 5 lines $([ "$al" = "$fl" ] && echo same || echo "differ: $al vs $fl");" \
            "peak, top 5 (bytes, allocations) and histogram $([ "$ah" = "$fh" ] && echo "exactly the same" || echo differ)"
        if [ "$ah" != "$fh" ]; then
            # The script is not exactly repeatable at this size (a few frees and a few hundred
            # bytes at the peak move from one untracked-equivalent run to the next): a second
            # full run shows how far two full captures are apart.
            MEMTRACE_AGGREGATE=0 "$memtrace" run -q -f --no-types -o "$work/full2.bin" --python "$py" "$script" >/dev/null 2>&1
            read -r _ sp _ sh <<<"$(summary "$work/full2.bin")"
            rm -f "$work/full2.bin"
            echo "a second full run vs the first: peak $((sp - fp)) bytes apart;" \
                "peak, top 5 (bytes, allocations) and histogram $([ "$sh" = "$fh" ] && echo "exactly the same" || echo differ)"
        fi
    fi
    if [ -x "$venv/bin/memray" ] && [ "${AGGREGATE_SKIP_MEMRAY:-0}" != 1 ]; then
        rm -f "$work/mr.bin"
        read -r rw rc <<<"$(run "$venv/bin/python" -m memray run -q --aggregate -o "$work/mr.bin" "$script")"
        added=$([ -n "$fc" ] && echo "($rc - $pc) / ($fc - $pc)" | bc -l || echo 0)
        printf '%-20s %8s %8s %7.2f %9.2f %12s\n' "memray --aggregate" "$rw" "$rc" "$(echo "$rc / $pc" | bc -l)" "$added" \
            "$(size "$work/mr.bin")"
    fi
}
for _ in $(seq "${ROUNDS:-1}"); do
    table
done
