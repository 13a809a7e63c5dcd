# Sourced by bench/livecost.sh and bench/livecost_py.sh: the live view's process and its CPU.

cpu_s() { # utime + stime of a process, in seconds
    awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$1/stat"
}

# view_when_written RUN_PID CAPTURE BIN SESSION: waits until the tracked run (RUN_PID) has
# written CAPTURE, opens `BIN live CAPTURE` in a detached tmux session SESSION and prints the
# view's pid (exit 1 if the run ends first).
view_when_written() {
    local run_pid=$1 capture=$2 bin=$3 session=$4 pid=""
    while [ ! -s "$capture" ]; do
        kill -0 "$run_pid" 2>/dev/null || { echo "the tracked run failed" >&2; return 1; }
        sleep 0.005
    done
    tmux new-session -d -s "$session" -x 200 -y 50 "$bin live $capture"
    while [ -z "$pid" ]; do
        # (Anchored: the tmux command that starts it holds the same words.)
        pid=$(pgrep -f -n -- "^$bin live $capture" || true)
    done
    echo "$pid"
}
