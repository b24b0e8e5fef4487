#!/usr/bin/env bash
# Installs what building, running and testing need, each at a pinned version, and
# skips what is already there, so the README's two commands on a fresh machine build
# exactly what CI built:
# - Node dependencies from package-lock.json (wrangler 4.164.0, Node 22 for it,
#   binaryen's wasm-opt 132, esbuild);
# - Rust 1.95.0 with rustfmt, clippy and the wasm32 target (rust-toolchain.toml;
#   rustup installs it on first use);
# - the nightly the panic-unwind Worker build compiles std with (nightly-2026-05-20,
#   with rust-src and the wasm32 target): worker-build always runs `cargo +nightly`,
#   so the toolchain named `nightly` must be that one;
# - worker-build 0.8.7 and the wasm-bindgen CLI of exactly the version in Cargo.lock,
#   built from crates.io with their own lockfiles (the first run: about 10 minutes on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."

NIGHTLY=nightly-2026-05-20
NIGHTLY_RUSTC="rustc 1.97.0-nightly (e50aa6fba 2026-05-19)"
WORKER_BUILD_VERSION=0.8.7
say() { echo "setup: $*" >&2; }

# Installed again only when package-lock.json's content changes (not its mtime: a fresh
# checkout or a git worktree sharing node_modules must not reinstall).
lock_stamp=node_modules/.rust-workflows-lock
lock_sum=$(cksum < package-lock.json)
if [ ! -x node_modules/.bin/wrangler ] || [ ! -x node_modules/.bin/node ] || [ "$(cat "$lock_stamp" 2>/dev/null)" != "$lock_sum" ]; then
  say "installing Node dependencies (package-lock.json)"
  npm install --no-audit --no-fund
  echo "$lock_sum" > "$lock_stamp"
fi

if ! command -v rustup >/dev/null; then
  say "rustup is missing: install Rust from https://rustup.rs first"; exit 1
fi
# rust-toolchain.toml names the host toolchain; this installs it when it is missing.
rustup show active-toolchain >/dev/null 2>&1 || rustup toolchain install

host=$(rustc -vV | sed -n 's/^host: //p')
toolchains="${RUSTUP_HOME:-$HOME/.rustup}/toolchains"
nightly_rustc=$(rustc +nightly -V 2>/dev/null || true)
if [ -z "$nightly_rustc" ]; then
  say "installing $NIGHTLY as the 'nightly' toolchain (the panic-unwind build compiles std with it)"
  rustup toolchain install "$NIGHTLY" --profile minimal --component rust-src --target wasm32-unknown-unknown
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
  rustup target add wasm32-unknown-unknown --toolchain nightly
fi
if ! rustup component list --installed --toolchain nightly | grep -q '^rust-src'; then
  rustup component add rust-src --toolchain nightly
fi

# The two CLIs share most of their dependencies: one target dir builds those once.
tools_target="$PWD/target/tools"
if [ "$(worker-build --version 2>/dev/null | awk '{print $NF}')" != "$WORKER_BUILD_VERSION" ]; then
  say "installing worker-build $WORKER_BUILD_VERSION"
  cargo install worker-build --version "$WORKER_BUILD_VERSION" --locked --target-dir "$tools_target"
fi

# The wasm-bindgen CLI must match the wasm-bindgen crate in Cargo.lock exactly.
WASM_BINDGEN_VERSION=$(awk '/^name = "wasm-bindgen"$/ {getline; gsub(/version = |"/, ""); print; exit}' Cargo.lock)
if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$WASM_BINDGEN_VERSION" ]; then
  say "installing wasm-bindgen-cli $WASM_BINDGEN_VERSION"
  cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" --locked --target-dir "$tools_target"
fi
