#!/usr/bin/env bash
# Instructions per exchange, counted by callgrind: a figure that does not move with a noisy machine
# (docs/performance-history.md, "Fourth pass").
#
#   bench/instructions.sh BINARY...                 # 2,000 exchanges per binary
#   N=5000 bench/instructions.sh old/causeway new/causeway
#
# For each binary: lay the demo out as bench/compare.sh does (with a 1 GiB ledger map, since
# valgrind cannot reserve the default 64 GiB), serve it under `valgrind --tool=callgrind` with
# instrumentation off, warm up with 300 requests, then count user-space instructions (Ir) over N
# requests from `h2load --h1 -c 16`. Kernel time (TCP, fdatasync) is not counted, and under
# valgrind SHA-256 runs its portable code instead of the SHA extensions, so hashing weighs more
# here than on the machine; compare builds with each other (each line gives its ratio to the first
# binary's count), not with wall-clock profiles.
# How many exchanges share one signature (an envelope burst, a ledger batch) depends on timing, and
# Ed25519 is a third of the count, so a second figure leaves Ed25519 signing and verification out:
# it moves by well under 1% between runs of one binary, where the total moves by up to 3%.
set -euo pipefail
[ $# -ge 1 ] || { sed -n '2,17p' "$0"; exit 2; }
N="${N:-2000}"
here="$(cd "$(dirname "$0")/.." && pwd)"
missing=()
command -v h2load >/dev/null || missing+=(nghttp2-client)
command -v valgrind >/dev/null || missing+=(valgrind)
if [ "${#missing[@]}" -gt 0 ]; then
    apt-get install -y "${missing[@]}" >/dev/null 2>&1 ||
        { apt-get update >/dev/null && apt-get install -y "${missing[@]}" >/dev/null; }
fi
# shellcheck source=bench/demo.sh
. "$here/bench/demo.sh"

bench_workdir instructions

for bin in "$@"; do
    layout_demo "$bin" "$work/fed" "$work/demo.log"
    bench_request "$work/request.json" "$bin"
    bench_auth "$bin" "$work/fed"
    for config in "$work"/fed/*/causeway.toml; do
        sed -i 's/^dir = "ledger"$/dir = "ledger"\nmap_size_mib = 1024/' "$config"
    done
    RUST_LOG="${BENCH_RUST_LOG:-warn}" valgrind --tool=callgrind --instr-atstart=no \
        --callgrind-out-file="$work/callgrind.out" "$bin" demo --dir "$work/fed" >"$work/demo.log" 2>&1 &
    demo_pid=$!
    for _ in $(seq 1 900); do
        grep -q "^Serving" "$work/demo.log" && break
        kill -0 "$demo_pid" 2>/dev/null || { cat "$work/demo.log"; exit 1; }
        sleep 1
    done
    client="$(grep -E '^\s+social-welfare\s+client https?://' "$work/demo.log" | head -1 |
        sed -E 's#.*client https?://([^ ]+).*#\1#')"
    load() {
        h2load --h1 -c 16 -m 1 -n "$1" -d "$work/request.json" -H 'content-type: application/json' \
            "${bench_header[@]}" "http://$client/v1/requests" | sed -nE 's/^status codes: ([0-9]+) 2xx.*/\1/p'
    }
    load 300 >/dev/null
    callgrind_control -i on "$demo_pid" >/dev/null 2>&1
    ok="$(load "$N")"
    callgrind_control -i off "$demo_pid" >/dev/null 2>&1
    kill "$demo_pid"; wait "$demo_pid" 2>/dev/null || true; demo_pid=""
    # Program total, and the inclusive counts of Ed25519 signing and verification.
    read -r total ed25519 < <(callgrind_annotate --inclusive=yes "$work/callgrind.out" 2>/dev/null | awk '
        /PROGRAM TOTALS/ && !t { gsub(",", "", $1); t = $1 }
        /VerifyingKey as signature::verifier::Verifier<ed25519::Signature>>::verify \[/ { gsub(",", "", $1); e += $1 }
        /SigningKey as signature::signer::Signer<ed25519::Signature>>::try_sign \[/ { gsub(",", "", $1); e += $1 }
        END { print t, e + 0 }')
    rest=$((total - ed25519))
    first="${first:-$total}"
    first_rest="${first_rest:-$rest}"
    awk -v b="$bin" -v t="$total" -v f="$first" -v r="$rest" -v fr="$first_rest" -v n="$N" -v ok="$ok" 'BEGIN {
        printf "%-40s %10.0f instructions/exchange (%.3fx the first), %10.0f without Ed25519 (%.3fx); 2xx %d of %d\n",
            b, t / n, t / f, r / n, r / fr, ok, n }'
done
