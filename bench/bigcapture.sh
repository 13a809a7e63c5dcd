#!/usr/bin/env bash
# The 10^9-event capture of issue 20: bench/workloads/small_objects.py's churn run 320 times
# over (churn(320, 200_000): some 32 million events per 10 rounds, 1.0e9 in all, ~444 MB).
# It takes a long while (tens of minutes on 2 cores): make it once and keep it outside the repo.
#   bench/bigcapture.sh [output] [python]      (default /work/bigcap/small_objects_x320.bin)
# The binaries are copied first, so that rebuilding the tree while it runs changes nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-/work/bigcap/small_objects_x320.bin}
py=${2:-$(python3 -c 'import sys; print(sys.executable)')}
cargo build --release -q
mkdir -p "$(dirname "$out")"
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
cp target/release/memtrace target/release/libmemtrace_tracker.so "$bin/"
script=$bin/small_objects_x320.py
sed 's/churn(10, 200_000)/churn(320, 200_000)/' bench/workloads/small_objects.py >"$script"
grep -q 'churn(320, 200_000)' "$script" || { echo "small_objects.py changed: fix the sed" >&2; exit 1; }
/usr/bin/time -f "%e s" "$bin/memtrace" run -q -f -o "$out" --python "$py" "$script" >/dev/null
ls -l "$out"
"$bin/memtrace" stats "$out" | head -20
