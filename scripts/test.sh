#!/usr/bin/env bash
# The one command that runs every test on a fresh machine: installs the test peers,
# then runs the stand-in collector's tests and the Rust test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-test-peers.sh
# The stand-in Pinpoint collector's own tests (wire compatibility of proto/pinpoint/
# with Pinpoint's generated code, the server, the call-tree checker).
(cd tests/peers/pinpoint-collector && npm test --silent)
# tests/listeners_flood.rs needs about 10,500 descriptors in the flood script and 8,300 in
# the test process: raise the soft open-file limit (up to the hard limit).
ulimit -Sn 20000 2>/dev/null || ulimit -Sn "$(ulimit -Hn)" 2>/dev/null || true
cargo test "$@"
