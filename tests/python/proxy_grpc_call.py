"""Calls /demo.Hop/Call on TARGET with b"DEPTH" and no trace context; prints the reply.

usage: proxy_grpc_call.py --target HOST:PORT --depth N
"""

import argparse
import sys

import grpc


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", required=True)
    ap.add_argument("--depth", type=int, default=0)
    a = ap.parse_args()
    with grpc.insecure_channel(a.target) as ch:
        reply = ch.unary_unary("/demo.Hop/Call")(str(a.depth).encode(), timeout=20)
    print(reply.decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
