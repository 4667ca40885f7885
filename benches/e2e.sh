#!/usr/bin/env bash
# End-to-end benchmark of the gateway's own cost (issue #6).
#
# For three pipelines, all OTLP/gRPC in:
#   passthrough  null exporter (receive, decode, validate, route, queue, batch)
#   pinpoint     Pinpoint exporter -> the Rust blackhole collector (`bench-collector` of the
#                loadgen binary, src/blackhole.rs); PINPOINT_PEER=node: the Node stand-in
#                (tests/peers/pinpoint-collector --blackhole), which could not take 10k spans/s
#                on a shared core
#   zipkin       Zipkin v2 JSON, uncompressed -> benches/sink.py (answers 202)
#   otlp         OTLP/gRPC, gzip -> Rotel (PyPI `rotel`, from .venv) with --exporter blackhole
#                (not in the default PIPELINES: PIPELINES="passthrough otlp")
#   rotel        not the gateway: Rotel itself (PyPI `rotel`, --exporter blackhole) in the
#                gateway's place, measured the same way: the side-by-side reference for
#                the pass-through (spans counted as loadgen's accepted spans)
# it measures, on the gateway process only (never the peers or loadgen):
#   idle      RSS 2 s after start
#   steady    RATE spans/s (default 10000) in batches of 100 for DURATION s, default
#             batching: CPU % of one core (utime+stime from /proc/<pid>/stat), RSS sampled
#             each second (avg, max) and VmHWM
#   latency   the same rate with batch.max_spans = 100 (every request is a full batch, so
#             no batch timeout is waited): p50/p99 of bridge_pipeline_latency_seconds
#   saturate  loadgen unbounded (32 in flight) for SAT_DURATION s: spans exported per
#             second, and per CPU-second of the gateway (= spans/s per core)
#   overload  (OVERLOAD=1, the default) a closed-loop probe, 4 requests in flight for
#             OVL_DURATION s, gives the sustainable rate S (spans exported per second);
#             then loadgen offers 10 x S (--rate, 64 in flight) for OVL_DURATION s and the
#             goodput (spans exported per second) is compared with S. Loadgen may not
#             reach 10 x S on its core: the offered rate is reported as measured. The
#             probe and the overload send pre-encoded requests (`loadgen --pool POOL`,
#             default 200; POOL=0: every request generated, as before).
# The gateway runs on CPU 1 (taskset -c 1); loadgen and the peers on CPU 0.
# Rotel is found in .venv (scripts/setup-test-peers.sh) or installed from PyPI into
# .venv-rotel by this script.
#
# Usage: benches/e2e.sh            (writes the table between the e2e markers of BENCHMARKS.md)
#        DURATION=60 SAT_DURATION=30 PIPELINES="pinpoint" OUT=/tmp/x.md benches/e2e.sh
# Needs: cargo, python3, taskset, curl; node (and `npm ci` in tests/peers/pinpoint-collector)
# only with PINPOINT_PEER=node. Knobs besides those above: POOL (200; 0 = no --pool),
# OVL_CONCURRENCY (64), PINPOINT_PEER (rust).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-30}
LAT_DURATION=${LAT_DURATION:-15}
SAT_DURATION=${SAT_DURATION:-20}
RATE=${RATE:-10000}
PIPELINES=${PIPELINES:-"rotel passthrough pinpoint zipkin"}
OVERLOAD=${OVERLOAD:-1}
OVL_DURATION=${OVL_DURATION:-15}
OUT=${OUT:-BENCHMARKS.md}
GW_CPU=${GW_CPU:-1}
LOAD_CPU=${LOAD_CPU:-0}
export BENCH_GRPC_PORT=${BENCH_GRPC_PORT:-14317}
export BENCH_HTTP_PORT=${BENCH_HTTP_PORT:-14318}
export BENCH_ADMIN_PORT=${BENCH_ADMIN_PORT:-18888}
# BRIDGE_BIN: the gateway binary to measure (default: build this checkout); LOADGEN_BIN:
# the binary whose `loadgen` sends (default: the gateway's); LOADGEN_EXTRA: more loadgen
# arguments for the steady and latency phases, e.g. "--callee-first-lag 100".
B=${BRIDGE_BIN:-target/release/otel-pinpoint-bridge}
L=${LOADGEN_BIN:-$B}
LOADGEN_EXTRA=${LOADGEN_EXTRA:-}
PINPOINT_PEER=${PINPOINT_PEER:-rust}
POOL=${POOL:-200}
OVL_CONCURRENCY=${OVL_CONCURRENCY:-64}
POOL_ARGS=()
[ "$POOL" != 0 ] && POOL_ARGS=(--pool "$POOL")
HZ=$(getconf CLK_TCK)
TMP=$(mktemp -d)
RESULTS=$TMP/results.jsonl
PEERS=()
GW=""

