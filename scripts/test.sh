#!/usr/bin/env bash
# The one command that runs every test on a fresh machine: installs the test peers,
# then runs the stand-in collector's tests and the Rust test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-test-peers.sh
# A real redis-server for the shared id store tests: the one .ci/run started, or our
# own on a free loopback port, stopped at exit.
if [ -z "${BRIDGE_TEST_REDIS_URL:-}" ]; then
    if ! command -v redis-server >/dev/null 2>&1; then
        echo "scripts/test.sh: redis-server is not installed; the shared id store tests need it" >&2
        echo "  (Debian/Ubuntu: apt-get install redis-server), or set BRIDGE_TEST_REDIS_URL" >&2
        exit 1
    fi
    REDIS_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no >/dev/null &
    REDIS_PID=$!
    trap 'kill "$REDIS_PID" 2>/dev/null || true' EXIT
    export BRIDGE_TEST_REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
    for _ in $(seq 1 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$REDIS_PORT") 2>/dev/null && break
        sleep 0.05
    done
fi
# The stand-in Pinpoint collector's own tests (wire compatibility of proto/pinpoint/
# with Pinpoint's generated code, the server, the call-tree checker).
(cd tests/peers/pinpoint-collector && npm test --silent)
# tests/listeners_flood.rs needs about 10,500 descriptors in the flood script and 8,300 in
# the test process: raise the soft open-file limit (up to the hard limit).
ulimit -Sn 20000 2>/dev/null || ulimit -Sn "$(ulimit -Hn)" 2>/dev/null || true
cargo test "$@"
