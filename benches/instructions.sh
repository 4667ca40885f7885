#!/usr/bin/env bash
# Instructions per span, per pipeline, under valgrind's callgrind (issue 17).
#
# Instruction counts do not depend on the machine's load, so unlike CPU time they are a
# fair before/after measure on a shared machine. For each pipeline (OTLP/gRPC in):
#   null      the null exporter (receive, decode, validate, route, queue, batch: the floor)
#   pinpoint  Pinpoint exporter -> `bench-collector` (the Rust blackhole of LOADGEN_BIN,
#             src/blackhole.rs); PINPOINT_PEER=node: the Node stand-in (--blackhole)
#   zipkin    Zipkin v2 JSON, uncompressed -> benches/sink.py (answers 202)
#   otlp      OTLP/gRPC, gzip -> Rotel (PyPI `rotel` in .venv) with --exporter blackhole
# it starts the gateway under callgrind, warms it up (WARMUP requests: connections to the
# peer, first-use allocations), zeroes the counters (`callgrind_control -z`), sends COUNT
# requests of BATCH spans with `loadgen --count` (one in flight, the same bytes every run:
# request n uses seed + n), waits until the gateway is idle (its CPU time in /proc grows
# by under 10 % of a core in half a second, after SETTLE s), dumps the counters
# (`callgrind_control -d`), and checks on /metrics that every span was exported. Each
# request is one batch (`batch.max_spans` = BATCH), so the export calls are the same on
# every run too. Only the gateway runs under valgrind; loadgen and the peers run natively.
#
# Prints one line per pipeline: instructions, spans, instructions per span and the ratio
# to null. The callgrind files are kept in OUT_DIR for `callgrind_annotate`
# (build with `--profile profiling` for symbols: BIN below).
#
# Usage: benches/instructions.sh
#        PIPELINES="null pinpoint" COUNT=50 BIN=/tmp/bridge-before benches/instructions.sh
# Knobs: BIN (default target/profiling/otel-pinpoint-bridge, built when missing: the
# release profile with line tables), LOADGEN_BIN (default BIN), COUNT (100), BATCH (100),
# WARMUP (5), SETTLE (0.5 s), OUT_DIR (a temporary folder), PORT_BASE (24317: gRPC,
# +1 HTTP, +2 Rotel, +571 admin), GW_CPU (1: the gateway is pinned to it). Needs valgrind, python3, node (npm ci in
# tests/peers/pinpoint-collector), curl; Rotel from scripts/setup-test-peers.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

PIPELINES=${PIPELINES:-"null pinpoint zipkin otlp"}
COUNT=${COUNT:-100}
BATCH=${BATCH:-100}
WARMUP=${WARMUP:-5}
SETTLE=${SETTLE:-0.5}
PORT_BASE=${PORT_BASE:-24317}
GW_CPU=${GW_CPU:-1}
export BENCH_GRPC_PORT=$PORT_BASE
export BENCH_HTTP_PORT=$((PORT_BASE + 1))
export BENCH_ROTEL_PORT=$((PORT_BASE + 2))
export BENCH_ADMIN_PORT=$((PORT_BASE + 571))
export BENCH_BATCH_MAX=$BATCH
B=${BIN:-target/profiling/otel-pinpoint-bridge}
if [ -z "${BIN:-}" ] && [ ! -x "$B" ]; then
    echo "instructions: building (--profile profiling)" >&2
    cargo build --profile profiling --quiet
fi
L=${LOADGEN_BIN:-$B}
OUT_DIR=${OUT_DIR:-$(mktemp -d)}
mkdir -p "$OUT_DIR"
TMP=$(mktemp -d)
PEERS=()
GW=""

