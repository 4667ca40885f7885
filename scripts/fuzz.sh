#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ for FUZZ_SECONDS each (default 60), starting from
# the seed corpus in fuzz/seeds/<target>/ (copied: new inputs stay out of the repo).
# Fails on the first crash; libFuzzer then leaves the input in fuzz/artifacts/<target>/.
# Leak detection is off: the targets share one intake whose queues are never drained
# (fuzz/intake.rs), so what they admit stays allocated by design.
# cargo-fuzz needs nightly flags: RUSTC_BOOTSTRAP=1 lets the stable toolchain take them.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH="${FUZZ_SECONDS:-60}"
export RUSTC_BOOTSTRAP=1
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
cargo fuzz build
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for target in $(cargo fuzz list); do
    mkdir -p "$work/$target"
    seeds="fuzz/seeds/$target"
    [ -d "$seeds" ] || seeds=""
    echo "fuzz: $target for ${SECONDS_EACH}s"
    status=0
    cargo fuzz run "$target" "$work/$target" $seeds -- \
        -max_total_time="$SECONDS_EACH" -rss_limit_mb=4096 -max_len=1048576 -print_final_stats=1 -detect_leaks=0 \
        >"$work/$target.log" 2>&1 || status=$?
    grep -E "stat::number_of_executed_units|stat::peak_rss_mb|ERROR|panicked|SUMMARY" "$work/$target.log" || true
    if [ "$status" -ne 0 ]; then
        tail -n 60 "$work/$target.log" >&2
        echo "fuzz: $target FAILED (exit $status); the crashing input is in fuzz/artifacts/$target/" >&2
        exit 1
    fi
done
echo "fuzz: every target ran ${SECONDS_EACH}s without a crash"
