"""A real Python service instrumented by the real pinpoint-python-agent (PyPI 1.1.0).

The agent is configured by its own environment variables (PINPOINT_PY_COLLECTOR_HOST,
PINPOINT_PY_COLLECTOR_AGENT_PORT, ..._SPAN_PORT, ..._STAT_PORT) and by the arguments of
`pinpoint.init`. The service is a WSGI app (wsgiref) behind the agent's WSGI middleware:
  GET /hello        answers "ok"
  GET /sql          runs a query on an in-memory SQLite database through a cursor class
                    the agent's DB-API instrumentation wraps (wrap_cursor_class)
  GET /call?to=URL  calls URL with urllib3 (instrumented by the agent's autoloader)
Prints {"port": N} once listening; exits when stdin closes.

usage: python_service.py APPLICATION_NAME AGENT_ID
"""

import json
import os
import sqlite3
import sys
import threading
from urllib.parse import parse_qs

import pinpoint
from pinpoint.autoload import autoload

APP, AGENT = sys.argv[1], sys.argv[2]
pinpoint.init(
    application_name=APP,
    agent_name=AGENT,
    service_name=APP,
    uid_version=os.environ.get("PINPOINT_PY_UID_VERSION", "v1"),
)

autoload()  # registers the post-import hooks of every instrumentation
import urllib3  # noqa: E402  (after autoload: instrumented on import)
from pinpoint.instrumentations.dbapi import wrap_cursor_class  # noqa: E402
from pinpoint.instrumentations.wsgi import PinpointWSGIMiddleware  # noqa: E402
from wsgiref.simple_server import WSGIRequestHandler, make_server  # noqa: E402


class Cursor(sqlite3.Cursor):
    """sqlite3's C cursor cannot be patched; a subclass can."""


wrap_cursor_class(__name__, "Cursor", service_type=2051)
DB = sqlite3.connect(":memory:", check_same_thread=False)
DB.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)")
DB.execute("INSERT INTO items (name) VALUES ('apple'), ('pear')")
HTTP = urllib3.PoolManager()


def app(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    query = parse_qs(environ.get("QUERY_STRING", ""))
    if path == "/sql":
        cur = DB.cursor(factory=Cursor)
        cur.execute("SELECT name FROM items WHERE id = ?", (2,))
        body = f"name={cur.fetchone()[0]}".encode()
    elif path == "/call":
        r = HTTP.request("GET", query["to"][0])
        body = b"called " + str(r.status).encode() + b": " + r.data
    else:
        body = b"ok"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


class Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass


server = make_server("127.0.0.1", int(os.environ.get("PORT", "0")), PinpointWSGIMiddleware(app), handler_class=Quiet)
threading.Thread(target=server.serve_forever, daemon=True).start()
print(json.dumps({"port": server.server_port}), flush=True)
sys.stdin.read()
pinpoint.shutdown()
