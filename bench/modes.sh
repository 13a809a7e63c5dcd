#!/usr/bin/env bash
# The modes for long runs side by side, in one run: untracked, memtrace full, memtrace
# --sample-bytes N, and memray run --aggregate (installed from PyPI into target/memray-venv the
# first time; never a dependency of memtrace).
#   bench/modes.sh [N] [python]          N: the sampling interval (default 512K)
# For each workload (small_objects.py, large_buffers.py, or $MODES_WORKLOADS) it prints wall and
# CPU seconds (user+sys: moves less on a busy machine), each mode's time over the untracked one,
# the capture's size, the peak each capture reports and the sampled estimate's error against the
# full capture's, and whether the top 5 lines by bytes at the peak (those holding at least 1% of
# it) are the same.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-512K}
py=${2:-$(python3 -c 'import sys; print(sys.executable)')}
workloads=${MODES_WORKLOADS:-"bench/workloads/small_objects.py bench/workloads/large_buffers.py"}
memtrace=$PWD/target/release/memtrace
venv=$PWD/target/memray-venv
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cargo build --release -q
if [ ! -x "$venv/bin/memray" ]; then
    "$py" -m venv "$venv" && "$venv/bin/pip" install -q memray || echo "memray not installed: its column stays empty" >&2
fi
run() { # wall seconds and CPU seconds (user+sys) of a command
    /usr/bin/time -f "%e %U %S" -o "$work/t" "$@" >/dev/null 2>"$work/err" || { cat "$work/err" >&2; exit 1; }
    awk '{printf "%s %.2f", $1, $2 + $3}' "$work/t"
}
stat_of() { # peak bytes and the significant top-5 lines at the peak of a memtrace capture
    "$memtrace" stats --json -n 5 "$1" 2>/dev/null | "$py" -c '
import json, sys
s = json.load(sys.stdin)
floor = s["peak_bytes"] / 100
lines = ["%s:%s" % (r["file"], r["line"]) for r in s["top_at_peak"][:5] if r["bytes"] >= floor]
print(s["peak_bytes"], ",".join(lines))'
}
size() { stat -c %s "$1"; }
echo "python: $py; sampling interval $n"
printf '%-14s %-22s %8s %8s %7s %12s %14s %s\n' workload mode wall cpu x-cpu capture peak "peak error / top 5 at peak"
for w in $workloads; do
    name=$(basename "$w" .py)
    read -r pw pc <<<"$(run "$py" "$w")"
    printf '%-14s %-22s %8s %8s %7s\n' "$name" untracked "$pw" "$pc" 1.00
    read -r fw fc <<<"$(run "$memtrace" run -q -f -o "$work/full.bin" --python "$py" "$w")"
    read -r fpeak flines <<<"$(stat_of "$work/full.bin")"
    printf '%-14s %-22s %8s %8s %7.2f %12s %14s\n' "$name" "memtrace full" "$fw" "$fc" \
        "$(echo "$fc / $pc" | bc -l)" "$(size "$work/full.bin")" "$fpeak"
    read -r sw sc <<<"$(run "$memtrace" run -q -f --sample-bytes "$n" -o "$work/s.bin" --python "$py" "$w")"
    read -r speak slines <<<"$(stat_of "$work/s.bin")"
    same=$([ "$slines" = "$flines" ] && echo "same top lines" || echo "top lines differ: $slines vs $flines")
    printf '%-14s %-22s %8s %8s %7.2f %12s %14s %+.1f%% %s\n' "$name" "memtrace --sample-bytes" "$sw" "$sc" \
        "$(echo "$sc / $pc" | bc -l)" "$(size "$work/s.bin")" "$speak" \
        "$(echo "($speak - $fpeak) * 100 / $fpeak" | bc -l)" "$same"
    if [ -x "$venv/bin/memray" ]; then
        rm -f "$work/mr.bin"
        read -r rw rc <<<"$(run "$venv/bin/python" -m memray run -q --aggregate -o "$work/mr.bin" "$w")"
        printf '%-14s %-22s %8s %8s %7.2f %12s\n' "$name" "memray --aggregate" "$rw" "$rc" \
            "$(echo "$rc / $pc" | bc -l)" "$(size "$work/mr.bin")"
    fi
done
