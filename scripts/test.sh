#!/usr/bin/env bash
# The one command that runs every test on a fresh machine: installs the test peers,
# then runs the stand-in collector's tests and the Rust test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-test-peers.sh
# The stand-in Pinpoint collector's own tests (wire compatibility of proto/pinpoint/
# with Pinpoint's generated code, the server, the call-tree checker).
(cd tests/peers/pinpoint-collector && npm test --silent)
cargo test "$@"
