#!/usr/bin/env bash
# Two builds of Causeway on the exchange path, alternating, with what each costs per exchange
# (docs/PERFORMANCE.md, "Third pass").
#
#   bench/ab.sh OLD_BINARY NEW_BINARY                # 20,000 requests per run, 2 rounds
#   N=50000 ROUNDS=3 bench/ab.sh a/causeway b/causeway
#
# For each binary in turn: start the demo as bench/compare.sh does, warm up with 3,000 requests,
# then `h2load --h1 -c 64 -m 1 -n N` on social-welfare's POST /v1/requests. Around the run it reads
# the gateway process's CPU time (utime+stime) and the context switches of all its threads from
# /proc, and prints exchanges/s, CPU per exchange and thread switches per exchange. CPU and switch
# counts move much less with a noisy machine than throughput does.
set -euo pipefail
[ $# -ge 2 ] || { sed -n '2,12p' "$0"; exit 2; }
N="${N:-20000}"
ROUNDS="${ROUNDS:-2}"
here="$(cd "$(dirname "$0")/.." && pwd)"
command -v h2load >/dev/null || { apt-get install -y nghttp2-client >/dev/null 2>&1 ||
    { apt-get update >/dev/null && apt-get install -y nghttp2-client >/dev/null; }; }
# shellcheck source=bench/demo.sh
. "$here/bench/demo.sh"

bench_workdir ab
bench_request "$work/request.json"
load() {
    h2load --h1 -c 64 -m 1 -n "$1" -d "$work/request.json" -H 'content-type: application/json' \
        "http://$demo_client/v1/requests"
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$demo_pid/stat"; }
switches() { cat /proc/"$demo_pid"/task/*/status | awk '/ctxt_switches/ {s += $2} END {print s}'; }

hz="$(getconf CLK_TCK)"
for round in $(seq 1 "$ROUNDS"); do
    for bin in "$@"; do
        start_demo "$bin" "$work/fed" "$work/demo.log"
        load 3000 >/dev/null
        t0="$(cpu_ticks)"; s0="$(switches)"
        out="$(load "$N")"
        t1="$(cpu_ticks)"; s1="$(switches)"
        kill "$demo_pid"; wait "$demo_pid" 2>/dev/null || true; demo_pid=""
        rps="$(echo "$out" | sed -nE 's/^finished in .*, ([0-9.]+) req\/s.*/\1/p')"
        ok="$(echo "$out" | sed -nE 's/^status codes: ([0-9]+) 2xx.*/\1/p')"
        awk -v r="$round" -v b="$bin" -v rps="$rps" -v ok="$ok" -v n="$N" -v t="$((t1 - t0))" \
            -v s="$((s1 - s0))" -v hz="$hz" 'BEGIN {
            printf "round %d  %-40s %8.0f exchanges/s (2xx %d of %d)  CPU %4.0f us/exchange  %.2f switches/exchange\n",
                r, b, rps, ok, n, t / hz / n * 1e6, s / n }'
    done
done
