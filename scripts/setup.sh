#!/usr/bin/env bash
# Installs what building, running and testing need, each at a pinned version, and makes
# every component present even where a toolchain of the same name already exists, so the
# README's two commands on any machine with `rustup` and `npm` build exactly what CI built:
# - Node dependencies with `npm ci` from package-lock.json (wrangler 4.164.0, Node 22 for it,
#   binaryen's wasm-opt 132, esbuild), reinstalled only when the lock's content changes;
# - the host toolchain of rust-toolchain.toml (1.95.0) with its components (rustfmt, clippy)
#   and target (wasm32): a toolchain of that name that lacks them gets them added;
# - the nightly the panic-unwind Worker build compiles std with (nightly-2026-05-20, with
#   rust-src and the wasm32 target): worker-build always runs `cargo +nightly`, so the
#   toolchain named `nightly` must be that one;
# - worker-build 0.8.7 and the wasm-bindgen CLI of exactly the version in Cargo.lock, each
#   in an install root of its own (scripts/tools.sh), built from crates.io with their own
#   lock files; where the registry no longer serves a version such a lock names, the same
#   tool version is built with the newest compatible dependencies instead, and this says so
#   (the first run: about 12 minutes on 2 cores).
# Check a change here with scripts/check-fresh-setup.sh (empty CARGO_HOME and RUSTUP_HOME).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/tools.sh
say() { echo "setup: $*" >&2; }

if ! command -v npm >/dev/null; then
  say "npm is missing: install Node.js (20 or later) first"; exit 1
fi
# Installed again only when package-lock.json's content changes (not its mtime: a fresh
# checkout or a git worktree sharing node_modules must not reinstall). `npm ci` installs
# exactly the lock and never rewrites it.
lock_stamp=node_modules/.worker-workflows-lock
lock_sum=$(cksum < package-lock.json)
if [ ! -x node_modules/.bin/wrangler ] || [ ! -x node_modules/.bin/node ] || [ "$(cat "$lock_stamp" 2>/dev/null)" != "$lock_sum" ]; then
  say "installing Node dependencies (npm ci, package-lock.json)"
  npm ci --no-audit --no-fund
  echo "$lock_sum" > "$lock_stamp"
fi

if ! command -v rustup >/dev/null; then
  say "rustup is missing: install Rust from https://rustup.rs first"; exit 1
fi

# The host toolchain of rust-toolchain.toml, with everything the file lists. rustup (1.28
# and later) installs the file's toolchain with its components and targets, and adds those
# missing to a toolchain of that name that exists; the loop below makes sure of it on any
# rustup, since a toolchain that exists without the wasm32 target fails only later, in clippy.
channel=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' rust-toolchain.toml)
targets=$(sed -n 's/^targets *= *\[\(.*\)\]/\1/p' rust-toolchain.toml | tr -d '"' | tr ',' ' ')
components=$(sed -n 's/^components *= *\[\(.*\)\]/\1/p' rust-toolchain.toml | tr -d '"' | tr ',' ' ')
rustup toolchain install --no-self-update >/dev/null 2>&1 ||
  rustup toolchain install "$channel" --profile minimal --no-self-update
installed_targets=$(rustup target list --installed --toolchain "$channel")
for target in $targets; do
  if ! grep -qx "$target" <<<"$installed_targets"; then
    say "adding the $target target to the $channel toolchain"
    rustup target add "$target" --toolchain "$channel"
  fi
done
installed_components=$(rustup component list --installed --toolchain "$channel")
for component in $components; do
  if ! grep -q "^$component" <<<"$installed_components"; then
    say "adding $component to the $channel toolchain"
    rustup component add "$component" --toolchain "$channel"
  fi
done

host=$(rustc -vV | sed -n 's/^host: //p')
toolchains="${RUSTUP_HOME:-$HOME/.rustup}/toolchains"
nightly_rustc=$(rustc +nightly -V 2>/dev/null || true)
if [ -z "$nightly_rustc" ]; then
  say "installing $NIGHTLY as the 'nightly' toolchain (the panic-unwind build compiles std with it)"
  rustup toolchain install "$NIGHTLY" --profile minimal --component rust-src --target wasm32-unknown-unknown --no-self-update
  # Named `nightly` the way rustup names a version after its channel: a link.
  rm -rf "${toolchains:?}/nightly-$host"
  ln -s "$toolchains/$NIGHTLY-$host" "$toolchains/nightly-$host"
