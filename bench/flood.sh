#!/usr/bin/env bash
# A full-speed flood of denied requests from one application, and what it costs the provider's
# ledger (docs/PERFORMANCE.md, "Rate limits"): entries per minute with the default rate limits.
#
#   CAUSEWAY_BIN=target/release/causeway bench/flood.sh     # 60 s flood, 16 connections
#   SECS=30 C=64 CAUSEWAY_BIN=... bench/flood.sh
#
# Lays the demo out as the other benchmarks do (social-welfare's client API on the development
# listener, since h2load presents no client certificate), but keeps every default rate limit, then
# floods civil-registry with requests it denies (social welfare has no grant for tax-assessment)
# and reads civil-registry's `causeway_ledger_entries` before and after.
set -euo pipefail
SECS="${SECS:-60}"
C="${C:-16}"
here="$(cd "$(dirname "$0")/.." && pwd)"
if [ -z "${CAUSEWAY_BIN:-}" ]; then
    (cd "$here" && cargo build --release -q -p causeway)
    CAUSEWAY_BIN="${CARGO_TARGET_DIR:-$here/target}/release/causeway"
fi
command -v h2load >/dev/null || { apt-get install -y nghttp2-client >/dev/null 2>&1 ||
    { apt-get update >/dev/null && apt-get install -y nghttp2-client >/dev/null; }; }
# shellcheck source=bench/demo.sh
. "$here/bench/demo.sh"
raise_rate_limits() { :; } # keep the defaults: they are what is measured
bench_workdir flood
start_demo "$CAUSEWAY_BIN" "$work/fed" "$work/demo.log"
bench_auth "$CAUSEWAY_BIN" "$work/fed"
printf '{"provider":"civil-registry","dataset":"residents","params":{"national_id":"D000042"},"purpose":"tax-assessment","legal_basis":"x","case":""}\n' >"$work/denied.json"
admin="$(awk '/^\[admin\]/{a=1} a && /^listen/ {gsub(/"/,"",$3); print $3; exit}' "$work/fed/civil-registry/causeway.toml")"
entries() { curl -s "http://$admin/metrics" | awk '$1 == "causeway_ledger_entries" {print $2}'; }
before="$(entries)"
out="$(h2load --h1 -c "$C" -m 1 -D "$SECS" -d "$work/denied.json" -H 'content-type: application/json' \
    "${bench_header[@]}" "http://$demo_client/v1/requests")"
# Summaries are written once a window has ended (at most 10 s later).
sleep 12
after="$(entries)"
echo "$out" | grep -E "^(finished|status codes)"
awk -v b="$before" -v a="$after" -v s="$SECS" 'BEGIN {
    printf "civil-registry ledger: %d entries before, %d after: %.1f entries per minute of flood\n", b, a, (a - b) * 60 / s }'
