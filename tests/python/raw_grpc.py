"""Sends raw bytes as an OTLP/gRPC Export request with the real grpcio client, and
prints the status it got back as JSON: {"code": "...", "details": "..."}.

usage: raw_grpc.py --target HOST:PORT (--hex BYTES | --zeros N) [--gzip]
"""

import argparse
import json
import sys

import grpc

METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", required=True)
    ap.add_argument("--hex")
    ap.add_argument("--zeros", type=int)
    ap.add_argument("--gzip", action="store_true")
    a = ap.parse_args()
    payload = bytes.fromhex(a.hex) if a.hex is not None else b"\0" * a.zeros
    comp = grpc.Compression.Gzip if a.gzip else grpc.Compression.NoCompression
    with grpc.insecure_channel(a.target, options=[("grpc.max_send_message_length", 1 << 30)]) as ch:
        call = ch.unary_unary(METHOD, request_serializer=None, response_deserializer=None)
        try:
            call(payload, timeout=10, compression=comp)
            out = {"code": "OK", "details": ""}
        except grpc.RpcError as e:
            out = {"code": e.code().name, "details": e.details() or ""}
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    sys.exit(main())
