#!/usr/bin/env bash
# Resident memory of one gateway (social-welfare, a consumer) idle and with 1,000 open client
# connections, each having made one exchange and kept its HTTP/1.1 connection open
# (docs/PERFORMANCE.md, "Memory").
#
#   bench/memory.sh                                   # builds the release binary first
#   CAUSEWAY_BIN=/path/to/causeway CONNS=1000 bench/memory.sh
#
# Reads VmRSS (and its anonymous / file-backed parts: LMDB's map is file-backed and mostly not
# resident) from /proc/<pid>/status.
set -euo pipefail
CONNS="${CONNS:-1000}"
here="$(cd "$(dirname "$0")/.." && pwd)"
if [ -z "${CAUSEWAY_BIN:-}" ]; then
    (cd "$here" && cargo build --release -q -p causeway)
    CAUSEWAY_BIN="${CARGO_TARGET_DIR:-$here/target}/release/causeway"
fi
work="$(mktemp -d /tmp/causeway-mem.XXXXXX)"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

"$CAUSEWAY_BIN" demo --dir "$work/fed" --people 10000 --once >"$work/demo.log" 2>&1
# The demo policy allows 600 requests a minute; raise it so every connection's exchange is granted.
sed -i -E 's/^rate_limit = .*/rate_limit = { per_minute = 100000000, per_day = 1000000000 }/' \
    "$work/fed/civil-registry/policies/welfare-residents.toml"
# One officer makes every exchange: raise the per-officer budget (builds with rate limits only).
if "$CAUSEWAY_BIN" tokens --help >/dev/null 2>&1; then
    printf '\n[client.officer_rate_limits]\ndecisions = 1000000000\ndenials = 60\nwindow_secs = 60\n' \
        >>"$work/fed/social-welfare/causeway.toml"
fi
for dept in civil-registry social-welfare; do
    RUST_LOG=warn "$CAUSEWAY_BIN" serve --config "$work/fed/$dept/causeway.toml" >"$work/$dept.log" 2>&1 &
    pids+=($!)
done
welfare_pid="${pids[1]}"
client="$(sed -nE 's/^listen = "(.*)"/\1/p' "$work/fed/social-welfare/causeway.toml" | head -1)"
admin="$(awk '/^\[admin\]/{a=1} a && /^listen/ {gsub(/"/,"",$3); print $3; exit}' "$work/fed/social-welfare/causeway.toml")"
for _ in $(seq 1 300); do curl -sf "http://$admin/healthz" >/dev/null && break; sleep 0.1; done
rss() { awk '/^(VmRSS|RssAnon|RssFile|Threads)/ {printf "%s %s %s  ", $1, $2, $3} END {print ""}' "/proc/$welfare_pid/status"; }

# Builds with accountable callers: the case-desk application over mutual TLS, with an officer's
# token; older builds: plain HTTP with the officer in the body.
certs="$work/fed/certs"
if "$CAUSEWAY_BIN" tokens --help >/dev/null 2>&1; then
    body='{"provider":"civil-registry","dataset":"residents","params":{"national_id":"D000042"},"purpose":"benefit-eligibility","legal_basis":"social-welfare-act:s12","case":""}'
    token="$("$CAUSEWAY_BIN" tokens issue --config "$work/fed/social-welfare/causeway.toml" --officer mem --ttl-secs 86400)"
    curl -sf -o /dev/null --cacert "$certs/ca.pem" --cert "$certs/social-welfare-app-case-desk.pem" \
        --key "$certs/social-welfare-app-case-desk.key" -H "authorization: Bearer $token" \
        -H 'content-type: application/json' -d "$body" "https://$client/v1/requests"
    tls=1
else
    body='{"provider":"civil-registry","dataset":"residents","params":{"national_id":"D000042"},"purpose":"benefit-eligibility","legal_basis":"social-welfare-act:s12","case":"","officer":"mem"}'
    curl -sf -o /dev/null -H 'content-type: application/json' -d "$body" "http://$client/v1/requests"
    token="" tls=0
fi
echo "idle (after one exchange):   $(rss)"

python3 - "$client" "$CONNS" "$body" "$welfare_pid" "$tls" "$token" "$certs" <<'EOF'
import socket, ssl, sys
host, port = sys.argv[1].rsplit(":", 1)
n, body, pid = int(sys.argv[2]), sys.argv[3].encode(), sys.argv[4]
tls, token, certs = sys.argv[5] == "1", sys.argv[6], sys.argv[7]
auth = b"Authorization: Bearer %s\r\n" % token.encode() if token else b""
req = (b"POST /v1/requests HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n" % sys.argv[1].encode()
       + auth + b"Content-Length: %d\r\n\r\n" % len(body)) + body
context = None
if tls:
    context = ssl.create_default_context(cafile=f"{certs}/ca.pem")
    context.check_hostname = False
    context.load_cert_chain(f"{certs}/social-welfare-app-case-desk.pem", f"{certs}/social-welfare-app-case-desk.key")
socks = []
for _ in range(n):
    s = socket.create_connection((host, int(port)))
    if context:
        s = context.wrap_socket(s)
    socks.append(s)
ok = 0
for i in range(0, n, 100):          # 100 requests in flight at a time, connections kept open
    batch = socks[i:i + 100]
    for s in batch:
        s.sendall(req)
    for s in batch:
        data = b""
        while b"\r\n\r\n" not in data:
            data += s.recv(65536)
        head, rest = data.split(b"\r\n\r\n", 1)
        length = int([l.split(b":")[1] for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")][0])
        while len(rest) < length:
            rest += s.recv(65536)
        ok += head.startswith(b"HTTP/1.1 200")
status = {l.split(":")[0]: l.split(":", 1)[1].strip() for l in open(f"/proc/{pid}/status")}
print(f"{n} open connections ({ok} exchanges answered 200): VmRSS: {status['VmRSS']}  RssAnon: {status['RssAnon']}  RssFile: {status['RssFile']}  Threads: {status['Threads']}")
for s in socks:
    s.close()
EOF
