#!/bin/bash
# Server CPU per request: `gsse run gsse_app:app` on CPU 0, `wrk -t1 -c10 -d8s`
# on CPU 1, CPU ticks read from /proc before and after (load distorts CPU
# time less than requests per second).
#
# Usage: bench/cpu_per_request.sh [PYTHONPATH] [PATH]
#   bench/cpu_per_request.sh "" /ping                # this tree
#   bench/cpu_per_request.sh /tmp/gsse-before /ping  # another source tree
# The server is stopped by its PID.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
PYTHON=${PYTHON:-python3}
cd "$HERE/servers"
PORT=$($PYTHON -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
PYTHONPATH=${1:-} taskset -c 0 $PYTHON -m gsse run gsse_app:app --port "$PORT" --log-level warning >/dev/null 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -s "localhost:$PORT/ping" >/dev/null && break; sleep 0.2; done
read -r -a A < <(cut -d' ' -f14,15 "/proc/$PID/stat")
OUT=$(taskset -c 1 wrk -t1 -c10 -d8s "http://127.0.0.1:$PORT${2:-/ping}" 2>&1)
read -r -a B < <(cut -d' ' -f14,15 "/proc/$PID/stat")
N=$(echo "$OUT" | grep "requests in" | awk '{print $1}')
TICKS=$(( (B[0] + B[1]) - (A[0] + A[1]) ))
HZ=$(getconf CLK_TCK)
echo "${1:-this tree} ${2:-/ping}: $N requests, $(awk "BEGIN {printf \"%.1f\", $TICKS * 1e6 / $HZ / $N}") us CPU per request"