cleanup() {
    [ -n "$GW" ] && kill "$GW" 2>/dev/null || true
    for p in "${PEERS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT

log() { echo "e2e: $*" >&2; }

if [ -n "${RENDER_ONLY:-}" ]; then
    # Re-render the table from a saved results file (RESULTS_COPY of an earlier run).
    cp "$RENDER_ONLY" "$RESULTS"
    PIPELINES=""
elif [ -z "${BRIDGE_BIN:-}" ]; then
    log "building (release)"
    cargo build --release --quiet
fi
LOAD_BEFORE=${LOAD_BEFORE:-$(cut -d' ' -f1-3 /proc/loadavg)}

# --- Rotel (PyPI) ----------------------------------------------------------------------
rotel_agent() { # -> path of rotel-agent, installing the pinned PyPI package when missing
    local r
    r=$(ls .venv/lib/*/site-packages/rotel/rotel-agent .venv-rotel/lib/*/site-packages/rotel/rotel-agent 2>/dev/null | head -1)
    if [ -z "$r" ]; then
        log "installing rotel from PyPI into .venv-rotel"
        python3 -m venv .venv-rotel >&2
        .venv-rotel/bin/pip install --quiet --disable-pip-version-check rotel==0.0.1a15 >&2
        r=$(ls .venv-rotel/lib/*/site-packages/rotel/rotel-agent | head -1)
    fi
    echo "$r"
}

# --- peers (CPU 0) -------------------------------------------------------------------
wait_line() { # file -> first line, waiting up to 15 s
    for _ in $(seq 150); do
        if [ -s "$1" ]; then head -1 "$1"; return 0; fi
        sleep 0.1
    done
    echo "e2e: no start-up line in $1" >&2
    return 1
}
start_peers() {
    if [[ " $PIPELINES " == *" pinpoint "* ]]; then
        if [ "$PINPOINT_PEER" = node ]; then
            taskset -c "$LOAD_CPU" node tests/peers/pinpoint-collector/server.js --port 0 \
                --control-port 0 --blackhole >"$TMP/collector.out" 2>"$TMP/collector.err" &
        else
            taskset -c "$LOAD_CPU" "$L" bench-collector >"$TMP/collector.out" 2>"$TMP/collector.err" &
        fi
        PEERS+=($!)
        BENCH_PINPOINT_PORT=$(wait_line "$TMP/collector.out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["span"])')
        export BENCH_PINPOINT_PORT
        log "pinpoint collector ($PINPOINT_PEER, blackhole) on $BENCH_PINPOINT_PORT"
    fi
    if [[ " $PIPELINES " == *" otlp "* ]]; then
        local rotel
        rotel=$(rotel_agent)
        export BENCH_ROTEL_PORT=${BENCH_ROTEL_PORT:-14319}
        taskset -c "$LOAD_CPU" "$rotel" start --otlp-grpc-endpoint "127.0.0.1:$BENCH_ROTEL_PORT" \
            --otlp-http-endpoint "127.0.0.1:$((BENCH_ROTEL_PORT + 1))" --exporter blackhole \
            --pid-file "$TMP/rotel.pid" --log-file "$TMP/rotel.log" >/dev/null 2>&1 &
        PEERS+=($!)
        for _ in $(seq 100); do
            (exec 3<>"/dev/tcp/127.0.0.1/$BENCH_ROTEL_PORT") 2>/dev/null && break
            sleep 0.1
        done
        log "rotel (blackhole) on $BENCH_ROTEL_PORT"
    fi
    if [[ " $PIPELINES " == *" zipkin "* ]]; then
        taskset -c "$LOAD_CPU" python3 benches/sink.py --port 0 >"$TMP/sink.out" &
        PEERS+=($!)
        BENCH_ZIPKIN_PORT=$(wait_line "$TMP/sink.out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["port"])')
        export BENCH_ZIPKIN_PORT
        log "zipkin sink on $BENCH_ZIPKIN_PORT"
    fi
}

# --- the gateway (CPU 1) -------------------------------------------------------------
config_of() { case "$1" in passthrough) echo null ;; *) echo "$1" ;; esac; }
start_gateway() { # pipeline [VAR=value ...]
    local cfg
    if [ "$1" = rotel ]; then
        taskset -c "$GW_CPU" "$(rotel_agent)" start --otlp-grpc-endpoint "127.0.0.1:$BENCH_GRPC_PORT" \
            --otlp-http-endpoint "127.0.0.1:$BENCH_HTTP_PORT" --exporter blackhole \
            --pid-file "$TMP/rotel-gw.pid" --log-file "$TMP/rotel-gw.log" >/dev/null 2>&1 &
        GW=$!
        for _ in $(seq 100); do
            (exec 3<>"/dev/tcp/127.0.0.1/$BENCH_GRPC_PORT") 2>/dev/null && return 0
            sleep 0.1
        done
        log "rotel did not start"
        return 1
    fi
    cfg=benches/e2e/$(config_of "$1").yaml
    shift
    env "$@" taskset -c "$GW_CPU" "$B" run -c "$cfg" 2>>"$TMP/gateway.log" &
    GW=$!
    for _ in $(seq 100); do
        curl -sf "http://127.0.0.1:$BENCH_ADMIN_PORT/readyz" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    log "gateway did not become ready; log:"; cat "$TMP/gateway.log" >&2
    return 1
}
stop_gateway() {
    kill -TERM "$GW" 2>/dev/null || true
    wait "$GW" 2>/dev/null || true
    GW=""
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
status_kib() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
metric() { # name -> value summed over series of exporter "out" (0 without /metrics)
    { curl -sf "http://127.0.0.1:$BENCH_ADMIN_PORT/metrics" || true; } |
        awk -v n="$1" '$1 ~ "^"n"(\\{|$)" && $1 ~ /exporter="out"/ {s += $2} END {print s + 0}'
}
latency_buckets() {
    { curl -sf "http://127.0.0.1:$BENCH_ADMIN_PORT/metrics" || true; } | grep '^bridge_pipeline_latency_seconds_bucket{exporter="out"' || true
}

# Runs loadgen against the gateway and writes one JSON result line.
measure() { # pipeline phase loadgen-args...
    local pipeline=$1 phase=$2
    shift 2
    local samples=$TMP/rss.$pipeline.$phase
    : >"$samples"
    local t0 s0 w0
    t0=$(cpu_ticks "$GW")
    s0=$(metric bridge_exporter_spans_sent_total)
    w0=$(date +%s.%N)
    (while kill -0 "$GW" 2>/dev/null; do status_kib "$GW" VmRSS >>"$samples"; sleep 1; done) &
    local sampler=$!
    taskset -c "$LOAD_CPU" "$L" loadgen --endpoint "http://127.0.0.1:$BENCH_GRPC_PORT" --json "$@" >"$TMP/loadgen.json"
    # Let the last batches leave (batch timeout 200 ms; Pinpoint hold window).
    sleep 1
    local t1 s1 w1
    t1=$(cpu_ticks "$GW")
    s1=$(metric bridge_exporter_spans_sent_total)
    w1=$(date +%s.%N)
    kill "$sampler" 2>/dev/null || true
    wait "$sampler" 2>/dev/null || true
    latency_buckets >"$TMP/buckets"
    python3 - "$pipeline" "$phase" "$t0" "$t1" "$HZ" "$w0" "$w1" "$s0" "$s1" \
        "$(status_kib "$GW" VmHWM)" "$samples" "$TMP/loadgen.json" "$TMP/buckets" "$*" >>"$RESULTS" <<'EOF'
import json, re, sys
(pipeline, phase, t0, t1, hz, w0, w1, s0, s1, hwm, samples, lg, buckets, args) = sys.argv[1:]
cpu_s = (float(t1) - float(t0)) / float(hz)
wall = float(w1) - float(w0)
rss = [int(x) for x in open(samples).read().split()]
loadgen = json.load(open(lg))
# Percentiles of the latency histogram, linear inside a bucket.
cum = []
for line in open(buckets):
    m = re.search(r'le="([^"]+)"\}\s+(\S+)', line)
    if m:
        cum.append((float("inf") if m.group(1) == "+Inf" else float(m.group(1)), float(m.group(2))))
def pct(q):
    if not cum or cum[-1][1] == 0:
        return None
    target, lo_le, lo_n = q * cum[-1][1], 0.0, 0.0
    for le, n in cum:
        if n >= target:
            if le == float("inf"):
                return lo_le * 1000
            return (lo_le + (le - lo_le) * (target - lo_n) / max(n - lo_n, 1e-9)) * 1000
        lo_le, lo_n = le, n
    return None
sent = float(s1) - float(s0)
if pipeline == "rotel":  # no metrics of its own here: what loadgen had accepted
    sent = float(loadgen["spans_accepted"])
print(json.dumps({
    "pipeline": pipeline, "phase": phase, "loadgen_args": args,
    "wall_s": wall, "cpu_s": cpu_s, "cpu_pct": 100 * cpu_s / wall,
    "rss_avg_mib": sum(rss) / len(rss) / 1024 if rss else None,
    "rss_max_mib": max(rss) / 1024 if rss else None,
    "hwm_mib": int(hwm) / 1024,
    "sent_spans": sent, "sent_per_s": sent / wall,
    "spans_per_cpu_s": sent / cpu_s if cpu_s > 0 else None,
    "latency_p50_ms": pct(0.5), "latency_p99_ms": pct(0.99),
    # Offered = what loadgen's rate asked for: requests sent plus ticks skipped because
    # every request slot was busy (the gateway was behind); sent = requests answered.
    "offered_per_s": (loadgen["requests"] + loadgen.get("skipped", 0)) * loadgen["batch"] / wall,
    "sent_req_spans_per_s": loadgen["requests"] * loadgen["batch"] / wall,
    "loadgen": loadgen,
}))
EOF
    log "$pipeline/$phase: $(tail -1 "$RESULTS" | python3 -c 'import json,sys; r=json.load(sys.stdin); print("cpu %.1f%%  rss avg %.1f MiB  sent %.0f/s  per core %.0f/s  p99 %s ms  refused %d  errors %d" % (r["cpu_pct"], r["rss_avg_mib"] or 0, r["sent_per_s"], r["spans_per_cpu_s"] or 0, r["latency_p99_ms"], r["loadgen"]["refused"], r["loadgen"]["errors"]))')"
}

[ -n "$PIPELINES" ] && start_peers
for p in $PIPELINES; do
    start_gateway "$p"
    sleep 2
    python3 -c 'import json,sys; print(json.dumps({"pipeline": sys.argv[1], "phase": "idle", "rss_mib": int(sys.argv[2]) / 1024, "hwm_mib": int(sys.argv[3]) / 1024}))' \
        "$p" "$(status_kib "$GW" VmRSS)" "$(status_kib "$GW" VmHWM)" >>"$RESULTS"
    log "$p/idle: $(status_kib "$GW" VmRSS) KiB"
    # shellcheck disable=SC2086
    measure "$p" steady --rate "$RATE" --batch 100 --duration "${DURATION}s" --concurrency 16 $LOADGEN_EXTRA
    stop_gateway

    if [ "$p" != rotel ]; then
        start_gateway "$p" BENCH_BATCH_MAX=100
        # shellcheck disable=SC2086
        measure "$p" latency --rate "$RATE" --batch 100 --duration "${LAT_DURATION}s" --concurrency 16 $LOADGEN_EXTRA
        stop_gateway
    fi

    start_gateway "$p"
    measure "$p" saturate --batch 100 --duration "${SAT_DURATION}s" --concurrency 32
    stop_gateway

    if [ "$OVERLOAD" = 1 ] && [ "$p" != rotel ]; then
        start_gateway "$p"
        measure "$p" probe --batch 100 --duration "${OVL_DURATION}s" --concurrency 4 "${POOL_ARGS[@]}"
        sustained=$(tail -1 "$RESULTS" | python3 -c 'import json,sys; print(max(100, int(json.load(sys.stdin)["sent_per_s"])))')
        # Let the queue drain before the overload starts.
        sleep 2
        measure "$p" overload --rate $((10 * sustained)) --batch 100 --duration "${OVL_DURATION}s" --concurrency "$OVL_CONCURRENCY" "${POOL_ARGS[@]}"
        stop_gateway
    fi
done
LOAD_AFTER=${LOAD_AFTER:-$(cut -d' ' -f1-3 /proc/loadavg)}

# --- the table -----------------------------------------------------------------------
python3 - "$RESULTS" "$OUT" "$LOAD_BEFORE" "$LOAD_AFTER" "$DURATION" "$LAT_DURATION" "$SAT_DURATION" "$RATE" "$OVL_CONCURRENCY" "$POOL" "$PINPOINT_PEER" <<'EOF'
import json, os, platform, subprocess, sys, time
results, out, load_before, load_after, dur, lat_dur, sat_dur, rate, ovl_conc, pool, peer = sys.argv[1:]
rows = [json.loads(l) for l in open(results)]
get = lambda p, ph: next((r for r in rows if r["pipeline"] == p and r["phase"] == ph), None)
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
mem = next((l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal")), "0")
rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
f = lambda x, d=1: "–" if x is None else f"{x:.{d}f}"
lines = [
    f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} at commit `{rev}` on {os.cpu_count()} × {cpu}, "
    f"{int(mem) // 1024} MiB RAM, {platform.system()} {platform.release()}; load average before {load_before}, after {load_after} "
    "(shared machine: other builds may run). Gateway on CPU 1, loadgen and peers on CPU 0. "
    f"Steady: {rate} spans/s, 100 per request, {dur} s, default batching (512 spans / 200 ms). "
    f"Latency: same rate, `batch.max_spans: 100`, {lat_dur} s. Saturation: unbounded, 32 in flight, {sat_dur} s. "
    f"Pinpoint peer: {'the Node stand-in' if peer == 'node' else 'bench-collector (Rust blackhole)'}.",
    "",
    "| pipeline | idle RSS MiB | CPU % of a core @ steady | RSS avg / max MiB @ steady (VmHWM) | spans per CPU-second @ steady | latency p50 / p99 ms | saturation: exported spans/s (CPU %) | spans per CPU-second @ saturation | refused / errors (sat.) |",
    "|---|---|---|---|---|---|---|---|---|",
]
for p in ["rotel", "passthrough", "pinpoint", "zipkin", "otlp"]:
    idle, st, la, sa = get(p, "idle"), get(p, "steady"), get(p, "latency"), get(p, "saturate")
    if not st:
        continue
    lines.append(
        f"| {p} | {f(idle and idle['rss_mib'])} | {f(st['cpu_pct'], 2)} | {f(st['rss_avg_mib'])} / {f(st['rss_max_mib'])} ({f(st['hwm_mib'])}) | {f(st['spans_per_cpu_s'], 0)} "
        f"| {f(la and la['latency_p50_ms'], 3)} / {f(la and la['latency_p99_ms'], 3)} "
        f"| {f(sa and sa['sent_per_s'], 0)} ({f(sa and sa['cpu_pct'], 0)}) | {f(sa and sa['spans_per_cpu_s'], 0)} "
        f"| {sa and sa['loadgen']['refused']} / {sa and sa['loadgen']['errors']} |")
rb, pb = get("rotel", "steady"), get("passthrough", "steady")
if rb and pb and rb["spans_per_cpu_s"] and pb["spans_per_cpu_s"]:
    lines.append("")
    lines.append(f"CPU per span of the pass-through relative to Rotel's blackhole: {rb['spans_per_cpu_s'] / pb['spans_per_cpu_s']:.2f}× at steady"
                 + (f", {get('rotel', 'saturate')['spans_per_cpu_s'] / get('passthrough', 'saturate')['spans_per_cpu_s']:.2f}× at saturate" if get("rotel", "saturate") and get("passthrough", "saturate") and get("passthrough", "saturate")["spans_per_cpu_s"] and get("rotel", "saturate")["spans_per_cpu_s"] else "")
                 + " (Rotel's spans are those loadgen had accepted).")
ovl = [(p, get(p, "probe"), get(p, "overload")) for p in ["passthrough", "pinpoint", "zipkin", "otlp"]]
ovl = [(p, pr, ov) for p, pr, ov in ovl if pr and ov]
if ovl:
    lines += ["", f"Overload: sustainable rate S = spans exported per second with 4 requests in flight (closed loop); then loadgen offers 10 × S (`--rate`, {ovl_conc} in flight"
              + (f", `--pool {pool}`" if pool != "0" else "") + "). Offered = requests sent plus rate ticks skipped because every slot was busy; sent = requests answered (accepted or refused). Goodput = spans exported per second under that load.", "",
              "| pipeline | S: exported spans/s (CPU %) | offered spans/s (× S) | sent spans/s (× S) | goodput spans/s (CPU %) | goodput / S | refused requests (overload) |",
              "|---|---|---|---|---|---|---|"]
    for p, pr, ov in ovl:
        s_rate = pr["sent_per_s"]
        sent_req = ov.get("sent_req_spans_per_s")
        lines.append(f"| {p} | {f(s_rate, 0)} ({f(pr['cpu_pct'], 0)}) | {f(ov['offered_per_s'], 0)} ({f(ov['offered_per_s'] / s_rate if s_rate else None, 1)}×) "
                     f"| {f(sent_req, 0)} ({f(sent_req / s_rate if s_rate and sent_req is not None else None, 1)}×) "
                     f"| {f(ov['sent_per_s'], 0)} ({f(ov['cpu_pct'], 0)}) | {f(100 * ov['sent_per_s'] / s_rate if s_rate else None, 0)} % | {ov['loadgen']['refused']} |")
for p in ["pinpoint", "zipkin", "otlp"]:
    ratios = []
    for phase in ["steady", "saturate"]:
        b, s = get("passthrough", phase), get(p, phase)
        if b and s and s["spans_per_cpu_s"] and b["spans_per_cpu_s"]:
            ratios.append(f"{b['spans_per_cpu_s'] / s['spans_per_cpu_s']:.2f}× at {phase}")
    if ratios:
        lines.append("")
        lines.append(f"CPU per span of `{p}` relative to the pass-through baseline: {', '.join(ratios)}.")
table = "\n".join(lines) + "\n"
begin, end = "<!-- e2e:begin -->", "<!-- e2e:end -->"
text = open(out).read() if os.path.exists(out) else f"# Benchmarks\n\n{begin}\n{end}\n"
if begin not in text:
    text += f"\n{begin}\n{end}\n"
head, rest = text.split(begin, 1)
_, tail = rest.split(end, 1)
open(out, "w").write(f"{head}{begin}\n{table}{end}{tail}")
print(table)
EOF
cp "$RESULTS" "${RESULTS_COPY:-/dev/null}" 2>/dev/null || true
