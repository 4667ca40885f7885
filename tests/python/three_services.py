"""Three services A -> B -> C traced with the real OpenTelemetry Python SDK, each with
its own TracerProvider (its own resource, like three processes) and its own OTLP/gRPC
exporter, with W3C trace context propagated between them through header carriers.

B also queries PostgreSQL; C fails with an exception. Prints JSON describing the trace.

usage: three_services.py --endpoint URL --order natural|callee-first|late
  natural:      every provider flushes at the end, caller first (A, B, C)
  callee-first: C's and B's spans are exported before A's (A waits 0.5 s)
  late:         a child of B's server span ends after B's segment was exported
"""

import argparse
import json
import sys
import time

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.propagate import extract, inject
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

PROP = TraceContextTextMapPropagator()


class Held:
    """An exporter that holds spans until flushed, to control arrival order."""

    def __init__(self, inner):
        self.inner = inner
        self.spans = []
        self.ok = True

    def export(self, spans):
        self.spans.extend(spans)
        from opentelemetry.sdk.trace.export import SpanExportResult

        return SpanExportResult.SUCCESS

    def flush(self):
        if self.spans:
            from opentelemetry.sdk.trace.export import SpanExportResult

            self.ok &= self.inner.export(self.spans) == SpanExportResult.SUCCESS
            self.spans = []

    def shutdown(self):
        self.inner.shutdown()

    def force_flush(self, timeout_millis=30000):
        return True


def provider(name, instance, endpoint):
    res = Resource.create(
        {
            "service.name": name,
            "service.instance.id": instance,
            "host.name": f"{name}-host",
            "process.pid": 4242,
        }
    )
    tp = TracerProvider(resource=res)
    held = Held(OTLPSpanExporter(endpoint=endpoint, insecure=True, timeout=10))
    tp.add_span_processor(SimpleSpanProcessor(held))
    return tp, held


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--order", choices=["natural", "callee-first", "late"], default="natural")
    a = ap.parse_args()

    tpa, ha = provider("frontend", "11111111-1111-4111-8111-111111111111", a.endpoint)
    tpb, hb = provider("orders", "22222222-2222-4222-8222-222222222222", a.endpoint)
    tpc, hc = provider("payments", "33333333-3333-4333-8333-333333333333", a.endpoint)
    ta, tb, tc = tpa.get_tracer("a"), tpb.get_tracer("b"), tpc.get_tracer("c")

    late_span = None
    with ta.start_as_current_span(
        "GET /checkout", kind=SpanKind.SERVER,
        attributes={"http.request.method": "GET", "http.route": "/checkout", "server.address": "frontend", "server.port": 80, "http.response.status_code": 200},
    ) as a_root:
        trace_id = a_root.get_span_context().trace_id
        with ta.start_as_current_span(
            "POST orders", kind=SpanKind.CLIENT,
            attributes={"http.request.method": "POST", "url.full": "http://orders:8080/orders", "server.address": "orders", "server.port": 8080, "http.response.status_code": 201},
        ):
            carrier = {}
            inject(carrier)
            # --- service B, "in another process" ---
            ctx_b = extract(carrier)
            with tb.start_as_current_span(
                "POST /orders", context=ctx_b, kind=SpanKind.SERVER,
                attributes={"http.request.method": "POST", "http.route": "/orders", "server.address": "orders", "server.port": 8080, "http.response.status_code": 201},
            ) as b_root:
                with tb.start_as_current_span(
                    "INSERT orders", kind=SpanKind.CLIENT,
                    attributes={"db.system": "postgresql", "db.name": "shop", "db.statement": "INSERT INTO orders VALUES ($1)", "server.address": "db", "server.port": 5432},
                ):
                    pass
                with tb.start_as_current_span(
                    "POST charge", kind=SpanKind.CLIENT,
                    attributes={"http.request.method": "POST", "url.full": "http://payments:9000/charge", "server.address": "payments", "server.port": 9000, "http.response.status_code": 402},
                ) as b_call:
                    carrier_c = {}
                    inject(carrier_c)
                    # --- service C ---
                    with tc.start_as_current_span(
                        "POST /charge", context=extract(carrier_c), kind=SpanKind.SERVER,
                        attributes={"http.request.method": "POST", "http.route": "/charge", "server.address": "payments", "server.port": 9000, "http.response.status_code": 402},
                    ) as c_root:
                        with tc.start_as_current_span("validate card") as v:
                            v.set_status(Status(StatusCode.ERROR, "card declined"))
                            v.record_exception(ValueError("card declined"))
                        c_root.set_status(Status(StatusCode.ERROR, "payment failed"))
                    b_call.set_status(Status(StatusCode.ERROR, "402"))
                if a.order == "late":
                    late_span = tb.start_span("async audit", kind=SpanKind.INTERNAL)
    # All spans ended (except the late one). Deliver in the chosen order.
    if a.order == "callee-first":
        hc.flush()
        hb.flush()
        time.sleep(0.5)
        ha.flush()
    elif a.order == "late":
        ha.flush()
        hb.flush()
        hc.flush()
        time.sleep(0.5)
        late_span.end()
        hb.flush()
    else:
        ha.flush()
        hb.flush()
        hc.flush()
    for tp in (tpa, tpb, tpc):
        tp.shutdown()
    out = {
        "trace_id": format(trace_id, "032x"),
        "ok": ha.ok and hb.ok and hc.ok,
        "services": ["frontend", "orders", "payments"],
    }
    json.dump(out, sys.stdout)
    return 0 if out["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
