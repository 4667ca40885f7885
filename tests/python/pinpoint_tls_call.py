"""Calls the Pinpoint receiver's `v1.Agent/RequestAgentInfo` once with the real grpcio
client over TLS (optionally with a client certificate), as an agent with the headers the
collector checks, and prints the status as JSON: {"code": "...", "details": "..."}.

usage: pinpoint_tls_call.py --target HOST:PORT --ca FILE [--cert FILE --key FILE]
"""

import argparse
import json
import sys

import grpc

METHOD = "/v1.Agent/RequestAgentInfo"


def read(path):
    if not path:
        return None
    with open(path, "rb") as f:
        return f.read()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", required=True)
    ap.add_argument("--ca", required=True)
    ap.add_argument("--cert")
    ap.add_argument("--key")
    a = ap.parse_args()
    creds = grpc.ssl_channel_credentials(
        root_certificates=read(a.ca),
        private_key=read(a.key),
        certificate_chain=read(a.cert),
    )
    headers = [
        ("agentid", "tls-agent"),
        ("applicationname", "tls-app"),
        ("starttime", "1700000000000"),
    ]
    with grpc.secure_channel(a.target, creds) as ch:
        call = ch.unary_unary(METHOD, request_serializer=None, response_deserializer=None)
        try:
            call(b"", timeout=5, metadata=headers)
            out = {"code": "OK", "details": ""}
        except grpc.RpcError as e:
            out = {"code": e.code().name, "details": e.details() or ""}
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    sys.exit(main())
