#!/usr/bin/env bash
# Causeway vs. the transport-only baseline a department would otherwise build (docs/PERFORMANCE.md).
#
#   bench/compare.sh                 # 20,000 requests per run, 2 rounds, 64 connections
#   N=50000 ROUNDS=3 C=64 bench/compare.sh
#   CAUSEWAY_BIN=/path/to/causeway bench/compare.sh   # skip the release build
#
# Ours: `causeway demo` (three gateways in one process, SQLite, LMDB ledgers); h2load drives the
# consumer's client API: POST /v1/requests, an allowed request for one resident. Each request is
# signed, sent over HTTP/2 + mTLS, authenticated, checked against policy, fetched, notarized in
# the provider's ledger (durable before release), receipt verified and notarized in the consumer's.
#
# Baseline: nginx A (plain HTTP) -> proxy_pass https with a client certificate (upstream
# keep-alive) -> nginx B (verifies the client certificate against a CA) -> a static ~300-byte JSON
# record. No policy, no log.
#
# Both are driven by `h2load --h1 -c $C -m 1` (HTTP/1.1, one request in flight per connection).
# Throughput counts 2xx only; p50/p99 come from h2load's --log-file (per-request microseconds;
# h2load itself prints only mean/sd/max). The two alternate ROUNDS times; medians are reported.
# Each run also reads the CPU time (user + system, from /proc) of the side it drives: the demo
# process for Causeway, both nginx masters and their workers for the baseline; h2load's own is in
# neither. Throughput also depends on how each side shares the cores with h2load; CPU per request
# is what each side costs the machine, a second view of the gap.
# OVERSIGHT_PULL_MS=2000 keeps the demo's in-process oversight node pulling as the demo does.
set -euo pipefail

N="${N:-20000}"
ROUNDS="${ROUNDS:-2}"
C="${C:-64}"
here="$(cd "$(dirname "$0")/.." && pwd)"

need() { command -v "$1" >/dev/null 2>&1; }
missing=()
need h2load || missing+=(nghttp2-client)
need nginx || [ -x /usr/sbin/nginx ] || missing+=(nginx)
need openssl || missing+=(openssl)
need curl || missing+=(curl)
if [ "${#missing[@]}" -gt 0 ]; then
    echo "== installing ${missing[*]}"
    apt-get install -y "${missing[@]}" >/dev/null 2>&1 ||
        { apt-get update >/dev/null && apt-get install -y "${missing[@]}" >/dev/null; }
fi
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"

if [ -z "${CAUSEWAY_BIN:-}" ]; then
    echo "== building the release binary"
    (cd "$here" && cargo build --release -q -p causeway)
    CAUSEWAY_BIN="${CARGO_TARGET_DIR:-$here/target}/release/causeway"
fi

work="$(mktemp -d /tmp/causeway-bench.XXXXXX)"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# --- ours ------------------------------------------------------------------------------------
echo "== starting the demo federation (10,000 people) in $work/fed"
# shellcheck source=bench/demo.sh
. "$here/bench/demo.sh"
start_demo "$CAUSEWAY_BIN" "$work/fed" "$work/demo.log"
pids+=("$demo_pid")
ours="$demo_client"
echo "   social-welfare client API: http://$ours"
bench_request "$work/request.json" "$CAUSEWAY_BIN"
bench_auth "$CAUSEWAY_BIN" "$work/fed"
status="$(curl -s -o "$work/answer.json" -w '%{http_code}' -H 'content-type: application/json' "${bench_header[@]}" --data-binary @"$work/request.json" "http://$ours/v1/requests")"
[ "$status" = 200 ] || { cat "$work/answer.json"; echo "the benchmark request is not allowed ($status)"; exit 1; }

# --- baseline: two nginx with mutual TLS between them -------------------------------------------
echo "== starting the nginx pair"
mkdir -p "$work/nginx"
cd "$work/nginx"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=bench-ca \
    -keyout ca.key -out ca.pem 2>/dev/null
for who in b a; do
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=nginx-$who" \
        -keyout "$who.key" -out "$who.csr" 2>/dev/null
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n' >"$who.ext"
    openssl x509 -req -in "$who.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
        -extfile "$who.ext" -out "$who.pem" 2>/dev/null
done
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port_a="$(free_port)"
port_b="$(free_port)"
# The record: about the size of one resident's row as the gateway answers it.
record='{"national_id":"D000042","given_name":"Alex","family_name":"Example","birth_date":"1980-04-02","address":"12 High Street, Springfield","postcode":"SP1 2AB","household_size":3,"marital_status":"married","citizenship":"yes","registered_since":"2001-09-14","status":"active","updated_at":"2026-11-22T00:00:00Z"}'
common="worker_processes auto; pid %s; error_log %s warn; daemon off;
events { worker_connections 4096; }"
# shellcheck disable=SC2059
cat >b.conf <<EOF
$(printf "$common" "$work/nginx/b.pid" "$work/nginx/b.err")
http {
    access_log off;
    server {
        listen 127.0.0.1:$port_b ssl;
        ssl_certificate $work/nginx/b.pem;
        ssl_certificate_key $work/nginx/b.key;
        ssl_client_certificate $work/nginx/ca.pem;
        ssl_verify_client on;
        keepalive_requests 1000000;
        location / { default_type application/json; return 200 '$record'; }
    }
}
EOF
# shellcheck disable=SC2059
cat >a.conf <<EOF
$(printf "$common" "$work/nginx/a.pid" "$work/nginx/a.err")
http {
    access_log off;
    upstream b { server 127.0.0.1:$port_b; keepalive 128; }
    server {
        listen 127.0.0.1:$port_a;
        keepalive_requests 1000000;
        location / {
            proxy_pass https://b;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_ssl_certificate $work/nginx/a.pem;
            proxy_ssl_certificate_key $work/nginx/a.key;
            proxy_ssl_trusted_certificate $work/nginx/ca.pem;
            proxy_ssl_verify on;
            proxy_ssl_name localhost;
            proxy_ssl_session_reuse on;
        }
    }
}
EOF
"$NGINX" -p "$work/nginx" -c "$work/nginx/b.conf" &
pids+=($!)
nginx_masters=($!)
"$NGINX" -p "$work/nginx" -c "$work/nginx/a.conf" &
pids+=($!)
nginx_masters+=($!)
for _ in $(seq 1 100); do
    curl -s -o /dev/null "http://127.0.0.1:$port_a/" && break
    sleep 0.1
