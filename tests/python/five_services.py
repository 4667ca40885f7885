"""Five services traced with the real OpenTelemetry Python SDK at its DEFAULTS, as
deployed: one process per service, each with its own TracerProvider, a
BatchSpanProcessor with its default settings (5 s schedule delay, 512 spans per
export) and an OTLP/gRPC exporter. The services call each other over real HTTP
(ThreadingHTTPServer + urllib), with W3C trace context injected and extracted by the
SDK's global propagator.

Topology: edge -> orders -> {payments -> ledger, inventory}; orders also runs a
PostgreSQL query and a local step, ledger a local step. A driver starts the five
processes, then sends --traces requests to edge (no incoming trace context, so edge
starts each trace) at random instants spread over --seconds, from a thread pool.
Callees end first, so their spans usually reach the gateway before their callers'.

Where spans go (one of):
  --endpoint URL                          every service exports there
  --service-endpoint NAME=URL (repeated)  per service (sidecar layout: one bridge per
                                          service); services not named use --endpoint
  --endpoints URL,URL,...                 every exporter sends its batches to these
                                          in turn (round-robin over replicas)

Prints one JSON object: {"ok", "traces": [trace id hex...], "services": [...],
"exported": {service: spans}, "failed_exports", "errors"}.

usage: five_services.py --endpoint http://127.0.0.1:4317 [--traces 200] [--seconds 30]
       [--seed N] [--concurrency 16]
"""

import argparse
import itertools
import json
import os
import random
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SERVICES = ["edge", "orders", "payments", "ledger", "inventory"]
# Who calls whom (in call order).
CALLS = {
    "edge": ["orders"],
    "orders": ["payments", "inventory"],
    "payments": ["ledger"],
    "ledger": [],
    "inventory": [],
}
# Start callees before callers, so each knows its callees' ports.
START_ORDER = ["ledger", "inventory", "payments", "orders", "edge"]


# ----------------------------------------------------------------- one service


class RoundRobin:
    """A SpanExporter that sends each batch to the next of several exporters, like a
    load balancer in front of gateway replicas; it counts what it exported."""

    def __init__(self, exporters):
        self.exporters = exporters
        self.next = itertools.cycle(range(len(exporters)))
        self.exported = 0
        self.failed = 0
        self.lock = threading.Lock()

    def export(self, spans):
        from opentelemetry.sdk.trace.export import SpanExportResult

        with self.lock:
            i = next(self.next)
        result = self.exporters[i].export(spans)
        with self.lock:
            if result == SpanExportResult.SUCCESS:
                self.exported += len(spans)
            else:
                self.failed += len(spans)
        return result

    def shutdown(self):
        for e in self.exporters:
            e.shutdown()

    def force_flush(self, timeout_millis=30000):
        return True


