"""A service traced with the real OpenTelemetry Python SDK (default BatchSpanProcessor,
OTLP/gRPC to its sidecar's bridge, W3C propagation), for the sidecar proxy tests.

usage: proxy_service.py --name NAME --port PORT --otlp URL [--egress HOST:PORT]
                        [--mode http|grpc]

http: GET /hop?depth=N answers; when N > 0 it first calls
      http://EGRESS/hop?depth=N-1 (its sidecar's egress, which forwards to the callee).
grpc: unary /demo.Hop/Call with the request b"N" (raw bytes, no codegen); when N > 0
      it first calls EGRESS with b"N-1".
The server span's server.address/port are the host:port the caller addressed (the Host
header; for gRPC the --public address). Prints {"port": N} once listening; flushes and
exits when stdin closes.
"""

import argparse
import json
import sys
import threading
import urllib.request
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.propagate import extract, inject
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind


def split_host(hostport, default_port):
    host, _, port = hostport.rpartition(":")
    if not host:
        return hostport, default_port
    return host, int(port)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--name", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--otlp", required=True)
    ap.add_argument("--egress")
    ap.add_argument("--public")
    ap.add_argument("--mode", choices=["http", "grpc"], default="http")
    a = ap.parse_args()

    tp = TracerProvider(resource=Resource.create({"service.name": a.name}))
    tp.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=a.otlp, insecure=True)))
    tracer = tp.get_tracer("proxy-test")

    if a.mode == "http":
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                q = parse_qs(urlparse(self.path).query)
                depth = int(q.get("depth", ["0"])[0])
                host, port = split_host(self.headers.get("Host", ""), 80)
                ctx = extract(dict(self.headers.items()))
                with tracer.start_as_current_span(
                    "GET /hop", context=ctx, kind=SpanKind.SERVER,
                    attributes={"http.request.method": "GET", "http.route": "/hop",
                                "server.address": host, "server.port": port},
                ) as server:
                    body = f"hello from {a.name}"
                    if depth > 0 and a.egress:
                        url = f"http://{a.egress}/hop?depth={depth - 1}"
                        ehost, eport = split_host(a.egress, 80)
                        with tracer.start_as_current_span(
                            "GET", kind=SpanKind.CLIENT,
                            attributes={"http.request.method": "GET", "url.full": url,
                                        "server.address": ehost, "server.port": eport},
                        ) as client:
                            headers = {}
                            inject(headers)
                            with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as r:
                                body += " <- " + r.read().decode()
                                client.set_attribute("http.response.status_code", r.status)
                    server.set_attribute("http.response.status_code", 200)
                data = body.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        srv = ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        stop = srv.shutdown
    else:
        import grpc

        def call(request, context):
            depth = int(request.decode() or "0")
            host, port = split_host(a.public or f"127.0.0.1:{a.port}", 80)
            ctx = extract(dict(context.invocation_metadata()))
            with tracer.start_as_current_span(
                "demo.Hop/Call", context=ctx, kind=SpanKind.SERVER,
                attributes={"rpc.system": "grpc", "rpc.service": "demo.Hop", "rpc.method": "Call",
                            "server.address": host, "server.port": port},
            ) as server:
                out = f"hello from {a.name}"
                if depth > 0 and a.egress:
                    ehost, eport = split_host(a.egress, 80)
                    with tracer.start_as_current_span(
                        "demo.Hop/Call", kind=SpanKind.CLIENT,
                        attributes={"rpc.system": "grpc", "rpc.service": "demo.Hop", "rpc.method": "Call",
                                    "server.address": ehost, "server.port": eport},
                    ) as client:
                        md = {}
                        inject(md)
                        with grpc.insecure_channel(a.egress) as ch:
                            stub = ch.unary_unary("/demo.Hop/Call")
                            reply = stub(str(depth - 1).encode(), metadata=list(md.items()), timeout=10)
                        out += " <- " + reply.decode()
                        client.set_attribute("rpc.grpc.status_code", 0)
                server.set_attribute("rpc.grpc.status_code", 0)
                return out.encode()

        srv = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        srv.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
            "demo.Hop", {"Call": grpc.unary_unary_rpc_method_handler(call)}),))
        srv.add_insecure_port(f"127.0.0.1:{a.port}")
        srv.start()
        stop = lambda: srv.stop(1)

    print(json.dumps({"port": a.port}), flush=True)
    sys.stdin.read()
    stop()
    tp.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
