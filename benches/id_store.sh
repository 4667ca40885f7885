#!/usr/bin/env bash
# What the shared id store (ids.store, Redis) costs: Redis round trips per 1,000 spans
# and the export latency with and without it, side by side on the same machine.
#
# Starts a redis-server and the stand-in Pinpoint collector (--blackhole) on free
# loopback ports, then for MODE in off, on: the gateway with the Pinpoint exporter
# (benches/e2e/pinpoint.yaml, plus ids.store for "on"), loadgen at RATE spans/s for
# DURATION, and reads the gateway's /metrics: spans accepted, store round trips, and
# the p99 of bridge_exporter_send_duration_seconds (the exporter's export call, where
# assembly reads and writes the mapping cache) from its histogram buckets.
#
# Knobs: BIN (default target/release/otel-pinpoint-bridge; built if missing),
# RATE (5000), DURATION (20s), BATCH (100 spans per request), SERVICES (5).
# Needs: redis-server, node (npm ci in tests/peers/pinpoint-collector), python3, curl.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release/otel-pinpoint-bridge}
RATE=${RATE:-5000}
DURATION=${DURATION:-20s}
BATCH=${BATCH:-100}
SERVICES=${SERVICES:-5}
[ -x "$BIN" ] || cargo build --release
TMP=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$TMP"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

REDIS_PORT=$(free_port)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no >/dev/null &
PIDS+=($!)
node tests/peers/pinpoint-collector/server.js --port 0 --control-port 0 --blackhole >"$TMP/collector.out" 2>/dev/null &
PIDS+=($!)
for _ in $(seq 1 100); do [ -s "$TMP/collector.out" ] && break; sleep 0.1; done
export BENCH_PINPOINT_PORT
BENCH_PINPOINT_PORT=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["span"])' "$TMP/collector.out")

run_mode() {
    local mode=$1 cfg="$TMP/$1.yaml"
    cp benches/e2e/pinpoint.yaml "$cfg"
    if [ "$mode" = on ]; then
        printf 'ids:\n  store: { type: redis, url: "redis://127.0.0.1:%s/0" }\n' "$REDIS_PORT" >>"$cfg"
    fi
    export BENCH_GRPC_PORT BENCH_ADMIN_PORT BENCH_BATCH_MAX=512 BENCH_BATCH_TIMEOUT=200ms
    BENCH_GRPC_PORT=$(free_port)
    BENCH_ADMIN_PORT=$(free_port)
    "$BIN" run -c "$cfg" 2>>"$TMP/gateway.log" &
    local gw=$!
    for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$BENCH_ADMIN_PORT/readyz" >/dev/null && break; sleep 0.1; done
    "$BIN" loadgen --endpoint "http://127.0.0.1:$BENCH_GRPC_PORT" --rate "$RATE" --batch "$BATCH" \
        --services "$SERVICES" --duration "$DURATION" --json >"$TMP/$mode.loadgen.json"
    sleep 4 # holds run out, the last batches leave
    curl -sf "http://127.0.0.1:$BENCH_ADMIN_PORT/metrics" >"$TMP/$mode.metrics"
    kill "$gw"; wait "$gw" 2>/dev/null || true
    python3 - "$mode" "$TMP/$mode.metrics" "$TMP/$mode.loadgen.json" <<'EOF'
import json, re, sys
mode, metrics, lg = sys.argv[1], open(sys.argv[2]).read(), json.load(open(sys.argv[3]))
def total(name, *labels):
    s = 0.0
    for line in metrics.splitlines():
        if line.startswith(name) and all(l in line for l in labels):
            s += float(line.rsplit(" ", 1)[1])
    return s
spans = total("bridge_receiver_spans_accepted_total")
trips = total("bridge_id_store_round_trips_total")
buckets = []
for line in metrics.splitlines():
    m = re.match(r'bridge_exporter_send_duration_seconds_bucket\{.*le="([^"]+)"\} (\S+)', line)
    if m:
        buckets.append((float("inf") if m.group(1) == "+Inf" else float(m.group(1)), float(m.group(2))))
buckets.sort()
count = buckets[-1][1] if buckets else 0
p99 = next((le for le, c in buckets if c >= 0.99 * count), float("nan"))
lookups = total("bridge_id_store_lookups_total")
writes = total("bridge_id_store_ops_total", 'outcome="written"')
errors = total("bridge_id_store_errors_total")
print(f"{mode}: spans {spans:.0f}, export calls {count:.0f}, export p99 <= {p99*1000:g} ms, "
      f"mean {1000*total('bridge_exporter_send_duration_seconds_sum')/max(count,1):.3f} ms, "
      f"loadgen p99 {lg.get('latency_us', {}).get('p99', 'n/a')} us, round trips {trips:.0f} "
      f"({1000*trips/max(spans,1):.2f} per 1000 spans), lookups {lookups:.0f}, writes {writes:.0f}, errors {errors:.0f}")
EOF
}

echo "rate ${RATE} spans/s, ${BATCH} per request, ${SERVICES} services, ${DURATION}; load average $(cut -d' ' -f1-3 /proc/loadavg)"
run_mode off
run_mode on
