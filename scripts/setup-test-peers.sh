#!/usr/bin/env bash
# Installs the real peers the tests talk to: the OpenTelemetry Python SDK and its
# exporters and Pyroscope's Python client (into .venv), and the npm packages of
# tests/peers/. Idempotent and quick when nothing changed.
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

# npm peers: the stand-in Pinpoint collector (built from pinpoint-node-agent's generated
# code), the pprof decoder (pprof-format) that checks the Pyroscope exporter's pprof, and
# playwright-core, which drives Debian's Chromium over the status page.
for peer in tests/peers/pinpoint-collector tests/peers/pprof-decode tests/peers/status-page; do
    lock_sum=$(sha256sum "$peer/package-lock.json" | cut -d' ' -f1)
    if [[ ! -f $peer/node_modules/.lock.sha256 || $(cat "$peer/node_modules/.lock.sha256") != "$lock_sum" ]]; then
        echo "setup-test-peers: installing $peer (npm ci)" >&2
        (cd "$peer" && npm ci --no-audit --no-fund --loglevel=error)
        echo "$lock_sum" > "$peer/node_modules/.lock.sha256"
    fi
done
