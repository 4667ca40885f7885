#!/usr/bin/env bash
# Persistent queue cost: throughput and request latency of the gateway with a null
# exporter, in-memory queue against `queue.persistent` under each `sync` policy.
#
# For each queue (memory, always, 100ms, never) it starts the release gateway on CPU 1
# and runs loadgen (OTLP/gRPC, 100 spans per request, 16 in flight) on CPU 0:
#   steady    RATE spans/s (default 10000) for DURATION s (default 8)
#   saturate  unbounded for DURATION s
# and prints one Markdown row per queue and mode: achieved spans/s, loadgen's request
# latency p50/p99 (the sender's view: with a persistent queue it includes the write
# and, for `always`, the fsync), and syncs per second (group commit: requests per sync).
#
# Usage: benches/persist.sh   (DURATION=8 RATE=10000 QUEUE_DIR=/var/tmp/x benches/persist.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-8}
RATE=${RATE:-10000}
GRPC=${BENCH_GRPC_PORT:-28317}
ADMIN=${BENCH_ADMIN_PORT:-28888}
B=${BIN:-target/release/otel-pinpoint-bridge}
TMP=$(mktemp -d)
QDIR=${QUEUE_DIR:-$TMP/queue}
GW=""
cleanup() { [ -n "$GW" ] && kill "$GW" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT
[ -x "$B" ] || cargo build --release --quiet

config() { # $1 = memory | always | 100ms | never
    local persist=""
    if [ "$1" != memory ]; then
        rm -rf "$QDIR"
        persist="      persistent: { dir: '$QDIR', max_bytes: 4GiB, sync: $1 }"
    fi
    cat > "$TMP/gw.yaml" <<YAML
receivers:
  otlp:
    grpc: { endpoint: 127.0.0.1:$GRPC }
exporters:
  sink:
    type: "null"
    queue:
      max_spans: 100000
$persist
admin: { endpoint: 127.0.0.1:$ADMIN }
log: { level: warn }
service: { shutdown_grace: 2s }
YAML
}

metric() { curl -s "http://127.0.0.1:$ADMIN/metrics" | awk -v n="$1" '$1 ~ "^"n {s+=$NF} END {print s+0}'; }

echo "| queue | mode | spans/s | request latency p50 / p99 ms | syncs/s | requests per sync |"
echo "|---|---|---|---|---|---|"
for q in memory always 100ms never; do
    config "$q"
    taskset -c 1 "$B" run --config "$TMP/gw.yaml" 2>"$TMP/gw.log" &
    GW=$!
    for _ in $(seq 100); do curl -sf "http://127.0.0.1:$ADMIN/readyz" >/dev/null && break; sleep 0.1; done
    for mode in steady saturate; do
        rate=(); [ "$mode" = steady ] && rate=(--rate "$RATE")
        s0=$(metric bridge_persist_syncs_total)
        r=$(taskset -c 0 "$B" loadgen --endpoint "http://127.0.0.1:$GRPC" --batch 100 \
            --concurrency 16 --duration "${DURATION}s" "${rate[@]}" --json)
        s1=$(metric bridge_persist_syncs_total)
        python3 - "$q" "$mode" "$r" "$s0" "$s1" "$DURATION" <<'PY'
import json, sys
q, mode, r, s0, s1, d = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6])
l = r["latency_us"]
syncs = (s1 - s0) / d
rps = r["requests"] / d
per = f"{rps / syncs:.1f}" if syncs > 0 else "-"
print(f"| {q} | {mode} | {r['spans_per_second']:.0f} | {l['p50']/1000:.2f} / {l['p99']/1000:.2f} | {syncs:.0f} | {per} |"
      + (f" refused {r['refused']}, errors {r['errors']}" if r['refused'] or r['errors'] else ""))
PY
    done
    kill "$GW"; wait "$GW" 2>/dev/null || true; GW=""
done
