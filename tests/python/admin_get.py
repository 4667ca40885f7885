"""GETs (or POSTs) one admin URL with Python's standard library, over TLS when the URL is
https (trusting --ca), with an optional Authorization header; prints
{"status": int, "body": text} (status 0 with "error" when no HTTP answer came).

usage: admin_get.py --url URL [--ca FILE] [--authorization VALUE] [--post JSON]
"""

import argparse
import json
import ssl
import urllib.error
import urllib.request


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--ca")
    ap.add_argument("--authorization")
    ap.add_argument("--post")
    args = ap.parse_args()
    context = ssl.create_default_context(cafile=args.ca) if args.ca else None
    data = args.post.encode() if args.post is not None else None
    request = urllib.request.Request(args.url, data=data)
    if data is not None:
        request.add_header("content-type", "application/json")
    if args.authorization:
        request.add_header("authorization", args.authorization)
    try:
        with urllib.request.urlopen(request, context=context, timeout=5) as r:
            out = {"status": r.status, "body": r.read().decode()}
    except urllib.error.HTTPError as e:
        out = {"status": e.code, "body": e.read().decode()}
    except (urllib.error.URLError, OSError) as e:
        out = {"status": 0, "error": str(e)}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
