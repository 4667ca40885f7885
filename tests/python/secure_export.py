"""Exports one small trace through the real OpenTelemetry Python SDK's OTLP exporter
(gRPC or HTTP/protobuf) with TLS, client certificates and an Authorization header as
asked, at the SDK's default BatchSpanProcessor settings (the shutdown flushes), and
prints the outcome as JSON: {"ok": bool, "trace_id": hex}.

usage: secure_export.py --protocol grpc|http --endpoint URL [--ca FILE]
                        [--cert FILE --key FILE] [--authorization VALUE] [--timeout S]
"""

import argparse
import json
import logging

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExportResult


def read(path):
    if not path:
        return None
    with open(path, "rb") as f:
        return f.read()


def make_exporter(args):
    headers = {"authorization": args.authorization} if args.authorization else None
    if args.protocol == "grpc":
        import grpc
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        credentials = None
        if args.ca:
            credentials = grpc.ssl_channel_credentials(
                root_certificates=read(args.ca),
                private_key=read(args.key),
                certificate_chain=read(args.cert),
            )
        return OTLPSpanExporter(
            endpoint=args.endpoint,
            insecure=credentials is None,
            credentials=credentials,
            headers=headers,
            timeout=args.timeout,
        )
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(
        endpoint=args.endpoint,
        certificate_file=args.ca,
        client_certificate_file=args.cert,
        client_key_file=args.key,
        headers=headers,
        timeout=args.timeout,
    )


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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--protocol", choices=["grpc", "http"], required=True)
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--ca")
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--authorization")
    ap.add_argument("--timeout", type=float, default=5)
    args = ap.parse_args()
    # The exporters log failed exports; the test reads the JSON outcome instead.
    logging.disable(logging.CRITICAL)

    provider = TracerProvider(resource=Resource.create({"service.name": "secure-client"}))
    exporter = Recording(make_exporter(args))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    tracer = provider.get_tracer("bridge.tests.secure", "1.0.0")
    with tracer.start_as_current_span("secure-export") as span:
        trace_id = format(span.get_span_context().trace_id, "032x")
    provider.shutdown()
    print(json.dumps({"ok": bool(exporter.results) and all(exporter.results), "trace_id": trace_id}))


if __name__ == "__main__":
    main()
