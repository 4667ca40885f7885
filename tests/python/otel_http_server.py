"""An HTTP service instrumented by hand with the real OpenTelemetry Python SDK at its
default BatchSpanProcessor settings, exporting OTLP/gRPC. Every request becomes a SERVER
span whose parent comes from the request's W3C headers (traceparent, tracestate).
Prints {"port": N} once listening; on stdin close it flushes and exits.

usage: otel_http_server.py OTLP_GRPC_ENDPOINT SERVICE_NAME
"""

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

endpoint, service = sys.argv[1], sys.argv[2]
provider = TracerProvider(resource=Resource.create({"service.name": service}))
provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint, insecure=True)))
tracer = provider.get_tracer("otel_http_server")
propagator = TraceContextTextMapPropagator()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        ctx = propagator.extract({k.lower(): v for k, v in self.headers.items()})
        with tracer.start_as_current_span(f"GET {self.path}", context=ctx, kind=SpanKind.SERVER) as span:
            span.set_attribute("http.request.method", "GET")
            span.set_attribute("url.path", self.path)
            span.set_attribute("http.response.status_code", 200)
            body = b"otel ok"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
threading.Thread(target=server.serve_forever, daemon=True).start()
print(json.dumps({"port": server.server_port}), flush=True)
sys.stdin.read()
server.shutdown()
provider.shutdown()
