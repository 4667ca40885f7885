#!/usr/bin/env python3
"""A slow Zipkin v2 collector stand-in for the persistent-queue tests.

POST /api/v2/spans: reads the body (gzip or identity), decodes it as Zipkin v2 JSON
(a list of span objects, each with a 16-hex-digit `id`), waits --delay seconds (a slow
backend), appends every span id to --out (one a line) and answers 202. A body that is
not a Zipkin v2 span list is answered 400 and recorded nowhere.
GET /stats: {"requests": n, "spans": n}.

Usage: slow_zipkin_sink.py --out FILE [--delay 1.0] [--port 0]
Prints {"port": N} once it listens.
"""
import argparse
import gzip
import json
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ID = re.compile(r"^[0-9a-f]{16}$")
LOCK = threading.Lock()
STATS = {"requests": 0, "spans": 0}
ARGS = None


def decode(body, encoding):
    if encoding == "gzip":
        body = gzip.decompress(body)
    spans = json.loads(body)
    if not isinstance(spans, list):
        raise ValueError("body is not a JSON list")
    ids = []
    for s in spans:
        if not isinstance(s, dict) or not ID.match(str(s.get("id", ""))):
            raise ValueError("span without a 16-hex-digit id")
        if not re.match(r"^[0-9a-f]{16,32}$", str(s.get("traceId", ""))):
            raise ValueError("span without a trace id")
        ids.append(s["id"])
    return ids


class Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        n = int(self.headers.get("content-length", "0"))
        body = self.rfile.read(n)
        try:
            ids = decode(body, self.headers.get("content-encoding", "identity"))
        except Exception as e:  # noqa: BLE001 - any bad body is a 400
            msg = str(e).encode()
            self.send_response(400)
            self.send_header("content-length", str(len(msg)))
            self.end_headers()
            self.wfile.write(msg)
            return
        time.sleep(ARGS.delay)
        with LOCK:
            with open(ARGS.out, "a") as f:
                f.write("".join(i + "\n" for i in ids))
            STATS["requests"] += 1
            STATS["spans"] += len(ids)
        self.send_response(202)
        self.send_header("content-length", "0")
        self.end_headers()

    def do_GET(self):
        with LOCK:
            body = json.dumps(STATS).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def main():
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--delay", type=float, default=1.0)
    ap.add_argument("--port", type=int, default=0)
    ARGS = ap.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", ARGS.port), Sink)
    server.daemon_threads = True
    print(json.dumps({"port": server.server_address[1]}), flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
