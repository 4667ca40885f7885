"""Builds one set of spans with the real OpenTelemetry Python SDK and exports the same
span objects twice: over OTLP/HTTP to the bridge, and with the SDK's own Zipkin exporter
(opentelemetry-exporter-zipkin-json, the reference translation) to a capture server.
Prints what it made as JSON on stdout, so that a test can compare the bridge's Zipkin
output with the reference field by field.

The spans cover what the mapping decides on: every kind, a remote parent with a
tracestate, remote-endpoint attributes, OK/ERROR status, an `error` attribute without an
ERROR status, events with and without attributes (and an exception), dropped attribute/
event/link counts, typed and array attributes, a 200-character value, and a
sub-microsecond span that starts just past a microsecond boundary.

usage: zipkin_reference.py --otlp-endpoint URL --zipkin-endpoint URL
"""

import argparse
import json
import sys
import time

from opentelemetry import context, trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.exporter.zipkin.json import ZipkinExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExportResult
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
)

TRACE_ID = 0x0AF7651916CD43DD8448EB211C80319C
REMOTE_PARENT = 0xB7AD6B7169203331
TRACESTATE = [("pp", "svc:web;app:shop;type:1000"), ("congo", "t61rcWkgMzE")]
LONG = "0123456789" * 20  # 200 characters


class Recording:
    """Wraps an exporter to remember whether every export succeeded."""

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


def make_spans(tracer):
    remote = SpanContext(
        trace_id=TRACE_ID,
        span_id=REMOTE_PARENT,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
        trace_state=TraceState(TRACESTATE),
    )
    parent_ctx = trace.set_span_in_context(NonRecordingSpan(remote))
    linked = SpanContext(trace_id=0x1234, span_id=0x5678, is_remote=True)
    created = []
    with tracer.start_as_current_span(
        "GET /orders/{id}",
        context=parent_ctx,
        kind=SpanKind.SERVER,
        attributes={
            "http.request.method": "GET",
            "url.path": "/orders/42",
            "http.response.status_code": 200,
            "server.port": 8080,
            "sampling.ratio": 0.25,
            "feature.enabled": True,
            "tags": ["a", "b"],
            "retries": [1, 2, 3],
            "flags": [True, False],
            "long.value": LONG,
        },
    ) as root:
        created.append(root)
        with tracer.start_as_current_span("load order", kind=SpanKind.INTERNAL) as load:
            created.append(load)
            load.add_event("dropped")  # max_events=3 keeps the last three
            load.add_event("cache miss", {"cache.key": "order:42", "cache.size": 17})
            load.add_event("plain")
            load.add_event("retry", {"attempt": 2, "backoff.s": 0.5, "ok": False})
            with tracer.start_as_current_span(
                "SELECT orders",
                kind=SpanKind.CLIENT,
                attributes={
                    "db.system": "postgresql",
                    "db.statement": "SELECT * FROM orders WHERE id = $1",
                    "server.address": "db.internal",
                    "network.peer.address": "10.1.2.3",
                    "network.peer.port": 5432,
                },
            ) as db:
                created.append(db)
        with tracer.start_as_current_span(
            "charge card", kind=SpanKind.CLIENT, attributes={"peer.service": "payments"}
        ) as pay:
            created.append(pay)
            pay.set_status(Status(StatusCode.ERROR, "card declined"))
            pay.record_exception(ValueError("card declined"))
        with tracer.start_as_current_span(
            "publish order",
            kind=SpanKind.PRODUCER,
            attributes={
                "messaging.system": "kafka",
                "network.peer.address": "10.9.8.7",
                "network.peer.port": 9092,
            },
        ) as pub:
            created.append(pub)
        wide = tracer.start_span(
            "wide",
            attributes={f"a{i:02d}": i for i in range(14)},  # max_span_attributes=12
            links=[Link(linked), Link(linked)],  # max_links=1
        )
        wide.end()
        created.append(wide)
        # Starts 700 ns past a microsecond and lasts 400 ns.
        base = time.time_ns() // 1000 * 1000
        tiny = tracer.start_span("tiny", start_time=base + 700)
        tiny.end(end_time=base + 1100)
        created.append(tiny)
        root.set_status(Status(StatusCode.OK))

    # A second trace: a CONSUMER root, with an `error` attribute but no ERROR status.
    with tracer.start_as_current_span(
        "consume order",
        context=context.Context(),
        kind=SpanKind.CONSUMER,
        attributes={"messaging.system": "kafka", "error": False},
    ) as consume:
        created.append(consume)
    return created


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--otlp-endpoint", required=True)
    ap.add_argument("--zipkin-endpoint", required=True)
    a = ap.parse_args()

    resource = Resource.create(
        {
            "service.name": "checkout",
            "service.namespace": "shop",
            "deployment.environment": "test",
            "host.name": "test-host",
        }
    )
    limits = SpanLimits(max_span_attributes=12, max_events=3, max_links=1)
    provider = TracerProvider(resource=resource, span_limits=limits)
    otlp = Recording(OTLPSpanExporter(endpoint=a.otlp_endpoint, timeout=10))
    zipkin = Recording(ZipkinExporter(endpoint=a.zipkin_endpoint, timeout=10))
    for exporter in (otlp, zipkin):
        provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=100))
    tracer = provider.get_tracer("bridge.tests", "1.2.3")
    created = make_spans(tracer)
    provider.shutdown()

    out = {
        "resource": dict(resource.attributes),
        "tracestate": ",".join(f"{k}={v}" for k, v in TRACESTATE),
        "spans": [
            {
                "name": s.name,
                "trace_id": format(s.context.trace_id, "032x"),
                "span_id": format(s.context.span_id, "016x"),
                "kind": s.kind.name,
                "status": s.status.status_code.name,
                "start": s.start_time,
                "end": s.end_time,
                "events": [{"name": e.name, "time": e.timestamp} for e in s.events],
            }
            for s in created
        ],
        "otlp_ok": all(otlp.results) and len(otlp.results) > 0,
        "zipkin_ok": all(zipkin.results) and len(zipkin.results) > 0,
    }
    json.dump(out, sys.stdout)
    return 0 if out["otlp_ok"] and out["zipkin_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
