"""Runs Pyroscope's official Python client (pyroscope-io) against a server for a moment,
so a test can capture the /ingest request it sends; prints {"ok": true} when done.

    pyroscope_client.py --server http://127.0.0.1:PORT --app my.app \
        [--tenant T] [--user U --password P]
"""

import argparse
import json
import time

import pyroscope


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True)
    ap.add_argument("--app", required=True)
    ap.add_argument("--tenant", default="")
    ap.add_argument("--user", default="")
    ap.add_argument("--password", default="")
    ap.add_argument("--seconds", type=float, default=1.0)
    a = ap.parse_args()
    pyroscope.configure(
        application_name=a.app,
        server_address=a.server,
        tenant_id=a.tenant,
        basic_auth_username=a.user,
        basic_auth_password=a.password,
        tags={"deployment.environment": "prod"},
    )
    end = time.time() + a.seconds
    n = 0
    while time.time() < end:
        n += sum(range(1000))
    # Shutting down flushes the profile collected so far.
    pyroscope.shutdown()
    print(json.dumps({"ok": True, "work": n > 0}))


if __name__ == "__main__":
    main()