done
status="$(curl -s -o /dev/null -w '%{http_code}' -H 'content-type: application/json' --data-binary @"$work/request.json" "http://127.0.0.1:$port_a/v1/requests")"
[ "$status" = 200 ] || { cat "$work/nginx/"*.err; echo "the nginx pair does not answer 200 ($status)"; exit 1; }
cd "$work"

# --- runs -------------------------------------------------------------------------------------
# run NAME URL -> appends "NAME rps p50_ms p99_ms" to results
# The processes whose CPU time counts for one side.
side_pids() {
    if [ "$1" = causeway ]; then
        echo "$demo_pid"
    else
        for master in "${nginx_masters[@]}"; do echo "$master"; pgrep -P "$master" || true; done
    fi
}
# Their CPU time so far, in clock ticks (utime + stime).
cpu_ticks() {
    local pid total=0
    for pid in $(side_pids "$1"); do
        total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)))
    done
    echo "$total"
}
hz="$(getconf CLK_TCK)"

run() {
    local name="$1" url="$2" log="$work/$1.$RANDOM.log" out ok secs t0 t1 cpu
    t0="$(cpu_ticks "$name")"
    out="$(h2load --h1 -c "$C" -m 1 -n "$N" -d "$work/request.json" -H 'content-type: application/json' \
        "${bench_header[@]}" --log-file="$log" "$url")"
    t1="$(cpu_ticks "$name")"
    cpu="$(awk -v t="$((t1 - t0))" -v hz="$hz" -v n="$N" 'BEGIN {printf "%.1f", t / hz / n * 1e6}')"
    ok="$(awk '$2 >= 200 && $2 < 300' "$log" | wc -l)"
    secs="$(echo "$out" | sed -nE 's/^finished in ([0-9.]+)(m?s),.*/\1 \2/p' | awk '{print ($2=="ms") ? $1/1000 : $1}')"
    read -r p50 p99 < <(awk '$2 >= 200 && $2 < 300 {print $3}' "$log" | sort -n |
        awk '{a[NR]=$1} END {i50=int(NR*0.50); if(i50<1)i50=1; i99=int(NR*0.99); if(i99<1)i99=1; printf "%.2f %.2f\n", a[i50]/1000, a[i99]/1000}')
    local rps
    rps="$(awk -v ok="$ok" -v s="$secs" 'BEGIN {printf "%.0f", ok/s}')"
    printf '   %-8s %8s req/s (2xx: %s of %s)  p50 %7s ms  p99 %7s ms  CPU %6s us/request\n' \
        "$name" "$rps" "$ok" "$N" "$p50" "$p99" "$cpu"
    echo "$name $rps $p50 $p99 $cpu" >>"$work/results"
    rm -f "$log"
}

echo "== warm-up"
h2load --h1 -c "$C" -m 1 -n 2000 -d "$work/request.json" -H 'content-type: application/json' "${bench_header[@]}" "http://$ours/v1/requests" >/dev/null
h2load --h1 -c "$C" -m 1 -n 2000 -d "$work/request.json" -H 'content-type: application/json' "http://127.0.0.1:$port_a/v1/requests" >/dev/null
for round in $(seq 1 "$ROUNDS"); do
    echo "== round $round: $N requests, $C connections, HTTP/1.1"
    run causeway "http://$ours/v1/requests"
    run nginx "http://127.0.0.1:$port_a/v1/requests"
done

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
col() { awk -v n="$1" -v c="$2" '$1==n {print $c}' "$work/results" | median; }
ours_rps="$(col causeway 2)"; ours_p50="$(col causeway 3)"; ours_p99="$(col causeway 4)"; ours_cpu="$(col causeway 5)"
nginx_rps="$(col nginx 2)"; nginx_p50="$(col nginx 3)"; nginx_p99="$(col nginx 4)"; nginx_cpu="$(col nginx 5)"
echo "== medians over $ROUNDS rounds ($(nproc) cores; $(uptime | sed 's/.*load average/load average/'))"
printf '   causeway %8s req/s  p50 %7s ms  p99 %7s ms  CPU %6s us/request\n' "$ours_rps" "$ours_p50" "$ours_p99" "$ours_cpu"
printf '   nginx    %8s req/s  p50 %7s ms  p99 %7s ms  CPU %6s us/request\n' "$nginx_rps" "$nginx_p50" "$nginx_p99" "$nginx_cpu"
awk -v a="$ours_rps" -v b="$nginx_rps" -v c="$ours_p50" -v d="$nginx_p50" -v e="$ours_p99" -v f="$nginx_p99" \
    -v g="$ours_cpu" -v h="$nginx_cpu" \
    'BEGIN {printf "   ratio (causeway/nginx): throughput %.2fx  p50 %.2fx  p99 %.2fx  CPU per request %.2fx\n", a/b, c/d, e/f, g/h}'
