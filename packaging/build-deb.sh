#!/usr/bin/env bash
# Build the causeway Debian package with cargo-deb (cargo install --locked cargo-deb).
#
#   packaging/build-deb.sh                          release build, then the package (what departments install)
#   packaging/build-deb.sh --profile dev --no-build the debug binary `cargo build`/`cargo test` already made (CI)
#
# Before packaging, the binary itself writes its shell completions and man pages (`causeway
# completions`, `causeway man`) under <target>/<profile>/package/, where [package.metadata.deb] in
# gateway/Cargo.toml picks them up. The last line printed is the path of the .deb.
set -euo pipefail
cd "$(dirname "$0")/.."

profile=release
build=1
while [ $# -gt 0 ]; do
    case "$1" in
    --profile) profile="${2:?--profile needs a cargo profile name}"; shift 2 ;;
    --no-build) build=0; shift ;;
    -h | --help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "build-deb.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
done

if ! cargo deb --version >/dev/null 2>&1; then
    echo "build-deb.sh: cargo-deb is missing: cargo install --locked cargo-deb" >&2
    exit 1
fi

target_dir="${CARGO_TARGET_DIR:-target}"
case "$profile" in
dev | test) profile_dir=debug ;;
bench) profile_dir=release ;;
*) profile_dir="$profile" ;;
esac

if [ "$build" = 1 ]; then
    # causeway_build_info{commit,rustc} on /metrics names what was built.
    CAUSEWAY_BUILD_COMMIT="$(git rev-parse --short=12 HEAD 2>/dev/null || true)" \
        CAUSEWAY_BUILD_RUSTC="$(rustc --version | cut -d' ' -f2)" \
        cargo build --locked --profile "$profile" -p causeway --bin causeway
fi
bin="$target_dir/$profile_dir/causeway"
if [ ! -x "$bin" ]; then
    echo "build-deb.sh: $bin is missing: build it first (cargo build --profile $profile -p causeway) or drop --no-build" >&2
    exit 1
fi

assets="$target_dir/$profile_dir/package"
rm -rf "$assets"
mkdir -p "$assets/man"
"$bin" completions bash >"$assets/causeway.bash"
"$bin" completions zsh >"$assets/_causeway"
"$bin" completions fish >"$assets/causeway.fish"
"$bin" man --dir "$assets/man" >/dev/null
gzip -9n "$assets"/man/*.1

# A debug build carries ~1 GB of debug info: strip it, and compress lightly (the package stays on
# this machine). A release build keeps cargo-deb's defaults.
flags=()
if [ "$profile_dir" = debug ]; then
    flags+=(--strip --fast)
fi
# cargo-deb prints the path of the package it wrote.
cargo deb --no-build --profile "$profile" -p causeway --quiet "${flags[@]}" --output "$target_dir/debian/"