cleanup() {
    [ -n "$GW" ] && kill "$GW" 2>/dev/null || true
    for p in "${PEERS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT
log() { echo "instructions: $*" >&2; }

wait_line() { # file -> first line, waiting up to 15 s
    for _ in $(seq 150); do
        if [ -s "$1" ]; then head -1 "$1"; return 0; fi
        sleep 0.1
    done
    log "no start-up line in $1"
    return 1
}

# --- peers ---------------------------------------------------------------------------
if [[ " $PIPELINES " == *" pinpoint "* ]]; then
    if [ "${PINPOINT_PEER:-rust}" = node ]; then
        node tests/peers/pinpoint-collector/server.js --port 0 --control-port 0 --blackhole \
            >"$TMP/collector.out" 2>"$TMP/collector.err" &
    else
        "$L" bench-collector >"$TMP/collector.out" 2>"$TMP/collector.err" &
    fi
    PEERS+=($!)
    BENCH_PINPOINT_PORT=$(wait_line "$TMP/collector.out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["span"])')
    export BENCH_PINPOINT_PORT
fi
if [[ " $PIPELINES " == *" zipkin "* ]]; then
    python3 benches/sink.py --port 0 >"$TMP/sink.out" &
    PEERS+=($!)
    BENCH_ZIPKIN_PORT=$(wait_line "$TMP/sink.out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["port"])')
    export BENCH_ZIPKIN_PORT
fi
if [[ " $PIPELINES " == *" otlp "* ]]; then
    rotel=$(ls .venv/lib/*/site-packages/rotel/rotel-agent 2>/dev/null | head -1)
    [ -x "$rotel" ] || { log "rotel-agent not found: run scripts/setup-test-peers.sh"; exit 1; }
    "$rotel" start --otlp-grpc-endpoint "127.0.0.1:$BENCH_ROTEL_PORT" \
        --otlp-http-endpoint "127.0.0.1:$((BENCH_ROTEL_PORT + 100))" --exporter blackhole \
        --pid-file "$TMP/rotel.pid" --log-file "$TMP/rotel.log" >/dev/null 2>&1 &
    PEERS+=($!)
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$BENCH_ROTEL_PORT") 2>/dev/null && break
        sleep 0.1
    done
fi

wait_idle() { # pid: until it used under 10 % of a core for half a second (at most 600 s)
    local hz t0 t1
    hz=$(getconf CLK_TCK)
    sleep "$SETTLE"
    for _ in $(seq 1200); do
        t0=$(awk '{print $14 + $15}' "/proc/$1/stat")
        sleep 0.5
        t1=$(awk '{print $14 + $15}' "/proc/$1/stat")
        [ $((t1 - t0)) -le $((hz / 20)) ] && return 0
    done
    log "the gateway did not become idle"
}
sent_total() {
    curl -sf "http://127.0.0.1:$BENCH_ADMIN_PORT/metrics" |
        awk '$1 ~ /^bridge_exporter_spans_sent_total/ && $1 ~ /exporter="out"/ {s += $2} END {printf "%d\n", s + 0}'
}
loadgen() { # count seed
    "$L" loadgen --endpoint "http://127.0.0.1:$BENCH_GRPC_PORT" --batch "$BATCH" \
        --concurrency 1 --duration 1h --timeout 60s --count "$1" --seed "$2" --json
}

base=""
for p in $PIPELINES; do
    out="$OUT_DIR/callgrind.$p"
    rm -f "$out"*
    # One core: one tokio worker, so which thread does what (and glibc's per-thread
    # arenas) varies less from run to run.
    taskset -c "$GW_CPU" valgrind --tool=callgrind --callgrind-out-file="$out" \
        "$B" run -c "benches/e2e/$p.yaml" >/dev/null 2>"$TMP/gateway.$p.log" &
    GW=$!
    ready=""
    for _ in $(seq 600); do
        curl -sf "http://127.0.0.1:$BENCH_ADMIN_PORT/readyz" >/dev/null 2>&1 && { ready=1; break; }
        sleep 0.2
    done
    [ -n "$ready" ] || { log "$p: gateway not ready; log:"; cat "$TMP/gateway.$p.log" >&2; exit 1; }
    loadgen "$WARMUP" 1000000 >/dev/null
    wait_idle "$GW"
    before=$(sent_total)
    callgrind_control -z "$GW" >/dev/null 2>&1
    loadgen "$COUNT" 1 >"$TMP/loadgen.json"
    # Under valgrind the exporter lags behind the receiver: wait until the gateway is
    # idle (its CPU time, read from /proc, not from the gateway), so nothing but the
    # timers' idle ticks run between the last export and the dump.
    wait_idle "$GW"
    callgrind_control -d "$GW" >/dev/null 2>&1
    after=$(sent_total)
    kill -TERM "$GW"
    wait "$GW" 2>/dev/null || true
    GW=""
    dump=$(ls "$out".* 2>/dev/null | grep -v '\.[0-9]*-' | sort | head -1)
    [ -n "$dump" ] || { log "$p: no callgrind dump"; exit 1; }
    instr=$(awk '/^(summary|totals):/ {print $2; exit}' "$dump")
    spans=$((after - before))
    want=$((COUNT * BATCH))
    python3 - "$p" "$instr" "$spans" "$want" "$TMP/loadgen.json" "${base:-}" "$dump" <<'EOF'
import json, sys
p, instr, spans, want, lg, base, dump = sys.argv[1:]
instr, spans, want = int(instr), int(spans), int(want)
r = json.load(open(lg))
per = instr / max(spans, 1)
ratio = f"{per / float(base):.2f}x null" if base else ""
bad = "" if spans == want and r["refused"] == 0 and r["errors"] == 0 else \
    f"  INCOMPLETE: {spans}/{want} spans exported, {r['refused']} refused, {r['errors']} errors"
print(f"{p:9} {instr:>14,} instructions  {spans:>7} spans  {per:>10,.0f} per span  {ratio}{bad}  ({dump})")
EOF
    if [ "$p" = null ]; then base=$((instr / (spans > 0 ? spans : 1))); fi
done
