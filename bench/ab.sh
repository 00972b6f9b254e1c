#!/usr/bin/env bash
# Two builds of Causeway on the exchange path, alternating, with what each costs per exchange
# (docs/performance-history.md, "Third pass").
#
#   bench/ab.sh OLD_BINARY NEW_BINARY                # 20,000 requests per run, 2 rounds
#   N=50000 ROUNDS=3 bench/ab.sh a/causeway b/causeway
#   C=1 N=3000 bench/ab.sh a/causeway b/causeway     # one exchange at a time (default C=64)
#
# For each binary in turn: start the demo as bench/compare.sh does, warm up with 3,000 requests,
# then `h2load --h1 -c C -m 1 -n N` on social-welfare's POST /v1/requests. Around the run it reads
# the gateway process's CPU time (utime+stime) and the context switches of all its threads from
# /proc, and prints exchanges/s, CPU per exchange and thread switches per exchange; at the end, the
# median of each over the rounds and its ratio to the first binary's. CPU and switch counts move
# much less with a noisy machine than throughput does.
set -euo pipefail
[ $# -ge 2 ] || { sed -n '2,14p' "$0"; exit 2; }
N="${N:-20000}"
C="${C:-64}"
ROUNDS="${ROUNDS:-2}"
here="$(cd "$(dirname "$0")/.." && pwd)"
command -v h2load >/dev/null || { apt-get install -y nghttp2-client >/dev/null 2>&1 ||
    { apt-get update >/dev/null && apt-get install -y nghttp2-client >/dev/null; }; }
# shellcheck source=bench/demo.sh
. "$here/bench/demo.sh"

bench_workdir ab
load() {
    h2load --h1 -c "$C" -m 1 -n "$1" -d "$work/request.json" -H 'content-type: application/json' \
        "${bench_header[@]}" "http://$demo_client/v1/requests"
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$demo_pid/stat"; }
switches() { cat /proc/"$demo_pid"/task/*/status | awk '/ctxt_switches/ {s += $2} END {print s}'; }

hz="$(getconf CLK_TCK)"
for round in $(seq 1 "$ROUNDS"); do
    for bin in "$@"; do
        start_demo "$bin" "$work/fed" "$work/demo.log"
        bench_request "$work/request.json" "$bin"
        bench_auth "$bin" "$work/fed"
        load 3000 >/dev/null
        t0="$(cpu_ticks)"; s0="$(switches)"
        out="$(load "$N")"
        t1="$(cpu_ticks)"; s1="$(switches)"
        kill "$demo_pid"; wait "$demo_pid" 2>/dev/null || true; demo_pid=""
        rps="$(echo "$out" | sed -nE 's/^finished in .*, ([0-9.]+) req\/s.*/\1/p')"
        ok="$(echo "$out" | sed -nE 's/^status codes: ([0-9]+) 2xx.*/\1/p')"
        line="$(awk -v b="$bin" -v rps="$rps" -v n="$N" -v t="$((t1 - t0))" -v s="$((s1 - s0))" \
            -v hz="$hz" 'BEGIN { printf "%s %.1f %.1f %.3f", b, rps, t / hz / n * 1e6, s / n }')"
        echo "$line" >>"$work/results"
        echo "$line" | awk -v r="$round" -v ok="$ok" -v n="$N" '{
            printf "round %d  %-40s %8.0f exchanges/s (2xx %d of %d)  CPU %4.0f us/exchange  %.2f switches/exchange\n",
                r, $1, $2, ok, n, $3, $4 }'
    done
done

# Medians per binary over the rounds, and each median's ratio to the first binary's.
echo "medians over $ROUNDS round(s), ratios to $1:"
awk '
    function median(list,    v, n, i, j, t) {
        n = split(list, v, " ")
        for (i = 2; i <= n; i++) for (j = i; j > 1 && v[j - 1] + 0 > v[j] + 0; j--) {
            t = v[j]; v[j] = v[j - 1]; v[j - 1] = t
        }
        return (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
    }
    !($1 in seen) { seen[$1] = 1; order[++bins] = $1 }
    { rps[$1] = rps[$1] " " $2; cpu[$1] = cpu[$1] " " $3; sw[$1] = sw[$1] " " $4 }
    END {
        for (i = 1; i <= bins; i++) {
            b = order[i]; r = median(rps[b]); c = median(cpu[b]); s = median(sw[b])
            if (i == 1) { r1 = r; c1 = c; s1 = s }
            printf "  %-40s %8.0f exchanges/s (%.2fx)  CPU %4.0f us/exchange (%.2fx)  %.2f switches/exchange (%.2fx)\n",
                b, r, r / r1, c, c / c1, s, s / s1
        }
    }' "$work/results"