elif [ "$nightly_rustc" != "$NIGHTLY_RUSTC" ] && [ "${ALLOW_OTHER_NIGHTLY:-}" != "1" ]; then
  say "your 'nightly' toolchain is '$nightly_rustc', but this project is built with $NIGHTLY"
  say "('$NIGHTLY_RUSTC'), and worker-build always uses the toolchain named 'nightly'. Either:"
  say "  rustup toolchain install $NIGHTLY --profile minimal -c rust-src -t wasm32-unknown-unknown"
  say "  mv $toolchains/nightly-$host $toolchains/nightly-$host.yours"
  say "  ln -s $toolchains/$NIGHTLY-$host $toolchains/nightly-$host"
  say "or build with your nightly anyway (not what CI builds): ALLOW_OTHER_NIGHTLY=1"
  exit 1
fi
if ! rustup target list --installed --toolchain nightly | grep -qx wasm32-unknown-unknown; then
  say "adding the wasm32-unknown-unknown target to the nightly toolchain"
  rustup target add wasm32-unknown-unknown --toolchain nightly
fi
if ! rustup component list --installed --toolchain nightly | grep -q '^rust-src'; then
  say "adding rust-src to the nightly toolchain"
  rustup component add rust-src --toolchain nightly
fi

# `cargo install` of one tool version into its own root: first with the tool's own lock
# file; when that fails (the registry may no longer serve a version the lock names, as with
# webpki-roots 1.0.11 in wasm-bindgen-cli 0.2.130's), the same version with the newest
# dependencies its manifest allows, said out loud. The two CLIs share most dependencies:
# one target dir builds those once.
install_tool() { # crate version binary-path
  local crate=$1 version=$2 bin=$3 root
  root=$(dirname "$(dirname "$bin")")
  [ -x "$bin" ] && "$bin" --version 2>/dev/null | awk '{print $NF}' | grep -qxF "$version" && return 0
  say "installing $crate $version into $root"
  local args=(install "$crate" --version "=$version" --root "$root" --target-dir "$TOOLS_ROOT/target" --force)
  if ! cargo +"$channel" "${args[@]}" --locked; then
    say "$crate $version did not install with its own lock file (above: usually a locked dependency"
    say "version the crates registry no longer serves); installing the same $crate $version with the"
    say "newest dependency versions its Cargo.toml allows instead (not byte-for-byte CI's build of the tool)"
    cargo +"$channel" "${args[@]}"
  fi
  "$bin" --version >/dev/null
}
install_tool worker-build "$WORKER_BUILD_VERSION" "$WORKER_BUILD_BIN"
install_tool wasm-bindgen-cli "$WASM_BINDGEN_VERSION" "$WASM_BINDGEN_BIN"
# With --twiggy (`npm run bench:size`): twiggy, which sizes the Wasm by function.
if [ "${1:-}" = "--twiggy" ]; then
  install_tool twiggy "$TWIGGY_VERSION" "$TWIGGY_BIN"
fi

# With --browser (scripts/test.sh), where package.json has playwright-core (the dashboard's
# browser test): a headless Chromium from the system's packages, since playwright's own
# browser downloads are not used. Found as $CHROMIUM or /usr/bin/chromium; else installed
# with apt-get (Debian's `chromium`) where that is possible, said out loud.
if [ "${1:-}" = "--browser" ] && grep -q '"playwright-core"' package.json; then
  chromium=${CHROMIUM:-/usr/bin/chromium}
  if [ ! -x "$chromium" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      say "installing Chromium with apt-get (Debian's chromium) for the dashboard's browser test"
      apt-get update -qq || true
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
      say "the dashboard's browser test needs Chromium at $chromium: install it (Debian: apt-get install chromium),"
      say "or point CHROMIUM at a Chromium or Chrome binary"
      exit 1
    fi
  fi
fi
