"""Sends one realistic trace through the real OpenTelemetry Python SDK and its OTLP
exporters, then prints (as JSON on stdout) exactly what it created, so that a test can
compare it with what came out of the gateway.

usage: send_trace.py --protocol grpc|http --endpoint URL [--compression gzip|none]
                     [--service NAME]
"""

import argparse
import json
import sys

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExportResult
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags


def make_exporter(protocol, endpoint, compression):
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            Compression,
            OTLPSpanExporter,
        )

        comp = Compression.Gzip if compression == "gzip" else Compression.NoCompression
        return OTLPSpanExporter(endpoint=endpoint, insecure=True, compression=comp, timeout=10)
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    comp = Compression.Gzip if compression == "gzip" else Compression.NoCompression
    return OTLPSpanExporter(endpoint=endpoint, compression=comp, timeout=10)


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


def hex_span(ctx):
    return format(ctx.span_id, "016x")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--protocol", choices=["grpc", "http"], required=True)
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--compression", choices=["gzip", "none"], default="none")
    ap.add_argument("--service", default="checkout")
    args = ap.parse_args()

    resource = Resource.create(
        {
            "service.name": args.service,
            "service.instance.id": "3f1c2a4e-8b7d-4c6e-9f10-112233445566",
            "deployment.environment": "test",
            "host.name": "test-host",
        }
    )
    provider = TracerProvider(resource=resource)
    exporter = Recording(make_exporter(args.protocol, args.endpoint, args.compression))
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=100))
    tracer = provider.get_tracer("bridge.tests", "1.2.3")

    linked = SpanContext(
        trace_id=0x0AF7651916CD43DD8448EB211C80319C,
        span_id=0xB7AD6B7169203331,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )
    created = []
    with tracer.start_as_current_span(
        "GET /orders/{id}",
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
        },
        links=[Link(linked, {"link.kind": "follows"})],
    ) as root:
        created.append(root)
        with tracer.start_as_current_span("load order", kind=SpanKind.INTERNAL) as load:
            created.append(load)
            load.add_event("cache miss", {"cache.key": "order:42", "cache.size": 17})
            with tracer.start_as_current_span(
                "SELECT orders",
                kind=SpanKind.CLIENT,
                attributes={
                    "db.system": "postgresql",
                    "db.statement": "SELECT * FROM orders WHERE id = $1",
                    "server.address": "db.internal",
                },
            ) as db:
                created.append(db)
        with tracer.start_as_current_span("charge card", kind=SpanKind.CLIENT) as pay:
            created.append(pay)
            pay.set_status(Status(StatusCode.ERROR, "card declined"))
            pay.record_exception(ValueError("card declined"))
        root.set_status(Status(StatusCode.OK))

    provider.shutdown()

    spans = []
    for s in created:
        parent = s.parent
        spans.append(
            {
                "name": s.name,
                "span_id": hex_span(s.context),
                "parent_span_id": hex_span(parent) if parent is not None else "",
                "kind": s.kind.value,
                "attributes": {k: (list(v) if isinstance(v, tuple) else v) for k, v in s.attributes.items()},
                "events": [
                    {"name": e.name, "attributes": dict(e.attributes or {})} for e in s.events
                ],
                "links": [
                    {
                        "trace_id": format(l.context.trace_id, "032x"),
                        "span_id": format(l.context.span_id, "016x"),
                        "attributes": dict(l.attributes or {}),
                    }
                    for l in s.links
                ],
                "status": {"code": s.status.status_code.value, "message": s.status.description or ""},
                "start": s.start_time,
                "end": s.end_time,
            }
        )
    out = {
        "trace_id": format(created[0].context.trace_id, "032x"),
        "resource": {k: v for k, v in resource.attributes.items()},
        "scope": {"name": "bridge.tests", "version": "1.2.3"},
        "spans": spans,
        "exports_ok": all(exporter.results) and len(exporter.results) > 0,
    }
    json.dump(out, sys.stdout)
    return 0 if out["exports_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
