#!/usr/bin/env bash
# Installs the real peers the tests talk to: the OpenTelemetry Python SDK and its
# exporters (into .venv). Idempotent and quick when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
req=tests/python/requirements.txt
stamp=.venv/.requirements.sha256
want=$(sha256sum "$req" | cut -d' ' -f1)
if [[ ! -x .venv/bin/python || ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
    echo "setup-test-peers: installing Python test peers into .venv" >&2
    "$python" -m venv .venv
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$req"
    echo "$want" > "$stamp"
fi

# The stand-in Pinpoint collector (built from pinpoint-node-agent's generated code).
collector=tests/peers/pinpoint-collector
lock_sum=$(sha256sum "$collector/package-lock.json" | cut -d' ' -f1)
if [[ ! -f $collector/node_modules/.lock.sha256 || $(cat "$collector/node_modules/.lock.sha256") != "$lock_sum" ]]; then
    echo "setup-test-peers: installing the stand-in Pinpoint collector (npm ci)" >&2
    (cd "$collector" && npm ci --no-audit --no-fund --loglevel=error)
    echo "$lock_sum" > "$collector/node_modules/.lock.sha256"
fi
