#!/usr/bin/env bash
# The sidecar proxy's overhead against a direct call (BENCHMARKS.md, "Sidecar proxy").
# Needs a release build (cargo build --release), node and wrk (Debian: apt-get install wrk).
#
#   benches/proxy/run.sh [SECONDS]
#
# Starts a Node "ok" upstream and the gateway with only a proxy ingress in front of it
# (pinned to one core with taskset), then measures, each request carrying a traceparent
# (so the proxy parses, remembers a segment and adds a ppb entry):
#   1. latency at a fixed 1000 requests/s (benches/proxy/rate.js, open loop), direct
#      and through the proxy: p50/p90/p99;
#   2. throughput with wrk (1 thread, 32 connections), direct and through the proxy,
#      and the proxy's CPU seconds during the run: requests/s per core = requests /
#      proxy CPU seconds.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-10}
bin=target/release/otel-pinpoint-bridge
up=${UP_PORT:-23101} ing=${ING_PORT:-23102} admin=${ADMIN_PORT:-23103} otlp=${OTLP_PORT:-23104}
tp='traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'

node benches/proxy/upstream.js "$up" & up_pid=$!
cfg=$(mktemp --suffix .yaml)
cat > "$cfg" <<YAML
receivers: { otlp: { grpc: { endpoint: 127.0.0.1:$otlp } } }
exporters: { none: { type: "null" } }
admin: { endpoint: 127.0.0.1:$admin }
log: { level: warn }
proxy:
  application_name: bench
  ingress: { listen: 127.0.0.1:$ing, upstream: 127.0.0.1:$up }
YAML
taskset -c 0 "$bin" run --config "$cfg" & px_pid=$!
trap 'kill $up_pid $px_pid 2>/dev/null; rm -f "$cfg"' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$admin/readyz" >/dev/null && break; sleep 0.1; done

cpu() { awk '{print $14 + $15}' "/proc/$px_pid/stat"; }
hz=$(getconf CLK_TCK)

for name in direct proxy; do
    port=$up; [[ $name == proxy ]] && port=$ing
    node benches/proxy/rate.js "http://127.0.0.1:$port/x" 1000 2 >/dev/null   # warm-up
    echo "latency_at_1000rps $name $(node benches/proxy/rate.js "http://127.0.0.1:$port/x" 1000 "$secs")"
done
# The proxy's own view (warm-up and measured run together): time it added per request.
curl -s "http://127.0.0.1:$admin/metrics" | grep -E '^bridge_proxy_added_latency_seconds_(bucket|sum|count)'

for name in direct proxy; do
    port=$up; [[ $name == proxy ]] && port=$ing
    before=$(cpu)
    out=$(wrk -t1 -c32 -d"${secs}s" -H "$tp" "http://127.0.0.1:$port/x")
    after=$(cpu)
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    reqs=$(awk '/requests in/ {print $1}' <<<"$out")
    cpu_s=$(awk -v a="$after" -v b="$before" -v hz="$hz" 'BEGIN {printf "%.2f", (a - b) / hz}')
    per_core=$(awk -v r="$reqs" -v c="$cpu_s" 'BEGIN {if (c > 0) printf "%.0f", r / c; else print "-"}')
    echo "throughput $name rps=$rps requests=$reqs proxy_cpu_s=$cpu_s requests_per_proxy_core_s=$per_core"
done
