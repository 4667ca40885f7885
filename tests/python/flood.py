"""Connection flood against the gateway, from its own process: holds N idle TCP
connections (spread over the OTLP/HTTP receiver, the OTLP/gRPC receiver and admin) plus
one slow-loris client, and re-opens what the gateway closes (at most --reopen-rate per
second). Meanwhile a well-behaved client exports one trace with the real OpenTelemetry
Python SDK over OTLP/HTTP and OTLP/gRPC (default BatchSpanProcessor, flushed at
shutdown), and /healthz is asked ten times on fresh connections with a 1 s timeout.
Prints what happened as JSON.

The soft RLIMIT_NOFILE is raised to the hard limit (N idle sockets need N descriptors).

usage: flood.py --http HOST:PORT --grpc HOST:PORT --admin HOST:PORT [--idle N]
                [--hold SECONDS (after the flood is open)] [--reopen-rate N]
"""

import argparse
import http.client
import json
import logging
import resource
import selectors
import socket
import threading
import time

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExportResult


def addr(text):
    host, port = text.rsplit(":", 1)
    return host, int(port)


class Recording:
    def __init__(self, inner):
        self.inner = inner
        self.results = []

    def export(self, spans):
        result = self.inner.export(spans)
        self.results.append(result == SpanExportResult.SUCCESS)
        return result

    def shutdown(self):
        self.inner.shutdown()

    def force_flush(self, timeout_millis=30000):
        return True


def export_one(exporter, name):
    started = time.monotonic()
    provider = TracerProvider(resource=Resource.create({"service.name": "well-behaved"}))
    rec = Recording(exporter)
    provider.add_span_processor(BatchSpanProcessor(rec))
    with provider.get_tracer("bridge.tests.flood").start_as_current_span(name) as span:
        trace_id = format(span.get_span_context().trace_id, "032x")
    provider.shutdown()
    return {
        "ok": bool(rec.results) and all(rec.results),
        "seconds": round(time.monotonic() - started, 3),
        "trace_id": trace_id,
    }


def healthz(admin):
    started = time.monotonic()
    try:
        c = http.client.HTTPConnection(*admin, timeout=1)
        c.request("GET", "/healthz")
        status = c.getresponse().status
        c.close()
    except OSError:
        status = 0
    return status, round((time.monotonic() - started) * 1000, 1)


def slow_loris(target, out, stop):
    """Sends a request head one byte every 0.5 s; notes when the gateway closes it."""
    started = time.monotonic()
    try:
        s = socket.create_connection(target, timeout=5)
        s.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/x-protobuf\r\nX-Slow: ")
        s.settimeout(0.5)
        while not stop.is_set():
            try:
                if s.recv(1024) == b"":
                    break
            except socket.timeout:
                pass
            s.sendall(b"a")
        else:
            return
    except OSError:
        pass
    out["slowloris_closed_after"] = round(time.monotonic() - started, 2)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--http", type=addr, required=True)
    ap.add_argument("--grpc", type=addr, required=True)
    ap.add_argument("--admin", type=addr, required=True)
    ap.add_argument("--idle", type=int, default=10000)
    ap.add_argument("--hold", type=float, default=15)
    ap.add_argument("--reopen-rate", type=int, default=500)
    args = ap.parse_args()
    logging.disable(logging.CRITICAL)

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = args.idle + 500
    if hard != resource.RLIM_INFINITY and hard < want:
        raise SystemExit(f"the hard open-file limit {hard} is below the {want} this flood needs")
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))

    # 80 % at the OTLP/HTTP receiver, 10 % at gRPC, 10 % at admin.
    targets = [args.http] * (args.idle * 8 // 10) + [args.grpc] * (args.idle // 10)
    targets += [args.admin] * (args.idle - len(targets))
    sel = selectors.DefaultSelector()
    out = {"opened": 0, "connect_errors": 0, "reopened": 0, "closed_by_gateway": 0}

    def open_one(target):
        try:
            s = socket.create_connection(target, timeout=5)
        except OSError:
            out["connect_errors"] += 1
            return False
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, target)
        return True

    started = time.monotonic()
    for t in targets:
        out["opened"] += open_one(t)
    out["open_seconds"] = round(time.monotonic() - started, 2)

    stop = threading.Event()
    loris_started = time.monotonic()
    loris = threading.Thread(target=slow_loris, args=(args.http, out, stop), daemon=True)
    loris.start()

    def churn():
        """Re-opens connections the gateway closed, at a bounded rate."""
        while not stop.is_set():
            budget = args.reopen_rate // 10
            for key, _ in sel.select(timeout=0.1):
                s, target = key.fileobj, key.data
                try:
                    data = s.recv(64)
                except OSError:
                    data = b""
                if data:
                    continue
                sel.unregister(s)
                s.close()
                out["closed_by_gateway"] += 1
                if budget > 0 and open_one(target):
                    budget -= 1
                    out["reopened"] += 1

    churner = threading.Thread(target=churn, daemon=True)
    churner.start()

    time.sleep(1)
    out["held_during_exports"] = len(sel.get_map())
    out["export_http"] = export_one(
        HttpExporter(endpoint=f"http://{args.http[0]}:{args.http[1]}/v1/traces", timeout=10), "over-http"
    )
    out["export_grpc"] = export_one(
        GrpcExporter(endpoint=f"http://{args.grpc[0]}:{args.grpc[1]}", insecure=True, timeout=10), "over-grpc"
    )
    out["healthz"] = []
    for _ in range(10):
        out["healthz"].append(healthz(args.admin))
        time.sleep(0.2)
    # Hold the flood until the slow-loris client is cut off, or --hold seconds after it began.
    while time.monotonic() - loris_started < args.hold and "slowloris_closed_after" not in out:
        time.sleep(0.1)
    out["held_at_end"] = len(sel.get_map())
    stop.set()
    churner.join()
    loris.join(timeout=2)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
