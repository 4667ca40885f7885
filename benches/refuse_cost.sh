#!/usr/bin/env bash
# Instructions per refused request (issue 17: refusing must cost a small fraction of
# accepting). The gateway runs under valgrind's callgrind on benches/e2e/refuse.yaml: its
# Pinpoint exporter points at a closed port with `queue.max_spans: 1000`, so after 10
# requests of 100 spans the queue is full and every request is refused. WARMUP requests
# fill it, the counters are zeroed, COUNT requests of BATCH spans are sent one at a time
# (`loadgen --count`, the same bytes every run), and the counters are dumped. Prints the
# instructions per refused request; compare with `benches/instructions.sh` (per span x
# BATCH = per accepted request). The exporter's reconnect attempts are counted too.
#
# Usage: BIN=/tmp/bridge benches/refuse_cost.sh
# Knobs: BIN (default target/profiling/otel-pinpoint-bridge), LOADGEN_BIN (default BIN),
# COUNT (100), BATCH (100), WARMUP (30), PORT_BASE (24417: gRPC; +1 the closed port;
# +571 admin), GW_CPU (1), OUT_DIR (a temporary folder; the callgrind file is kept there).
set -euo pipefail
cd "$(dirname "$0")/.."
B=${BIN:-target/profiling/otel-pinpoint-bridge}
L=${LOADGEN_BIN:-$B}
COUNT=${COUNT:-100}
BATCH=${BATCH:-100}
WARMUP=${WARMUP:-30}
PORT_BASE=${PORT_BASE:-24417}
GW_CPU=${GW_CPU:-1}
OUT_DIR=${OUT_DIR:-$(mktemp -d)}
export BENCH_GRPC_PORT=$PORT_BASE BENCH_CLOSED_PORT=$((PORT_BASE + 1)) BENCH_ADMIN_PORT=$((PORT_BASE + 571))
out="$OUT_DIR/callgrind.refuse"
rm -f "$out"*
taskset -c "$GW_CPU" valgrind --tool=callgrind --callgrind-out-file="$out" \
    "$B" run -c benches/e2e/refuse.yaml >/dev/null 2>"$OUT_DIR/gateway.log" &
GW=$!
trap 'kill -9 "$GW" 2>/dev/null || true' EXIT
for _ in $(seq 300); do
    curl -sf "http://127.0.0.1:$BENCH_ADMIN_PORT/healthz" >/dev/null 2>&1 && break
    sleep 0.2
done
send() { # count seed
    "$L" loadgen --endpoint "http://127.0.0.1:$BENCH_GRPC_PORT" --batch "$BATCH" \
        --concurrency 1 --duration 1h --timeout 60s --count "$1" --seed "$2" --json
}
send "$WARMUP" 1000000 >/dev/null
sleep 2
callgrind_control -z "$GW" >/dev/null 2>&1
send "$COUNT" 1 >"$OUT_DIR/loadgen.json"
callgrind_control -d "$GW" >/dev/null 2>&1
kill -TERM "$GW"
wait "$GW" 2>/dev/null || true
dump=$(ls "$out".* | grep -v '\.[0-9]*-' | sort | head -1)
instr=$(awk '/^(summary|totals):/ {print $2; exit}' "$dump")
python3 - "$instr" "$COUNT" "$OUT_DIR/loadgen.json" "$dump" <<'PY'
import json, sys
instr, count, lg, dump = int(sys.argv[1]), int(sys.argv[2]), json.load(open(sys.argv[3])), sys.argv[4]
bad = "" if lg["refused"] == count else f"  INCOMPLETE: {lg['refused']}/{count} refused"
print(f"refused  {instr:>14,} instructions  {lg['refused']:>5} requests  {instr / count:>12,.0f} per refused request{bad}  ({dump})")
PY
