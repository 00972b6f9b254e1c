# Sourced by the benchmark scripts: start `causeway demo` as the benchmarks measure it.
#
#   start_demo BIN DIR LOG   # sets demo_pid and demo_client (host:port of social-welfare's client API)
#   layout_demo BIN DIR LOG  # only lays the federation out in DIR (as below), without serving
#   bench_request FILE BIN   # writes the measured request for BIN: an allowed one, for resident D000042
#   bench_auth BIN DIR       # sets bench_header: the officer's `authorization` header (if BIN takes tokens)
#   bench_workdir NAME       # sets work to a fresh directory, removed (and demo_pid stopped) on exit
#
# The demo picks free ports when it lays the federation out; on a busy machine one can be taken
# before it binds, so a failed start is retried with a fresh layout.
# The demo policy limits social-welfare to 600 requests a minute on "residents": the federation is
# laid out once (--once), that limit raised (the check itself stays on the path), then started
# again to serve.
# The demo also runs the oversight node in the same process; it is a third party that would run
# elsewhere, so it pulls every OVERSIGHT_PULL_MS (default 10 min) instead of every 2 s.
# h2load cannot present a client certificate, so social-welfare's client API is switched to the
# development listener (plain HTTP on loopback, as its case-desk application); the officer's token
# is still sent and verified (cached after the first request), as every application sends it.
# Builds from before accountable callers have neither setting and take `officer` in the body.
# The gateways serve with RUST_LOG=warn; BENCH_RUST_LOG=warn,causeway=info measures them at the
# default level, with an access-log line per exchange and side (docs/OPERATIONS.md, "Logs").
layout_demo() {
    local bin="$1" dir="$2" log="$3"
    rm -rf "$dir"
    RUST_LOG=warn "$bin" demo --dir "$dir" --people 10000 --once >"$log" 2>&1 || true
    sed -i -E 's/^rate_limit = .*/rate_limit = { per_minute = 100000000, per_day = 1000000000 }/' \
        "$dir/civil-registry/policies/welfare-residents.toml" 2>/dev/null || true
    sed -i -E "s/^pull_interval_ms = .*/pull_interval_ms = ${OVERSIGHT_PULL_MS:-600000}/" \
        "$dir/oversight/causeway.toml" 2>/dev/null || true
    sed -i -E 's/^app_ca = .*/insecure_plaintext_as = "case-desk"/' \
        "$dir/social-welfare/causeway.toml" 2>/dev/null || true
    if takes_tokens "$bin"; then raise_rate_limits "$dir"; fi
}

# The benchmark is one officer of one application asking as fast as it can: raise the budgets of
# decisions per officer, application and consumer department (the checks stay on the path).
raise_rate_limits() {
    local big='decisions = 1000000000\ndenials = 60\nwindow_secs = 60'
    printf "\n[client.rate_limits]\n$big\n[client.officer_rate_limits]\n$big\n" >>"$1/social-welfare/causeway.toml"
    printf "\n[peer.rate_limits]\n$big\n" >>"$1/civil-registry/causeway.toml"
}

# Whether BIN authenticates callers (and so takes an officer's token instead of a JSON field).
takes_tokens() {
    "$1" tokens --help >/dev/null 2>&1
}

bench_auth() {
    local bin="$1" dir="$2" token
    bench_header=()
    if takes_tokens "$bin"; then
        token="$("$bin" tokens issue --config "$dir/social-welfare/causeway.toml" --officer bench-officer --ttl-secs 86400)"
        bench_header=(-H "authorization: Bearer $token")
    fi
}

start_demo() {
    local bin="$1" dir="$2" log="$3" attempt
    for attempt in 1 2 3; do
        layout_demo "$bin" "$dir" "$log"
        RUST_LOG="${BENCH_RUST_LOG:-warn}" "$bin" demo --dir "$dir" >"$log" 2>&1 &
        demo_pid=$!
        for _ in $(seq 1 600); do
            grep -q "^Serving" "$log" && break
            kill -0 "$demo_pid" 2>/dev/null || break
            sleep 0.2
        done
        grep -q "^Serving" "$log" && break
        kill "$demo_pid" 2>/dev/null || true
        wait "$demo_pid" 2>/dev/null || true
        echo "   attempt $attempt failed: $(grep -m1 error "$log" || true)"
    done
    grep -q "^Serving" "$log" || { cat "$log"; echo "the demo did not start"; exit 1; }
    demo_client="$(grep -E '^\s+social-welfare\s+client https?://' "$log" | head -1 | sed -E 's#.*client https?://([^ ]+).*#\1#')"
}

bench_request() {
    local officer=',"officer":"bench-officer"'
    if [ -n "${2:-}" ] && takes_tokens "$2"; then officer=''; fi
    printf '{"provider":"civil-registry","dataset":"residents","params":{"national_id":"D000042"},"purpose":"benefit-eligibility","legal_basis":"social-welfare-act:s12","case":""%s}\n' "$officer" >"$1"
}

bench_workdir() {
    work="$(mktemp -d "/tmp/causeway-$1.XXXXXX")"
    demo_pid=""
    trap bench_cleanup EXIT
}

bench_cleanup() {
    [ -n "$demo_pid" ] && kill "$demo_pid" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$work"
}
