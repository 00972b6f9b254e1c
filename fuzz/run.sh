#!/usr/bin/env bash
# Runs every fuzz target (this crate's and policies/fuzz) with libFuzzer for a bounded time each.
#   fuzz/run.sh            # 60 s per target
#   fuzz/run.sh 600        # 10 minutes per target
# Needs the nightly toolchain (rustup toolchain install nightly) and cargo-fuzz (installed if missing).
# A crash leaves its input in fuzz/artifacts/<target>/: add it to the seeds in
# gateway/tests/fuzz_smoke.rs (or the crate's own tests) as a regression test, then fix the parser.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-60}"
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
for dir in . ../policies/fuzz; do
    (
        cd "$dir"
        for target in $(cargo +nightly fuzz list); do
            echo "== fuzzing $target for ${seconds}s"
            cargo +nightly fuzz run "$target" -- -max_total_time="$seconds" -rss_limit_mb=2048
        done
    )
done
