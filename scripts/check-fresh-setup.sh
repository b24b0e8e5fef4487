#!/usr/bin/env bash
# Runs scripts/setup.sh as on a fresh machine, from a clean clone of this repository's HEAD,
# with an empty CARGO_HOME, RUSTUP_HOME and npm cache, so that nothing installed by hand on
# this machine hides a missing install step. Run it before changing setup (README, "Tests").
#
# The new RUSTUP_HOME is given what the machines this project runs on come with: a toolchain
# named like the pinned one (rust-toolchain.toml) that is a link to a "stable" without the
# wasm32 target, clippy or rustfmt, and a `nightly` of the pinned date without rust-src or
# the wasm32 target. Setup must add what is missing. Then it checks:
# - each target and component of rust-toolchain.toml, and the nightly's, is installed;
# - wasm32 clippy of the workspace passes (the first command that failed on such a machine);
# - the Worker builds (scripts/build.sh, with the tools setup installed);
# - the clone is unchanged (npm ci did not rewrite package-lock.json, nothing else appeared).
# With --full it then runs the whole `npm test` in the clone.
# It needs the network (crates, npm, rustup's dist server) and about 20 minutes on 2 cores;
# it leaves the clone and homes in a temp dir it names (removed on success unless --keep).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
full=false keep=false
for arg in "$@"; do
  case "$arg" in
    --full) full=true ;;
    --keep) keep=true ;;
    *) echo "usage: $0 [--full] [--keep]" >&2; exit 2 ;;
  esac
done
say() { echo "check-fresh-setup: $*" >&2; }
command -v rustup >/dev/null || { say "needs rustup on PATH"; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/fresh-setup.XXXXXX")
say "working in $work"
export CARGO_HOME="$work/cargo" RUSTUP_HOME="$work/rustup" npm_config_cache="$work/npm-cache"
mkdir -p "$CARGO_HOME" "$RUSTUP_HOME"
# The rustup binary and its proxies (cargo, rustc) stay where they are on PATH; with
# RUSTUP_HOME set they see only the new, empty toolchain store.
git clone --quiet --no-hardlinks "$root" "$work/repo"
cd "$work/repo"
source scripts/tools.sh
channel=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' rust-toolchain.toml)
host=$(cd / && rustup show | sed -n "s/^Default host: //p")
toolchains="$RUSTUP_HOME/toolchains"

say "pretending to be the machine of issue 18: '$channel' a link to a bare stable, a bare nightly"
rustup toolchain install "$channel" --profile minimal --no-self-update >/dev/null
mv "$toolchains/$channel-$host" "$toolchains/stable-$host"
ln -s "$toolchains/stable-$host" "$toolchains/$channel-$host"
rustup default stable >/dev/null
rustup toolchain install "$NIGHTLY" --profile minimal --no-self-update >/dev/null
ln -s "$toolchains/$NIGHTLY-$host" "$toolchains/nightly-$host"
if rustup target list --installed --toolchain "$channel" | grep -q wasm32; then
  say "the pretend machine already has the wasm32 target: this check would prove nothing"; exit 1
fi

started=$(date +%s)
say "running scripts/setup.sh"
bash scripts/setup.sh
say "setup took $(($(date +%s) - started)) s"

missing=()
for target in $(sed -n 's/^targets *= *\[\(.*\)\]/\1/p' rust-toolchain.toml | tr -d '"' | tr ',' ' '); do
  rustup target list --installed --toolchain "$channel" | grep -qx "$target" || missing+=("$channel target $target")
done
for component in $(sed -n 's/^components *= *\[\(.*\)\]/\1/p' rust-toolchain.toml | tr -d '"' | tr ',' ' '); do
  rustup component list --installed --toolchain "$channel" | grep -q "^$component" || missing+=("$channel component $component")
done
rustup target list --installed --toolchain nightly | grep -qx wasm32-unknown-unknown || missing+=("nightly target wasm32")
rustup component list --installed --toolchain nightly | grep -q '^rust-src' || missing+=("nightly component rust-src")
[ -x "$WORKER_BUILD_BIN" ] || missing+=("$WORKER_BUILD_BIN")
[ -x "$WASM_BINDGEN_BIN" ] || missing+=("$WASM_BINDGEN_BIN")
if [ ${#missing[@]} -gt 0 ]; then
  say "setup left these missing: ${missing[*]}"; exit 1
fi

say "wasm32 clippy of the workspace"
cargo clippy --quiet --workspace --all-targets --target wasm32-unknown-unknown -- -D warnings
say "building the Worker"
bash scripts/build.sh

if [ -n "$(git status --porcelain)" ]; then
  say "the clone changed:"; git status --porcelain >&2; exit 1
fi

if $full; then
  say "npm test"
  npm test
fi
say "passed in $(($(date +%s) - started)) s"
cd /
$keep || rm -rf "$work"
