#!/usr/bin/env bash
# The floor of an exchange against the nginx pair: what a gateway that keeps Causeway's guarantees
# must spend at least, measured in one run (docs/PERFORMANCE.md, "The floor of an exchange").
#
#   bench/floor.sh
#   CAUSEWAY_BIN=target/release/causeway bench/floor.sh   # skip the release build of the binary
#
# 1. bench/compare.sh (N=20000, ROUNDS=1): the nginx pair's CPU per request, and Causeway's.
# 2. The demo under the same load (30,000 requests, 64 connections): envelopes per signature,
#    entries per provider commit and the mean commit time, from the gateways' /metrics.
# 3. ledger_bench: CPU per durable, group-committed append (all of it, and the kernel's part).
# 4. verify_bench: one Ed25519 signature and one strict verification.
#
# Floor = nginx's CPU per request (as if our HTTP, TLS, JSON, SQLite and policy cost no more)
#       + two durable appends (the provider's and the consumer's)
#       + (sign + verify) / envelopes per signature + verify / entries per provider checkpoint.
# On a machine where CPU bounds throughput, nginx / floor bounds the throughput ratio. The two
# commits an exchange waits for in series bound its latency from below.
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here"
cargo build --release -q -p causeway-ledger --example ledger_bench --example verify_bench
if [ -z "${CAUSEWAY_BIN:-}" ]; then
    cargo build --release -q
    CAUSEWAY_BIN="$here/target/release/causeway"
fi
export CAUSEWAY_BIN

echo "== 1. compare.sh (one round)"
compare="$(N=20000 ROUNDS=1 bench/compare.sh 2>&1)"
echo "$compare" | sed -n '/== medians/,$p'
nginx_cpu="$(echo "$compare" | sed -nE '/== medians/,$ s/^ +nginx .* CPU +([0-9.]+) us\/request/\1/p')"
ours_cpu="$(echo "$compare" | sed -nE '/== medians/,$ s/^ +causeway .* CPU +([0-9.]+) us\/request/\1/p')"
nginx_p99="$(echo "$compare" | sed -nE '/== medians/,$ s/^ +nginx .* p99 +([0-9.]+) ms.*/\1/p')"

echo "== 2. batch sizes under the benchmark's load"
. "$here/bench/demo.sh"
bench_workdir floor
bench_request "$work/request.json" "$CAUSEWAY_BIN"
start_demo "$CAUSEWAY_BIN" "$work/fed" "$work/demo.log"
bench_auth "$CAUSEWAY_BIN" "$work/fed"
h2load --h1 -c 64 -m 1 -n 30000 -d "$work/request.json" -H 'content-type: application/json' \
    "${bench_header[@]}" "http://$demo_client/v1/requests" | grep -E "^(finished|status codes)"
metric() { # DEPARTMENT NAME: the value of one unlabelled series
    local admin
    admin="$(sed -n '/^\[admin\]/,/^listen/p' "$work/fed/$1/causeway.toml" | sed -nE 's/^listen = "(.*)"/\1/p')"
    curl -s "http://$admin/metrics" | awk -v m="$2" '$1 == m {print $2}'
}
per_signature="$(awk -v s="$(metric social-welfare causeway_envelope_signing_batch_envelopes_sum)" \
    -v c="$(metric social-welfare causeway_envelope_signing_batch_envelopes_count)" 'BEGIN {printf "%.1f", s / c}')"
per_commit="$(awk -v s="$(metric civil-registry causeway_ledger_batch_entries_sum)" \
    -v c="$(metric civil-registry causeway_ledger_batch_entries_count)" 'BEGIN {printf "%.1f", s / c}')"
commit_ms="$(awk -v s="$(metric civil-registry causeway_ledger_commit_duration_seconds_sum)" \
    -v c="$(metric civil-registry causeway_ledger_commit_duration_seconds_count)" 'BEGIN {printf "%.2f", s / c * 1000}')"
kill "$demo_pid"; wait "$demo_pid" 2>/dev/null || true; demo_pid=""
echo "   $per_signature envelopes per signature, $per_commit entries per provider commit, $commit_ms ms per commit"

echo "== 3. ledger_bench"
ledger="$(target/release/examples/ledger_bench 10000)"
echo "$ledger" | grep "median of 3"
append="$(echo "$ledger" | sed -nE 's/.*CPU per group-committed append ([0-9.]+) us \(([0-9.]+) us in the kernel\).*/\1 \2/p')"

echo "== 4. verify_bench"
ed="$(target/release/examples/verify_bench)"
echo "$ed" | tail -3
verify="$(echo "$ed" | sed -nE 's/^ +note::verify_strict +([0-9.]+) us.*/\1/p')"
sign="$(echo "$ed" | sed -nE 's/^Ed25519 signing, same rounds: +([0-9.]+) us/\1/p')"

read -r append_all append_kernel <<<"$append"
awk -v n="$nginx_cpu" -v ours="$ours_cpu" -v a="$append_all" -v k="$append_kernel" -v s="$sign" -v v="$verify" \
    -v e="$per_signature" -v b="$per_commit" -v cm="$commit_ms" -v p99="$nginx_p99" 'BEGIN {
    crypto = (s + v) / e + v / b
    floor = n + 2 * a + crypto
    kernel_floor = n + 2 * k + crypto
    printf "== floor of an exchange (CPU per request, us)\n"
    printf "   the nginx pair, all of it              %7.1f\n", n
    printf "   two durable appends                    %7.1f   (%.1f in the kernel)\n", 2 * a, 2 * k
    printf "   Ed25519, amortized                     %7.1f\n", crypto
    printf "   floor                                  %7.1f   (%.1f counting the ledger'"'"'s kernel time only)\n", floor, kernel_floor
    printf "   Causeway now                           %7.1f\n", ours
    printf "   throughput ratio at most                 %.2fx  (%.2fx); now %.2fx by CPU per request\n", n / floor, n / kernel_floor, n / ours
    printf "   latency: two commits in series, %.2f ms each, plus half of one in flight: %.2f ms; nginx p99 %s ms\n", cm, 2 * 1.5 * cm, p99
}'