def serve(name, endpoints, callees):
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.propagate import extract, inject
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.trace import SpanKind

    resource = Resource.create(
        {
            "service.name": name,
            "service.instance.id": str(uuid.uuid4()),
            "host.name": f"{name}-host",
        }
    )
    provider = TracerProvider(resource=resource)
    exporter = RoundRobin(
        [OTLPSpanExporter(endpoint=e, insecure=True) for e in endpoints]
    )
    # Default settings on purpose: schedule delay 5 s, batch 512, queue 2048.
    provider.add_span_processor(BatchSpanProcessor(exporter))
    tracer = provider.get_tracer(f"five_services.{name}")
    rng = random.Random()

    def call(callee, port):
        url = f"http://127.0.0.1:{port}/{callee}"
        with tracer.start_as_current_span(
            f"GET {callee}",
            kind=SpanKind.CLIENT,
            attributes={
                "http.request.method": "GET",
                "url.full": url,
                "server.address": "127.0.0.1",
                "server.port": port,
            },
        ) as span:
            headers = {}
            inject(headers)
            req = urllib.request.Request(url, headers=headers)
            with urllib.request.urlopen(req, timeout=30) as resp:
                resp.read()
                span.set_attribute("http.response.status_code", resp.status)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_GET(self):
            ctx = extract({k.lower(): v for k, v in self.headers.items()})
            port = self.server.server_address[1]
            with tracer.start_as_current_span(
                f"GET /{name}",
                context=ctx,
                kind=SpanKind.SERVER,
                attributes={
                    "http.request.method": "GET",
                    "http.route": f"/{name}",
                    "server.address": "127.0.0.1",
                    "server.port": port,
                    "http.response.status_code": 200,
                },
            ) as root:
                trace_id = format(root.get_span_context().trace_id, "032x")
                if name in ("orders", "ledger"):
                    with tracer.start_as_current_span(f"{name}.validate"):
                        time.sleep(rng.uniform(0.001, 0.005))
                if name == "orders":
                    with tracer.start_as_current_span(
                        "SELECT stock",
                        kind=SpanKind.CLIENT,
                        attributes={
                            "db.system": "postgresql",
                            "db.name": "shop",
                            "db.statement": "SELECT qty FROM stock WHERE id = $1",
                            "server.address": "db",
                            "server.port": 5432,
                        },
                    ):
                        time.sleep(rng.uniform(0.001, 0.004))
                for callee, cport in callees:
                    call(callee, cport)
                time.sleep(rng.uniform(0.001, 0.010))
            body = json.dumps({"trace_id": trace_id}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(json.dumps({"port": server.server_address[1]}), flush=True)
    sys.stdin.read()  # until the driver closes our stdin
    server.shutdown()
    provider.shutdown()  # the BatchSpanProcessor exports what it still holds
    print(
        json.dumps({"exported": exporter.exported, "failed": exporter.failed}),
        flush=True,
    )


# ----------------------------------------------------------------- the driver


def endpoints_of(args, name):
    if name in args.per_service:
        return [args.per_service[name]]
    if args.endpoints:
        return args.endpoints
    if args.endpoint:
        return [args.endpoint]
    sys.exit(f"no OTLP endpoint for {name}: give --endpoint, --endpoints or --service-endpoint")


def drive(args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    procs, ports = {}, {}
    try:
        for name in START_ORDER:
            cmd = [sys.executable, __file__, "--serve", name]
            for e in endpoints_of(args, name):
                cmd += ["--serve-endpoint", e]
            for callee in CALLS[name]:
                cmd += ["--callee", f"{callee}={ports[callee]}"]
            p = subprocess.Popen(
                cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True
            )
            procs[name] = p
            line = p.stdout.readline()
            if not line:
                raise RuntimeError(f"{name} did not start")
            ports[name] = json.loads(line)["port"]

        rng = random.Random(args.seed)
        offsets = sorted(rng.uniform(0, args.seconds) for _ in range(args.traces))
        traces, errors = [], []
        lock = threading.Lock()

        def one(i):
            url = f"http://127.0.0.1:{ports['edge']}/edge?i={i}"
            try:
                with urllib.request.urlopen(url, timeout=60) as resp:
                    tid = json.loads(resp.read())["trace_id"]
                with lock:
                    traces.append(tid)
            except Exception as e:  # reported, and the run fails
                with lock:
                    errors.append(f"request {i}: {e}")

        start = time.monotonic()
        with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
            for i, at in enumerate(offsets):
                delay = start + at - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                pool.submit(one, i)
        exported, failed = {}, 0
        for name in START_ORDER[::-1]:  # callers first: each flushes what it holds
            p = procs[name]
            p.stdin.close()
            line = p.stdout.readline()
            p.wait(timeout=60)
            stats = json.loads(line) if line else {"exported": 0, "failed": -1}
            exported[name] = stats["exported"]
            failed += stats["failed"]
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
    out = {
        "ok": not errors and failed == 0 and len(traces) == args.traces,
        "traces": traces,
        "services": SERVICES,
        "exported": exported,
        "failed_exports": failed,
        "errors": errors[:10],
    }
    json.dump(out, sys.stdout)
    return 0 if out["ok"] else 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoint")
    ap.add_argument("--endpoints", type=lambda s: [e for e in s.split(",") if e])
    ap.add_argument("--service-endpoint", action="append", default=[])
    ap.add_argument("--traces", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--concurrency", type=int, default=16)
    # internal: run one service
    ap.add_argument("--serve")
    ap.add_argument("--serve-endpoint", action="append", default=[])
    ap.add_argument("--callee", action="append", default=[])
    args = ap.parse_args()
    if args.serve:
        callees = [(c.split("=")[0], int(c.split("=")[1])) for c in args.callee]
        serve(args.serve, args.serve_endpoint, callees)
        return 0
    args.per_service = dict(s.split("=", 1) for s in args.service_endpoint)
    unknown = set(args.per_service) - set(SERVICES)
    if unknown:
        sys.exit(f"unknown services in --service-endpoint: {sorted(unknown)}")
    return drive(args)


if __name__ == "__main__":
    sys.exit(main())
