#!/usr/bin/env bash
# The one command that runs every test on a fresh machine: installs the test peers,
# then runs the Rust test suite (unit, integration and doc tests).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-test-peers.sh
cargo test "$@"
